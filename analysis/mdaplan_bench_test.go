package analysis

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// mdaBenchSearch is one adaptive search, recorded for the benchmarks: the
// state PlanMDA saw at each round, and the trace and state FillInferred
// gets at the end.
type mdaBenchSearch struct {
	rounds []*MDAState
	final  *MDAState
	trace  *Trace
	hops   int // in the trace's flows
}

// cloneMDAState returns a deep copy of st.
func cloneMDAState(st *MDAState) *MDAState {
	c := &MDAState{MaxTTL: st.MaxTTL, GapLimit: st.GapLimit, OneFirstHop: st.OneFirstHop, Rounds: st.Rounds}
	for _, r := range st.Flows {
		c.Flows = append(c.Flows, MDAFlowRow{PathID: r.PathID, Hops: append([]MDAObs(nil), r.Hops...)})
	}
	return c
}

// recordMDASearch runs the search of topo with seed as simulate does and
// records it.
func recordMDASearch(topo *simTopo, seed uint64) mdaBenchSearch {
	s := &simRun{topo: topo, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	st := &MDAState{MaxTTL: simMaxTTL, GapLimit: simGap, OneFirstHop: true}
	col := NewCollector(simDst, "sim", netip.MustParseAddr("192.0.2.100"), simMaxPaths, simMaxTTL, 33000, 33434)
	send := func(p, ttl int) MDAObs {
		o := s.probe(p, ttl)
		st.Set(p, ttl, o)
		col.Sent(p, ttl)
		if o.Addr.IsValid() {
			typ, code := uint8(11), uint8(0)
			if o.Reached || o.Stop {
				typ, code = icmpUnreachable, codePortUnreachable
			}
			col.Reply(p, ttl, o.Addr, time.Millisecond, typ, code, o.Reached)
		}
		return o
	}
	for ttl := 1; ttl <= simMaxTTL; ttl++ {
		if send(1, ttl).Reached {
			break
		}
	}
	var rec mdaBenchSearch
	for {
		rec.rounds = append(rec.rounds, cloneMDAState(st))
		cells, _ := PlanMDA(st, 0.95, simMaxPaths)
		if len(cells) == 0 {
			break
		}
		st.Rounds++
		for _, c := range cells {
			send(c.PathID, c.TTL)
		}
	}
	rec.final = st
	rec.trace = col.Trace(time.Time{}, time.Time{}, false)
	for _, f := range rec.trace.Flows {
		rec.hops += len(f.Hops)
	}
	return rec
}

// mdaBenchTopologies are the lab's topologies, as the prober sees them.
func mdaBenchTopologies() []*simTopo {
	var out []*simTopo
	for _, t := range labTopologies() {
		if t.name != "lab-unequal" {
			out = append(out, t)
		}
	}
	return out
}

const mdaBenchSeeds = 16

// benchMDA runs fn over the searches of each lab topology, one search (a
// destination) per op.
func benchMDA(b *testing.B, fn func(b *testing.B, s *mdaBenchSearch)) {
	for _, topo := range mdaBenchTopologies() {
		searches := make([]mdaBenchSearch, mdaBenchSeeds)
		for i := range searches {
			searches[i] = recordMDASearch(topo, uint64(i+1))
		}
		b.Run(topo.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				fn(b, &searches[i%len(searches)])
				i++
			}
		})
	}
}

// BenchmarkMDAPlan measures PlanMDA over the rounds of one destination's
// search.
func BenchmarkMDAPlan(b *testing.B) {
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		for _, st := range s.rounds {
			PlanMDA(st, 0.95, simMaxPaths)
		}
	})
}

// traceCopier copies a trace's flows and hops into memory it keeps, so
// that FillInferred, which edits them, gets the same input each time.
type traceCopier struct {
	t     Trace
	flows []Flow
	hops  []Hop
}

func (c *traceCopier) copy(s *mdaBenchSearch) *Trace {
	c.t = *s.trace
	c.flows = append(c.flows[:0], s.trace.Flows...)
	if cap(c.hops) < s.hops {
		c.hops = make([]Hop, s.hops)
	}
	off := 0
	for i := range c.flows {
		n := copy(c.hops[off:], c.flows[i].Hops)
		c.flows[i].Hops = c.hops[off : off+n : off+n]
		off += n
	}
	c.t.Flows = c.flows
	return &c.t
}

// BenchmarkMDAFillInferred measures FillInferred at the end of one
// destination's search (with a copy of its trace, which allocates
// nothing).
func BenchmarkMDAFillInferred(b *testing.B) {
	var c traceCopier
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		FillInferred(c.copy(s), s.final, 0.95)
	})
}

// BenchmarkMDASearch measures the planner's work for one destination:
// PlanMDA at every round, then FillInferred.
func BenchmarkMDASearch(b *testing.B) {
	var c traceCopier
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		for _, st := range s.rounds {
			PlanMDA(st, 0.95, simMaxPaths)
		}
		FillInferred(c.copy(s), s.final, 0.95)
	})
}

// TestMDABenchSearches checks that the benchmarks' searches are what they
// stand for: complete, and the copies of their traces what FillInferred
// gets in the prober.
func TestMDABenchSearches(t *testing.T) {
	var c traceCopier
	for _, topo := range mdaBenchTopologies() {
		s := recordMDASearch(topo, 1)
		if _, complete := PlanMDA(s.final, 0.95, simMaxPaths); !complete {
			t.Errorf("%s: search not complete", topo.name)
		}
		want := fmt.Sprint(FillInferred(s.trace, s.final, 0.95), s.trace.Flows)
		s = recordMDASearch(topo, 1)
		if got := fmt.Sprint(FillInferred(c.copy(&s), s.final, 0.95), c.t.Flows); got != want {
			t.Errorf("%s: FillInferred on a copy gives %s, want %s", topo.name, got, want)
		}
	}
}

// BenchmarkMDAStateSet measures the rebuilding of a destination's state
// from its probes, as the prober does before each round: the rows are
// reset (Flows[:0]) and set again, path ID by path ID and TTL by TTL.
func BenchmarkMDAStateSet(b *testing.B) {
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		st := s.rounds[0] // a state of this destination's to rebuild
		*st = MDAState{Flows: st.Flows[:0], MaxTTL: simMaxTTL, GapLimit: simGap, OneFirstHop: true}
		for _, r := range s.final.Flows {
			for i, o := range r.Hops {
				if o.Probed {
					st.Set(r.PathID, i+1, o)
				}
			}
		}
	})
}
