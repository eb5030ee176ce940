package crypt

import (
	"testing"
)

// benchRaw is a web request log of about 500 canonical bytes with one
// encrypted field, the request body.
const benchRaw = `{"@timestamp":"2026-11-23T10:00:00Z","event":{"id":"bench-00000042","action":"http_request","category":"web","outcome":"success"},` +
	`"source":{"ip":"203.0.113.42","port":51234},"user":{"name":"user42","id":"42"},"http":{"request":{"method":"POST","id":"req-00000042","body":{"content":"{\"sku\":\"A-1\",\"qty\":2,\"card\":\"4111111111111111\"}"}},"response":{"status_code":201}},` +
	`"url":{"path":"/api/v1/orders","query":"ref=home"},"user_agent":{"original":"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},` +
	`"service":{"name":"shop"},"message":"POST /api/v1/orders answered 201 in 12 ms"}`

func benchSetup(b *testing.B) (*Encrypter, []byte, string) {
	enc := newEncrypter(b, openRing(b, b.TempDir(), testMaster(1)))
	ev := parse(b, benchRaw)
	return enc, ev.Canonical, ev.ID
}

func BenchmarkEncryptEvent(b *testing.B) {
	enc, c, id := benchSetup(b)
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.EncryptEvent(c, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptEventNone is an event without any selected field: the
// cost of the scan alone.
func BenchmarkEncryptEventNone(b *testing.B) {
	enc, _, _ := benchSetup(b)
	c := parse(b, `{"@timestamp":"2026-11-23T10:00:00Z","event":{"id":"bench-00000042","action":"authn_login_fail","category":"authentication","outcome":"failure"},`+
		`"source":{"ip":"203.0.113.42","port":51234},"user":{"name":"user42"},"http":{"request":{"method":"POST","id":"req-00000042"},"response":{"status_code":401}},`+
		`"url":{"path":"/accounts/login/"},"user_agent":{"original":"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},"service":{"name":"shop"},"message":"login failed for user42: bad password"}`).Canonical
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.EncryptEvent(c, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptEvent(b *testing.B) {
	enc, c, id := benchSetup(b)
	sealed, err := enc.EncryptEvent(c, id)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(sealed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.DecryptEvent(sealed, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptEventParallel is EncryptEvent from every core at once,
// as ingest handlers call it.
func BenchmarkEncryptEventParallel(b *testing.B) {
	enc, c, id := benchSetup(b)
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := enc.EncryptEvent(c, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
