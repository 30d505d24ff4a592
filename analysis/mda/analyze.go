package mda

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// node is a vertex: a responding address at a TTL; the source at TTL 0
// and an anonymous (silent) hop have no address.
type node struct {
	ttl  int
	addr netip.Addr
}

func (k node) anon() bool { return k.ttl > 0 && !k.addr.IsValid() }

// How the hop of a flow at a TTL is known.
const (
	howUnknown uint8 = iota
	howObserved
	howInferred
)

// flow is what the analysis knows of one path ID.
type flow struct {
	id      int
	row     []analysis.Probe // the State's
	key     []node           // per TTL 0..horizon: the vertex, when how says it is known
	how     []uint8
	end     int // the TTL at which the flow ends (reached or stopped, probed or inferred); 0 while open
	dark    int // the first TTL of GapLimit silent answers in a row; 0 if none
	run     int // silent answers in a row so far (while analysing)
	reached bool
}

// unprobed stands for the probes past the end of a row.
var unprobed analysis.Probe

// at returns the probe of the flow at ttl. Only a probe Sent says
// anything: what answered one not sent (a stray reply) is not evidence.
func (f *flow) at(ttl int) *analysis.Probe {
	if ttl >= 1 && ttl <= len(f.row) {
		return &f.row[ttl-1]
	}
	return &unprobed
}

// goesOn reports whether the flow, known at ttl, has a hop at ttl+1 worth
// knowing: it has not ended there and has not gone dark.
func (f *flow) goesOn(ttl int) bool {
	return (f.end == 0 || ttl < f.end) && (f.dark == 0 || ttl < f.dark)
}

// vertex is a vertex at the TTL before a hop, and its test.
type vertex struct {
	key    node
	flows  []int // indices into analyzer.flows of the flows known here that go on
	cands  []int // of those, the ones not probed at the next TTL
	probed int   // of those, the ones probed at the next TTL (answered or not)
	quiet  int   // of those, the ones not answered
	succ   []node
	dst    int  // how many of succ end the flows: the destination, or an unreachable
	silent bool // a probe at the next TTL was not answered
	passed bool
	single bool // passed with one responding successor (not the destination)
	toDst  bool // passed with the destination (or an unreachable) as its only successor
	stops  bool // that successor is an unreachable: not the destination
	// For checking inferences: the successors of the flows probed (not
	// inferred) here, and the flows inferred here that answered at the
	// next TTL.
	obsN     int
	obsSucc  []node
	inferred []int
	// back counts the flows (in probed) whose hop here was inferred from
	// the vertex they reached beyond: no evidence of meshing.
	back int
}

// successors returns k: the distinct successors seen. A silence is no
// evidence (a lost probe, or a successor that never answers: the two look
// alike) unless nothing answered at all: then the successor is one
// anonymous vertex.
func (v *vertex) successors() int {
	if len(v.succ) == 0 && v.silent {
		return 1
	}
	return len(v.succ)
}

// evidence returns the flows that count for the stopping rule: those
// answered, or those probed when none was.
func (v *vertex) evidence() int {
	if len(v.succ) == 0 {
		return v.probed
	}
	return v.probed - v.quiet
}

// direct returns the evidence from flows seen (or inferred forward) here:
// those that could show meshing.
func (v *vertex) direct() int { return v.evidence() - v.back }

// phi is the MDA-Lite meshing test: the flows seen at each vertex of a
// hop tested as one that must be probed beyond it (here, their sum after
// each vertex's first).
const phi = 2

// need is a test that fails: the flows it still lacks.
type need struct {
	members []int // indices into hop.verts
	short   int   // flows still to probe at the hop's TTL
	avail   int   // flows known at the members and not probed there
	// whole says that every vertex at the TTL before (but anonymous ones)
	// is a member: any flow reaching that TTL will do.
	whole bool
	// placed says that flows probed beyond the members alone, placed at
	// them by where they went, count: a test of the hop as a whole.
	placed bool
}

