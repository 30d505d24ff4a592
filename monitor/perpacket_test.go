package monitor_test

import (
	"slices"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// Behind a per-packet balancer each run draws other distinct paths over
// the same branches: no change, even reported at once (Confirm 1).
func TestPerPacketDrawsAreNoChange(t *testing.T) {
	topo := tracertest.Diamond(4)
	topo.Node("r1").PerPacket = true
	s := startSim(t, simOptions{
		topo: topo, seed: 5,
		mon: monitor.Config{Load: load(dst), Interval: 10 * time.Second, Confirm: 1},
	})
	s.await("six runs", func(_ []event, runs []run) bool { return len(runs) >= 6 })
	es, runs := s.snapshot()
	if len(es) == 0 || es[0].Type != monitor.Baseline || len(es[0].Paths) < 4 {
		t.Fatalf("events %+v", es)
	}
	if n := count(es, func(e event) bool { return e.Type != monitor.Baseline }); n != 0 {
		t.Errorf("%d changes reported behind a per-packet balancer: %+v", n, es[1:])
	}
	if slices.ContainsFunc(runs[1:], func(r run) bool { return r.verdict != "same" }) {
		t.Errorf("runs %v, want every one after the first the same", runs)
	}
	// The runs did draw other distinct paths: what was compared is a
	// set, not the paths.
	counts := map[int]bool{}
	for _, r := range runs {
		counts[r.paths] = true
	}
	if len(counts) < 2 {
		t.Errorf("every run drew %d distinct paths: nothing told the draws apart (runs %v)", runs[0].paths, runs)
	}
}
