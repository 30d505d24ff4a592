package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testDst   = netip.MustParseAddr("10.99.0.1")
	testSrc   = netip.MustParseAddr("10.0.0.100")
	testStart = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
)

const (
	testMaxTTL  = 16
	testSrcBase = 33452
	testDstPort = 33452
)

// flowSpec describes what one path ID sees: hops[i] answers TTL i+1 with a
// time exceeded ("" = silent). When reached, the destination answers every
// TTL from len(hops)+1 to len(hops)+3 (the probes in flight) with a port
// unreachable.
type flowSpec struct {
	hops    []string
	reached bool
}

func rttFor(pathID, ttl int) time.Duration {
	return time.Duration(ttl)*time.Millisecond + time.Duration(pathID)*time.Microsecond
}

// collect feeds a Collector the way the prober would and returns its Trace.
func collect(t testing.TB, specs []flowSpec) *Trace {
	t.Helper()
	c := NewCollector(testDst, "dest.example", testSrc, len(specs), testMaxTTL, testSrcBase, testDstPort)
	for i, s := range specs {
		p := i + 1
		last := testMaxTTL
		if s.reached {
			last = min(len(s.hops)+3, testMaxTTL)
		}
		for ttl := 1; ttl <= last; ttl++ {
			c.Sent(p, ttl)
		}
		// Answers arrive out of order: the in-flight destination replies first.
		if s.reached {
			for ttl := last; ttl > len(s.hops); ttl-- {
				c.Reply(p, ttl, testDst, rttFor(p, ttl), 3, 3, true)
			}
		}
		for j, h := range s.hops {
			if h != "" {
				c.Reply(p, j+1, netip.MustParseAddr(h), rttFor(p, j+1), 11, 0, false)
			}
		}
	}
	return c.Trace(testStart, testStart.Add(1500*time.Millisecond), false)
}

func repeat(n int, s flowSpec) []flowSpec {
	out := make([]flowSpec, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// diamond returns n flows through a 4-way ECMP diamond: 10.0.0.1, one of
// 10.1.{1..4}.1 chosen by path ID, 10.2.0.1, then the destination.
func diamond(n int) []flowSpec {
	out := make([]flowSpec, n)
	for i := range out {
		out[i] = flowSpec{hops: []string{"10.0.0.1", fmt.Sprintf("10.1.%d.1", i%4+1), "10.2.0.1"}, reached: true}
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		if s != "" {
			out[i] = netip.MustParseAddr(s)
		}
	}
	return out
}

func render(t *testing.T, tr *Trace, opts Options) (vert, horiz, js string) {
	t.Helper()
	var v, h, j bytes.Buffer
	if err := WriteVert(&v, tr, opts); err != nil {
		t.Fatal(err)
	}
	if err := WriteHoriz(&h, tr, opts); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&j, tr, opts); err != nil {
		t.Fatal(err)
	}
	return v.String(), h.String(), j.String()
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// row returns the cells of the table line whose label is label.
func row(t *testing.T, table, label string) []string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		f := strings.Split(l, "|")
		if strings.TrimSpace(f[0]) == label {
			cells := f[1 : len(f)-1] // the line ends with "|"
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells
		}
	}
	t.Fatalf("no row %q in\n%s", label, table)
	return nil
}

