package demo

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// customer is a registered shop user with the address and browser they use.
type customer struct {
	id, name string
	ip, ua   string
}

// visit is one client connection's view of the shop: who is calling and,
// once logged in, as which user.
type visit struct {
	ip, ua         string
	port           int
	userID, userNm string
}

var customerNames = []string{
	"maria", "jonas", "priya", "tom", "chen", "fatima", "lukas", "sofia",
	"kwame", "emma", "mateo", "yuki", "olga", "david", "amara", "noah",
	"ines", "ravi", "hannah", "omar", "lea", "felix", "zara", "ben",
	"nina", "ali", "clara", "sam", "mia", "pedro",
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
}

var searchTerms = []string{
	"running+shoes", "rain+jacket", "wool+socks", "backpack", "water+bottle",
	"headlamp", "tent", "gloves", "merino", "trail+shoes", "gift+card",
}

const products = 60 // product ids 1..products exist; others answer 404

// customers returns the shop's customers: about 30 at scale 1, each with a
// distinct address from the documentation ranges and a browser.
func (g *generator) customers(scale float64) []customer {
	n := max(3, int(30*scale+0.5))
	v4 := g.documentationV4()
	cs := make([]customer, n)
	for i := range cs {
		name := customerNames[i%len(customerNames)]
		if i >= len(customerNames) {
			name += strconv.Itoa(i/len(customerNames) + 1)
		}
		var ip string
		if len(v4) > 0 && g.rng.IntN(5) > 0 { // four in five customers use IPv4
			ip, v4 = v4[0], v4[1:]
		} else {
			ip = g.documentationV6()
		}
		cs[i] = customer{id: strconv.Itoa(1002 + i), name: name, ip: ip, ua: g.pick(userAgents)}
	}
	g.rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	return cs
}

// documentationV4 returns the host addresses of the three IPv4 documentation
// networks, shuffled, without the ones the incidents use.
func (g *generator) documentationV4() []string {
	reserved := map[string]bool{BruteForceIP: true, ScannerIP: true, AdminIP: true}
	var ips []string
	for _, net := range []string{"192.0.2", "198.51.100", "203.0.113"} {
		for host := 1; host < 255; host++ {
			ip := net + "." + strconv.Itoa(host)
			if !reserved[ip] {
				ips = append(ips, ip)
			}
		}
	}
	g.rng.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
	return ips
}

// documentationV6 returns a random address in 2001:db8::/32.
func (g *generator) documentationV6() string {
	var a [16]byte
	a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	for i := 4; i < 16; i++ {
		a[i] = byte(g.rng.UintN(256))
	}
	return netip.AddrFrom16(a).String()
}

// session simulates one visit of a customer: browsing, maybe a login, maybe
// adding to the cart and paying.
func (g *generator) session(c customer, at time.Time) {
	v := &visit{ip: c.ip, ua: c.ua, port: g.port()}
	think := func() { at = at.Add(g.between(2*time.Second, 25*time.Second)) }

	// Landing page: the home page, or a product or search result coming from
	// a search engine.
	switch r := g.rng.Float64(); {
	case r < 0.6:
		g.page(at, v, "GET", "/", "", 200, g.fast())
	case r < 0.85:
		g.productPage(at, v)
	default:
		g.search(at, v)
	}

	wantsLogin := g.rng.Float64() < 0.45
	wantsCart := g.rng.Float64() < 0.5
	steps := 3 + g.rng.IntN(12)
	for i := range steps {
		think()
		if wantsLogin && i == steps/3 {
			at = g.login(at, v, c)
			continue
		}
		switch r := g.rng.Float64(); {
		case r < 0.08:
			g.page(at, v, "GET", "/", "", 200, g.fast())
		case r < 0.28:
			query := ""
			if g.rng.IntN(4) == 0 {
				query = "page=" + strconv.Itoa(2+g.rng.IntN(4))
			}
			g.page(at, v, "GET", "/products", query, 200, g.fast())
		case r < 0.78:
			g.productPage(at, v)
		case r < 0.93:
			g.search(at, v)
		default:
			g.page(at, v, "GET", "/cart", "", 200, g.fast())
		}
	}
	if !wantsCart {
		return
	}
	think()
	g.page(at, v, "POST", "/cart", "", 302, g.fast())
	think()
	g.page(at, v, "GET", "/cart", "", 200, g.fast())
	if g.rng.Float64() < 0.3 { // abandoned cart
		return
	}
	think()
	if v.userID == "" {
		at = g.login(at, v, c)
		think()
	}
	g.checkout(at, v)
}

