package email

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))

const (
	user = "vigil"
	pass = "correct horse battery staple"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// received is one message as the server got it.
type received struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	authMech string
}

// mailServer is a real SMTP server (go-smtp) on 127.0.0.1 that records
// messages and answers as scripted.
type mailServer struct {
	addr  string
	mu    sync.Mutex
	msgs  []received
	mechs []string // offered AUTH mechanisms; nil: no AUTH
	// scripted failures
	rcptErr, dataErr *gosmtp.SMTPError
	block            chan struct{} // when set, DATA signals entered and waits for it
	entered          chan struct{}
}

type serverOpts struct {
	starttls bool // offer STARTTLS
	implicit bool // TLS from the first byte
	mechs    []string
	rcptErr  *gosmtp.SMTPError
	dataErr  *gosmtp.SMTPError
	block    chan struct{}
}

func startServer(t *testing.T, cert tls.Certificate, o serverOpts) *mailServer {
	t.Helper()
	ms := &mailServer{mechs: o.mechs, rcptErr: o.rcptErr, dataErr: o.dataErr, block: o.block, entered: make(chan struct{}, 1)}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{ms: ms, c: c}, nil
	}))
	s.Domain = "mail.test"
	s.AllowInsecureAuth = true // PLAIN over a plain connection to 127.0.0.1, as net/smtp permits
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.MaxMessageBytes = 4 << 20
	s.ErrorLog = discardLog{}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}}
	if o.starttls {
		s.TLSConfig = tc
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicit {
		l = tls.NewListener(l, tc)
	}
	ms.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { s.Serve(l); close(done) }()
	t.Cleanup(func() {
		s.Close()
		l.Close() // Serve may not have registered l with s yet
		<-done
	})
	return ms
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

type session struct {
	ms   *mailServer
	c    *gosmtp.Conn
	cur  received
	mech string
}

func (s *session) AuthMechanisms() []string { return s.ms.mechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(u, p string) error {
		if u != user || p != pass {
			return gosmtp.ErrAuthFailed // 535 5.7.8, as real servers answer
		}
		s.mech = mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, u, p string) error { return check(u, p) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.ms.mechs != nil && s.mech == "" {
		return gosmtp.ErrAuthRequired
	}
	s.cur = received{from: from, authMech: s.mech}
	_, s.cur.tls = s.c.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.ms.rcptErr != nil {
		return s.ms.rcptErr
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.ms.block != nil {
		s.ms.entered <- struct{}{}
		<-s.ms.block
	}
	if s.ms.dataErr != nil {
		return s.ms.dataErr
	}
	s.cur.data = b
	s.ms.mu.Lock()
	s.ms.msgs = append(s.ms.msgs, s.cur)
	s.ms.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

func (ms *mailServer) messages() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.msgs...)
}

// loginServer is the server side of AUTH LOGIN (go-sasl has only the
// client side).
type loginServer struct {
	check    func(u, p string) error
	step     int
	username string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // initial response carries the user name
			l.username = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.username = string(resp)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.username, string(resp))
	}
	return nil, false, errors.New("unexpected response")
}

