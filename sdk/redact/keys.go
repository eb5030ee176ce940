package redact

import "bytes"

// API keys and tokens in well-known formats. The scanner keeps a format's
// public prefix ("ghp_", "AKIA", "-----BEGIN RSA PRIVATE KEY-----") so that a
// reader can tell what was hidden, and replaces the secret part:
//
//	AWS access key id        AKIA or ASIA + 16 of [A-Z0-9]
//	GitHub                   ghp_ gho_ ghs_ ghu_ ghr_ + 30 or more of [A-Za-z0-9];
//	                         github_pat_ + 22 or more of [A-Za-z0-9_]
//	Slack                    xoxa- xoxb- xoxp- xoxr- xoxs- + 10 or more of [A-Za-z0-9-]
//	Stripe                   sk_live_ rk_live_ sk_test_ rk_test_ + 10 or more of [A-Za-z0-9]
//	Google API key           AIza + 35 of [A-Za-z0-9_-]
//	Vigil                    vgl_ + 16 or more of [A-Za-z0-9_-]
//	JWT                      eyJ… . eyJ… . signature (base64url), hidden whole
//	PEM private key          everything between "-----BEGIN … PRIVATE KEY-----"
//	                         and "-----END" (or the end of the input)
//
// Tokens glued to other letters are still found: a prefix is recognised
// wherever it starts.

type charset uint8

const (
	alnum      charset = iota // [A-Za-z0-9]
	alnumUnder                // [A-Za-z0-9_]
	alnumDash                 // [A-Za-z0-9-]
	base64URL                 // [A-Za-z0-9_-]
	upperNum                  // [A-Z0-9]
)

func (cs charset) has(c byte) bool {
	switch {
	case c >= '0' && c <= '9' || c >= 'A' && c <= 'Z':
		return true
	case c >= 'a' && c <= 'z':
		return cs != upperNum
	case c == '_':
		return cs == alnumUnder || cs == base64URL
	case c == '-':
		return cs == alnumDash || cs == base64URL
	}
	return false
}

// run returns the end of the run of cs that starts at i.
func (cs charset) run(b []byte, i int) int {
	for i < len(b) && cs.has(b[i]) {
		i++
	}
	return i
}

// keyScan remembers, per format, how far a run was already read, so that a
// long run full of anchors is read once (the scan stays linear).
type keyScan struct {
	b    []byte
	sp   []span
	seen [8]int
}

// token hides the run of cs starting at from if it is at least min long,
// keeping at most max of it (max 0: no limit). kind indexes seen.
func (k *keyScan) token(kind, from int, cs charset, min, max int) {
	if from < k.seen[kind] {
		return
	}
	end := cs.run(k.b, from)
	k.seen[kind] = end
	if end-from < min {
		return
	}
	if max > 0 && end-from > max {
		end = from + max
	}
	k.sp = append(k.sp, span{start: from, end: end})
}

const (
	kindGitHub = iota
	kindGitHubPAT
	kindStripe
	kindVigil
	kindSlack
	kindJWT
	kindPEM
)

func scanKeys(b []byte, sp []span) []span {
	k := keyScan{b: b, sp: sp}
	k.underscores()
	k.dashes()
	k.capitalA()
	k.jwts()
	return k.sp
}

func (k *keyScan) underscores() {
	b := k.b
	for u := range positions(b, '_') {
		switch {
		case u >= 3 && b[u-3] == 'g' && b[u-2] == 'h' && bytes.IndexByte([]byte("pousr"), b[u-1]) >= 0:
			k.token(kindGitHub, u+1, alnum, 30, 0)
		case u >= 6 && string(b[u-6:u]) == "github" && bytes.HasPrefix(b[u+1:], []byte("pat_")):
			k.token(kindGitHubPAT, u+5, alnumUnder, 22, 0)
		case u >= 2 && (b[u-2] == 's' || b[u-2] == 'r') && b[u-1] == 'k' &&
			(bytes.HasPrefix(b[u+1:], []byte("live_")) || bytes.HasPrefix(b[u+1:], []byte("test_"))):
			k.token(kindStripe, u+6, alnum, 10, 0)
		case u >= 3 && string(b[u-3:u]) == "vgl":
			k.token(kindVigil, u+1, base64URL, 16, 0)
		}
	}
}

func (k *keyScan) dashes() {
	b := k.b
	for d := range positions(b, '-') {
		switch {
		case d >= 4 && string(b[d-4:d-1]) == "xox" && bytes.IndexByte([]byte("abprs"), b[d-1]) >= 0:
			k.token(kindSlack, d+1, alnumDash, 10, 0)
		case bytes.HasPrefix(b[d:], []byte("-----BEGIN ")) && d >= k.seen[kindPEM]:
			k.pem(d)
		}
	}
}

// pem hides the body of a private key block starting at d.
func (k *keyScan) pem(d int) {
	b := k.b
	head := d + len("-----BEGIN ")
	e := bytes.Index(b[head:], []byte("-----"))
	if e < 0 || e > 64 || !bytes.HasSuffix(b[head:head+e], []byte("PRIVATE KEY")) {
		return
	}
	start := head + e + 5
	end := len(b)
	if n := bytes.Index(b[start:], []byte("-----END")); n >= 0 {
		end = start + n
	}
	k.seen[kindPEM] = end
	k.sp = append(k.sp, span{start: start, end: end})
}

func (k *keyScan) capitalA() {
	b := k.b
	for a := range positions(b, 'A') {
		if a+4 > len(b) {
			return
		}
		switch string(b[a+1 : a+4]) {
		case "KIA", "SIA":
			if a+20 <= len(b) && upperNum.run(b[:a+20], a+4) == a+20 {
				k.sp = append(k.sp, span{start: a + 4, end: a + 20})
			}
		case "Iza":
			if a+39 <= len(b) && base64URL.run(b[:a+39], a+4) == a+39 {
				k.sp = append(k.sp, span{start: a + 4, end: a + 39})
			}
		}
	}
}

// jwts hides JSON Web Tokens: three base64url segments separated by dots,
// the first two starting with "eyJ" (base64 of `{"`); the signature may be
// empty (alg "none"). Up to two more segments are taken too (JWE has five),
// so a token cannot leave part of itself behind.
func (k *keyScan) jwts() {
	b := k.b
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], 'J')
		if j < 0 {
			return
		}
		s := i + j - 2
		i = s + 3
		if s < 0 || b[s] != 'e' || b[s+1] != 'y' || s < k.seen[kindJWT] {
			continue
		}
		e1 := base64URL.run(b, s)
		k.seen[kindJWT] = e1
		if e1-s < 10 || e1 >= len(b) || b[e1] != '.' || !bytes.HasPrefix(b[e1+1:], []byte("eyJ")) {
			continue
		}
		e2 := base64URL.run(b, e1+1)
		if e2-e1-1 < 10 || e2 >= len(b) || b[e2] != '.' {
			continue
		}
		end := base64URL.run(b, e2+1)
		// JWE compact tokens have five segments; take any that follow.
		for n := 3; n < 5 && end+1 < len(b) && b[end] == '.' && base64URL.has(b[end+1]); n++ {
			end = base64URL.run(b, end+1)
		}
		k.seen[kindJWT] = end
		k.sp = append(k.sp, span{start: s, end: end})
	}
}
