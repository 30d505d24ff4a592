package analysis

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NodeID identifies a Node: it is its index in Graph.Nodes.
type NodeID int

// Node is one vertex of the topology graph: an interface that answered
// probes of one TTL, or an anonymous (silent) hop.
//
// A responding node is keyed by (address, TTL): the same address seen at
// two TTLs is two nodes. A silent node is the hop of one path ID at one TTL:
// silent hops never merge, since nothing says whether two of them are the
// same router.
type Node struct {
	ID          NodeID
	Addr        netip.Addr // invalid for a silent node
	TTL         int
	Silent      bool
	PathIDs     []int // the flows through it, ascending
	Destination bool  // the destination's address, or the hop at which a flow reached it
	// Diverge and Converge say that the node has more than one responding
	// successor or predecessor. A silent neighbour is not counted: it may
	// be any of the others, so it is no evidence of a branch.
	Diverge, Converge      bool
	RTTMin, RTTAvg, RTTMax time.Duration // over the probes answered by it; 0 when silent
	// RTTCount is the number of probes the RTTs are over: 0 when silent
	// or when the MDA inferred every hop of the node (no RTT).
	RTTCount int
	// ASN and IXP are those of Addr, from the hops that make the node
	// (Hop.ASN and Hop.IXP, --asn-db and --ixp-db): 0 and "" when unknown.
	ASN uint32
	IXP string
	// PerPacket says that the node is a per-packet load balancer (the
	// Vertex of one of the Trace's PerPacket): its flows' next hops are
	// draws, not where each flow goes.
	PerPacket bool
}

// Link joins the hops of one flow at consecutive TTLs.
type Link struct {
	From, To NodeID
	TTL      int   // of From
	PathIDs  []int // the flows that took it, ascending
}

// Diamond is a region of the graph between a node where flows diverge and
// the first address that all of them reach again.
//
// The converge point is an address, not a node: when the branches have
// unequal lengths the flows reach it at different TTLs, which are
// different nodes. Converge is the one at the smallest TTL; LastTTL is the
// largest TTL at which a branch reaches it.
type Diamond struct {
	Diverge, Converge NodeID
	FirstTTL, LastTTL int // of Diverge; of the last branch to reach Converge's address
	// MaxWidth is the largest number of nodes inside the diamond (its ends
	// excluded) at one TTL.
	MaxWidth int
	Length   int // LastTTL - FirstTTL: the hops of the longest branch
	// Paths is the number of distinct node sequences between the ends
	// along the graph's links (which may be more than the flows took),
	// at most MaxDiamondPaths.
	Paths int
}

// MaxDiamondPaths caps Diamond.Paths: the paths through chained diamonds
// multiply.
const MaxDiamondPaths = 1 << 20

// PerPacketHop is a probe whose answers, to repeats, retries and
// duplicates, came from more than one address: a per-packet load balancer
// (or a route change) before that TTL. Only the first answer (Addrs[0]) is
// a hop of the flow; the others are reported here rather than as paths of
// their own.
type PerPacketHop struct {
	PathID, TTL int
	Addrs       []netip.Addr // in the order they answered; the first is the hop
	// Vertex is the per-packet load balancer, at TTL-1, when the MDA's
	// per-packet test found it (mda.MarkPerPacket); invalid otherwise.
	Vertex netip.Addr
	// RouteChange says that Vertex is no balancer: its route changed
	// during the run (the probe's later answers all came from the new
	// next hop).
	RouteChange bool
}

// PerPacketVertex is a per-packet load balancer: its address and TTL.
type PerPacketVertex struct {
	TTL  int        `json:"ttl"`
	Addr netip.Addr `json:"addr"`
}

