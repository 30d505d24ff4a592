package tracertest

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
)

// world is a Topology made ready to simulate: nodes and links by index,
// addresses resolved, who holds which address, who reaches whom.
type world struct {
	nodes  []simNode
	links  []simLink
	byName map[string]int32
	// owners are the addresses configured on a node (its own and its
	// links' ends); locals the prefixes of Node.Local, longest first.
	owners map[netip.Addr]int32
	locals []localPrefix
	// reach[i] is the set of nodes reachable from node i, itself included.
	reach [][]uint64
	hops  map[[2]int32][]int32 // next links of a node towards an owner
	src   int32
}

type simNode struct {
	conf         Node
	addr4, addr6 netip.Addr // the address it answers from by default
	in, out      []int32    // links into and out of it
	routes       []simRoute
	seed         uint64 // of its ECMP hash
	rng          *rand.Rand
	ipid         uint16
	limit        limiter
	ctr          Counters
}

type simLink struct {
	conf         Link
	from, to     int32
	from4, from6 netip.Addr
	to4, to6     netip.Addr
	rng          *rand.Rand
}

type simRoute struct {
	prefix netip.Prefix
	links  []int32
}

type localPrefix struct {
	prefix netip.Prefix
	node   int32
}

// compile checks t and builds its world; seed seeds the hashes and the
// random draws.
func compile(t *Topology, seed uint64) (*world, error) {
	if t.err != nil {
		return nil, t.err
	}
	w := &world{byName: map[string]int32{}, owners: map[netip.Addr]int32{}, hops: map[[2]int32][]int32{}}
	for i, n := range t.nodes {
		if err := checkNode(n); err != nil {
			return nil, err
		}
		w.byName[n.Name] = int32(i)
		c := *n
		c.Addrs, c.Local = slices.Clone(n.Addrs), slices.Clone(n.Local)
		c.MPLS, c.OpenTCP = slices.Clone(n.MPLS), slices.Clone(n.OpenTCP)
		sn := simNode{conf: c, seed: n.HashSeed, limit: limiter{conf: n.RateLimit}}
		if sn.seed == 0 {
			sn.seed = mix(seed ^ nameHash(n.Name))
		}
		sn.rng = rand.New(rand.NewPCG(seed, nameHash(n.Name)))
		w.nodes = append(w.nodes, sn)
	}
	w.src = w.byName[Source]
	for j, l := range t.links {
		if err := w.addLink(j, l, seed); err != nil {
			return nil, err
		}
	}
	for i := range w.nodes {
		if err := w.resolve(int32(i)); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(w.locals, func(a, b localPrefix) int { return cmp.Compare(b.prefix.Bits(), a.prefix.Bits()) })
	w.reachability()
	return w, nil
}

func checkNode(n *Node) error {
	bad := func(p float64) bool { return p < 0 || p > 1 }
	if bad(n.Loss) || bad(n.ReplyLoss) {
		return fmt.Errorf("tracertest: node %s: loss out of 0..1", n.Name)
	}
	for _, a := range n.Addrs {
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("tracertest: node %s: bad address %v", n.Name, a)
		}
	}
	return nil
}

// addLink adds the j-th link of the topology, with made-up addresses
// where it has none.
func (w *world) addLink(j int, l *Link, seed uint64) error {
	if l.Loss < 0 || l.Loss > 1 {
		return fmt.Errorf("tracertest: link %s-%s: loss out of 0..1", l.From, l.To)
	}
	sl := simLink{conf: *l, from: w.byName[l.From], to: w.byName[l.To]}
	sl.rng = rand.New(rand.NewPCG(seed, nameHash(l.From+"\x00"+l.To)))
	if l.auto {
		// 100.64.0.0/10 and fd00:fffe::/64, a /30 a link.
		v4 := uint32(100<<24|64<<16) + 4*uint32(j)
		sl.from4, sl.to4 = addr4(v4+1), addr4(v4+2)
		sl.from6, sl.to6 = addr6(0xfd00fffe, uint64(4*j+1)), addr6(0xfd00fffe, uint64(4*j+2))
	} else {
		sl.from4, sl.from6 = family(l.FromAddrs)
		sl.to4, sl.to6 = family(l.ToAddrs)
	}
	for _, a := range []netip.Addr{sl.from4, sl.from6} {
		w.own(a, sl.from)
	}
	for _, a := range []netip.Addr{sl.to4, sl.to6} {
		w.own(a, sl.to)
	}
	w.links = append(w.links, sl)
	w.nodes[sl.from].out = append(w.nodes[sl.from].out, int32(j))
	w.nodes[sl.to].in = append(w.nodes[sl.to].in, int32(j))
	return nil
}

// own records that node i holds address a (the first holder keeps it).
func (w *world) own(a netip.Addr, i int32) {
	if _, ok := w.owners[a]; a.IsValid() && !ok {
		w.owners[a] = i
	}
}