// hop is the analysis of one TTL: the tests of the vertices before it.
type hop struct {
	ttl      int
	verts    []*vertex // the vertices at ttl-1, by their first path ID
	needs    []need
	complete []int // flows to probe at ttl to complete their rows
	// verify lists flows whose hop at ttl-1 was inferred but whose answer
	// at ttl makes that doubtful: to probe at ttl-1.
	verify []int
	known  int // flows known at ttl-1 that go on
	// inferable says that a flow known at ttl-1 is known at ttl without
	// probing it: every vertex at ttl-1 passed with a single successor.
	inferable bool
	// meshFree says that no vertex at ttl (but the end of the flows) was
	// reached from two vertices at ttl-1: a flow probed at ttl only was at
	// the one predecessor of the vertex it reached.
	meshFree bool
}

type analyzer struct {
	conf    float64
	oneHop  bool
	maxTTL  int
	gap     int
	flows   []flow
	maxID   int
	reached bool // some flow reached the destination
	horizon int  // the deepest TTL that tests may probe
	hops    []*hop
	// byID[id] is the index into flows of path ID id, -1 if none.
	byID []int
	// prefix[t]: every flow is known to be at one vertex at TTL t (the
	// source and a chain of lone vertices with single successors).
	prefix []bool

	// Memory kept from one analysis to the next (see analyzers): the
	// flows' key and how rows, the vertices (the first nverts in use),
	// and the members of needs.
	keys   []node
	hows   []uint8
	verts  []*vertex
	nverts int
	ints   []int
	// Scratch of one hop.
	vertOf  []int // per flow, its vertex at the TTL before the hop; -1 if none
	pending []int
	parent  []int
	compOf  []int // per vertex that is a root, its component; -1 if none
	sizes   []int // per component, how many vertices
	comps   [][]int
	seen    []node
	ends    []node
	asked   []node
	where   []node
	// Scratch of plan: the cells planned, per TTL too, and as a bitset
	// (see planned).
	cells     []Cell
	plannedAt [][]int
	inPlan    []uint64
	planWords int
	rem       []int
	ttls      []int
	got       []int
	next      []int
	// FillInferred's table of how each vertex answered: for TTL t,
	// answers[answerAt[t]:answerAt[t+1]].
	answers  []answerRef
	answerAt []int
}

// analyzers keeps analyses for reuse: a planning round (and the filling
// of a trace) analyses the whole search so far, and a bulk scan does that
// for every destination.
var analyzers = sync.Pool{New: func() any { return new(analyzer) }}

// release gives a back to analyzers; a is not to be used after.
func (a *analyzer) release() {
	for i := range a.flows {
		a.flows[i].row = nil // the caller's memory
	}
	analyzers.Put(a)
}

// analyze returns the analysis of st at the given confidence, to be
// released after use.
func analyze(st *State, confidence float64) *analyzer {
	a := analyzers.Get().(*analyzer)
	a.conf, a.maxTTL, a.gap, a.oneHop = confidence, st.MaxTTL, st.GapLimit, st.OneFirstHop
	if a.gap <= 0 {
		a.gap = defaultGap
	}
	a.maxID, a.reached, a.nverts, a.ints = 0, false, 0, a.ints[:0]
	longest, answered, n := 0, 0, 0
	for _, r := range st.Rows {
		longest = max(longest, len(r))
		for i := range r {
			if o := &r[i]; o.Sent() && o.From().IsValid() {
				answered = max(answered, i+1)
				a.reached = a.reached || o.Reached()
			}
		}
		if len(r) > 0 {
			n++
		}
	}
	if a.maxTTL <= 0 {
		a.maxTTL = longest
	}
	// Without the destination, only TTLs up to the deepest answer are
	// explored: beyond is the silence where round 0 gave up. With it, one
	// TTL beyond the deepest probe, to test the vertices found there.
	a.horizon = min(answered, a.maxTTL)
	if a.reached {
		a.horizon = min(longest+1, a.maxTTL)
	}
	// Every flow's key and how rows, one block each.
	w := a.horizon + 1
	a.keys = resize(a.keys, n*w)
	a.hows = resize(a.hows, n*w)
	clear(a.keys)
	clear(a.hows)
	a.flows = a.flows[:0]
	for i, r := range st.Rows {
		if len(r) == 0 {
			continue
		}
		j := len(a.flows) * w
		f := flow{id: i + 1, row: r, key: a.keys[j : j+w : j+w], how: a.hows[j : j+w : j+w]}
		f.how[0] = howObserved // the source
		a.flows = append(a.flows, f)
		a.maxID = i + 1
	}
	a.byID = resize(a.byID, a.maxID+1)
	for i := range a.byID {
		a.byID[i] = -1
	}
	for i := range a.flows {
		a.byID[a.flows[i].id] = i
	}
	a.vertOf = resize(a.vertOf, len(a.flows))
	a.hops = resize(a.hops, a.horizon+2)
	a.prefix = resize(a.prefix, a.horizon+2)
	clear(a.prefix)
	a.prefix[0] = true
	for h := 1; h <= a.horizon; h++ {
		if a.hops[h] == nil {
			a.hops[h] = new(hop)
		}
		a.testHop(a.hops[h], h)
	}
	return a
}

