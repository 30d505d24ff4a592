package mda

import (
	"math"
	"slices"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// The per-packet test (State.PerPacket). The stopping rule takes a flow's
// probes to follow one path: true behind per-flow load balancers, which
// hash the 5-tuple, and false behind per-packet ones, which pick a next hop
// for every packet. A vertex v at TTL h-1 with k >= 2 successors seen is
// told apart by sending again probes at h that already answered (same path
// ID, same TTL: the same 5-tuple): behind a per-flow balancer every repeat
// is answered from the first answer's address; behind a per-packet one of
// width w >= k (it showed k of its next hops), each repeat is, with
// probability 1/w, so that r repeats all agree with probability w^-r <=
// k^-r. Repeats(k) is the smallest r that makes this at most the square
// of 1 - confidence: a balancer missed turns every row behind it into
// draws, worse than the next hop the stopping rule may miss.
//
// Flows probed at h and h+1 give the same evidence for free: behind a
// per-packet balancer a flow's successor at h is drawn afresh whatever its
// probe at h+1 reached, so the flows that reached one vertex x at h+1
// agree on their successor at h with probability 1/w each after the
// first. They count when no vertex at h+1 was reached from two successors
// (branches that converge there, or meshing, make them no evidence), so
// that a diamond whose routers answer from the interface a probe came in
// by needs no repeat. One repeat goes as soon as the flows diverge at v
// (it catches a per-packet balancer at once half the time), the others
// once v passed its test, when k is known.
//
// A vertex one of whose probes was answered from two addresses (a repeat,
// a retry or a duplicate) is a per-packet balancer when that probe's later
// answers mix (cellKind), once every vertex before it on those flows
// passed the test (the vertices behind a balancer disagree too). When
// they all came from one other address, the probe is sent again until
// Repeats(2) of them did: the route changed during the run and held, which
// MarkPerPacket reports, and the vertex is no balancer. A balancer's flows
// are not pinned to its successors, so the stopping rule is not applied
// to flows there: its successors are counted from its probes and their
// repeats (each a draw of the balancer), and n_k answers, k its
// successors seen, pass it; repeats, not fresh flows, make up what is
// missing. The vertices behind it (those a flow through it reaches
// further on, whose own probes go any way) are tested the same way, as
// one set per TTL, and not for being per-packet themselves: their answers
// cannot tell.

// Repeats returns how many repeated probes, all answered from the first
// answer's address, show at the given confidence that a vertex from which
// k >= 2 distinct next hops were seen does not balance per packet:
// the smallest r with k^-r <= (1-confidence)^2 (9 at 95% and 14 at 99% for
// k = 2; 5 and 7 for k = 4; 3 and 5 for k = 8).
func Repeats(k int, confidence float64) int {
	k = max(k, 2)
	eps := min(max(1-confidence, 1e-5), 0.5)
	return int(math.Ceil(math.Log(eps*eps)/math.Log(1/float64(k)) - 1e-9))
}

// maxRepeats is the most times one probe is sent again: the Collector
// counts up to 15.
const maxRepeats = 15

// How the later answers to a probe compare with its first.
const (
	cellSame    = iota // all from the first answer's address, or none
	cellMixed          // from the first address and another, or from two others: per-packet
	cellChanged        // from one other address only, Repeats(2) times: a route change
	cellPending        // from one other address only, fewer times so far
)

// cellKind tells how the later answers to f's probe at h compare with its
// first. After a route change every later answer comes from the new next
// hop; behind a per-packet balancer of width w, r of them all do from one
// other address with probability at most w^-r.
func (a *analyzer) cellKind(f *flow, h int) int {
	o := f.at(h)
	if !o.Differs() {
		return cellSame
	}
	others := 0
	for _, x := range a.others {
		if x.PathID == f.id && x.TTL == h {
			others++
		}
	}
	switch {
	case o.Echoes() > 0 || others >= 2:
		return cellMixed
	case o.Later()-o.Echoes() >= Repeats(2, a.conf):
		return cellChanged
	}
	return cellPending
}

// recordRepeats adds to v what the repeats of f's (flow i's) probe at h
// found.
func (a *analyzer) recordRepeats(v *vertex, f *flow, i, h int) {
	o := f.at(h)
	v.reps += min(o.Later(), o.Repeats())
	v.sends += o.Repeats()
	switch a.cellKind(f, h) {
	case cellSame:
		return
	case cellMixed:
		v.differs = true
	case cellChanged:
		v.changed = true
	case cellPending:
		v.pending = append(v.pending, i)
	}
	for _, x := range a.others {
		if x.PathID == f.id && x.TTL == h {
			v.extra = addNode(v.extra, node{ttl: h, addr: x.Addr})
		}
	}
}

// width returns the successors of v, those repeats showed included.
func (v *vertex) width() int {
	k := len(v.succ)
	for _, x := range v.extra {
		if !slices.Contains(v.succ, x) {
			k++
		}
	}
	return k
}

// testRepeated tests the per-packet vertices at h-1, each on its own, and
// the vertices behind them, as one set, by counting answers: they pass
// the stopping rule with n_k answers at h, repeats included, and ask for
// repeats rather than flows. They are then left out of the other tests.
func (a *analyzer) testRepeated(hp *hop, h int) {
	for _, v := range hp.verts {
		if v.key.anon() || v.key.ttl == 0 || v.probed == 0 || v.behind {
			continue
		}
		if !v.differs {
			// A probe answered from another address, not yet often
			// enough to tell a route change: again.
			for _, i := range v.pending {
				if a.flows[i].at(h).Repeats() < maxRepeats && !slices.Contains(hp.again, i) {
					hp.again = append(hp.again, i)
				}
			}
			continue
		}
		if a.upstreamOpen(v, h) {
			continue // the balancer may be before it: that is tested first
		}
		v.pp = true
		a.passCounted(hp, h, v.width(), v.evidence()+v.reps, v)
	}
	a.union = a.union[:0]
	total, members := 0, 0
	for _, v := range hp.verts {
		if !a.countedBehind(v) {
			continue
		}
		for _, x := range v.succ {
			a.union = addNode(a.union, x)
		}
		for _, x := range v.extra {
			a.union = addNode(a.union, x)
		}
		total += v.evidence() + v.reps
		members++
	}
	if members == 0 {
		return
	}
	k := len(a.union)
	for _, v := range hp.verts {
		if a.countedBehind(v) {
			a.passCounted(hp, h, k, 0, v)
			v.single = k == 1 && len(v.succ) == 1 && v.dst == 0
		}
	}
	if want := a.n(k); total < want {
		a.askRepeats(hp, h, want-total, func(v *vertex) bool { return v.behind && v.passed })
	}
}

// countedBehind says whether v is tested with the set of the vertices
// behind a per-packet balancer: not one before the destination only (one
// flow passes it, as anywhere).
func (a *analyzer) countedBehind(v *vertex) bool {
	return v.behind && !v.pp && !v.key.anon() && v.probed > 0 && !(len(v.succ) == 1 && v.dst == 1)
}

// passCounted passes v, tested by counting k successors over samples
// answers (0: its set asks for them), and asks for the repeats it lacks;
// the flows through it are probed onwards where it has several
// successors.
func (a *analyzer) passCounted(hp *hop, h, k, samples int, v *vertex) {
	v.passed = true
	if k >= 2 {
		hp.complete = a.appendOnward(hp.complete, v.cands, h)
	}
	if samples == 0 {
		return
	}
	if want := a.n(k); samples < want {
		a.askRepeats(hp, h, want-samples, func(u *vertex) bool { return u == v })
	}
}

// testPerFlow asks for the repeats that the vertices at h-1 where flows
// diverge lack to show that they balance per flow: one as soon as they
// do, Repeats(k) once they passed their test. A vertex whose repeats go
// unanswered gives up after three times as many sends.
func (a *analyzer) testPerFlow(hp *hop, h int) {
	for _, v := range hp.verts {
		if v.key.anon() || v.key.ttl == 0 || v.behind || v.pp || len(v.succ) < 2 {
			continue
		}
		want := 1
		if v.passed {
			want = Repeats(len(v.succ), a.conf)
		}
		have := v.reps + a.pairs(v, h)
		if have < want && v.sends < 3*want {
			a.askRepeats(hp, h, want-have, func(u *vertex) bool { return u == v })
		}
		v.flowOK = v.passed && !v.differs && !v.changed && len(v.pending) == 0 && (have >= want || v.sends >= 3*want)
	}
}

// upstreamOpen says whether a flow through v (at h-1) passed a vertex
// before it that did not show yet that it balances per flow: the probes
// answered from two addresses at h may be that vertex's doing, as the
// vertices behind a per-packet balancer show several successors (and one
// whose flows all went one way by chance shows one). It asks for that
// vertex's repeats.
func (a *analyzer) upstreamOpen(v *vertex, h int) bool {
	open := false
	asked := a.upv[:0] // the vertices asked for repeats, once each
	defer func() { a.upv = asked }()
	for _, i := range v.flows {
		f := &a.flows[i]
		for j := 1; j < h-1; j++ {
			if f.how[j] == howUnknown {
				continue
			}
			up := a.hops[j+1]
			ui := up.vertex(f.key[j])
			if ui < 0 {
				continue
			}
			u := up.verts[ui]
			if u.key.anon() || u.pp || u.flowOK || len(u.succ) == 0 || u.toDst {
				continue
			}
			if slices.Contains(asked, u) {
				open = true
				continue
			}
			// With one successor seen, the flows agree whatever the
			// vertex does: only repeats tell.
			want, have := Repeats(len(u.succ), a.conf), u.reps
			if len(u.succ) >= 2 {
				have += a.pairs(u, j+1)
			}
			if have >= want || u.sends >= 3*want {
				continue
			}
			open = true
			asked = append(asked, u)
			a.askRepeats(up, j+1, want-have, func(x *vertex) bool { return x == u })
		}
	}
	return open
}

// pairs returns the evidence that the flows through v probed at h and h+1
// give for free: when every vertex x they reached at h+1 was reached from
// one successor s of v only, each flow at x after the first is a repeat.
// Behind a per-packet balancer a flow's successor at h is drawn afresh,
// whatever it reaches at h+1, so that it is the same as the first flow's
// at x with probability 1/w: c such flows all agree with probability
// w^-c. A vertex x reached from two successors (branches that converge,
// or meshing) makes this no evidence at all: the pairs count only when
// none is, so that they are not picked for agreeing.
func (a *analyzer) pairs(v *vertex, h int) int {
	seen := a.union[:0]
	owner := a.owners[:0]
	c := 0
	defer func() { a.union, a.owners = seen, owner }()
	for _, i := range v.flows {
		f := &a.flows[i]
		o, n := f.at(h), f.at(h+1)
		if !o.Sent() || !n.Sent() || !o.From().IsValid() || !n.From().IsValid() || o.Differs() || n.Differs() {
			continue
		}
		x := node{ttl: h + 1, addr: n.From()}
		j := slices.Index(seen, x)
		switch {
		case j < 0:
			seen = append(seen, x)
			owner = append(owner, o.From())
		case owner[j] != o.From():
			return 0
		default:
			c++
		}
	}
	return c
}

// askRepeats asks for n repeats at h of the probes of the flows through
// the vertices that sel selects, answered from an address: those sent
// again the fewest times first, one per flow a round.
func (a *analyzer) askRepeats(hp *hop, h, n int, sel func(*vertex) bool) {
	for least := 0; least < maxRepeats && n > 0; least++ {
		for _, v := range hp.verts {
			if !sel(v) {
				continue
			}
			for _, i := range v.flows {
				if n == 0 {
					return
				}
				o := a.flows[i].at(h)
				if o.Sent() && o.From().IsValid() && o.Repeats() == least && !slices.Contains(hp.again, i) {
					hp.again = append(hp.again, i)
					n--
				}
			}
		}
	}
}

// markBehind marks the flows through the per-packet vertices at h-1, and
// through those behind them: the vertices they reach further on are
// behind one.
func (a *analyzer) markBehind(hp *hop) {
	for _, v := range hp.verts {
		if v.pp || v.behind {
			for _, i := range v.flows {
				a.flows[i].pp = true
			}
		}
	}
}

// MarkPerPacket rewrites t.PerPacket, the probes answered from several
// addresses (built from the same probes as st), by what the per-packet
// test of st found: one entry per per-packet balancer, its Vertex set, for
// the first of its flows whose probe beyond it was answered from several
// addresses; the probes answered so behind a balancer are its doing and
// are left out. A vertex whose probes' later answers all came from one
// new next hop had its route changed: one entry, RouteChange set. The
// others are kept as they are.
func MarkPerPacket(t *analysis.Trace, st *State, confidence float64) {
	if len(t.PerPacket) == 0 {
		return
	}
	a := analyze(st, confidence)
	defer a.release()
	var out []analysis.PerPacketHop
	for _, pp := range t.PerPacket {
		v, ok := a.vertexBefore(pp.PathID, pp.TTL)
		switch {
		case !ok || !v.pp && !v.behind && !v.changed:
			out = append(out, pp)
		case v.pp && a.firstOf(v, pp.TTL, cellMixed) == pp.PathID:
			pp.Vertex = v.key.addr
			out = append(out, pp)
		case !v.pp && !v.behind && a.firstOf(v, pp.TTL, cellChanged) == pp.PathID:
			pp.Vertex, pp.RouteChange = v.key.addr, true
			out = append(out, pp)
		}
	}
	t.PerPacket = out
}

// vertexBefore returns the vertex of path ID id at ttl-1, as tested by the
// probes at ttl.
func (a *analyzer) vertexBefore(id, ttl int) (*vertex, bool) {
	fi, ok := a.lookup(id)
	if !ok || ttl < 2 || ttl > a.horizon || a.flows[fi].how[ttl-1] == howUnknown {
		return nil, false
	}
	hp := a.hops[ttl]
	vi := hp.vertex(a.flows[fi].key[ttl-1])
	if vi < 0 {
		return nil, false
	}
	return hp.verts[vi], true
}

// firstOf returns the lowest path ID through v whose probe at h is of the
// kind given (cellKind), 0 if none.
func (a *analyzer) firstOf(v *vertex, h, kind int) int {
	best := 0
	for _, i := range v.flows {
		f := &a.flows[i]
		if a.cellKind(f, h) == kind && (best == 0 || f.id < best) {
			best = f.id
		}
	}
	return best
}
