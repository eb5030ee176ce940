package redact

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

const fuzzSecret = "SECRETVALUE123"

// fuzzInsert returns the secret text to insert for kind, and the part of it
// that must not survive. Kinds 0–4 are passwords in each default body
// format, 5–7 a Luhn-valid card built from digits (plain, spaced, dashed),
// 8 an API key chosen by digits, 9 nothing.
func fuzzInsert(kind uint8, digits uint64) (insert, secret string, card bool) {
	switch kind % 10 {
	case 0:
		return `"password":"` + fuzzSecret + `"`, fuzzSecret, false
	case 1:
		return `"Password" : "` + fuzzSecret + `"`, fuzzSecret, false
	case 2:
		return `<password>` + fuzzSecret + `</password>`, fuzzSecret, false
	case 3:
		return `password=` + fuzzSecret, fuzzSecret, false
	case 4:
		return "Content-Disposition: form-data; name=\"password\"\r\n\r\n" + fuzzSecret + "\r\n", fuzzSecret, false
	case 5, 6, 7:
		c := fuzzCard(digits)
		sep := map[uint8]string{5: "", 6: " ", 7: "-"}[kind%10]
		f := formatCard(c, sep)
		return f, f, true
	case 8:
		keys := []struct{ token, secret string }{
			{awsKey, awsKey[4:]},
			{ghToken, ghToken[4:]},
			{ghPAT, ghPAT[11:]},
			{slackTok, slackTok[5:]},
			{stripeKey, stripeKey[8:]},
			{googleKey, googleKey[4:]},
			{vigilTok, vigilTok[4:]},
			{jwt, jwt[strings.LastIndexByte(jwt, '.')+1:]},
			{"-----BEGIN EC PRIVATE KEY-----\n" + pemBody + "-----END EC PRIVATE KEY-----", pemBody},
		}
		k := keys[digits%uint64(len(keys))]
		return k.token, k.secret, false
	}
	return "", "", false
}

// fuzzCard builds a Luhn-valid card number of 13 to 19 digits whose first
// digit is 2 to 6.
func fuzzCard(d uint64) string {
	n := 13 + int(d%7)
	d /= 7
	b := []byte{byte('2' + d%5)}
	d /= 5
	x := d | 1
	for len(b) < n-1 {
		x = x*6364136223846793005 + 1442695040888963407
		b = append(b, byte('0'+(x>>33)%10))
	}
	return luhn(string(b))
}

// formatCard writes c in groups of 4 joined by sep, folding a last group
// shorter than 3 digits into the one before.
func formatCard(c, sep string) string {
	if sep == "" {
		return c
	}
	var groups []string
	for len(c) > 0 {
		n := min(4, len(c))
		groups = append(groups, c[:n])
		c = c[n:]
	}
	if last := groups[len(groups)-1]; len(last) < 3 {
		groups = groups[:len(groups)-1]
		groups[len(groups)-1] += last
	}
	return strings.Join(groups, sep)
}

// FuzzBody checks that Body, Text and Truncate never panic, never modify
// their input, keep valid UTF-8 valid, and that a secret inserted between
// arbitrary prefix and suffix is hidden. Documented exception: a card
// number glued to other digits (see cards.go) is not required to be hidden.
func FuzzBody(f *testing.F) {
	f.Add([]byte(`{"user":"bob",`), []byte(`}`), uint8(0), uint64(0))
	f.Add([]byte(`{"password":"\`), []byte(`,"x":1}`), uint8(1), uint64(0))
	f.Add([]byte("pay "), []byte(" now"), uint8(6), uint64(12345))
	f.Add([]byte("12 "), []byte("-9"), uint8(7), uint64(999))
	f.Add([]byte("eyJaaaaaaaaaaaaaa."), []byte("AAAA"), uint8(8), uint64(7))
	f.Add([]byte("--b\r\n"), []byte("--b--"), uint8(4), uint64(0))
	r := Default()
	f.Fuzz(func(t *testing.T, prefix, suffix []byte, kind uint8, digits uint64) {
		insert, secret, card := fuzzInsert(kind, digits)
		in := make([]byte, 0, len(prefix)+len(insert)+len(suffix))
		in = append(append(append(in, prefix...), insert...), suffix...)
		orig := string(in)

		out := r.Body(in)
		if string(in) != orig {
			t.Fatalf("Body modified its input")
		}
		text := r.Text(orig)
		cut := Truncate(out, int(kind%64), int(digits%8))
		if utf8.Valid(in) {
			if !utf8.Valid(out) || !utf8.Valid([]byte(text)) || !utf8.Valid(cut) {
				t.Fatalf("valid UTF-8 made invalid: %q → %q", in, out)
			}
		}
		if kind%64 > 0 && utf8.RuneCount(cut) > int(kind%64) {
			t.Fatalf("Truncate to %d left %d characters", kind%64, utf8.RuneCount(cut))
		}
		if secret == "" {
			return
		}

		// Body strips NUL bytes first, so judge what it saw.
		p, s := stripNUL(prefix), stripNUL(suffix)
		if !bytes.Contains(p, []byte(secret)) && !bytes.Contains(s, []byte(secret)) &&
			!(card && glued(p, s)) && bytes.Contains(out, []byte(secret)) {
			t.Fatalf("secret %q kept\n  in: %q\n out: %q", secret, in, out)
		}
		if !bytes.Contains(prefix, []byte(secret)) && !bytes.Contains(suffix, []byte(secret)) &&
			!(card && glued(prefix, suffix)) && strings.Contains(text, secret) {
			t.Fatalf("Text kept secret %q\n  in: %q\n out: %q", secret, orig, text)
		}
	})
}

// glued reports whether a card between p and s touches other digits.
func glued(p, s []byte) bool {
	return len(p) > 0 && isDigit(p[len(p)-1]) || len(s) > 0 && isDigit(s[0])
}
