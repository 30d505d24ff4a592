package tracertest

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Source is the name of the node that the probes leave from: the host the
// engine runs on. NewTopology creates it.
const Source = "src"

// DefaultDelay is the one-way delay of a link that Link creates.
const DefaultDelay = time.Millisecond

// A Topology is a network to simulate: nodes joined by directed links,
// from the Source towards the destinations. Build it with Link and the
// other methods, adjust its nodes and links through Node and Edge, then
// hand it to NewNetwork, which takes a copy. Methods that parse
// addresses record the first error, which NewNetwork returns.
type Topology struct {
	nodes  []*Node
	byName map[string]*Node
	links  []*Link
	err    error
}

// A Node is a host or a router. Its zero fields describe a Linux router
// with its ICMP rate limits off (as in the project's lab) that answers
// from one address and balances per flow.
type Node struct {
	Name string
	// Addrs are the node's own addresses (IPv4 and IPv6). It answers
	// from the first of the family, unless InboundAddr says otherwise;
	// without one of a family, from the address of its first link
	// towards the Source (the interface its replies leave by, Linux's
	// icmp_errors_use_inbound_ifaddr=0), or else one made up.
	Addrs []netip.Addr
	// Local are prefixes the node answers every address of, as a Linux
	// host with `ip route add local PREFIX dev lo` does: one node stands
	// for thousands of destinations. Over IPv6 its errors about an
	// address it holds only this way come from its own address, as
	// Linux's do.
	Local []netip.Prefix
	// InboundAddr makes the node answer from the address of the link
	// the probe came in by (Linux's icmp_errors_use_inbound_ifaddr=1,
	// the lab's routers): one address per predecessor.
	InboundAddr bool
	// Silent nodes never answer (they still forward and deliver).
	Silent bool
	// Reject makes a router answer what it should forward with an ICMP
	// administratively prohibited (v4 3/13, v6 1/1), as a firewall with
	// a reject rule does; a probe that expires there still gets a time
	// exceeded.
	Reject bool
	// PerPacket makes the node pick a next hop at random for every
	// packet, whatever its flow.
	PerPacket bool
	// HashSeed seeds the node's per-flow ECMP hash; 0 derives one from
	// the network's seed and the node's name, so that nested balancers
	// do not polarize. Give two nodes one seed to make them polarize.
	HashSeed uint64
	// QuoteLen caps how many bytes of the probe the node's ICMP errors
	// quote (28: an IPv4 header and the 64 bits RFC 792 asks for); 0
	// quotes as Linux does, as much as fits in 576 bytes (IPv6: 1280).
	QuoteLen int
	// Loss is the probability that a packet reaching the node is
	// dropped there; ReplyLoss that a reply of the node is lost.
	Loss, ReplyLoss float64
	// RateLimit is the node's ICMP error budget (none by default).
	RateLimit RateLimit
	// MPLS, when set, is the label stack that the node's ICMP errors
	// carry in an RFC 4950 extension (RFC 4884): the node sits in an
	// MPLS tunnel. The last entry gets the bottom-of-stack bit.
	MPLS []probe.MPLSLabel
	// OpenTCP are the TCP ports a destination host answers a SYN on
	// with a SYN-ACK; on the others it answers an RST.
	OpenTCP []uint16

	routes []staticRoute
}

// A Link carries packets from one node to a next one, and the replies
// back.
type Link struct {
	From, To string
	// FromAddrs and ToAddrs are the addresses of the link's ends (at most
	// one per family). A node with InboundAddr answers from the To end of
	// the link its probe came in by. Link makes up addresses for both
	// families; LinkAddrs sets them.
	FromAddrs, ToAddrs []netip.Addr
	// Delay is the link's one-way delay: a reply from n links away comes
	// back after twice the sum of their delays.
	Delay time.Duration
	// Loss is the probability that a packet crossing the link (either
	// way) is lost.
	Loss float64
	// auto says Link made the addresses up.
	auto bool
}

// staticRoute is a route that Route sets.
type staticRoute struct {
	prefix netip.Prefix
	via    []string
}

// NewTopology returns a topology holding only the Source.
func NewTopology() *Topology {
	t := &Topology{byName: map[string]*Node{}}
	t.Node(Source)
	return t
}