// resize returns s with length n, reusing its memory when it can; the
// elements kept are not cleared.
func resize[S ~[]E, E any](s S, n int) S {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make(S, n-cap(s))...)
}

// lookup returns the index into a.flows of path ID id.
func (a *analyzer) lookup(id int) (int, bool) {
	if id < 0 || id >= len(a.byID) || a.byID[id] < 0 {
		return 0, false
	}
	return a.byID[id], true
}

// n is the MDA stopping rule.
func (a *analyzer) n(k int) int { return Flows(k, a.conf) }

// newVertex returns a vertex for key, reusing one from an earlier
// analysis (and the memory of its lists) when it can.
func (a *analyzer) newVertex(key node) *vertex {
	if a.nverts == len(a.verts) {
		a.verts = append(a.verts, new(vertex))
	}
	v := a.verts[a.nverts]
	a.nverts++
	*v = vertex{key: key, flows: v.flows[:0], cands: v.cands[:0], succ: v.succ[:0], obsSucc: v.obsSucc[:0], inferred: v.inferred[:0]}
	return v
}

// members appends vis to a.ints and returns a.ints from start on: the
// members of a need (the caller may have appended some already), which
// last as long as the analysis.
func (a *analyzer) members(start int, vis ...int) []int {
	a.ints = append(a.ints, vis...)
	return a.ints[start:len(a.ints):len(a.ints)]
}

// vertex returns the index of the vertex k in hp.verts, -1 if none.
func (hp *hop) vertex(k node) int {
	for vi, v := range hp.verts {
		if v.key == k {
			return vi
		}
	}
	return -1
}

// preds returns the first vertex of hp (by index) of which sk is a
// successor, and how many are.
func (hp *hop) preds(sk node) (first, n int) {
	first = -1
	for vi, v := range hp.verts {
		if slices.Contains(v.succ, sk) {
			if n == 0 {
				first = vi
			}
			n++
		}
	}
	return first, n
}

// root is the find of union-find over parent, halving paths.
func root(parent []int, x int) int {
	for parent[x] != x {
		parent[x] = parent[parent[x]]
		x = parent[x]
	}
	return x
}

// addNode adds k to the set ks.
func addNode(ks []node, k node) []node {
	if slices.Contains(ks, k) {
		return ks
	}
	return append(ks, k)
}

// hop tests the vertices at h-1 with the probes at h, into hp, then sets
// the flows' vertices at h.

