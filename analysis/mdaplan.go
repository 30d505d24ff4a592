package analysis

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"sync"
)

// This file plans an adaptive (--paths auto) run probe by probe: which path
// IDs (flows) to probe at which TTLs in the next round, so that the MDA
// stopping rule (MDAFlows) holds at every vertex with far fewer probes than
// probing every flow at every TTL.
//
// The rule is applied per vertex, with node control: a vertex v at TTL h
// with k distinct successors seen needs n_k flows known to pass through v
// and probed at h+1. A flow is known to pass through v when it was probed
// at h and v answered, or when its vertex at h-1 passed its own test with v
// as its only successor: such hops are inferred rather than probed. Hence
//
//   - after a hop proven to be a single vertex (the source, a lone router),
//     fresh flows are probed at the next TTL only;
//   - behind a hop of several vertices, flows already known at a vertex are
//     reused, and fresh flows are only brought forward (probed at the TTL
//     of the vertex to find out where they go) when too few are known;
//   - the vertices at which the branches of a diamond converge are tested
//     as a whole, as in MDA-Lite: when w >= 2 vertices at a TTL all have the
//     same single successor, n_1 flows over them together (each probed at
//     least once) stand for all of them;
//   - so are, with MDA-Lite's hop-level test (Vermeulen et al., IMC 2018),
//     w >= 2 vertices at a TTL whose successors are their own (none
//     reached from two of them: no meshing): n_k flows over them all, k
//     their successors in all. That is the whole test when each has as
//     many successors (a uniform hop), with a meshing test: as many flows
//     seen at a vertex after its first as mdaPhi flows at each would give,
//     over the hop as a whole; else node control follows. Branches that never
//     converge (routers answering from the interface a probe came in by
//     show one address per branch) are tested this way;
//   - without meshing, a flow probed at h+1 alone is placed at h by the
//     vertex it reached: its one predecessor (backwards inference). Such
//     flows count for hop-level tests only, not for a vertex's own: a
//     successor shared with another vertex, not seen from it yet, would
//     pass the other's flows off as its own;
//   - a vertex whose only successor is the destination needs one flow (a
//     destination is reached over its directly connected interface), as in
//     scamper, and so does one whose only successor answers with an
//     unreachable (the branch ends there);
//   - a silent answer is no evidence (a lost probe and a router that never
//     answers look alike) unless nothing answered, when it is one anonymous
//     successor; anonymous hops are not tested (nothing can be aimed at
//     them), but the flows through them are probed onwards until GapLimit
//     silent TTLs in a row.
//
// Each round asks for the flows already known at vertices that need them,
// at every TTL at once, and for one batch of fresh flows, sized for the
// shallowest TTL that needs some (as in Diamond-Miner, by the share of flows
// each vertex got so far), but for a hop-level test one TTL further, whose
// flows are probed there alone when backwards inference places them. Flows
// sent at a TTL whose vertices are not known yet are also sent one TTL
// deeper for a test of every vertex there (so that the first round probes
// the first flows at every TTL of a single path at once, and a diamond's
// flows go on through it in the round they enter it).
//
// Every flow used is probed at each TTL up to the end of its path where its
// hop cannot be inferred (after a vertex with several successors, or an
// anonymous one), so that it ends up as a complete row (FillInferred).

// Cell names one probe: a path ID (flow) and a TTL.
type Cell struct{ PathID, TTL int }

// MDAObs is the outcome of the probe of one flow at one TTL.
type MDAObs struct {
	// Probed says that the probe was sent and is settled: answered, or
	// given up on after its retries. The other fields are zero when not.
	Probed bool
	// Addr is the source of the first answer; invalid when nothing
	// answered.
	Addr netip.Addr
	// Reached says that the answer came from the destination: the flow
	// ends at this TTL.
	Reached bool
	// Stop says that the answer ends the flow without reaching the
	// destination (an ICMP destination unreachable from a router).
	Stop bool
}

// MDAFlowRow is what one path ID saw: TTL i+1 at index i. TTLs beyond
// len(Hops) were not probed.
type MDAFlowRow struct {
	PathID int
	Hops   []MDAObs
}

// MDAState is what an adaptive run knows of one destination: the input of
// PlanMDA and FillInferred. The scheduler fills it (Set) as probes settle.
type MDAState struct {
	Flows []MDAFlowRow // one row per path ID, in any order
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
	// Rounds counts the rounds that PlanMDA planned so far; the scheduler
	// increments it each time it sends a plan. PlanMDA stops after
	// MDAMaxRounds.
	Rounds int

	// index[id] is 1 + the index in Flows of path ID id's row, 0 if
	// none, for the first indexed rows of Flows and path IDs below
	// mdaIndexLimit.
	index   []int32
	indexed int
}

// mdaIndexLimit bounds the path IDs that MDAState indexes: the prober's
// are at most 4096; rows of larger ones are looked up one by one.
const mdaIndexLimit = 1 << 16

