package mda

import (
	"net/netip"
	"slices"
)

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
	// The per-packet test (perpacket.go): the answers to repeats of the
	// flows' probes at the next TTL, whether one came from another
	// address than the first, the successors only repeats showed; behind
	// says that a flow known here passed a per-packet balancer before,
	// pp that this vertex is one.
	reps    int
	sends   int
	differs bool
	flowOK  bool  // passed the per-flow test
	changed bool  // a probe's later answers show a route change
	pending []int // flows whose probe at the next TTL is not told yet
	extra   []node
	behind  bool
	pp      bool
	// reused says that the vertex passed with the successors another
	// destination's search settled (see StopSet), from that destination.
	reused bool
	from   netip.Addr
	// strong says that it passed at the stop set's stricter confidence.
	strong bool
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
	// again lists flows whose probe at ttl is to be sent again (the
	// per-packet test).
	again []int
	known int // flows known at ttl-1 that go on
	// inferable says that a flow known at ttl-1 is known at ttl without
	// probing it: every vertex at ttl-1 passed with a single successor.
	inferable bool
	// meshFree says that no vertex at ttl (but the end of the flows) was
	// reached from two vertices at ttl-1: a flow probed at ttl only was at
	// the one predecessor of the vertex it reached.
	meshFree bool
}

// testHop tests the vertices at h-1 with the probes at h, into hp, then
// sets the flows' vertices at h. The steps, in order:
//
//  1. gather: the vertices at h-1, the flows known at each, and the
//     successors their probes at h found;
//  2. findMeshing: whether a successor is reached from two vertices;
//  3. placeBackwards: flows probed at h alone, placed at h-1 by where
//     they went when there is no meshing;
//  4. components: the vertices joined by a successor they share;
//  5. passFirstHop, sortOut: the tests that need no flows (the source
//     through its one next hop, a vertex before the destination) and
//     the vertices that need one to tell which test is theirs;
//  6. testHopLevel: MDA-Lite's test of the hop as a whole;
//  7. testComponents: converging branches together, node control else;
//  8. markWhole, checkInferred, conclude: what the plan may use;
//  9. advance: the flows' vertices at h, probed or inferred.
//
// The per-packet test (State.PerPacket, perpacket.go) counts what repeats
// found as gather and placeBackwards record the flows, tests the
// per-packet vertices and those behind them after placeBackwards
// (testRepeated), and asks for the repeats of the per-flow test after
// advance (testPerFlow, markBehind).
func (a *analyzer) testHop(hp *hop, h int) {
	*hp = hop{ttl: h, verts: hp.verts[:0], needs: hp.needs[:0], complete: hp.complete[:0], verify: hp.verify[:0], again: hp.again[:0]}
	a.gather(hp, h)
	a.sortCands(hp, h)
	hp.findMeshing(a.ends)
	waiting := a.placeBackwards(hp, h)
	if a.perPacket {
		a.testRepeated(hp, h)
	}
	comps := a.components(hp)
	a.passFirstHop(hp, h)
	a.passKnown(hp, h)
	unprobed := a.sortOut(hp, h)
	comps = a.testHopLevel(hp, comps, unprobed)
	a.testComponents(hp, comps)
	hp.markWhole(a.seen, waiting)
	a.checkInferred(hp)
	a.conclude(hp, h)
	a.advance(hp, h)
	if a.perPacket {
		a.testPerFlow(hp, h)
		a.markBehind(hp)
	}
}

// gather finds the vertices at h-1 (hp.verts) and the flows known at
// each that go on, with what their probes at h found (record). It lists in
// a.seen every vertex at h-1, the flows' that end there included, in
// a.ends the successors that end the flows reaching them, and in
// a.pending the flows probed at h but not at h-1 whose vertex there is
// unknown.
func (a *analyzer) gather(hp *hop, h int) {
	seen, pending := a.seen[:0], a.pending[:0]
	a.ends = a.ends[:0]
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
		hp.verts[vi].behind = hp.verts[vi].behind || f.pp
		a.vertOf[i] = vi
		a.record(hp.verts[vi], i, h)
		hp.known++
	}
	a.seen, a.pending = seen, pending
}

