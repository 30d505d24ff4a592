package analysis

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
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

// mdaRows builds a state from rows, row i for path ID i+1: per TTL, "-"
// for not probed, "*" for silent, "dst" for the destination, "x!" for an
// unreachable from x, else a router's name.
func mdaRows(oneHop bool, rows ...string) *MDAState {
	st := &MDAState{MaxTTL: 30, GapLimit: 3, OneFirstHop: oneHop}
	for i, r := range rows {
		for j, tok := range strings.Fields(r) {
			switch {
			case tok == "-":
			case tok == "*":
				st.Set(i+1, j+1, MDAObs{})
			case tok == "dst":
				st.Set(i+1, j+1, MDAObs{Addr: simDst, Reached: true})
			case strings.HasSuffix(tok, "!"):
				st.Set(i+1, j+1, MDAObs{Addr: mdaAddr(strings.TrimSuffix(tok, "!")), Stop: true})
			default:
				st.Set(i+1, j+1, MDAObs{Addr: mdaAddr(tok)})
			}
		}
	}
	return st
}

// mdaTrace builds the Trace of st as the Collector would.
func mdaTrace(st *MDAState) *Trace {
	paths := 0
	for _, r := range st.Flows {
		paths = max(paths, r.PathID)
	}
	c := NewCollector(simDst, "test", netip.MustParseAddr("192.0.2.100"), paths, st.MaxTTL, 33000, 33434)
	for _, r := range st.Flows {
		for i, o := range r.Hops {
			if !o.Probed {
				continue
			}
			c.Sent(r.PathID, i+1)
			if o.Addr.IsValid() {
				typ, code := uint8(11), uint8(0)
				if o.Reached || o.Stop {
					typ, code = icmpUnreachable, codePortUnreachable
				}
				c.Reply(r.PathID, i+1, o.Addr, time.Millisecond, typ, code, o.Reached)
			}
		}
	}
	return c.Trace(time.Time{}, time.Time{}, false)
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
func TestPlanMDAFirstRound(t *testing.T) {
	for _, oneHop := range []bool{true, false} {
		next, complete := PlanMDA(mdaRows(oneHop, "r1 a1 r3 dst"), 0.95, 256)
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
func TestPlanMDAFreshFlowsAfterSingleVertex(t *testing.T) {
	st := mdaRows(true,
		"r1 a1 r3 dst",
		"- a2 r3",
		"- a3 r3",
		"- a1 r3",
		"- a2 r3",
		"- a1 r3",
	)
	next, _ := PlanMDA(st, 0.95, 256)
	want := []Cell{}
	for id := 7; id <= 16; id++ {
		want = append(want, Cell{id, 2})
	}
	if !slices.Equal(next, want) {
		t.Errorf("plan %v, want %v", next, want)
	}
	// The cap on path IDs.
	next, _ = PlanMDA(st, 0.95, 10)
	if !slices.Equal(next, want[:4]) {
		t.Errorf("with 10 path IDs at most: plan %v, want %v", next, want[:4])
	}
	for id := 7; id <= 10; id++ {
		st.Set(id, 2, MDAObs{Addr: mdaAddr(fmt.Sprintf("a%d", id%3+1))})
	}
	if next, complete := PlanMDA(st, 0.95, 10); next != nil || complete {
		t.Errorf("path IDs used up: plan %v, complete %v; want none, incomplete", next, complete)
	}
	st.Rounds = MDAMaxRounds
	if next, complete := PlanMDA(st, 0.95, 256); next != nil || complete {
		t.Errorf("rounds used up: plan %v, complete %v; want none, incomplete", next, complete)
	}
}

// fourWay returns 21 flows over r1's 4 branches, converging on r3, the
// first probeAt3 of them probed at TTL 3.
func fourWay(probeAt3 int) *MDAState {
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
func TestPlanMDAConvergingBranches(t *testing.T) {
	st := fourWay(6)
	if next, complete := PlanMDA(st, 0.95, 256); next != nil || !complete {
		t.Fatalf("plan %v, complete %v; want none, complete", next, complete)
	}
	tr := mdaTrace(st)
	if partial := FillInferred(tr, st, 0.95); partial != nil {
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
	next, _ := PlanMDA(fourWay(5), 0.95, 256)
	if !slices.Equal(next, []Cell{{6, 3}}) {
		t.Errorf("5 flows at TTL 3: plan %v, want [{6 3}]", next)
	}
	// A branch never probed beyond gets one flow, to see where it goes.
	next, _ = PlanMDA(fourWay(3), 0.95, 256)
	if !slices.Contains(next, Cell{4, 3}) {
		t.Errorf("a4 never probed at TTL 3: plan %v, want {4 3} in it", next)
	}
}

// Node control in a nested diamond: each of b1 and b2 has 2 successors, so
// 11 flows through each must be probed at TTL 3. The flows known at them
// are probed first; the rest come from fresh flows sent at TTL 2 only (TTL
// 1 is known), as many as the emptier branch needs at its share of flows.
func TestPlanMDANodeControl(t *testing.T) {
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
	next, _ := PlanMDA(st, 0.95, 256)
	if got := cellsAt(next, 3); !slices.Equal(got, []int{6, 7, 8, 9, 10, 11}) {
		t.Errorf("TTL 3: path IDs %v, want the known flows 6-11", got)
	}
	// b1 lacks 11-3-3 = 5 at a share of 6/11, b2 lacks 6 at 1/2: 12 flows.
	if got := cellsAt(next, 2); !slices.Equal(got, idRange(12, 23)) {
		t.Errorf("TTL 2: path IDs %v, want 12 fresh flows 12-23", got)
	}
	if got := cellsAt(next, 1); len(got) > 0 {
		t.Errorf("TTL 1: path IDs %v, want none", got)
	}
	for _, c := range next {
		if c.PathID >= 12 && c.TTL != 2 {
			t.Errorf("fresh flow probed at %v", c)
		}
	}
	// Rows that cannot be completed yet are reported.
	partial := FillInferred(mdaTrace(st), st, 0.95)
	if want := idRange(2, 11); !slices.Equal(partial, want) {
		t.Errorf("partial rows %v, want %v", partial, want)
	}
}

// A vertex concluded to have one successor when it has two (the 5% chance
// of the rule: r1 sent its first 6 flows to b2) makes flows inferred at b2
// reach b1's successors; one of them is probed at TTL 2 to check.
func TestPlanMDAChecksInference(t *testing.T) {
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
	next, _ := PlanMDA(st, 0.95, 256)
	if !slices.Contains(next, Cell{7, 2}) || slices.Contains(next, Cell{8, 2}) {
		t.Errorf("plan %v, want {7 2} (and not {8 2}) in it", next)
	}
	st.Set(7, 2, MDAObs{Addr: mdaAddr("b1")})
	next, _ = PlanMDA(st, 0.95, 256)
	// r1 has 2 successors now: every flow is probed at TTL 2.
	if got := cellsAt(next, 2); !slices.Contains(got, 8) {
		t.Errorf("after b1 showed up: TTL 2 path IDs %v, want 8 in them", got)
	}
}

// Flows through a silent router are followed beyond it, and a silence is
// no evidence where other flows answered.
func TestPlanMDASilence(t *testing.T) {
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
	next, _ := PlanMDA(st, 0.95, 256)
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
func TestPlanMDAUnreachable(t *testing.T) {
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
	next, complete := PlanMDA(st, 0.95, 256)
	if next != nil || !complete {
		t.Fatalf("plan %v, complete %v; want none, complete", next, complete)
	}
	tr := mdaTrace(st)
	if partial := FillInferred(tr, st, 0.95); partial != nil {
		t.Errorf("partial rows %v", partial)
	}
	f := tr.Flows[3] // path ID 4
	if f.Reached || len(f.Hops) != 3 || !f.Hops[2].Inferred || f.Hops[2].Addr != mdaAddr("a2") || f.Hops[2].ICMPType != icmpUnreachable {
		t.Errorf("path ID 4: %+v", f)
	}
}

// The destination not answering: the search stays within the TTLs that
// answered, and stops.
func TestPlanMDAUnreached(t *testing.T) {
	st := mdaRows(true, "r1 a1 r3 * * *")
	for round := 0; ; round++ {
		next, complete := PlanMDA(st, 0.95, 256)
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
			st.Set(c.PathID, c.TTL, MDAObs{Addr: mdaAddr(name)})
		}
		st.Rounds++
	}
}

func TestMDAStateSet(t *testing.T) {
	var st MDAState
	st.Set(3, 2, MDAObs{Addr: mdaAddr("x")})
	st.Set(1, 1, MDAObs{})
	st.Set(3, 4, MDAObs{Addr: simDst, Reached: true})
	st.Set(0, 1, MDAObs{})
	if len(st.Flows) != 2 || st.Flows[0].PathID != 3 || len(st.Flows[0].Hops) != 4 {
		t.Fatalf("flows %+v", st.Flows)
	}
	h := st.Flows[0].Hops
	if h[0].Probed || !h[1].Probed || h[2].Probed || !h[3].Probed || !h[3].Reached || !st.Flows[1].Hops[0].Probed {
		t.Errorf("hops %+v", st.Flows)
	}
}
