package mda

import (
	"fmt"
	"slices"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// spread returns st with path ID p's row moved to path ID scale*p, the
// rows between empty: path IDs that take no part.
func spread(st *State, scale int) *State {
	out := *st
	out.Rows = make([][]analysis.Probe, len(st.Rows)*scale)
	for i, r := range st.Rows {
		out.Rows[(i+1)*scale-1] = r
	}
	return &out
}

// Empty rows (path IDs without a probe sent) make the same plan as rows
// without them, but for the numbering, and the same rows filled.
func TestPlanEmptyRows(t *testing.T) {
	const scale = 3
	for _, topo := range mdaBenchTopologies() {
		for seed := uint64(1); seed <= 5; seed++ {
			s := recordMDASearch(topo, seed)
			for round, st := range s.rounds {
				maxID := len(st.Rows)
				want, wantComplete := Plan(st, 0.95, simMaxPaths)
				for i, c := range want {
					if c.PathID <= maxID {
						want[i].PathID *= scale
					} else {
						want[i].PathID += maxID*scale - maxID
					}
				}
				got, complete := Plan(spread(st, scale), 0.95, simMaxPaths+maxID*scale-maxID)
				if !slices.Equal(got, want) || complete != wantComplete {
					t.Errorf("%s seed %d round %d: plan %v %v, want %v %v", topo.name, seed, round, got, complete, want, wantComplete)
				}
			}
			// And fill the same rows.
			var c traceCopier
			tr := c.copy(&s)
			for i := range tr.Flows {
				tr.Flows[i].PathID *= scale
			}
			partial := FillInferred(tr, spread(s.final, scale), 0.95)
			wantPartial := FillInferred(s.trace, s.final, 0.95)
			for i := range wantPartial {
				wantPartial[i] *= scale
			}
			for i := range tr.Flows {
				tr.Flows[i].PathID /= scale
			}
			if !slices.Equal(partial, wantPartial) || fmt.Sprint(tr.Flows) != fmt.Sprint(s.trace.Flows) {
				t.Errorf("%s seed %d: FillInferred differs with empty rows", topo.name, seed)
			}
		}
	}
}
