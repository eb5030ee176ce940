package demo

import (
	"fmt"
	"strconv"
	"time"
)

// BruteForceAttempts is the number of failed logins of the brute-force run;
// the shop locks the account at the last one.
const BruteForceAttempts = 60

// ScannerPaths are the well-known paths the scanner probes; the shop has none
// of them and answers 404.
var ScannerPaths = []string{
	"/.env", "/wp-admin/", "/wp-login.php", "/.git/config", "/phpmyadmin/",
	"/server-status", "/admin.php", "/config.json", "/backup.zip",
	"/.aws/credentials", "/xmlrpc.php", "/.DS_Store", "/actuator/env",
	"/api/.env", "/backup.sql", "/.htaccess", "/wp-config.php.bak",
	"/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/solr/admin/",
	"/console/", "/.svn/entries", "/db.sql", "/owa/", "/HNAP1/",
}

// excess404Threshold is the number of 404s from one address after which the
// shop reports malicious_excess_404.
const excess404Threshold = 20

// scannerProbes are the injection attempts that follow the path scan: the
// query strings as they arrive on the wire, percent-encoded where a client
// must encode.
var scannerProbes = []struct {
	path, query string
	status      int
}{
	{"/products", "id=1'%20OR%20'1'='1", 200},
	{"/products", "id=1%20UNION%20SELECT%20username,password%20FROM%20users--", 200},
	{"/search", "q=%3Cscript%3Ealert(document.cookie)%3C/script%3E", 200},
	{"/download", "file=../../../../etc/passwd", 404},
}

// bruteForce simulates a password-guessing script against alice's account
// from one address, a new connection per attempt, over span.
func (g *generator) bruteForce(at time.Time, span time.Duration) {
	v := &visit{ip: BruteForceIP, ua: "python-requests/2.31.0"}
	step := span / BruteForceAttempts
	for i := range BruteForceAttempts {
		v.port = g.port()
		t := at.Add(time.Duration(i)*step + g.between(0, step/2))
		g.loginFailed(t, v, BruteForceUser, "bad password")
		if i == BruteForceAttempts-1 {
			f := g.base(t.Add(time.Second), "authentication", "change", "authn_login_lock", "success", 7)
			f.set("source.ip", v.ip)
			f.set("user.id", "1001")
			f.set("user.name", BruteForceUser)
			f.set("labels.failures", strconv.Itoa(BruteForceAttempts))
			f.set("message", fmt.Sprintf("account %s locked after %d failed logins from %s", BruteForceUser, BruteForceAttempts, v.ip))
			g.emit(f)
		}
	}
}

// scanner simulates a vulnerability scanner: a look at the home page, every
// path of ScannerPaths, then a few injection attempts with another tool.
func (g *generator) scanner(at time.Time, span time.Duration) {
	v := &visit{ip: ScannerIP, ua: "Mozilla/5.0 zgrab/0.x"}
	n := 1 + len(ScannerPaths) + len(scannerProbes)
	step := span / time.Duration(n)
	next := func() time.Time {
		v.port = g.port()
		at = at.Add(step/2 + g.between(0, step))
		return at
	}
	first := next()
	g.page(first, v, "GET", "/", "", 200, g.fast())
	for i, path := range ScannerPaths {
		t := next()
		g.page(t, v, "GET", path, "", 404, g.between(2*time.Millisecond, 15*time.Millisecond))
		if i+1 == excess404Threshold {
			f := g.base(t.Add(5*time.Millisecond), "intrusion_detection", "info", "malicious_excess_404", "unknown", 6)
			f.set("source.ip", v.ip)
			f.set("user_agent.original", v.ua)
			f.set("labels.count", strconv.Itoa(excess404Threshold))
			f.set("message", fmt.Sprintf("%d requests for missing pages from %s in %s",
				excess404Threshold, v.ip, t.Sub(first).Round(time.Second)))
			g.emit(f)
		}
	}
	v.ua = "sqlmap/1.8.2#stable (https://sqlmap.org)"
	for _, p := range scannerProbes {
		g.page(next(), v, "GET", p.path, p.query, p.status, g.between(10*time.Millisecond, 80*time.Millisecond))
	}
}

// adminChange simulates the administrator logging in and switching the
// payment provider.
func (g *generator) adminChange(at time.Time) {
	v := &visit{ip: AdminIP, ua: userAgents[2], port: g.port()}
	g.page(at, v, "GET", "/login", "", 200, g.fast())
	at = at.Add(g.between(5*time.Second, 10*time.Second))
	g.loginSucceeded(at, v, "1", AdminUser, 0)
	at = at.Add(g.between(2*time.Second, 6*time.Second))
	g.page(at, v, "GET", "/admin", "", 200, g.fast())
	at = at.Add(g.between(3*time.Second, 8*time.Second))
	g.page(at, v, "GET", "/admin/settings", "", 200, g.fast())
	at = at.Add(g.between(15*time.Second, 40*time.Second))

	d := g.between(30*time.Millisecond, 90*time.Millisecond)
	reqID := g.page(at, v, "POST", "/admin/settings", "", 302, d)
	f := g.base(at.Add(d/2), "configuration", "change", "sys_config_change", "success", 4)
	f.set("source.ip", v.ip)
	f.set("user.id", v.userID)
	f.set("user.name", v.userNm)
	f.set("http.request.id", reqID)
	f.set("url.path", "/admin/settings")
	f.set("vigil.change", map[string]any{"key": "payments.provider", "old": "stripe", "new": "paypal"})
	f.set("related.objects", []string{"setting:payments.provider"})
	f.set("message", "admin changed payments.provider from stripe to paypal")
	g.emit(f)

	at = at.Add(g.between(time.Second, 3*time.Second))
	g.page(at, v, "GET", "/admin/settings", "", 200, g.fast())
}

// authzFail simulates a logged-in customer trying the admin pages.
func (g *generator) authzFail(c customer, at time.Time) {
	v := &visit{ip: c.ip, ua: c.ua, port: g.port(), userID: c.id, userNm: c.name}
	g.page(at, v, "GET", "/account", "", 200, g.fast())
	at = at.Add(g.between(5*time.Second, 20*time.Second))
	reqID := g.page(at, v, "GET", "/admin", "", 403, g.fast())
	f := g.base(at.Add(time.Millisecond), "web", "denied", "authz_fail", "failure", 5)
	f.set("source.ip", v.ip)
	f.set("source.port", v.port)
	f.set("user.id", c.id)
	f.set("user.name", c.name)
	f.set("http.request.id", reqID)
	f.set("url.path", "/admin")
	f.set("user_agent.original", v.ua)
	f.set("message", fmt.Sprintf("%s is not allowed to open /admin", c.name))
	g.emit(f)
}
