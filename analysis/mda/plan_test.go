package mda

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// mdaAddr is the address of a router named in a test row.
func mdaAddr(name string) netip.Addr {
	if name == "dst" {
		return simDst
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	x := h.Sum32()
	return netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)})
}

// testSearch is a search made up by a test: its probes in a Collector, and
// the State the planner gets of them.
type testSearch struct {
	State
	col *analysis.Collector
}

// state hands the Collector's rows to the State, as the prober does before
// each round, and returns it.
func (s *testSearch) state() *State {
	s.Rows = s.col.Rows(s.Rows[:0])
	return &s.State
}

// set records the probe of path ID p at ttl and its answer, tok in the
// words of mdaRows.
func (s *testSearch) set(p, ttl int, tok string) {
	s.col.Sent(p, ttl)
	switch {
	case tok == "*":
	case tok == "dst":
		s.col.Reply(p, ttl, simDst, time.Millisecond, icmpUnreachable, codePortUnreachable, true)
	case strings.HasSuffix(tok, "!"):
		s.col.Reply(p, ttl, mdaAddr(strings.TrimSuffix(tok, "!")), time.Millisecond, icmpUnreachable, 13, false)
	default:
		s.col.Reply(p, ttl, mdaAddr(tok), time.Millisecond, icmpTimeExceeded, 0, false)
	}
}

// trace returns the Trace of the probes, as the Collector makes it.
func (s *testSearch) trace() *analysis.Trace {
	return s.col.Trace(time.Time{}, time.Time{}, false)
}

// mdaRows builds a search from rows, row i for path ID i+1: per TTL, "-"
// for not probed, "*" for silent, "dst" for the destination, "x!" for an
// unreachable from x, else a router's name.
func mdaRows(oneHop bool, rows ...string) *testSearch {
	s := &testSearch{
		State: State{MaxTTL: 30, GapLimit: 3, OneFirstHop: oneHop},
		col:   analysis.NewCollector(simDst, "test", netip.MustParseAddr("192.0.2.100"), 4096, 30, 33000, 33434),
	}
	for i, r := range rows {
		for j, tok := range strings.Fields(r) {
			if tok != "-" {
				s.set(i+1, j+1, tok)
			}
		}
	}
	return s
}

// cellsAt returns the path IDs of cells at ttl.
func cellsAt(cells []Cell, ttl int) []int {
	var ids []int
	for _, c := range cells {
		if c.TTL == ttl {
			ids = append(ids, c.PathID)
		}
	}
	return ids
}

func idRange(from, to int) []int {
	var ids []int
	for i := from; i <= to; i++ {
		ids = append(ids, i)
	}
	return ids
}

// The first round after path ID 1 found the destination: the next flows
// at every TTL of the path at once, enough for one successor per vertex;
// not at TTL 1 when it is known (OneFirstHop), and not at the destination's
// TTL: r3's only successor is the destination.
func TestPlanFirstRound(t *testing.T) {
	for _, oneHop := range []bool{true, false} {
		next, complete := Plan(mdaRows(oneHop, "r1 a1 r3 dst").state(), 0.95, 256)
		if complete {
			t.Errorf("OneFirstHop %v: complete after one flow", oneHop)
		}
		want := []int{1, 2, 3}
		if oneHop {
			want = []int{2, 3}
		}
		for ttl := 1; ttl <= 5; ttl++ {
			got := cellsAt(next, ttl)
			if slices.Contains(want, ttl) {
				if !slices.Equal(got, idRange(2, 6)) {
					t.Errorf("OneFirstHop %v, TTL %d: path IDs %v, want 2-6", oneHop, ttl, got)
				}
			} else if len(got) > 0 {
				t.Errorf("OneFirstHop %v, TTL %d: path IDs %v, want none", oneHop, ttl, got)
			}
		}
	}
}

// After a vertex known to be alone at its TTL (r1), fresh flows are probed
// at the next TTL only: with 3 successors seen, r1 needs 16 flows, so 10
// more; the branches, all going to r3, passed together with 6 flows.
func TestPlanFreshFlowsAfterSingleVertex(t *testing.T) {
	st := mdaRows(true,
		"r1 a1 r3 dst",
		"- a2 r3",
		"- a3 r3",
		"- a1 r3",
		"- a2 r3",
		"- a1 r3",
	)
	next, _ := Plan(st.state(), 0.95, 256)
	want := []Cell{}
	for id := 7; id <= 16; id++ {
		want = append(want, Cell{id, 2})
	}
	if !slices.Equal(next, want) {
		t.Errorf("plan %v, want %v", next, want)
	}
	// The cap on path IDs.
	next, _ = Plan(st.state(), 0.95, 10)
	if !slices.Equal(next, want[:4]) {
		t.Errorf("with 10 path IDs at most: plan %v, want %v", next, want[:4])
	}
	for id := 7; id <= 10; id++ {
		st.set(id, 2, fmt.Sprintf("a%d", id%3+1))
	}
	if next, complete := Plan(st.state(), 0.95, 10); next != nil || complete {
		t.Errorf("path IDs used up: plan %v, complete %v; want none, incomplete", next, complete)
	}
	st.Rounds = MaxRounds
	if next, complete := Plan(st.state(), 0.95, 256); next != nil || complete {
		t.Errorf("rounds used up: plan %v, complete %v; want none, incomplete", next, complete)
	}
}