// resolve sets node i's addresses, locals and routes.
func (w *world) resolve(i int32) error {
	n := &w.nodes[i]
	for _, a := range n.conf.Addrs {
		w.own(a, i)
	}
	for _, p := range n.conf.Local {
		w.locals = append(w.locals, localPrefix{p, i})
	}
	n.addr4, n.addr6 = family(n.conf.Addrs)
	for _, l := range n.in {
		n.addr4 = cmp.Or(n.addr4, w.links[l].to4)
		n.addr6 = cmp.Or(n.addr6, w.links[l].to6)
	}
	for _, l := range n.out {
		n.addr4 = cmp.Or(n.addr4, w.links[l].from4)
		n.addr6 = cmp.Or(n.addr6, w.links[l].from6)
	}
	// Made up: 198.18.0.0/15 and fd00:ffff::/64.
	n.addr4 = cmp.Or(n.addr4, addr4(uint32(198<<24|18<<16)+uint32(i)+1))
	n.addr6 = cmp.Or(n.addr6, addr6(0xfd00ffff, uint64(i)+1))
	w.own(n.addr4, i)
	w.own(n.addr6, i)
	for _, r := range n.conf.routes {
		sr := simRoute{prefix: r.prefix}
		for _, v := range r.via {
			l := w.linkTo(i, v)
			if l < 0 {
				return fmt.Errorf("tracertest: route of %s to %v via %s: no link %s-%s", n.conf.Name, r.prefix, v, n.conf.Name, v)
			}
			sr.links = append(sr.links, l)
		}
		n.routes = append(n.routes, sr)
	}
	slices.SortStableFunc(n.routes, func(a, b simRoute) int { return cmp.Compare(b.prefix.Bits(), a.prefix.Bits()) })
	return nil
}

// linkTo returns the link from node i to the node named to, or -1.
func (w *world) linkTo(i int32, to string) int32 {
	for _, l := range w.nodes[i].out {
		if w.nodes[w.links[l].to].conf.Name == to {
			return l
		}
	}
	return -1
}

// reachability fills w.reach by a search from every node.
func (w *world) reachability() {
	n := len(w.nodes)
	w.reach = make([][]uint64, n)
	stack := make([]int32, 0, n)
	for i := range w.nodes {
		seen := make([]uint64, (n+63)/64)
		stack = append(stack[:0], int32(i))
		seen[i/64] |= 1 << (i % 64)
		for len(stack) > 0 {
			cur := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, l := range w.nodes[cur].out {
				to := w.links[l].to
				if seen[to/64]&(1<<(to%64)) == 0 {
					seen[to/64] |= 1 << (to % 64)
					stack = append(stack, to)
				}
			}
		}
		w.reach[i] = seen
	}
}

// owner returns the node that answers for dst and whether dst is one of
// its configured addresses (rather than in one of its Local prefixes),
// or -1.
func (w *world) owner(dst netip.Addr) (node int32, configured bool) {
	if i, ok := w.owners[dst]; ok {
		return i, true
	}
	for _, l := range w.locals {
		if l.prefix.Contains(dst) {
			return l.node, false
		}
	}
	return -1, false
}

// nextLinks returns the links node i may send a packet to dst by: those
// of its longest static route that covers dst, else those towards the
// node that holds dst.
func (w *world) nextLinks(i int32, dst netip.Addr) []int32 {
	for _, r := range w.nodes[i].routes {
		if r.prefix.Contains(dst) {
			return r.links
		}
	}
	o, _ := w.owner(dst)
	if o < 0 || o == i {
		return nil
	}
	key := [2]int32{i, o}
	if ls, ok := w.hops[key]; ok {
		return ls
	}
	var ls []int32
	for _, l := range w.nodes[i].out {
		if to := w.links[l].to; w.reach[to][o/64]&(1<<(o%64)) != 0 {
			ls = append(ls, l)
		}
	}
	w.hops[key] = ls
	return ls
}

// family returns the first IPv4 and the first IPv6 address of addrs.
func family(addrs []netip.Addr) (v4, v6 netip.Addr) {
	for _, a := range addrs {
		if a.Is4() && !v4.IsValid() {
			v4 = a
		} else if a.Is6() && !v6.IsValid() {
			v6 = a
		}
	}
	return v4, v6
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// addr6 returns the address whose first 32 bits are hi and last 64 lo.
func addr6(hi uint32, lo uint64) netip.Addr {
	var b [16]byte
	b[0], b[1], b[2], b[3] = byte(hi>>24), byte(hi>>16), byte(hi>>8), byte(hi)
	for k := 0; k < 8; k++ {
		b[15-k] = byte(lo >> (8 * k))
	}
	return netip.AddrFrom16(b)
}

func nameHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// mix is splitmix64's finalizer: a bijection that spreads every input
// bit over the output.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
