package tracer_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// The MDA's per-packet test through simulated networks: a balancer that
// picks a next hop for every packet is named, at its vertex, in every run;
// per-flow ones never are; and the test costs per-flow diamonds little.

const perPacketSeeds = 20

// perPacketTopos are per-packet balancers, each with the vertex the run
// must name and the addresses beyond it that its draws must show.
var perPacketTopos = []struct {
	name   string
	topo   func() *tracertest.Topology
	vertex analysis.PerPacketVertex
	beyond []string // at vertex.TTL+1
}{
	{"r1 over 2", func() *tracertest.Topology { t, _ := tracertest.ByName("per-packet"); return t },
		analysis.PerPacketVertex{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1")}, []string{"10.1.1.2", "10.1.2.2"}},
	{"r1 over 4", func() *tracertest.Topology { t := tracertest.Diamond(4); t.Node("r1").PerPacket = true; return t },
		analysis.PerPacketVertex{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1")}, []string{"10.1.1.2", "10.1.2.2", "10.1.3.2", "10.1.4.2"}},
	// Behind r1, which balances per flow.
	{"b1 in nested", func() *tracertest.Topology { t := tracertest.Nested(); t.Node("b1").PerPacket = true; return t },
		analysis.PerPacketVertex{TTL: 2, Addr: netip.MustParseAddr("10.1.1.2")}, []string{"10.2.1.2", "10.2.2.2"}},
}

func TestPerPacketBalancerNamedAtItsVertex(t *testing.T) {
	for _, tc := range perPacketTopos {
		t.Run(tc.name, func(t *testing.T) {
			missed := 0
			for seed := uint64(1); seed <= perPacketSeeds; seed++ {
				r := run(t, tc.topo(), seed, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
				if r.err != nil || len(r.results) != 1 {
					t.Fatalf("seed %d: Run = %v, %d results", seed, r.err, len(r.results))
				}
				tr := r.results[0]
				if got := tr.PerPacketVertices(); !slices.Equal(got, []analysis.PerPacketVertex{tc.vertex}) {
					t.Errorf("seed %d: per-packet balancers %v, want %v (per_packet %v)", seed, got, tc.vertex, tr.PerPacket)
				}
				for _, pp := range tr.PerPacket {
					if len(pp.Addrs) < 2 || !slices.Contains(tc.beyond, pp.Addrs[0].String()) || pp.TTL != tc.vertex.TTL+1 {
						t.Errorf("seed %d: per_packet entry %+v: want two addresses of %v at TTL %d", seed, pp, tc.beyond, tc.vertex.TTL+1)
					}
				}
				if tr.MDA == nil || !tr.MDA.Complete || !reachedAll(tr) {
					t.Errorf("seed %d: mda %+v, every flow reached %v", seed, tr.MDA, reachedAll(tr))
				}
				if seen := addrsAt(tr, tc.vertex.TTL+1); !containsAll(seen, tc.beyond) {
					missed++
					t.Logf("seed %d: beyond the balancer %v, want %v (%d probes)", seed, seen, tc.beyond, tr.ProbesSent)
				}
			}
			// The stopping rule's 95%, counted over draws: 2 misses of 20
			// at most.
			if missed > 2 {
				t.Errorf("the balancer's next hops missed in %d of %d runs", missed, perPacketSeeds)
			}
		})
	}
}

// containsAll says whether every element of want is in got.
func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// reachedAll says whether every flow of tr reached the destination.
func reachedAll(tr *analysis.Trace) bool {
	for _, f := range tr.Flows {
		if !f.Reached {
			return false
		}
	}
	return len(tr.Flows) > 0
}

// addrsAt returns the addresses the flows of tr and the probes answered
// from several addresses show at ttl, sorted.
func addrsAt(tr *analysis.Trace, ttl int) []string {
	var out []string
	add := func(a netip.Addr) {
		if a.IsValid() && !slices.Contains(out, a.String()) {
			out = append(out, a.String())
		}
	}
	for _, f := range tr.Flows {
		if ttl <= len(f.Hops) {
			add(f.Hops[ttl-1].Addr)
		}
	}
	for _, pp := range tr.PerPacket {
		if pp.TTL == ttl {
			for _, a := range pp.Addrs {
				add(a)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestPerFlowBalancersNotNamed(t *testing.T) {
	for _, name := range []string{"diamond4", "diamond8", "nested", "unequal", "meshed", "asymmetric", "two-diamonds", "silent-branch", "filtered-branch", "lossy"} {
		t.Run(name, func(t *testing.T) {
			for seed := uint64(1); seed <= perPacketSeeds; seed++ {
				topo, _ := tracertest.ByName(name)
				r := run(t, topo, seed, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
				if r.err != nil || len(r.results) != 1 {
					t.Fatalf("seed %d: Run = %v, %d results", seed, r.err, len(r.results))
				}
				if tr := r.results[0]; len(tr.PerPacket) != 0 {
					t.Errorf("seed %d: per-packet %v in a network of per-flow balancers", seed, tr.PerPacket)
				}
			}
		})
	}
}

// The per-packet test adds at most 10% to the probes of the lab's
// per-flow diamonds, over the same seeds.
func TestPerPacketTestCost(t *testing.T) {
	defer tracer.SetPerPacketTest(tracer.SetPerPacketTest(true))
	for _, name := range []string{"diamond4", "diamond8", "nested"} {
		var without, with int
		for _, on := range []bool{false, true} {
			tracer.SetPerPacketTest(on)
			for seed := uint64(1); seed <= perPacketSeeds; seed++ {
				topo, _ := tracertest.ByName(name)
				r := run(t, topo, seed, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
				if r.err != nil || len(r.results) != 1 {
					t.Fatalf("%s seed %d: Run = %v, %d results", name, seed, r.err, len(r.results))
				}
				if on {
					with += r.results[0].ProbesSent
				} else {
					without += r.results[0].ProbesSent
				}
			}
		}
		t.Logf("%s: %d probes over %d seeds without the per-packet test, %d with (%+.1f%%)",
			name, without, perPacketSeeds, with, 100*float64(with-without)/float64(without))
		if 10*with > 11*without {
			t.Errorf("%s: %d probes with the per-packet test, %d without: more than 10%% more", name, with, without)
		}
	}
}