// fourWay returns 21 flows over r1's 4 branches, converging on r3, the
// first probeAt3 of them probed at TTL 3.
func fourWay(probeAt3 int) *testSearch {
	rows := []string{"r1 a1 r3 dst"}
	for p := 2; p <= 21; p++ {
		r := fmt.Sprintf("- a%d", (p-1)%4+1)
		if p <= probeAt3 {
			r += " r3"
		}
		rows = append(rows, r)
	}
	return mdaRows(true, rows...)
}

// Branches converging on one vertex are tested together: 6 flows over the
// 4 of them, each probed at least once, stand for all of them (as in
// MDA-Lite), and the other flows are inferred to go through r3 to the
// destination.
func TestPlanConvergingBranches(t *testing.T) {
	st := fourWay(6)
	if next, complete := Plan(st.state(), 0.95, 256); next != nil || !complete {
		t.Fatalf("plan %v, complete %v; want none, complete", next, complete)
	}
	tr := st.trace()
	if partial := FillInferred(tr, st.state(), 0.95); partial != nil {
		t.Errorf("partial rows %v", partial)
	}
	for _, f := range tr.Flows {
		if !f.Reached || f.ReachedTTL != 4 || len(f.Hops) != 4 {
			t.Fatalf("path ID %d: reached %v at %d, %d hops; want reached at 4", f.PathID, f.Reached, f.ReachedTTL, len(f.Hops))
		}
		want := []string{"r1", fmt.Sprintf("a%d", (f.PathID-1)%4+1), "r3", "dst"}
		for i, h := range f.Hops {
			if h.Addr != mdaAddr(want[i]) || h.TTL != i+1 {
				t.Errorf("path ID %d TTL %d: %v, want %s", f.PathID, i+1, h.Addr, want[i])
			}
			probed := f.PathID == 1 || i == 1 || (i == 2 && f.PathID <= 6)
			if h.Inferred == probed {
				t.Errorf("path ID %d TTL %d: inferred %v", f.PathID, i+1, h.Inferred)
			}
			if h.Inferred && (h.RTT != 0 || h.ICMPType == 0) {
				t.Errorf("path ID %d TTL %d: inferred hop %+v", f.PathID, i+1, h)
			}
		}
	}
	if up := tr.UniquePaths(); len(up) != 4 {
		t.Errorf("%d distinct paths, want 4", len(up))
	}
	// With 5 flows probed at TTL 3, one more: at a branch with the fewest.
	next, _ := Plan(fourWay(5).state(), 0.95, 256)
	if !slices.Equal(next, []Cell{{6, 3}}) {
		t.Errorf("5 flows at TTL 3: plan %v, want [{6 3}]", next)
	}
	// A branch never probed beyond gets one flow, to see where it goes.
	next, _ = Plan(fourWay(3).state(), 0.95, 256)
	if !slices.Contains(next, Cell{4, 3}) {
		t.Errorf("a4 never probed at TTL 3: plan %v, want {4 3} in it", next)
	}
}

// answer records what path(p) says path ID p meets at ttl, in the tokens
// of mdaRows (past the end of the path: its last token).
func (s *testSearch) answer(p, ttl int, path func(p int) []string) {
	hops := path(p)
	s.set(p, ttl, hops[min(ttl, len(hops))-1])
}