func (a *analyzer) testHop(hp *hop, h int) {
	*hp = hop{ttl: h, verts: hp.verts[:0], needs: hp.needs[:0], complete: hp.complete[:0], verify: hp.verify[:0]}
	seen := a.seen[:0]       // every vertex at h-1, ended flows included
	ends := a.ends[:0]       // the successors that end the flows reaching them
	pending := a.pending[:0] // flows probed at h, not at h-1, their vertex there unknown
	for i := range a.flows {
		f := &a.flows[i]
		a.vertOf[i] = -1
		if (f.dark != 0 && h-1 >= f.dark) || (f.end != 0 && h-1 > f.end) {
			continue
		}
		if f.how[h-1] == howUnknown {
			if f.at(h).Sent() && !f.at(h-1).Sent() {
				pending = append(pending, i)
			}
			continue
		}
		seen = addNode(seen, f.key[h-1])
		if !f.goesOn(h - 1) {
			continue
		}
		vi := hp.vertex(f.key[h-1])
		if vi < 0 {
			vi = len(hp.verts)
			hp.verts = append(hp.verts, a.newVertex(f.key[h-1]))
		}
		a.vertOf[i] = vi
		v := hp.verts[vi]
		v.flows = append(v.flows, i)
		hp.known++
		o := f.at(h)
		if !o.Sent() {
			v.cands = append(v.cands, i)
			continue
		}
		v.probed++
		if !o.From().IsValid() {
			v.silent = true
			v.quiet++
			continue
		}
		sk := node{ttl: h, addr: o.From()}
		if o.Reached() || o.Stops() {
			ends = addNode(ends, sk)
		}
		if f.how[h-1] == howObserved {
			v.obsN++
			v.obsSucc = addNode(v.obsSucc, sk)
		} else {
			v.inferred = append(v.inferred, i)
		}
		if !slices.Contains(v.succ, sk) {
			v.succ = append(v.succ, sk)
			if o.Reached() || o.Stops() {
				v.dst++
			}
			if o.Stops() && len(v.succ) == 1 {
				v.stops = true
			}
		}
	}
	a.seen, a.ends, a.pending = seen, ends, pending
	for _, v := range hp.verts {
		// Flows seen at the vertex first: where they go is what the
		// inferred ones are checked against (checkInferred).
		slices.SortStableFunc(v.cands, func(x, y int) int {
			return int(a.flows[x].how[h-1]) - int(a.flows[y].how[h-1])
		})
	}
	// Meshing: a successor (other than the end of the flows) reached from
	// two vertices.
	hp.meshFree = true
	for vi, v := range hp.verts {
		for _, sk := range v.succ {
			if first, _ := hp.preds(sk); first < vi && !slices.Contains(ends, sk) {
				hp.meshFree = false
			}
		}
	}
	// Flows probed at h but not at h-1: without meshing, the one
	// predecessor of the vertex they reached is theirs; a router refusing
	// to forward them was theirs. The others are probed at h-1, but for
	// a silence or the destination at h: their rows stay partial (the
	// vertices that lead to the destination are tested with flows of
	// their own).
	asked := a.asked[:0] // new vertices at h, one of whose flows is probed at h-1
	waiting := 0
	for _, i := range pending {
		f := &a.flows[i]
		o := f.at(h)
		if !o.From().IsValid() {
			continue
		}
		sk := node{ttl: h, addr: o.From()}
		if o.Reached() {
			continue
		}
		p, np := hp.preds(sk)
		if vi := hp.vertex(node{ttl: h - 1, addr: o.From()}); o.Stops() && vi >= 0 && a.leadsTo(f, h-2, hp.verts[vi].key) {
			p, np = vi, 1
		}
		if hp.meshFree && !o.Stops() && np == 0 && f.how[h-2] != howUnknown {
			// A vertex not seen from h-1 yet: one flow finds its
			// predecessor, the others wait for it.
			if slices.Contains(asked, sk) {
				waiting++
				continue
			}
			asked = append(asked, sk)
		}
		if (hp.meshFree || o.Stops()) && np == 1 && !hp.verts[p].key.anon() && a.leadsTo(f, h-2, hp.verts[p].key) {
			v := hp.verts[p]
			f.how[h-1], f.key[h-1] = howInferred, v.key
			v.flows = append(v.flows, i)
			v.probed++
			v.back++
			hp.known++
			continue
		}
		hp.verify = append(hp.verify, i)
	}
	a.asked = asked

	// Components: vertices joined by a responding successor that they
	// share.
	parent := resize(a.parent, len(hp.verts))
	a.parent = parent
	for i := range parent {
		parent[i] = i
	}
	for vi, v := range hp.verts {
		if v.key.anon() || v.probed == 0 {
			continue
		}
		for _, sk := range v.succ {
			// The first vertex with sk is its owner, joined by the
			// others.
			for o, u := range hp.verts[:vi] {
				if !u.key.anon() && u.probed > 0 && slices.Contains(u.succ, sk) {
					parent[root(parent, vi)] = root(parent, o)
					break
				}
			}
		}
	}
	// The components in the order of their first vertex, each a list of
	// its vertices in order, in ints.
	compOf := resize(a.compOf, len(hp.verts))
	a.compOf = compOf
	for i := range compOf {
		compOf[i] = -1
	}
	sizes := a.sizes[:0]
	for vi, v := range hp.verts {
		if v.key.anon() || v.probed == 0 || v.passed {
			continue
		}
		r := root(parent, vi)
		if compOf[r] < 0 {
			compOf[r] = len(sizes)
			sizes = append(sizes, 0)
		}
		sizes[compOf[r]]++
	}
	comps := a.comps[:0]
	off, total := len(a.ints), 0
	for _, n := range sizes {
		total += n
	}
	a.ints = resize(a.ints, off+total)
	for _, n := range sizes {
		comps = append(comps, a.ints[off:off:off+n])
		off += n
	}
	for vi, v := range hp.verts {
		if v.key.anon() || v.probed == 0 || v.passed {
			continue
		}
		ci := compOf[root(parent, vi)]
		comps[ci] = append(comps[ci], vi)
	}
	a.sizes, a.comps = sizes, comps

	n1 := a.n(1)
	if h == 1 && a.oneHop && len(hp.verts) == 1 && len(hp.verts[0].succ) <= 1 {
		// The source, through its one next hop.
		v := hp.verts[0]
		v.passed = true
		v.single = len(v.succ) == 1 && v.dst == 0
		v.toDst = len(v.succ) == 1 && v.dst == 1
	}
	unprobed := false
	for vi, v := range hp.verts {
		if v.passed {
			continue
		}
		switch {
		case v.key.anon():
			// Anonymous: no test, but its flows are followed.
			hp.complete = a.appendOnward(hp.complete, v.cands, h)
		case v.probed == 0:
			// Not probed beyond yet: one flow shows what kind of test it
			// needs.
			hp.needs = append(hp.needs, need{members: a.members(len(a.ints), vi), short: 1, avail: len(v.cands)})
			unprobed = true
		case len(v.succ) == 1 && v.dst == 1:
			// Only the destination beyond (or a router refusing to
			// forward): done.
			v.passed, v.toDst = true, true
		}
		if !v.key.anon() && v.successors() >= 2 {
			// No hop after it can be inferred: every flow through it is
			// probed onwards.
			hp.complete = a.appendOnward(hp.complete, v.cands, h)
		}
	}
	// MDA-Lite: vertices with successors of their own (no meshing) are
	// tested as one first: n_k flows over them all, k their successors in
	// all. As many successors each (uniform), that is the test, with a
	// meshing test on flows seen at the vertices (not placed there by where
	// they went); else node control follows.
	disjoint := hp.meshFree && len(comps) >= 2
	uniform := true
	d := 0
	for _, c := range comps {
		v := hp.verts[c[0]]
		if len(c) != 1 || v.passed || len(v.succ) == 0 || v.dst > 0 {
			disjoint = false
			break
		}
		uniform = uniform && (d == 0 || v.successors() == d)
		d = v.successors()
	}
	if disjoint {
		start := len(a.ints)
		total, k, avail := 0, 0, 0
		for _, c := range comps {
			vi := c[0]
			v := hp.verts[vi]
			a.ints = append(a.ints, vi)
			total += v.evidence()
			k += v.successors()
			avail += len(v.cands)
		}
		all := a.members(start)
		ok := !unprobed
		if want := a.n(k); total < want {
			// The flows for the test as a whole go to the members that
			// got the fewest first: the rest waits for them.
			hp.needs = append(hp.needs, need{members: all, short: want - total, avail: avail, placed: true})
			ok = false
			comps = nil
		} else if uniform {
			// The meshing test. MDA-Lite sees phi flows at each
			// vertex: against a meshed hop whose vertices have two
			// successors each, every flow after a vertex's first shows
			// the other one half the time, so it misses with odds of
			// 2^-(w(phi-1)) for w vertices. The same number of such
			// flows over the hop as a whole misses with the same odds,
			// and a branch that the hash gives a small share of the
			// flows does not cost 1/share fresh flows for its second.
			extra := 0
			for _, vi := range all {
				v := hp.verts[vi]
				if v.direct() < 1 {
					hp.needs = append(hp.needs, need{members: a.members(len(a.ints), vi), short: 1, avail: len(v.cands)})
					ok = false
					continue
				}
				extra += v.direct() - 1
			}
			if want := len(all) * (phi - 1); extra < want {
				hp.needs = append(hp.needs, need{members: all, short: want - extra, avail: avail})
				ok = false
			}
			comps = nil
		}
		if ok && uniform {
			for _, vi := range all {
				v := hp.verts[vi]
				v.passed = true
				v.single = len(v.succ) == 1
			}
		}
	}
	for _, members := range comps {
		if hp.verts[members[0]].passed {
			continue
		}
		group := len(members) >= 2
		total := 0
		for _, vi := range members {
			v := hp.verts[vi]
			total += v.evidence()
			if len(v.succ) != 1 || v.dst > 0 {
				group = false
			}
		}
		if group {
			// Branches converging on one vertex: tested together.
			if total >= n1 {
				for _, vi := range members {
					hp.verts[vi].passed, hp.verts[vi].single = true, true
				}
				continue
			}
			avail := 0
			for _, vi := range members {
				avail += len(hp.verts[vi].cands)
			}
			hp.needs = append(hp.needs, need{members: members, short: n1 - total, avail: avail})
			continue
		}
		// Node control. Flows placed here by where they went are left
		// out: a successor shared with another vertex, not seen from
		// this one yet, would take flows of the other for its own.
		for _, vi := range members {
			v := hp.verts[vi]
			want := a.n(v.successors())
			if v.direct() >= want {
				v.passed = true
				v.single = len(v.succ) == 1 && v.dst == 0
				continue
			}
			hp.needs = append(hp.needs, need{members: a.members(len(a.ints), vi), short: want - v.direct(), avail: len(v.cands)})
		}
	}
	// A need is whole when any flow at h-1 reaches one of its members:
	// the flows waiting to be placed will count.
	for ni := range hp.needs {
		nd := &hp.needs[ni]
		nd.whole = true
		for _, k := range seen {
			if !k.anon() && !slices.ContainsFunc(nd.members, func(vi int) bool { return hp.verts[vi].key == k }) {
				nd.whole = false
				break
			}
		}
		if nd.whole && nd.placed {
			nd.short = max(nd.short-waiting, 0)
		}
	}
	a.checkInferred(hp)
	hp.inferable = len(hp.needs) == 0 && len(hp.verts) > 0
	for _, v := range hp.verts {
		if v.key.anon() || !(v.single || v.toDst) {
			hp.inferable = false
		}
	}
	if a.prefix[h-1] && len(hp.verts) == 1 && hp.verts[0].single && len(seen) == 1 {
		a.prefix[h] = true
	}

	// The flows' vertices at h.
	for i := range a.flows {
		f := &a.flows[i]
		if f.end != 0 && h > f.end || f.dark != 0 && h > f.dark {
			continue
		}
		if o := f.at(h); o.Sent() {
			f.how[h] = howObserved
			f.key[h] = node{ttl: h, addr: o.From()}
			if !o.From().IsValid() {
				f.run++
				if f.run >= a.gap && f.dark == 0 {
					f.dark = h - f.run + 1
				}
				continue
			}
			f.run = 0
			if o.Reached() {
				f.end, f.reached = h, true
			} else if o.Stops() {
				f.end = h
			}
			continue
		}
		f.run = 0
		if f.how[h-1] == howUnknown || !f.goesOn(h-1) {
			continue
		}
		vi := a.vertOf[i]
		if vi < 0 {
			if vi = hp.vertex(f.key[h-1]); vi < 0 {
				continue
			}
		}
		v := hp.verts[vi]
		switch {
		case v.single:
			f.how[h], f.key[h] = howInferred, v.succ[0]
		case v.toDst:
			f.how[h], f.key[h] = howInferred, v.succ[0]
			f.end, f.reached = h, !v.stops
		}
	}
}

