package tracer_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// skipRecorder is a SkipSink that records what it is told.
type skipRecorder struct {
	mu      sync.Mutex
	results []netip.Addr
	skipped map[netip.Addr]error
}

func (s *skipRecorder) Result(t *analysis.Trace) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results = append(s.results, t.Destination)
	return nil
}

func (s *skipRecorder) Skipped(t tracer.Target, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skipped[t.Addr] = err
}

// A SkipSink is told of every destination skipped, beyond the MaxSkips a
// Summary lists, and only of those.
func TestRunSkipSink(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(2), &tracertest.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	dsts := []netip.Addr{tracertest.DstAddr}
	for i := 1; i <= tracer.MaxSkips+3; i++ {
		dsts = append(dsts, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})) // no route in the simulator
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := tracer.Open(ctx, tracer.Config{Paths: 2, Network: n, Clock: n.Clock()}, tracer.Addrs(dsts...))
	if err != nil {
		t.Fatal(err)
	}
	rec := &skipRecorder{skipped: map[netip.Addr]error{}}
	sum, err := tr.Run(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.results) != 1 || rec.results[0] != tracertest.DstAddr {
		t.Errorf("results for %v, want only %v", rec.results, tracertest.DstAddr)
	}
	if len(rec.skipped) != len(dsts)-1 || sum.Skipped != int64(len(dsts)-1) {
		t.Fatalf("told of %d skipped, summary counts %d, want %d", len(rec.skipped), sum.Skipped, len(dsts)-1)
	}
	for _, a := range dsts[1:] {
		if err := rec.skipped[a]; !errors.Is(err, tracertest.ErrNoRoute) {
			t.Errorf("%v skipped for %v, want no route", a, err)
		}
	}
}