// mdaFinish plays Plan's rounds on st against path until it asks for
// nothing; it returns the probes sent and fails unless the search is
// complete with every row complete and equal to path.
func mdaFinish(t *testing.T, st *testSearch, path func(p int) []string) int {
	t.Helper()
	probes := 0
	for {
		next, complete := Plan(st.state(), 0.95, 256)
		if len(next) == 0 {
			if !complete {
				t.Fatalf("search stopped incomplete")
			}
			break
		}
		if st.Rounds++; st.Rounds > 10 {
			t.Fatalf("does not stop: %v", next)
		}
		for _, c := range next {
			st.answer(c.PathID, c.TTL, path)
		}
		probes += len(next)
	}
	tr := st.trace()
	if partial := FillInferred(tr, st.state(), 0.95); partial != nil {
		t.Errorf("partial rows %v", partial)
	}
	for _, f := range tr.Flows {
		want := path(f.PathID)
		if !f.Reached || len(f.Hops) != len(want) {
			t.Errorf("path ID %d: %d hops, reached %v; want %v", f.PathID, len(f.Hops), f.Reached, want)
			continue
		}
		for i, h := range f.Hops {
			if h.Addr != mdaAddr(want[i]) {
				t.Errorf("path ID %d TTL %d: %v, want %s", f.PathID, i+1, h.Addr, want[i])
			}
		}
	}
	return probes
}

// nestedPath is the nested diamond of TestPlanHopLevel: odd path IDs
// through b1 (then c1, c2 in turn), even ones through b2 (c3, c4), all
// converging on r3 before the destination.
func nestedPath(p int) []string {
	b, c := "b1", "c1"
	if p%2 == 0 {
		b, c = "b2", "c3"
		if (p/2)%2 == 0 {
			c = "c4"
		}
	} else if (p/2)%2 == 1 {
		c = "c2"
	}
	return []string{"r1", b, c, "r3", "dst"}
}

// A nested diamond with its vertices' successors their own (no meshing)
// and as many each (uniform) is tested as a whole, as in MDA-Lite: b1 and
// b2 have 4 successors in all, so 21 flows must be probed at TTL 3 over the
// two of them, not 11 through each. The flows known at them are probed
// first; the others are fresh flows probed at TTL 3 alone (TTL 1 is
// known, TTL 2 is inferred from the vertex they reach, c1..c4 each seen
// from one of b1, b2).
func TestPlanHopLevel(t *testing.T) {
	st := mdaRows(true,
		"r1 b1 c1 r3 dst", // 1
		"- b2 c3",         // 2
		"- b1 c2",         // 3
		"- b2 c4",         // 4
		"- b1 c1",         // 5
		"- b2",            // 6
		"- b1",            // 7
		"- b2",            // 8
		"- b1",            // 9
		"- b2",            // 10
		"- b1",            // 11
	)
	next, _ := Plan(st.state(), 0.95, 256)
	if got := cellsAt(next, 3); !slices.Equal(got, idRange(6, 21)) {
		t.Errorf("TTL 3: path IDs %v, want the known flows 6-11 and 10 fresh ones", got)
	}
	for ttl := 1; ttl <= 2; ttl++ {
		if got := cellsAt(next, ttl); len(got) > 0 {
			t.Errorf("TTL %d: path IDs %v, want none", ttl, got)
		}
	}
	// Rows that cannot be completed yet are reported.
	partial := FillInferred(st.trace(), st.state(), 0.95)
	if want := idRange(2, 11); !slices.Equal(partial, want) {
		t.Errorf("partial rows %v, want %v", partial, want)
	}
	for _, c := range next {
		st.answer(c.PathID, c.TTL, nestedPath)
	}
	st.Rounds++
	mdaFinish(t, st, nestedPath)
	tr := st.trace()
	FillInferred(tr, st.state(), 0.95)
	for _, f := range tr.Flows {
		if f.PathID >= 12 && !f.Hops[1].Inferred {
			t.Errorf("path ID %d: TTL 2 probed, want it inferred", f.PathID)
		}
	}
}

// The branches of the lab's diamonds never converge before the destination
// (each router answers from the address of the interface the probe came in
// by): 4 chains a_k -> r3.k. r1's test sends 21 flows to TTL 2, and the
// same flows at TTL 3 are the hop-level test of a1..a4 (n_4, not n_1 = 6
// through each); then each r3.k needs one flow to see the destination.
func TestPlanChains(t *testing.T) {
	path := func(p int) []string {
		k := (p-1)%4 + 1
		return []string{"r1", fmt.Sprintf("a%d", k), fmt.Sprintf("r3.%d", k), "dst"}
	}
	rows := []string{"r1 a1 r3.1 dst"}
	for p := 2; p <= 21; p++ {
		r := "- " + path(p)[1]
		if p <= 6 {
			r += " " + path(p)[2]
		}
		rows = append(rows, r)
	}
	st := mdaRows(true, rows...)
	next, _ := Plan(st.state(), 0.95, 256)
	if got := cellsAt(next, 3); !slices.Equal(got, idRange(7, 21)) {
		t.Errorf("TTL 3: path IDs %v, want 7-21", got)
	}
	if got := cellsAt(next, 2); len(got) > 0 {
		t.Errorf("TTL 2: path IDs %v, want none", got)
	}
	// r3.2, r3.3 and r3.4: one flow each.
	if got := cellsAt(next, 4); len(got) != 3 {
		t.Errorf("TTL 4: path IDs %v, want 3", got)
	}
	for _, c := range next {
		st.answer(c.PathID, c.TTL, path)
	}
	st.Rounds++
	if probes := len(next) + mdaFinish(t, st, path); probes != 15+3 {
		t.Errorf("%d probes after r1's test, want 18", probes)
	}
}

