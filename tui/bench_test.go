package tui

import (
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// What the view costs the run: a probe sent and its answer recorded.
func BenchmarkStateObserve(b *testing.B) {
	s := NewState()
	dst := netip.MustParseAddr("10.99.0.1")
	a := probe.Answer{Dst: dst, From: netip.MustParseAddr("10.0.0.1"), RTT: time.Millisecond}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.Path, a.TTL = uint16(1+i%256), uint8(1+i/256%30)
		s.Sent(dst, int(a.Path), int(a.TTL))
		s.Answer(&a, true)
	}
}

// A frame: the snapshot of a finished 32-path-ID run of the 8-way
// diamond, its rows and lines at 80x24.
func BenchmarkFrame(b *testing.B) {
	r := simulate(b, "diamond8", tracer.Config{Paths: 32})
	b.ReportAllocs()
	for b.Loop() {
		Render(r.state.Snapshot(0), View{}, 80, 24)
	}
}