// PerPacketVertices returns the per-packet load balancers that t.PerPacket
// names (those with a Vertex), each once.
func (t *Trace) PerPacketVertices() []PerPacketVertex {
	var out []PerPacketVertex
	for _, pp := range t.PerPacket {
		v := PerPacketVertex{TTL: pp.TTL - 1, Addr: pp.Vertex}
		if pp.Vertex.IsValid() && !pp.RouteChange && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Graph is the topology of one Trace: the interfaces per TTL, the links the
// flows took between them, the diamonds they form, and how evenly the load
// balancers spread the flows.
type Graph struct {
	Nodes     []Node // ordered by TTL, then address; silent nodes last in their TTL, by path ID
	Links     []Link // ordered by From, then To
	Diamonds  []Diamond
	Branching []int // Branching[i]: the nodes at TTL i+1
	Balancers []LoadBalancer
	PerPacket []PerPacketHop // copied from the Trace

	flowNodes [][]NodeID // per index into Trace.Flows, per hop: its node (none for a flow left out)
	ends      []bool     // per node: it ends a diamond (a converge point)
}

// nodeKey identifies a responding node.
type nodeKey struct {
	addr netip.Addr
	ttl  int
}

// BuildGraph returns the topology graph of t. The source is implicit: links
// start at the nodes of TTL 1 (or of a flow's first TTL).
//
// Every hop of a flow is a node and two hops of one flow at consecutive
// TTLs are a link; a flow without a hop at some TTL (a TTL never probed)
// has no link across it. A flow with a hop rate-limited, not settled
// (Hop.Unsettled) is left out: which node it went through there is not
// known, and its silence is not a node of its own. Only the first answer to each probe is a hop, so a
// per-packet load balancer does not invent paths: the other answers are in
// t.PerPacket and Graph.PerPacket.
//
// Diamonds are maximal: a diamond inside another one (the branches of a
// 2-way diamond splitting again) is part of the outer one, whose MaxWidth
// and Paths count the inner branches, and is not listed on its own.
func BuildGraph(t *Trace) *Graph {
	g := &Graph{PerPacket: slices.Clone(t.PerPacket)}
	b := newGraphBuilder(t, g)
	b.nodes()
	b.links()
	b.diamonds()
	g.Balancers = balancers(g, b.out)
	g.markPerPacket()
	return g
}

// markPerPacket marks the nodes that PerPacket names as balancers.
func (g *Graph) markPerPacket() {
	for _, pp := range g.PerPacket {
		if !pp.Vertex.IsValid() || pp.RouteChange {
			continue
		}
		for i := range g.Nodes {
			if n := &g.Nodes[i]; n.TTL == pp.TTL-1 && n.Addr == pp.Vertex {
				n.PerPacket = true
			}
		}
	}
}

// graphBuilder holds what BuildGraph needs beyond the Graph itself.
type graphBuilder struct {
	t     *Trace
	g     *Graph
	order []int   // indices into t.Flows, by path ID
	hops  int     // in all flows
	aid   []int32 // per node: an ID of its address, -1 when silent
	addrs int     // distinct addresses
	// flows through each node, as indices into t.Flows: nodeFlows[n] is
	// aligned with Nodes[n].PathIDs.
	nodeFlows [][]int32
	// out[n]..out[n+1] are the links from n (Links is ordered by From);
	// in[inAt[n]:inAt[n+1]] are the indices of the links to n.
	out, inAt []int32
	in        []int32
	ttlAt     []NodeID // ttlAt[ttl]: the first node with that TTL or more
}

func newGraphBuilder(t *Trace, g *Graph) *graphBuilder {
	b := &graphBuilder{t: t, g: g, order: make([]int, 0, len(t.Flows))}
	for i := range t.Flows {
		if slices.ContainsFunc(t.Flows[i].Hops, Hop.wild) {
			continue // which node it went through is not known
		}
		b.order = append(b.order, i)
		b.hops += len(t.Flows[i].Hops)
	}
	slices.SortStableFunc(b.order, func(x, y int) int { return t.Flows[x].PathID - t.Flows[y].PathID })
	return b
}

// hopTTL is the TTL of the hop at index i of a flow. Hops carry it; a
// hand-built hop without one is at index+1.
func hopTTL(h *Hop, i int) int {
	if h.TTL > 0 {
		return h.TTL
	}
	return i + 1
}

// nodes builds g.Nodes and g.flowNodes.
func (b *graphBuilder) nodes() {
	protos, flat := b.collectNodes()
	b.numberNodes(protos, flat)
	b.nodePaths(flat)
	b.nodeFlowsAndRTT()
	b.branching()
}

// nodeProto is a node as first met, before the nodes are ordered.
type nodeProto struct {
	addr   netip.Addr
	ttl    int
	pathID int
	aid    int32
	asn    uint32
	ixp    string
}

// collectNodes makes a node of each (address, TTL) and each silent hop, in
// the order met (flows by path ID), and returns them with the node of every
// hop: flat holds g.flowNodes, numbered in that order.
func (b *graphBuilder) collectNodes() ([]nodeProto, []NodeID) {
	t, g := b.t, b.g
	protos := make([]nodeProto, 0, b.hops/4+8)
	byKey := make(map[nodeKey]int32, b.hops/4+8)
	byAddr := make(map[netip.Addr]int32)
	flat := make([]NodeID, b.hops)
	g.flowNodes = make([][]NodeID, len(t.Flows))
	off := 0
	for _, fi := range b.order {
		f := &t.Flows[fi]
		ids := flat[off : off+len(f.Hops) : off+len(f.Hops)]
		off += len(f.Hops)
		g.flowNodes[fi] = ids
		for i := range f.Hops {
			h := &f.Hops[i]
			ttl := hopTTL(h, i)
			if h.Silent() {
				ids[i] = NodeID(len(protos))
				protos = append(protos, nodeProto{ttl: ttl, pathID: f.PathID, aid: -1})
				continue
			}
			k := nodeKey{h.Addr, ttl}
			id, ok := byKey[k]
			if !ok {
				a, ok := byAddr[h.Addr]
				if !ok {
					a = int32(len(byAddr))
					byAddr[h.Addr] = a
				}
				id = int32(len(protos))
				byKey[k] = id
				protos = append(protos, nodeProto{addr: h.Addr, ttl: ttl, pathID: f.PathID, aid: a})
			}
			if p := &protos[id]; p.asn == 0 && h.ASN != 0 {
				p.asn = h.ASN
			}
			if p := &protos[id]; p.ixp == "" && h.IXP != "" {
				p.ixp = h.IXP
			}
			ids[i] = NodeID(id)
		}
	}
	b.addrs = len(byAddr)
	return protos, flat
}

// numberNodes numbers the nodes in their final order (by TTL; responding
// nodes by address, then silent ones by path ID), renumbers flat, and
// makes g.Nodes and b.aid.
func (b *graphBuilder) numberNodes(protos []nodeProto, flat []NodeID) {
	g := b.g
	perm := make([]int32, len(protos))
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(x, y int32) int {
		p, q := &protos[x], &protos[y]
		if c := cmp.Compare(p.ttl, q.ttl); c != 0 {
			return c
		}
		if ps, qs := p.aid < 0, q.aid < 0; ps != qs {
			if ps {
				return 1
			}
			return -1
		}
		if c := p.addr.Compare(q.addr); c != 0 {
			return c
		}
		return cmp.Compare(p.pathID, q.pathID)
	})
	rank := make([]NodeID, len(protos))
	for id, old := range perm {
		rank[old] = NodeID(id)
	}
	for i := range flat {
		flat[i] = rank[flat[i]]
	}
	g.Nodes = make([]Node, len(protos))
	b.aid = make([]int32, len(protos))
	for id, old := range perm {
		p := &protos[old]
		g.Nodes[id] = Node{ID: NodeID(id), Addr: p.addr, TTL: p.ttl, Silent: p.aid < 0, ASN: p.asn, IXP: p.ixp}
		b.aid[id] = p.aid
	}
}

// nodePaths gives each node's PathIDs and nodeFlows their capacity, the
// number of hops on it, cut from two flat arrays in path ID order.
func (b *graphBuilder) nodePaths(flat []NodeID) {
	g := b.g
	count := make([]int, len(g.Nodes))
	for _, n := range flat {
		count[n]++
	}
	pathIDs := make([]int, len(flat))
	flows := make([]int32, len(flat))
	b.nodeFlows = make([][]int32, len(g.Nodes))
	off := 0
	for n := range g.Nodes {
		g.Nodes[n].PathIDs = pathIDs[off : off : off+count[n]]
		b.nodeFlows[n] = flows[off : off : off+count[n]]
		off += count[n]
	}
}

// nodeFlowsAndRTT fills each node's path IDs and flows, its Destination
// flag and its RTTs.
func (b *graphBuilder) nodeFlowsAndRTT() {
	t, g := b.t, b.g
	rttSum := make([]time.Duration, len(g.Nodes))
	rttN := make([]int, len(g.Nodes))
	for _, fi := range b.order {
		f := &t.Flows[fi]
		reachedAt := -1
		if f.Reached {
			reachedAt = f.ReachedTTL
		}
		for i, n := range g.flowNodes[fi] {
			nd := &g.Nodes[n]
			if k := len(nd.PathIDs); k == 0 || nd.PathIDs[k-1] != f.PathID { // a duplicate path ID in a hand-built trace
				nd.PathIDs = append(nd.PathIDs, f.PathID)
				b.nodeFlows[n] = append(b.nodeFlows[n], int32(fi))
			}
			if nd.Silent {
				continue
			}
			if nd.TTL == reachedAt || nd.Addr == t.Destination {
				nd.Destination = true
			}
			if !f.Hops[i].HasRTT() {
				continue // inferred, or a reply that carried no send time
			}
			rtt := f.Hops[i].RTT
			if rttN[n] == 0 || rtt < nd.RTTMin {
				nd.RTTMin = rtt
			}
			nd.RTTMax = max(nd.RTTMax, rtt)
			rttSum[n] += rtt
			rttN[n]++
		}
	}
	for n := range g.Nodes {
		nd := &g.Nodes[n]
		if rttN[n] > 0 {
			nd.RTTAvg = rttSum[n] / time.Duration(rttN[n])
		}
		nd.RTTCount = rttN[n]
	}
}

// branching counts the nodes per TTL (g.Branching) and indexes the first
// node of each TTL (b.ttlAt).
func (b *graphBuilder) branching() {
	g := b.g
	maxTTL := 0
	for n := range g.Nodes {
		maxTTL = max(maxTTL, g.Nodes[n].TTL)
	}
	g.Branching = make([]int, maxTTL)
	b.ttlAt = make([]NodeID, maxTTL+2)
	for n := range g.Nodes {
		g.Branching[g.Nodes[n].TTL-1]++
	}
	// Nodes are ordered by TTL: the first node of TTL x follows those below.
	sum := 0
	for ttl := 1; ttl <= maxTTL+1; ttl++ {
		b.ttlAt[ttl] = NodeID(sum)
		if ttl <= maxTTL {
			sum += g.Branching[ttl-1]
		}
	}
}

// links builds g.Links, the adjacency and the Diverge and Converge flags.
func (b *graphBuilder) links() {
	protos, hopLink := b.collectLinks()
	b.numberLinks(protos, hopLink)
	b.linkPaths(hopLink)
	b.adjacency()
}

// collectLinks makes a link of each pair of nodes that one flow joins at
// consecutive TTLs, in the order met, and returns them with the link of
// every hop after the first of each flow (in b.order), -1 across a gap.
func (b *graphBuilder) collectLinks() ([]Link, []int32) {
	t, g := b.t, b.g
	byKey := make(map[uint64]int32, len(g.Nodes)+8) // from<<32 | to
	var protos []Link
	hopLink := make([]int32, 0, b.hops)
	for _, fi := range b.order {
		f := &t.Flows[fi]
		ids := g.flowNodes[fi]
		for i := 1; i < len(ids); i++ {
			if hopTTL(&f.Hops[i], i) != hopTTL(&f.Hops[i-1], i-1)+1 {
				hopLink = append(hopLink, -1)
				continue
			}
			from, to := ids[i-1], ids[i]
			k := uint64(from)<<32 | uint64(to)
			l, ok := byKey[k]
			if !ok {
				l = int32(len(protos))
				byKey[k] = l
				protos = append(protos, Link{From: from, To: to, TTL: g.Nodes[from].TTL})
			}
			hopLink = append(hopLink, l)
		}
	}
	return protos, hopLink
}

// numberLinks orders the links by From, then To, into g.Links, renumbers
// hopLink, and gives each link's PathIDs its capacity.
func (b *graphBuilder) numberLinks(protos []Link, hopLink []int32) {
	g := b.g
	perm := make([]int32, len(protos))
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(x, y int32) int {
		if c := cmp.Compare(protos[x].From, protos[y].From); c != 0 {
			return c
		}
		return cmp.Compare(protos[x].To, protos[y].To)
	})
	rank := make([]int32, len(protos))
	g.Links = make([]Link, len(protos))
	for id, old := range perm {
		rank[old] = int32(id)
		g.Links[id] = protos[old]
	}
	count := make([]int, len(g.Links))
	for i, l := range hopLink {
		if l >= 0 {
			hopLink[i] = rank[l]
			count[hopLink[i]]++
		}
	}
	pathIDs := make([]int, len(hopLink))
	off := 0
	for l := range g.Links {
		g.Links[l].PathIDs = pathIDs[off : off : off+count[l]]
		off += count[l]
	}
}

