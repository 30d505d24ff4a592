package tracertest_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// rig drives a Network as an engine does: one goroutine reads the
// replies and matches them, the test's goroutine sends probes and waits
// through a Timer of the network's clock.
type rig struct {
	t     testing.TB
	net   *tracertest.Network
	clock tracer.Clock
	spec  *probe.Spec
	rx    tracer.Receiver
	got   chan got
	done  chan struct{}
	timer tracer.Timer
}

// got is a packet a rig received.
type got struct {
	pkt     []byte
	ts      time.Time
	a       probe.Answer
	matched bool
}

// newRig opens a network on topo and a run of proto to dst's family.
func newRig(t testing.TB, topo *tracertest.Topology, opts *tracertest.Options, proto probe.Proto, dst netip.Addr) *rig {
	t.Helper()
	n, err := tracertest.NewNetwork(topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	route, err := n.Route(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	tag, release, err := n.ReserveTag()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	r := &rig{t: t, net: n, clock: n.Clock(), got: make(chan got), done: make(chan struct{})}
	r.spec = &probe.Spec{
		Src: route.Src, BaseSrcPort: 33000, DstPort: 33434, Paths: 2000,
		Proto: proto, Tag: tag, Epoch: r.clock.Now(),
	}
	r.listen(r.spec)
	r.timer = r.clock.NewTimer()
	return r
}

// listen opens a receiver for spec, matching with spec's Matcher.
func (r *rig) listen(spec *probe.Spec) {
	rx, err := r.net.Listen(spec)
	if err != nil {
		r.t.Fatal(err)
	}
	r.rx = rx
	r.t.Cleanup(func() { close(r.done); rx.Close() })
	m := probe.NewMatcher(spec)
	go func() {
		for {
			_, err := rx.ReadBatch(func(pkt []byte, ts time.Time) {
				g := got{pkt: slices.Clone(pkt), ts: ts}
				var rep probe.Reply
				g.matched = m.Match(g.pkt, ts, &rep, &g.a)
				select {
				case r.got <- g:
				case <-r.done:
				}
			})
			if err != nil {
				return
			}
		}
	}()
}

// send sends the probe (dst, path, ttl) now and returns when it was sent.
func (r *rig) send(dst netip.Addr, path, ttl int) time.Time {
	r.t.Helper()
	now := r.clock.Now()
	b := make([]byte, probe.MaxProbeLen)
	b = b[:r.spec.Encode(b, dst, path, ttl, now)]
	if err := r.net.Send(0, [][]byte{b}); err != nil {
		r.t.Fatal(err)
	}
	return now
}

// wait collects what arrives within d of virtual time.
func (r *rig) wait(d time.Duration) []got {
	r.timer.Reset(d)
	var out []got
	for {
		select {
		case g := <-r.got:
			out = append(out, g)
		case <-r.timer.C():
			return out
		}
	}
}

// one sends a probe and returns its only reply, which must match.
func (r *rig) one(dst netip.Addr, path, ttl int) (got, time.Time) {
	r.t.Helper()
	sent := r.send(dst, path, ttl)
	g := r.wait(time.Second)
	if len(g) != 1 || !g[0].matched {
		r.t.Fatalf("probe to %v path %d TTL %d: %d replies, want one that matches", dst, path, ttl, len(g))
	}
	return g[0], sent
}
