// Package throttle limits request rates, locks out brute-force logins and
// enforces bans. It imports only the standard library.
//
// # Request limits
//
// A Limiter runs Validators on every request, as django-security-logger's
// throttling validators do: by default 20 requests a minute and 1,000 an
// hour from one IP address (DefaultValidators). A validator counts the
// requests that proceeded in a sliding window, not counting the current
// one, and refuses when the count reaches its limit. A refused request gets
// 429 with Retry-After and {"error":"too many requests","retry_after":N};
// refused requests are not counted.
//
//	lim, err := throttle.New(throttle.Config{
//		Routes: map[string]throttle.RouteConfig{
//			"GET /healthz": {Exempt: true},
//			"POST /login":  {Validators: []throttle.Validator{throttle.PerIPRoute(5, time.Minute)}},
//		},
//		OnLimit: func(r *http.Request, v string, wait time.Duration) { /* log excess_rate_limit_exceeded */ },
//	})
//	http.ListenAndServe(addr, lim.Middleware(mux))
//
// Middleware wrapped around a ServeMux finds the mux's pattern for each
// request (r.Pattern is still empty there), so Routes can be keyed by
// pattern. With another router, wrap single handlers with Limiter.Route
// instead; Routes keyed by path work everywhere.
//
// Behind a reverse proxy, set Config.ClientIP: by default the address is
// RemoteAddr, which is then the proxy's, and all clients would share one
// limit.
//
// # Memory and accuracy
//
// Windows count in Buckets (30) buckets per key, so the hourly limit costs
// the same as the minute one; a request counts for between one window and
// one window plus a bucket (never less, so a client never gets more than
// the limit in any window). Keys are hashed, swept once per window when
// idle, and capped (DefaultMaxKeys per validator, about 10 MB); see Window
// for what happens at the cap.
//
// Allow and Record are separate calls, so under concurrency a few requests
// more than the limit can pass (at most one per request in flight for the
// same key).
//
// # Logins
//
// Logins counts failed logins per lock group (by IP, by user, by both, as
// configured) and locks a group for a cool-off after Limit failures (3 and
// 5 minutes by default, as django-defender), optionally escalating.
// SuccessfulLogins limits successful logins, as django-security-logger's
// successful-login validator.
//
// # Bans
//
// An Enforcer (StaticBans in memory, or VigilBans, which FollowVigil keeps
// in step with Vigil's decision stream) is checked before the validators: a "ban" decision on the IP, a
// range holding it, or the user gets 403 {"error":"forbidden"}; a
// "throttle" decision gets 429 until it ends. Exempt IPs and exempt routes
// are exempt from limits, not from bans.
package throttle