// linkPaths fills each link's path IDs.
func (b *graphBuilder) linkPaths(hopLink []int32) {
	t, g := b.t, b.g
	k := 0
	for _, fi := range b.order {
		f := &t.Flows[fi]
		for i := 1; i < len(f.Hops); i++ {
			if l := hopLink[k]; l >= 0 {
				lk := &g.Links[l]
				if n := len(lk.PathIDs); n == 0 || lk.PathIDs[n-1] != f.PathID {
					lk.PathIDs = append(lk.PathIDs, f.PathID)
				}
			}
			k++
		}
	}
}

// adjacency builds the links from and to each node, in compressed rows,
// and sets the Diverge and Converge flags.
func (b *graphBuilder) adjacency() {
	g := b.g
	n := len(g.Nodes)
	b.out = make([]int32, n+1)
	b.inAt = make([]int32, n+1)
	for _, l := range g.Links {
		b.out[l.From+1]++
		b.inAt[l.To+1]++
	}
	for i := range n {
		b.out[i+1] += b.out[i]
		b.inAt[i+1] += b.inAt[i]
	}
	b.in = make([]int32, len(g.Links))
	fill := slices.Clone(b.inAt[:n])
	for li, l := range g.Links {
		b.in[fill[l.To]] = int32(li)
		fill[l.To]++
	}
	succ := make([]int, n)
	pred := make([]int, n)
	for _, l := range g.Links {
		if !g.Nodes[l.To].Silent {
			succ[l.From]++
		}
		if !g.Nodes[l.From].Silent {
			pred[l.To]++
		}
	}
	for i := range g.Nodes {
		g.Nodes[i].Diverge = succ[i] > 1
		g.Nodes[i].Converge = pred[i] > 1
	}
}

