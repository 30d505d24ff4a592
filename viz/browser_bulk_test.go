package viz

import (
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/viz/viztest"
)

// TestBrowserBulk opens the page of a scan of 4,094 destinations through a
// 4-way diamond in Chromium: the router graph and the groups in the
// window, the largest group with its count, opened and closed by a click,
// a destination deep in it found by the search box, a link's tooltip.
func TestBrowserBulk(t *testing.T) {
	lib := library(t)
	page, err := renderTraces(scanTraces(4094), lib)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) >= 2_000_000 {
		t.Errorf("%d bytes for 4,094 destinations, want under 2 MB", len(page))
	}
	b := newBrowser(t, 1280, 800)
	b.Open(t, page, 60*time.Second)
	got := viztest.CheckBulk(t, b, "10.21.9.201")
	t.Logf("%+v", got)
	if got.Count != 3930 || got.Found != "10.21.9.201: 4 distinct paths among 16 path IDs" {
		t.Errorf("largest group of %d, search says %q", got.Count, got.Found)
	}
	// The group opened into blocks without parsing its members; the search
	// parsed those of every group (of several) to find the destination.
	if n := eval[int](t, b, "tfMembersParsed()"); n != 5 {
		t.Errorf("the members of %d groups parsed after the search, want 5", n)
	}
	sel := eval[[]string](t, b, "tfNetwork.getSelectedNodes()")
	want := []string{"10.0.0.1", "10.1.1.2", "10.2.1.2", "10.1.2.2", "10.2.2.2", "10.1.3.2", "10.2.3.2", "10.1.4.2", "10.2.4.2", "g0"}
	if len(sel) < len(want)+2 || !equalStrings(sel[:len(want)], want) {
		t.Errorf("selected %q, want %q, then blocks and the destination", sel, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