func TestPaths(t *testing.T) {
	dst := testDst.String()
	tests := []struct {
		name    string
		specs   []flowSpec
		unique  []UniquePath
		lengths []int // per path ID
		summary string
		// vert rows (non-dedup) to check, by label
		rows map[string][]string
	}{{
		name:    "equal paths",
		specs:   repeat(4, flowSpec{hops: []string{"10.0.0.1", "10.0.1.1"}, reached: true}),
		unique:  []UniquePath{{Hops: addrs("10.0.0.1", "10.0.1.1", dst), Reached: true, PathIDs: []int{1, 2, 3, 4}}},
		lengths: []int{3, 3, 3, 3},
		summary: "1 distinct path among 4 path IDs",
		rows: map[string][]string{
			"TTL:":      {"1", "2", "3"},
			"Path ID 4": {"10.0.0.1", "10.0.1.1", dst},
		},
	}, {
		name:  "4-way diamond, 16 flows",
		specs: diamond(16),
		unique: []UniquePath{
			{Hops: addrs("10.0.0.1", "10.1.1.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{1, 5, 9, 13}},
			{Hops: addrs("10.0.0.1", "10.1.2.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{2, 6, 10, 14}},
			{Hops: addrs("10.0.0.1", "10.1.3.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{3, 7, 11, 15}},
			{Hops: addrs("10.0.0.1", "10.1.4.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{4, 8, 12, 16}},
		},
		lengths: slices.Repeat([]int{4}, 16),
		summary: "4 distinct paths among 16 path IDs",
		rows: map[string][]string{
			"Path ID 7":  {"10.0.0.1", "10.1.3.1", "10.2.0.1", dst},
			"Path ID 16": {"10.0.0.1", "10.1.4.1", "10.2.0.1", dst},
		},
	}, {
		name: "unequal lengths",
		specs: []flowSpec{
			{hops: []string{"10.0.0.1", "10.1.1.1", "10.2.0.1"}, reached: true},
			{hops: []string{"10.0.0.1", "10.1.2.1", "10.1.2.2", "10.2.0.1"}, reached: true},
			{hops: []string{"10.0.0.1", "10.1.1.1", "10.2.0.1"}, reached: true},
		},
		unique: []UniquePath{
			{Hops: addrs("10.0.0.1", "10.1.1.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{1, 3}},
			{Hops: addrs("10.0.0.1", "10.1.2.1", "10.1.2.2", "10.2.0.1", dst), Reached: true, PathIDs: []int{2}},
		},
		lengths: []int{4, 5, 4},
		summary: "2 distinct paths among 3 path IDs",
		rows: map[string][]string{
			"TTL:":      {"1", "2", "3", "4", "5"},
			"Path ID 1": {"10.0.0.1", "10.1.1.1", "10.2.0.1", dst, ""}, // not padded with fake hops
			"Path ID 2": {"10.0.0.1", "10.1.2.1", "10.1.2.2", "10.2.0.1", dst},
		},
	}, {
		name: "silent hop in the middle",
		specs: []flowSpec{
			{hops: []string{"10.0.0.1", "", "10.2.0.1"}, reached: true},
			{hops: []string{"10.0.0.1", "10.1.1.1", "10.2.0.1"}, reached: true},
			{hops: []string{"10.0.0.1", "", "10.2.0.1"}, reached: true},
		},
		unique: []UniquePath{
			{Hops: addrs("10.0.0.1", "", "10.2.0.1", dst), Reached: true, PathIDs: []int{1, 3}},
			{Hops: addrs("10.0.0.1", "10.1.1.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{2}},
		},
		lengths: []int{4, 4, 4},
		summary: "2 distinct paths among 3 path IDs",
		rows: map[string][]string{
			"Path ID 1": {"10.0.0.1", "*", "10.2.0.1", dst},
			"Path ID 2": {"10.0.0.1", "10.1.1.1", "10.2.0.1", dst},
		},
	}, {
		name: "not reached: trailing silence trimmed",
		specs: []flowSpec{
			{hops: []string{"10.0.0.1", "", "10.2.0.1"}}, // TTLs 4..16 silent
			{hops: []string{"10.0.0.1", "10.1.1.1", "10.2.0.1"}, reached: true},
			{}, // nothing answered
		},
		unique: []UniquePath{
			{Hops: addrs("10.0.0.1", "", "10.2.0.1"), PathIDs: []int{1}},
			{Hops: addrs("10.0.0.1", "10.1.1.1", "10.2.0.1", dst), Reached: true, PathIDs: []int{2}},
			{Hops: []netip.Addr{}, PathIDs: []int{3}},
		},
		lengths: []int{3, 4, 0},
		summary: "3 distinct paths among 3 path IDs",
		rows: map[string][]string{
			"Path ID 1": {"10.0.0.1", "*", "10.2.0.1", ""},
			"Path ID 3": {"", "", "", ""},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := collect(t, tc.specs)
			if got := tr.UniquePaths(); !reflect.DeepEqual(got, tc.unique) {
				t.Errorf("UniquePaths:\n got %v\nwant %v", got, tc.unique)
			}
			for i, f := range tr.Flows {
				if f.PathID != i+1 || f.SrcPort != testSrcBase+uint16(i+1) || f.DstPort != testDstPort {
					t.Errorf("flow %d: id %d ports %d->%d", i, f.PathID, f.SrcPort, f.DstPort)
				}
				if len(f.Hops) != tc.lengths[i] {
					t.Errorf("path ID %d: %d hops, want %d", f.PathID, len(f.Hops), tc.lengths[i])
				}
				wantReached := tc.specs[i].reached
				if f.Reached != wantReached || (wantReached && f.ReachedTTL != len(f.Hops)) || (!wantReached && f.ReachedTTL != 0) {
					t.Errorf("path ID %d: reached %v at %d with %d hops", f.PathID, f.Reached, f.ReachedTTL, len(f.Hops))
				}
				for j, h := range f.Hops {
					if h.TTL != j+1 {
						t.Errorf("path ID %d: hop %d has TTL %d", f.PathID, j, h.TTL)
					}
					if h.Silent() != (h.RTT == 0) || (!h.Silent() && h.RTT != rttFor(f.PathID, h.TTL)) {
						t.Errorf("path ID %d TTL %d: addr %v rtt %v", f.PathID, h.TTL, h.Addr, h.RTT)
					}
				}
			}
			if got := tr.Summary(); got != tc.summary {
				t.Errorf("Summary = %q, want %q", got, tc.summary)
			}
			vert, horiz, js := render(t, tr, Options{})
			for label, want := range tc.rows {
				if got := row(t, vert, label); !slices.Equal(got, want) {
					t.Errorf("vert row %q = %q, want %q\n%s", label, got, want, vert)
				}
			}
			for name, out := range map[string]string{"vert": vert, "horiz": horiz, "json": js} {
				if name == "json" {
					var v struct{ Summary string }
					if err := json.Unmarshal([]byte(js), &v); err != nil || v.Summary != tc.summary {
						t.Errorf("json summary %q (%v), want %q", v.Summary, err, tc.summary)
					}
					continue
				}
				if got := lastLine(out); got != tc.summary {
					t.Errorf("%s last line %q, want %q", name, got, tc.summary)
				}
			}
		})
	}
}

func TestDedupTables(t *testing.T) {
	tr := collect(t, diamond(16))
	vert, horiz, _ := render(t, tr, Options{Dedup: true})
	dst := testDst.String()
	want := map[string][]string{
		"TTL:":                   {"1", "2", "3", "4"},
		"Path 1 (IDs 1,5,9,13)":  {"10.0.0.1 <", "10.1.1.1", "> 10.2.0.1", dst},
		"Path 4 (IDs 4,8,12,16)": {"10.0.0.1 <", "10.1.4.1", "> 10.2.0.1", dst},
		"Path 2 (IDs 2,6,10,14)": {"10.0.0.1 <", "10.1.2.1", "> 10.2.0.1", dst},
		"Path 3 (IDs 3,7,11,15)": {"10.0.0.1 <", "10.1.3.1", "> 10.2.0.1", dst},
	}
	for label, cells := range want {
		if got := row(t, vert, label); !slices.Equal(got, cells) {
			t.Errorf("row %q = %q, want %q", label, got, cells)
		}
	}
	// header, TTLs, 4 paths, the legend of the marks, a diamond, the RTTs
	// (a heading, 7 hops, 4 paths), the summary
	if n := strings.Count(vert, "\n"); n != 1+1+4+1+1+1+7+4+1 {
		t.Errorf("vert has %d lines, want 21:\n%s", n, vert)
	}
	if got := row(t, horiz, "TTL:"); !slices.Equal(got, []string{"Path 1 (IDs 1,5,9,13)", "Path 2 (IDs 2,6,10,14)", "Path 3 (IDs 3,7,11,15)", "Path 4 (IDs 4,8,12,16)"}) {
		t.Errorf("horiz header %q", got)
	}
	if got := row(t, horiz, "2"); !slices.Equal(got, []string{"10.1.1.1", "10.1.2.1", "10.1.3.1", "10.1.4.1"}) {
		t.Errorf("horiz TTL 2 %q", got)
	}
	for _, out := range []string{vert, horiz} {
		if !strings.HasPrefix(out, "traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 16 path IDs, max TTL 16\n") {
			t.Errorf("header line:\n%s", out)
		}
		if got := lastLine(out); got != "4 distinct paths among 16 path IDs" {
			t.Errorf("last line %q", got)
		}
	}

	// Unequal lengths survive deduplication, and a single ID reads "ID".
	tr = collect(t, []flowSpec{
		{hops: []string{"10.0.0.1", "10.1.1.1"}, reached: true},
		{hops: []string{"10.0.0.1", "10.1.2.1", "10.1.2.2"}, reached: true},
		{hops: []string{"10.0.0.1", "10.1.1.1"}, reached: true},
		{hops: []string{"10.0.0.1", "10.1.1.1"}, reached: true},
	})
	vert, horiz, _ = render(t, tr, Options{Dedup: true})
	if got := row(t, vert, "Path 1 (IDs 1,3,4)"); !slices.Equal(got, []string{"10.0.0.1 <", "10.1.1.1", "> " + dst, ""}) {
		t.Errorf("short path row %q\n%s", got, vert)
	}
	if got := row(t, vert, "Path 2 (ID 2)"); !slices.Equal(got, []string{"10.0.0.1 <", "10.1.2.1", "10.1.2.2", "> " + dst}) {
		t.Errorf("long path row %q\n%s", got, vert)
	}
	if got := row(t, horiz, "4"); !slices.Equal(got, []string{"", "> " + dst}) {
		t.Errorf("horiz TTL 4 %q\n%s", got, horiz)
	}
}

func TestTableLayout(t *testing.T) {
	tr := collect(t, []flowSpec{
		{hops: []string{"192.168.0.1", ""}, reached: true},
		{hops: []string{"192.168.0.1"}, reached: true},
	})
	var b bytes.Buffer
	if err := WriteVert(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	// The seed's layout: 18-wide cells, each followed by "| ".
	want := "traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 2 path IDs, max TTL 16\n" +
		"TTL:              | 1                 | 2                 | 3                 |\n" +
		"Path ID 1         | 192.168.0.1       | *                 | 10.99.0.1         |\n" +
		"Path ID 2         | 192.168.0.1       | 10.99.0.1         |                   |\n" +
		"2 distinct paths among 2 path IDs\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	// Cells widen to the widest address.
	c := NewCollector(netip.MustParseAddr("2001:db8::1"), "v6", netip.MustParseAddr("2001:db8::100"), 1, 4, 0, 1)
	c.Reply(1, 1, netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:1"), time.Millisecond, 3, 3, true)
	b.Reset()
	if err := WriteVert(&b, c.Trace(testStart, testStart, true), Options{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasSuffix(lines[0], ", 1 path ID, max TTL 4, partial (interrupted)") {
		t.Errorf("header %q", lines[0])
	}
	if len(lines[1]) != len(lines[2]) || !strings.Contains(lines[2], "| 2001:db8:ffff:ffff:ffff:ffff:ffff:1 |") {
		t.Errorf("not aligned:\n%s", b.String())
	}
	if lines[3] != "1 distinct path among 1 path ID" {
		t.Errorf("summary %q", lines[3])
	}
}

func TestInFlightDestinationReplies(t *testing.T) {
	// The destination is 4 hops away; probes with TTL 4..8 were all in
	// flight, and their answers come back in any order, with time exceeded
	// answers to TTLs past the destination (a stale route) mixed in.
	c := NewCollector(testDst, "d", testSrc, 1, 8, testSrcBase, testDstPort)
	for ttl := 1; ttl <= 8; ttl++ {
		c.Sent(1, ttl)
	}
	r := netip.MustParseAddr
	c.Reply(1, 7, testDst, 7*time.Millisecond, 3, 3, true)
	c.Reply(1, 6, r("10.6.0.1"), 6*time.Millisecond, 11, 0, false)
	c.Reply(1, 5, testDst, 5*time.Millisecond, 3, 3, true)
	c.Reply(1, 4, testDst, 4*time.Millisecond, 3, 3, true)
	c.Reply(1, 8, testDst, 8*time.Millisecond, 3, 3, true)
	c.Reply(1, 1, r("10.0.0.1"), time.Millisecond, 11, 0, false)
	c.Reply(1, 3, r("10.3.0.1"), 3*time.Millisecond, 11, 0, false)
	tr := c.Trace(testStart, testStart, false)
	f := tr.Flows[0]
	want := []Hop{
		{TTL: 1, Addr: r("10.0.0.1"), RTT: time.Millisecond, ICMPType: 11},
		{TTL: 2},
		{TTL: 3, Addr: r("10.3.0.1"), RTT: 3 * time.Millisecond, ICMPType: 11},
		{TTL: 4, Addr: testDst, RTT: 4 * time.Millisecond, ICMPType: 3, ICMPCode: 3},
	}
	if !f.Reached || f.ReachedTTL != 4 || !reflect.DeepEqual(f.Hops, want) {
		t.Errorf("flow = %+v\nwant hops %+v", f, want)
	}
	if f.ProbedTTL != 8 || tr.ProbesSent != 8 || tr.Replies != 7 {
		t.Errorf("probed %d sent %d replies %d", f.ProbedTTL, tr.ProbesSent, tr.Replies)
	}
}

func TestDuplicateReplies(t *testing.T) {
	c := NewCollector(testDst, "d", testSrc, 2, 4, testSrcBase, testDstPort)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	steps := []struct {
		path, ttl int
		from      netip.Addr
		rtt       time.Duration
		first     bool
	}{
		{1, 1, a, time.Millisecond, true},
		{1, 1, a, 9 * time.Millisecond, false}, // duplicate
		{1, 1, b, 2 * time.Millisecond, false}, // duplicate from elsewhere
		{2, 1, b, 3 * time.Millisecond, true},  // other path, same TTL
		{0, 1, a, time.Millisecond, false},     // path ID out of range
		{3, 1, a, time.Millisecond, false},     // path ID out of range
		{1, 0, a, time.Millisecond, false},     // TTL out of range
		{1, 5, a, time.Millisecond, false},     // TTL out of range
		{2, 1, b, 3 * time.Millisecond, false}, // duplicate
	}
	for i, s := range steps {
		if got := c.Reply(s.path, s.ttl, s.from, s.rtt, 11, 0, false); got != s.first {
			t.Errorf("step %d: Reply = %v, want %v", i, got, s.first)
		}
	}
	tr := c.Trace(testStart, testStart, false)
	if tr.Replies != 2 {
		t.Errorf("Replies = %d, want 2", tr.Replies)
	}
	if h := tr.Flows[0].Hops; len(h) != 1 || h[0].Addr != a || h[0].RTT != time.Millisecond {
		t.Errorf("path 1 hops %+v: the first answer must win", h)
	}
}

func TestRouterUnreachable(t *testing.T) {
	r := netip.MustParseAddr
	tests := []struct {
		code uint8
		cell string
	}{{0, "10.3.0.1 !N"}, {1, "10.3.0.1 !H"}, {13, "10.3.0.1 !X"}, {7, "10.3.0.1 !7"}}
	for _, tc := range tests {
		c := NewCollector(testDst, "d", testSrc, 2, 8, testSrcBase, testDstPort)
		for ttl := 1; ttl <= 8; ttl++ {
			c.Sent(1, ttl)
			c.Sent(2, ttl)
		}
		c.Reply(1, 1, r("10.0.0.1"), time.Millisecond, 11, 0, false)
		c.Reply(1, 4, r("10.3.0.1"), 4*time.Millisecond, 3, tc.code, false) // in flight, answered first
		c.Reply(1, 3, r("10.3.0.1"), 3*time.Millisecond, 3, tc.code, false)
		c.Reply(1, 5, r("10.3.0.1"), 5*time.Millisecond, 3, tc.code, false)
		c.Reply(2, 1, r("10.0.0.1"), time.Millisecond, 11, 0, false)
		c.Reply(2, 2, testDst, time.Millisecond, 3, 3, true)
		tr := c.Trace(testStart, testStart, false)
		f := tr.Flows[0]
		if f.Reached || f.ReachedTTL != 0 || len(f.Hops) != 3 {
			t.Fatalf("code %d: flow %+v", tc.code, f)
		}
		if h := f.Hops[2]; h.Addr != r("10.3.0.1") || h.ICMPType != 3 || h.ICMPCode != tc.code || h.RTT != 3*time.Millisecond {
			t.Errorf("code %d: last hop %+v", tc.code, h)
		}
		var b bytes.Buffer
		if err := WriteVert(&b, tr, Options{}); err != nil {
			t.Fatal(err)
		}
		if got := row(t, b.String(), "Path ID 1"); !slices.Equal(got, []string{"10.0.0.1", "*", tc.cell}) {
			t.Errorf("code %d: row %q", tc.code, got)
		}
		if got := row(t, b.String(), "Path ID 2"); !slices.Equal(got, []string{"10.0.0.1", testDst.String(), ""}) {
			t.Errorf("code %d: reached row %q", tc.code, got)
		}
	}
}

func TestIDRanges(t *testing.T) {
	tests := []struct {
		ids  []int
		want string
	}{
		{[]int{1}, "1"},
		{[]int{1, 2}, "1,2"},
		{[]int{1, 2, 3, 4, 7}, "1-4,7"},
		{[]int{1, 5, 9}, "1,5,9"},
		{[]int{2, 3, 5, 6, 7, 8, 10, 11}, "2,3,5-8,10,11"},
	}
	for _, tc := range tests {
		if got := IDRanges(tc.ids); got != tc.want {
			t.Errorf("IDRanges(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
}

func TestJSONSchema(t *testing.T) {
	specs := diamond(4)
	specs[1].hops = []string{"10.0.0.1", "", "10.2.0.1"} // a silent hop
	tr := collect(t, specs)
	for _, dedup := range []bool{false, true} {
		var b bytes.Buffer
		for range 3 {
			if err := WriteJSON(&b, tr, Options{Dedup: dedup}); err != nil {
				t.Fatal(err)
			}
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines for 3 traces", len(lines))
		}
		for _, l := range lines {
			if !json.Valid([]byte(l)) {
				t.Fatalf("invalid JSON line %s", l)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal([]byte(l), &top); err != nil {
				t.Fatal(err)
			}
			checkKeys(t, "trace", top, "destination", "name", "source", "protocol", "max_ttl", "start",
				"duration_ms", "partial", "probes_sent", "replies", "flows", "unique_paths", "graph", "summary")
			var flows []map[string]json.RawMessage
			mustUnmarshal(t, top["flows"], &flows)
			for _, f := range flows {
				checkKeys(t, "flow", f, "path_id", "src_port", "dst_port", "reached", "reached_ttl", "probed_ttl", "hops")
				var hops []map[string]json.RawMessage
				mustUnmarshal(t, f["hops"], &hops)
				for _, h := range hops {
					if string(h["addr"]) == "null" {
						checkKeys(t, "silent hop", h, "ttl", "addr", "rtt_ms")
						if string(h["rtt_ms"]) != "null" {
							t.Errorf("silent hop rtt_ms %s", h["rtt_ms"])
						}
					} else {
						checkKeys(t, "hop", h, "ttl", "addr", "rtt_ms", "icmp_type", "icmp_code")
					}
				}
			}
			var ups []map[string]json.RawMessage
			mustUnmarshal(t, top["unique_paths"], &ups)
			for _, u := range ups {
				checkKeys(t, "unique path", u, "hops", "path_ids", "reached", "rtt_ms")
			}
		}
		// Exact content of a few values.
		want := []string{
			`{"destination":"10.99.0.1","name":"dest.example","source":"10.0.0.100","protocol":"udp","max_ttl":16,"start":"2025-03-01T12:00:00.123456Z","duration_ms":1500.000,"partial":false,"probes_sent":24,"replies":23,`,
			`{"path_id":2,"src_port":33454,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.002,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":null,"rtt_ms":null},`,
			`{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.002,"icmp_type":3,"icmp_code":3}]}`,
			`"unique_paths":[{"hops":["10.0.0.1","10.1.1.1","10.2.0.1","10.99.0.1"],"path_ids":[1],"reached":true,"rtt_ms":{"min":4.001,"avg":4.001,"max":4.001}},{"hops":["10.0.0.1",null,"10.2.0.1","10.99.0.1"],"path_ids":[2],"reached":true,"rtt_ms":{"min":4.002,"avg":4.002,"max":4.002}},`,
			`"summary":"4 distinct paths among 4 path IDs"}`,
		}
		for _, w := range want {
			if !strings.Contains(lines[0], w) {
				t.Errorf("JSON lacks %s\n%s", w, lines[0])
			}
		}
	}
}

func checkKeys(t *testing.T, what string, m map[string]json.RawMessage, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	keys = slices.Clone(keys)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("%s keys %q, want %q", what, got, keys)
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	specs := diamond(8)
	specs[2].hops = []string{"10.0.0.1", "", "10.2.0.1"}
	specs[5] = flowSpec{hops: []string{"10.0.0.1", "", "10.2.0.1"}}
	specs[6] = flowSpec{}
	a := collect(t, specs)
	a.Partial = true
	c := NewCollector(netip.MustParseAddr("2001:db8::1"), `odd "name" <&>`, netip.Addr{}, 2, 4, 1000, 2000)
	c.Reply(1, 2, netip.MustParseAddr("2001:db8::ff"), 1234567*time.Nanosecond, 3, 1, false)
	c.Reply(2, 1, netip.MustParseAddr("2001:db8::1"), 999*time.Microsecond, 3, 3, true)
	b := c.Trace(testStart.In(time.FixedZone("X", 3600)), testStart.Add(time.Hour+time.Microsecond), false)

	var buf bytes.Buffer
	for _, tr := range []*Trace{a, b} {
		if err := WriteJSON(&buf, tr, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("\n  \n") // blank lines are skipped
	var got []*Trace
	for tr, err := range ReadJSON(&buf) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tr)
	}
	if len(got) != 2 {
		t.Fatalf("read %d traces, want 2", len(got))
	}
	// RTTs are written with microsecond precision.
	b.Flows[0].Hops[1].RTT = 1235 * time.Microsecond
	for i, want := range []*Trace{a, b} {
		g := got[i]
		if !g.Start.Equal(want.Start) || !g.End.Equal(want.End) {
			t.Errorf("trace %d: times %v..%v, want %v..%v", i, g.Start, g.End, want.Start, want.End)
		}
		g.Start, g.End = want.Start, want.End
		if !reflect.DeepEqual(g, want) {
			t.Errorf("trace %d round trip:\n got %+v\nwant %+v", i, g, want)
		}
		if !reflect.DeepEqual(g.UniquePaths(), want.UniquePaths()) {
			t.Errorf("trace %d: unique paths differ", i)
		}
	}
}

func TestReadJSONErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not JSON", "{\"destination\":\n"},
		{"two objects on a line", `{} {}`},
		{"bad address", `{"destination":"10.0.0"}`},
		{"hops out of order", `{"flows":[{"path_id":1,"hops":[{"ttl":2},{"ttl":1}]}]}`},
		{"reached_ttl mismatch", `{"flows":[{"path_id":1,"reached":true,"reached_ttl":3,"hops":[{"ttl":1,"addr":"10.0.0.1"}]}]}`},
		{"duplicate path ID", `{"flows":[{"path_id":1},{"path_id":1}]}`},
		{"bad rtt", `{"flows":[{"path_id":1,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":"x"}]}]}`},
	}
	for _, tc := range tests {
		n := 0
		var last error
		for tr, err := range ReadJSON(strings.NewReader("{}\n" + tc.in)) {
			n++
			if err != nil && tr != nil {
				t.Errorf("%s: trace with error", tc.name)
			}
			last = err
		}
		if n != 2 || last == nil || !strings.Contains(last.Error(), "line 2") {
			t.Errorf("%s: %d values, last error %v", tc.name, n, last)
		}
	}
	// Stopping early stops reading.
	n := 0
	for range ReadJSON(strings.NewReader("{}\n{}\n{}\n")) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break: %d iterations", n)
	}
}

func TestCollectorConcurrent(t *testing.T) {
	const paths, ttls = 8, 16
	c := NewCollector(testDst, "d", testSrc, paths, ttls, testSrcBase, testDstPort)
	var wg sync.WaitGroup
	firsts := make([]int, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 1; p <= paths; p++ {
				for ttl := 1; ttl <= ttls; ttl++ {
					c.Sent(p, ttl)
					if c.Reply(p, ttl, testDst, time.Millisecond, 3, 3, true) {
						firsts[g]++
					}
				}
			}
		}()
	}
	wg.Wait()
	tr := c.Trace(testStart, testStart, false)
	total := 0
	for _, n := range firsts {
		total += n
	}
	if total != paths*ttls || tr.Replies != paths*ttls || tr.ProbesSent != 4*paths*ttls {
		t.Errorf("firsts %d replies %d sent %d", total, tr.Replies, tr.ProbesSent)
	}
}

func TestCollectorNoAllocs(t *testing.T) {
	c := NewCollector(testDst, "d", testSrc, 16, 32, testSrcBase, testDstPort)
	from := netip.MustParseAddr("2001:db8::1") // an IPv6 address carries a zone pointer
	p, ttl := 1, 1
	if n := testing.AllocsPerRun(1000, func() {
		c.Sent(p, ttl)
		p, ttl = p%16+1, ttl%32+1
	}); n != 0 {
		t.Errorf("Sent: %v allocs per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		c.Reply(p, ttl, from, time.Millisecond, 11, 0, false)
		p, ttl = p%16+1, ttl%32+1
	}); n != 0 {
		t.Errorf("Reply: %v allocs per call", n)
	}
}

func BenchmarkCollectorReply(b *testing.B) {
	const paths, ttls = 64, 32
	from := netip.MustParseAddr("10.1.2.3")
	// first: every call answers a new probe (the table is cleared, off the
	// clock, when full); duplicate: every call is a duplicate.
	for _, dup := range []bool{false, true} {
		name := "first"
		if dup {
			name = "duplicate"
		}
		b.Run(name, func(b *testing.B) {
			c := NewCollector(testDst, "d", testSrc, paths, ttls, testSrcBase, testDstPort)
			if dup {
				for i := range paths * ttls {
					c.Reply(i%paths+1, i/paths+1, from, time.Millisecond, 11, 0, false)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == paths*ttls {
					i = 0
					if !dup {
						b.StopTimer()
						clear(c.cells)
						b.StartTimer()
					}
				}
				if c.Reply(i%paths+1, i/paths+1, from, time.Millisecond, 11, 0, false) == dup {
					b.Fatal("unexpected first/duplicate")
				}
				i++
			}
		})
	}
}