// nodeAt returns the node of flow fi at ttl, or -1.
func (b *graphBuilder) nodeAt(fi int32, ttl int) NodeID {
	ids := b.g.flowNodes[fi]
	if i := ttl - 1; i >= 0 && i < len(ids) && b.g.Nodes[ids[i]].TTL == ttl {
		return ids[i]
	}
	for _, n := range ids {
		if b.g.Nodes[n].TTL == ttl {
			return n
		}
	}
	return -1
}

// diamonds finds the maximal diamonds, from every diverge node in TTL
// order: the converge point of the diverge node D is the first address,
// along the flow with the smallest path ID through D, that every flow
// through D reaches at a higher TTL. A flow through D that ends before
// reaching such an address leaves D without a diamond. The diamond's nodes
// are those on a path of links from D to a node with that address.
func (b *graphBuilder) diamonds() {
	g := b.g
	g.ends = make([]bool, len(g.Nodes))
	g.Diamonds = []Diamond{}
	s := newDiamondScratch(b)
	for d := range g.Nodes {
		if !g.Nodes[d].Diverge || s.nested(d) {
			continue
		}
		gen := int32(d + 1)
		conv := s.convergeAddr(d, gen)
		if conv < 0 {
			continue
		}
		first, last := s.convergeNodes(d, conv)
		hi := b.ttlAt[last+1] // nodes below hi have TTL <= last
		s.mark(d, gen, conv, hi)
		dm := Diamond{Diverge: NodeID(d), Converge: first, FirstTTL: g.Nodes[d].TTL, LastTTL: last, Length: last - g.Nodes[d].TTL}
		s.measure(&dm, gen, conv, hi)
		g.Diamonds = append(g.Diamonds, dm)
	}
}

