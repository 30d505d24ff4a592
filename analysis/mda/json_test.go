package mda

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// The traces of searches, their rows filled, read back as written in JSON:
// inferred hops, incomplete path IDs and the MDA summary included.
func TestFilledTracesJSON(t *testing.T) {
	traces := map[string]*analysis.Trace{}
	st := fourWay(3)
	four := st.trace()
	four.MDA = &analysis.MDA{Confidence: 0.95, MaxPaths: 256, Incomplete: FillInferred(four, st.state(), 0.95)}
	if len(four.MDA.Incomplete) == 0 {
		t.Fatal("four-way: no incomplete path IDs")
	}
	traces["four-way"] = four
	for _, topo := range simTopologies() {
		for seed := range uint64(2) {
			res := simulate(t, topo, seed, 0.95, seed == 1)
			res.trace.MDA = &analysis.MDA{Confidence: 0.95, MaxPaths: simMaxPaths, Complete: res.complete}
			traces[fmt.Sprintf("%s seed %d", topo.name, seed)] = res.trace
		}
	}
	inferred := 0
	for name, tr := range traces {
		var buf bytes.Buffer
		if err := analysis.WriteJSON(&buf, tr, analysis.Options{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for got, err := range analysis.ReadJSON(&buf) {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			n++
			got.Start, got.End = tr.Start, tr.End
			if !reflect.DeepEqual(got, tr) {
				t.Errorf("%s: read back\n%+v\nwant\n%+v", name, got, tr)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d traces read back", name, n)
		}
		for _, f := range tr.Flows {
			for _, h := range f.Hops {
				if h.Inferred {
					inferred++
				}
			}
		}
	}
	if inferred == 0 {
		t.Error("no inferred hop in the traces")
	}
}
