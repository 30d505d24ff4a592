package mda

import (
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// collectorBenchProbe is one probe of a destination and its answer.
type collectorBenchProbe struct {
	path, ttl int
	from      netip.Addr
	reached   bool
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
	for i, r := range s.final.Rows {
		for j := range r {
			if o := &r[j]; o.Sent() {
				out = append(out, collectorBenchProbe{i + 1, j + 1, o.From(), o.Reached()})
			}
		}
	}
	if len(out) != 47 || len(s.final.Rows) != 21 {
		tb.Fatalf("%d probes over %d path IDs, want 47 over 21", len(out), len(s.final.Rows))
	}
	return out
}

// collectBench records the probes and their answers in c, as the prober does,
// and returns the trace.
func collectBench(c *analysis.Collector, probes []collectorBenchProbe) *analysis.Trace {
	for _, p := range probes {
		c.Sent(p.path, p.ttl)
	}
	for _, p := range probes {
		if !p.from.IsValid() {
			continue
		}
		typ, code := uint8(icmpTimeExceeded), uint8(0)
		if p.reached {
			typ, code = icmpUnreachable, codePortUnreachable
		}
		if c.Reply(p.path, p.ttl, p.from, time.Millisecond, typ, code, p.reached) {
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
			collectBench(analysis.NewCollector(simDst, "bench", src, 256, 30, 33000, 33434), probes)
		}
	})
	b.Run("reset", func(b *testing.B) {
		b.ReportAllocs()
		c := analysis.NewCollector(simDst, "bench", src, 256, 30, 33000, 33434)
		for b.Loop() {
			c.Reset(simDst, "bench")
			collectBench(c, probes)
		}
	})
}