// MDAMaxRounds bounds the rounds of one destination's search (rounds
// after the first, path ID 1's). The topologies simulated in the tests take
// 1 to 13.
const MDAMaxRounds = 32

// mdaDefaultGap is the GapLimit when MDAState leaves it 0.
const mdaDefaultGap = 3

// Set records the settled probe (pathID, ttl): o, with Probed set. Rows are
// created and grown as needed; out-of-range values are ignored. Rows past
// the end of Flows (as Flows[:0] leaves them) are reused, with the memory
// of their hops.
func (s *MDAState) Set(pathID, ttl int, o MDAObs) {
	if pathID < 1 || ttl < 1 {
		return
	}
	i := s.row(pathID)
	if i < 0 {
		i = len(s.Flows)
		if i < cap(s.Flows) {
			s.Flows = s.Flows[:i+1]
			s.Flows[i] = MDAFlowRow{PathID: pathID, Hops: s.Flows[i].Hops[:0]}
		} else {
			s.Flows = append(s.Flows, MDAFlowRow{PathID: pathID})
		}
		s.addIndex(pathID, i)
	}
	row := &s.Flows[i]
	if n := len(row.Hops); n < ttl {
		row.Hops = append(row.Hops, make([]MDAObs, ttl-n)...)
	}
	o.Probed = true
	row.Hops[ttl-1] = o
}

// row returns the index in Flows of the row of pathID (the last one if
// there are several), -1 if none.
func (s *MDAState) row(pathID int) int {
	n := len(s.Flows)
	if n > 0 && s.Flows[n-1].PathID == pathID {
		return n - 1 // the probes of a row mostly come in a row
	}
	if s.indexed != n {
		// Rows added or removed by the caller.
		clear(s.index)
		s.indexed = 0
		for i := range s.Flows {
			s.addIndex(s.Flows[i].PathID, i)
		}
	}
	if pathID >= mdaIndexLimit {
		for i := n - 1; i >= 0; i-- {
			if s.Flows[i].PathID == pathID {
				return i
			}
		}
		return -1
	}
	if pathID < len(s.index) {
		return int(s.index[pathID]) - 1
	}
	return -1
}

// addIndex records that the row of pathID is Flows[i], the row after the
// ones indexed.
func (s *MDAState) addIndex(pathID, i int) {
	s.indexed++
	if pathID < 1 || pathID >= mdaIndexLimit {
		return
	}
	if n := len(s.index); pathID >= n {
		// Room for as many path IDs as Flows has for rows: they are
		// mostly 1 up.
		s.index = slices.Grow(s.index, max(pathID+1, min(cap(s.Flows)+1, mdaIndexLimit))-n)[:pathID+1]
		clear(s.index[n:])
	}
	s.index[pathID] = int32(i + 1)
}

// PlanMDA returns the probes of the next round for the destination whose
// answers so far are in st; none means the stopping rule holds everywhere
// (complete) or maxPaths (or MDAMaxRounds) stops it (then complete=false).
//
// It is called once all the probes of the previous round are settled. The
// first round is the scheduler's own: path ID 1 at TTLs 1 up to where the
// destination answered (or where it gave up). New path IDs in the plan are
// the numbers following the largest one in st, up to maxPaths; the cells of
// one round may all be sent at once.
func PlanMDA(st *MDAState, confidence float64, maxPaths int) (next []Cell, complete bool) {
	a := analyzeMDA(st, confidence)
	defer a.release()
	if a.satisfied() {
		return nil, true
	}
	if st.Rounds >= MDAMaxRounds {
		return nil, false
	}
	next = a.plan(maxPaths)
	return next, false
}

