package analysis

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// The vertices a trace took from other destinations' probes are named
// under its table, one line per destination they came from, in both
// layouts and with distinct paths; a trace without them has no such line.
func TestReusedNotes(t *testing.T) {
	tr := collect(t, diamond(4))
	a, b := netip.MustParseAddr("10.99.0.7"), netip.MustParseAddr("10.99.0.9")
	tr.Reused = []ReusedVertex{
		{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1"), From: a},
		{TTL: 2, Addr: netip.MustParseAddr("10.1.1.2"), From: a},
		{TTL: 2, Addr: netip.MustParseAddr("10.1.2.2"), From: b},
	}
	want := []string{
		"TTL 1 10.0.0.1, TTL 2 10.1.1.2: next hops as probed towards 10.99.0.7",
		"TTL 2 10.1.2.2: next hops as probed towards 10.99.0.9",
	}
	for _, opts := range []Options{{}, {Dedup: true}} {
		for name, write := range map[string]func(*bytes.Buffer) error{
			"vert":  func(w *bytes.Buffer) error { return WriteVert(w, tr, opts) },
			"horiz": func(w *bytes.Buffer) error { return WriteHoriz(w, tr, opts) },
		} {
			var buf bytes.Buffer
			if err := write(&buf); err != nil {
				t.Fatal(err)
			}
			for _, l := range want {
				if !strings.Contains(buf.String(), "\n"+l+"\n") {
					t.Errorf("%s %+v: no line %q in\n%s", name, opts, l, buf.String())
				}
			}
		}
	}
	tr.Reused = nil
	var buf bytes.Buffer
	if err := WriteVert(&buf, tr, Options{}); err != nil || strings.Contains(buf.String(), "probed towards") {
		t.Errorf("without reused vertices: %v\n%s", err, buf.String())
	}
}