// diamondScratch is what diamonds keeps from one diverge node to the next.
// Stamps (the diverge node's gen, d+1) save clearing arrays between them.
type diamondScratch struct {
	b     *graphBuilder
	owner []int32 // per node: 1 + the diamond it is inside of, or 0
	// Per address: how many flows of the current diverge node reach it,
	// stamped with cntGen; seen, stamped with tok, once per flow.
	cnt, cntGen, seen []int32
	tok               int32
	// Per node: reachable from D (fwd), leads to the converge point (bwd),
	// as stamps; and the paths from D.
	fwd, bwd []int32
	paths    []int
	width    []int // per TTL: the nodes inside the diamond
}

func newDiamondScratch(b *graphBuilder) *diamondScratch {
	n := len(b.g.Nodes)
	return &diamondScratch{
		b:      b,
		owner:  make([]int32, n),
		cnt:    make([]int32, b.addrs),
		cntGen: make([]int32, b.addrs),
		seen:   make([]int32, b.addrs),
		fwd:    make([]int32, n),
		bwd:    make([]int32, n),
		paths:  make([]int, n),
		width:  make([]int, len(b.g.Branching)+1),
	}
}

// nested reports whether all flows through the diverge node d pass through
// the diverge node of the diamond d is inside of: d is then part of it.
func (s *diamondScratch) nested(d int) bool {
	b, g := s.b, s.b.g
	k := s.owner[d]
	if k == 0 {
		return false
	}
	outer := g.Diamonds[k-1].Diverge
	for _, fi := range b.nodeFlows[d] {
		if b.nodeAt(fi, g.Nodes[outer].TTL) != outer {
			return false
		}
	}
	return true
}

// convergeAddr returns the converge address of the diverge node d: the
// first along its first flow that every flow through d reaches after d;
// -1 if there is none.
func (s *diamondScratch) convergeAddr(d int, gen int32) int32 {
	b, g := s.b, s.b.g
	dn := &g.Nodes[d]
	flows := b.nodeFlows[d]
	for _, fi := range flows {
		s.tok++
		for _, m := range g.flowNodes[fi] {
			a := b.aid[m]
			if a < 0 || g.Nodes[m].TTL <= dn.TTL || s.seen[a] == s.tok {
				continue
			}
			s.seen[a] = s.tok
			if s.cntGen[a] != gen {
				s.cntGen[a], s.cnt[a] = gen, 0
			}
			s.cnt[a]++
		}
	}
	for _, m := range g.flowNodes[flows[0]] {
		if a := b.aid[m]; a >= 0 && g.Nodes[m].TTL > dn.TTL && s.cntGen[a] == gen && int(s.cnt[a]) == len(flows) {
			return a
		}
	}
	return -1
}

