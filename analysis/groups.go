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

// GroupGraph is the topology of many traces at once, as a bulk scan makes
// it: the routers their paths cross, their distinct router paths, and their
// destinations grouped by the paths that lead to them.
//
// The router path of a distinct path (see Trace.UniquePaths) is its hops
// without the destination's own reply: from the first TTL to the last
// router before the destination, or to the last hop that answered when the
// destination did not. Destinations whose router paths are the same leave
// the graph at the same routers in the same ways: they are one group, which
// the views draw as one node.
type GroupGraph struct {
	Source  netip.Addr
	Routers []Router     // by TTL; responding ones by address, then silent ones
	Paths   []RouterPath // in the order first met
	Groups  []DestinationGroup
	// Destinations and Reached count the traces, and those that reached
	// their destination.
	Destinations, Reached int
}

// Router is a node of a GroupGraph: an address that answered at one TTL,
// or a silent hop of one router path (nothing says that two silent hops are
// the same router).
type Router struct {
	Addr   netip.Addr // invalid when silent
	TTL    int
	Silent bool
	// Destinations is the number of destinations whose paths cross it.
	Destinations int
	// Diverge and Converge say that it has more than one responding
	// successor or predecessor among the routers.
	Diverge, Converge      bool
	RTTMin, RTTAvg, RTTMax time.Duration // over every probe it answered
	RTTCount               int
	ASN                    uint32 // Hop.ASN and Hop.IXP, when known
	IXP                    string
}

// RouterPath is a distinct sequence of routers, shared by the destinations
// it leads to.
type RouterPath struct {
	// Routers are indices into GroupGraph.Routers, by TTL: empty when the
	// destination answered the first TTL, or nothing answered.
	Routers []int
	Groups  []int // the groups whose destinations take it, ascending
}

// DestinationGroup is a set of destinations whose router paths are the
// same.
type DestinationGroup struct {
	Paths   []int    // indices into GroupGraph.Paths, ascending
	Members []Member // by address
	// Prefixes are the fewest prefixes that hold the members and no
	// destination of another group (see CoverPrefixes).
	Prefixes []netip.Prefix
	Reached  int // members that reached their destination
	// TTL is the group's place on the TTL axis: one past the last router
	// of its longest path.
	TTL int
}

// Member is one destination of a group.
type Member struct {
	Trace int // its index in the traces given to BuildGroupGraph
	Addr  netip.Addr
	Name  string // as given, when it is not the address
	// PathIDs[k] are the path IDs that took the group's path Paths[k],
	// ascending.
	PathIDs          [][]int
	Reached, Partial bool
	RTT              time.Duration // the mean RTT of the destination's replies; 0 without one
}

// BuildGroupGraph returns the routers, router paths and destination groups
// of traces.
func BuildGroupGraph(traces []*Trace) *GroupGraph {
	b := &groupBuilder{
		gg:        &GroupGraph{Routers: []Router{}, Paths: []RouterPath{}, Groups: []DestinationGroup{}},
		routerKey: map[nodeKey]int{},
		pathKey:   map[string]int{},
		groupKey:  map[string]int{},
	}
	for i, t := range traces {
		b.add(i, t)
	}
	b.sortRouters()
	b.sortGroups()
	b.finishRouters()
	gg := b.gg
	var addrs []netip.Addr
	var class []int
	for gi := range gg.Groups {
		g := &gg.Groups[gi]
		for _, m := range g.Members {
			addrs = append(addrs, m.Addr)
			class = append(class, gi)
		}
	}
	for gi, ps := range CoverPrefixes(addrs, class, len(gg.Groups)) {
		gg.Groups[gi].Prefixes = ps
	}
	return gg
}

// groupBuilder holds a GroupGraph while traces are added to it.
type groupBuilder struct {
	gg        *GroupGraph
	routerKey map[nodeKey]int // responding routers
	rttSum    []time.Duration // per router
	pathKey   map[string]int
	groupKey  map[string]int
	key       []byte
}