// record adds flow i to the flows known at v, with what its probe at h
// found: nothing yet (a candidate to probe), a silence, or a successor.
func (a *analyzer) record(v *vertex, i, h int) {
	f := &a.flows[i]
	v.flows = append(v.flows, i)
	o := f.at(h)
	if !o.Sent() {
		v.cands = append(v.cands, i)
		return
	}
	v.probed++
	if !o.From().IsValid() {
		v.silent = true
		v.quiet++
		return
	}
	if a.perPacket {
		a.recordRepeats(v, f, i, h)
	}
	sk := node{ttl: h, addr: o.From()}
	ends := o.Reached() || o.Stops()
	if ends {
		a.ends = addNode(a.ends, sk)
	}
	if f.how[h-1] == howObserved {
		v.obsN++
		v.obsSucc = addNode(v.obsSucc, sk)
	} else {
		v.inferred = append(v.inferred, i)
	}
	if !slices.Contains(v.succ, sk) {
		v.succ = append(v.succ, sk)
		if ends {
			v.dst++
		}
		if o.Stops() && len(v.succ) == 1 {
			v.stops = true
		}
	}
}

// sortCands puts first, among each vertex's flows not probed at h, those
// seen at the vertex: where they go is what the inferred ones are checked
// against (checkInferred).
func (a *analyzer) sortCands(hp *hop, h int) {
	for _, v := range hp.verts {
		slices.SortStableFunc(v.cands, func(x, y int) int {
			return int(a.flows[x].how[h-1]) - int(a.flows[y].how[h-1])
		})
	}
}

// findMeshing sets hp.meshFree: no successor (but those in ends, which
// end the flows) is reached from two vertices.
func (hp *hop) findMeshing(ends []node) {
	hp.meshFree = true
	for vi, v := range hp.verts {
		if v.behind {
			continue // its flows' probes go any way: no evidence
		}
		for _, sk := range v.succ {
			if first, _ := hp.preds(sk); first < vi && !slices.Contains(ends, sk) {
				hp.meshFree = false
			}
		}
	}
}

// placeBackwards places the flows probed at h but not at h-1
// (a.pending): without meshing, the one predecessor of the vertex they
// reached is theirs; a router refusing to forward them was theirs. The
// others are to be probed at h-1 (hp.verify), but for a silence or the
// destination at h: their rows stay partial (the vertices that lead to
// the destination are tested with flows of their own). It returns how
// many flows wait for another that reached the same vertex, not seen from
// h-1 yet, to find its predecessor.
func (a *analyzer) placeBackwards(hp *hop, h int) (waiting int) {
	asked := a.asked[:0] // new vertices at h, one of whose flows is probed at h-1
	for _, i := range a.pending {
		f := &a.flows[i]
		o := f.at(h)
		if !o.From().IsValid() || o.Reached() {
			continue
		}
		sk := node{ttl: h, addr: o.From()}
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
			hp.placeAt(hp.verts[p], f, i)
			if a.perPacket {
				hp.verts[p].behind = hp.verts[p].behind || f.pp
				a.recordRepeats(hp.verts[p], f, i, h)
			}
			continue
		}
		hp.verify = append(hp.verify, i)
	}
	a.asked = asked
	return waiting
}

// placeAt infers that flow f (index i) was at v, the TTL before the hop,
// from where it went: it counts for v's hop-level test.
func (hp *hop) placeAt(v *vertex, f *flow, i int) {
	f.how[hp.ttl-1], f.key[hp.ttl-1] = howInferred, v.key
	v.flows = append(v.flows, i)
	v.probed++
	v.back++
	hp.known++
}

// components returns the components of the vertices probed beyond (but
// anonymous ones), joined by a responding successor they share: in the
// order of their first vertex, each a list of its vertices in order, in
// a.ints.
func (a *analyzer) components(hp *hop) [][]int {
	parent := a.joinShared(hp)
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
	return comps
}

// joinShared returns the union-find forest (see root) of hp's vertices in
// which the vertices probed beyond (but anonymous ones) are joined by the
// responding successors they share.
func (a *analyzer) joinShared(hp *hop) []int {
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
	return parent
}

// root is the find of union-find over parent, halving paths.
func root(parent []int, x int) int {
	for parent[x] != x {
		parent[x] = parent[parent[x]]
		x = parent[x]
	}
	return x
}

// passFirstHop passes the source, at TTL 0, when every probe leaves
// through one next hop (OneFirstHop) and no other answered at TTL 1.
func (a *analyzer) passFirstHop(hp *hop, h int) {
	if h == 1 && a.oneHop && len(hp.verts) == 1 && len(hp.verts[0].succ) <= 1 {
		v := hp.verts[0]
		v.passed = true
		v.single = len(v.succ) == 1 && v.dst == 0
		v.toDst = len(v.succ) == 1 && v.dst == 1
	}
}