func TestDeliver(t *testing.T) {
	cert, pool := selfSigned(t)
	trusted := &tls.Config{RootCAs: pool}
	cases := []struct {
		name     string
		srv      serverOpts
		o        Options
		want     received // tls and authMech of the delivered message
		retry    bool
		wantErr  string // "" means delivered
		noServer bool
	}{
		{name: "STARTTLS with AUTH PLAIN", srv: serverOpts{starttls: true, mechs: []string{"PLAIN", "LOGIN"}},
			o: Options{Username: user, Password: pass, TLS: trusted}, want: received{tls: true, authMech: "PLAIN"}},
		{name: "STARTTLS with AUTH LOGIN chosen", srv: serverOpts{starttls: true, mechs: []string{"PLAIN", "LOGIN"}},
			o: Options{Username: user, Password: pass, AuthMechanism: "login", TLS: trusted}, want: received{tls: true, authMech: "LOGIN"}},
		{name: "AUTH LOGIN when only LOGIN is offered", srv: serverOpts{starttls: true, mechs: []string{"LOGIN"}},
			o: Options{Username: user, Password: pass, TLS: trusted}, want: received{tls: true, authMech: "LOGIN"}},
		{name: "implicit TLS", srv: serverOpts{implicit: true, mechs: []string{"PLAIN"}},
			o: Options{Username: user, Password: pass, ImplicitTLS: true, TLS: trusted}, want: received{tls: true, authMech: "PLAIN"}},
		{name: "STARTTLS used whenever offered", srv: serverOpts{starttls: true},
			o: Options{TLS: trusted}, want: received{tls: true}},
		{name: "plain when STARTTLS is not offered", srv: serverOpts{},
			o: Options{}, want: received{tls: false}},
		{name: "require_tls refuses a server without STARTTLS", srv: serverOpts{},
			o: Options{RequireTLS: true}, wantErr: "does not offer STARTTLS"},
		{name: "wrong password is not retried", srv: serverOpts{starttls: true, mechs: []string{"PLAIN"}},
			o: Options{Username: user, Password: "wrong", TLS: trusted}, wantErr: "535"},
		{name: "wrong password with LOGIN is not retried", srv: serverOpts{starttls: true, mechs: []string{"LOGIN"}},
			o: Options{Username: user, Password: "wrong", TLS: trusted}, wantErr: "535"},
		{name: "untrusted certificate is not retried", srv: serverOpts{starttls: true},
			o: Options{}, wantErr: "certificate"},
		{name: "untrusted certificate with implicit TLS", srv: serverOpts{implicit: true},
			o: Options{ImplicitTLS: true}, wantErr: "certificate"},
		{name: "insecure_skip_verify accepts a self-signed certificate", srv: serverOpts{starttls: true},
			o: Options{TLS: &tls.Config{InsecureSkipVerify: true}}, want: received{tls: true}},
		{name: "server without AUTH but a username configured", srv: serverOpts{starttls: true},
			o: Options{Username: user, Password: pass, TLS: trusted}, wantErr: "does not offer AUTH"},
		{name: "mechanism not offered", srv: serverOpts{starttls: true, mechs: []string{"PLAIN"}},
			o: Options{Username: user, Password: pass, AuthMechanism: "LOGIN", TLS: trusted}, wantErr: "does not offer AUTH LOGIN"},
		{name: "451 on RCPT is retried", srv: serverOpts{rcptErr: &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"}},
			o: Options{}, retry: true, wantErr: "451"},
		{name: "550 on RCPT is not retried", srv: serverOpts{rcptErr: &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
			o: Options{}, wantErr: "550"},
		{name: "452 after DATA is retried", srv: serverOpts{dataErr: &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1}, Message: "disk full"}},
			o: Options{}, retry: true, wantErr: "452"},
		{name: "554 after DATA is not retried", srv: serverOpts{dataErr: &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "spam"}},
			o: Options{}, wantErr: "554"},
		{name: "connection refused is retried", noServer: true, o: Options{}, retry: true, wantErr: "connect"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ms *mailServer
			if c.noServer {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				ms = &mailServer{addr: l.Addr().String()}
				l.Close()
			} else {
				ms = startServer(t, cert, c.srv)
			}
			o := c.o
			o.Smarthost = ms.addr
			o.From = "Vigil <vigil@example.com>"
			o.To = []string{"sec@example.com", "Oncall <oncall@example.com>"}
			o.Timeout = 5 * time.Second
			n, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), message.SampleAlerts())
			if retry != c.retry {
				t.Errorf("retry %v, want %v (err %v)", retry, c.retry, err)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), pass) {
					t.Errorf("error shows the password: %v", err)
				}
				if !c.noServer && len(ms.messages()) != 0 {
					t.Errorf("message delivered despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ms.messages()
			if len(got) != 1 {
				t.Fatalf("%d messages delivered", len(got))
			}
			m := got[0]
			if m.from != "vigil@example.com" || strings.Join(m.to, ",") != "sec@example.com,oncall@example.com" || m.tls != c.want.tls || m.authMech != c.want.authMech {
				t.Errorf("delivered from %s to %v tls %v auth %q; want tls %v auth %q", m.from, m.to, m.tls, m.authMech, c.want.tls, c.want.authMech)
			}
			if _, err := mail.ReadMessage(bytes.NewReader(m.data)); err != nil {
				t.Errorf("delivered message does not parse: %v", err)
			}
		})
	}
}

