package redact

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp/syntax"
	"strings"
	"testing"
)

// Test tokens are assembled at run time so that secret scanners do not take
// this file for a leak.
var (
	awsKey    = "AKIA" + "IOSFODNN7EXAMPLE"
	ghToken   = "ghp" + "_" + strings.Repeat("aB3dE6gH9k", 3) + "Zx12Yw"
	ghPAT     = "github" + "_pat_" + "11ABCDEFG0123456789" + "_" + strings.Repeat("xY7", 20)
	slackTok  = "xox" + "b-123456789012-1234567890123-" + strings.Repeat("aZ9", 8)
	stripeKey = "sk" + "_live_" + strings.Repeat("4eC39HqLyj", 3)
	stripeRK  = "rk" + "_live_" + strings.Repeat("Qw7Er5Ty3U", 3)
	googleKey = "AI" + "za" + "SyD-" + strings.Repeat("aB3_e", 6) + "X"
	vigilTok  = "vgl" + "_" + strings.Repeat("Ab-9_", 8) + "XyZ"
	jwt       = "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + "." + "eyJ" + "zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0" + "." + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	pemBody   = "MIIEowIBAAKCAQEA7bq98\nlBqVh2Kc0DkxM3XO8a+6\n"
)

const F = DefaultReplacement

