package analysis

import (
	"fmt"
	"slices"
	"testing"
)

// Path IDs far apart (beyond what the planner indexes densely), or given
// out of order, make the same plan as 1 up, but for the numbering.
func TestPlanMDASparsePathIDs(t *testing.T) {
	const scale = 5000
	for _, topo := range mdaBenchTopologies() {
		for seed := uint64(1); seed <= 5; seed++ {
			s := recordMDASearch(topo, seed)
			for round, st := range s.rounds {
				maxID := 0
				for _, r := range st.Flows {
					maxID = max(maxID, r.PathID)
				}
				// Sparse, in reverse order.
				sparse := &MDAState{MaxTTL: st.MaxTTL, GapLimit: st.GapLimit, OneFirstHop: st.OneFirstHop, Rounds: st.Rounds}
				for _, r := range slices.Backward(st.Flows) {
					sparse.Flows = append(sparse.Flows, MDAFlowRow{PathID: r.PathID * scale, Hops: r.Hops})
				}
				want, wantComplete := PlanMDA(st, 0.95, simMaxPaths)
				for i, c := range want {
					if c.PathID <= maxID {
						want[i].PathID *= scale
					} else {
						want[i].PathID += maxID*scale - maxID
					}
				}
				got, complete := PlanMDA(sparse, 0.95, simMaxPaths+maxID*scale-maxID)
				if !slices.Equal(got, want) || complete != wantComplete {
					t.Errorf("%s seed %d round %d: plan %v %v, want %v %v", topo.name, seed, round, got, complete, want, wantComplete)
				}
			}
			// And fill the same rows.
			var c traceCopier
			tr := c.copy(&s)
			sparse := &MDAState{MaxTTL: s.final.MaxTTL, GapLimit: s.final.GapLimit, OneFirstHop: true}
			for _, r := range s.final.Flows {
				sparse.Flows = append(sparse.Flows, MDAFlowRow{PathID: r.PathID * scale, Hops: r.Hops})
			}
			for i := range tr.Flows {
				tr.Flows[i].PathID *= scale
			}
			partial := FillInferred(tr, sparse, 0.95)
			wantPartial := FillInferred(s.trace, s.final, 0.95)
			for i := range wantPartial {
				wantPartial[i] *= scale
			}
			for i := range tr.Flows {
				tr.Flows[i].PathID /= scale
			}
			if !slices.Equal(partial, wantPartial) || fmt.Sprint(tr.Flows) != fmt.Sprint(s.trace.Flows) {
				t.Errorf("%s seed %d: FillInferred differs with sparse path IDs", topo.name, seed)
			}
		}
	}
}

// The rows of path IDs beyond what MDAState indexes, or set out of order,
// or reset with Flows[:0], are found again.
func TestMDAStateSetPathIDs(t *testing.T) {
	var st MDAState
	ids := []int{3, mdaIndexLimit + 7, 1, mdaIndexLimit + 7, 2, 3, mdaIndexLimit, 1}
	for round := range 2 {
		for i, id := range ids {
			st.Set(id, i+1, MDAObs{})
		}
		want := []string{"3: [1 6]", fmt.Sprintf("%d: [2 4]", mdaIndexLimit+7), "1: [3 8]", "2: [5]", fmt.Sprintf("%d: [7]", mdaIndexLimit)}
		var got []string
		for _, r := range st.Flows {
			var ttls []int
			for i, o := range r.Hops {
				if o.Probed {
					ttls = append(ttls, i+1)
				}
			}
			got = append(got, fmt.Sprintf("%d: %v", r.PathID, ttls))
		}
		if !slices.Equal(got, want) {
			t.Errorf("round %d: rows %v, want %v", round, got, want)
		}
		st = MDAState{Flows: st.Flows[:0]}
	}
	// Rows added by the caller are found too.
	st.Flows = append(st.Flows, MDAFlowRow{PathID: 9})
	st.Set(9, 2, MDAObs{})
	st.Set(4, 1, MDAObs{})
	st.Set(9, 1, MDAObs{})
	if len(st.Flows) != 2 || len(st.Flows[0].Hops) != 2 || !st.Flows[0].Hops[0].Probed {
		t.Errorf("rows %+v", st.Flows)
	}
}
