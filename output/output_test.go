package output

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// lineTrace is a trace to dst over r1 (10.0.0.1) and r2 (10.1.1.2), with
// 2 path IDs.
func lineTrace(dst string) *analysis.Trace {
	c := analysis.NewCollector(netip.MustParseAddr(dst), dst, netip.MustParseAddr("10.0.0.2"), 2, 8, 33452, 33452)
	for p := 1; p <= 2; p++ {
		for ttl, hop := range []string{"10.0.0.1", "10.1.1.2", dst} {
			c.Sent(p, ttl+1)
			typ := uint8(11)
			if hop == dst {
				typ = 3
			}
			c.Reply(p, ttl+1, netip.MustParseAddr(hop), time.Duration(ttl+1)*100*time.Microsecond, typ, 3, hop == dst)
		}
	}
	start := time.Unix(1700000000, 0)
	return c.Trace(start, start.Add(time.Second), false)
}

// TestDOT checks that --format dot writes the digraph of one destination as
// analysis.WriteDOT does, and one digraph of the groups of several, at the
// end of the run.
func TestDOT(t *testing.T) {
	one := lineTrace("10.21.0.1")
	var want bytes.Buffer
	if err := analysis.WriteDOT(&want, one, analysis.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		traces []*analysis.Trace
		want   string
	}{
		{"one", []*analysis.Trace{one}, want.String()},
		{"several", []*analysis.Trace{one, lineTrace("10.21.0.2"), lineTrace("10.21.0.3")}, ""},
		{"none", nil, ""},
	} {
		var stdout bytes.Buffer
		w, err := Open(Options{Format: "dot", Stdout: &stdout})
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range tc.traces {
			if err := w.Result(tr); err != nil {
				t.Fatal(err)
			}
		}
		if stdout.Len() != 0 {
			t.Errorf("%s: %d bytes written before Finish", tc.name, stdout.Len())
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		out := stdout.String()
		switch tc.name {
		case "one":
			if out != tc.want {
				t.Errorf("one destination:\n%s\nwant\n%s", out, tc.want)
			}
		case "several":
			if strings.Count(out, "digraph ") != 1 || !strings.Contains(out, `g0 [label="10.21.0.1, 10.21.0.2, 10.21.0.3 - 3 destinations\n3 reached"`) {
				t.Errorf("three destinations:\n%s", out)
			}
		default:
			if out != "" {
				t.Errorf("no destination: %q", out)
			}
		}
	}
}