// Node returns the node named name, created if there is none.
func (t *Topology) Node(name string) *Node {
	if n, ok := t.byName[name]; ok {
		return n
	}
	n := &Node{Name: name}
	t.byName[name] = n
	t.nodes = append(t.nodes, n)
	return n
}

// Edge returns the link from one node to another, or nil.
func (t *Topology) Edge(from, to string) *Link {
	for _, l := range t.links {
		if l.From == from && l.To == to {
			return l
		}
	}
	return nil
}

// Link adds a link from from to each of to (creating the nodes), with
// made-up addresses and DefaultDelay; a link that exists stays as it is.
func (t *Topology) Link(from string, to ...string) *Topology {
	t.Node(from)
	for _, n := range to {
		t.Node(n)
		if t.Edge(from, n) == nil {
			t.links = append(t.links, &Link{From: from, To: n, Delay: DefaultDelay, auto: true})
		}
	}
	return t
}

// LinkAddrs sets the addresses of the ends of the link from from to to,
// for the family of fromAddr (creating the link if needed). The lab's
// link "10.S.B.0/24" is LinkAddrs(up, down, "10.S.B.1", "10.S.B.2").
func (t *Topology) LinkAddrs(from, to, fromAddr, toAddr string) *Topology {
	a, err1 := netip.ParseAddr(fromAddr)
	b, err2 := netip.ParseAddr(toAddr)
	if err := errors.Join(err1, err2); err != nil {
		return t.fail(fmt.Errorf("link %s-%s: %w", from, to, err))
	}
	if a.Is4() != b.Is4() {
		return t.fail(fmt.Errorf("link %s-%s: %v and %v are of two families", from, to, a, b))
	}
	t.Link(from, to)
	l := t.Edge(from, to)
	if l.auto {
		l.FromAddrs, l.ToAddrs, l.auto = nil, nil, false
	}
	l.FromAddrs = setFamily(l.FromAddrs, a)
	l.ToAddrs = setFamily(l.ToAddrs, b)
	return t
}

// setFamily returns addrs with a replacing the address of its family.
func setFamily(addrs []netip.Addr, a netip.Addr) []netip.Addr {
	for i, x := range addrs {
		if x.Is4() == a.Is4() {
			addrs[i] = a
			return addrs
		}
	}
	return append(addrs, a)
}

// Addr adds addresses to the node's own (creating the node).
func (t *Topology) Addr(node string, addrs ...string) *Topology {
	n := t.Node(node)
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return t.fail(fmt.Errorf("node %s: %w", node, err))
		}
		n.Addrs = append(n.Addrs, a)
	}
	return t
}

// Local makes the node a destination host for every address of the
// prefixes (see Node.Local).
func (t *Topology) Local(node string, prefixes ...string) *Topology {
	n := t.Node(node)
	for _, s := range prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return t.fail(fmt.Errorf("node %s: %w", node, err))
		}
		n.Local = append(n.Local, p.Masked())
	}
	return t
}

// Route sets the next hops of node towards prefix: the packets to an
// address of prefix (longest prefix first) go to one of the nodes via,
// to which node must have links. Without a route that covers a
// destination, a node sends its packets to the next hops from which a
// node that holds the destination can be reached; with none, it answers
// net unreachable. An empty via makes prefix unreachable from node.
func (t *Topology) Route(node, prefix string, via ...string) *Topology {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return t.fail(fmt.Errorf("node %s: %w", node, err))
	}
	n := t.Node(node)
	n.routes = append(n.routes, staticRoute{prefix: p.Masked(), via: via})
	return t
}

// SetDelay sets the delay of every link.
func (t *Topology) SetDelay(d time.Duration) *Topology {
	for _, l := range t.links {
		l.Delay = d
	}
	return t
}

// Nodes returns the nodes, the Source first, in the order of creation.
func (t *Topology) Nodes() []*Node { return t.nodes }

// Links returns the links in the order of creation.
func (t *Topology) Links() []*Link { return t.links }

// Err returns the first error of the building methods.
func (t *Topology) Err() error { return t.err }

func (t *Topology) fail(err error) *Topology {
	if t.err == nil {
		t.err = fmt.Errorf("tracertest: %w", err)
	}
	return t
}
