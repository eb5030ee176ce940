package shipper

// Tests against a real Vigil, started in this process from internal/server
// on 127.0.0.1 with a temporary data directory.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/server/servertest"
)

type stored struct {
	count   map[string]int // event.id → copies stored
	dropped uint64         // sum of labels.dropped of the Shipper's reports
	reports int
}

// storedEvents reads every event from Vigil's search API.
func storedEvents(t testing.TB, base string) stored {
	t.Helper()
	c := client.New(base, testToken)
	st := stored{count: map[string]int{}}
	after := uint64(0)
	for {
		res, err := c.Search(context.Background(), url.Values{"limit": {"10000"}, "after": {strconv.FormatUint(after, 10)}})
		if err != nil {
			t.Fatalf("search Vigil: %v", err)
		}
		if len(res.Events) == 0 {
			return st
		}
		for _, h := range res.Events {
			var e struct {
				Event struct {
					ID     string `json:"id"`
					Action string `json:"action"`
				} `json:"event"`
				Labels struct {
					Dropped uint64 `json:"dropped"`
				} `json:"labels"`
			}
			if err := json.Unmarshal(h.Event, &e); err != nil {
				t.Fatalf("stored event %s: %v", h.Event, err)
			}
			st.count[e.Event.ID]++
			if e.Event.Action == ReportAction {
				st.dropped += e.Labels.Dropped
				st.reports++
			}
			after = max(after, h.Seq)
		}
	}
}

// TestOutageWithRealVigil stops Vigil for a while under steady traffic, then
// starts it again on the same data directory and port. Every critical event
// must be stored exactly once, and the best-effort events missing from Vigil
// must be exactly the ones Stats().Dropped counts, which the Shipper's own
// events report too.
//
// The outage lasts 3 s by default; for the full minute:
//
//	VIGIL_SHIPPER_OUTAGE=60s go test -race -run TestOutageWithRealVigil -timeout 20m ./sdk/shipper/
func TestOutageWithRealVigil(t *testing.T) {
	outage := 3 * time.Second
	if s := os.Getenv("VIGIL_SHIPPER_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("VIGIL_SHIPPER_OUTAGE=%q: %v", s, err)
		}
		outage = d
	}
	const (
		beRate   = 1000 // best-effort events per second
		critRate = 50   // critical events per second, over critWorkers goroutines
		critWkrs = 5
	)
	// Size the spool so that the outage's critical events fit in the 10 %
	// kept for them, while the best-effort ones overflow their 90 %.
	critBytes := int64(critRate * outage.Seconds() * 450)
	spoolMax := max(15*critBytes, 4*64<<10)

	dataDir := filepath.Join(t.TempDir(), "vigil")
	v := servertest.Start(t, dataDir, "127.0.0.1:0", testToken)
	c := testConfig(t, v.URL)
	c.SpoolDir = filepath.Join(t.TempDir(), "spool")
	c.SpoolMaxBytes = spoolMax
	c.BatchBytes = 64 << 10
	c.BatchEvents = 500
	c.FlushInterval = 50 * time.Millisecond
	c.MaxBackoff = 500 * time.Millisecond
	c.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}

	type sent struct {
		id  string
		err error
	}
	var (
		wg        sync.WaitGroup
		stop      = make(chan struct{})
		beSent    []sent
		critSent  = make([][]sent, critWkrs)
		ctx       = context.Background()
		beTicker  = 10 * time.Millisecond
		critEvery = time.Second * critWkrs / critRate
	)
	wg.Add(1 + critWkrs)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(beTicker)
		defer tk.Stop()
		var buf []byte
		for n := 0; ; {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for range beRate / 100 {
				id := id("be", n)
				buf = appendEvent(buf[:0], id, n, false)
				beSent = append(beSent, sent{id, s.Send(ctx, buf, false)})
				n++
			}
		}
	}()
	for g := range critWkrs {
		go func() {
			defer wg.Done()
			tk := time.NewTicker(critEvery)
			defer tk.Stop()
			var buf []byte
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-tk.C:
				}
				id := fmt.Sprintf("crit-%d-%d", g, n)
				buf = appendEvent(buf[:0], id, n, true)
				critSent[g] = append(critSent[g], sent{id, s.Send(ctx, buf, true)})
			}
		}()
	}

	time.Sleep(time.Second)
	v.Stop()
	t.Logf("Vigil stopped for %v", outage)
	time.Sleep(outage)
	during := s.Stats()
	v = servertest.Start(t, dataDir, v.Addr, testToken)
	t.Log("Vigil started again")
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := s.Stats()
	t.Logf("during the outage: %+v", during)
	t.Logf("after Close: %+v", st)

	got := storedEvents(t, v.URL)
	critN := 0
	for _, list := range critSent {
		for _, e := range list {
			critN++
			if e.err != nil {
				t.Errorf("critical %s: Send returned %v", e.id, e.err)
			}
			if n := got.count[e.id]; n != 1 {
				t.Errorf("critical %s stored %d times, want exactly once", e.id, n)
			}
		}
	}
	missing, errFull := 0, 0
	for _, e := range beSent {
		n := got.count[e.id]
		if n > 1 {
			t.Errorf("best-effort %s stored %d times", e.id, n)
		}
		if errors.Is(e.err, ErrFull) {
			errFull++
			if n != 0 {
				t.Errorf("best-effort %s: Send said dropped (%v) but it was stored", e.id, e.err)
			}
		} else if e.err != nil {
			t.Errorf("best-effort %s: %v", e.id, e.err)
		}
		if n == 0 {
			missing++
		}
	}
	t.Logf("sent %d critical, %d best-effort; %d best-effort missing (%d refused by Send, %d dropped from the spool); %d drop reports say %d",
		critN, len(beSent), missing, errFull, missing-errFull, got.reports, got.dropped)
	if during.Spooled == 0 {
		t.Error("nothing was spooled during the outage")
	}
	if st.Dropped == 0 {
		t.Error("no best-effort event was dropped: the test did not fill the spool")
	}
	if uint64(missing) != st.Dropped {
		t.Errorf("%d best-effort events missing, Stats().Dropped = %d", missing, st.Dropped)
	}
	if got.dropped != st.Dropped {
		t.Errorf("drop reports in Vigil say %d, Stats().Dropped = %d", got.dropped, st.Dropped)
	}
	if st.Rejected != 0 || st.Lost != 0 || st.Queued != 0 || st.SpoolBytes != 0 {
		t.Errorf("after Close: rejected %d, lost %d, queued %d, spool %d bytes", st.Rejected, st.Lost, st.Queued, st.SpoolBytes)
	}
}

