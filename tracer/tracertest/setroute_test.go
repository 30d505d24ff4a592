package tracertest_test

import (
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

func pathStrings(ps []tracertest.Path) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// SetRoute changes a router's next hops in a network already made: a
// branch of the diamond withdrawn, then given back, then the destination
// made unreachable from r1.
func TestSetRoute(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	dst := tracertest.DstAddr
	four := pathStrings(n.AllPaths(dst))
	if strings.Count(four, "\n") != 3 || !strings.Contains(four, "10.1.4.2") {
		t.Fatalf("diamond4 has paths\n%s", four)
	}
	if err := n.SetRoute("r1", "10.99.0.0/20", "a1", "a2", "a3"); err != nil {
		t.Fatal(err)
	}
	three := pathStrings(n.AllPaths(dst))
	want := strings.Join([]string{
		"10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1",
		"10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1",
		"10.0.0.1 10.1.3.2 10.2.3.2 10.99.0.1",
	}, "\n")
	if three != want {
		t.Errorf("without a4, paths\n%s\nwant\n%s", three, want)
	}
	// The route of the longest prefix wins; replacing it gives the
	// branch back.
	if err := n.SetRoute("r1", "10.99.0.0/20", "a1", "a2", "a3", "a4"); err != nil {
		t.Fatal(err)
	}
	if got := pathStrings(n.AllPaths(dst)); got != four {
		t.Errorf("with a4 back, paths\n%s\nwant\n%s", got, four)
	}
	if err := n.SetRoute("r1", "10.99.0.1/32"); err != nil {
		t.Fatal(err)
	}
	if got := pathStrings(n.AllPaths(dst)); got != "10.0.0.1 10.0.0.1 !" {
		t.Errorf("with no route at r1, paths\n%s", got)
	}
	for _, bad := range [][]string{{"r9", "10.99.0.0/20", "a1"}, {"r1", "10.99.0.0/20", "r3"}, {"r1", "10.99.0.0", "a1"}} {
		if err := n.SetRoute(bad[0], bad[1], bad[2:]...); err == nil {
			t.Errorf("SetRoute%q: no error", bad)
		}
	}
}
