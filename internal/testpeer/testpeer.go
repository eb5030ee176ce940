// Package testpeer starts real peers for tests on 127.0.0.1: a Prometheus
// Alertmanager (Debian's prometheus-alertmanager) and an SMTP server
// (github.com/emersion/go-smtp) that keeps the mail it receives. Each stops
// when its test ends. Only tests import this package.
package testpeer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Alertmanager runs a throwaway Alertmanager on a free port of 127.0.0.1
// with a route that notifies nobody, and returns its base URL once it is
// ready. The test fails, saying how to install it, when the binary is
// missing.
func Alertmanager(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatalf("prometheus-alertmanager is not installed; this test runs a real Alertmanager 0.25: apt-get install prometheus-alertmanager")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	conf := "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("alertmanager exited before it was ready:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready at %s after 20s:\n%s", base, logs.String())
		}
	}
}

// AlertmanagerAlert is the part of an alert of Alertmanager's
// GET /api/v2/alerts that tests read.
type AlertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// AlertmanagerAlerts returns the alerts Alertmanager at base holds, through
// its own API.
func AlertmanagerAlerts(t testing.TB, base string) []AlertmanagerAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/alerts: %d %s", resp.StatusCode, b)
	}
	var as []AlertmanagerAlert
	if err := json.Unmarshal(b, &as); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return as
}

// Mail is one message an SMTP server received.
type Mail struct {
	From string
	To   []string
	Data []byte // the message as sent: headers and body
}

// SMTPServer is a plain SMTP server (no TLS, no authentication) on
// 127.0.0.1 that keeps every message.
type SMTPServer struct {
	Addr string // host:port

	mu   sync.Mutex
	mail []Mail
}

// SMTP starts an SMTPServer that stops when the test ends.
func SMTP(t testing.TB) *SMTPServer {
	t.Helper()
	ms := &SMTPServer{}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &smtpSession{ms: ms}, nil
	}))
	s.Domain = "mail.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.MaxMessageBytes = 4 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() { s.Serve(l); close(done) }()
	t.Cleanup(func() {
		s.Close()
		l.Close()
		<-done
	})
	return ms
}

// Messages returns the messages received so far.
func (ms *SMTPServer) Messages() []Mail {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]Mail(nil), ms.mail...)
}

type smtpSession struct {
	ms  *SMTPServer
	cur Mail
}

func (s *smtpSession) Mail(from string, _ *gosmtp.MailOptions) error {
	s.cur = Mail{From: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.ms.mu.Lock()
	s.ms.mail = append(s.ms.mail, s.cur)
	s.ms.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = Mail{} }
func (s *smtpSession) Logout() error { return nil }

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the writes of a child process's
// output copiers and the reads of the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
