// Package email sends alerts by SMTP: STARTTLS whenever the server offers it
// (and, with RequireTLS, refusing servers that do not), or TLS from the first
// byte (ImplicitTLS, port 465 style); AUTH PLAIN or LOGIN; one message per
// notification, plain text with an HTML alternative.
//
// It uses the standard library's net/smtp client, which is frozen but
// complete for this job (EHLO, STARTTLS, AUTH, dot-stuffed DATA) and refuses
// PLAIN credentials over an unencrypted connection to anything but
// localhost; LOGIN, which net/smtp lacks, is added here with the same rule.
package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
)

// DefaultTimeout bounds one delivery (dial to QUIT) when none is set.
const DefaultTimeout = 30 * time.Second

// MaxSubjectBytes bounds the rendered subject.
const MaxSubjectBytes = 250

// Options configure a Notifier.
type Options struct {
	Smarthost string // host:port of the SMTP server
	Hello     string // name sent with EHLO; "": "localhost"
	From      string // RFC 5322 address, "Vigil <vigil@example.com>"
	To        []string
	// Username and Password enable AUTH; AuthMechanism is "PLAIN",
	// "LOGIN" or "" (PLAIN when offered, else LOGIN).
	Username, Password string
	AuthMechanism      string
	// RequireTLS refuses servers that do not offer STARTTLS. Without it
	// STARTTLS is still used whenever offered.
	RequireTLS bool
	// ImplicitTLS starts TLS before SMTP (port 465).
	ImplicitTLS bool
	// TLS verifies the server (nil: system roots, server name from
	// Smarthost).
	TLS *tls.Config
	// Templates; nil Subject and Text use the defaults. HTML nil with
	// NoHTML false uses DefaultHTML; NoHTML sends plain text only.
	Subject, Text, HTML *message.Template
	NoHTML              bool
	// Headers are added to the message (validated by the caller: no
	// CR or LF, no header Vigil sets itself).
	Headers     map[string]string
	Receiver    string
	ExternalURL string
	Timeout     time.Duration
	Now         func() time.Time
}

// Notifier sends alerts to one set of recipients through one SMTP server.
type Notifier struct {
	o    Options
	host string
	from *mail.Address
	to   []*mail.Address
}

// New checks the options and returns a Notifier.
func New(o Options) (*Notifier, error) {
	host, _, err := net.SplitHostPort(o.Smarthost)
	if err != nil || host == "" {
		return nil, fmt.Errorf("email: smarthost %q is not host:port", o.Smarthost)
	}
	n := &Notifier{host: host}
	if n.from, err = mail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("email: from %q: %w", o.From, err)
	}
	if len(o.To) == 0 {
		return nil, errors.New("email: no recipient")
	}
	for _, t := range o.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("email: to %q: %w", t, err)
		}
		n.to = append(n.to, a)
	}
	switch strings.ToUpper(o.AuthMechanism) {
	case "", "PLAIN", "LOGIN":
		o.AuthMechanism = strings.ToUpper(o.AuthMechanism)
	default:
		return nil, fmt.Errorf("email: auth mechanism %q is not PLAIN or LOGIN", o.AuthMechanism)
	}
	if o.Hello == "" {
		o.Hello = "localhost"
	}
	if o.Subject == nil {
		o.Subject = message.MustText("email.subject", DefaultSubject)
	}
	if o.Text == nil {
		o.Text = message.MustText("email.text", DefaultText)
	}
	if o.HTML == nil && !o.NoHTML {
		o.HTML = message.MustHTML("email.html", DefaultHTML)
	}
	if o.NoHTML {
		o.HTML = nil
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLS != nil {
		tc = o.TLS.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	o.TLS = tc
	n.o = o
	return n, nil
}

// configError is a failure that retrying cannot fix.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// Notify sends one message for the alerts. SMTP replies 4xx and network
// errors are worth a retry; 5xx replies (a refused recipient, bad
// credentials), certificates that do not verify and a server without
// STARTTLS when RequireTLS is set are not.
func (n *Notifier) Notify(ctx context.Context, alerts []alert.Alert) (bool, error) {
	if len(alerts) == 0 {
		return false, nil
	}
	msg, err := n.Message(alerts)
	if err != nil {
		return false, err
	}
	if err := n.send(ctx, msg); err != nil {
		if ctx.Err() != nil {
			return true, fmt.Errorf("email: %w (%w)", err, ctx.Err())
		}
		return Retryable(err), fmt.Errorf("email: %w", err)
	}
	return false, nil
}

// Retryable tells whether a delivery error is worth a retry.
func Retryable(err error) bool {
	var (
		te *textproto.Error
		ce configError
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &te):
		return te.Code >= 400 && te.Code < 500
	case errors.As(err, &ce), errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return false
	}
	return true
}

