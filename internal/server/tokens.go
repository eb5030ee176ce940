package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/httperr"
)

// maxTokenBody bounds the body of POST /api/v1/tokens.
const maxTokenBody = 4 << 10

// registerTokens adds the token API. auth.Entry.Allows keeps it to admin
// tokens. Creating and revoking a token are recorded in the log.
func (s *Server) registerTokens(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/tokens", s.requireToken(http.HandlerFunc(s.listTokens)))
	mux.Handle("POST /api/v1/tokens", s.requireToken(http.HandlerFunc(s.createToken)))
	mux.Handle("DELETE /api/v1/tokens/{name}", s.requireToken(http.HandlerFunc(s.revokeToken)))
}

// tokenView is a token as the API shows it: never its hash; the token
// itself only in the answer that creates it.
type tokenView struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Created string `json:"created"`
	Expires string `json:"expires,omitempty"`
	Token   string `json:"token,omitempty"`
}

func viewOf(e auth.Entry) tokenView {
	v := tokenView{Name: e.Name, Role: e.Role, Created: e.Created.UTC().Format(time.RFC3339)}
	if !e.Expires.IsZero() {
		v.Expires = e.Expires.UTC().Format(time.RFC3339)
	}
	return v
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		httperr.Msg(w, http.StatusBadRequest, "GET /api/v1/tokens takes no parameters")
		return
	}
	out := []tokenView{}
	for _, e := range s.tokens.List() {
		out = append(out, viewOf(e))
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name    string    `json:"name"`
		Role    string    `json:"role"`
		Expires time.Time `json:"expires"`
	}
	if !httperr.DecodeBody(w, r, maxTokenBody, `token (want {"name": "...", "role": "admin|ingest|read", "expires": optional RFC 3339 time})`, &req) {
		return
	}
	tok, e, err := s.tokens.Create(req.Name, req.Role, req.Expires)
	switch {
	case errors.Is(err, auth.ErrExists):
		httperr.Msg(w, http.StatusConflict, err.Error()+": revoke it first to replace it")
		return
	case errors.Is(err, auth.ErrInvalid):
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		httperr.Msg(w, http.StatusInternalServerError, err.Error())
		return
	}
	msg := "token " + e.Name + " created with role " + e.Role
	if !e.Expires.IsZero() {
		msg += ", expiring " + e.Expires.UTC().Format(time.RFC3339)
	}
	s.auditToken(r, "authn_token_created", "creation", e, msg)
	v := viewOf(e)
	v.Token = tok
	httperr.JSON(w, http.StatusCreated, v)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	e, err := s.tokens.Remove(r.PathValue("name"))
	switch {
	case errors.Is(err, auth.ErrNotFound):
		httperr.Msg(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, auth.ErrLastAdmin):
		httperr.Msg(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		httperr.Msg(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.auditToken(r, "authn_token_revoked", "deletion", e, "token "+e.Name+" (role "+e.Role+") revoked")
	httperr.JSON(w, http.StatusOK, viewOf(e))
}

// auditToken records a token's creation or revocation in the log, with the
// admin token that did it. The change is made either way; a failure to
// record it is logged.
func (s *Server) auditToken(r *http.Request, action, typ string, e auth.Entry, msg string) {
	who, _ := auth.FromContext(r.Context())
	err := s.auditChange(r, "iam", typ, action, map[string]any{"token": map[string]any{"name": e.Name, "role": e.Role}},
		func(who string) string { return msg + " by " + who })
	if err != nil {
		s.log.Error("record token change in the log", "action", action, "token", e.Name, "err", err)
	}
	s.log.Info("token change", "action", action, "token", e.Name, "role", e.Role, "by", who.Name)
}