// add adds the destination of trace ti to its group.
func (b *groupBuilder) add(ti int, t *Trace) {
	gg := b.gg
	if !gg.Source.IsValid() {
		gg.Source = t.Source
	}
	m := Member{Trace: ti, Addr: t.Destination, Partial: t.Partial}
	if t.Name != "" && t.Name != t.Destination.String() {
		m.Name = t.Name
	}
	var paths []int
	var ids [][]int
	var rtt time.Duration
	var replies int
	for _, fl := range t.groups() {
		p := b.path(&t.Flows[fl[0]])
		k := slices.Index(paths, p)
		if k < 0 {
			k = len(paths)
			paths, ids = append(paths, p), append(ids, nil)
		}
		for _, fi := range fl {
			f := &t.Flows[fi]
			ids[k] = append(ids[k], f.PathID)
			b.measure(f, gg.Paths[p].Routers)
			if f.Reached {
				m.Reached = true
				if h := f.Hops[len(f.Hops)-1]; h.HasRTT() {
					rtt += h.RTT
					replies++
				}
			}
		}
	}
	if replies > 0 {
		m.RTT = rtt / time.Duration(replies)
	}
	// The group's paths ascending, the member's path IDs in their order.
	order := make([]int, len(paths))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return paths[x] - paths[y] })
	var key strings.Builder
	sorted := make([]int, len(paths))
	m.PathIDs = make([][]int, len(paths))
	for i, k := range order {
		sorted[i] = paths[k]
		m.PathIDs[i] = ids[k]
		slices.Sort(m.PathIDs[i])
		key.WriteString(strconv.Itoa(paths[k]))
		key.WriteByte(',')
	}
	gi, ok := b.groupKey[key.String()]
	if !ok {
		gi = len(gg.Groups)
		b.groupKey[key.String()] = gi
		gg.Groups = append(gg.Groups, DestinationGroup{Paths: sorted})
	}
	g := &gg.Groups[gi]
	g.Members = append(g.Members, m)
	gg.Destinations++
	if m.Reached {
		g.Reached++
		gg.Reached++
	}
}

// path returns the router path of flow f, adding it when it is new.
func (b *groupBuilder) path(f *Flow) int {
	n := len(f.Hops)
	if f.Reached && n > 0 {
		n-- // the destination's reply
	}
	// Per hop: its TTL in two bytes, then '*' when silent, or '4' or '6'
	// and the 16 bytes of the address.
	key := b.key[:0]
	for i := range n {
		h := &f.Hops[i]
		ttl, a := hopTTL(h, i), h.pathAddr()
		key = append(key, byte(ttl>>8), byte(ttl))
		switch {
		case !a.IsValid():
			key = append(key, '*')
			continue
		case a.Is4():
			key = append(key, '4')
		default:
			key = append(key, '6')
		}
		a16 := a.As16()
		key = append(key, a16[:]...)
	}
	b.key = key
	if p, ok := b.pathKey[string(key)]; ok {
		return p
	}
	gg := b.gg
	p := len(gg.Paths)
	b.pathKey[string(key)] = p
	routers := make([]int, n)
	for i := range n {
		h := &f.Hops[i]
		ttl, a := hopTTL(h, i), h.pathAddr()
		if !a.IsValid() {
			routers[i] = b.addRouter(Router{TTL: ttl, Silent: true})
			continue
		}
		r, ok := b.routerKey[nodeKey{a, ttl}]
		if !ok {
			r = b.addRouter(Router{Addr: a, TTL: ttl})
			b.routerKey[nodeKey{a, ttl}] = r
		}
		routers[i] = r
	}
	gg.Paths = append(gg.Paths, RouterPath{Routers: routers})
	return p
}

func (b *groupBuilder) addRouter(r Router) int {
	b.gg.Routers = append(b.gg.Routers, r)
	b.rttSum = append(b.rttSum, 0)
	return len(b.gg.Routers) - 1
}

// measure adds the RTTs, AS and IXP of the hops of f to its routers.
func (b *groupBuilder) measure(f *Flow, routers []int) {
	for i, ri := range routers {
		h := &f.Hops[i]
		r := &b.gg.Routers[ri]
		if r.ASN == 0 && !r.Silent {
			r.ASN = h.ASN
		}
		if r.IXP == "" && !r.Silent {
			r.IXP = h.IXP
		}
		if !h.HasRTT() || r.Silent {
			continue
		}
		if r.RTTCount == 0 || h.RTT < r.RTTMin {
			r.RTTMin = h.RTT
		}
		r.RTTMax = max(r.RTTMax, h.RTT)
		r.RTTCount++
		b.rttSum[ri] += h.RTT
	}
}

