package tracertest_test

import (
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// pace sends count probes of TTL ttl to dst, batch at a time every
// interval of virtual time, and returns how many were answered.
func (r *rig) pace(ttl, count, batch int, interval time.Duration) int {
	r.t.Helper()
	answered := 0
	for sent := 0; sent < count; sent += batch {
		for i := 0; i < batch; i++ {
			r.send(tracertest.DstAddr, 1+(sent+i)%r.spec.Paths, ttl)
		}
		answered += len(r.wait(interval))
	}
	return answered + len(r.wait(time.Second))
}

// A router limited to L errors a second answers about L/P of probes sent
// at P a second, the burst aside: the global bucket (icmp_msgs_per_sec)
// and the per-destination one (icmp_ratelimit).
func TestRateLimit(t *testing.T) {
	for _, c := range []struct {
		name     string
		limit    tracertest.RateLimit
		count    int
		batch    int
		interval time.Duration
		lo, hi   int // answers expected
	}{
		// 1000 probes/s for 2 s against 100/s, burst 10: 10 + 200.
		{"global", tracertest.RateLimit{PerSec: 100, Burst: 10}, 2000, 10, 10 * time.Millisecond, 200, 215},
		// The same with Linux 6's random cost (1 on average).
		{"global random cost", tracertest.RateLimit{PerSec: 100, Burst: 10, RandomCost: true}, 2000, 10, 10 * time.Millisecond, 150, 280},
		// 20 probes/s for 10 s against 1/s, burst 6: 6 + 10.
		{"per source", tracertest.RateLimit{Interval: time.Second}, 200, 1, 50 * time.Millisecond, 15, 16},
		// Linux's defaults at 1000/s for 2 s: the per-source limit rules.
		{"linux", tracertest.LinuxRateLimit, 2000, 10, 10 * time.Millisecond, 7, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			topo := tracertest.Line(1)
			topo.Node("r1").RateLimit = c.limit
			r := newRig(t, topo, nil, probe.ProtoUDP, tracertest.DstAddr)
			start := r.clock.Now()
			got := r.pace(1, c.count, c.batch, c.interval)
			ctr := r.net.Counters("r1")
			t.Logf("%d of %d probes answered in %v", got, c.count, r.clock.Now().Sub(start))
			if got < c.lo || got > c.hi || ctr.Replies != uint64(got) || ctr.Replies+ctr.RateLimited != uint64(c.count) {
				t.Errorf("%d of %d probes answered in %v, want %d..%d; counters %+v",
					got, c.count, r.clock.Now().Sub(start), c.lo, c.hi, ctr)
			}
			// Echo replies and the destination's port unreachables
			// beyond r1 are not r1's errors.
			if n := r.pace(2, 50, 50, time.Millisecond); n != 50 {
				t.Errorf("%d of 50 probes to the destination answered", n)
			}
		})
	}
}

// A budget is the node's: a second node on the way spends its own.
func TestRateLimitPerNode(t *testing.T) {
	topo := tracertest.Line(2)
	for _, name := range []string{"r1", "r2", "dst"} {
		topo.Node(name).RateLimit = tracertest.RateLimit{Interval: time.Second}
	}
	r := newRig(t, topo, nil, probe.ProtoUDP, tracertest.DstAddr)
	for ttl := 1; ttl <= 3; ttl++ {
		if n := r.pace(ttl, 10, 10, time.Millisecond); n != 6 {
			t.Errorf("TTL %d: %d of 10 answered at once, want a burst of 6", ttl, n)
		}
	}
}

// Losses: a node that drops 30% of what reaches it, a link that loses 10%
// each way.
func TestLoss(t *testing.T) {
	topo := tracertest.Line(2)
	topo.Node("r1").Loss = 0.3
	r := newRig(t, topo, nil, probe.ProtoUDP, tracertest.DstAddr)
	got := r.pace(1, 1000, 100, time.Millisecond)
	ctr := r.net.Counters("r1")
	if got < 640 || got > 760 || ctr.Lost+ctr.Replies != 1000 || ctr.Probes != 1000 {
		t.Errorf("30%% loss: %d of 1000 answered, counters %+v", got, ctr)
	}

	topo = tracertest.Line(2)
	topo.Edge(tracertest.Source, "r1").Loss = 0.1
	r = newRig(t, topo, nil, probe.ProtoUDP, tracertest.DstAddr)
	got = r.pace(2, 1000, 100, time.Millisecond)
	ctr, s := r.net.Counters("r2"), r.net.Stats()
	// 0.9 there, 0.9 back: 810, sd 12.
	if got < 750 || got > 870 || ctr.Replies-ctr.RepliesLost != uint64(got) || s.LinkLost+ctr.Probes != 1000 {
		t.Errorf("10%% link loss: %d of 1000 answered, counters %+v, stats %+v", got, ctr, s)
	}
}

// The same seed gives the same run; another seed another one.
func TestSeed(t *testing.T) {
	run := func(seed uint64) (answers []int) {
		topo, _ := tracertest.ByName("lossy")
		r := newRig(t, topo, &tracertest.Options{Seed: seed}, probe.ProtoUDP, tracertest.DstAddr)
		for ttl := 1; ttl <= 4; ttl++ {
			for _, g := range r.sendFlows(tracertest.DstAddr, 200, ttl) {
				answers = append(answers, ttl<<16|int(g.a.Path))
			}
		}
		return answers
	}
	a, b, c := run(1), run(1), run(2)
	if len(a) == 0 || len(a) == 800 {
		t.Fatalf("%d of 800 answered on lossy links", len(a))
	}
	if !equalInts(a, b) {
		t.Error("two runs with seed 1 differ")
	}
	if equalInts(a, c) {
		t.Error("seeds 1 and 2 lose the same probes")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
