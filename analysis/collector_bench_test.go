package analysis

import (
	"net/netip"
	"testing"
	"time"
)

// collectorBenchProbe is one probe of a destination and its answer.
type collectorBenchProbe struct {
	path, ttl int
	o         MDAObs
}

// collectorBenchProbes returns the probes of an adaptive search of the
// lab's 4-branch diamond: 21 path IDs over 4 TTLs, 47 probes.
func collectorBenchProbes(tb testing.TB) []collectorBenchProbe {
	var topo *simTopo
	for _, t := range labTopologies() {
		if t.name == "lab-diamond4" {
			topo = t
		}
	}
	s := recordMDASearch(topo, 1)
	var out []collectorBenchProbe
	for _, r := range s.final.Flows {
		for i, o := range r.Hops {
			if o.Probed {
				out = append(out, collectorBenchProbe{r.PathID, i + 1, o})
			}
		}
	}
	if len(out) != 47 || len(s.final.Flows) != 21 {
		tb.Fatalf("%d probes over %d path IDs, want 47 over 21", len(out), len(s.final.Flows))
	}
	return out
}

// collectBench records the probes and their answers in c, as the prober does,
// and returns the trace.
func collectBench(c *Collector, probes []collectorBenchProbe) *Trace {
	for _, p := range probes {
		c.Sent(p.path, p.ttl)
	}
	for _, p := range probes {
		if !p.o.Addr.IsValid() {
			continue
		}
		typ, code := uint8(11), uint8(0)
		if p.o.Reached {
			typ, code = icmpUnreachable, codePortUnreachable
		}
		if c.Reply(p.path, p.ttl, p.o.Addr, time.Millisecond, typ, code, p.o.Reached) {
			c.Details(p.path, p.ttl, 60, 1, 56)
		}
	}
	return c.Trace(time.Time{}, time.Time{}, false)
}

// BenchmarkCollector measures the Collector's work for one destination of
// an adaptive run (256 path IDs and 30 TTLs at most): a new Collector, or
// one Reset after the previous destination, as the prober reuses them.
func BenchmarkCollector(b *testing.B) {
	probes := collectorBenchProbes(b)
	src := netip.MustParseAddr("192.0.2.100")
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			collectBench(NewCollector(simDst, "bench", src, 256, 30, 33000, 33434), probes)
		}
	})
	b.Run("reset", func(b *testing.B) {
		b.ReportAllocs()
		c := NewCollector(simDst, "bench", src, 256, 30, 33000, 33434)
		for b.Loop() {
			c.Reset(simDst, "bench")
			collectBench(c, probes)
		}
	})
}
