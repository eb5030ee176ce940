package retention

import (
	"strings"

	"github.com/vigilsec/vigil/internal/event"
)

// Type is the kind of record a purge selects, after django-security-logger's
// log types.
type Type string

// The purge types and how events map onto them (by event.action, as the
// SDK writes them):
const (
	InputRequest  Type = "input_request"  // event.action http_request (sdk middleware)
	OutputRequest Type = "output_request" // event.action http_request_outgoing (sdk transport)
	Command       Type = "command"        // event.action command_run (sdk commands)
	JobType       Type = "job"            // event.action job_run (sdk background jobs)
	Audit         Type = "audit"          // every other event (OWASP actions, Vigil's own)
)

// Types lists the purge types.
var Types = []Type{InputRequest, OutputRequest, Command, JobType, Audit}

// Valid reports whether t is one of Types.
func (t Type) Valid() bool {
	for _, x := range Types {
		if t == x {
			return true
		}
	}
	return false
}

func typeNames() string {
	s := make([]string, len(Types))
	for i, t := range Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// TypeOf returns the purge type of e.
func TypeOf(e *event.Event) Type {
	switch e.Action {
	case event.ActionHTTPRequest:
		return InputRequest
	case event.ActionHTTPRequestOutgoing:
		return OutputRequest
	case event.ActionCommandRun:
		return Command
	case event.ActionJobRun:
		return JobType
	}
	return Audit
}

// ActionPurge is the action of the audit event each purge batch appends.
// Events with this action are never purged: they are the record of what
// retention removed.
const ActionPurge = "vigil_purge"
