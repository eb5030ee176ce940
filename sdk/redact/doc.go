// Package redact hides sensitive data (passwords, tokens, cookies, card
// numbers, API keys) before a request, a response or a log message leaves
// the process. It imports only the standard library.
//
// Its defaults match django-security-logger's, so an application moving from
// Django to Go logs the same things: body patterns for a JSON "password",
// an XML <password>, the password and csrfmiddlewaretoken fields of a form,
// multipart password fields and a JSON "access_key"; the headers
// Authorization, X_Authorization, Cookie and any name containing "token";
// query parameters containing "token"; the replacement "[Filtered]". On top
// of that it hides Luhn-valid card numbers, well-known API key formats and a
// few more names (noted on DefaultConfig and the pattern constants).
//
// Typical use, in django-security-logger's order (strip NUL bytes, hide,
// then truncate):
//
//	r := redact.Default()
//	ev["http.request.headers"] = r.Headers(req.Header)
//	ev["url.query"] = r.URL(req.URL.RawQuery)
//	ev["http.request.body.content"] = string(r.Prepare(body, redact.DefaultMaxBody, redact.DefaultMaxString))
//	ev["message"] = r.Text(msg)
//
// Body and Text return their input unchanged, without allocating, when there
// is nothing to hide; they are meant to run on every logged request.
//
// # Patterns
//
// A body pattern is a regular expression (Go's RE2 syntax). If it has
// groups, only the groups are replaced, so `"password": "[Filtered]"` stays
// valid JSON; otherwise the whole match is. Header and query patterns are
// matched against the whole name, ignoring case.
//
// The default body patterns (JSONPasswordPattern and the others) are run by
// hand-written scanners instead of the regular expression engine. Besides
// being fast, the scanners try every place a pattern could start, even
// inside a value that another match already hides, and all patterns look at
// the original input; the hidden parts are merged at the end. So text in
// front of a secret (an unterminated string, a stray backslash, another
// "password=" that swallows the rest of the line) cannot make a later
// secret escape. Custom patterns run through package regexp, whose matches
// do not overlap.
//
// # What is not covered
//
//   - Non-string JSON values: "password": 1234 is kept (as in
//     django-security-logger).
//   - Secrets under other names, or encoded (base64, percent-encoded keys
//     such as pass%77ord), unless a pattern names them.
//   - Card numbers glued to other digits or with other separators, and
//     numbers starting with 0, 1, 7, 8 or 9 (see the card rules in
//     cards.go); a random number passing the card checks is hidden.
//   - A url-encoded value runs to the next "&" or line break, as in
//     django-security-logger: "password=" inside a JSON string hides the rest
//     of that line, possibly leaving JSON that no longer parses.
//   - Multipart header lines longer than 1 KiB or parts with more than 16
//     header lines are not recognised by the default multipart scanner.
//
// # Truncation
//
// Truncate cuts a body to a number of characters; long JSON bodies first
// have each string cut to maxString characters, so the structure survives.
// DefaultMaxBody and DefaultMaxString are django-security-logger's 1,000 and
// 250.
package redact
