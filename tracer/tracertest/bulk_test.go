package tracertest_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// A bulk scan's worth of probes: 4094 destinations of the destination's
// /20, 6 path IDs and 4 TTLs each (98,256 probes), sent 64 at a time every
// 100µs of virtual time; every probe is answered once, by the hop the
// ground truth names.
func TestBulk(t *testing.T) {
	testenv.SkipIfShort(t, "98,256 probes")
	const paths, ttls, batch = 6, 4, 64
	r := newRig(t, tracertest.Diamond(4), &tracertest.Options{Seed: 3}, probe.ProtoUDP, tracertest.DstAddr)
	r.spec.Paths = paths
	var dsts []netip.Addr
	for a := tracertest.DstPrefix.Addr().Next(); tracertest.DstPrefix.Contains(a.Next()); a = a.Next() {
		dsts = append(dsts, a)
	}
	type cell struct {
		dst       netip.Addr
		path, ttl int
	}
	var cells []cell
	for _, d := range dsts {
		for p := 1; p <= paths; p++ {
			for ttl := 1; ttl <= ttls; ttl++ {
				cells = append(cells, cell{d, p, ttl})
			}
		}
	}
	answered := map[cell]netip.Addr{}
	record := func(gs []got) {
		for _, g := range gs {
			c := cell{g.a.Dst, int(g.a.Path), int(g.a.TTL)}
			if _, dup := answered[c]; dup || !g.matched {
				t.Fatalf("reply %+v: matched %v, a duplicate %v", c, g.matched, dup)
			}
			answered[c] = g.a.From
		}
	}
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, probe.MaxProbeLen)
	}
	for start := 0; start < len(cells); start += batch {
		now := r.clock.Now()
		pkts := bufs[:min(batch, len(cells)-start)]
		for i := range pkts {
			c := cells[start+i]
			pkts[i] = pkts[i][:r.spec.Encode(pkts[i][:cap(pkts[i])], c.dst, c.path, c.ttl, now)]
		}
		if err := r.net.Send(0, pkts); err != nil {
			t.Fatal(err)
		}
		record(r.wait(100 * time.Microsecond))
	}
	record(r.wait(time.Second))
	if len(answered) != len(cells) {
		t.Fatalf("%d of %d probes answered", len(answered), len(cells))
	}
	for i, c := range cells {
		if i%97 != 0 { // the truth of a sample
			continue
		}
		ps, err := r.net.PathsOf(r.spec, c.dst, c.path)
		if err != nil || len(ps) != 1 || min(c.ttl, len(ps[0].Hops)) != c.ttl || ps[0].Hops[c.ttl-1] != answered[c] {
			t.Fatalf("%+v: answered by %v, truth %v (%v)", c, answered[c], ps, err)
		}
	}
	if s := r.net.Stats(); s.Sent != uint64(len(cells)) || s.Delivered != uint64(len(cells)) || r.net.Counters("r1").Probes != s.Sent {
		t.Errorf("stats %+v", s)
	}
}

// BenchmarkRoundTrip measures a probe's way through Diamond(4) and back
// to a matched answer, 64 probes (4 TTLs of 16 flows) a batch, with the
// quiet period off: the cost of the simulation, not of waiting.
func BenchmarkRoundTrip(b *testing.B) {
	r := newRig(b, tracertest.Diamond(4), &tracertest.Options{Quiet: -1}, probe.ProtoUDP, tracertest.DstAddr)
	pkts := make([][]byte, 64)
	for i := range pkts {
		pkts[i] = make([]byte, probe.MaxProbeLen)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(pkts) {
		now := r.clock.Now()
		for j := range pkts {
			pkts[j] = pkts[j][:r.spec.Encode(pkts[j][:cap(pkts[j])], tracertest.DstAddr, 1+j%16, 1+j/16, now)]
		}
		if err := r.net.Send(0, pkts); err != nil {
			b.Fatal(err)
		}
		if got := r.wait(10 * time.Millisecond); len(got) != len(pkts) {
			b.Fatalf("%d replies to %d probes", len(got), len(pkts))
		}
	}
}