func TestCancelInterruptsDelivery(t *testing.T) {
	cert, _ := selfSigned(t)
	block := make(chan struct{})
	ms := startServer(t, cert, serverOpts{block: block})
	defer close(block)
	n, err := New(Options{Smarthost: ms.addr, From: "vigil@example.com", To: []string{"a@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var retry bool
	go func() {
		var err error
		retry, err = n.Notify(ctx, message.SampleAlerts())
		done <- err
	}()
	// Cancel while the client waits for the server's answer to DATA: the
	// blocked read must end.
	<-ms.entered
	cancel()
	if err := <-done; err == nil || !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled delivery: retry %v err %v", retry, err)
	}
}

// parse splits a delivered message into its headers and its decoded text
// and HTML parts.
func parse(t *testing.T, data []byte) (*mail.Message, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	decode := func(r io.Reader, cte string) string {
		if cte != "quoted-printable" {
			t.Errorf("Content-Transfer-Encoding %q", cte)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(r))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if mt == "text/plain" {
		return msg, decode(msg.Body, msg.Header.Get("Content-Transfer-Encoding")), ""
	}
	if mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var text, html string
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body := decode(p, p.Header.Get("Content-Transfer-Encoding"))
		switch ct := p.Header.Get("Content-Type"); {
		case i == 0 && ct == "text/plain; charset=utf-8":
			text = body
		case i == 1 && ct == "text/html; charset=utf-8":
			html = body
		default:
			t.Errorf("part %d has Content-Type %q", i, ct)
		}
	}
	return msg, text, html
}

func deliver(t *testing.T, o Options, alerts []alert.Alert) received {
	t.Helper()
	cert, _ := selfSigned(t)
	ms := startServer(t, cert, serverOpts{})
	o.Smarthost = ms.addr
	if o.From == "" {
		o.From = `"Vigil Alerts" <vigil@example.com>`
	}
	if o.To == nil {
		o.To = []string{"sec@example.com", "Ops Team <ops@example.com>"}
	}
	o.Now = func() time.Time { return now }
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
	got := ms.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	return got[0]
}

func TestMessageHeadersAndBody(t *testing.T) {
	m := deliver(t, Options{Receiver: "security", ExternalURL: "https://vigil.test", Headers: map[string]string{"x-team": "blue"}}, message.SampleAlerts())
	msg, text, html := parse(t, m.data)
	h := msg.Header
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := h.AddressList("From")
	to, _ := h.AddressList("To")
	date, err := h.Date()
	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{"Subject", subject == "[FIRING:2] BruteForceLogin", subject},
		{"From", len(from) == 1 && from[0].Address == "vigil@example.com" && from[0].Name == "Vigil Alerts", from},
		{"To", len(to) == 2 && to[0].Address == "sec@example.com" && to[1].Name == "Ops Team", to},
		{"Date", err == nil && date.Equal(now), h.Get("Date")},
		{"Message-ID", strings.HasPrefix(h.Get("Message-ID"), "<") && strings.HasSuffix(h.Get("Message-ID"), "@example.com>"), h.Get("Message-ID")},
		{"MIME-Version", h.Get("MIME-Version") == "1.0", h.Get("MIME-Version")},
		{"Auto-Submitted", h.Get("Auto-Submitted") == "auto-generated", h.Get("Auto-Submitted")},
		{"X-Team", h.Get("X-Team") == "blue", h.Get("X-Team")},
		{"no Bcc", h.Get("Bcc") == "", h.Get("Bcc")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("header %s: %v", c.name, c.got)
		}
	}
	for _, s := range []string{"2 alerts firing (receiver security).", "== BruteForceLogin [FIRING] severity critical", "42 failed logins from 203.0.113.7 in 1m",
		"Failed logins for 9 user names", "source.ip = 203.0.113.7", "Evidence: events 1201, 1207, 1288",
		"Details:  https://vigil.example.com/alerts/5f2c1a9e0b7d4c33", "Runbook:  https://wiki.example.com/runbooks/brute-force",
		"Details:  https://vigil.test", "Started:  2026-01-02T03:04:05Z", "Sent by Vigil (https://vigil.test)."} {
		if !strings.Contains(text, s) {
			t.Errorf("text part lacks %q:\n%s", s, text)
		}
	}
	if n := strings.Count(text, "Failed logins for 9 user names"); n != 1 {
		t.Errorf("description printed %d times", n)
	}
	for _, s := range []string{"<strong style=\"color: #a30200;\">2 alerts firing</strong>", `<a href="https://vigil.example.com/alerts/5f2c1a9e0b7d4c33">Open in Vigil</a>`,
		"<code>203.0.113.7</code>", "border-left: 6px solid #a30200", "border-left: 6px solid #daa038"} {
		if !strings.Contains(html, s) {
			t.Errorf("HTML part lacks %q:\n%s", s, html)
		}
	}
	// Another message gets another Message-ID.
	m2 := deliver(t, Options{}, message.SampleAlerts())
	msg2, _, _ := parse(t, m2.data)
	if msg2.Header.Get("Message-ID") == h.Get("Message-ID") {
		t.Error("Message-ID repeated")
	}
}

func TestMessageFromHostileAlert(t *testing.T) {
	as := message.SampleAlerts()[:1]
	as[0].Labels["user.name"] = `<img src=x onerror=alert(1)>`
	as[0].Labels["alertname"] = "Bad\r\nBcc: victim@example.org\r\nX: ü"
	as[0].GeneratorURL = "javascript:alert(1)"
	m := deliver(t, Options{}, as)
	msg, text, html := parse(t, m.data)
	if msg.Header.Get("Bcc") != "" || msg.Header.Get("X") != "" {
		t.Fatalf("header injected through the subject: %v", msg.Header)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "[FIRING:1] Bad Bcc: victim@example.org X: ü (critical)" {
		t.Errorf("subject %q (%v)", subject, err)
	}
	if strings.Contains(html, "<img") || strings.Contains(html, "javascript:") || !strings.Contains(html, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("HTML not escaped:\n%s", html)
	}
	if !strings.Contains(text, "user.name = <img src=x onerror=alert(1)>") {
		t.Errorf("text part should carry the value as is:\n%s", text)
	}
}

func TestMessageVariants(t *testing.T) {
	resolved := message.SampleAlerts()
	for i := range resolved {
		resolved[i].Status = alert.StateResolved
		resolved[i].EndsAt = resolved[i].StartsAt.Add(time.Hour)
	}
	cases := []struct {
		name        string
		o           Options
		alerts      []alert.Alert
		subject     string
		text        string // exact when exact is set, else a substring
		exact, html bool
	}{
		{"resolved", Options{}, resolved, "[RESOLVED] BruteForceLogin", "2 alerts resolved", false, true},
		{"text only", Options{NoHTML: true}, message.SampleAlerts(), "[FIRING:2] BruteForceLogin", "== BruteForceLogin", false, false},
		{"long subject and many recipients are folded", Options{
			Subject: message.MustText("s", strings.Repeat("word ", 30)+"ünïcode "+strings.Repeat("wörd ", 10)),
			To:      []string{"a@example.com", "Bé Person <b@example.com>", "c@example.com", "d@example.com", "e@example.com", "f@example.com"},
		}, message.SampleAlerts(), strings.TrimSpace(strings.Repeat("word ", 30) + "ünïcode " + strings.Repeat("wörd ", 10)), "== BruteForceLogin", false, true},
		{"custom templates, dots and long lines survive", Options{
			Subject: message.MustText("s", `Vigil: {{ .NumFiring }} × {{ .CommonLabels.alertname }}`),
			Text:    message.MustText("t", "line one\n.\n..two\n"+strings.Repeat("long ", 60)+"\nend"),
			NoHTML:  true,
		}, message.SampleAlerts(), "Vigil: 2 × BruteForceLogin", "line one\r\n.\r\n..two\r\n" + strings.Repeat("long ", 60) + "\r\nend\r\n", true, false}, // SMTP ends a message with a line break
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := deliver(t, c.o, c.alerts)
			for _, line := range strings.Split(string(m.data), "\r\n") {
				if len(line) > 78 && !strings.HasPrefix(line, "Content-Type: multipart") {
					t.Errorf("line of %d characters: %q", len(line), line)
				}
			}
			msg, text, html := parse(t, m.data)
			subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if subject != c.subject {
				t.Errorf("subject %q, want %q", subject, c.subject)
			}
			if c.exact && text != c.text || !c.exact && !strings.Contains(text, c.text) {
				t.Errorf("text %q, want %q", text, c.text)
			}
			if to, err := msg.Header.AddressList("To"); err != nil || len(to) != max(len(c.o.To), 2) {
				t.Errorf("To: %v %v", to, err)
			}
			if (html != "") != c.html {
				t.Errorf("HTML part present %v, want %v", html != "", c.html)
			}
		})
	}
}