// quickPurchase simulates a customer going straight to a product, paying and
// leaving within a minute.
func (g *generator) quickPurchase(c customer, at time.Time) {
	v := &visit{ip: c.ip, ua: c.ua, port: g.port()}
	g.productPage(at, v)
	at = at.Add(g.between(3*time.Second, 8*time.Second))
	g.page(at, v, "POST", "/cart", "", 302, g.fast())
	at = at.Add(g.between(time.Second, 3*time.Second))
	at = g.login(at, v, c)
	at = at.Add(g.between(2*time.Second, 5*time.Second))
	g.checkout(at, v)
}

// fast returns the duration of an ordinary page.
func (g *generator) fast() time.Duration { return g.between(8*time.Millisecond, 120*time.Millisecond) }

// productPage requests one product; now and then an id that no longer exists.
func (g *generator) productPage(at time.Time, v *visit) {
	id, status := 1+g.rng.IntN(products), 200
	if g.rng.Float64() < 0.03 {
		id, status = products+1+g.rng.IntN(400), 404
	}
	g.page(at, v, "GET", "/products/"+strconv.Itoa(id), "", status, g.fast())
}

// search runs a product search; about one in a hundred times it fails.
func (g *generator) search(at time.Time, v *visit) {
	status, d := 200, g.between(40*time.Millisecond, 400*time.Millisecond)
	if g.rng.Float64() < 0.01 {
		status, d = 500, g.between(time.Second, 3*time.Second)
	}
	g.page(at, v, "GET", "/search", "q="+g.pick(searchTerms), status, d)
}

// page emits the http_request event of one request and returns its request id.
func (g *generator) page(at time.Time, v *visit, method, path, query string, status int, d time.Duration) string {
	reqID := g.requestID()
	outcome, severity := "success", 1
	switch {
	case status >= 500:
		outcome, severity = "failure", 5
	case status >= 400:
		outcome, severity = "failure", 3
	}
	f := g.base(at, "web", "access", "http_request", outcome, severity)
	f.set("event.duration", d.Nanoseconds())
	f.set("source.ip", v.ip)
	f.set("source.port", v.port)
	if v.userID != "" {
		f.set("user.id", v.userID)
		f.set("user.name", v.userNm)
	}
	f.set("http.request.id", reqID)
	f.set("http.request.method", method)
	f.set("http.response.status_code", status)
	f.set("url.path", path)
	target := path
	if query != "" {
		f.set("url.query", query)
		target += "?" + query
	}
	f.set("user_agent.original", v.ua)
	f.set("message", fmt.Sprintf("%s %s %d", method, target, status))
	g.emit(f)
	return reqID
}

// login shows the login form and logs the customer in, after a typo now and
// then. It returns the time of the last request.
func (g *generator) login(at time.Time, v *visit, c customer) time.Time {
	g.page(at, v, "GET", "/login", "", 200, g.fast())
	at = at.Add(g.between(4*time.Second, 15*time.Second))
	failed := 0
	if g.rng.Float64() < 0.12 {
		g.loginFailed(at, v, c.name, "bad password")
		failed++
		at = at.Add(g.between(5*time.Second, 20*time.Second))
	}
	g.loginSucceeded(at, v, c.id, c.name, failed)
	return at
}