// The meshing test asks for as many flows after each vertex's first as
// MDA-Lite's two per vertex would give, over the hop as a whole: a branch
// the hash gives one flow in 22 passes without fresh flows hunting for its
// second.
func TestPlanMeshingEvidence(t *testing.T) {
	rows := []string{"r1 a1 r3.1 dst", "- a4 r3.4"}
	for p := 3; p <= 22; p++ {
		k := p%3 + 1
		rows = append(rows, fmt.Sprintf("- a%d r3.%d", k, k))
	}
	st := mdaRows(true, rows...)
	next, _ := Plan(st.state(), 0.95, 256)
	for _, c := range next {
		if c.TTL != 4 {
			t.Errorf("plan %v: want only TTL 4 (r3.2, r3.3, r3.4 to the destination)", next)
			break
		}
	}
	if got := cellsAt(next, 4); len(got) != 3 {
		t.Errorf("TTL 4: path IDs %v, want 3", got)
	}
}

// A successor reached from two vertices (meshing): no hop-level test and
// no inference backwards. Each vertex is tested on its own (node control),
// and a flow probed at TTL 3 alone is probed at TTL 2 to place it.
func TestPlanMeshing(t *testing.T) {
	st := mdaRows(true,
		"r1 a1 b1 r3 dst", // 1
		"- a2 b2",         // 2
		"- a1 b2",         // 3: b2 from a1 and a2
		"- a2 b3",         // 4
		"- a1 b1",         // 5
		"- a2 b3",         // 6
		"- a1",            // 7
		"- a2",            // 8
		"- a1",            // 9
		"- a2",            // 10
		"- a1",            // 11
		"- - b1",          // 12
	)
	next, _ := Plan(st.state(), 0.95, 256)
	if !slices.Contains(next, Cell{12, 2}) {
		t.Errorf("plan %v, want {12 2} in it", next)
	}
	// a1 and a2, 2 successors each: 11 flows each, 3 known so far, so all
	// the known flows and fresh ones brought to TTL 2 first.
	if got := cellsAt(next, 3); !slices.Equal(got, idRange(7, 11)) {
		t.Errorf("TTL 3: path IDs %v, want the known flows 7-11", got)
	}
	for _, c := range next {
		if c.PathID > 12 && c.TTL != 2 {
			t.Errorf("fresh flow probed at %v, want TTL 2 only", c)
		}
	}
}

// Vertices whose successors are their own but not as many each (b1 two,
// b2 one): once the hop as a whole got its flows, node control, on flows
// seen at each vertex only (those placed by where they went do not count:
// a successor of b1 that b2 shares unseen would pass b2's flows off as
// b1's).
func TestPlanNodeControl(t *testing.T) {
	path := func(p int) []string {
		switch {
		case p%2 == 0:
			return []string{"r1", "b2", "c3", "r3", "dst"}
		case p%4 == 1:
			return []string{"r1", "b1", "c1", "r3", "dst"}
		}
		return []string{"r1", "b1", "c2", "r3", "dst"}
	}
	rows := []string{"r1 b1 c1 r3 dst"}
	for p := 2; p <= 27; p++ {
		h := path(p)
		switch {
		case p <= 4:
			rows = append(rows, "- "+h[1]+" "+h[2])
		case p <= 11:
			rows = append(rows, "- "+h[1])
		default:
			rows = append(rows, "- - "+h[2]) // probed at TTL 3 alone
		}
	}
	st := mdaRows(true, rows...)
	// The flows probed at TTL 3 alone are placed at TTL 2 by where they
	// went.
	a := analyze(st.state(), 0.95)
	defer a.release()
	for p := 12; p <= 27; p++ {
		if f := a.flows[a.byID[p]]; f.how[2] != howInferred || f.key[2].addr != mdaAddr(path(p)[1]) {
			t.Errorf("path ID %d: TTL 2 %v (%d), want %s inferred", p, f.key[2].addr, f.how[2], path(p)[1])
		}
	}
	// 20 flows at TTL 3 pass the hop-level test (n_3), but b1 needs 11
	// flows seen there, b2 6: the known ones, then fresh flows probed at
	// TTL 2 first.
	next, _ := Plan(st.state(), 0.95, 256)
	if got := cellsAt(next, 3); !slices.Equal(got, idRange(5, 11)) {
		t.Errorf("TTL 3: path IDs %v, want the known flows 5-11", got)
	}
	if got := cellsAt(next, 2); len(got) == 0 || got[0] != 28 {
		t.Errorf("TTL 2: path IDs %v, want fresh ones from 28", got)
	}
	for _, c := range next {
		st.answer(c.PathID, c.TTL, path)
	}
	st.Rounds++
	mdaFinish(t, st, path)
}

