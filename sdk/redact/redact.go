package redact

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"unsafe"
)

// DefaultReplacement is what hidden values are replaced with, as in
// django-security-logger.
const DefaultReplacement = "[Filtered]"

// Limits used by django-security-logger for logged bodies; see Truncate.
const (
	DefaultMaxBody   = 1000 // characters of a logged body
	DefaultMaxString = 250  // characters of each string of a long JSON body
)

// The default body patterns. Each is a regular expression whose groups are
// the values to hide. New recognises these exact strings and runs a
// hand-written scanner for each instead of the regular expression: the
// scanner finds the same values, runs without allocating when there is
// nothing to hide, and also catches matches that overlap (see the package
// documentation).
const (
	// JSON keys containing "password" ("password", "new_password",
	// "Password1"): the string value.
	JSONPasswordPattern = `(?i)"[^"]*password[^"]*"\s*:\s*"((?:\\.|[^"\\])*)`
	// JSON keys containing "access_key" (django-security-logger's
	// "access_key"; also "aws_access_key_id").
	JSONAccessKeyPattern = `(?i)"[^"]*access_key[^"]*"\s*:\s*"((?:\\.|[^"\\])*)`
	// JSON keys containing "secret", "token", "api_key" or "apikey"
	// ("client_secret", "access_token", "refresh_token"). Not in
	// django-security-logger; added because OAuth and API responses carry
	// their secrets under these names.
	JSONSecretPattern = `(?i)"[^"]*(?:secret|token|api_?key)[^"]*"\s*:\s*"((?:\\.|[^"\\])*)`
	// XML elements whose name contains "password": the text up to the next
	// tag.
	XMLPasswordPattern = `(?i)<[\w:.-]*password[\w:.-]*(?:\s[^<>]*)?>([^<]*)`
	// URL-encoded form fields whose name contains "password" ("password",
	// "password1", "user%5Bpassword%5D"): the value up to the next "&" or
	// line break.
	FormPasswordPattern = `(?i)password[\w.%\[\]-]*=([^&\r\n]*)`
	// Django's CSRF form field.
	FormCSRFPattern = `(?i)csrfmiddlewaretoken[\w.%\[\]-]*=([^&\r\n]*)`
	// multipart/form-data parts whose field name contains "password": the
	// first line of the part's content.
	MultipartPasswordPattern = `(?i)content-disposition:[^\r\n]*form-data[^\r\n]*\bname="[^"\r\n]*password[^"\r\n]*"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)`
)

// Config says what to hide. The zero Config hides nothing; start from
// DefaultConfig and change what you need.
type Config struct {
	BodyPatterns   []string // regular expressions; if a pattern has groups only the groups are replaced
	HeaderPatterns []string // matched against the whole header name, case-insensitive
	QueryPatterns  []string // matched against the whole query parameter name, case-insensitive
	Replacement    string   // "" means DefaultReplacement
	CardNumbers    bool     // hide Luhn-valid card numbers in bodies and text
	APIKeys        bool     // hide well-known API key / token formats in bodies and text
}

// DefaultConfig returns django-security-logger's default patterns, a few
// additions (noted on each pattern), and card numbers and API keys hidden.
func DefaultConfig() Config {
	return Config{
		BodyPatterns: []string{
			JSONPasswordPattern,
			XMLPasswordPattern,
			FormPasswordPattern,
			FormCSRFPattern,
			MultipartPasswordPattern,
			JSONAccessKeyPattern,
			JSONSecretPattern,
		},
		HeaderPatterns: []string{
			"Authorization",
			"X_Authorization",
			"X-Authorization",
			"Proxy-Authorization",
			"Cookie",
			"Set-Cookie",
			".*token.*",
			".*secret.*",
			".*password.*",
			".*api[-_]?key.*",
		},
		QueryPatterns: []string{
			".*token.*",
			".*password.*",
			".*secret.*",
			".*api[-_]?key.*",
			".*signature.*",
		},
		Replacement: DefaultReplacement,
		CardNumbers: true,
		APIKeys:     true,
	}
}

// Redactor hides sensitive data. It is safe for concurrent use.
type Redactor struct {
	repl    string
	builtin builtins         // default body patterns, run by scanners
	custom  []*regexp.Regexp // other body patterns
	prefix  [][]byte         // literal prefix of each custom pattern, for a pre-check
	headers nameMatcher      // sensitive header names
	queries nameMatcher      // sensitive query parameter names
	cards   bool             // hide card numbers
	keys    bool             // hide API keys
}

// builtins says which default body patterns are on.
type builtins struct {
	jsonKeys  wordSet // words a JSON key must contain
	formKeys  wordSet // words a form field name must contain
	xml       bool
	multipart bool
}

// New checks c and returns a Redactor for it. A pattern that does not
// compile is an error naming the pattern.
func New(c Config) (*Redactor, error) {
	return newRedactor(c, true)
}

