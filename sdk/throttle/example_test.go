package throttle_test

import (
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/vigilsec/vigil/sdk/throttle"
)

func Example() {
	bans := &throttle.StaticBans{}
	lim, err := throttle.New(throttle.Config{
		Routes: map[string]throttle.RouteConfig{
			"GET /healthz": {Exempt: true},
			"POST /login":  {Validators: []throttle.Validator{throttle.PerIPRoute(10, time.Minute)}},
		},
		Enforcer: bans,
		OnLimit: func(r *http.Request, validator string, wait time.Duration) {
			log.Printf("excess_rate_limit_exceeded %s %s", r.RemoteAddr, validator)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	_ = http.Handler(lim.Middleware(mux)) // pass to http.ListenAndServe
}

func ExampleLogins() {
	logins := throttle.NewLogins(throttle.LoginConfig{Escalate: true})
	login := func(w http.ResponseWriter, r *http.Request) {
		ip := throttle.RemoteIP(r)
		user := r.FormValue("username")
		now := time.Now()
		if wait, ok := logins.Allow(ip, user, now); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(throttle.RetryAfterSeconds(wait)))
			http.Error(w, "too many failed logins", http.StatusTooManyRequests)
			return
		}
		if r.FormValue("password") == "correct" { // check the password here
			logins.Succeeded(ip, user, now)
			return
		}
		if logins.Failed(ip, user, now) {
			log.Printf("authn_login_lock %s %s", ip, user)
		}
		http.Error(w, "bad credentials", http.StatusUnauthorized)
	}
	_ = login
}
