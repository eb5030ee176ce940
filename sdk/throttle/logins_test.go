package throttle

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	ipA = netip.MustParseAddr("203.0.113.5")
	ipB = netip.MustParseAddr("198.51.100.8")
)

func TestLoginLockoutAndCoolOff(t *testing.T) {
	l := NewLogins(LoginConfig{})
	now := t0
	for i := 1; i <= 2; i++ {
		if _, ok := l.Allow(ipA, "alice", now); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		if l.Failed(ipA, "alice", now) {
			t.Fatalf("locked after %d failures", i)
		}
		now = now.Add(10 * time.Second)
	}
	if !l.Failed(ipA, "alice", now) {
		t.Fatal("not locked after 3 failures")
	}
	wait, ok := l.Allow(ipA, "alice", now)
	if ok || wait != DefaultCoolOff {
		t.Fatalf("Allow after lock = %v, %v", wait, ok)
	}
	// Locked by IP for another user, and by user from another IP.
	if _, ok := l.Allow(ipA, "bob", now); ok {
		t.Error("IP lock does not cover another user")
	}
	if _, ok := l.Allow(ipB, "ALICE", now); ok {
		t.Error("user lock does not cover another IP (or case)")
	}
	if _, ok := l.Allow(ipB, "bob", now); !ok {
		t.Error("unrelated login refused")
	}
	now = now.Add(DefaultCoolOff - time.Second)
	if _, ok := l.Allow(ipA, "alice", now); ok {
		t.Error("allowed before the cool-off ended")
	}
	now = now.Add(time.Second)
	if _, ok := l.Allow(ipA, "alice", now); !ok {
		t.Error("refused after the cool-off")
	}
	// The count starts again from zero.
	if l.Failed(ipA, "alice", now) || l.Failed(ipA, "alice", now) {
		t.Error("locked again before 3 new failures")
	}
}

func TestLoginFailuresExpire(t *testing.T) {
	l := NewLogins(LoginConfig{Limit: 3, CoolOff: time.Minute})
	now := t0
	l.Failed(ipA, "alice", now)
	l.Failed(ipA, "alice", now)
	now = now.Add(time.Minute)
	if l.Failed(ipA, "alice", now) {
		t.Error("failures older than the cool-off still counted")
	}
}

func TestLoginEscalation(t *testing.T) {
	l := NewLogins(LoginConfig{Limit: 1, CoolOff: time.Minute, Escalate: true, MaxCoolOff: 5 * time.Minute, LockBy: [][]string{{"ip"}}})
	now := t0
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		if !l.Failed(ipA, "", now) {
			t.Fatal("not locked")
		}
		wait, _ := l.Allow(ipA, "", now)
		if wait != want {
			t.Errorf("cool-off %v, want %v", wait, want)
		}
		now = now.Add(wait)
	}
	// After MaxCoolOff without failures the escalation starts over.
	now = now.Add(5 * time.Minute)
	l.Failed(ipA, "", now)
	if wait, _ := l.Allow(ipA, "", now); wait != time.Minute {
		t.Errorf("after a quiet period, cool-off %v", wait)
	}
}

func TestLoginLockGroups(t *testing.T) {
	tests := []struct {
		name                   string
		c                      LoginConfig
		otherUser, otherIP, ok bool
	}{
		// After 3 failures of (ipA, alice): is (ipA, bob) / (ipB, alice) allowed?
		{"default ip or user", LoginConfig{}, false, false, false},
		{"ip and user together", LoginConfig{LockBy: [][]string{{"ip", "user"}}}, true, true, false},
		{"ip only", LoginConfig{LockBy: [][]string{{"ip"}}}, false, true, false},
		{"no user lockout", LoginConfig{NoUserLockout: true}, false, true, false},
		{"no user lockout keeps ip+user", LoginConfig{NoUserLockout: true, LockBy: [][]string{{"user"}, {"ip", "user"}}}, true, true, false},
	}
	for _, tt := range tests {
		l := NewLogins(tt.c)
		for range 3 {
			l.Failed(ipA, "alice", t0)
		}
		_, ok := l.Allow(ipA, "alice", t0)
		_, otherUser := l.Allow(ipA, "bob", t0)
		_, otherIP := l.Allow(ipB, "alice", t0)
		if ok != tt.ok || otherUser != tt.otherUser || otherIP != tt.otherIP {
			t.Errorf("%s: same %v, other user %v, other IP %v; want %v %v %v", tt.name, ok, otherUser, otherIP, tt.ok, tt.otherUser, tt.otherIP)
		}
	}
}

func TestLoginSucceeded(t *testing.T) {
	l := NewLogins(LoginConfig{})
	l.Failed(ipA, "alice", t0)
	l.Failed(ipA, "alice", t0)
	l.Succeeded(ipA, "alice", t0)
	// The user's count is reset: two more failures as alice from another
	// address do not lock alice.
	l.Failed(ipB, "alice", t0)
	if l.Failed(ipB, "alice", t0) {
		t.Error("user count not reset by success")
	}
	// The address's count is not: a third failure from ipA locks it, even
	// for an attacker who logged in to their own account in between.
	if !l.Failed(ipA, "mallory", t0) {
		t.Error("IP count was reset by a success")
	}
}

func TestLoginConfigValidate(t *testing.T) {
	for _, c := range []LoginConfig{
		{LockBy: [][]string{{"ip", "email"}}},
		{LockBy: [][]string{{}}},
		{Limit: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `"email"`) {
			t.Errorf("NewLogins panic = %v", r)
		}
	}()
	NewLogins(LoginConfig{LockBy: [][]string{{"email"}}})
}

func TestLoginMemoryIsBounded(t *testing.T) {
	l := NewLogins(LoginConfig{MaxKeys: 512, LockBy: [][]string{{"ip"}, {"user"}}})
	// A locked attacker address, then a flood of usernames from elsewhere.
	for range 3 {
		l.Failed(ipA, "", t0)
	}
	for i := range 20000 {
		l.Failed(ipB, fmt.Sprintf("user%d", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.Len(); n > 512 {
		t.Errorf("%d groups tracked, cap 512", n)
	}
	if _, ok := l.Allow(ipA, "", t0.Add(30*time.Second)); ok {
		t.Error("the flood evicted a locked address")
	}
}

func TestSuccessfulLogins(t *testing.T) {
	s := SuccessfulLogins(2, time.Hour)
	s.Succeeded(ipA, "alice", t0)
	s.Succeeded(ipA, "bob", t0)
	if _, ok := s.Allow(ipA, "carol", t0); ok {
		t.Error("third successful login from one address allowed")
	}
	if _, ok := s.Allow(ipB, "carol", t0); !ok {
		t.Error("other address refused")
	}
	s.Succeeded(ipB, "dave", t0)
	s.Succeeded(netip.MustParseAddr("192.0.2.1"), "dave", t0)
	if wait, ok := s.Allow(netip.MustParseAddr("192.0.2.2"), "Dave", t0); ok || wait <= time.Hour-time.Minute {
		t.Errorf("third successful login of one user: %v %v", wait, ok)
	}
	if _, ok := s.Allow(ipA, "carol", t0.Add(time.Hour+2*time.Minute)); !ok {
		t.Error("still refused after the window")
	}
}