// sortRouters orders the routers by TTL, responding ones by address and
// then silent ones as met, and renumbers the paths.
func (b *groupBuilder) sortRouters() {
	gg := b.gg
	perm := make([]int, len(gg.Routers))
	for i := range perm {
		perm[i] = i
	}
	slices.SortStableFunc(perm, func(x, y int) int {
		rx, ry := &gg.Routers[x], &gg.Routers[y]
		if c := cmp.Compare(rx.TTL, ry.TTL); c != 0 {
			return c
		}
		if rx.Silent != ry.Silent {
			if rx.Silent {
				return 1
			}
			return -1
		}
		return rx.Addr.Compare(ry.Addr)
	})
	routers := make([]Router, len(perm))
	inv := make([]int, len(perm))
	for i, old := range perm {
		routers[i] = gg.Routers[old]
		if r := &routers[i]; r.RTTCount > 0 {
			r.RTTAvg = b.rttSum[old] / time.Duration(r.RTTCount)
		}
		inv[old] = i
	}
	gg.Routers = routers
	for pi := range gg.Paths {
		for i, r := range gg.Paths[pi].Routers {
			gg.Paths[pi].Routers[i] = inv[r]
		}
	}
	b.sortPaths()
}

// sortPaths orders the paths by their routers, and renumbers them in the
// groups, whose members' path IDs follow.
func (b *groupBuilder) sortPaths() {
	gg := b.gg
	perm := make([]int, len(gg.Paths))
	for i := range perm {
		perm[i] = i
	}
	slices.SortFunc(perm, func(x, y int) int { return slices.Compare(gg.Paths[x].Routers, gg.Paths[y].Routers) })
	paths := make([]RouterPath, len(perm))
	inv := make([]int, len(perm))
	for i, old := range perm {
		paths[i] = gg.Paths[old]
		inv[old] = i
	}
	gg.Paths = paths
	for gi := range gg.Groups {
		g := &gg.Groups[gi]
		order := make([]int, len(g.Paths))
		for k := range order {
			order[k] = k
			g.Paths[k] = inv[g.Paths[k]]
		}
		slices.SortFunc(order, func(x, y int) int { return g.Paths[x] - g.Paths[y] })
		g.Paths = permute(g.Paths, order)
		for mi := range g.Members {
			g.Members[mi].PathIDs = permute(g.Members[mi].PathIDs, order)
		}
	}
}

// permute returns s in the order of the indices in order.
func permute[T any](s []T, order []int) []T {
	out := make([]T, len(s))
	for i, k := range order {
		out[i] = s[k]
	}
	return out
}

// sortGroups orders each group's members, and the groups, by address, and
// notes the groups on their paths.
func (b *groupBuilder) sortGroups() {
	gg := b.gg
	for gi := range gg.Groups {
		slices.SortStableFunc(gg.Groups[gi].Members, func(x, y Member) int { return x.Addr.Compare(y.Addr) })
	}
	slices.SortStableFunc(gg.Groups, func(x, y DestinationGroup) int { return x.Members[0].Addr.Compare(y.Members[0].Addr) })
	for gi := range gg.Groups {
		g := &gg.Groups[gi]
		g.TTL = 1
		for _, p := range g.Paths {
			rp := &gg.Paths[p]
			rp.Groups = append(rp.Groups, gi)
			if n := len(rp.Routers); n > 0 {
				g.TTL = max(g.TTL, gg.Routers[rp.Routers[n-1]].TTL+1)
			}
		}
	}
}

// finishRouters counts the destinations through each router and marks
// where responding routers branch.
func (b *groupBuilder) finishRouters() {
	gg := b.gg
	seen := make([]int, len(gg.Routers)) // the group that last counted it, plus one
	for gi := range gg.Groups {
		g := &gg.Groups[gi]
		for _, p := range g.Paths {
			for _, r := range gg.Paths[p].Routers {
				if seen[r] != gi+1 {
					seen[r] = gi + 1
					gg.Routers[r].Destinations += len(g.Members)
				}
			}
		}
	}
	links := map[[2]int]bool{}
	succ := make([]int, len(gg.Routers))
	pred := make([]int, len(gg.Routers))
	for _, p := range gg.Paths {
		for i := 1; i < len(p.Routers); i++ {
			l := [2]int{p.Routers[i-1], p.Routers[i]}
			if links[l] || gg.Routers[l[0]].Silent || gg.Routers[l[1]].Silent {
				continue
			}
			links[l] = true
			succ[l[0]]++
			pred[l[1]]++
		}
	}
	for i := range gg.Routers {
		gg.Routers[i].Diverge = succ[i] > 1
		gg.Routers[i].Converge = pred[i] > 1
	}
}

