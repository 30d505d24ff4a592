package tracertest

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The ready-made topologies are those of the project's lab
// (scripts/lab.sh) and of its MDA simulator (analysis/mdasim_test.go),
// addressed as the lab is: the Source is 10.0.0.2 (fd00::2) on its link
// to r1 (10.0.0.1); the link from an upstream node X to a downstream node
// Y is 10.S.B.0/24 with X on .1 and Y on .2 (IPv6: fd00:S:B::/64, the same
// host numbers); the last router reaches the destination by 10.98.0.0/24.
// The destination "dst" holds DstAddr and DstAddr6 and answers every
// address of DstPrefix and DstPrefix6. Routers answer from the address of
// the link the probe came in by, as the lab's do
// (icmp_errors_use_inbound_ifaddr=1), but where said otherwise.

// Addresses of the ready-made topologies.
var (
	SrcAddr    = netip.MustParseAddr("10.0.0.2")
	SrcAddr6   = netip.MustParseAddr("fd00::2")
	DstAddr    = netip.MustParseAddr("10.99.0.1")
	DstAddr6   = netip.MustParseAddr("fd00:99::1")
	DstPrefix  = netip.MustParsePrefix("10.99.0.0/20")
	DstPrefix6 = netip.MustParsePrefix("fd00:99::/64")
)

// lab starts a topology of the lab: the Source, r1 and the destination.
func lab() *Topology {
	t := NewTopology()
	t.LinkAddrs(Source, "r1", "10.0.0.2", "10.0.0.1").LinkAddrs(Source, "r1", "fd00::2", "fd00::1")
	t.Addr("dst", DstAddr.String(), DstAddr6.String()).Local("dst", DstPrefix.String(), DstPrefix6.String())
	return t
}

// labLink adds the lab's link net ("S.B") from up to down, in both
// families.
func (t *Topology) labLink(up, down, net string) *Topology {
	var s, b int
	fmt.Sscanf(net, "%d.%d", &s, &b)
	v6 := fmt.Sprintf("fd00:%d:%d::", s, b) // the lab writes the octets as hex groups
	if b == 0 {
		v6 = fmt.Sprintf("fd00:%d::", s)
	}
	t.LinkAddrs(up, down, "10."+net+".1", "10."+net+".2")
	return t.LinkAddrs(up, down, v6+"1", v6+"2")
}

// routersInbound makes every node but the Source and dst answer from the
// address of the link the probe came in by.
func (t *Topology) routersInbound() *Topology {
	for _, n := range t.nodes {
		n.InboundAddr = n.Name != Source && n.Name != "dst"
	}
	return t
}

// Line returns the lab's line with n routers (n >= 1): Source - r1 - ...
// - rn - dst, the destination at TTL n+1. Line(2) is the lab's "line".
func Line(n int) *Topology {
	t := lab()
	for i := 1; i < n; i++ {
		t.labLink(fmt.Sprintf("r%d", i), fmt.Sprintf("r%d", i+1), fmt.Sprintf("%d.1", i))
	}
	return t.labLink(fmt.Sprintf("r%d", max(n, 1)), "dst", "98.0").routersInbound()
}

// Diamond returns the lab's diamond of width k (1..255): Source - r1 -
// {a1..ak} (k-way ECMP at r1) - r3 - dst, the destination at TTL 4, with
// k distinct paths (r3 answers from the link of each branch).
// Diamond(4) and Diamond(8) are the lab's diamond4 and diamond8.
func Diamond(k int) *Topology {
	t := lab()
	for j := 1; j <= k; j++ {
		t.labLink("r1", fmt.Sprintf("a%d", j), fmt.Sprintf("1.%d", j))
	}
	for j := 1; j <= k; j++ {
		t.labLink(fmt.Sprintf("a%d", j), "r3", fmt.Sprintf("2.%d", j))
	}
	return t.labLink("r3", "dst", "98.0").routersInbound()
}

// Nested returns the lab's nested diamonds: Source - r1 - {b1,b2}; b1 -
// {c1,c2}, b2 - {c3,c4} - r3 - dst: 4 paths, the destination at TTL 5.
func Nested() *Topology {
	t := lab().labLink("r1", "b1", "1.1").labLink("r1", "b2", "1.2").
		labLink("b1", "c1", "2.1").labLink("b1", "c2", "2.2").
		labLink("b2", "c3", "2.3").labLink("b2", "c4", "2.4")
	for k := 1; k <= 4; k++ {
		t.labLink(fmt.Sprintf("c%d", k), "r3", fmt.Sprintf("3.%d", k))
	}
	return t.labLink("r3", "dst", "98.0").routersInbound()
}

