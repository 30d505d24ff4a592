package monitor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// hung is how long a test waits for what takes at most seconds before it
// fails as hung, on a machine however loaded.
const hung = 90 * time.Second

// event is an event as a reader of the JSON lines decodes it, without
// package monitor's types.
type event struct {
	Type          string       `json:"type"`
	Time          time.Time    `json:"time"`
	Destination   string       `json:"destination"`
	Name          string       `json:"name"`
	Reached       *bool        `json:"reached"`
	Paths         []eventPath  `json:"paths"`
	Status        string       `json:"status"`
	ReachedBefore bool         `json:"reached_before"`
	ReachedAfter  bool         `json:"reached_after"`
	PathsBefore   int          `json:"paths_before"`
	PathsAfter    int          `json:"paths_after"`
	Removed       []eventPath  `json:"removed"`
	Added         []eventPath  `json:"added"`
	Changed       []pathChange `json:"changed_paths"`
	Runs          int          `json:"runs"`
	Error         string       `json:"error"`
}

type eventPath struct {
	Hops    []*string `json:"hops"`
	Reached bool      `json:"reached"`
	PathIDs []int     `json:"path_ids"`
}

type pathChange struct {
	Before eventPath `json:"before"`
	After  eventPath `json:"after"`
	Hops   []struct {
		TTL    int     `json:"ttl"`
		Before *string `json:"before"`
		After  *string `json:"after"`
	} `json:"hops"`
}

// String gives the hops of a path as the text formats do.
func (p eventPath) String() string {
	s := make([]string, len(p.Hops))
	for i, h := range p.Hops {
		s[i] = "*"
		if h != nil {
			s[i] = *h
		}
	}
	return strings.Join(s, " ")
}

// run is a run of a destination, as the monitor's debug log tells it.
type run struct {
	dst, verdict string
	paths        int
}

// sim is a monitor running on a simulated network. Its hooks run inside
// the monitor, before it goes on: they may change the network (a route)
// at a known point of the runs, but not call the Monitor's methods.
type sim struct {
	t    *testing.T
	net  *tracertest.Network
	m    *monitor.Monitor
	stop context.CancelFunc
	done chan struct{} // closed when Run has returned runErr
	err  error

	mu      sync.Mutex
	events  []event
	runs    []run
	onEvent func(*sim, event)
	onRun   func(*sim, run)
	more    chan struct{}
}

type simOptions struct {
	topo    *tracertest.Topology
	seed    uint64
	cfg     tracer.Config
	mon     monitor.Config
	onEvent func(*sim, event)
	onRun   func(*sim, run)
}

// startSim opens the engine on the simulated network and runs the monitor
// until the test ends, or stop is called.
func startSim(t *testing.T, o simOptions) *sim {
	t.Helper()
	n, err := tracertest.NewNetwork(o.topo, &tracertest.Options{Seed: o.seed, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{t: t, net: n, done: make(chan struct{}), more: make(chan struct{}, 1), onEvent: o.onEvent, onRun: o.onRun}
	o.cfg.Network, o.cfg.Clock = n, n.Clock()
	o.mon.Clock = n.Clock()
	o.mon.Events = writerFunc(s.event)
	o.mon.Logger = slog.New(&runHandler{s: s})
	ctx, cancel := context.WithTimeout(context.Background(), hung)
	s.stop = cancel
	m, err := monitor.New(ctx, o.mon)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	tr, err := tracer.Open(ctx, o.cfg, m.Targets())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.m = m
	go func() {
		s.err = m.Run(ctx, tr, nil)
		close(s.done)
	}()
	t.Cleanup(func() { s.halt() })
	return s
}

// halt stops the monitor and returns what Run returned.
func (s *sim) halt() error {
	s.stop()
	select {
	case <-s.done:
		return s.err
	case <-time.After(hung):
		s.t.Fatal("the monitor did not stop")
		return nil
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// event records an event line; every Write is one line.
func (s *sim) event(b []byte) (int, error) {
	var e event
	if err := json.Unmarshal(b, &e); err != nil {
		s.t.Errorf("event %s: %v", b, err)
		return len(b), nil
	}
	if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
		s.t.Errorf("event %q is not one line", b)
	}
	if s.onEvent != nil {
		s.onEvent(s, e)
	}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.poke()
	return len(b), nil
}

func (s *sim) poke() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// runHandler takes the monitor's "run" debug lines to sim.
type runHandler struct{ s *sim }

func (h *runHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *runHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *runHandler) WithGroup(string) slog.Handler            { return h }

func (h *runHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "run" {
		return nil
	}
	var x run
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "dst":
			x.dst = a.Value.String()
		case "verdict":
			x.verdict = a.Value.String()
		case "paths":
			x.paths = int(a.Value.Int64())
		}
		return true
	})
	s := h.s
	if s.onRun != nil {
		s.onRun(s, x)
	}
	s.mu.Lock()
	s.runs = append(s.runs, x)
	s.mu.Unlock()
	s.poke()
	return nil
}

// await waits until cond holds of the events and runs so far.
func (s *sim) await(what string, cond func(events []event, runs []run) bool) {
	s.t.Helper()
	deadline := time.NewTimer(hung)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.events, s.runs)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.more:
		case <-s.done:
			s.t.Fatalf("the monitor stopped (%v) before %s", s.err, what)
		case <-deadline.C:
			s.t.Fatalf("no %s after %v", what, hung)
		}
	}
}

// snapshot returns a copy of the events and runs so far.
func (s *sim) snapshot() ([]event, []run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...), append([]run(nil), s.runs...)
}

func count[T any](xs []T, f func(T) bool) int {
	n := 0
	for _, x := range xs {
		if f(x) {
			n++
		}
	}
	return n
}

// scrape returns the metrics the monitor serves, by series ("name{labels}").
func scrape(t *testing.T, m *monitor.Monitor) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return parseExposition(t, rec.Body.Bytes())
}

func parseExposition(t *testing.T, b []byte) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// series names the series of a metric for a destination.
func series(name, dst string) string { return fmt.Sprintf("%s{destination=%q}", name, dst) }