// TestCrashKillReplaysSpool kills (SIGKILL) a process sending critical
// events while Vigil is down, mid-write, then replays its spool with a new
// Shipper: every critical event whose Send had returned is stored once.
func TestCrashKillReplaysSpool(t *testing.T) {
	// A port where nothing listens: Vigil is down for the child.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()

	spoolDir := filepath.Join(t.TempDir(), "spool")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
	cmd.Env = append(os.Environ(), "VIGIL_SHIPPER_CRASH_SPOOL="+spoolDir, "VIGIL_SHIPPER_CRASH_URL="+deadURL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "durable "); ok {
			acked = append(acked, id)
		}
		if len(acked) == 300 && !killed {
			cmd.Process.Kill() // while it goes on sending
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("helper process ended after %d events without being killed", len(acked))
	}

	v := servertest.Start(t, filepath.Join(t.TempDir(), "vigil"), "127.0.0.1:0", testToken)
	c := testConfig(t, v.URL)
	c.SpoolDir = spoolDir
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := storedEvents(t, v.URL)
	for _, id := range acked {
		if got.count[id] != 1 {
			t.Errorf("critical %s: Send returned nil before the kill, stored %d times", id, got.count[id])
		}
	}
	t.Logf("%d critical events acknowledged before SIGKILL, %d events replayed from the spool", len(acked), s.Stats().Sent)
}

// TestCrashHelperProcess is the process TestCrashKillReplaysSpool kills.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv("VIGIL_SHIPPER_CRASH_SPOOL")
	if dir == "" {
		t.Skip("helper process of TestCrashKillReplaysSpool, runs only under it")
	}
	s, err := New(Config{URL: os.Getenv("VIGIL_SHIPPER_CRASH_URL"), Token: testToken, SpoolDir: dir,
		FlushInterval: 5 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	deadline := time.Now().Add(60 * time.Second)
	var buf []byte
	for i := 0; time.Now().Before(deadline); i++ {
		critical := i%3 == 0
		id := id("kill", i)
		buf = appendEvent(buf[:0], id, i, critical)
		err := s.Send(context.Background(), buf, critical)
		if critical && err == nil {
			fmt.Printf("durable %s\n", id)
		}
	}
	os.Exit(3)
}
