package monitor_test

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// traceOf builds a trace of paths (hops separated by spaces, * silent),
// path IDs 1, 2, ...
func traceOf(dst string, paths ...string) *analysis.Trace {
	d := netip.MustParseAddr(dst)
	tr := &analysis.Trace{Destination: d, Name: dst}
	for i, p := range paths {
		f := analysis.Flow{PathID: i + 1}
		for j, h := range strings.Fields(p) {
			hop := analysis.Hop{TTL: j + 1}
			if h != "*" {
				hop.Addr = netip.MustParseAddr(h)
			}
			f.Hops = append(f.Hops, hop)
		}
		if last := f.Hops[len(f.Hops)-1].Addr; last == d {
			f.Reached, f.ReachedTTL = true, len(f.Hops)
		}
		tr.Flows = append(tr.Flows, f)
	}
	return tr
}

const (
	pA = "10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1"
	pD = "10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1"
)

// Events in JSON carry the diff's fields as traceflow-fast diff --format
// json writes them; in text, its lines.
func TestEventFormats(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("x", 3600))
	tg := tracer.Target{Addr: netip.MustParseAddr("10.99.0.1"), Name: "dst.example"}
	d := analysis.DiffTraces([]*analysis.Trace{traceOf("10.99.0.1", pA, pD)}, []*analysis.Trace{traceOf("10.99.0.1", pA, pA)}, analysis.DiffOptions{})
	change := &monitor.Event{Type: monitor.PathChange, Time: at, Target: tg, Reached: true, Diff: &d.Destinations[0], Runs: 2}
	base := &monitor.Event{Type: monitor.Baseline, Time: at, Target: tg, Reached: false,
		Paths: d.Destinations[0].Same, Err: "no route to host"}
	for _, c := range []struct {
		e          *monitor.Event
		json, text string
	}{
		{change,
			`{"type":"path_change","time":"2026-03-04T04:06:07.890Z","destination":"10.99.0.1","name":"10.99.0.1","status":"changed",` +
				`"reached_before":true,"reached_after":true,"paths_before":2,"paths_after":1,"lengths_before":[4],"lengths_after":[4],` +
				`"unchanged":[{"hops":["10.0.0.1","10.1.1.2","10.2.1.2","10.99.0.1"],"reached":true,"path_ids":[1,2]}],` +
				`"removed":[{"hops":["10.0.0.1","10.1.4.2","10.2.4.2","10.99.0.1"],"reached":true,"path_ids":[2]}],"added":[],"changed_paths":[],"runs":2}`,
			"2026-03-04T04:06:07.890Z path_change 10.99.0.1: changed: 2 before -> 1 after distinct paths (1 unchanged)\n" +
				"  - removed path: 10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1 (path ID 2)\n  seen in 2 runs in a row\n"},
		{base,
			`{"type":"baseline","time":"2026-03-04T04:06:07.890Z","destination":"10.99.0.1","name":"dst.example","reached":false,` +
				`"paths":[{"hops":["10.0.0.1","10.1.1.2","10.2.1.2","10.99.0.1"],"reached":true,"path_ids":[1,2]}],"error":"no route to host"}`,
			"2026-03-04T04:06:07.890Z baseline dst.example (10.99.0.1): 1 distinct path, not reached\n" +
				"  10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1 (path IDs 1,2)\n  error: no route to host\n"},
	} {
		b, err := c.e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.json {
			t.Errorf("JSON\n%s\nwant\n%s", b, c.json)
		}
		var w bytes.Buffer
		if err := c.e.WriteText(&w); err != nil {
			t.Fatal(err)
		}
		if w.String() != c.text {
			t.Errorf("text\n%s\nwant\n%s", w.String(), c.text)
		}
	}
}

// Listen binds where told, and nowhere else.
func TestListen(t *testing.T) {
	for _, addr := range []string{":9108", "localhost:9108", "127.0.0.1:0", "127.0.0.1:http", "127.0.0.1", "[::1]:70000"} {
		if ln, err := monitor.Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) bound %v", addr, ln.Addr())
		} else if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), addr) {
			t.Errorf("Listen(%q): %v", addr, err)
		}
	}
	free, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	ln, err := monitor.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != addr {
		t.Errorf("Listen(%q) bound %v", addr, ln.Addr())
	}
	// The port is in use now: no other is taken instead.
	if ln2, err := monitor.Listen(addr); err == nil {
		ln2.Close()
		t.Errorf("Listen(%q) twice bound %v", addr, ln2.Addr())
	}
}
