package mda

import (
	"math"
	"net/netip"
	"slices"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Cell names one probe: a path ID (flow) and a TTL. A plan is a list of
// them.
type Cell struct{ PathID, TTL int }

// State is what an adaptive run knows of one destination: the input of
// Plan and FillInferred.
type State struct {
	// Rows are the probes of the destination by path ID, as
	// analysis.Collector.Rows hands them out, the Collector's own record
	// (the planner only reads it): Rows[p-1][t-1] is the probe of path ID
	// p at TTL t, a row ending with the highest TTL sent. A path ID with
	// an empty row takes no part. A probe sent and not answered counts as
	// silent: Plan is to be called once every probe sent is settled
	// (answered, or given up on after its retries).
	Rows [][]analysis.Probe
	// MaxTTL is the largest TTL that may be probed (0: the longest row).
	MaxTTL int
	// GapLimit is the number of silent TTLs in a row after which a flow is
	// not followed further (0: 3).
	GapLimit int
	// OneFirstHop says that every probe leaves through one next hop (the
	// prober sends them all to one link-layer address): TTL 1 is then a
	// single vertex without testing it, and every flow's hop there is the
	// one that answered path ID 1.
	OneFirstHop bool
	// Rounds counts the rounds that Plan planned so far; the scheduler
	// increments it each time it sends a plan. Plan stops after
	// MaxRounds.
	Rounds int
	// PerPacket turns on the per-packet test (see perpacket.go): where
	// flows diverge, probes already answered are sent again (Repeats),
	// and a vertex whose flows' probes are answered from two addresses
	// is a per-packet load balancer, whose successors are counted from
	// repeated probes rather than pinned to flows.
	PerPacket bool
	// Others are the later answers from other addresses than the first
	// (Collector.AppendOthers): what repeats of a probe found.
	Others []analysis.OtherAnswer
	// Repeats is set by Plan: the probes of the next round to send again,
	// each sent and answered already (with PerPacket only).
	Repeats []Cell

	// Stops, when set, is the run's stop set (see StopSet): what other
	// destinations' searches settled. Owner names this destination's
	// search in it (not 0, one per destination of the run) and Dst is
	// the destination.
	Stops *StopSet
	Owner uint64
	Dst   netip.Addr
	// NoWait plans without waiting for the vertices that other searches
	// are testing.
	NoWait bool
	// Waiting is set by Plan: the round planned nothing because every
	// vertex it needs tested is being tested by another destination's
	// search; Plan is to be called again once Stops.Version changes.
	Waiting bool
}

// MaxRounds bounds the rounds of one destination's search (rounds
// after the first, path ID 1's). The topologies simulated in the tests take
// 1 to 13.
const MaxRounds = 32

// defaultGap is the GapLimit when State leaves it 0.
const defaultGap = 3

// Plan returns the probes of the next round for the destination whose
// answers so far are in st, and sets st.Repeats to the probes to send
// again; none of either means the stopping rule holds everywhere
// (complete) or maxPaths (or MaxRounds) stops it (then complete=false).
//
// It is called once all the probes of the previous round are settled. The
// first round is the scheduler's own: path ID 1 at TTLs 1 up to where the
// destination answered (or where it gave up). New path IDs in the plan are
// the numbers following the largest one in st, up to maxPaths; the cells of
// one round may all be sent at once.
func Plan(st *State, confidence float64, maxPaths int) (next []Cell, complete bool) {
	st.Repeats, st.Waiting = st.Repeats[:0], false
	a := analyze(st, confidence)
	defer a.release()
	a.publish(st)
	if a.satisfied() {
		st.Stops.Release(st.Owner)
		return nil, true
	}
	if st.Rounds >= MaxRounds {
		st.Stops.Release(st.Owner)
		return nil, false
	}
	a.claim(st)
	next = a.plan(maxPaths)
	st.Repeats = append(st.Repeats, a.repeats...)
	st.Waiting = a.waiting && len(next) == 0 && len(st.Repeats) == 0
	return next, false
}

// plan returns the cells of the next round. TTL by TTL, it asks again
// for flows whose rows need a hop (hp.verify, hp.complete), then for the
// flows known at the vertices whose tests lack some (planKnown), and for
// fresh flows where those are too few (planFresh): one batch a round, for
// the shallowest TTL that needs some, but for the flows of a hop-level
// test probed at a TTL alone that the batch left to them (leftFor).
func (a *analyzer) plan(maxPaths int) []Cell {
	a.startPlan(maxPaths)
	for h := 1; h <= a.horizon; h++ {
		hp := a.hops[h]
		for _, i := range hp.again {
			a.repeats = append(a.repeats, Cell{PathID: a.flows[i].id, TTL: h})
		}
		for _, i := range hp.verify {
			a.add(a.flows[i].id, h-1)
		}
		for _, i := range hp.complete {
			a.add(a.flows[i].id, h)
		}
		rem := a.planKnown(hp, h)
		short := false
		for _, r := range rem {
			short = short || r > 0
		}
		if !short || a.freshDone && a.leftFor != h {
			continue
		}
		a.planFresh(hp, h, rem)
	}
	if len(a.cells) == 0 {
		return nil
	}
	slices.SortFunc(a.cells, func(x, y Cell) int {
		if x.PathID != y.PathID {
			return x.PathID - y.PathID
		}
		return x.TTL - y.TTL
	})
	return slices.Clone(a.cells)
}

// startPlan readies a to plan a round with path IDs up to maxPaths.
func (a *analyzer) startPlan(maxPaths int) {
	a.cells = a.cells[:0]
	a.plannedAt = resize(a.plannedAt, a.horizon+2)
	for ttl := range a.plannedAt {
		a.plannedAt[ttl] = a.plannedAt[ttl][:0]
	}
	a.planWords = (a.horizon+1)/64 + 1
	a.inPlan = resize(a.inPlan, len(a.flows)*a.planWords)
	clear(a.inPlan)
	a.nextID, a.maxPaths = a.maxID+1, maxPaths
	a.freshDone, a.leftFor = false, 0
	a.repeats = a.repeats[:0]
}

// add plans the probe of path ID id at ttl, unless it is out of range,
// planned already or probed; it reports whether it did.
func (a *analyzer) add(id, ttl int) bool {
	if ttl < 1 || ttl > a.maxTTL {
		return false
	}
	s, ok := a.slot(id)
	if a.planned(s, ttl) || ok && a.flows[s].at(ttl).Sent() {
		return false
	}
	a.markPlanned(s, ttl)
	a.cells = append(a.cells, Cell{PathID: id, TTL: ttl})
	a.plannedAt[ttl] = append(a.plannedAt[ttl], id)
	return true
}

// fresh returns the next path ID not used yet, false once maxPaths are.
func (a *analyzer) fresh() (int, bool) {
	if a.nextID > a.maxPaths {
		return 0, false
	}
	a.nextID++
	return a.nextID - 1, true
}

// knownAt says whether the vertex of path ID id at ttl is known.
func (a *analyzer) knownAt(id, ttl int) bool {
	fi, ok := a.lookup(id)
	return ok && a.flows[fi].how[ttl] != howUnknown
}

// placedBackwards says that fresh flows probed at h alone are placed at
// h-1 by where they go (backwards, without meshing), their vertex at h-2
// being the one there.
func (a *analyzer) placedBackwards(h int) bool {
	return h >= 2 && h <= a.horizon && a.hops[h].meshFree && a.prefix[h-2]
}

// planKnown plans, for each need of hp, flows known at its members
// (takeKnown), and for the needs that any vertex at h-1 serves (whole),
// the flows sent at h-1 this round whose vertex there is not known yet:
// they reach a member whichever it is. It returns, per need, the flows it
// still lacks.
func (a *analyzer) planKnown(hp *hop, h int) (rem []int) {
	rem = resize(a.rem, len(hp.needs))
	a.rem = rem
	for ni, nd := range hp.needs {
		rem[ni] = nd.short - a.takeKnown(hp, nd, h)
	}
	for ni, nd := range hp.needs {
		if !nd.whole {
			continue
		}
		for _, id := range a.plannedAt[h-1] {
			if rem[ni] <= 0 {
				break
			}
			if !a.knownAt(id, h-1) && a.add(id, h) {
				rem[ni]--
			}
		}
	}
	return rem
}

// Which needs a batch of fresh flows is sized for.
func anyNeed(need) bool         { return true }
func placedNeed(nd need) bool   { return nd.placed }
func unplacedNeed(nd need) bool { return !nd.placed }

// freshCount returns the fresh flows that the needs of hp that sel
// selects ask for (rem, per need), at the share of flows each gets.
func (a *analyzer) freshCount(hp *hop, rem []int, sel func(need) bool) int {
	c := 0
	for ni, nd := range hp.needs {
		if rem[ni] > 0 && sel(nd) {
			if nd.whole {
				c = max(c, rem[ni])
			} else {
				c = max(c, int(math.Ceil(float64(rem[ni])/hp.share(nd.members))))
			}
		}
	}
	return c
}

// planFresh plans fresh flows for the needs of hp that the known flows
// leave short (rem): after the batch of the round, only those probed at h
// alone that it left to them (freshDirect); else the batch, probed at h
// after a single vertex (freshAfterPrefix), or brought forward to h-1
// (freshForward).
func (a *analyzer) planFresh(hp *hop, h int, rem []int) {
	if a.freshDone {
		a.freshDirect(hp, h, rem)
		return
	}
	a.freshDone = true
	if a.prefix[h-1] {
		a.freshAfterPrefix(hp, h, rem)
		return
	}
	a.freshForward(hp, h, rem)
}

// freshDirect probes fresh flows at h alone for the tests of the hop as a
// whole (placed), placed at h-1 by where they go.
func (a *analyzer) freshDirect(hp *hop, h int, rem []int) {
	for range a.freshCount(hp, rem, placedNeed) {
		id, ok := a.fresh()
		if !ok {
			break
		}
		a.add(id, h)
	}
}

// freshAfterPrefix probes fresh flows at h: they are known to pass the one
// vertex at h-1. Enough for its test, and for the vertices at h that lack
// flows, at the share of flows they get (but for a hop-level test there,
// left to flows probed there alone).
func (a *analyzer) freshAfterPrefix(hp *hop, h int, rem []int) {
	n := a.freshCount(hp, rem, anyNeed)
	if h+1 <= a.horizon {
		next := a.hops[h+1]
		for _, nd := range next.needs {
			if a.placedBackwards(h+1) && nd.placed {
				continue
			}
			if r := nd.short - nd.avail; r > 0 {
				n = max(n, int(math.Ceil(float64(r)/next.share(nd.members))))
			}
		}
		if a.placedBackwards(h + 1) {
			a.leftFor = h + 1
		}
	}
	for range n {
		id, ok := a.fresh()
		if !ok {
			break
		}
		a.add(id, h)
	}
}

// freshForward brings fresh flows forward to the vertices at h-1 that lack
// flows: it probes them at every TTL up to h-1 where their hop cannot be
// inferred (forwardTTLs), and on to h for a need that any vertex at h-1
// serves. Where flows probed at h alone are placed backwards, the tests
// of the hop as a whole get those (freshDirect).
func (a *analyzer) freshForward(hp *hop, h int, rem []int) {
	forward := anyNeed
	if a.placedBackwards(h) {
		a.freshDirect(hp, h, rem)
		forward = unplacedNeed
	}
	n := a.freshCount(hp, rem, forward)
	if n == 0 {
		return
	}
	ttls := a.forwardTTLs(h)
	for range n {
		id, ok := a.fresh()
		if !ok {
			break
		}
		for _, j := range ttls {
			a.add(id, j)
		}
		// Any vertex at h-1 serves a whole need: on to h.
		for ni, nd := range hp.needs {
			if rem[ni] > 0 && nd.whole && forward(nd) {
				a.add(id, h)
				rem[ni]--
				break
			}
		}
	}
}

// forwardTTLs returns the TTLs up to h-1 at which a fresh flow is probed
// to bring it to h-1: those where its hop cannot be inferred, forwards
// (after a single vertex, or a hop whose vertices all passed with one
// successor) or backwards from the next TTL's.
func (a *analyzer) forwardTTLs(h int) []int {
	ttls := a.ttls[:0]
	for j := 1; j <= h-1; j++ {
		if !a.prefix[j] && !a.hops[j].inferable {
			ttls = append(ttls, j)
		}
	}
	if len(ttls) == 0 {
		ttls = append(ttls, h-1)
	}
	a.ttls = ttls
	if len(ttls) >= 2 && ttls[1] == ttls[0]+1 && a.placedBackwards(ttls[1]) {
		ttls = ttls[1:]
	}
	return ttls
}

// slot returns the row of path ID id in the cells planned: the index of
// its flow (known), or for a fresh one, numbered after maxID, the rows
// after the flows'.
func (a *analyzer) slot(id int) (slot int, known bool) {
	if fi, ok := a.lookup(id); ok {
		return fi, true
	}
	return len(a.flows) + id - a.maxID - 1, false
}

// planned reports whether the cell of slot at ttl is planned. The cells
// planned are a bitset of planWords words per slot, for TTLs up to the
// horizon (and one beyond): plan asks for no others.
func (a *analyzer) planned(slot, ttl int) bool {
	w := slot*a.planWords + ttl/64
	return w < len(a.inPlan) && a.inPlan[w]&(1<<(ttl%64)) != 0
}

// plannedID reports whether the cell (id, ttl) is planned.
func (a *analyzer) plannedID(id, ttl int) bool {
	s, _ := a.slot(id)
	return a.planned(s, ttl)
}

// markPlanned records that the cell of slot at ttl is planned.
func (a *analyzer) markPlanned(slot, ttl int) {
	w := slot*a.planWords + ttl/64
	if w >= len(a.inPlan) {
		a.inPlan = append(a.inPlan, make([]uint64, (slot+1)*a.planWords-len(a.inPlan))...)
	}
	a.inPlan[w] |= 1 << (ttl % 64)
}

// takeKnown plans at h up to nd.short of the flows known at the members of
// nd and not probed at h, those already planned first, then spreading them
// over the members that got the fewest; it returns how many it took.
func (a *analyzer) takeKnown(hp *hop, nd need, h int) int {
	taken := 0
	got := resize(a.got, len(nd.members))
	next := resize(a.next, len(nd.members))
	a.got, a.next = got, next
	clear(next)
	for mi, vi := range nd.members {
		got[mi] = hp.verts[vi].probed
		for _, i := range hp.verts[vi].cands {
			if taken < nd.short && a.plannedID(a.flows[i].id, h) {
				taken++
				got[mi]++
			}
		}
	}
	for taken < nd.short {
		best := -1
		for mi, vi := range nd.members {
			cands := hp.verts[vi].cands
			for next[mi] < len(cands) && a.plannedID(a.flows[cands[next[mi]]].id, h) {
				next[mi]++
			}
			if next[mi] < len(cands) && (best < 0 || got[mi] < got[best]) {
				best = mi
			}
		}
		if best < 0 {
			break
		}
		a.add(a.flows[hp.verts[nd.members[best]].cands[next[best]]].id, h)
		next[best]++
		got[best]++
		taken++
	}
	return taken
}