// A vertex concluded to have one successor when it has two (the 5% chance
// of the rule: r1 sent its first 6 flows to b2) makes flows inferred at b2
// reach b1's successors; one of them is probed at TTL 2 to check.
func TestPlanChecksInference(t *testing.T) {
	st := mdaRows(true,
		"r1 b2 c3 r3 dst",
		"- b2 c4",
		"- b2 c3",
		"- b2 c4",
		"- b2 c3",
		"- b2 c4",
		"- - c1", // 7: inferred at b2, but no flow probed there reached c1
		"- - c3",
	)
	next, _ := Plan(st.state(), 0.95, 256)
	if !slices.Contains(next, Cell{7, 2}) || slices.Contains(next, Cell{8, 2}) {
		t.Errorf("plan %v, want {7 2} (and not {8 2}) in it", next)
	}
	st.set(7, 2, "b1")
	next, _ = Plan(st.state(), 0.95, 256)
	// r1 has 2 successors now: every flow is probed at TTL 2.
	if got := cellsAt(next, 2); !slices.Contains(got, 8) {
		t.Errorf("after b1 showed up: TTL 2 path IDs %v, want 8 in them", got)
	}
}

// Flows through a silent router are followed beyond it, and a silence is
// no evidence where other flows answered.
func TestPlanSilence(t *testing.T) {
	rows := []string{"r1 a1 r3 dst"}
	for p := 2; p <= 21; p++ {
		switch p % 4 {
		case 0:
			rows = append(rows, "- * ") // a silent branch
		default:
			rows = append(rows, fmt.Sprintf("- a%d r3", p%4))
		}
	}
	st := mdaRows(true, rows...)
	next, _ := Plan(st.state(), 0.95, 256)
	// r1: 3 successors answered by 16 flows: done; the 5 silent flows are
	// probed at TTL 3.
	if got := cellsAt(next, 3); !slices.Equal(got, []int{4, 8, 12, 16, 20}) {
		t.Errorf("TTL 3: path IDs %v, want the silent flows", got)
	}
	if len(next) != 5 {
		t.Errorf("plan %v, want only the silent flows at TTL 3", next)
	}
}

// A branch ending in an unreachable needs one flow, and ends the flows
// inferred to take it.
func TestPlanUnreachable(t *testing.T) {
	st := mdaRows(true,
		"r1 a1 r3 dst",
		"- a2 a2!",
		"- a1 r3",
		"- a2",
		"- a1 r3",
		"- a2",
		"- a1 r3",
		"- a2",
		"- a1 r3",
		"- a2",
		"- a1 r3",
	)
	next, complete := Plan(st.state(), 0.95, 256)
	if next != nil || !complete {
		t.Fatalf("plan %v, complete %v; want none, complete", next, complete)
	}
	tr := st.trace()
	if partial := FillInferred(tr, st.state(), 0.95); partial != nil {
		t.Errorf("partial rows %v", partial)
	}
	f := tr.Flows[3] // path ID 4
	if f.Reached || len(f.Hops) != 3 || !f.Hops[2].Inferred || f.Hops[2].Addr != mdaAddr("a2") || f.Hops[2].ICMPType != icmpUnreachable {
		t.Errorf("path ID 4: %+v", f)
	}
}

// The destination not answering: the search stays within the TTLs that
// answered, and stops.
func TestPlanUnreached(t *testing.T) {
	st := mdaRows(true, "r1 a1 r3 * * *")
	for round := 0; ; round++ {
		next, complete := Plan(st.state(), 0.95, 256)
		if next == nil {
			if !complete {
				t.Errorf("incomplete")
			}
			break
		}
		if round > 5 {
			t.Fatalf("does not stop: %v", next)
		}
		for _, c := range next {
			if c.TTL > 3 {
				t.Errorf("probe %v beyond the last answer", c)
			}
			name := "a1"
			if c.TTL == 3 {
				name = "r3"
			}
			st.set(c.PathID, c.TTL, name)
		}
		st.Rounds++
	}
}
