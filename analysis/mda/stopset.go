package mda

import (
	"math"
	"net/netip"
	"slices"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// A StopSet carries what the searches of one run settled to the searches
// of its other destinations, in the spirit of Doubletree (Donnet et al.,
// SIGMETRICS 2005) extended to the MDA's per-vertex successor sets: the
// routers near the source are the same for the destinations that share a
// route, and asking each of them the same question thousands of times
// spends the ICMP budget of those routers for nothing.
//
// When a destination's search passes the stopping rule at a vertex (an
// address at a TTL) with its own probes, at the set's stricter confidence
// (see strictMiss), the vertex and its successors are settled in the set.
// Another destination's search whose flows reach the same vertex then
// takes those successors as the hypothesis to check: the vertex passes as
// soon as its flows showed every settled successor and no other (seeing
// them all takes fewer flows than the stopping rule asks for; a vertex
// with one settled successor passes once some vertex of its hop showed
// its own), and the flows through a vertex with one successor are
// inferred beyond it without probing, nor probed later to check it. A successor not in the set, or
// a settled one still unseen after as many flows as it takes to see them
// all, sends the vertex back to the stopping rule. Such vertices are
// listed in the destination's trace (analysis.Trace.Reused), with the
// destination whose probes settled them.
//
// While one destination's search is testing a vertex, the others that
// need the same vertex tested wait for it (Plan reports State.Waiting)
// rather than spend probes on the same question at once.
//
// A StopSet is used by one goroutine (the run's scheduler).
type StopSet struct {
	entries map[node]*stopEntry
	claims  map[uint64][]node
	waiters map[node][]uint64 // searches waiting for a claimed vertex
	woken   []uint64          // searches whose vertex is settled or free again
}

type stopEntry struct {
	succ    []netip.Addr
	from    netip.Addr // the destination whose search settled it
	owner   uint64     // the search testing it while not settled; 0 none
	settled bool
	// wanted says that another search waited for this one: the test of
	// the vertex is then held to the stricter confidence of the set.
	wanted bool
}

// strictMiss divides the odds that a settled vertex missed a successor:
// a vertex goes into the set only once its search passed at a confidence
// of 1-(1-c)/strictMiss (99.75% for 95%), since every destination that
// takes it from the set would repeat the miss.
const strictMiss = 20

// NewStopSet returns an empty stop set.
func NewStopSet() *StopSet {
	return &StopSet{entries: map[node]*stopEntry{}, claims: map[uint64][]node{}, waiters: map[node][]uint64{}}
}

// Woken appends to dst the searches (their State.Owner) that waited for
// a vertex now settled, or no longer tested by another search: they may
// go on. Each is handed out once per wait.
func (s *StopSet) Woken(dst []uint64) []uint64 {
	if s == nil {
		return dst
	}
	dst = append(dst, s.woken...)
	s.woken = s.woken[:0]
	return dst
}

// wake hands on the searches waiting for k.
func (s *StopSet) wake(k node) {
	if w, ok := s.waiters[k]; ok {
		s.woken = append(s.woken, w...)
		delete(s.waiters, k)
	}
}

// wait records that owner waits for k.
func (s *StopSet) wait(k node, owner uint64) {
	if !slices.Contains(s.waiters[k], owner) {
		s.waiters[k] = append(s.waiters[k], owner)
	}
}

// Len returns how many vertices are settled.
func (s *StopSet) Len() int {
	n := 0
	for _, e := range s.entries {
		if e.settled {
			n++
		}
	}
	return n
}

// Successors returns the settled successors of addr at ttl and the
// destination whose search settled them; ok is false when it is not
// settled.
func (s *StopSet) Successors(ttl int, addr netip.Addr) (succ []netip.Addr, from netip.Addr, ok bool) {
	if s == nil {
		return nil, netip.Addr{}, false
	}
	e := s.entries[node{ttl, addr}]
	if e == nil || !e.settled {
		return nil, netip.Addr{}, false
	}
	return e.succ, e.from, true
}

// Release ends the claims of the search owner (its destination is done).
func (s *StopSet) Release(owner uint64) {
	if s == nil {
		return
	}
	s.setClaims(owner, nil)
	delete(s.claims, owner)
}

// settled returns the entry of k when it is settled.
func (s *StopSet) settledEntry(k node) *stopEntry {
	if e := s.entries[k]; e != nil && e.settled {
		return e
	}
	return nil
}

// claimedByOther says whether another search than owner is testing k,
// and if so marks it wanted.
func (s *StopSet) claimedByOther(k node, owner uint64) bool {
	e := s.entries[k]
	if e != nil && !e.settled && e.owner != 0 && e.owner != owner {
		e.wanted = true
		return true
	}
	return false
}

// wanted says whether other searches wait for the test of k.
func (s *StopSet) wanted(k node) bool {
	e := s.entries[k]
	return e != nil && !e.settled && e.wanted
}

// extend adds to the settled successors of k those of succ not among
// them: another destination's flows showed them.
func (s *StopSet) extend(k node, succ []node) {
	e := s.settledEntry(k)
	for _, n := range succ {
		if e != nil && !n.anon() && !slices.Contains(e.succ, n.addr) {
			e.succ = append(e.succ, n.addr)
		}
	}
}

// setClaims makes keys the vertices that owner is testing: claims of its
// not among them end (and waiting searches may go on).
func (s *StopSet) setClaims(owner uint64, keys []node) {
	for _, k := range s.claims[owner] {
		if slices.Contains(keys, k) {
			continue
		}
		if e := s.entries[k]; e != nil && !e.settled && e.owner == owner {
			delete(s.entries, k) // the set holds what is settled or tested
			s.wake(k)
		}
	}
	for _, k := range keys {
		e := s.entries[k]
		if e == nil {
			e = &stopEntry{}
			s.entries[k] = e
		}
		if !e.settled && e.owner == 0 {
			e.owner = owner
		}
	}
	s.claims[owner] = append(s.claims[owner][:0], keys...)
}

// settle records that the search of destination from passed the stopping
// rule at k with successors succ.
func (s *StopSet) settle(k node, succ []node, from netip.Addr) {
	e := s.entries[k]
	if e == nil {
		e = &stopEntry{}
		s.entries[k] = e
	}
	if e.settled {
		return
	}
	e.settled, e.owner, e.from = true, 0, from
	e.succ = make([]netip.Addr, len(succ))
	for i, n := range succ {
		e.succ[i] = n.addr
	}
	s.wake(k)
}

// coupon returns how many flows, spread evenly over k successors, show
// every one of them with probability conf: the chance that n flows miss
// one is, by inclusion and exclusion, sum over j of (-1)^(j+1) C(k,j)
// (1-j/k)^n.
func coupon(k int, conf float64) int {
	if k <= 1 {
		return 1
	}
	for n := k; ; n++ {
		miss, c := 0.0, 1.0
		for j := 1; j <= k; j++ {
			c = c * float64(k-j+1) / float64(j)
			term := c * math.Pow(1-float64(j)/float64(k), float64(n))
			if j%2 == 1 {
				miss += term
			} else {
				miss -= term
			}
		}
		if 1-miss >= conf {
			return n
		}
	}
}

// passKnown passes the vertices before hop h whose successors the stop
// set holds once the flows showed them (knownSeen): each then has those
// successors, and the flows through one with several are probed onwards,
// as sortOut does for the vertices it leaves to the stopping rule. Once
// one vertex of the hop passed so, the others whose one settled successor
// the flows did not reach yet pass too: the hop showed that this
// destination's route is the one the set knows (Doubletree stops at the
// first interface of its stop set).
func (a *analyzer) passKnown(hp *hop, h int) {
	if a.stops == nil {
		return
	}
	if a.anonBefore(h - 1) {
		return // a silent hop before: the route is not shown to be the set's
	}
	confirmed := false
	for pass := 0; pass < 2; pass++ {
		for _, v := range hp.verts {
			if v.passed || v.key.anon() || v.key.ttl == 0 || v.pp || v.changed || v.dst > 0 {
				continue
			}
			e := a.stops.settledEntry(v.key)
			if e == nil || e.from == a.dst {
				continue // the destination's own: its test passes again
			}
			seen := knownSeen(hp, v, e.succ)
			if !seen && len(v.succ) > 0 {
				a.stops.extend(v.key, v.succ)
			}
			if seen || pass == 1 && confirmed && len(e.succ) == 1 && len(v.succ) == 0 {
				a.passReused(hp, v, e, h)
				confirmed = true
			}
		}
		if !confirmed {
			return
		}
	}
}

// passReused passes v with the settled successors of e.
func (a *analyzer) passReused(hp *hop, v *vertex, e *stopEntry, h int) {
	v.passed, v.reused, v.from = true, true, e.from
	v.succ = v.succ[:0]
	for _, s := range e.succ {
		v.succ = append(v.succ, node{h, s})
	}
	v.single = len(v.succ) == 1
	if len(v.succ) >= 2 {
		hp.complete = a.appendOnward(hp.complete, v.cands, h)
	}
}

// unpassed returns the members of a component still to test: all of them
// unless the first passed, but for those the stop set passed when some of
// the others did not.
func (a *analyzer) unpassed(hp *hop, members []int) []int {
	reused := slices.ContainsFunc(members, func(vi int) bool { return hp.verts[vi].reused })
	if !reused {
		if hp.verts[members[0]].passed {
			return nil
		}
		return members
	}
	start := len(a.ints)
	for _, vi := range members {
		if !hp.verts[vi].passed {
			a.ints = append(a.ints, vi)
		}
	}
	return a.ints[start:len(a.ints):len(a.ints)]
}

// toSeeAll is the flows that vertex v, with want for the stopping rule,
// needs when the stop set holds more successors for it than its flows
// showed: as many as show k successors on average (k times the k-th
// harmonic number) first, then as many as show them all at the search's
// confidence, then as many as show them all at the set's stricter
// confidence: fewer successors than the set knows take as much evidence
// as the set's own.
func (a *analyzer) toSeeAll(v *vertex, want int) int {
	if a.stops == nil || v.key.anon() {
		return want
	}
	e := a.stops.settledEntry(v.key)
	if e == nil || len(e.succ) <= len(v.succ) {
		return want
	}
	k := len(e.succ)
	mean := 0.0
	for j := 1; j <= k; j++ {
		mean += float64(k) / float64(j)
	}
	if first := int(math.Ceil(mean)); v.direct() < first {
		return first
	}
	if second := coupon(k, a.conf); v.direct() < second {
		return max(want, second)
	}
	return max(want, coupon(k, 1-(1-a.conf)/strictMiss))
}

// publish settles in the stop set the vertices that passed the stopping
// rule with this destination's own flows at the set's stricter confidence
// (strong): not the destination's last hop
// (its successor is this destination), nor a per-packet balancer, nor one
// with an anonymous successor.
func (a *analyzer) publish(st *State) {
	if a.stops == nil {
		return
	}
	for h := 1; h <= a.horizon; h++ {
		for _, v := range a.hops[h].verts {
			if !v.strong || v.reused || v.key.anon() || v.key.ttl == 0 || v.dst > 0 || v.toDst || v.pp || v.behind || v.changed || len(v.succ) == 0 {
				continue
			}
			if slices.ContainsFunc(v.succ, node.anon) {
				continue
			}
			a.stops.settle(v.key, v.succ, st.Dst)
		}
	}
}

// claim leaves to other destinations' searches the needs of vertices
// they are testing (a.waiting then says so, and the search waits for
// them), unless st.NoWait, and makes the vertices of the needs left this
// search's claims. A vertex not probed beyond yet, asking for one flow to
// tell which test is its own, is neither waited for nor claimed: it may
// lead to this destination alone.
func (a *analyzer) claim(st *State) {
	if a.stops == nil {
		return
	}
	keys := a.claims[:0]
	for h := 1; h <= a.horizon; h++ {
		hp := a.hops[h]
		kept := hp.needs[:0]
		for _, nd := range hp.needs {
			if len(nd.members) == 1 && hp.verts[nd.members[0]].probed == 0 {
				kept = append(kept, nd)
				continue
			}
			if !st.NoWait && a.leftToOthers(hp, nd, st.Owner) {
				a.waiting = true
				continue
			}
			kept = append(kept, nd)
			for _, vi := range nd.members {
				if k := hp.verts[vi].key; !k.anon() && k.ttl > 0 && !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
		hp.needs = kept
	}
	a.claims = keys
	a.stops.setClaims(st.Owner, keys)
}

// leftToOthers says whether another search tests a member of nd, and
// makes owner wait for each such member.
func (a *analyzer) leftToOthers(hp *hop, nd need, owner uint64) bool {
	other := false
	for _, vi := range nd.members {
		if k := hp.verts[vi].key; a.stops.claimedByOther(k, owner) {
			a.stops.wait(k, owner)
			other = true
		}
	}
	return other
}

// appendReused appends the vertices that the stop set passed.
func (a *analyzer) appendReused(out []analysis.ReusedVertex) []analysis.ReusedVertex {
	for h := 1; h <= a.horizon; h++ {
		for _, v := range a.hops[h].verts {
			if v.reused {
				out = append(out, analysis.ReusedVertex{TTL: v.key.ttl, Addr: v.key.addr, From: v.from})
			}
		}
	}
	return out
}

// nFor is the stopping rule's n_k for a test of the vertices keys: at the
// stop set's stricter confidence when other searches wait for one of them.
func (a *analyzer) nFor(k int, hp *hop, members []int) int {
	if a.stops != nil {
		for _, vi := range members {
			if a.stops.wanted(hp.verts[vi].key) {
				return a.nStrict(k)
			}
		}
	}
	return a.n(k)
}

// nForVertex is nFor of one vertex.
func (a *analyzer) nForVertex(k int, v *vertex) int {
	if a.stops != nil && a.stops.wanted(v.key) {
		return a.nStrict(k)
	}
	return a.n(k)
}

// nStrict is n_k at the stop set's stricter confidence.
func (a *analyzer) nStrict(k int) int { return Flows(k, 1-(1-a.conf)/strictMiss) }

// knownSeen says whether the flows showed the settled successors succ of
// v and no other: each of several from v itself, one alone from any vertex
// of the hop (the branches of a diamond converging on it, as the search
// that settled them saw them).
func knownSeen(hp *hop, v *vertex, succ []netip.Addr) bool {
	for _, s := range v.succ {
		if !slices.Contains(succ, s.addr) {
			return false
		}
	}
	if len(succ) >= 2 {
		return len(v.succ) == len(succ)
	}
	for _, w := range hp.verts {
		if slices.ContainsFunc(w.succ, func(n node) bool { return n.addr == succ[0] }) {
			return true
		}
	}
	return false
}

// anonBefore says whether a flow has an anonymous hop before ttl.
func (a *analyzer) anonBefore(ttl int) bool {
	for i := range a.flows {
		f := &a.flows[i]
		for t := 1; t < ttl && t < len(f.how); t++ {
			if f.how[t] != howUnknown && f.key[t].anon() {
				return true
			}
		}
	}
	return false
}

// inferredByStopSet says whether flow i's hop at ttl was inferred from a
// vertex the stop set passed (its one settled successor).
func (a *analyzer) inferredByStopSet(i, ttl int) bool {
	f := &a.flows[i]
	if a.stops == nil || ttl < 2 || f.how[ttl] != howInferred || f.how[ttl-1] == howUnknown {
		return false
	}
	prev := a.hops[ttl]
	vi := prev.vertex(f.key[ttl-1])
	return vi >= 0 && prev.verts[vi].reused
}