// convergeNodes returns the node with the converge address conv at the
// smallest TTL after d that a flow through d reaches it, and the largest.
func (s *diamondScratch) convergeNodes(d int, conv int32) (first NodeID, last int) {
	b, g := s.b, s.b.g
	first = -1
	for _, fi := range b.nodeFlows[d] {
		for _, m := range g.flowNodes[fi] {
			if b.aid[m] == conv && g.Nodes[m].TTL > g.Nodes[d].TTL {
				if first < 0 || g.Nodes[m].TTL < g.Nodes[first].TTL {
					first = m
				}
				last = max(last, g.Nodes[m].TTL)
				break
			}
		}
	}
	return first, last
}

// mark stamps the nodes below hi reachable from d without passing the
// converge address (fwd), and among them those that lead to it (bwd).
func (s *diamondScratch) mark(d int, gen, conv int32, hi NodeID) {
	b, g := s.b, s.b.g
	// Forward from D, stopping at the converge address and TTL.
	s.fwd[d] = gen
	for m := NodeID(d); m < hi; m++ {
		if s.fwd[m] != gen || (m != NodeID(d) && b.aid[m] == conv) {
			continue
		}
		for _, l := range g.Links[b.out[m]:b.out[m+1]] {
			s.fwd[l.To] = gen
		}
	}
	// Backward from the converge nodes reached.
	for m := hi - 1; m > NodeID(d); m-- {
		if s.fwd[m] != gen {
			continue
		}
		if b.aid[m] == conv {
			s.bwd[m] = gen
		}
		if s.bwd[m] != gen {
			continue
		}
		for _, li := range b.in[b.inAt[m]:b.inAt[m+1]] {
			s.bwd[g.Links[li].From] = gen
		}
	}
}

// measure sets the width and the number of paths of dm, in TTL order over
// the nodes that mark stamped, marks its converge nodes as ends and claims
// the nodes inside it that no earlier diamond holds.
func (s *diamondScratch) measure(dm *Diamond, gen, conv int32, hi NodeID) {
	b, g := s.b, s.b.g
	d := dm.Diverge
	inside := func(m NodeID) bool { return s.fwd[m] == gen && s.bwd[m] == gen }
	clear(s.width)
	total := 0
	s.paths[d] = 1
	for m := d + 1; m < hi; m++ {
		s.paths[m] = 0
	}
	for m := d; m < hi; m++ {
		if m != d && !inside(m) {
			continue
		}
		if m != d && b.aid[m] == conv {
			total = min(total+s.paths[m], MaxDiamondPaths)
			g.ends[m] = true
			continue
		}
		if m != d {
			s.width[g.Nodes[m].TTL]++
			dm.MaxWidth = max(dm.MaxWidth, s.width[g.Nodes[m].TTL])
			if s.owner[m] == 0 {
				s.owner[m] = int32(len(g.Diamonds) + 1)
			}
		}
		for _, l := range g.Links[b.out[m]:b.out[m+1]] {
			if inside(l.To) {
				s.paths[l.To] = min(s.paths[l.To]+s.paths[m], MaxDiamondPaths)
			}
		}
	}
	dm.Paths = total
}

// markRow marks the cells of the hops of flow fi (one per hop, as
// rendered) where paths diverge ("10.0.0.1 <") and where a diamond's
// branches converge ("> 10.2.0.1"). It reports whether it marked any.
func (g *Graph) markRow(fi int, cells []string) bool {
	marked := false
	for i, n := range g.flowNodes[fi] {
		if i >= len(cells) {
			break
		}
		if g.Nodes[n].Converge || g.ends[n] {
			cells[i] = "> " + cells[i]
			marked = true
		}
		if g.Nodes[n].Diverge {
			cells[i] += " <"
			marked = true
		}
	}
	return marked
}

// legend explains the marks of markRow.
const legend = "marks: < paths diverge after this hop, > paths converge at this hop"

