// Package httperr writes Vigil's JSON error answers: every API error is a
// status code and a body {"error": "...", ...} that names the problem.
package httperr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Body is the JSON body of an error answer.
type Body struct {
	Error string `json:"error"`
	// Lines names the bad lines of a batch (1-based), when there are any.
	Lines []Line `json:"lines,omitempty"`
	// RetryAfter repeats the Retry-After header in seconds for 429 and 503.
	RetryAfter int `json:"retry_after,omitempty"`
}

// Line is one bad line of a batch.
type Line struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// Write sends status with a JSON body.
func Write(w http.ResponseWriter, status int, b Body) {
	if b.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(b.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(b)
}

// Msg sends status with the message msg.
func Msg(w http.ResponseWriter, status int, msg string) {
	Write(w, status, Body{Error: msg})
}

// JSON sends status with v encoded as JSON.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// DecodeBody reads r's body, at most max bytes, as one JSON object into v,
// refusing unknown fields and anything after the object. On failure it
// answers (413 past max, 400 otherwise, the message starting with what)
// and returns false.
func DecodeBody(w http.ResponseWriter, r *http.Request, max int64, what string, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		Msg(w, http.StatusBadRequest, "read body: "+err.Error())
		return false
	}
	if int64(len(body)) > max {
		Msg(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s larger than %d bytes", what, max))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		Msg(w, http.StatusBadRequest, what+": "+err.Error())
		return false
	}
	if dec.More() {
		Msg(w, http.StatusBadRequest, what+": more than one JSON value in the body")
		return false
	}
	return true
}
