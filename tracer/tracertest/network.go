package tracertest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

var (
	_ tracer.Network  = (*Network)(nil)
	_ tracer.Receiver = (*receiver)(nil)
)

// ErrNoRoute is what Route returns for a destination that the Source has
// no route to.
var ErrNoRoute = errors.New("tracertest: no route to host")

// Iface is the interface name of every Route.
const Iface = "sim0"

// Start is the instant a virtual clock starts at, unless Options.Start
// says otherwise.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Options tune a Network. The zero value (or nil) is a virtual clock
// starting at Start, seed 0, no filter.
type Options struct {
	// Seed seeds the ECMP hashes, the per-packet balancers and the
	// losses: a run is the same for the same seed.
	Seed uint64
	// RealTime makes the network run on the system clock, replies
	// arriving after their delay in real time, instead of on a virtual
	// clock.
	RealTime bool
	// Start is when the virtual clock starts (default: Start).
	Start time.Time
	// Quiet is the real time that must pass without a call into the
	// network before the virtual clock moves on (default 300µs; see the
	// package documentation). Negative: none.
	Quiet time.Duration
	// Stall is the real time after which the virtual clock moves on even
	// though the engine does not seem to wait (default 500 ms; negative:
	// never).
	Stall time.Duration
	// Tag is the first run tag ReserveTag returns (default: one derived
	// from Seed).
	Tag uint16
	// Filter applies the run's classic BPF receive filter (package bpf)
	// to the replies before a Receiver gets them, as the kernel would.
	Filter bool
	// QueueLen is how many replies a Receiver holds before it drops
	// them (counted in its Stats); 0 is no limit.
	QueueLen int
}

// Network is a simulated network, usable as a tracer.Network. Its
// methods are safe for concurrent use.
type Network struct {
	opts Options
	w    *world

	mu        sync.Mutex
	cond      *sync.Cond // signalled when a receiver's queue grows or it closes
	closed    bool
	now       time.Time // virtual time
	waiting   bool      // Timer.C called since the last call into the network
	waitingOn *vtimer
	gen       uint64 // counts calls into the network
	armed     []*vtimer
	pending   replyHeap
	seq       uint64
	receivers []*receiver
	free      [][]byte
	tags      map[uint16]bool
	stats     Stats
	path      []int32 // scratch for simulate

	kick     chan struct{}
	done     chan struct{}
	loopDone chan struct{}
}

// NewNetwork returns a network that simulates t (a copy of it: later
// changes to t do not show). Close it when done.
func NewNetwork(t *Topology, o *Options) (*Network, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Start.IsZero() {
		opts.Start = Start
	}
	if opts.Quiet == 0 {
		opts.Quiet = 300 * time.Microsecond
	}
	if opts.Stall == 0 {
		opts.Stall = 500 * time.Millisecond
	}
	if opts.Tag > probe.MaxTag {
		return nil, fmt.Errorf("tracertest: tag %d out of 1..%d", opts.Tag, probe.MaxTag)
	}
	w, err := compile(t, opts.Seed)
	if err != nil {
		return nil, err
	}
	n := &Network{
		opts: opts, w: w, now: opts.Start, tags: map[uint16]bool{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), loopDone: make(chan struct{}),
	}
	n.cond = sync.NewCond(&n.mu)
	if opts.RealTime {
		go n.realLoop()
	} else {
		go n.clockLoop()
	}
	return n, nil
}

// Clock returns the network's clock: virtual, or the system's with
// Options.RealTime. A run on this network must use it.
func (n *Network) Clock() tracer.Clock {
	if n.opts.RealTime {
		return realClock{}
	}
	return virtualClock{n}
}

// Route returns the Source's address of dst's family, Link 0 and Iface;
// ErrNoRoute when the Source has no route to dst.
func (n *Network) Route(ctx context.Context, dst netip.Addr) (tracer.Route, error) {
	if err := ctx.Err(); err != nil {
		return tracer.Route{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return tracer.Route{}, net.ErrClosed
	}
	if !dst.IsValid() || len(n.w.nextLinks(n.w.src, dst)) == 0 {
		return tracer.Route{}, fmt.Errorf("%w %v", ErrNoRoute, dst)
	}
	src := &n.w.nodes[n.w.src]
	a := src.addr4
	if dst.Is6() {
		a = src.addr6
	}
	return tracer.Route{Src: a, Link: 0, Iface: Iface}, nil
}

// ReserveTag returns Options.Tag (or a tag derived from the seed), or the
// next one free when another run holds it.
func (n *Network) ReserveTag() (uint16, func(), error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	start := int(n.opts.Tag)
	if start == 0 {
		start = 1 + int(mix(n.opts.Seed)%probe.MaxTag)
	}
	for i := 0; i < probe.MaxTag; i++ {
		tag := uint16(1 + (start-1+i)%probe.MaxTag)
		if !n.tags[tag] {
			n.tags[tag] = true
			return tag, sync.OnceFunc(func() {
				n.mu.Lock()
				delete(n.tags, tag)
				n.mu.Unlock()
			}), nil
		}
	}
	return 0, nil, errors.New("tracertest: every run tag is reserved")
}

// Send simulates each packet at the current time: its way through the
// network, and the reply it provokes, which a Receiver gets when it is
// due. Packets that are not IPv4 or IPv6 probes (UDP, TCP, ICMP echo
// requests) are counted in Stats.Malformed and dropped.
func (n *Network) Send(link int, pkts [][]byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return net.ErrClosed
	}
	if link != 0 {
		return fmt.Errorf("tracertest: send: no link %d", link)
	}
	n.activity()
	now := n.time()
	for _, p := range pkts {
		n.stats.Sent++
		n.simulate(p, now)
	}
	n.wake()
	return nil
}

