package analysis

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// withASNs sets the ASN of every hop of tr from asns (address -> AS) and
// marks tr as annotated.
func withASNs(tr *Trace, asns map[string]uint32) *Trace {
	tr.HasASN = true
	for i := range tr.Flows {
		for j := range tr.Flows[i].Hops {
			h := &tr.Flows[i].Hops[j]
			if !h.Silent() {
				h.ASN = asns[h.Addr.String()]
			}
		}
	}
	return tr
}

var labASNs = map[string]uint32{
	"10.0.0.1": 64500,
	"10.1.1.2": 64501, "10.2.1.2": 64501,
	"10.1.2.2": 64502, "10.2.2.2": 64502,
	"10.1.3.2":  64501, // 10.2.3.2 unknown
	"10.99.0.1": 64510,
}

func TestASPathCollapse(t *testing.T) {
	hop := func(addr string, asn uint32) Hop {
		h := Hop{ASN: asn}
		if addr != "" {
			h.Addr = netip.MustParseAddr(addr)
		}
		return h
	}
	for _, tc := range []struct {
		hops []Hop
		want []uint32
	}{
		{nil, []uint32{}},
		{[]Hop{hop("10.0.0.1", 1), hop("10.0.0.2", 1), hop("10.0.0.3", 2)}, []uint32{1, 2}},
		// Unknown and silent hops are gaps; a run of them is one gap.
		{[]Hop{hop("10.0.0.1", 1), hop("", 0), hop("10.0.0.3", 0), hop("10.0.0.4", 2)}, []uint32{1, 0, 2}},
		{[]Hop{hop("10.0.0.1", 1), hop("", 0), hop("10.0.0.3", 1)}, []uint32{1, 0, 1}},
		// A silent hop carries no AS even if a stale one is set.
		{[]Hop{hop("10.0.0.1", 1), hop("", 7), hop("10.0.0.3", 1)}, []uint32{1, 0, 1}},
		{[]Hop{hop("10.0.0.1", 0)}, []uint32{0}},
	} {
		if got := ASPath(tc.hops); !slices.Equal(got, tc.want) {
			t.Errorf("ASPath(%v) = %v, want %v", tc.hops, got, tc.want)
		}
	}
	if got := FormatASPath([]uint32{64500, 0, 4200000000}); got != "AS64500 * AS4200000000" {
		t.Errorf("FormatASPath = %q", got)
	}
}

func TestASPathsDivergence(t *testing.T) {
	tr := withASNs(pathTrace(t, "10.99.0.1", pA, pB, pC, pA), labASNs)
	ups := tr.UniquePaths()
	var got []string
	for _, up := range ups {
		got = append(got, FormatASPath(up.ASPath))
	}
	want := []string{"AS64500 AS64501 AS64510", "AS64500 AS64502 AS64510", "AS64500 AS64501 * AS64510"}
	if !slices.Equal(got, want) {
		t.Errorf("unique path AS paths %q, want %q", got, want)
	}
	// The gap of path C does not make it another route.
	if got := tr.ASPaths(); !reflect.DeepEqual(got, [][]uint32{{64500, 64501, 64510}, {64500, 64502, 64510}}) {
		t.Errorf("ASPaths = %v", got)
	}
	if !tr.ASPathDivergence() {
		t.Error("no divergence over AS64501 and AS64502")
	}

	// One neighbour AS only: no divergence.
	one := withASNs(pathTrace(t, "10.99.0.1", pA, pC), labASNs)
	if one.ASPathDivergence() || len(one.ASPaths()) != 1 {
		t.Errorf("ASPaths %v", one.ASPaths())
	}
	// A flow that stopped early inside a known route is not another route;
	// one that went elsewhere is.
	stopped := withASNs(pathTrace(t, "10.99.0.1", pA, "10.0.0.1 10.1.3.2"), labASNs)
	if stopped.ASPathDivergence() {
		t.Errorf("stopped flow diverges: %v", stopped.ASPaths())
	}
	elsewhere := withASNs(pathTrace(t, "10.99.0.1", pA, "10.0.0.1 10.1.2.2"), labASNs)
	if !elsewhere.ASPathDivergence() {
		t.Errorf("unreached flow through AS64502 does not diverge: %v", elsewhere.ASPaths())
	}
	// Without an AS database there is nothing.
	plain := pathTrace(t, "10.99.0.1", pA, pB)
	if plain.ASPaths() != nil || plain.ASPathDivergence() || plain.UniquePaths()[0].ASPath != nil {
		t.Error("AS paths without HasASN")
	}
}

func TestASNTables(t *testing.T) {
	tr := withASNs(pathTrace(t, "10.99.0.1", pA, pB, pC, pA), labASNs)
	tr.Flows[0].Hops[1].IXP = "LAB-IX"
	tr.Flows[0].Hops[0].Hostname = "r1.lab.example"
	vert, horiz, _ := render(t, tr, Options{})
	for name, out := range map[string]string{"vert": vert, "horiz": horiz} {
		for _, w := range []string{
			"r1.lab.example (10.0.0.1) [AS64500]",
			"10.1.1.2 [AS64501, IX LAB-IX]",
			"10.1.2.2 [AS64502]",
			"| 10.2.3.2  ", // unknown AS: the address alone
			"\nAS path AS64500 AS64501 AS64510 (path IDs 1,4)\n",
			"\nAS path AS64500 AS64502 AS64510 (path ID 2)\n",
			"\nAS path AS64500 AS64501 * AS64510 (path ID 3)\n",
			"\nAS path divergence: the flows cross 2 different AS paths\n",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, out)
			}
		}
		if last := lastLine(out); last != "3 distinct paths among 4 path IDs" {
			t.Errorf("%s: last line %q", name, last)
		}
	}
	if got := row(t, vert, "Path ID 2"); got[1] != "10.1.2.2 [AS64502]" {
		t.Errorf("row %q", got)
	}
}

