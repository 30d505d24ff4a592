package mda

import (
	"net/netip"
	"sync"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// The analysis of a search goes TTL by TTL: at each, the vertices of the
// TTL before are tested with the probes at it (testHop, in hop.go), which
// tells where the flows are at this TTL, probed or inferred. Plan then
// asks for what the failed tests lack (plan.go), and FillInferred writes
// the hops inferred into the trace (fill.go).

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
	// pp says that the flow passed a per-packet load balancer (or a
	// vertex behind one) at a TTL tested so far.
	pp bool
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

// analyzer holds the analysis of one destination's search, and the memory
// it reuses from one analysis to the next.
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
	// (see planned); the path IDs given out, and the batch of fresh flows.
	cells     []Cell
	plannedAt [][]int
	inPlan    []uint64
	planWords int
	rem       []int
	ttls      []int
	got       []int
	next      []int
	nextID    int
	maxPaths  int
	freshDone bool
	leftFor   int
	repeats   []Cell
	// The per-packet test (perpacket.go): whether it is on, the later
	// answers from other addresses, and the scratch of one hop.
	perPacket bool
	others    []analysis.OtherAnswer
	// The stop set (stopset.go) and, from plan, whether a need was left
	// to another destination's search; claims is scratch.
	stops   *StopSet
	waiting bool
	dst     netip.Addr
	// firstHop is what answered a probe at TTL 1 (with oneHop).
	firstHop netip.Addr
	claims   []node
	union    []node
	owners   []netip.Addr
	upv      []*vertex
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
	a.others = nil
	analyzers.Put(a)
}

// analyze returns the analysis of st at the given confidence, to be
// released after use: its flows, then its hops tested TTL by TTL.
func analyze(st *State, confidence float64) *analyzer {
	a := analyzers.Get().(*analyzer)
	a.conf, a.maxTTL, a.gap, a.oneHop = confidence, st.MaxTTL, st.GapLimit, st.OneFirstHop
	a.perPacket, a.others = st.PerPacket, st.Others
	a.stops, a.waiting, a.dst = st.Stops, false, st.Dst
	if a.gap <= 0 {
		a.gap = defaultGap
	}
	a.maxID, a.reached, a.nverts, a.ints = 0, false, 0, a.ints[:0]
	a.loadFlows(st, a.measure(st))
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

// measure sets the horizon of the analysis, whether the destination
// answered, and MaxTTL when the State leaves it to the rows; it returns
// the number of path IDs taking part.
func (a *analyzer) measure(st *State) (n int) {
	longest, answered := 0, 0
	a.firstHop = netip.Addr{}
	for _, r := range st.Rows {
		longest = max(longest, len(r))
		if len(r) > 0 && r[0].Sent() && !a.firstHop.IsValid() {
			a.firstHop = r[0].From()
		}
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
	return n
}

// loadFlows makes a flow of each of the n rows of st that take part, in
// the order of their path IDs, and indexes them by path ID.
func (a *analyzer) loadFlows(st *State, n int) {
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
	*v = vertex{key: key, flows: v.flows[:0], cands: v.cands[:0], succ: v.succ[:0], obsSucc: v.obsSucc[:0], inferred: v.inferred[:0], extra: v.extra[:0], pending: v.pending[:0]}
	return v
}

// members appends vis to a.ints and returns a.ints from start on: the
// members of a need (the caller may have appended some already), which
// last as long as the analysis.
func (a *analyzer) members(start int, vis ...int) []int {
	a.ints = append(a.ints, vis...)
	return a.ints[start:len(a.ints):len(a.ints)]
}

// satisfied reports whether every test passed and every row used is
// complete.
func (a *analyzer) satisfied() bool {
	for h := 1; h <= a.horizon; h++ {
		if hp := a.hops[h]; len(hp.needs) > 0 || len(hp.complete) > 0 || len(hp.verify) > 0 || len(hp.again) > 0 {
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
