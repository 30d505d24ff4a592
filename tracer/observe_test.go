package tracer

import (
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// countObserver counts what it is told, without allocating.
type countObserver struct {
	sent, answers, first int
	dst                  netip.Addr
}

func (o *countObserver) Sent(dst netip.Addr, path, ttl int) {
	o.sent++
	o.dst = dst
}

func (o *countObserver) Answer(a *probe.Answer, first bool) {
	o.answers++
	if first {
		o.first++
	}
}

// Telling an Observer of probes sent and answers received allocates
// nothing, and neither does the run's bookkeeping without one.
func TestObserverDoesNotAllocate(t *testing.T) {
	dst := netip.MustParseAddr("198.51.100.7")
	for _, obs := range []*countObserver{nil, {}} {
		var o Observer
		if obs != nil {
			o = obs
		}
		r := &run{t: &Tracer{cfg: Config{Observer: o}, log: discard}, slots: make([]dest, 1)}
		r.sc = &scanner{Schedule: schedule{Paths: 4, MaxTTL: 8, GapLimit: 2, Timeout: time.Second}, Window: 1}
		r.sc.init()
		if _, ok := r.sc.q.Admit(dst); !ok {
			t.Fatal("admit")
		}
		r.slots[0].col = analysis.NewCollector(dst, "", netip.MustParseAddr("192.0.2.1"), 4, 8, 33452, 33452)
		a := probe.Answer{Dst: dst, Path: 2, TTL: 3, From: netip.MustParseAddr("203.0.113.1"), RTT: time.Millisecond}
		n := 0
		allocs := testing.AllocsPerRun(1000, func() {
			r.sent(probeRef{Slot: 0, Path: 2, TTL: 3})
			r.answer(0, &a, n == 0)
			n++
		})
		if allocs != 0 {
			t.Errorf("observer %v: %v allocations per probe and answer, want 0", obs != nil, allocs)
		}
		if obs != nil && (obs.sent != n || obs.answers != n || obs.first != 1 || obs.dst != dst) {
			t.Errorf("observer told of %d probes to %v, %d answers (%d first), want %d to %v, %d (1 first)",
				obs.sent, obs.dst, obs.answers, obs.first, n, dst, n)
		}
	}
}
