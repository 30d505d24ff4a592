package mda

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// mdaBenchSearch is one adaptive search, recorded for the benchmarks: the
// state Plan saw at each round, and the trace and state FillInferred gets
// at the end.
type mdaBenchSearch struct {
	rounds []*State
	final  *State
	trace  *analysis.Trace
	hops   int // in the trace's flows
	col    *analysis.Collector
}

// cloneState returns a copy of st with rows of its own: the Collector's
// change as the search goes on.
func cloneState(st *State) *State {
	c := *st
	c.Rows = nil
	for _, r := range st.Rows {
		c.Rows = append(c.Rows, slices.Clone(r))
	}
	return &c
}

// recordMDASearch runs the search of topo with seed as simulate does and
// records it.
func recordMDASearch(topo *simTopo, seed uint64) mdaBenchSearch {
	s := &simRun{topo: topo, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	st := &State{MaxTTL: simMaxTTL, GapLimit: simGap, OneFirstHop: true}
	col := newSimCollector(simMaxPaths)
	for ttl := 1; ttl <= simMaxTTL; ttl++ {
		if s.send(col, 1, ttl).reached {
			break
		}
	}
	var rec mdaBenchSearch
	for {
		st.Rows = col.Rows(st.Rows[:0])
		rec.rounds = append(rec.rounds, cloneState(st))
		cells, _ := Plan(st, 0.95, simMaxPaths)
		if len(cells) == 0 {
			break
		}
		st.Rounds++
		for _, c := range cells {
			s.send(col, c.PathID, c.TTL)
		}
	}
	rec.final, rec.col = st, col
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

// BenchmarkMDAPlan measures Plan over the rounds of one destination's
// search.
func BenchmarkMDAPlan(b *testing.B) {
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		for _, st := range s.rounds {
			Plan(st, 0.95, simMaxPaths)
		}
	})
}

// traceCopier copies a trace's flows and hops into memory it keeps, so
// that FillInferred, which edits them, gets the same input each time.
type traceCopier struct {
	t     analysis.Trace
	flows []analysis.Flow
	hops  []analysis.Hop
}

func (c *traceCopier) copy(s *mdaBenchSearch) *analysis.Trace {
	c.t = *s.trace
	c.flows = append(c.flows[:0], s.trace.Flows...)
	if cap(c.hops) < s.hops {
		c.hops = make([]analysis.Hop, s.hops)
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
// Plan at every round, then FillInferred.
func BenchmarkMDASearch(b *testing.B) {
	var c traceCopier
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		for _, st := range s.rounds {
			Plan(st, 0.95, simMaxPaths)
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
		if _, complete := Plan(s.final, 0.95, simMaxPaths); !complete {
			t.Errorf("%s: search not complete", topo.name)
		}
		want := fmt.Sprint(FillInferred(s.trace, s.final, 0.95), s.trace.Flows)
		s = recordMDASearch(topo, 1)
		if got := fmt.Sprint(FillInferred(c.copy(&s), s.final, 0.95), c.t.Flows); got != want {
			t.Errorf("%s: FillInferred on a copy gives %s, want %s", topo.name, got, want)
		}
	}
}

// BenchmarkMDARows measures the handing of a destination's probes to the
// planner, as the prober does before each round: the Collector's rows,
// into the State's.
func BenchmarkMDARows(b *testing.B) {
	benchMDA(b, func(b *testing.B, s *mdaBenchSearch) {
		st := s.rounds[0] // a state of this destination's to hand them to
		st.Rows = s.col.Rows(st.Rows[:0])
	})
}