// Unequal returns the lab's paths of unequal lengths: Source - r1 - {s1
// | l1 - l2} - r3 - dst: 2 paths, the destination at TTL 4 and 5.
func Unequal() *Topology {
	return lab().labLink("r1", "s1", "1.1").labLink("r1", "l1", "1.2").
		labLink("s1", "r3", "2.1").labLink("l1", "l2", "2.2").
		labLink("l2", "r3", "3.2").labLink("r3", "dst", "98.0").routersInbound()
}

// Meshed returns meshed diamonds, where a router is reached from two:
// Source - r1 - {a1,a2}; a1 - {b1,b2}, a2 - {b2,b3}; b1..b3 - r3 - dst.
// Only r3 answers from its inbound links; b2 is one vertex with two
// predecessors.
func Meshed() *Topology {
	t := lab().labLink("r1", "a1", "1.1").labLink("r1", "a2", "1.2").
		labLink("a1", "b1", "2.1").labLink("a1", "b2", "2.2").
		labLink("a2", "b2", "2.3").labLink("a2", "b3", "2.4").
		labLink("b1", "r3", "3.1").labLink("b2", "r3", "3.2").labLink("b3", "r3", "3.3").
		labLink("r3", "dst", "98.0")
	t.Node("r3").InboundAddr = true
	return t
}

// Asymmetric returns a diamond that is not uniform: Source - r1 -
// {b1,b2}; b1 - {c1,c2,c3}, b2 - c4; c1..c4 - r3 - dst.
func Asymmetric() *Topology {
	t := lab().labLink("r1", "b1", "1.1").labLink("r1", "b2", "1.2").
		labLink("b1", "c1", "2.1").labLink("b1", "c2", "2.2").labLink("b1", "c3", "2.3").
		labLink("b2", "c4", "2.4")
	for k := 1; k <= 4; k++ {
		t.labLink(fmt.Sprintf("c%d", k), "r3", fmt.Sprintf("3.%d", k))
	}
	return t.labLink("r3", "dst", "98.0").routersInbound()
}

// TwoDiamonds returns two diamonds in a row, every router answering from
// one address: Source - r1 - {a1,a2} - r2 - {b1,b2,b3} - r3 - dst.
func TwoDiamonds() *Topology {
	t := lab().labLink("r1", "a1", "1.1").labLink("r1", "a2", "1.2").
		labLink("a1", "r2", "2.1").labLink("a2", "r2", "2.2").
		labLink("r2", "b1", "3.1").labLink("r2", "b2", "3.2").labLink("r2", "b3", "3.3")
	for k := 1; k <= 3; k++ {
		t.labLink(fmt.Sprintf("b%d", k), "r3", fmt.Sprintf("4.%d", k))
	}
	return t.labLink("r3", "dst", "98.0")
}

// named are the topologies ByName knows.
var named = map[string]func() *Topology{
	"line":         func() *Topology { return Line(2) },
	"diamond4":     func() *Topology { return Diamond(4) },
	"diamond8":     func() *Topology { return Diamond(8) },
	"diamond16":    func() *Topology { return Diamond(16) },
	"unequal":      Unequal,
	"nested":       Nested,
	"meshed":       Meshed,
	"asymmetric":   Asymmetric,
	"two-diamonds": TwoDiamonds,
	// A branch whose router never answers.
	"silent-branch": func() *Topology { t := Diamond(4); t.Node("a2").Silent = true; return t },
	// r1 balances every packet at random over two branches.
	"per-packet": func() *Topology { t := Diamond(2); t.Node("r1").PerPacket = true; return t },
	// 1% of the packets lost on every link, either way.
	"lossy": func() *Topology {
		t := Diamond(4)
		for _, l := range t.links {
			l.Loss = 0.01
		}
		return t
	},
	// The destination never answers.
	"dst-silent": func() *Topology { t := Diamond(2); t.Node("dst").Silent = true; return t },
	// a2 rejects what it should forward: an unreachable stops that branch.
	"filtered-branch": func() *Topology { t := Diamond(2); t.Node("a2").Reject = true; return t },
	// Every node limits its ICMP errors as Linux does by default.
	"rate-limited": func() *Topology {
		t := Diamond(4)
		for _, n := range t.nodes {
			n.RateLimit = LinuxRateLimit
		}
		return t
	},
}

// Names returns the names of the ready-made topologies, sorted.
func Names() []string {
	out := make([]string, 0, len(named))
	for k := range named {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ByName returns a new copy of the ready-made topology called name (one
// of Names): the lab's line, diamond4, diamond8, unequal and nested, and
// the MDA simulator's others.
func ByName(name string) (*Topology, error) {
	f, ok := named[name]
	if !ok {
		return nil, fmt.Errorf("tracertest: no topology %q (want one of %s)", name, strings.Join(Names(), ", "))
	}
	return f(), nil
}
