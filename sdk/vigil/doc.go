// Package vigil records the security events of a Go web application and
// sends them to Vigil: every request served and made, logins and other
// audit events named after the OWASP Logging Vocabulary, background jobs and
// commands, log/slog records, and Prometheus metrics. It uses the standard
// library only (and the SDK's redact and shipper packages).
//
//	s, err := shipper.New(shipper.Config{URL: "https://vigil.internal:8080", Token: os.Getenv("VIGIL_TOKEN")})
//	if err != nil { ... }
//	c, err := vigil.New(vigil.Config{Service: "shop", Release: version, Sink: s})
//	if err != nil { ... }
//	defer c.Close(shutdownCtx)
//
//	mux := http.NewServeMux()
//	mux.Handle("POST /login", c.Route("POST /login", loginHandler, vigil.Slug("login")))
//	mux.Handle("GET /metrics", c.Metrics())
//	http.ListenAndServe(":8000", c.Middleware(mux))
//
//	// in loginHandler:
//	if !ok {
//		c.LoginFailed(r.Context(), username, "bad password")
//	}
//
// Events are JSON objects with Elastic Common Schema field names, written as
// flat dotted keys ("url.path"), as docs/event-schema.md of the Vigil
// repository describes; docs/sdk.md lists the fields of each event. Secrets
// are hidden by a redact.Redactor before an event leaves the process.
//
// The hot path, a request through Middleware, encodes its event by hand
// into a pooled buffer and allocates twice (the request's context and the
// copy of the request that carries it).
package vigil