// Close closes the network and its receivers.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, r := range n.receivers {
		r.closed = true
	}
	n.receivers = nil
	n.cond.Broadcast()
	close(n.done)
	n.mu.Unlock()
	<-n.loopDone
	return nil
}

// Stats are counters of the whole network.
type Stats struct {
	Sent uint64 // packets given to Send
	// Malformed counts packets that were not simulated: not IPv4 or
	// IPv6, a bad IPv4 header checksum, a length beyond the packet, not
	// UDP, TCP or an ICMP echo request.
	Malformed uint64
	// BadChecksum counts probes that their destination dropped for a
	// wrong transport checksum.
	BadChecksum uint64
	NoRoute     uint64 // packets the Source had no route for
	LinkLost    uint64 // probes lost on links (Link.Loss)
	Delivered   uint64 // replies handed to receivers (once per receiver)
	Filtered    uint64 // replies a receiver's filter dropped
}

// Counters count what happened at one node.
type Counters struct {
	Probes      uint64 // probes that reached the node
	Lost        uint64 // of those, lost there (Node.Loss)
	Replies     uint64 // replies the node sent
	RateLimited uint64 // replies its RateLimit suppressed
	// RepliesLost counts its replies lost on their way back
	// (Node.ReplyLoss, Link.Loss).
	RepliesLost uint64
}

// Stats returns the network's counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Counters returns the counters of the named node (zero for no such
// node).
func (n *Network) Counters(node string) Counters {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i, ok := n.w.byName[node]; ok {
		return n.w.nodes[i].ctr
	}
	return Counters{}
}

// Addr returns the address the named node answers from by default:
// IPv6 when v6, else IPv4 (invalid for no such node).
func (n *Network) Addr(node string, v6 bool) netip.Addr {
	i, ok := n.w.byName[node]
	switch {
	case !ok:
		return netip.Addr{}
	case v6:
		return n.w.nodes[i].addr6
	}
	return n.w.nodes[i].addr4
}

// Name returns the name of the node that holds address a, or a's string
// when none does: for messages about paths.
func (n *Network) Name(a netip.Addr) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i, _ := n.w.owner(a); i >= 0 {
		return n.w.nodes[i].conf.Name
	}
	return a.String()
}

// activity records a call into the network: the engine is not waiting.
func (n *Network) activity() {
	n.waiting = false
	n.gen++
}

// time returns the current time of the network.
func (n *Network) time() time.Time {
	if n.opts.RealTime {
		return time.Now()
	}
	return n.now
}

// wake tells the clock's goroutine that something changed.
func (n *Network) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// buf returns a buffer for a reply.
func (n *Network) buf() []byte {
	if k := len(n.free); k > 0 {
		b := n.free[k-1]
		n.free = n.free[:k-1]
		return b[:cap(b)]
	}
	return make([]byte, bufSize)
}

// release returns a reply's buffer.
func (n *Network) release(b []byte) { n.free = append(n.free, b) }

// SetRoute replaces the next hops of node towards prefix while the network
// runs, as `ip route replace` does on a router: packets sent from then on
// to an address of prefix (longest prefix first) go to one of the nodes
// via, to which node must have links; an empty via makes prefix
// unreachable from node. It is Topology.Route for a network already made,
// to change a path in the middle of a run.
func (n *Network) SetRoute(node, prefix string, via ...string) error {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return fmt.Errorf("tracertest: node %s: %w", node, err)
	}
	p = p.Masked()
	n.mu.Lock()
	defer n.mu.Unlock()
	i, ok := n.w.byName[node]
	if !ok {
		return fmt.Errorf("tracertest: no node %s", node)
	}
	r := simRoute{prefix: p}
	for _, v := range via {
		l := n.w.linkTo(i, v)
		if l < 0 {
			return fmt.Errorf("tracertest: route of %s to %v via %s: no link %s-%s", node, p, v, node, v)
		}
		r.links = append(r.links, l)
	}
	sn := &n.w.nodes[i]
	sn.routes = slices.DeleteFunc(sn.routes, func(x simRoute) bool { return x.prefix == p })
	sn.routes = append(sn.routes, r)
	slices.SortStableFunc(sn.routes, func(a, b simRoute) int { return cmp.Compare(b.prefix.Bits(), a.prefix.Bits()) })
	return nil
}
