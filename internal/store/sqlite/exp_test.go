package sqlite

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// Temporary schema experiments; deleted before hand-off.
func BenchmarkExp(b *testing.B) {
	v := os.Getenv("VIGIL_EXP")
	orig := migrations[0]
	m := orig
	drop := func(substrs ...string) {
		var keep []string
		for _, l := range strings.Split(m, "\n") {
			skip := false
			for _, s := range substrs {
				if strings.Contains(l, s) {
					skip = true
				}
			}
			if !skip {
				keep = append(keep, l)
			}
		}
		m = strings.Join(keep, "\n")
	}
	for _, part := range strings.Split(v, ",") {
		switch part {
		case "nofts":
			m = strings.Replace(m, "CREATE VIRTUAL TABLE events_fts USING fts4(content=\"events\", message, tokenize=unicode61);", "CREATE TABLE events_fts(docid INTEGER PRIMARY KEY, message);", 1)
			m = strings.Replace(m, "CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN new.message IS NOT NULL", "CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN 0", 1)
		case "simple":
			m = strings.Replace(m, "tokenize=unicode61", "tokenize=simple", 1)
		case "contentless":
			m = strings.Replace(m, `content="events", `, `content="", `, 1)
		case "seg":
			for _, c := range []string{"source_ip", "user_name", "request_id"} {
				m = strings.Replace(m, "ON events("+c+")", "ON events(seq >> 16, "+c+")", 1)
			}
		case "page8k", "page16k", "page32k", "page64k":
			kb := map[string]string{"page8k": "8192", "page16k": "16384", "page32k": "32768", "page64k": "65536"}[part]
			n, _ := strconv.Atoi(kb)
			old := pageSize
			pageSize = n
			defer func() { pageSize = old }()
		case "noidx":
			drop("CREATE INDEX")
		case "norandidx":
			drop("INDEX events_source_ip", "INDEX events_user_name", "INDEX events_request_id")
		case "nouniq":
			m = strings.Replace(m, "event_id   TEXT NOT NULL UNIQUE", "event_id   TEXT NOT NULL", 1)
		}
	}
	migrations[0] = m
	defer func() { migrations[0] = orig }()
	opts := Options{}
	if strings.Contains(v, "big") {
		opts.MaxBatch = 50000
	}
	benchmarkAppend(b, 8, opts)
}