// GroupLink joins two nodes of a GroupGraph along some of its router paths:
// the source or a router to a router, or the last router of a path (or the
// source) to a group.
type GroupLink struct {
	From    int  // a router, or -1 for the source
	To      int  // a router, or a group when ToGroup
	ToGroup bool // To is a group
	Paths   []int
	// Destinations is the number of destinations whose paths take the
	// link.
	Destinations int
}

// Links returns the links of gg: those of the router paths, from the
// source to the routers of the first TTL and on, then from the end of each
// path to each group that takes it. They are ordered by From (the source
// first), then by To (routers before groups).
func (gg *GroupGraph) Links() []GroupLink {
	type key struct {
		from, to int
		group    bool
	}
	index := map[key]int{}
	var links []GroupLink
	add := func(k key, p int) {
		i, ok := index[k]
		if !ok {
			i = len(links)
			index[k] = i
			links = append(links, GroupLink{From: k.from, To: k.to, ToGroup: k.group})
		}
		if ps := links[i].Paths; len(ps) == 0 || ps[len(ps)-1] != p {
			links[i].Paths = append(ps, p)
		}
	}
	for p, rp := range gg.Paths {
		prev := -1
		for _, r := range rp.Routers {
			add(key{prev, r, false}, p)
			prev = r
		}
		for _, g := range rp.Groups {
			add(key{prev, g, true}, p)
		}
	}
	for i := range links {
		l := &links[i]
		slices.Sort(l.Paths)
		l.Paths = slices.Compact(l.Paths)
		l.Destinations = gg.destinationsOn(l)
	}
	slices.SortFunc(links, func(x, y GroupLink) int {
		if c := cmp.Compare(x.From, y.From); c != 0 {
			return c
		}
		if x.ToGroup != y.ToGroup {
			if x.ToGroup {
				return 1
			}
			return -1
		}
		return cmp.Compare(x.To, y.To)
	})
	return links
}

// destinationsOn counts the destinations whose paths take l.
func (gg *GroupGraph) destinationsOn(l *GroupLink) int {
	if l.ToGroup {
		return len(gg.Groups[l.To].Members)
	}
	var groups []int
	for _, p := range l.Paths {
		groups = append(groups, gg.Paths[p].Groups...)
	}
	slices.Sort(groups)
	n := 0
	for _, g := range slices.Compact(groups) {
		n += len(gg.Groups[g].Members)
	}
	return n
}

// Where names the addresses of g in a few words: the addresses themselves
// when there are at most max, else its prefixes when there are at most max,
// else "within" at most max prefixes that hold them (and others): the
// fewest whose addresses are no more than twice those of the smallest max
// (the two /21 of a /20 are "within" the /20, two /24 far apart are not).
func (g *DestinationGroup) Where(max int) string {
	if len(g.Members) <= max {
		addrs := make([]string, len(g.Members))
		for i, m := range g.Members {
			addrs[i] = m.Addr.String()
		}
		return strings.Join(addrs, ", ")
	}
	if len(g.Prefixes) <= max {
		return PrefixText(g.Prefixes)
	}
	best := SummarizePrefixes(g.Prefixes, max)
	limit := 2 * prefixSize(best)
	for k := 1; k < len(best); k++ {
		if s := SummarizePrefixes(g.Prefixes, k); prefixSize(s) <= limit {
			best = s
			break
		}
	}
	return "within " + PrefixText(best)
}

// prefixSize is the number of addresses in ps (disjoint), as a float: an
// IPv6 prefix may hold more than an int counts.
func prefixSize(ps []netip.Prefix) float64 {
	n := 0.0
	for _, p := range ps {
		n += math.Ldexp(1, p.Addr().BitLen()-p.Bits())
	}
	return n
}

// Label is what a view writes on the node of g: for one destination, its
// address (and name); for several, where they are, how many, and how many
// were reached: "10.21.0.0/20 - 4,094 destinations\n4,094 reached".
func (g *DestinationGroup) Label() string {
	if len(g.Members) == 1 {
		m := g.Members[0]
		if m.Name != "" {
			return m.Addr.String() + "\n" + m.Name
		}
		return m.Addr.String()
	}
	s := g.Where(3) + " - " + thousands(len(g.Members)) + " destinations\n"
	switch g.Reached {
	case len(g.Members):
		return s + thousands(g.Reached) + " reached"
	case 0:
		return s + "none reached"
	}
	return s + thousands(g.Reached) + " reached, " + thousands(len(g.Members)-g.Reached) + " not"
}