func newRedactor(c Config, useBuiltins bool) (*Redactor, error) {
	r := &Redactor{repl: c.Replacement, cards: c.CardNumbers, keys: c.APIKeys}
	if r.repl == "" {
		r.repl = DefaultReplacement
	}
	for i, p := range c.BodyPatterns {
		if useBuiltins && r.builtin.add(p) {
			continue
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("redact: BodyPatterns[%d] %q: %w", i, p, err)
		}
		r.custom = append(r.custom, re)
		lit, _ := re.LiteralPrefix()
		r.prefix = append(r.prefix, []byte(lit))
	}
	var err error
	if r.headers, err = newNameMatcher("HeaderPatterns", c.HeaderPatterns); err != nil {
		return nil, err
	}
	if r.queries, err = newNameMatcher("QueryPatterns", c.QueryPatterns); err != nil {
		return nil, err
	}
	return r, nil
}

func (b *builtins) add(p string) bool {
	switch p {
	case JSONPasswordPattern:
		b.jsonKeys.add("password")
	case JSONAccessKeyPattern:
		b.jsonKeys.add("access_key")
	case JSONSecretPattern:
		b.jsonKeys.add("secret", "token", "api_key", "apikey")
	case FormPasswordPattern:
		b.formKeys.add("password")
	case FormCSRFPattern:
		b.formKeys.add("csrfmiddlewaretoken")
	case XMLPasswordPattern:
		b.xml = true
	case MultipartPasswordPattern:
		b.multipart = true
	default:
		return false
	}
	return true
}

var defaultRedactor = sync.OnceValue(func() *Redactor {
	r, err := New(DefaultConfig())
	if err != nil {
		panic("redact: default config: " + err.Error())
	}
	return r
})

// Default returns the Redactor for DefaultConfig, built once.
func Default() *Redactor { return defaultRedactor() }

// Replacement returns the text that replaces hidden values.
func (r *Redactor) Replacement() string { return r.repl }

// Body strips NUL bytes from body and hides what the configuration names.
// It never modifies body; when there is nothing to strip or hide it returns
// body itself without allocating.
func (r *Redactor) Body(body []byte) []byte {
	b := body
	if bytes.IndexByte(b, 0) >= 0 {
		b = stripNUL(b)
	}
	sp := r.find(b)
	if len(sp) == 0 {
		return b
	}
	return r.replace(nil, b, sp)
}

// Prepare makes a body ready to log, in django-security-logger's order:
// strip NUL bytes, hide, then Truncate to maxChars (and, for long JSON,
// each string to maxString).
func (r *Redactor) Prepare(body []byte, maxChars, maxString int) []byte {
	return Truncate(r.Body(body), maxChars, maxString)
}

// Text hides card numbers, API keys and what the body patterns match in free
// text such as a log message. It returns s itself when nothing matched.
func (r *Redactor) Text(s string) string {
	if s == "" {
		return s
	}
	// The scanners only read, so a byte view of s is safe.
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	sp := r.find(b)
	if len(sp) == 0 {
		return s
	}
	out := r.replace(nil, b, sp)
	return unsafe.String(unsafe.SliceData(out), len(out))
}

// find returns the spans of b to hide, nil (without allocating) if none.
func (r *Redactor) find(b []byte) []span {
	if len(b) == 0 {
		return nil
	}
	var sp []span
	if !r.builtin.jsonKeys.empty() || r.builtin.multipart {
		sp = scanColons(b, &r.builtin.jsonKeys, r.builtin.multipart, sp)
	}
	if !r.builtin.formKeys.empty() {
		sp = scanForm(b, &r.builtin.formKeys, sp)
	}
	if r.builtin.xml {
		sp = scanXML(b, sp)
	}
	for i, re := range r.custom {
		if len(r.prefix[i]) > 0 && !bytes.Contains(b, r.prefix[i]) {
			continue
		}
		sp = appendRegexpSpans(b, re, sp)
	}
	if r.keys {
		sp = scanKeys(b, sp)
	}
	if r.cards {
		sp = scanCards(b, sp)
	}
	return sp
}

// appendRegexpSpans adds the groups of every match of re, or whole matches
// when re has no groups.
func appendRegexpSpans(b []byte, re *regexp.Regexp, sp []span) []span {
	groups := re.NumSubexp() > 0
	for _, m := range re.FindAllSubmatchIndex(b, -1) {
		if !groups {
			sp = append(sp, span{start: m[0], end: m[1]})
			continue
		}
		for g := 2; g+1 < len(m); g += 2 {
			if m[g] >= 0 {
				sp = append(sp, span{start: m[g], end: m[g+1]})
			}
		}
	}
	return sp
}

func stripNUL(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return append(out, b...)
		}
		out = append(out, b[:i]...)
		b = b[i+1:]
	}
}

// SensitiveHeader reports whether the value of the header name must be
// hidden.
func (r *Redactor) SensitiveHeader(name string) bool { return r.headers.match(name) }

// SensitiveQuery reports whether the value of the query parameter name must
// be hidden.
func (r *Redactor) SensitiveQuery(name string) bool { return r.queries.match(name) }