// notes returns the lines that follow a deduplicated table: the legend
// (when marked), a line per diamond, per uneven load balancer and per
// probe answered from several addresses.
func (g *Graph) notes(marked bool) []string {
	var out []string
	if marked {
		out = append(out, legend)
	}
	for _, d := range g.Diamonds {
		var s strings.Builder
		s.WriteString("diamond: ")
		s.WriteString(g.nodeText(d.Diverge))
		s.WriteString(" -> ")
		s.WriteString(g.Nodes[d.Converge].Addr.String())
		s.WriteString(" (TTL ")
		s.WriteString(strconv.Itoa(g.Nodes[d.Converge].TTL))
		if d.LastTTL != g.Nodes[d.Converge].TTL {
			s.WriteByte('-')
			s.WriteString(strconv.Itoa(d.LastTTL))
		}
		s.WriteString("): width ")
		s.WriteString(strconv.Itoa(d.MaxWidth))
		s.WriteString(", ")
		s.WriteString(strconv.Itoa(d.Paths))
		if d.Paths >= MaxDiamondPaths {
			s.WriteString(" or more")
		}
		s.WriteString(" paths")
		out = append(out, s.String())
	}
	for _, lb := range g.Balancers {
		if !lb.Uneven {
			continue
		}
		total := 0
		for _, sh := range lb.Shares {
			total += sh.Flows
		}
		var s strings.Builder
		s.WriteString("uneven split at ")
		s.WriteString(g.nodeText(lb.Node))
		s.WriteString(":")
		for i, sh := range lb.Shares {
			if i > 0 {
				s.WriteByte(',')
			}
			s.WriteByte(' ')
			s.WriteString(g.Nodes[sh.Node].Addr.String())
			s.WriteByte(' ')
			s.WriteString(strconv.Itoa(sh.Flows))
			s.WriteByte('/')
			s.WriteString(strconv.Itoa(total))
		}
		s.WriteString(" (chi-square p = ")
		s.WriteString(strconv.FormatFloat(lb.PValue, 'g', 2, 64))
		s.WriteByte(')')
		out = append(out, s.String())
	}
	return append(out, perPacketNotes(g.PerPacket)...)
}

// perPacketNotes returns a line per probe answered from several
// addresses: for a per-packet load balancer that the MDA found, the
// balancer and what one of its flows got.
func perPacketNotes(pps []PerPacketHop) []string {
	var out []string
	for _, pp := range pps {
		var s strings.Builder
		switch {
		case pp.RouteChange:
			writeVertexProbe(&s, "route change after ", &pp)
			first, then := pp.Addrs, []netip.Addr(nil)
			if len(first) > 1 {
				first, then = first[:1], first[1:]
			}
			writeAddrList(&s, first)
			s.WriteString(", then from ")
			writeAddrList(&s, then)
			out = append(out, s.String())
			continue
		case pp.Vertex.IsValid():
			writeVertexProbe(&s, "per-packet load balancer ", &pp)
		default:
			s.WriteString("per-packet load balancing at TTL ")
			s.WriteString(strconv.Itoa(pp.TTL))
			s.WriteString(", path ID ")
			s.WriteString(strconv.Itoa(pp.PathID))
			s.WriteString(": answers from ")
		}
		writeAddrList(&s, pp.Addrs)
		out = append(out, s.String())
	}
	return out
}

// writeVertexProbe writes what, pp's vertex and its TTL, and the probe that
// showed it: "WHAT10.0.0.1 (TTL 1): path ID 3 at TTL 2 answered from ".
func writeVertexProbe(s *strings.Builder, what string, pp *PerPacketHop) {
	s.WriteString(what)
	s.WriteString(pp.Vertex.String())
	s.WriteString(" (TTL ")
	s.WriteString(strconv.Itoa(pp.TTL - 1))
	s.WriteString("): path ID ")
	s.WriteString(strconv.Itoa(pp.PathID))
	s.WriteString(" at TTL ")
	s.WriteString(strconv.Itoa(pp.TTL))
	s.WriteString(" answered from ")
}

// writeAddrList writes addrs separated by commas.
func writeAddrList(s *strings.Builder, addrs []netip.Addr) {
	for i, a := range addrs {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(a.String())
	}
}

// nodeText renders a responding node as "10.0.0.1 (TTL 1)".
func (g *Graph) nodeText(n NodeID) string {
	return addrText(g.Nodes[n].Addr) + " (TTL " + strconv.Itoa(g.Nodes[n].TTL) + ")"
}

// The "graph" object of the JSON Lines schema: derived from "flows" (except
// "per_packet"), and ignored by ReadJSON but for "per_packet".
type jsonGraph struct {
	Nodes     []jsonNode      `json:"nodes"`
	Links     []jsonLink      `json:"links"`
	Diamonds  []jsonDiamond   `json:"diamonds"`
	Branching []int           `json:"branching"`
	Balancers []jsonBalancer  `json:"balancers"`
	PerPacket []jsonPerPacket `json:"per_packet"`
}

type jsonNode struct {
	ID          NodeID      `json:"id"`
	Addr        *netip.Addr `json:"addr"`
	TTL         int         `json:"ttl"`
	Silent      bool        `json:"silent"`
	PathIDs     []int       `json:"path_ids"`
	Destination bool        `json:"destination"`
	Diverge     bool        `json:"diverge"`
	Converge    bool        `json:"converge"`
	RTTMS       *jsonRTT    `json:"rtt_ms"` // null when silent or inferred
	ASN         uint32      `json:"asn,omitempty"`
	IXP         string      `json:"ixp,omitempty"`
	PerPacket   bool        `json:"per_packet,omitempty"`
}