// loginFailed emits a failed POST /login and its authn_login_fail event.
func (g *generator) loginFailed(at time.Time, v *visit, name, reason string) {
	d := g.between(150*time.Millisecond, 400*time.Millisecond) // password hashing
	reqID := g.page(at, v, "POST", "/login", "", 401, d)
	f := g.base(at.Add(d/2), "authentication", "start", "authn_login_fail", "failure", 3)
	f.set("event.reason", reason)
	f.set("source.ip", v.ip)
	f.set("source.port", v.port)
	f.set("user.name", name)
	f.set("http.request.id", reqID)
	f.set("url.path", "/login")
	f.set("user_agent.original", v.ua)
	f.set("message", fmt.Sprintf("login failed for %s: %s", name, reason))
	g.emit(f)
}

// loginSucceeded emits a successful POST /login and its authn_login_success
// event; from then on the visit's requests carry the user.
func (g *generator) loginSucceeded(at time.Time, v *visit, id, name string, failedBefore int) {
	d := g.between(150*time.Millisecond, 400*time.Millisecond)
	reqID := g.page(at, v, "POST", "/login", "", 302, d)
	v.userID, v.userNm = id, name
	f := g.base(at.Add(d/2), "authentication", "start", "authn_login_success", "success", 1)
	f.set("source.ip", v.ip)
	f.set("source.port", v.port)
	f.set("user.id", id)
	f.set("user.name", name)
	f.set("http.request.id", reqID)
	f.set("url.path", "/login")
	f.set("user_agent.original", v.ua)
	msg := "login succeeded for " + name
	if failedBefore > 0 {
		f.set("labels.failures_before", strconv.Itoa(failedBefore))
		msg += fmt.Sprintf(" after %d failed attempt(s)", failedBefore)
	}
	f.set("message", msg)
	g.emit(f)
}

// checkout pays for the cart: the shop calls the payment API, redirects the
// customer and queues the confirmation e-mail.
func (g *generator) checkout(at time.Time, v *visit) {
	g.page(at, v, "GET", "/checkout", "", 200, g.fast())
	at = at.Add(g.between(10*time.Second, 40*time.Second))

	g.orders++
	order := []string{"order:" + strconv.Itoa(1000+g.orders)}
	pay := g.between(150*time.Millisecond, 600*time.Millisecond)
	reqID := g.page(at, v, "POST", "/checkout", "", 302, pay+g.between(30*time.Millisecond, 90*time.Millisecond))

	f := g.base(at.Add(20*time.Millisecond), "web", "connection", "http_request_outgoing", "success", 1)
	f.set("event.duration", pay.Nanoseconds())
	f.set("http.request.id", reqID)
	f.set("http.request.method", "POST")
	f.set("http.response.status_code", 201)
	f.set("url.scheme", "https")
	f.set("url.domain", "api.payments.example")
	f.set("url.path", "/v1/charges")
	f.set("url.full", "https://api.payments.example/v1/charges")
	f.set("related.objects", order)
	f.set("message", "POST https://api.payments.example/v1/charges 201")
	g.emit(f)

	g.job(at.Add(g.between(time.Second, 5*time.Second)), "send_order_confirmation", "mail", order)
}

// job emits the job_run event of a background task that succeeded.
func (g *generator) job(at time.Time, name, queue string, related []string) {
	d := g.between(80*time.Millisecond, 900*time.Millisecond)
	f := g.base(at, "process", "end", "job_run", "success", 1)
	f.set("event.duration", d.Nanoseconds())
	f.set("vigil.job", map[string]any{
		"id":      g.requestID(),
		"name":    name,
		"queue":   queue,
		"state":   "SUCCEEDED",
		"retries": 0,
	})
	if len(related) > 0 {
		f.set("related.objects", related)
	}
	f.set("message", fmt.Sprintf("job %s on %s SUCCEEDED in %dms", name, queue, d.Milliseconds()))
	g.emit(f)
}