// sortOut deals with the vertices that need no test of the stopping
// rule: an anonymous vertex is not tested but its flows are followed, a
// vertex not probed beyond yet asks for one flow to show which test it
// needs, and a vertex with only the destination beyond (or a router
// refusing to forward) passes. The flows through a vertex with several
// successors are probed onwards: no hop after it can be inferred. It
// reports whether a vertex was not probed beyond yet.
func (a *analyzer) sortOut(hp *hop, h int) (unprobed bool) {
	for vi, v := range hp.verts {
		if v.passed {
			continue
		}
		switch {
		case v.key.anon():
			hp.complete = a.appendOnward(hp.complete, v.cands, h)
		case v.probed == 0:
			hp.needs = append(hp.needs, need{members: a.members(len(a.ints), vi), short: 1, avail: len(v.cands)})
			unprobed = true
		case len(v.succ) == 1 && v.dst == 1:
			v.passed, v.toDst = true, true
		}
		if !v.key.anon() && v.successors() >= 2 {
			hp.complete = a.appendOnward(hp.complete, v.cands, h)
		}
	}
	return unprobed
}

// testHopLevel is MDA-Lite's test: vertices with successors of their own
// (no meshing; each a component of its own) are tested as one first, n_k
// flows over them all, k their successors in all. As many successors
// each (uniform), that is the test, with a meshing test on flows seen at
// the vertices (not placed there by where they went); else node control
// follows. It returns the components left to testComponents: none once
// the hop-level test decided.
func (a *analyzer) testHopLevel(hp *hop, comps [][]int, unprobed bool) [][]int {
	disjoint, uniform := hp.disjoint(comps)
	if !disjoint {
		return comps
	}
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
	if want := a.nFor(k, hp, all); total < want {
		// The flows for the test as a whole go to the members that
		// got the fewest first: the rest waits for them.
		hp.needs = append(hp.needs, need{members: all, short: want - total, avail: avail, placed: true})
		ok = false
		comps = nil
	} else if uniform {
		ok = a.testMeshing(hp, all, avail) && ok
		comps = nil
	}
	if ok && uniform {
		strong := total >= a.nStrict(k)
		for _, vi := range all {
			v := hp.verts[vi]
			v.passed, v.strong = true, strong
			v.single = len(v.succ) == 1
		}
	}
	return comps
}

// disjoint reports whether the components are two or more single
// vertices with successors of their own, none ending the flows, without
// meshing: a hop for MDA-Lite's test; uniform says that they have as many
// successors each.
func (hp *hop) disjoint(comps [][]int) (disjoint, uniform bool) {
	disjoint, uniform = hp.meshFree && len(comps) >= 2, true
	d := 0
	for _, c := range comps {
		v := hp.verts[c[0]]
		if len(c) != 1 || v.passed || len(v.succ) == 0 || v.dst > 0 {
			return false, uniform
		}
		uniform = uniform && (d == 0 || v.successors() == d)
		d = v.successors()
	}
	return disjoint, uniform
}

// testMeshing is the meshing test of the vertices all of a uniform hop,
// which have avail flows not probed beyond; it reports whether it passed,
// else asks for the flows it lacks. MDA-Lite sees phi flows at each
// vertex: against a meshed hop whose vertices have two successors each,
// every flow after a vertex's first shows the other one half the time, so
// it misses with odds of 2^-(w(phi-1)) for w vertices. The same number of
// such flows over the hop as a whole misses with the same odds, and a
// branch that the hash gives a small share of the flows does not cost
// 1/share fresh flows for its second.
func (a *analyzer) testMeshing(hp *hop, all []int, avail int) bool {
	ok := true
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
	return ok
}

// testComponents tests the components left: branches converging on one
// vertex together (testConverging), the other vertices each on its own
// (nodeControl).
func (a *analyzer) testComponents(hp *hop, comps [][]int) {
	for _, members := range comps {
		if members = a.unpassed(hp, members); len(members) == 0 {
			continue
		}
		if !a.testConverging(hp, members) {
			a.nodeControl(hp, members)
		}
	}
}

// testConverging tests the members of a component as one when they are
// two or more with one successor each, their common one, not ending the
// flows: branches converging on one vertex, which n_1 flows over them all
// stand for. It reports whether it tested them.
func (a *analyzer) testConverging(hp *hop, members []int) bool {
	if len(members) < 2 {
		return false
	}
	total, avail := 0, 0
	for _, vi := range members {
		v := hp.verts[vi]
		total += v.evidence()
		if len(v.succ) != 1 || v.dst > 0 {
			return false
		}
	}
	n1 := a.nFor(1, hp, members)
	if total >= n1 {
		strong := total >= a.nStrict(1)
		for _, vi := range members {
			hp.verts[vi].passed, hp.verts[vi].single, hp.verts[vi].strong = true, true, strong
		}
		return true
	}
	for _, vi := range members {
		avail += len(hp.verts[vi].cands)
	}
	hp.needs = append(hp.needs, need{members: members, short: n1 - total, avail: avail})
	return true
}