// leadsTo reports whether the vertex of f at t is known and has p among

// its successors seen.
func (a *analyzer) leadsTo(f *flow, t int, p node) bool {
	if t < 0 || f.how[t] == howUnknown || !f.goesOn(t) {
		return false
	}
	for _, v := range a.hops[t+1].verts {
		if v.key == f.key[t] {
			return slices.Contains(v.succ, p)
		}
	}
	return false
}

// appendOnward appends to out the flows of cands that are to be probed at
// h to complete their rows: not those probed at h+1 already, which the
// next hop places.
func (a *analyzer) appendOnward(out, cands []int, h int) []int {
	for _, i := range cands {
		if !a.flows[i].at(h + 1).Sent() {
			out = append(out, i)
		}
	}
	return out
}

// checkInferred looks for inferences that went wrong: a vertex u that
// passed with a single successor s when another one, x, was missed (the
// 1-confidence chance of the stopping rule). The flows then inferred to be
// at s are a mix, and those that went through x reach, one TTL further,
// vertices that the flows probed at s may never reach. So a vertex reached
// only by flows whose hop at s was inferred is checked: one of them is
// probed at s's TTL. Where s has more successors than its probed flows
// showed, this costs a probe per successor and confirms s; where x was
// missed, it shows x, u's test resumes, and the rows get probed there.
// The first hop through OneFirstHop is known, not inferred.
func (a *analyzer) checkInferred(hp *hop) {
	if hp.ttl == 2 && a.oneHop {
		return
	}
	for _, v := range hp.verts {
		if len(v.inferred) == 0 {
			continue
		}
		where := a.where[:0]
		for _, i := range v.inferred {
			sk := node{ttl: hp.ttl, addr: a.flows[i].at(hp.ttl).From()}
			if !slices.Contains(v.obsSucc, sk) && !slices.Contains(where, sk) {
				where = append(where, sk)
				hp.verify = append(hp.verify, i)
			}
		}
		a.where = where
	}
}