func TestLoginAuthRefusesPlaintextToRemoteHost(t *testing.T) {
	a := &loginAuth{user: "u", pass: "p", host: "mail.example.com"}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: false, Auth: []string{"LOGIN"}}); err == nil {
		t.Error("LOGIN would send credentials in clear to a remote host")
	}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "other.example.com", TLS: true, Auth: []string{"LOGIN"}}); err == nil {
		t.Error("LOGIN accepted another host name")
	}
	if mech, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: true}); err != nil || mech != "LOGIN" {
		t.Errorf("over TLS: %q %v", mech, err)
	}
	for _, step := range []struct{ challenge, want string }{{"Username:", "u"}, {"Password:", "p"}} {
		got, err := a.Next([]byte(step.challenge), true)
		if err != nil || string(got) != step.want {
			t.Errorf("Next(%q) = %q, %v", step.challenge, got, err)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	good := Options{Smarthost: "127.0.0.1:25", From: "a@example.com", To: []string{"b@example.com"}}
	cases := map[string]func(*Options){
		"smarthost without port": func(o *Options) { o.Smarthost = "mail.example.com" },
		"bad from":               func(o *Options) { o.From = "not an address" },
		"no recipient":           func(o *Options) { o.To = nil },
		"bad recipient":          func(o *Options) { o.To = []string{"x"} },
		"unknown mechanism":      func(o *Options) { o.AuthMechanism = "CRAM-MD5" },
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range cases {
		o := good
		mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