type jsonRTT struct {
	Min millis `json:"min"`
	Avg millis `json:"avg"`
	Max millis `json:"max"`
}

type jsonLink struct {
	From    NodeID `json:"from"`
	To      NodeID `json:"to"`
	TTL     int    `json:"ttl"`
	PathIDs []int  `json:"path_ids"`
}

type jsonDiamond struct {
	Diverge  NodeID `json:"diverge"`
	Converge NodeID `json:"converge"`
	FirstTTL int    `json:"first_ttl"`
	LastTTL  int    `json:"last_ttl"`
	MaxWidth int    `json:"max_width"`
	Length   int    `json:"length"`
	Paths    int    `json:"paths"`
}

type jsonBalancer struct {
	Node   NodeID      `json:"node"`
	TTL    int         `json:"ttl"`
	Shares []jsonShare `json:"shares"`
	Uneven bool        `json:"uneven"`
	PValue ratio       `json:"p_value"`
}

type jsonShare struct {
	Node     NodeID `json:"node"`
	Flows    int    `json:"flows"`
	Fraction ratio  `json:"fraction"`
}

type jsonPerPacket struct {
	PathID      int          `json:"path_id"`
	TTL         int          `json:"ttl"`
	Vertex      netip.Addr   `json:"vertex,omitzero"` // the balancer, at TTL-1
	RouteChange bool         `json:"route_change,omitzero"`
	Addrs       []netip.Addr `json:"addrs"`
}

// ratio is a number written with four significant digits.
type ratio float64

func (r ratio) MarshalJSON() ([]byte, error) {
	f := float64(r)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 4, 64), nil
}

// toJSON returns g as the "graph" object; its arrays are never null.
func (g *Graph) toJSON() *jsonGraph {
	jg := &jsonGraph{
		Nodes:     make([]jsonNode, len(g.Nodes)),
		Links:     make([]jsonLink, len(g.Links)),
		Diamonds:  make([]jsonDiamond, len(g.Diamonds)),
		Branching: g.Branching,
		Balancers: make([]jsonBalancer, len(g.Balancers)),
		PerPacket: make([]jsonPerPacket, len(g.PerPacket)),
	}
	if jg.Branching == nil {
		jg.Branching = []int{}
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		jn := jsonNode{
			ID: n.ID, TTL: n.TTL, Silent: n.Silent, PathIDs: n.PathIDs,
			Destination: n.Destination, Diverge: n.Diverge, Converge: n.Converge,
			ASN: n.ASN, IXP: n.IXP, PerPacket: n.PerPacket,
		}
		if !n.Silent {
			jn.Addr = &n.Addr
			if n.RTTCount > 0 { // else inferred: no RTT
				jn.RTTMS = &jsonRTT{Min: millis(n.RTTMin), Avg: millis(n.RTTAvg), Max: millis(n.RTTMax)}
			}
		}
		jg.Nodes[i] = jn
	}
	for i, l := range g.Links {
		jg.Links[i] = jsonLink{From: l.From, To: l.To, TTL: l.TTL, PathIDs: l.PathIDs}
	}
	for i, d := range g.Diamonds {
		jg.Diamonds[i] = jsonDiamond{
			Diverge: d.Diverge, Converge: d.Converge, FirstTTL: d.FirstTTL, LastTTL: d.LastTTL,
			MaxWidth: d.MaxWidth, Length: d.Length, Paths: d.Paths,
		}
	}
	for i, lb := range g.Balancers {
		jb := jsonBalancer{Node: lb.Node, TTL: lb.TTL, Shares: make([]jsonShare, len(lb.Shares)), Uneven: lb.Uneven, PValue: ratio(lb.PValue)}
		for j, sh := range lb.Shares {
			jb.Shares[j] = jsonShare{Node: sh.Node, Flows: sh.Flows, Fraction: ratio(sh.Fraction)}
		}
		jg.Balancers[i] = jb
	}
	for i, pp := range g.PerPacket {
		jg.PerPacket[i] = jsonPerPacket{PathID: pp.PathID, TTL: pp.TTL, Vertex: pp.Vertex, RouteChange: pp.RouteChange, Addrs: pp.Addrs}
	}
	return jg
}

// perPacketFromJSON returns the per-packet hops of a "graph" object, nil
// when there are none.
func perPacketFromJSON(jg *jsonGraph) []PerPacketHop {
	if jg == nil || len(jg.PerPacket) == 0 {
		return nil
	}
	out := make([]PerPacketHop, len(jg.PerPacket))
	for i, pp := range jg.PerPacket {
		out[i] = PerPacketHop{PathID: pp.PathID, TTL: pp.TTL, Addrs: pp.Addrs, Vertex: pp.Vertex, RouteChange: pp.RouteChange}
	}
	return out
}
