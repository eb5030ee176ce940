package alert

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Silence states.
const (
	SilencePending = "pending" // starts in the future
	SilenceActive  = "active"
	SilenceExpired = "expired"
)

// Limits of a silence's text fields.
const (
	MaxCreatedByLen = 256
	MaxCommentLen   = 4096
)

// Silence mutes notifications for the alerts its matchers select between
// StartsAt and EndsAt. Silenced alerts are still tracked and listed, marked
// with the silences that mute them.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Status is computed when read: pending, active or expired.
	Status string `json:"status,omitempty"`
}

// ErrNotFound is returned for an unknown alert fingerprint or silence ID.
var ErrNotFound = errors.New("not found")

// ErrTooManySilences is returned when max_silences silences exist.
var ErrTooManySilences = errors.New("too many silences")

// FieldError is bad input in a named field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// status returns the silence's state at now.
func (s *Silence) status(now time.Time) string {
	switch {
	case !now.Before(s.EndsAt):
		return SilenceExpired
	case now.Before(s.StartsAt):
		return SilencePending
	}
	return SilenceActive
}

// active reports whether the silence mutes alerts at now.
func (s *Silence) active(now time.Time) bool { return s.status(now) == SilenceActive }

// validate checks a silence before it is stored. New silences must end in
// the future; restored ones (fromSnapshot) may have expired.
func (s *Silence) validate(now time.Time, fromSnapshot bool) error {
	if len(s.Matchers) == 0 {
		return fieldErr("matchers", "at least one matcher is required")
	}
	if len(s.Matchers) > MaxMatchersInList {
		return fieldErr("matchers", "more than %d matchers", MaxMatchersInList)
	}
	selective := false
	for _, m := range s.Matchers {
		if m == nil {
			return fieldErr("matchers", "empty matcher")
		}
		if !m.Matches("") {
			selective = true
		}
	}
	if !selective {
		return fieldErr("matchers", "at least one matcher must not match an empty label, or the silence would mute every alert")
	}
	if s.StartsAt.IsZero() {
		return fieldErr("startsAt", "missing")
	}
	if s.EndsAt.IsZero() {
		return fieldErr("endsAt", "missing (set endsAt or duration)")
	}
	// A silence expired before it started ends when it starts.
	if s.EndsAt.Before(s.StartsAt) || (!fromSnapshot && s.EndsAt.Equal(s.StartsAt)) {
		return fieldErr("endsAt", "must be after startsAt")
	}
	if !fromSnapshot && !s.EndsAt.After(now) {
		return fieldErr("endsAt", "is in the past")
	}
	if s.CreatedBy == "" {
		return fieldErr("createdBy", "required: who creates the silence")
	}
	if len(s.CreatedBy) > MaxCreatedByLen || !utf8.ValidString(s.CreatedBy) {
		return fieldErr("createdBy", "longer than %d bytes or not UTF-8", MaxCreatedByLen)
	}
	if s.Comment == "" {
		return fieldErr("comment", "required: say why alerts are silenced")
	}
	if len(s.Comment) > MaxCommentLen || !utf8.ValidString(s.Comment) {
		return fieldErr("comment", "longer than %d bytes or not UTF-8", MaxCommentLen)
	}
	return nil
}

func newSilenceID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (s *Silence) clone() Silence {
	c := *s
	c.Matchers = append(Matchers(nil), s.Matchers...)
	return c
}