func TestASNJSON(t *testing.T) {
	tr := withASNs(pathTrace(t, "10.99.0.1", pA, pB, "10.0.0.1 * 10.2.3.2 10.99.0.1"), labASNs)
	tr.Flows[0].Hops[1].IXP = "LAB-IX"
	tr.Flows[0].Hops[0].Hostname = "r1.lab.example"
	var b bytes.Buffer
	if err := WriteJSON(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	if string(top["as_paths"]) != "[[64500,64501,64510],[64500,64502,64510]]" || string(top["as_path_divergence"]) != "true" {
		t.Errorf("as_paths %s, as_path_divergence %s", top["as_paths"], top["as_path_divergence"])
	}
	for _, w := range []string{
		`{"ttl":1,"addr":"10.0.0.1","rtt_ms":0.000,"icmp_type":11,"icmp_code":0,"asn":64500,"hostname":"r1.lab.example"}`,
		`{"ttl":2,"addr":"10.1.1.2","rtt_ms":0.000,"icmp_type":11,"icmp_code":0,"asn":64501,"ixp":"LAB-IX"}`,
		`{"ttl":3,"addr":"10.2.3.2","rtt_ms":0.000,"icmp_type":11,"icmp_code":0}`, // unknown AS: no "asn"
		`"as_path":[64500,null,64510]`,
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("JSON lacks %s\n%s", w, b.String())
		}
	}
	var got []*Trace
	for tr, err := range ReadJSON(&b) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tr)
	}
	got[0].Start, got[0].End = tr.Start, tr.End
	if !reflect.DeepEqual(got[0], tr) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got[0], tr)
	}

	// Without annotations, none of the keys.
	b.Reset()
	if err := WriteJSON(&b, pathTrace(t, "10.99.0.1", pA), Options{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"asn"`, `"ixp"`, `"hostname"`, `"as_path"`, `"as_paths"`, `"as_path_divergence"`} {
		if strings.Contains(b.String(), k) {
			t.Errorf("plain JSON has %s", k)
		}
	}
	// An AS database that knew none of the hops still says so.
	b.Reset()
	if err := WriteJSON(&b, withASNs(pathTrace(t, "10.99.0.1", pA), nil), Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"as_paths":[],"as_path_divergence":false`) {
		t.Errorf("no empty as_paths: %s", b.String())
	}
	for tr, err := range ReadJSON(&b) {
		if err != nil || !tr.HasASN {
			t.Errorf("HasASN lost: %v", err)
		}
	}
}

func TestDiffASPaths(t *testing.T) {
	before := withASNs(pathTrace(t, "10.99.0.1", pA, pB), labASNs)
	after := withASNs(pathTrace(t, "10.99.0.1", pA, pA), labASNs)
	d, out := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{})
	dd := d.Destinations[0]
	if len(dd.ASPathsBefore) != 2 || len(dd.ASPathsAfter) != 1 {
		t.Errorf("AS paths %v -> %v", dd.ASPathsBefore, dd.ASPathsAfter)
	}
	if !strings.Contains(out, "  - AS path removed: AS64500 AS64502 AS64510\n") {
		t.Errorf("output:\n%s", out)
	}
	// Only one side with AS numbers: no AS comparison.
	d, _ = diffOf(t, []*Trace{before}, []*Trace{pathTrace(t, "10.99.0.1", pA)}, DiffOptions{})
	if d.Destinations[0].ASPathsBefore != nil {
		t.Error("AS paths compared with an unannotated result")
	}
}

func TestASPathFits(t *testing.T) {
	for _, tc := range []struct {
		p, r   []uint32
		prefix bool
		want   bool
	}{
		{[]uint32{1, 2, 3}, []uint32{1, 2, 3}, false, true},
		{[]uint32{1, 2}, []uint32{1, 2, 3}, false, false},
		{[]uint32{1, 2}, []uint32{1, 2, 3}, true, true},
		{[]uint32{1, 4}, []uint32{1, 2, 3}, true, false},
		{[]uint32{1, 0, 3}, []uint32{1, 2, 3}, false, true},
		{[]uint32{1, 0, 3}, []uint32{1, 3}, false, true},       // a gap may be nothing
		{[]uint32{1, 0, 3}, []uint32{1, 2, 5, 3}, false, true}, // or several ASes
		{[]uint32{1, 0, 1}, []uint32{1}, false, true},          // a repeat collapsed away
		{[]uint32{1, 0, 1}, []uint32{1, 2}, false, false},
		{[]uint32{0}, []uint32{1, 2}, false, true},
		{[]uint32{1, 0, 4}, []uint32{1, 2, 3}, false, false},
		{[]uint32{}, []uint32{}, false, true},
	} {
		if got := asPathFits(tc.p, tc.r, tc.prefix); got != tc.want {
			t.Errorf("asPathFits(%v, %v, prefix %v) = %v", tc.p, tc.r, tc.prefix, got)
		}
	}
}