// FillInferred completes the rows of t (built from the same probes as st)
// with the hops that were not probed but are implied by what was: a hop
// after a vertex that passed the stopping rule with a single successor, a
// hop before a vertex with a single predecessor where no meshing was seen,
// or the end of the flow after a vertex whose only successor is the
// destination (or a router answering with an unreachable).
// Filled hops have Inferred set, the address, ICMP type and code of that
// vertex's answers, and no RTT; a flow inferred to reach the destination
// gets Reached and ReachedTTL.
//
// It returns, ascending, the path IDs whose rows are still not complete: a
// hop between the source and the end of the flow is neither probed nor
// implied (the search stopped before it, or the flow was only used to find
// its way to one vertex). Their hops are left as they are; rows of complete
// paths should leave them out.
func FillInferred(t *Trace, st *MDAState, confidence float64) (partial []int) {
	a := analyzeMDA(st, confidence)
	defer a.release()
	a.indexAnswers(t)
	// The rows that grow get their hops from one block.
	grown := 0
	for _, f := range t.Flows {
		if ai, ok := a.flow(f.PathID); ok {
			if end, complete := a.rowEnd(&a.flows[ai]); complete && len(f.Hops) < end {
				grown += end
			}
		}
	}
	var block []Hop
	if grown > 0 {
		block = make([]Hop, grown)
	}
	for fi := range t.Flows {
		f := &t.Flows[fi]
		ai, ok := a.flow(f.PathID)
		if !ok {
			continue
		}
		af := &a.flows[ai]
		end, complete := a.rowEnd(af)
		if !complete {
			partial = append(partial, f.PathID)
			continue
		}
		if n := len(f.Hops); n < end {
			hops := block[:end:end]
			block = block[end:]
			copy(hops, f.Hops)
			for i := n; i < end; i++ {
				hops[i].TTL = i + 1
			}
			f.Hops = hops
		}
		for h := 1; h <= end; h++ {
			hop := &f.Hops[h-1]
			if af.how[h] != mdaInferred || hop.Addr.IsValid() {
				continue
			}
			k := af.key[h]
			ans, ok := a.answer(k)
			if !ok {
				ans = mdaRef{typ: 11} // time exceeded
				if af.reached && h == af.end {
					ans = mdaRef{typ: icmpUnreachable, code: codePortUnreachable}
				}
				if k.addr.Is6() && !k.addr.Is4In6() {
					ans = mdaRef{typ: icmp6TimeExceeded}
					if af.reached && h == af.end {
						ans = mdaRef{typ: icmp6Unreachable, code: code6PortUnreachable}
					}
				}
			}
			*hop = Hop{TTL: h, Addr: k.addr, ICMPType: ans.typ, ICMPCode: ans.code, Inferred: true}
		}
		// True length: a flow ends where it reached the destination or
		// was stopped, else at its last responding hop.
		f.Hops = f.Hops[:end]
		if af.reached {
			f.Reached, f.ReachedTTL = true, end
		} else {
			n := len(f.Hops)
			for n > 0 && !f.Hops[n-1].Addr.IsValid() {
				n--
			}
			f.Hops = f.Hops[:n]
		}
	}
	slices.Sort(partial)
	return partial
}

// mdaKey is a vertex: a responding address at a TTL; the source at TTL 0
// and an anonymous (silent) hop have no address.
type mdaKey struct {
	ttl  int
	addr netip.Addr
}

func (k mdaKey) anon() bool { return k.ttl > 0 && !k.addr.IsValid() }

// How the hop of a flow at a TTL is known.
const (
	mdaUnknown uint8 = iota
	mdaObserved
	mdaInferred
)

type mdaFlow struct {
	id      int
	row     []MDAObs
	key     []mdaKey // per TTL 0..horizon: the vertex, when how says it is known
	how     []uint8
	end     int // the TTL at which the flow ends (reached or stopped, probed or inferred); 0 while open
	dark    int // the first TTL of GapLimit silent answers in a row; 0 if none
	run     int // silent answers in a row so far (while analysing)
	reached bool
}

func (f *mdaFlow) obs(ttl int) MDAObs {
	if ttl >= 1 && ttl <= len(f.row) {
		return f.row[ttl-1]
	}
	return MDAObs{}
}

// goesOn reports whether the flow, known at ttl, has a hop at ttl+1 worth
// knowing: it has not ended there and has not gone dark.
func (f *mdaFlow) goesOn(ttl int) bool {
	return (f.end == 0 || ttl < f.end) && (f.dark == 0 || ttl < f.dark)
}

// mdaVertex is a vertex at the TTL before a hop, and its test.
type mdaVertex struct {
	key    mdaKey
	flows  []int // indices into mdaAnalysis.flows of the flows known here that go on
	cands  []int // of those, the ones not probed at the next TTL
	probed int   // of those, the ones probed at the next TTL (answered or not)
	quiet  int   // of those, the ones not answered
	succ   []mdaKey
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
	obsSucc  []mdaKey
	inferred []int
	// back counts the flows (in probed) whose hop here was inferred from
	// the vertex they reached beyond: no evidence of meshing.
	back int
}

// successors returns k: the distinct successors seen. A silence is no
// evidence (a lost probe, or a successor that never answers: the two look
// alike) unless nothing answered at all: then the successor is one
// anonymous vertex.
func (v *mdaVertex) successors() int {
	if len(v.succ) == 0 && v.silent {
		return 1
	}
	return len(v.succ)
}

// evidence returns the flows that count for the stopping rule: those
// answered, or those probed when none was.
func (v *mdaVertex) evidence() int {
	if len(v.succ) == 0 {
		return v.probed
	}
	return v.probed - v.quiet
}

// direct returns the evidence from flows seen (or inferred forward) here:
// those that could show meshing.
func (v *mdaVertex) direct() int { return v.evidence() - v.back }

// mdaPhi is the MDA-Lite meshing test: the flows seen at each vertex of a
// hop tested as one that must be probed beyond it (here, their sum after
// each vertex's first).
const mdaPhi = 2

