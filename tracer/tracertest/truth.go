package tracertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Path is a path through the network as a tracer sees it: the address
// that answers at each TTL.
type Path struct {
	// Hops holds the address answering the probes of TTL 1, 2, ...; an
	// invalid address for a node that does not answer (Silent). After a
	// Reject router, or a router without a route, its unreachable is
	// one TTL further. Silent hops at the end are left out.
	Hops []netip.Addr
	// Reached says the last hop is the destination's answer.
	Reached bool
}

// String returns the hops separated by spaces, "*" for a silent one, and
// " !" after a path that does not reach the destination.
func (p Path) String() string {
	var b strings.Builder
	for i, h := range p.Hops {
		if i > 0 {
			b.WriteByte(' ')
		}
		if h.IsValid() {
			b.WriteString(h.String())
		} else {
			b.WriteByte('*')
		}
	}
	if !p.Reached {
		b.WriteString(" !")
	}
	return b.String()
}

// Paths returns the distinct paths that the probes of a run of spec to
// dst follow with path IDs 1..spec.Paths, sorted by String. A path ID
// behind a per-packet balancer may follow any of its branches: each is
// counted. Losses and rate limits are not: these are the paths a tracer
// can find, not what one run of it saw.
func (n *Network) Paths(spec *probe.Spec, dst netip.Addr) ([]Path, error) {
	var all []Path
	for id := 1; id <= spec.Paths; id++ {
		ps, err := n.PathsOf(spec, dst, id)
		if err != nil {
			return nil, err
		}
		all = append(all, ps...)
	}
	return distinct(all), nil
}

// PathsOf returns the paths that the probes of path ID pathID of a run
// of spec to dst follow: one, unless a per-packet balancer is on the way.
func (n *Network) PathsOf(spec *probe.Spec, dst netip.Addr, pathID int) ([]Path, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("tracertest: paths: %w", err)
	}
	if dst.Is6() != spec.Src.Is6() || pathID < 1 || pathID > spec.Paths {
		return nil, errors.New("tracertest: paths: destination or path ID does not fit the spec")
	}
	// The flow of the probes is what a router hashes: read it from a
	// probe of the run.
	var buf [probe.MaxProbeLen]byte
	var p packet
	if err := parsePacket(buf[:spec.Encode(buf[:], dst, pathID, 1, spec.Epoch)], &p); err != nil {
		return nil, fmt.Errorf("tracertest: paths: the run's probe: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	w := walker{n: n, p: &p}
	w.walk(n.w.src)
	return distinct(w.out), nil
}

// AllPaths returns every path to dst that the topology has, whatever the
// flow, as UDP probes see them (what scripts/lab.sh describe prints for
// the lab), sorted by String.
func (n *Network) AllPaths(dst netip.Addr) []Path {
	p := packet{dst: dst, v6: dst.Is6(), proto: protoUDP}
	n.mu.Lock()
	defer n.mu.Unlock()
	w := walker{n: n, p: &p, every: true}
	w.walk(n.w.src)
	return distinct(w.out)
}

// walker follows a packet through the network without sending it:
// through every next hop where every is set or a node balances per
// packet, else through the one the node's hash picks.
type walker struct {
	n     *Network
	p     *packet
	every bool
	links []int32      // the way so far
	hops  []netip.Addr // what answers along it
	out   []Path
}

// walk goes on from node i, which the packet reached by w.links.
func (w *walker) walk(i int32) {
	world := w.n.w
	nd := &world.nodes[i]
	if i != world.src {
		if o, _ := world.owner(w.p.dst); o == i {
			kind := portUnreachable
			switch w.p.proto {
			case protoTCP:
				kind = tcpAnswer
			case protoICMP, protoICMPv6:
				kind = echoAnswer
			}
			w.emit(w.addr(i, kind), !nd.conf.Silent)
			return
		}
		w.hops = append(w.hops, w.addr(i, timeExceeded))
		defer func() { w.hops = w.hops[:len(w.hops)-1] }()
		if nd.conf.Reject {
			w.emit(w.addr(i, prohibited), false)
			return
		}
	}
	ls := world.nextLinks(i, w.p.dst)
	switch {
	case len(ls) == 0 && i == world.src:
		return
	case len(ls) == 0:
		w.emit(w.addr(i, noRoute), false)
		return
	case len(w.links) >= probe.MaxTTL:
		return
	case len(ls) > 1 && !w.every && !nd.conf.PerPacket:
		k := flowHash(nd.seed, w.p) % uint64(len(ls))
		ls = ls[k : k+1]
	}
	for _, l := range ls {
		w.links = append(w.links, l)
		w.walk(world.links[l].to)
		w.links = w.links[:len(w.links)-1]
	}
}

// addr returns what node i answers from (invalid when it is silent).
func (w *walker) addr(i int32, k answerKind) netip.Addr {
	if w.n.w.nodes[i].conf.Silent {
		return netip.Addr{}
	}
	return w.n.replyAddr(i, w.links, w.p, k)
}

// emit records the path so far, ending with last.
func (w *walker) emit(last netip.Addr, reached bool) {
	hops := append(slices.Clone(w.hops), last)
	for len(hops) > 0 && !hops[len(hops)-1].IsValid() {
		hops = hops[:len(hops)-1]
	}
	w.out = append(w.out, Path{Hops: hops, Reached: reached})
}

// distinct sorts paths by String and removes duplicates.
func distinct(paths []Path) []Path {
	slices.SortFunc(paths, func(a, b Path) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(paths, func(a, b Path) bool { return a.String() == b.String() })
}

// DistinctPaths returns the distinct paths of a trace as Path.String
// writes them, sorted: what a run found, to set beside what Network.Paths
// says the flows take.
func DistinctPaths(tr *analysis.Trace) []string {
	var out []string
	for _, up := range tr.UniquePaths() {
		out = append(out, Path{Hops: up.Hops, Reached: up.Reached}.String())
	}
	slices.Sort(out)
	return out
}

// FoundPaths traces dsts through a network of topo (seed, with the receive
// filter) as cfg says, and returns the distinct paths each destination's
// trace found (DistinctPaths), by address: what a run elsewhere, an agent
// say, on the same network must find.
func FoundPaths(topo *Topology, seed uint64, cfg tracer.Config, dsts []netip.Addr) (map[string][]string, error) {
	n, err := NewNetwork(topo, &Options{Seed: seed, Filter: true})
	if err != nil {
		return nil, err
	}
	cfg.Network, cfg.Clock = n, n.Clock()
	out := map[string][]string{}
	var mu sync.Mutex
	_, err = tracer.Trace(context.Background(), cfg, tracer.Addrs(dsts...), tracer.SinkFunc(func(tr *analysis.Trace) error {
		mu.Lock()
		defer mu.Unlock()
		out[tr.Destination.String()] = DistinctPaths(tr)
		return nil
	}))
	return out, err
}
