package tracer_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// changingNetwork is a simulated network whose route of a router changes
// once, as `ip route replace` would, before the run's given batch of
// probes (the engine sends each MDA round as one batch).
type changingNetwork struct {
	*tracertest.Network
	t         *testing.T
	before    int // the batch, from 1
	batches   int
	sent      int
	node, pfx string
	via       []string
	changedAt int // probes sent before the change
}

func (n *changingNetwork) Send(link int, pkts [][]byte) error {
	if n.batches++; n.batches == n.before {
		if err := n.SetRoute(n.node, n.pfx, n.via...); err != nil {
			n.t.Error(err)
		}
		n.changedAt = n.sent
	}
	n.sent += len(pkts)
	return n.Network.Send(link, pkts)
}

// A per-flow r1 whose route to the destination is replaced by one of its
// two branches in the middle of the search: the flows that took the other
// answer from the new one when probed again, and only from it. That is a
// route change at r1, not a per-packet balancer.
func TestRouteChangeIsNoPerPacketBalancer(t *testing.T) {
	changed := 0
	for seed := uint64(1); seed <= 10; seed++ {
		topo := tracertest.Diamond(2)
		topo.Node("r3").InboundAddr = false // one address: flows one TTL on tell nothing
		sim, err := tracertest.NewNetwork(topo, &tracertest.Options{Seed: seed, Filter: true})
		if err != nil {
			t.Fatal(err)
		}
		n := &changingNetwork{Network: sim, t: t, before: 4, node: "r1", pfx: "10.99.0.0/20", via: []string{"a2"}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		tr, err := tracer.Open(ctx, tracer.Config{Network: n, Clock: sim.Clock()}, tracer.Addrs(tracertest.DstAddr))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var res *analysis.Trace
		_, err = tr.Run(ctx, tracer.SinkFunc(func(r *analysis.Trace) error { res = r; return nil }))
		cancel()
		if err != nil || res == nil {
			t.Fatalf("seed %d: Run = %v", seed, err)
		}
		if v := res.PerPacketVertices(); len(v) != 0 {
			t.Errorf("seed %d: per-packet balancers %v after a route change", seed, v)
		}
		if n.batches < n.before {
			// The search ended first (its flows all hashed to one
			// branch, say): nothing changed under it.
			t.Logf("seed %d: done in %d batches, %d probes, before the route changed", seed, n.batches, res.ProbesSent)
			continue
		}
		changed++
		t.Logf("seed %d: %d probes, the route changed after %d", seed, res.ProbesSent, n.changedAt)
		r1 := netip.MustParseAddr("10.0.0.1")
		if len(res.PerPacket) != 1 || !res.PerPacket[0].RouteChange || res.PerPacket[0].Vertex != r1 || res.PerPacket[0].TTL != 2 {
			t.Errorf("seed %d: per_packet %+v, want one route change after r1", seed, res.PerPacket)
		}
	}
	if changed < 5 {
		t.Errorf("the route changed under %d searches of 10: too few to tell", changed)
	}
}
