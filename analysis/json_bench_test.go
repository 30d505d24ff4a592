package analysis

import (
	"io"
	"testing"
)

// BenchmarkWriteJSON writes the record of a typical destination of a bulk
// scan: 21 path IDs of 4 hops through a 4-way diamond, with AS numbers, an
// MDA run and a silent hop.
func BenchmarkWriteJSON(b *testing.B) {
	specs := labDiamond(21)
	specs[5].hops = []string{"10.0.0.1", "", "10.2.2.2"}
	tr := withASNs(collect(b, specs), labASNs)
	tr.MDA = &MDA{Confidence: 0.95, MaxPaths: 256, Complete: true}
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteJSON(io.Discard, tr, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
