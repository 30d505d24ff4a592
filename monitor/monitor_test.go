package monitor_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"

	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// load returns a Config.Load of fixed destinations.
func load(addrs ...string) func(context.Context) ([]tracer.Target, error) {
	return func(context.Context) ([]tracer.Target, error) {
		var ts []tracer.Target
		for _, a := range addrs {
			ts = append(ts, tracer.Target{Addr: netip.MustParseAddr(a), Name: a})
		}
		return ts, nil
	}
}

const dst = "10.99.0.1"

// withdraw and restore the branch of a4 at r1 of the 4-way diamond.
func withdraw(t *testing.T, n *tracertest.Network) {
	if err := n.SetRoute("r1", "10.99.0.0/20", "a1", "a2", "a3"); err != nil {
		t.Error(err)
	}
}

func restore(t *testing.T, n *tracertest.Network) {
	if err := n.SetRoute("r1", "10.99.0.0/20", "a1", "a2", "a3", "a4"); err != nil {
		t.Error(err)
	}
}

// A branch of the diamond withdrawn at r1 is reported once two runs in a
// row have shown it, naming the lost hops; given back, the change back is
// reported too. The metrics follow.
func TestPathChangeAndBack(t *testing.T) {
	var afterLoss map[string]float64
	s := startSim(t, simOptions{
		topo: tracertest.Diamond(4), seed: 3,
		cfg: tracer.Config{Paths: 16},
		mon: monitor.Config{Load: load(dst), Interval: 10 * time.Second},
		onEvent: func(s *sim, e event) {
			switch {
			case e.Type == monitor.Baseline:
				withdraw(t, s.net)
			case e.Type == monitor.PathChange && e.PathsAfter == 3:
				afterLoss = scrape(t, s.m)
				restore(t, s.net)
			}
		},
	})
	s.await("two path changes", func(es []event, _ []run) bool {
		return count(es, func(e event) bool { return e.Type == monitor.PathChange }) == 2
	})
	es, runs := s.snapshot()
	if len(es) != 3 || es[0].Type != monitor.Baseline || len(es[0].Paths) != 4 || !*es[0].Reached {
		t.Fatalf("events %+v", es)
	}
	lost, back := es[1], es[2]
	if lost.PathsBefore != 4 || lost.PathsAfter != 3 || len(lost.Removed) != 1 || len(lost.Added)+len(lost.Changed) != 0 || lost.Runs != 2 {
		t.Errorf("the loss: %+v", lost)
	} else if p := lost.Removed[0].String(); p != "10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1" {
		t.Errorf("removed path %s, want the branch of a4", p)
	}
	if back.PathsBefore != 3 || back.PathsAfter != 4 || len(back.Added) != 1 || !strings.Contains(back.Added[0].String(), " 10.1.4.2 ") {
		t.Errorf("the change back: %+v", back)
	}
	if n := count(runs, func(r run) bool { return r.verdict == "unconfirmed" }); n != 2 {
		t.Errorf("%d runs showed a change not confirmed yet, want 2 (one before each change): %v", n, runs)
	}
	for series, want := range map[string]float64{
		series("traceflow_paths", dst): 3, series("traceflow_path_changes_total", dst): 1,
		series("traceflow_reached", dst): 1, series("traceflow_hops", dst): 4,
		`traceflow_events_total{type="path_change"}`: 1, `traceflow_destinations`: 1,
	} {
		if got, ok := afterLoss[series]; !ok || got != want {
			t.Errorf("after the loss, %s = %v (%v), want %v", series, got, ok, want)
		}
	}
	now := scrape(t, s.m)
	if now[series("traceflow_paths", dst)] != 4 || now[series("traceflow_path_changes_total", dst)] != 2 ||
		now["traceflow_unconfirmed_changes_total"] != 2 || now["traceflow_probes_sent_total"] == 0 {
		t.Errorf("at the end: paths %v, changes %v, unconfirmed %v, probes %v", now[series("traceflow_paths", dst)],
			now[series("traceflow_path_changes_total", dst)], now["traceflow_unconfirmed_changes_total"], now["traceflow_probes_sent_total"])
	}
	if err := s.halt(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// A change seen in one run only is no change with Confirm 2 (the default),
// and is reported at once with Confirm 1.
func TestConfirm(t *testing.T) {
	for _, confirm := range []int{1, 2} {
		t.Run(strings.Repeat("I", confirm), func(t *testing.T) {
			n := 0
			s := startSim(t, simOptions{
				topo: tracertest.Line(2), seed: 1,
				cfg: tracer.Config{Paths: 1, Retries: tracer.NoRetries},
				mon: monitor.Config{Load: load(dst), Interval: 5 * time.Second, Confirm: confirm},
				onRun: func(s *sim, r run) {
					// One run, the second, goes another way.
					switch n++; n {
					case 1:
						if err := s.net.SetRoute("r2", "10.99.0.0/20"); err != nil {
							t.Error(err)
						}
					case 2:
						if err := s.net.SetRoute("r2", "10.99.0.0/20", "dst"); err != nil {
							t.Error(err)
						}
					}
				},
			})
			s.await("five runs", func(_ []event, runs []run) bool { return len(runs) >= 5 })
			es, runs := s.snapshot()
			changes := count(es, func(e event) bool { return e.Type != monitor.Baseline })
			if confirm == 2 && (changes != 0 || runs[1].verdict != "unconfirmed") {
				t.Errorf("Confirm 2: %d changes reported, runs %v", changes, runs)
			}
			if confirm == 1 && (changes != 2 || es[1].Type != monitor.Unreachable || es[2].Type != monitor.Reachable) {
				t.Errorf("Confirm 1: events %+v", es)
			}
			from := 2 // the runs after the one that went another way
			if confirm == 1 {
				from = 3 // and after the change back
			}
			if slices.ContainsFunc(runs[from:], func(r run) bool { return r.verdict != "same" }) {
				t.Errorf("runs after the one that went another way: %v", runs)
			}
		})
	}
}

// Reload adds and removes destinations: the new one gets its baseline,
// the old one stops, and its series go away.
func TestReload(t *testing.T) {
	var mu sync.Mutex
	list := []string{"10.99.0.1", "10.99.0.2"}
	loadList := func(ctx context.Context) ([]tracer.Target, error) {
		mu.Lock()
		defer mu.Unlock()
		return load(list...)(ctx)
	}
	s := startSim(t, simOptions{
		topo: tracertest.Diamond(2), seed: 5, cfg: tracer.Config{Paths: 8},
		mon: monitor.Config{Load: loadList, Interval: 4 * time.Second},
	})
	baselines := func(es []event) []string {
		var out []string
		for _, e := range es {
			if e.Type == monitor.Baseline {
				out = append(out, e.Destination)
			}
		}
		slices.Sort(out)
		return out
	}
	s.await("two baselines", func(es []event, _ []run) bool { return len(baselines(es)) == 2 })
	if m := scrape(t, s.m); m[series("traceflow_paths", "10.99.0.1")] != 2 || m["traceflow_destinations"] != 2 {
		t.Fatalf("before the reload: %v", m)
	}
	mu.Lock()
	list = []string{"10.99.0.2", "10.99.0.3"}
	mu.Unlock()
	if err := s.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, runs := s.snapshot()
	before := len(runs)
	s.await("the baseline of the destination added, and two more runs of the one kept", func(es []event, runs []run) bool {
		return len(baselines(es)) == 3 && count(runs[before:], func(r run) bool { return r.dst == "10.99.0.2" }) >= 2
	})
	es, runs := s.snapshot()
	if b := baselines(es); !slices.Equal(b, []string{"10.99.0.1", "10.99.0.2", "10.99.0.3"}) || len(es) != 3 {
		t.Errorf("events %+v", es)
	}
	if n := count(runs[before:], func(r run) bool { return r.dst == "10.99.0.1" }); n != 0 {
		t.Errorf("%d runs of the destination removed after the reload", n)
	}
	m := scrape(t, s.m)
	for k := range m {
		if strings.Contains(k, `"10.99.0.1"`) {
			t.Errorf("series %s of the destination removed is still there", k)
		}
	}
	if m[series("traceflow_paths", "10.99.0.3")] != 2 || m["traceflow_destinations"] != 2 {
		t.Errorf("after the reload: %v", m)
	}
	// A destination of the other family is refused; the list stays.
	mu.Lock()
	list = []string{"10.99.0.2", "fd00:99::1"}
	mu.Unlock()
	if err := s.m.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "fd00:99::1") {
		t.Errorf("reload with an IPv6 destination: %v", err)
	}
	if m := scrape(t, s.m); m["traceflow_destinations"] != 2 {
		t.Errorf("after a reload refused, %v destinations", m["traceflow_destinations"])
	}
}

// A destination without a route gets a baseline that says so, and is
// tried again every interval.
func TestNoRoute(t *testing.T) {
	s := startSim(t, simOptions{
		topo: tracertest.Line(2), seed: 2, cfg: tracer.Config{Paths: 2},
		mon: monitor.Config{Load: load(dst, "192.0.2.1"), Interval: 2 * time.Second},
	})
	s.await("three runs of the destination without a route", func(_ []event, runs []run) bool {
		return count(runs, func(r run) bool { return r.dst == "192.0.2.1" }) >= 3
	})
	es, _ := s.snapshot()
	i := slices.IndexFunc(es, func(e event) bool { return e.Destination == "192.0.2.1" })
	if i < 0 || es[i].Type != monitor.Baseline || *es[i].Reached || len(es[i].Paths) != 0 || !strings.Contains(es[i].Error, "no route") {
		t.Fatalf("events %+v", es)
	}
	if n := count(es, func(e event) bool { return e.Destination == "192.0.2.1" }); n != 1 {
		t.Errorf("%d events for the destination without a route, want its baseline only", n)
	}
	m := scrape(t, s.m)
	if m[series("traceflow_reached", "192.0.2.1")] != 0 || m[series("traceflow_paths", "192.0.2.1")] != 0 || m[series("traceflow_reached", dst)] != 1 {
		t.Errorf("metrics %v", m)
	}
}

// A run that outlasts the interval delays the next one, which follows it
// at once, and is counted; the destination is never handed to the engine
// while in flight (the engine would drop it, and the monitor wait
// forever).
func TestOverrun(t *testing.T) {
	topo := tracertest.Line(2)
	topo.Node("dst").Silent = true // every run waits out its probes
	s := startSim(t, simOptions{
		topo: topo, seed: 4, cfg: tracer.Config{Paths: 1, Wait: time.Second},
		mon: monitor.Config{Load: load(dst), Interval: time.Second},
	})
	s.await("four runs", func(_ []event, runs []run) bool { return len(runs) >= 4 })
	m := scrape(t, s.m)
	if m["traceflow_run_overruns_total"] < 3 {
		t.Errorf("%v overruns after 4 runs of several seconds at an interval of 1 s", m["traceflow_run_overruns_total"])
	}
	if m["traceflow_run_duration_seconds_count"] < 4 || m["traceflow_run_duration_seconds_sum"] < 4 {
		t.Errorf("run durations: %v runs, %v s", m["traceflow_run_duration_seconds_count"], m["traceflow_run_duration_seconds_sum"])
	}
}

// The first runs of a list are spread over the interval, one in each
// interval/N, not sent at once.
func TestSpread(t *testing.T) {
	var addrs []string
	for i := 1; i <= 8; i++ {
		addrs = append(addrs, fmt.Sprintf("10.99.1.%d", i))
	}
	s := startSim(t, simOptions{
		topo: tracertest.Diamond(2), seed: 6, cfg: tracer.Config{Paths: 4},
		mon: monitor.Config{Load: load(addrs...), Interval: 8 * time.Second, Seed: 9},
	})
	s.await("eight baselines", func(es []event, _ []run) bool { return len(es) == 8 })
	es, _ := s.snapshot()
	var at []time.Duration
	for _, e := range es {
		at = append(at, e.Time.Sub(tracertest.Start))
	}
	slices.Sort(at)
	for k, d := range at {
		// Each run starts in its slot and ends a few ms later, or, when
		// the simulator's clock moves on before the engine has read an
		// answer (it moves after 300 µs of real time without a call, which
		// a loaded machine can exceed), after a probe's timeout: one run
		// in a full suite ended 0.7 s after its slot. Not before the slot
		// is what shows the spread.
		if lo, hi := time.Duration(k)*time.Second, time.Duration(k+2)*time.Second; d < lo || d >= hi {
			t.Errorf("the run %d of 8 ended %v after the start, want within %v..%v", k+1, d, lo, hi)
		}
	}
}

// Hop RTT series are bounded per destination, the lowest TTLs first, and
// the exposition passes promtool check metrics.
func TestHopSeries(t *testing.T) {
	s := startSim(t, simOptions{
		topo: tracertest.Diamond(4), seed: 7, cfg: tracer.Config{Paths: 16},
		mon: monitor.Config{Load: load(dst), Interval: 5 * time.Second, HopSeries: 3},
	})
	s.await("the baseline", func(es []event, _ []run) bool { return len(es) == 1 })
	m := scrape(t, s.m)
	var hops []string
	for k, v := range m {
		if strings.HasPrefix(k, "traceflow_hop_rtt_seconds{") {
			hops = append(hops, k)
			if v <= 0 || v > 1 {
				t.Errorf("%s = %v", k, v)
			}
		}
	}
	slices.Sort(hops)
	want := []string{
		`traceflow_hop_rtt_seconds{destination="10.99.0.1",hop="10.0.0.1",ttl="1"}`,
		`traceflow_hop_rtt_seconds{destination="10.99.0.1",hop="10.1.1.2",ttl="2"}`,
		`traceflow_hop_rtt_seconds{destination="10.99.0.1",hop="10.1.2.2",ttl="2"}`,
	}
	if !slices.Equal(hops, want) {
		t.Errorf("hop series\n%s\nwant\n%s", strings.Join(hops, "\n"), strings.Join(want, "\n"))
	}
	// Links are 1 ms each way: r1 answers in 2 ms.
	if got := m[want[0]]; got != 0.002 {
		t.Errorf("RTT of r1 %v s, want 0.002", got)
	}
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	rec := httptest.NewRecorder()
	s.m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = rec.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Over IPv6 the same: a baseline, then a branch withdrawn is a change.
func TestIPv6(t *testing.T) {
	s := startSim(t, simOptions{
		topo: tracertest.Diamond(4), seed: 11, cfg: tracer.Config{Paths: 16},
		mon: monitor.Config{Load: load("fd00:99::1"), Interval: 5 * time.Second},
		onEvent: func(s *sim, e event) {
			if e.Type == monitor.Baseline {
				if err := s.net.SetRoute("r1", "fd00:99::/64", "a1", "a2", "a3"); err != nil {
					t.Error(err)
				}
			}
		},
	})
	s.await("a path change", func(es []event, _ []run) bool { return len(es) == 2 })
	es, _ := s.snapshot()
	if len(es[0].Paths) != 4 || es[1].Type != monitor.PathChange || len(es[1].Removed) != 1 ||
		es[1].Removed[0].String() != "fd00::1 fd00:1:4::2 fd00:2:4::2 fd00:99::1" {
		t.Errorf("events %+v", es)
	}
}

// Config.OnRound is told of every run, in order, with the result and the
// event it raised: the same events as those written, at the run's end.
func TestOnRound(t *testing.T) {
	var mu sync.Mutex
	var rounds []monitor.Round
	s := startSim(t, simOptions{
		topo: tracertest.Diamond(4), seed: 3, cfg: tracer.Config{Paths: 16},
		mon: monitor.Config{Load: load(dst), Interval: 10 * time.Second, OnRound: func(r monitor.Round) {
			mu.Lock()
			rounds = append(rounds, r)
			mu.Unlock()
		}},
		onEvent: func(s *sim, e event) {
			if e.Type == monitor.Baseline {
				withdraw(t, s.net)
			}
		},
	})
	s.await("a path change", func(es []event, _ []run) bool {
		return count(es, func(e event) bool { return e.Type == monitor.PathChange }) == 1
	})
	if err := s.halt(); err != nil {
		t.Fatal(err)
	}
	es, runs := s.snapshot()
	mu.Lock()
	defer mu.Unlock()
	if len(rounds) != len(runs) || len(runs) < 3 {
		t.Fatalf("told of %d rounds, the monitor logged %d runs", len(rounds), len(runs))
	}
	var told []monitor.Round
	for i, r := range rounds {
		if r.Target.Addr.String() != dst || r.Trace == nil || r.Trace.Destination != r.Target.Addr || !r.Trace.End.Equal(r.End) {
			t.Errorf("round %d: %+v", i+1, r)
		}
		if i > 0 && r.End.Before(rounds[i-1].End) {
			t.Errorf("round %d ended at %v, before the one told before it (%v)", i+1, r.End, rounds[i-1].End)
		}
		if r.Event != nil {
			told = append(told, r)
		}
	}
	if len(told) != len(es) {
		t.Fatalf("%d rounds told with an event, %d events written", len(told), len(es))
	}
	for i, r := range told {
		if r.Event.Type != es[i].Type || !r.Event.Time.Truncate(time.Millisecond).Equal(es[i].Time) || !r.Event.Time.Equal(r.End) {
			t.Errorf("event %d: told %s at %v (round end %v), written %s at %v", i+1, r.Event.Type, r.Event.Time, r.End, es[i].Type, es[i].Time)
		}
	}
	if d := told[len(told)-1].Event.Diff; d == nil || len(d.Removed) != 1 || d.PathsAfter != 3 {
		t.Errorf("the change told: %+v", d)
	}
}