// Headers returns h as a map from lower-case header name (as HTTP/2 and the
// Vigil event schema write them) to the header's values joined with ", ".
// Values of sensitive headers are replaced; other values go through Text,
// and the query of a URL in Referer, Location or Content-Location through
// URL. It returns nil for an empty h.
func (r *Redactor) Headers(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	m := make(map[string]string, len(h))
	for name, vals := range h {
		var v string
		if r.SensitiveHeader(name) {
			v = r.repl
		} else {
			v = r.Text(strings.Join(vals, ", "))
			if isURLHeader(name) {
				v = r.urlValue(v)
			}
		}
		key := strings.ToLower(name)
		if old, ok := m[key]; ok { // h had the same name in two spellings
			v = old + ", " + v
		}
		m[key] = v
	}
	return m
}

func isURLHeader(name string) bool {
	return strings.EqualFold(name, "Referer") || strings.EqualFold(name, "Location") ||
		strings.EqualFold(name, "Content-Location")
}

// urlValue hides sensitive query values in a URL given as a header value.
func (r *Redactor) urlValue(v string) string {
	q := strings.IndexByte(v, '?')
	if q < 0 {
		return v
	}
	rest := v[q+1:]
	frag := ""
	if f := strings.IndexByte(rest, '#'); f >= 0 {
		rest, frag = rest[:f], rest[f:]
	}
	nq := r.URL(rest)
	if nq == rest {
		return v
	}
	return v[:q+1] + nq + frag
}

// Query parses rawQuery and returns each parameter's values joined with ",".
// Values of sensitive parameters are replaced; other values go through Text.
// Pairs that do not parse are left out. It returns nil when there are no
// parameters.
func (r *Redactor) Query(rawQuery string) map[string]string {
	vals, _ := url.ParseQuery(rawQuery) // keeps the pairs that parse
	if len(vals) == 0 {
		return nil
	}
	m := make(map[string]string, len(vals))
	for k, vs := range vals {
		if r.SensitiveQuery(k) {
			m[k] = r.repl
		} else {
			m[k] = r.Text(strings.Join(vs, ","))
		}
	}
	return m
}

// URL returns rawQuery with the values of sensitive parameters replaced (the
// replacement is written as it is, not percent-encoded, so that the logged
// URL reads well) and other values passed through Text. It returns rawQuery
// itself when nothing was hidden.
func (r *Redactor) URL(rawQuery string) string {
	var out []byte // nil until something changes
	done := 0      // rawQuery[:done] is already in out
	for pos := 0; pos <= len(rawQuery); {
		end := strings.IndexByte(rawQuery[pos:], '&')
		if end < 0 {
			end = len(rawQuery)
		} else {
			end += pos
		}
		pair := rawQuery[pos:end]
		if eq := strings.IndexByte(pair, '='); eq >= 0 {
			key, val := pair[:eq], pair[eq+1:]
			if k, err := url.QueryUnescape(key); err == nil {
				key = k
			}
			var nv string
			if r.SensitiveQuery(key) {
				nv = r.repl
			} else {
				nv = r.Text(val)
			}
			if nv != val {
				vs := pos + eq + 1
				out = append(out, rawQuery[done:vs]...)
				out = append(out, nv...)
				done = end
			}
		}
		pos = end + 1
	}
	if out == nil {
		return rawQuery
	}
	out = append(out, rawQuery[done:]...)
	return string(out)
}

// nameMatcher matches header or parameter names against patterns, with fast
// paths for patterns that are a plain name or ".*word.*".
type nameMatcher struct {
	exact    []string // lower-case names
	contains []string // lower-case words
	re       *regexp.Regexp
}

func newNameMatcher(field string, patterns []string) (nameMatcher, error) {
	var m nameMatcher
	var rest []string
	for i, p := range patterns {
		if _, err := regexp.Compile(p); err != nil {
			return m, fmt.Errorf("redact: %s[%d] %q: %w", field, i, p, err)
		}
		switch {
		case p == ".*api[-_]?key.*":
			m.contains = append(m.contains, "apikey", "api-key", "api_key")
		case isLiteral(p):
			m.exact = append(m.exact, strings.ToLower(p))
		case strings.HasPrefix(p, ".*") && strings.HasSuffix(p, ".*") && len(p) > 4 && isLiteral(p[2:len(p)-2]):
			m.contains = append(m.contains, strings.ToLower(p[2:len(p)-2]))
		default:
			rest = append(rest, "(?:"+p+")")
		}
	}
	if len(rest) > 0 {
		re, err := regexp.Compile(`(?i)^(?:` + strings.Join(rest, "|") + `)$`)
		if err != nil {
			return m, fmt.Errorf("redact: %s: %w", field, err)
		}
		m.re = re
	}
	return m, nil
}

func isLiteral(p string) bool { return p != "" && regexp.QuoteMeta(p) == p }

func (m *nameMatcher) match(name string) bool {
	for _, e := range m.exact {
		if strings.EqualFold(name, e) {
			return true
		}
	}
	for _, w := range m.contains {
		if containsFoldString(name, w) {
			return true
		}
	}
	return m.re != nil && m.re.MatchString(name)
}

func containsFoldString(s, word string) bool {
	return indexFold(unsafe.Slice(unsafe.StringData(s), len(s)), word) >= 0
}