func (n *Notifier) send(ctx context.Context, msg []byte) error {
	d := net.Dialer{Timeout: n.o.Timeout}
	conn, err := d.DialContext(ctx, "tcp", n.o.Smarthost)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", n.o.Smarthost, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(n.o.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	// Cancelling ctx interrupts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if n.o.ImplicitTLS {
		tc := tls.Client(conn, n.o.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake with %s: %w", n.o.Smarthost, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, n.host)
	if err != nil {
		return fmt.Errorf("greeting from %s: %w", n.o.Smarthost, err)
	}
	defer c.Close()
	if err := c.Hello(n.o.Hello); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if !n.o.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(n.o.TLS); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		} else if n.o.RequireTLS {
			return configError{fmt.Errorf("%s does not offer STARTTLS and require_tls is set", n.o.Smarthost)}
		}
	}
	if n.o.Username != "" {
		if err := n.auth(c); err != nil {
			return err
		}
	}
	if err := c.Mail(n.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, t := range n.to {
		if err := c.Rcpt(t.Address); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", t.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of message: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func (n *Notifier) auth(c *smtp.Client) error {
	ok, offered := c.Extension("AUTH")
	if !ok {
		return configError{fmt.Errorf("%s does not offer AUTH but a username is configured", n.o.Smarthost)}
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	mech := n.o.AuthMechanism
	switch {
	case mech != "" && !slices.Contains(mechs, mech):
		return configError{fmt.Errorf("%s does not offer AUTH %s (offers %s)", n.o.Smarthost, mech, offered)}
	case mech == "" && slices.Contains(mechs, "PLAIN"):
		mech = "PLAIN"
	case mech == "" && slices.Contains(mechs, "LOGIN"):
		mech = "LOGIN"
	case mech == "":
		return configError{fmt.Errorf("%s offers neither AUTH PLAIN nor LOGIN (offers %s)", n.o.Smarthost, offered)}
	}
	var a smtp.Auth
	if mech == "PLAIN" {
		a = smtp.PlainAuth("", n.o.Username, n.o.Password, n.host)
	} else {
		a = &loginAuth{user: n.o.Username, pass: n.o.Password, host: n.host}
	}
	if err := c.Auth(a); err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			// Refused on our side (unencrypted connection, wrong host).
			return configError{fmt.Errorf("AUTH %s: %w", mech, err)}
		}
		return fmt.Errorf("AUTH %s: %w", mech, err)
	}
	return nil
}

// loginAuth is the LOGIN SASL mechanism: the server prompts for the user
// name, then the password.
type loginAuth struct {
	user, pass, host string
	step             int
}

func (a *loginAuth) Start(s *smtp.ServerInfo) (string, []byte, error) {
	if !s.TLS && !isLocalhost(s.Name) {
		return "", nil, errors.New("refusing to send credentials over an unencrypted connection")
	}
	if s.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	prompt := strings.ToLower(strings.TrimSpace(string(challenge)))
	switch {
	case strings.HasPrefix(prompt, "user"):
		return []byte(a.user), nil
	case strings.HasPrefix(prompt, "pass"):
		return []byte(a.pass), nil
	case a.step == 1:
		return []byte(a.user), nil
	case a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN challenge %q", message.Truncate(prompt, 40))
}

func isLocalhost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// Message renders the complete RFC 5322 message for alerts, CRLF line
// endings, ready for DATA.
func (n *Notifier) Message(alerts []alert.Alert) ([]byte, error) {
	d := message.NewData(n.o.Receiver, n.o.ExternalURL, alerts)
	subject, err := n.o.Subject.Execute(d)
	if err != nil {
		return nil, fmt.Errorf("email: subject template: %w", err)
	}
	text, err := n.o.Text.Execute(d)
	if err != nil {
		return nil, fmt.Errorf("email: text template: %w", err)
	}
	var html string
	if n.o.HTML != nil {
		if html, err = n.o.HTML.Execute(d); err != nil {
			return nil, fmt.Errorf("email: html template: %w", err)
		}
	}
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(foldHeader(k, v)) }
	hdr("From", n.from.String())
	to := make([]string, len(n.to))
	for i, a := range n.to {
		to[i] = a.String()
	}
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", headerText(subject, MaxSubjectBytes)))
	hdr("Date", n.o.Now().Format(time.RFC1123Z))
	hdr("Message-ID", n.messageID())
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	hdr("X-Vigil-Status", d.Status)
	for _, k := range slices.Sorted(maps.Keys(n.o.Headers)) {
		hdr(textproto.CanonicalMIMEHeaderKey(k), mime.QEncoding.Encode("utf-8", headerText(n.o.Headers[k], 900)))
	}
	if html == "" {
		hdr("Content-Type", "text/plain; charset=utf-8")
		hdr("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	hdr("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")
	for _, part := range []struct{ ctype, body string }{{"text/plain; charset=utf-8", text}, {"text/html; charset=utf-8", html}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("email: build message: %w", err)
		}
		if err := writeQP(w, part.body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("email: build message: %w", err)
	}
	return b.Bytes(), nil
}

// writeQP writes s quoted-printable with CRLF line ends.
func writeQP(w io.Writer, s string) error {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, s); err != nil {
		return fmt.Errorf("email: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("email: encode body: %w", err)
	}
	return nil
}

// foldHeader returns "Name: value\r\n", folded at spaces (RFC 5322
// section 2.2.3) so that lines stay within 78 characters where the value
// has room to break. Spaces between encoded words are ignored when decoding,
// so folding there changes nothing.
func foldHeader(name, value string) string {
	const limit = 78
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	line := len(name) + 1
	for i, word := range strings.Split(value, " ") {
		if line+1+len(word) > limit && (i > 0 || len(word) <= limit-1) {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(" ")
		b.WriteString(word)
		line += 1 + len(word)
	}
	b.WriteString("\r\n")
	return b.String()
}

// headerText makes s safe for one header line: control characters (CR and
// LF above all, which would start new headers) become spaces, runs of
// spaces collapse, and the result is cut to n bytes.
func headerText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return message.Truncate(strings.Join(strings.Fields(s), " "), n)
}

// messageID returns a new unique Message-ID in the sender's domain.
func (n *Notifier) messageID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	domain := "vigil.invalid"
	if _, d, ok := strings.Cut(n.from.Address, "@"); ok && d != "" && !strings.ContainsAny(d, "<>[] \t") {
		domain = d
	}
	return fmt.Sprintf("<%s.%d@%s>", hex.EncodeToString(r[:]), n.o.Now().UnixNano(), domain)
}