// satisfied reports whether every test passed and every row used is
// complete.
func (a *analyzer) satisfied() bool {
	for h := 1; h <= a.horizon; h++ {
		if hp := a.hops[h]; len(hp.needs) > 0 || len(hp.complete) > 0 || len(hp.verify) > 0 {
			return false
		}
	}
	return true
}

// rowEnd returns the last TTL of the row of f and whether every hop up to
// it is known (probed or inferred).
func (a *analyzer) rowEnd(f *flow) (end int, complete bool) {
	switch {
	case f.end != 0:
		end = f.end
	case f.dark != 0:
		end = f.dark - 1
	case !a.reached:
		end = a.horizon
	default:
		// Neither ended nor dark although the destination answered: the
		// search stopped before following it to its end.
		end = a.horizon
		for end > 0 && f.how[end] == howUnknown {
			end--
		}
		return end, false
	}
	for h := 1; h <= end && h < len(f.how); h++ {
		if f.how[h] == howUnknown {
			return end, false
		}
	}
	return end, true
}

// share is the fraction of the flows known at the TTL of hp's vertices
// that the members got (at least their share of an even split).
func (hp *hop) share(members []int) float64 {
	if hp.known == 0 {
		return 1
	}
	got := 0
	for _, vi := range members {
		got += len(hp.verts[vi].flows)
	}
	return max(float64(got)/float64(hp.known), float64(len(members))/float64(len(hp.verts)))
}
