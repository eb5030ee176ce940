package redact

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// benchJSON returns a JSON body of about 1 KiB, with a password, a card and
// an API key if secrets is set.
func benchJSON(secrets bool) []byte {
	var b strings.Builder
	b.WriteString(`{"order":{"id":981,"created":"2025-03-01T11:59:59.873Z","currency":"EUR","total":"129.90",`)
	b.WriteString(`"customer":{"id":"c-7781","name":"Alice Example","email":"alice@example.com","phone":"+420 777 123 456"},`)
	b.WriteString(`"items":[`)
	for i := range 6 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"A-%d","title":"Item number %d, blue","qty":%d,"price":"19.90","tags":["sale","new"]}`, i, i, i+1)
	}
	b.WriteString(`],"shipping":{"street":"Main Street 1","city":"Prague","zip":"110 00","country":"CZ"},`)
	if secrets {
		b.WriteString(`"password":"hunter2","payment":{"card":"4111 1111 1111 1111","key":"` + stripeKey + `"},`)
	} else {
		b.WriteString(`"comment":"leave at the door","payment":{"method":"card","last4":"1111","ref":"p-88"},`)
	}
	b.WriteString(`"ts":1740830700250}}`)
	for b.Len() < 1024 {
		b.WriteString(" ")
	}
	return []byte(b.String())
}

func BenchmarkBody(b *testing.B) {
	for _, tt := range []struct {
		name    string
		secrets bool
		regexps bool
	}{
		{"clean", false, false},
		{"secrets", true, false},
		{"clean/regexp-only", false, true},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r := Default()
			if tt.regexps { // the same patterns through package regexp, for comparison
				r, _ = newRedactor(DefaultConfig(), false)
			}
			body := benchJSON(tt.secrets)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r.Body(body)
			}
		})
	}
}

func BenchmarkText(b *testing.B) {
	r := Default()
	msg := "login failed for user alice from 203.0.113.7: bad password (attempt 3 of 5)"
	b.ReportAllocs()
	for b.Loop() {
		r.Text(msg)
	}
}

func BenchmarkHeaders(b *testing.B) {
	r := Default()
	h := http.Header{
		"Accept":          {"text/html,application/xhtml+xml"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Authorization":   {"Bearer abc.def.ghi"},
		"Content-Type":    {"application/json"},
		"Cookie":          {"sessionid=abc; csrftoken=def"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"},
		"X-Csrftoken":     {"def"},
		"X-Request-Id":    {"req-81f2"},
		"Referer":         {"https://shop.example/cart?step=2"},
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Headers(h)
	}
}

func BenchmarkTruncate(b *testing.B) {
	body := []byte(`{"message":"` + strings.Repeat("lorem ipsum ", 200) + `","n":1,"list":["` + strings.Repeat("x", 300) + `"]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		Truncate(body, DefaultMaxBody, DefaultMaxString)
	}
}