// nodeControl tests each of members on its own: n_k flows seen there for
// k successors. Flows placed there by where they went are left out: a
// successor shared with another vertex, not seen from this one yet, would
// take flows of the other for its own.
func (a *analyzer) nodeControl(hp *hop, members []int) {
	for _, vi := range members {
		v := hp.verts[vi]
		want := a.toSeeAll(v, a.nForVertex(v.successors(), v))
		if v.direct() >= want {
			v.passed, v.strong = true, v.direct() >= a.nStrict(v.successors())
			v.single = len(v.succ) == 1 && v.dst == 0
			continue
		}
		hp.needs = append(hp.needs, need{members: a.members(len(a.ints), vi), short: want - v.direct(), avail: len(v.cands)})
	}
}

// markWhole marks the needs that any flow reaching the TTL before the hop
// serves: their members are every vertex seen there (but anonymous ones).
// The flows waiting to be placed (see placeBackwards) will count for
// those of a test of the hop as a whole.
func (hp *hop) markWhole(seen []node, waiting int) {
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
}

// conclude records what the tests mean for the flows beyond the hop:
// whether a flow known before it is known after it without probing
// (hp.inferable), and whether every flow is at one vertex at h (a.prefix).
func (a *analyzer) conclude(hp *hop, h int) {
	hp.inferable = len(hp.needs) == 0 && len(hp.verts) > 0
	for _, v := range hp.verts {
		if v.key.anon() || !(v.single || v.toDst) {
			hp.inferable = false
		}
	}
	if a.prefix[h-1] && len(hp.verts) == 1 && hp.verts[0].single && len(a.seen) == 1 {
		a.prefix[h] = true
	}
}

// advance sets the flows' vertices at h: where they were probed, what
// answered (and whether the flow ends or goes dark there), else the one
// successor of a vertex that passed with it.
func (a *analyzer) advance(hp *hop, h int) {
	for i := range a.flows {
		f := &a.flows[i]
		if f.end != 0 && h > f.end || f.dark != 0 && h > f.dark {
			continue
		}
		probed := f.at(h).Sent()
		if probed && f.at(h).From().IsValid() {
			a.observe(f, h)
			continue
		}
		var v *vertex
		if f.how[h-1] != howUnknown && f.goesOn(h-1) {
			vi := a.vertOf[i]
			if vi < 0 {
				vi = hp.vertex(f.key[h-1])
			}
			if vi >= 0 {
				v = hp.verts[vi]
			}
		}
		if probed && (v == nil || !v.single || !v.reused) {
			a.observe(f, h) // silent
			continue
		}
		// Not probed, or silent after a vertex that passed with the one
		// responding successor the stop set holds for it: the answer
		// was lost (or held back by the router's ICMP budget), the flow
		// went there all the same.
		f.run = 0
		if v == nil {
			continue
		}
		switch {
		case v.single:
			f.how[h], f.key[h] = howInferred, v.succ[0]
		case v.toDst:
			f.how[h], f.key[h] = howInferred, v.succ[0]
			f.end, f.reached = h, !v.stops
		}
	}
}

// observe sets the vertex of f at h from its probe there: what answered,
// or an anonymous one; the flow goes dark after GapLimit silences in a
// row, and ends where the destination or an unreachable answered.
func (a *analyzer) observe(f *flow, h int) {
	o := f.at(h)
	f.how[h] = howObserved
	f.key[h] = node{ttl: h, addr: o.From()}
	if h == 1 && a.oneHop && !o.From().IsValid() && a.firstHop.IsValid() {
		// Every probe leaves by one next hop: a probe at TTL 1 that
		// went unanswered (a router's ICMP budget spent) expired there.
		f.how[h], f.key[h].addr = howInferred, a.firstHop
	}
	if !f.key[h].addr.IsValid() {
		f.run++
		if f.run >= a.gap && f.dark == 0 {
			f.dark = h - f.run + 1
		}
		return
	}
	f.run = 0
	if o.Reached() {
		f.end, f.reached = h, true
	} else if o.Stops() {
		f.end = h
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
			if a.inferredByStopSet(i, hp.ttl-1) {
				continue // the stop set's to answer for, not probed again
			}
			sk := node{ttl: hp.ttl, addr: a.flows[i].at(hp.ttl).From()}
			if !slices.Contains(v.obsSucc, sk) && !slices.Contains(where, sk) {
				where = append(where, sk)
				hp.verify = append(hp.verify, i)
			}
		}
		a.where = where
	}
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

// addNode adds k to the set ks.
func addNode(ks []node, k node) []node {
	if slices.Contains(ks, k) {
		return ks
	}
	return append(ks, k)
}