// mdaNeed is a test that fails: the flows it still lacks.
type mdaNeed struct {
	members []int // indices into mdaHop.verts
	short   int   // flows still to probe at the hop's TTL
	avail   int   // flows known at the members and not probed there
	// whole says that every vertex at the TTL before (but anonymous ones)
	// is a member: any flow reaching that TTL will do.
	whole bool
	// placed says that flows probed beyond the members alone, placed at
	// them by where they went, count: a test of the hop as a whole.
	placed bool
}

// mdaHop is the analysis of one TTL: the tests of the vertices before it.
type mdaHop struct {
	ttl      int
	verts    []*mdaVertex // the vertices at ttl-1, by their first path ID
	needs    []mdaNeed
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

type mdaAnalysis struct {
	conf    float64
	oneHop  bool
	maxTTL  int
	gap     int
	flows   []mdaFlow
	maxID   int
	reached bool // some flow reached the destination
	horizon int  // the deepest TTL that tests may probe
	hops    []*mdaHop
	// byID[id] is the index into flows of path ID id, -1 if none; empty
	// when the path IDs are too sparse for it (see flow).
	byID []int
	// prefix[t]: every flow is known to be at one vertex at TTL t (the
	// source and a chain of lone vertices with single successors).
	prefix []bool

	// Memory kept from one analysis to the next (see mdaAnalyses): the
	// flows' key and how rows, the vertices (the first nverts in use),
	// and the members of needs.
	keys   []mdaKey
	hows   []uint8
	verts  []*mdaVertex
	nverts int
	ints   []int
	// Scratch of one hop.
	vertOf  []int // per flow, its vertex at the TTL before the hop; -1 if none
	pending []int
	parent  []int
	compOf  []int // per vertex that is a root, its component; -1 if none
	sizes   []int // per component, how many vertices
	comps   [][]int
	seen    []mdaKey
	ends    []mdaKey
	asked   []mdaKey
	where   []mdaKey
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
	answers  []mdaRef
	answerAt []int
}

// mdaAnalyses keeps analyses for reuse: a planning round (and the filling
// of a trace) analyses the whole search so far, and a bulk scan does that
// for every destination.
var mdaAnalyses = sync.Pool{New: func() any { return new(mdaAnalysis) }}

// release gives a back to mdaAnalyses; a is not to be used after.
func (a *mdaAnalysis) release() {
	for i := range a.flows {
		a.flows[i].row = nil // the caller's memory
	}
	mdaAnalyses.Put(a)
}

// mdaDenseIDs bounds byID beyond the flows' number: path IDs further
// apart are looked up by binary search.
const mdaDenseIDs = 1024

func analyzeMDA(st *MDAState, confidence float64) *mdaAnalysis {
	a := mdaAnalyses.Get().(*mdaAnalysis)
	a.conf, a.maxTTL, a.gap, a.oneHop = confidence, st.MaxTTL, st.GapLimit, st.OneFirstHop
	if a.gap <= 0 {
		a.gap = mdaDefaultGap
	}
	a.maxID, a.reached, a.nverts, a.ints = 0, false, 0, a.ints[:0]
	longest, answered, n := 0, 0, 0
	for _, r := range st.Flows {
		longest = max(longest, len(r.Hops))
		for i, o := range r.Hops {
			if o.Probed && o.Addr.IsValid() {
				answered = max(answered, i+1)
				a.reached = a.reached || o.Reached
			}
		}
		if r.PathID >= 1 {
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
	ascending := true
	for _, r := range st.Flows {
		if r.PathID < 1 {
			continue
		}
		j := len(a.flows) * w
		f := mdaFlow{id: r.PathID, row: r.Hops, key: a.keys[j : j+w : j+w], how: a.hows[j : j+w : j+w]}
		f.how[0] = mdaObserved // the source
		ascending = ascending && r.PathID > a.maxID
		a.flows = append(a.flows, f)
		a.maxID = max(a.maxID, r.PathID)
	}
	if !ascending { // as the prober sets them, they are
		slices.SortFunc(a.flows, func(x, y mdaFlow) int { return x.id - y.id })
	}
	a.byID = a.byID[:0]
	if a.maxID <= len(a.flows)+mdaDenseIDs {
		a.byID = resize(a.byID, a.maxID+1)
		for i := range a.byID {
			a.byID[i] = -1
		}
		for i := range a.flows {
			a.byID[a.flows[i].id] = i
		}
	}
	a.vertOf = resize(a.vertOf, len(a.flows))
	a.hops = resize(a.hops, a.horizon+2)
	a.prefix = resize(a.prefix, a.horizon+2)
	clear(a.prefix)
	a.prefix[0] = true
	for h := 1; h <= a.horizon; h++ {
		if a.hops[h] == nil {
			a.hops[h] = new(mdaHop)
		}
		a.hop(a.hops[h], h)
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

// flow returns the index into a.flows of path ID id.
func (a *mdaAnalysis) flow(id int) (int, bool) {
	if len(a.byID) > 0 {
		if id < 0 || id >= len(a.byID) || a.byID[id] < 0 {
			return 0, false
		}
		return a.byID[id], true
	}
	// The last of the flows of id, as byID would have it.
	i, _ := slices.BinarySearchFunc(a.flows, id+1, func(f mdaFlow, id int) int { return cmp.Compare(f.id, id) })
	if i > 0 && a.flows[i-1].id == id {
		return i - 1, true
	}
	return 0, false
}

// n is the MDA stopping rule.
func (a *mdaAnalysis) n(k int) int { return MDAFlows(k, a.conf) }

// newVertex returns a vertex for key, reusing one from an earlier
// analysis (and the memory of its lists) when it can.
func (a *mdaAnalysis) newVertex(key mdaKey) *mdaVertex {
	if a.nverts == len(a.verts) {
		a.verts = append(a.verts, new(mdaVertex))
	}
	v := a.verts[a.nverts]
	a.nverts++
	*v = mdaVertex{key: key, flows: v.flows[:0], cands: v.cands[:0], succ: v.succ[:0], obsSucc: v.obsSucc[:0], inferred: v.inferred[:0]}
	return v
}

// members appends vis to a.ints and returns a.ints from start on: the
// members of a need (the caller may have appended some already), which
// last as long as the analysis.
func (a *mdaAnalysis) members(start int, vis ...int) []int {
	a.ints = append(a.ints, vis...)
	return a.ints[start:len(a.ints):len(a.ints)]
}

// vertex returns the index of the vertex k in hp.verts, -1 if none.
func (hp *mdaHop) vertex(k mdaKey) int {
	for vi, v := range hp.verts {
		if v.key == k {
			return vi
		}
	}
	return -1
}

// preds returns the first vertex of hp (by index) of which sk is a
// successor, and how many are.
func (hp *mdaHop) preds(sk mdaKey) (first, n int) {
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

// mdaFind is the find of union-find over parent, halving paths.
func mdaFind(parent []int, x int) int {
	for parent[x] != x {
		parent[x] = parent[parent[x]]
		x = parent[x]
	}
	return x
}

// addKey adds k to the set ks.
func addKey(ks []mdaKey, k mdaKey) []mdaKey {
	if slices.Contains(ks, k) {
		return ks
	}
	return append(ks, k)
}

// hop tests the vertices at h-1 with the probes at h, into hp, then sets
// the flows' vertices at h.
func (a *mdaAnalysis) hop(hp *mdaHop, h int) {
	*hp = mdaHop{ttl: h, verts: hp.verts[:0], needs: hp.needs[:0], complete: hp.complete[:0], verify: hp.verify[:0]}
	seen := a.seen[:0]       // every vertex at h-1, ended flows included
	ends := a.ends[:0]       // the successors that end the flows reaching them
	pending := a.pending[:0] // flows probed at h, not at h-1, their vertex there unknown
	for i := range a.flows {
		f := &a.flows[i]
		a.vertOf[i] = -1
		if (f.dark != 0 && h-1 >= f.dark) || (f.end != 0 && h-1 > f.end) {
			continue
		}
		if f.how[h-1] == mdaUnknown {
			if f.obs(h).Probed && !f.obs(h-1).Probed {
				pending = append(pending, i)
			}
			continue
		}
		seen = addKey(seen, f.key[h-1])
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
		o := f.obs(h)
		if !o.Probed {
			v.cands = append(v.cands, i)
			continue
		}
		v.probed++
		if !o.Addr.IsValid() {
			v.silent = true
			v.quiet++
			continue
		}
		sk := mdaKey{ttl: h, addr: o.Addr}
		if o.Reached || o.Stop {
			ends = addKey(ends, sk)
		}
		if f.how[h-1] == mdaObserved {
			v.obsN++
			v.obsSucc = addKey(v.obsSucc, sk)
		} else {
			v.inferred = append(v.inferred, i)
		}
		if !slices.Contains(v.succ, sk) {
			v.succ = append(v.succ, sk)
			if o.Reached || o.Stop {
				v.dst++
			}
			if o.Stop && len(v.succ) == 1 {
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
		o := f.obs(h)
		if !o.Addr.IsValid() {
			continue
		}
		sk := mdaKey{ttl: h, addr: o.Addr}
		if o.Reached {
			continue
		}
		p, np := hp.preds(sk)
		if vi := hp.vertex(mdaKey{ttl: h - 1, addr: o.Addr}); o.Stop && vi >= 0 && a.leadsTo(f, h-2, hp.verts[vi].key) {
			p, np = vi, 1
		}
		if hp.meshFree && !o.Stop && np == 0 && f.how[h-2] != mdaUnknown {
			// A vertex not seen from h-1 yet: one flow finds its
			// predecessor, the others wait for it.
			if slices.Contains(asked, sk) {
				waiting++
				continue
			}
			asked = append(asked, sk)
		}
		if (hp.meshFree || o.Stop) && np == 1 && !hp.verts[p].key.anon() && a.leadsTo(f, h-2, hp.verts[p].key) {
			v := hp.verts[p]
			f.how[h-1], f.key[h-1] = mdaInferred, v.key
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
					parent[mdaFind(parent, vi)] = mdaFind(parent, o)
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
		r := mdaFind(parent, vi)
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
		ci := compOf[mdaFind(parent, vi)]
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
			hp.needs = append(hp.needs, mdaNeed{members: a.members(len(a.ints), vi), short: 1, avail: len(v.cands)})
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
		if need := a.n(k); total < need {
			// The flows for the test as a whole go to the members that
			// got the fewest first: the rest waits for them.
			hp.needs = append(hp.needs, mdaNeed{members: all, short: need - total, avail: avail, placed: true})
			ok = false
			comps = nil
		} else if uniform {
			// The meshing test. MDA-Lite sees mdaPhi flows at each
			// vertex: against a meshed hop whose vertices have two
			// successors each, every flow after a vertex's first shows
			// the other one half the time, so it misses with odds of
			// 2^-(w(mdaPhi-1)) for w vertices. The same number of such
			// flows over the hop as a whole misses with the same odds,
			// and a branch that the hash gives a small share of the
			// flows does not cost 1/share fresh flows for its second.
			extra := 0
			for _, vi := range all {
				v := hp.verts[vi]
				if v.direct() < 1 {
					hp.needs = append(hp.needs, mdaNeed{members: a.members(len(a.ints), vi), short: 1, avail: len(v.cands)})
					ok = false
					continue
				}
				extra += v.direct() - 1
			}
			if want := len(all) * (mdaPhi - 1); extra < want {
				hp.needs = append(hp.needs, mdaNeed{members: all, short: want - extra, avail: avail})
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
			hp.needs = append(hp.needs, mdaNeed{members: members, short: n1 - total, avail: avail})
			continue
		}
		// Node control. Flows placed here by where they went are left
		// out: a successor shared with another vertex, not seen from
		// this one yet, would take flows of the other for its own.
		for _, vi := range members {
			v := hp.verts[vi]
			need := a.n(v.successors())
			if v.direct() >= need {
				v.passed = true
				v.single = len(v.succ) == 1 && v.dst == 0
				continue
			}
			hp.needs = append(hp.needs, mdaNeed{members: a.members(len(a.ints), vi), short: need - v.direct(), avail: len(v.cands)})
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
		if o := f.obs(h); o.Probed {
			f.how[h] = mdaObserved
			f.key[h] = mdaKey{ttl: h, addr: o.Addr}
			if !o.Addr.IsValid() {
				f.run++
				if f.run >= a.gap && f.dark == 0 {
					f.dark = h - f.run + 1
				}
				continue
			}
			f.run = 0
			if o.Reached {
				f.end, f.reached = h, true
			} else if o.Stop {
				f.end = h
			}
			continue
		}
		f.run = 0
		if f.how[h-1] == mdaUnknown || !f.goesOn(h-1) {
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
			f.how[h], f.key[h] = mdaInferred, v.succ[0]
		case v.toDst:
			f.how[h], f.key[h] = mdaInferred, v.succ[0]
			f.end, f.reached = h, !v.stops
		}
	}
}

// leadsTo reports whether the vertex of f at t is known and has p among
// its successors seen.
func (a *mdaAnalysis) leadsTo(f *mdaFlow, t int, p mdaKey) bool {
	if t < 0 || f.how[t] == mdaUnknown || !f.goesOn(t) {
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
func (a *mdaAnalysis) appendOnward(out, cands []int, h int) []int {
	for _, i := range cands {
		if !a.flows[i].obs(h + 1).Probed {
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
func (a *mdaAnalysis) checkInferred(hp *mdaHop) {
	if hp.ttl == 2 && a.oneHop {
		return
	}
	for _, v := range hp.verts {
		if len(v.inferred) == 0 {
			continue
		}
		where := a.where[:0]
		for _, i := range v.inferred {
			sk := mdaKey{ttl: hp.ttl, addr: a.flows[i].obs(hp.ttl).Addr}
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
func (a *mdaAnalysis) satisfied() bool {
	for h := 1; h <= a.horizon; h++ {
		if hp := a.hops[h]; len(hp.needs) > 0 || len(hp.complete) > 0 || len(hp.verify) > 0 {
			return false
		}
	}
	return true
}

// rowEnd returns the last TTL of the row of f and whether every hop up to
// it is known (probed or inferred).
func (a *mdaAnalysis) rowEnd(f *mdaFlow) (end int, complete bool) {
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
		for end > 0 && f.how[end] == mdaUnknown {
			end--
		}
		return end, false
	}
	for h := 1; h <= end && h < len(f.how); h++ {
		if f.how[h] == mdaUnknown {
			return end, false
		}
	}
	return end, true
}

// share is the fraction of the flows known at the TTL of hp's vertices
// that the members got (at least their share of an even split).
func (hp *mdaHop) share(members []int) float64 {
	if hp.known == 0 {
		return 1
	}
	got := 0
	for _, vi := range members {
		got += len(hp.verts[vi].flows)
	}
	return max(float64(got)/float64(hp.known), float64(len(members))/float64(len(hp.verts)))
}

// plan returns the cells of the next round.
func (a *mdaAnalysis) plan(maxPaths int) []Cell {
	cells := a.cells[:0]
	plannedAt := resize(a.plannedAt, a.horizon+2) // path IDs planned per TTL
	for ttl := range plannedAt {
		plannedAt[ttl] = plannedAt[ttl][:0]
	}
	a.planWords = (a.horizon+1)/64 + 1
	a.inPlan = resize(a.inPlan, len(a.flows)*a.planWords)
	clear(a.inPlan)
	add := func(id, ttl int) bool {
		if ttl < 1 || ttl > a.maxTTL {
			return false
		}
		s, ok := a.slot(id)
		if a.planned(s, ttl) || ok && a.flows[s].obs(ttl).Probed {
			return false
		}
		a.markPlanned(s, ttl)
		cells = append(cells, Cell{PathID: id, TTL: ttl})
		plannedAt[ttl] = append(plannedAt[ttl], id)
		return true
	}
	nextID := a.maxID + 1
	fresh := func() (int, bool) {
		if nextID > maxPaths {
			return 0, false
		}
		nextID++
		return nextID - 1, true
	}
	known := func(id, ttl int) bool {
		fi, ok := a.flow(id)
		return ok && a.flows[fi].how[ttl] != mdaUnknown
	}
	// direct says that fresh flows probed at h alone are placed at h-1
	// by where they go (backwards, without meshing), their vertex at h-2
	// being the one there.
	direct := func(h int) bool {
		return h >= 2 && h <= a.horizon && a.hops[h].meshFree && a.prefix[h-2]
	}
	// Fresh flows come in one batch a round, for the shallowest TTL that
	// needs some, but for those probed at a TTL alone that the batch
	// left to them (leftFor).
	freshDone, leftFor := false, 0
	for h := 1; h <= a.horizon; h++ {
		hp := a.hops[h]
		for _, i := range hp.verify {
			add(a.flows[i].id, h-1)
		}
		for _, i := range hp.complete {
			add(a.flows[i].id, h)
		}
		rem := resize(a.rem, len(hp.needs))
		a.rem = rem
		for ni, nd := range hp.needs {
			rem[ni] = nd.short - a.takeKnown(hp, nd, h, add)
		}
		// Flows sent at h-1 this round whose vertex there is not known
		// yet reach a member of a whole need, whichever it is.
		for ni, nd := range hp.needs {
			if !nd.whole {
				continue
			}
			for _, id := range plannedAt[h-1] {
				if rem[ni] <= 0 {
					break
				}
				if !known(id, h-1) && add(id, h) {
					rem[ni]--
				}
			}
		}
		short := false
		for _, r := range rem {
			short = short || r > 0
		}
		if !short || freshDone && leftFor != h {
			continue
		}
		// count returns the fresh flows that the needs ask for, those that
		// sel selects, at the share of flows each gets.
		count := func(sel func(mdaNeed) bool) int {
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
		placed := func(nd mdaNeed) bool { return nd.placed }
		// directly probes fresh flows at h alone, placed at h-1 by where
		// they go.
		directly := func() {
			for range count(placed) {
				id, ok := fresh()
				if !ok {
					break
				}
				add(id, h)
			}
		}
		if freshDone {
			// Left to these by the batch at h-1, sized for the rest.
			directly()
			continue
		}
		freshDone = true
		if a.prefix[h-1] {
			// Fresh flows are known to pass the one vertex at h-1: probe
			// them at h. Enough for its test, and for the vertices at h
			// that lack flows, at the share of flows they get (but for a
			// hop-level test there, left to flows probed there alone).
			n := count(func(mdaNeed) bool { return true })
			if h+1 <= a.horizon {
				next := a.hops[h+1]
				for _, nd := range next.needs {
					if direct(h+1) && nd.placed {
						continue
					}
					if r := nd.short - nd.avail; r > 0 {
						n = max(n, int(math.Ceil(float64(r)/next.share(nd.members))))
					}
				}
				if direct(h + 1) {
					leftFor = h + 1
				}
			}
			for range n {
				id, ok := fresh()
				if !ok {
					break
				}
				add(id, h)
			}
			continue
		}
		forward := func(mdaNeed) bool { return true }
		if direct(h) {
			directly()
			forward = func(nd mdaNeed) bool { return !nd.placed }
		}
		// Bring fresh flows forward to the vertices at h-1 that lack
		// flows: probe them at every TTL up to h-1 where their hop cannot
		// be inferred (forwards, or backwards from the next one).
		n := count(forward)
		if n == 0 {
			continue
		}
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
		if len(ttls) >= 2 && ttls[1] == ttls[0]+1 && direct(ttls[1]) {
			ttls = ttls[1:]
		}
		for range n {
			id, ok := fresh()
			if !ok {
				break
			}
			for _, j := range ttls {
				add(id, j)
			}
			// Any vertex at h-1 serves a whole need: on to h.
			for ni, nd := range hp.needs {
				if rem[ni] > 0 && nd.whole && forward(nd) {
					add(id, h)
					rem[ni]--
					break
				}
			}
		}
	}
	a.cells, a.plannedAt = cells, plannedAt
	if len(cells) == 0 {
		return nil
	}
	slices.SortFunc(cells, func(x, y Cell) int {
		if x.PathID != y.PathID {
			return x.PathID - y.PathID
		}
		return x.TTL - y.TTL
	})
	return slices.Clone(cells)
}

// slot returns the row of path ID id in the cells planned: the index of
// its flow (known), or for a fresh one, numbered after maxID, the rows
// after the flows'.
func (a *mdaAnalysis) slot(id int) (slot int, known bool) {
	if fi, ok := a.flow(id); ok {
		return fi, true
	}
	return len(a.flows) + id - a.maxID - 1, false
}

// planned reports whether the cell of slot at ttl is planned. The cells
// planned are a bitset of planWords words per slot, for TTLs up to the
// horizon (and one beyond): plan asks for no others.
func (a *mdaAnalysis) planned(slot, ttl int) bool {
	w := slot*a.planWords + ttl/64
	return w < len(a.inPlan) && a.inPlan[w]&(1<<(ttl%64)) != 0
}

// plannedID reports whether the cell (id, ttl) is planned.
func (a *mdaAnalysis) plannedID(id, ttl int) bool {
	s, _ := a.slot(id)
	return a.planned(s, ttl)
}

// markPlanned records that the cell of slot at ttl is planned.
func (a *mdaAnalysis) markPlanned(slot, ttl int) {
	w := slot*a.planWords + ttl/64
	if w >= len(a.inPlan) {
		a.inPlan = append(a.inPlan, make([]uint64, (slot+1)*a.planWords-len(a.inPlan))...)
	}
	a.inPlan[w] |= 1 << (ttl % 64)
}

// takeKnown plans at h up to nd.short of the flows known at the members of
// nd and not probed at h, those already planned first, then spreading them
// over the members that got the fewest; it returns how many it took.
func (a *mdaAnalysis) takeKnown(hp *mdaHop, nd mdaNeed, h int, add func(id, ttl int) bool) int {
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
		add(a.flows[hp.verts[nd.members[best]].cands[next[best]]].id, h)
		next[best]++
		got[best]++
		taken++
	}
	return taken
}

// mdaRef is how the vertex at addr (at some TTL) answered: the ICMP type
// and code of its first answer.
type mdaRef struct {
	addr      netip.Addr
	typ, code uint8
}

// indexAnswers records how each vertex of t answered, for answer: the
// first of its probed hops, in the order of t's flows.
func (a *mdaAnalysis) indexAnswers(t *Trace) {
	longest := 0
	for _, f := range t.Flows {
		longest = max(longest, len(f.Hops))
	}
	a.answers = a.answers[:0]
	a.answerAt = resize(a.answerAt, longest+2)
	a.answerAt[0] = 0
	for ttl := 1; ttl <= longest; ttl++ {
		from := len(a.answers)
		a.answerAt[ttl] = from
		for _, f := range t.Flows {
			if ttl > len(f.Hops) {
				continue
			}
			h := &f.Hops[ttl-1]
			if !h.Addr.IsValid() || h.Inferred {
				continue
			}
			if !slices.ContainsFunc(a.answers[from:], func(x mdaRef) bool { return x.addr == h.Addr }) {
				a.answers = append(a.answers, mdaRef{h.Addr, h.ICMPType, h.ICMPCode})
			}
		}
	}
	a.answerAt[longest+1] = len(a.answers)
}

// answer returns how the vertex k answered, as indexAnswers found it.
func (a *mdaAnalysis) answer(k mdaKey) (mdaRef, bool) {
	if k.ttl < 1 || k.ttl+1 >= len(a.answerAt) {
		return mdaRef{}, false
	}
	for _, x := range a.answers[a.answerAt[k.ttl]:a.answerAt[k.ttl+1]] {
		if x.addr == k.addr {
			return x, true
		}
	}
	return mdaRef{}, false
}