func TestBodyDefaults(t *testing.T) {
	r := Default()
	tests := []struct {
		name, in, want string
	}{
		// JSON (django-security-logger: "password", "access_key")
		{"json password", `{"username":"bob","password":"hunter2"}`, `{"username":"bob","password":"` + F + `"}`},
		{"json spaces", `{"password" :  "hunter2", "a": 1}`, `{"password" :  "` + F + `", "a": 1}`},
		{"json escaped quote", `{"password":"a\"b\\","next":"kept"}`, `{"password":"` + F + `","next":"kept"}`},
		{"json empty value", `{"password":""}`, `{"password":"` + F + `"}`},
		{"json key case and variants", `{"Password":"a","new_password":"b","password2":"c"}`, `{"Password":"` + F + `","new_password":"` + F + `","password2":"` + F + `"}`},
		{"json access_key", `{"access_key": "abc123", "region": "eu"}`, `{"access_key": "` + F + `", "region": "eu"}`},
		{"json secret and token", `{"client_secret":"s1","access_token":"t1","token_type":"Bearer","api_key":"k1"}`, `{"client_secret":"` + F + `","access_token":"` + F + `","token_type":"` + F + `","api_key":"` + F + `"}`},
		{"json number password kept", `{"password":1234}`, `{"password":1234}`},
		{"json nested", `{"user":{"name":"a","password":"p"},"list":[{"password":"q"}]}`, `{"user":{"name":"a","password":"` + F + `"},"list":[{"password":"` + F + `"}]}`},
		{"json unterminated value", `{"password":"hunter2`, `{"password":"` + F},
		{"json escaped in string", `{"note":"{\"password\":\"x\"}"}`, `{"note":"{\"password\":\"x\"}"}`},
		// XML
		{"xml", `<login><user>bob</user><password>hunter2</password></login>`, `<login><user>bob</user><password>` + F + `</password></login>`},
		{"xml attributes and case", `<Password type="text">hunter2</Password>`, `<Password type="text">` + F + `</Password>`},
		{"xml namespaced", `<ns:newPassword>x</ns:newPassword>`, `<ns:newPassword>` + F + `</ns:newPassword>`},
		// url-encoded forms
		{"form", `username=bob&password=hunter2&next=%2F`, `username=bob&password=` + F + `&next=%2F`},
		{"form last", `username=bob&password=hunter2`, `username=bob&password=` + F},
		{"form csrf", `csrfmiddlewaretoken=Abc123&q=1`, `csrfmiddlewaretoken=` + F + `&q=1`},
		{"form django signup", `password1=a&password2=a`, `password1=` + F + `&password2=` + F},
		{"form bracketed", `user%5Bpassword%5D=x&user%5Bname%5D=y`, `user%5Bpassword%5D=` + F + `&user%5Bname%5D=y`},
		{"form empty", `password=&a=b`, `password=` + F + `&a=b`},
		// multipart
		{"multipart",
			"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XyZ--\r\n",
			"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n" + F + "\r\n--XyZ--\r\n"},
		{"multipart part headers and LF",
			"--b\ncontent-disposition: form-data; name=\"old_password\"\ncontent-type: text/plain\n\nhunter2\n--b--\n",
			"--b\ncontent-disposition: form-data; name=\"old_password\"\ncontent-type: text/plain\n\n" + F + "\n--b--\n"},
		{"multipart filename only",
			"Content-Disposition: form-data; name=\"file\"; filename=\"password.txt\"\r\n\r\ncontent\r\n",
			"Content-Disposition: form-data; name=\"file\"; filename=\"password.txt\"\r\n\r\ncontent\r\n"},
		// nothing to hide
		{"clean json", `{"sku":"A-1","qty":2,"note":"no secrets here"}`, `{"sku":"A-1","qty":2,"note":"no secrets here"}`},
		{"empty", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(r.Body([]byte(tt.in))); got != tt.want {
				t.Errorf("Body(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// The scanners behind the default patterns find what the patterns' regular
// expressions find, on inputs without overlapping matches.
func TestBuiltinsMatchTheirRegexps(t *testing.T) {
	c := DefaultConfig()
	c.CardNumbers, c.APIKeys = false, false
	fast, err := newRedactor(c, true)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := newRedactor(c, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(slow.custom) != len(c.BodyPatterns) || len(fast.custom) != 0 {
		t.Fatalf("custom patterns: fast %d, slow %d", len(fast.custom), len(slow.custom))
	}
	inputs := []string{
		`{"username":"bob","password":"hunter2"}`,
		`{"password" :  "hunter2", "a": 1}`,
		`{"password":"a\"b\\","next":"kept"}`,
		`{"password":""}`,
		`{"Password":"a","new_password":"b","password2":"c"}`,
		`{"access_key": "abc123", "region": "eu"}`,
		`{"client_secret":"s1","access_token":"t1","api_key":"k1","apikey":"k2"}`,
		`{"password":"hunter2`,
		`<login><password>hunter2</password></login>`,
		`<Password type="text">hunter2</Password>`,
		`username=bob&password=hunter2&next=%2F`,
		`csrfmiddlewaretoken=Abc123&q=1`,
		`password1=a&password2=a`,
		`user%5Bpassword%5D=x&user%5Bname%5D=y`,
		"--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XyZ--\r\n",
		"--b\ncontent-disposition: form-data; name=\"old_password\"\ncontent-type: text/plain\n\nhunter2\n--b--\n",
		"Content-Disposition: form-data; name=\"file\"; filename=\"password.txt\"\r\n\r\ncontent\r\n",
		`{"note":"{\"password\":\"x\"}"}`,
		"login failed: password=hunter2\nnext line",
	}
	for _, in := range inputs {
		if f, s := string(fast.Body([]byte(in))), string(slow.Body([]byte(in))); f != s {
			t.Errorf("input %q\nscanner %q\n regexp %q", in, f, s)
		}
	}
}

func TestBodyGroupsKeepJSONValid(t *testing.T) {
	in := `{"user":"bob","password":"p\"w","card":"4111 1111 1111 1111","n":4111111111111111,"tok":"` + jwt + `"}`
	out := Default().Body([]byte(in))
	if !json.Valid(out) {
		t.Fatalf("not valid JSON: %s", out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"password", "card", "n", "tok"} {
		if m[k] != F {
			t.Errorf("%s = %v, want %q", k, m[k], F)
		}
	}
	if m["user"] != "bob" {
		t.Errorf("user = %v", m["user"])
	}
}

// Text before a secret must not let the secret escape.
func TestBodyRobustToPrefixes(t *testing.T) {
	const secret = "SECRETVALUE123"
	ins := `"password":"` + secret + `"`
	prefixes := []string{
		`{"password":"`,               // unterminated value runs into the key
		`{"password":"\`,              // and escapes its opening quote
		`\`,                           // a stray backslash before the key
		`{"a":"b\\\`,                  // odd backslashes
		`password=`,                   // a form value that swallows the rest
		`<password>`,                  // an XML value
		`"password":"x" "password": `, // a key without its value
		`{"password":"\"password\":\"`,
		"\x00\"",
	}
	for _, p := range prefixes {
		out := Default().Body([]byte(p + ins + `,"x":1}`))
		if strings.Contains(string(out), secret) {
			t.Errorf("prefix %q: secret kept in %q", p, out)
		}
	}
}

func TestBodyDoesNotModifyInputAndReturnsItWhenClean(t *testing.T) {
	r := Default()
	clean := []byte(`{"sku":"A-1","qty":2,"note":"nothing to see","id":1740830700250}`)
	if out := r.Body(clean); &out[0] != &clean[0] || len(out) != len(clean) {
		t.Error("clean body: a different slice was returned")
	}
	if n := testing.AllocsPerRun(100, func() { r.Body(clean) }); n != 0 {
		t.Errorf("clean body: %v allocations, want 0", n)
	}
	s := string(clean)
	if n := testing.AllocsPerRun(100, func() { r.Text(s) }); n != 0 {
		t.Errorf("clean text: %v allocations, want 0", n)
	}
	secret := []byte(`{"password":"hunter2"}`)
	orig := string(secret)
	r.Body(secret)
	if string(secret) != orig {
		t.Errorf("input modified: %q", secret)
	}
}

func TestBodyStripsNUL(t *testing.T) {
	got := Default().Body([]byte("a\x00b\x00{\"pass\x00word\":\"x\"}"))
	if want := `ab{"password":"` + F + `"}`; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// luhn returns digits followed by their Luhn check digit.
func luhn(digits string) string {
	sum := 0
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return digits + string(rune('0'+(10-sum%10)%10))
}

func TestCards(t *testing.T) {
	r := Default()
	tests := []struct {
		name, in, want string
	}{
		{"visa", "card 4111111111111111 ok", "card " + F + " ok"},
		{"visa spaces", "card 4111 1111 1111 1111.", "card " + F + "."},
		{"mastercard dashes", "5500-0055-5555-5559", F},
		{"amex 4-6-5", "3782 822463 10005", F},
		{"discover", "6011111111111117", F},
		{"visa 13", "x4222222222222x", "x" + F + "x"},
		{"19 digits", luhn("455673758400000000"), F},
		{"in JSON string", `{"cc":"4111111111111111"}`, `{"cc":"` + F + `"}`},
		{"JSON number", `{"cc":4111111111111111}`, `{"cc":"` + F + `"}`},
		{"JSON array", `[5500005555555559, 1]`, `["` + F + `", 1]`},
		{"after other groups", "order 123 4111 1111 1111 1111", "order 123 " + F},
		{"two cards", "4111111111111111,5500005555555559", F + "," + F},
		{"fails Luhn", "4111111111111112", "4111111111111112"},
		{"too short", "411111111111", "411111111111"},
		{"too long", "41111111111111111111", "41111111111111111111"},
		{"glued to digits", "94111111111111111", "94111111111111111"},
		{"ms timestamp", `{"t":1740830700250}`, `{"t":1740830700250}`},
		{"starts with 0", luhn("000000000000000"), luhn("000000000000000")},
		{"short groups", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"},
		{"double space", "4111  1111 1111 1111", "4111  1111 1111 1111"},
		{"uuid", "550e8400-e29b-41d4-a716-446655440000", "550e8400-e29b-41d4-a716-446655440000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(r.Body([]byte(tt.in))); got != tt.want {
				t.Errorf("Body(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	off := DefaultConfig()
	off.CardNumbers = false
	ro, _ := New(off)
	if got := ro.Text("4111111111111111"); got != "4111111111111111" {
		t.Errorf("CardNumbers false: %q", got)
	}
}

func TestAPIKeys(t *testing.T) {
	r := Default()
	tests := []struct {
		name, in, want string
	}{
		{"aws", "key=" + awsKey + ".", "key=AKIA" + F + "."},
		{"aws temporary", "ASIA" + "ABCDEFGHIJ012345", "ASIA" + F},
		{"github", "token " + ghToken + " end", "token ghp_" + F + " end"},
		{"github other kinds", "gho_" + ghToken[4:] + " ghs_" + ghToken[4:], "gho_" + F + " ghs_" + F},
		{"github pat", ghPAT, "github_pat_" + F},
		{"slack", "x " + slackTok, "x xoxb-" + F},
		{"stripe", stripeKey + " " + stripeRK, "sk_live_" + F + " rk_live_" + F},
		{"google", "k=" + googleKey + "&", "k=AIza" + F + "&"},
		{"vigil", "Bearer " + vigilTok, "Bearer vgl_" + F},
		{"jwt", "auth " + jwt + " done", "auth " + F + " done"},
		{"jwt in json", `{"id_token_hint":1,"t":"` + jwt + `"}`, `{"id_token_hint":1,"t":"` + F + `"}`},
		{"pem", "-----BEGIN RSA PRIVATE KEY-----\n" + pemBody + "-----END RSA PRIVATE KEY-----\n",
			"-----BEGIN RSA PRIVATE KEY-----" + F + "-----END RSA PRIVATE KEY-----\n"},
		{"pem truncated", "x -----BEGIN PRIVATE KEY-----\n" + pemBody, "x -----BEGIN PRIVATE KEY-----" + F},
		{"public key kept", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"},
		{"short lookalikes kept", "ghp_short sk_live_x vgl_abc AKIA123 eyJhbGc", "ghp_short sk_live_x vgl_abc AKIA123 eyJhbGc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Text(tt.in); got != tt.want {
				t.Errorf("Text(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if got := string(r.Body([]byte(tt.in))); got != tt.want {
				t.Errorf("Body(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
	off := DefaultConfig()
	off.APIKeys = false
	ro, _ := New(off)
	if got := ro.Text(awsKey); got != awsKey {
		t.Errorf("APIKeys false: %q", got)
	}
}

func TestText(t *testing.T) {
	r := Default()
	tests := []struct{ in, want string }{
		{"login failed for bob", "login failed for bob"},
		{"login with password=hunter2 failed\nnext", "login with password=" + F + "\nnext"},
		{"charged 4111 1111 1111 1111 for order 981", "charged " + F + " for order 981"},
		{"token " + vigilTok + " used", "token vgl_" + F + " used"},
	}
	for _, tt := range tests {
		if got := r.Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSensitiveHeader(t *testing.T) {
	r := Default()
	for name, want := range map[string]bool{
		"Authorization":        true,
		"authorization":        true,
		"X_Authorization":      true,
		"X-Authorization":      true,
		"Proxy-Authorization":  true,
		"Cookie":               true,
		"Set-Cookie":           true,
		"X-Csrftoken":          true,
		"X-Auth-Token":         true,
		"Token":                true,
		"X-Api-Key":            true,
		"X-Client-Secret":      true,
		"Content-Type":         false,
		"User-Agent":           false,
		"X-Authorization-Hint": false, // whole-name match
		"Cookies-Enabled":      false,
	} {
		if got := r.SensitiveHeader(name); got != want {
			t.Errorf("SensitiveHeader(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestHeaders(t *testing.T) {
	r := Default()
	h := http.Header{
		"Authorization": {"Bearer abc"},
		"Cookie":        {"sessionid=1", "csrftoken=2"},
		"Accept":        {"text/html", "application/json"},
		"X-Debug":       {"card 4111111111111111"},
		"Referer":       {"https://shop.example/reset?token=abc&x=1#top"},
	}
	want := map[string]string{
		"authorization": F,
		"cookie":        F,
		"accept":        "text/html, application/json",
		"x-debug":       "card " + F,
		"referer":       "https://shop.example/reset?token=" + F + "&x=1#top",
	}
	if got := r.Headers(h); !reflect.DeepEqual(got, want) {
		t.Errorf("Headers:\n got %v\nwant %v", got, want)
	}
	if got := r.Headers(nil); got != nil {
		t.Errorf("Headers(nil) = %v, want nil", got)
	}
}

func TestQuery(t *testing.T) {
	r := Default()
	got := r.Query("q=shoes&access_token=abc&page=1&page=2&Password=x&cc=4111111111111111")
	want := map[string]string{"q": "shoes", "access_token": F, "page": "1,2", "Password": F, "cc": F}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Query:\n got %v\nwant %v", got, want)
	}
	if got := r.Query(""); got != nil {
		t.Errorf("Query(\"\") = %v", got)
	}
}

func TestURL(t *testing.T) {
	r := Default()
	tests := []struct{ in, want string }{
		{"q=shoes&page=2", "q=shoes&page=2"},
		{"token=abc", "token=" + F},
		{"q=1&reset%5Ftoken=abc&x=", "q=1&reset%5Ftoken=" + F + "&x="},
		{"a&b=1&api_key=k&", "a&b=1&api_key=" + F + "&"},
		{"X-Amz-Signature=abcd&X-Amz-Expires=60", "X-Amz-Signature=" + F + "&X-Amz-Expires=60"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := r.URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCustomConfig(t *testing.T) {
	r, err := New(Config{
		BodyPatterns:   []string{`"ssn"\s*:\s*"([^"]*)"`, `secret-[0-9]+`, `pin=(\d+)|code=(\d+)`},
		HeaderPatterns: []string{"X-Internal-.*", "Authorization"},
		QueryPatterns:  []string{"sid"},
		Replacement:    "***",
	})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"ssn":"123-45-6789","password":"kept","note":"secret-42 pin=1234 code=99"} 4111111111111111`
	want := `{"ssn":"***","password":"kept","note":"*** pin=*** code=***"} 4111111111111111`
	if got := string(r.Body([]byte(body))); got != want {
		t.Errorf("Body:\n got %q\nwant %q", got, want)
	}
	if !r.SensitiveHeader("x-internal-user") || r.SensitiveHeader("Cookie") || !r.SensitiveHeader("AUTHORIZATION") {
		t.Error("custom header patterns not applied")
	}
	if got := r.URL("sid=1&token=2"); got != "sid=***&token=2" {
		t.Errorf("URL = %q", got)
	}
	if r.Replacement() != "***" {
		t.Errorf("Replacement = %q", r.Replacement())
	}
}

func TestNewBadPattern(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{Config{BodyPatterns: []string{`ok`, `(unclosed`}}, `BodyPatterns[1] "(unclosed"`},
		{Config{HeaderPatterns: []string{`[z-a]`}}, `HeaderPatterns[0] "[z-a]"`},
		{Config{QueryPatterns: []string{`a**`}}, `QueryPatterns[0] "a**"`},
	}
	for _, tt := range tests {
		_, err := New(tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) error = %v, want it to contain %s", tt.c, err, tt.want)
		}
		var se *syntax.Error
		if !errors.As(err, &se) {
			t.Errorf("error %v does not wrap the regexp error", err)
		}
	}
}

func TestZeroConfigHidesNothing(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := `{"password":"x"} 4111111111111111 ` + awsKey
	if got := string(r.Body([]byte(in))); got != in {
		t.Errorf("got %q", got)
	}
	if r.SensitiveHeader("Authorization") {
		t.Error("Authorization sensitive with zero config")
	}
}
