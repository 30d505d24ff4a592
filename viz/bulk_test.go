package viz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// scanTraces returns the traces of a scan of the n hosts from 10.21.0.1 on
// through the diamond4 lab (r1, 4 branches, r3) with 16 path IDs: path ID p
// of destination i takes branch (p+i) mod 4. One destination in 25 (i%25 ==
// 3) did not see branch i%4, and one in 1000 (i%1000 == 999) did not
// answer: its flows end at r3. The flows of a branch share their hops, so
// that 65,534 traces fit in memory.
func scanTraces(n int) []*analysis.Trace {
	base := netip.MustParseAddr("10.21.0.0").As4()
	first := uint32(base[0])<<24 | uint32(base[1])<<16
	ts := make([]*analysis.Trace, 0, n)
	for i := range n {
		v := first + uint32(i+1)
		dst := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		reached := i%1000 != 999
		var branches [4][]analysis.Hop
		for k := range branches {
			branches[k] = scanHops(k, dst, reached, i)
		}
		t := &analysis.Trace{
			Destination: dst, Name: dst.String(), Source: netip.MustParseAddr("10.0.0.2"), Protocol: "udp", MaxTTL: 30,
			Start: testStart, End: testStart.Add(time.Second),
		}
		for p := 1; p <= 16; p++ {
			k := (p + i) % 4
			if i%25 == 3 && k == i%4 {
				k = (k + 1) % 4
			}
			f := analysis.Flow{PathID: p, SrcPort: uint16(33452 + p), DstPort: 33452, Hops: branches[k], ProbedTTL: 4}
			if reached {
				f.Reached, f.ReachedTTL = true, 4
			}
			t.Flows = append(t.Flows, f)
			t.ProbesSent += 4
			t.Replies += len(f.Hops)
		}
		ts = append(ts, t)
	}
	return ts
}

// scanHops returns the hops of branch k (0..3) of the diamond towards dst.
func scanHops(k int, dst netip.Addr, reached bool, i int) []analysis.Hop {
	hops := []analysis.Hop{
		{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1"), ICMPType: 11},
		{TTL: 2, Addr: netip.AddrFrom4([4]byte{10, 1, byte(k + 1), 2}), ICMPType: 11},
		{TTL: 3, Addr: netip.AddrFrom4([4]byte{10, 2, byte(k + 1), 2}), ICMPType: 11},
	}
	if reached {
		hops = append(hops, analysis.Hop{TTL: 4, Addr: dst, ICMPType: 3, ICMPCode: 3})
	}
	for h := range hops {
		hops[h].RTT = time.Duration(h+1)*100*time.Microsecond + time.Duration(i%50)*time.Microsecond
	}
	return hops
}

func TestBuildBulk(t *testing.T) {
	ts := scanTraces(1000)
	bk := BuildBulk(ts)
	if bk.Source != "10.0.0.2" || bk.Destinations != 1000 || bk.Reached != 999 {
		t.Errorf("source %q, %d destinations, %d reached", bk.Source, bk.Destinations, bk.Reached)
	}
	var ids []string
	for _, n := range bk.Nodes {
		ids = append(ids, n.ID)
	}
	if want := "source 10.0.0.1 10.1.1.2 10.1.2.2 10.1.3.2 10.1.4.2 10.2.1.2 10.2.2.2 10.2.3.2 10.2.4.2"; strings.Join(ids, " ") != want {
		t.Fatalf("nodes %q, want %s", ids, want)
	}
	r1 := bk.Nodes[1]
	if r1.Level != 1 || !r1.Diverge || r1.Destinations != 1000 || r1.RTT == nil || r1.RTT.Min != 0.1 || r1.RTT.Max != 0.149 {
		t.Errorf("r1: %+v", r1)
	}
	// All 4 branches (reached or not), and 3 of 4 for each missing branch.
	type want struct {
		label string
		count int
		paths int
	}
	var got []want
	for _, g := range bk.Groups {
		got = append(got, want{g.Label, g.Count, len(g.Paths)})
	}
	wants := []want{
		{"within 10.21.0.0/22 - 960 destinations\n959 reached, 1 not", 960, 4},
		{"within 10.21.0.0/22 - 10 destinations\n10 reached", 10, 3},
		{"within 10.21.0.0/22 - 10 destinations\n10 reached", 10, 3},
		{"within 10.21.0.0/22 - 10 destinations\n10 reached", 10, 3},
		{"within 10.21.0.0/22 - 10 destinations\n10 reached", 10, 3},
	}
	if len(got) != len(wants) {
		t.Fatalf("groups %+v", got)
	}
	for i := range wants {
		if got[i] != wants[i] {
			t.Errorf("group %d: %+v, want %+v", i, got[i], wants[i])
		}
	}
	checkBlocks(t, bk, 0)
	checkEdges(t, bk)
	checkMembers(t, bk)
}

// checkBlocks checks the blocks of group gi: every member once in a block
// without blocks under it (which lists at most MaxExpand), at most
// MaxExpand blocks under any, each inside the prefix its label names.
func checkBlocks(t *testing.T, bk *Bulk, gi int) {
	t.Helper()
	g := bk.Groups[gi]
	if len(g.Blocks) == 0 {
		t.Fatalf("group %d of %d members has no blocks", gi, g.Count)
	}
	children := map[int]int{}
	leaf := map[int]bool{}
	for i, b := range g.Blocks {
		children[b.Parent]++
		leaf[i] = true
		if b.Parent >= 0 {
			delete(leaf, b.Parent)
			if p := g.Blocks[b.Parent]; b.Lo < p.Lo || b.Hi > p.Hi {
				t.Errorf("block %d %+v outside its parent %+v", i, b, p)
			}
		}
		pfx := netip.MustParsePrefix(strings.SplitN(b.Label, "\n", 2)[0])
		for _, m := range bk.Members[gi][b.Lo:b.Hi] {
			if !pfx.Contains(netip.MustParseAddr(m.Addr)) {
				t.Fatalf("block %q holds %s", b.Label, m.Addr)
			}
		}
		if n := b.Hi - b.Lo; !strings.Contains(b.Label, fmt.Sprintf("\n%d destinations", n)) {
			t.Errorf("block %q of %d", b.Label, n)
		}
	}
	covered := make([]int, g.Count)
	for i := range leaf {
		b := g.Blocks[i]
		if b.Hi-b.Lo > MaxExpand {
			t.Errorf("block %+v lists more than %d", b, MaxExpand)
		}
		for m := b.Lo; m < b.Hi; m++ {
			covered[m]++
		}
	}
	for p, n := range children {
		if n > MaxExpand {
			t.Errorf("%d blocks under %d", n, p)
		}
	}
	if slices.ContainsFunc(covered, func(n int) bool { return n != 1 }) {
		t.Errorf("members not listed once each: %v", covered)
	}
}

func checkEdges(t *testing.T, bk *Bulk) {
	t.Helper()
	var src []BulkEdge
	toGroup := map[string]int{}
	for _, e := range bk.Edges {
		if e.From == "source" {
			src = append(src, e)
		}
		if e.To == "g0" {
			toGroup[e.From] += e.Destinations
		}
		if len(e.Sample) > MaxSample || len(e.Sample) > e.Destinations || e.Path < 0 {
			t.Errorf("edge %+v", e)
		}
		if !slices.IsSortedFunc(e.Sample, func(a, b [2]string) int {
			return netip.MustParseAddr(a[0]).Compare(netip.MustParseAddr(b[0]))
		}) {
			t.Errorf("edge %s: sample %v not by address", e.ID, e.Sample)
		}
	}
	// One edge per router path from the source: 4 paths, each taken by
	// the destinations whose group takes it.
	if len(src) != 4 {
		t.Fatalf("%d edges from the source, want 4", len(src))
	}
	e := src[0]
	if e.Destinations != 960+30 || e.Sample[0] != [2]string{"10.21.0.1", "4,8,12,16"} || e.Sample[1][0] != "10.21.0.2" {
		t.Errorf("first edge from the source: %+v", e)
	}
	if len(toGroup) != 4 || toGroup["10.2.1.2"] != 960 {
		t.Errorf("edges into group 0 carry %v", toGroup)
	}
	// Every path ID of the destinations of a group takes one of the
	// edges into it.
	ids := 0
	for _, e := range bk.Edges {
		if e.To == "g0" {
			ids += e.PathIDs
		}
	}
	if ids != 960*16 {
		t.Errorf("%d path IDs into group 0, want %d", ids, 960*16)
	}
}

func checkMembers(t *testing.T, bk *Bulk) {
	t.Helper()
	ms := bk.Members[0]
	if len(ms) != 960 || ms[0].Addr != "10.21.0.1" || ms[0].PathIDs != "4,8,12,16|1,5,9,13|2,6,10,14|3,7,11,15" || !ms[0].Reached || ms[0].RTT != 0.4 {
		t.Errorf("first member %+v", ms[0])
	}
	js, err := json.Marshal(ms[:2])
	if err != nil || string(js) != `[["10.21.0.1","4,8,12,16|1,5,9,13|2,6,10,14|3,7,11,15",0.4,1],["10.21.0.2","3,7,11,15|4,8,12,16|1,5,9,13|2,6,10,14",0.401,1]]` {
		t.Errorf("members as JSON: %s %v", js, err)
	}
	for _, m := range ms {
		if m.Addr == "10.21.3.232" && (m.Reached || m.RTT != 0 || m.Summary != "") {
			t.Errorf("unreached member %+v", m)
		}
	}
}

// TestBuildBulkOddities: a group of one is drawn as its destination, a
// name and a summary that differs from the group's paths are kept, and
// more than MaxParallel router paths share one grey edge.
func TestBuildBulkOddities(t *testing.T) {
	var ts []*analysis.Trace
	for i := range 8 {
		dst := fmt.Sprintf("10.100.0.%d", i+1)
		ts = append(ts, trace(dst, "host.example", flow(1, dst, "10.0.0.1", fmt.Sprintf("10.50.0.%d", i), dst)))
	}
	// Two distinct paths (one reached, one not) on one router path.
	ts = append(ts, trace("10.100.1.1", "10.100.1.1", flow(1, "10.100.1.1", "10.0.0.1", "10.60.0.1", "10.100.1.1"), flow(2, "10.100.1.1", "10.0.0.1", "10.60.0.1")))
	bk := BuildBulk(ts)
	if len(bk.Groups) != 9 || bk.Groups[0].Member == nil || bk.Members[0] != nil {
		t.Fatalf("groups %+v", bk.Groups)
	}
	m := bk.Groups[0].Member
	if m.Name != "host.example" || bk.Groups[0].Label != "10.100.0.1\nhost.example" || m.Summary != "" {
		t.Errorf("group of one: %+v, label %q", m, bk.Groups[0].Label)
	}
	if m := bk.Groups[8].Member; m.Summary != "2 distinct paths among 2 path IDs" || m.PathIDs != "1,2" {
		t.Errorf("two paths on one router path: %+v", m)
	}
	var grey []BulkEdge
	for _, e := range bk.Edges {
		if e.Path < 0 {
			grey = append(grey, e)
		}
	}
	if len(grey) != 1 || grey[0].From != "source" || grey[0].Paths != 9 || grey[0].Destinations != 9 || grey[0].PathIDs != 10 || len(grey[0].Sample) != MaxSample {
		t.Errorf("grey edges %+v", grey)
	}
}

// TestRenderBulk checks the page of several destinations: the grouped
// data, the members apart, the bulk view's script, within the size limit.
func TestRenderBulk(t *testing.T) {
	ts := scanTraces(4094)
	want := BuildBulk(ts).Groups[0].Count
	page, err := renderTraces(ts, fakeLib)
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, bad := range []string{"/*TF:", "<!--TF:", "\"via\""} {
		if strings.Contains(s, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if n := strings.Count(s, `<script type="application/json" id="tf-members-`); n != 5 {
		t.Errorf("%d elements of members, want one per group", n)
	}
	_, rest, _ := strings.Cut(s, `<script type="application/json" id="tf-members-0">`)
	raw, _, _ := strings.Cut(rest, "</script>")
	var members [][]any
	if err := json.Unmarshal([]byte(raw), &members); err != nil || len(members) != want {
		t.Fatalf("members of group 0: %v, %d", err, len(members))
	}
	if !strings.Contains(s, "<title>traceflow-fast to 4094 destinations</title>") || !strings.Contains(s, "function openNode(id)") {
		t.Error("not the bulk view")
	}
	// The library and the page of one destination are about 660 KB.
	if n := len(page) - len(fakeLib); n > 2_000_000-700_000 {
		t.Errorf("%d bytes of page for 4,094 destinations", n)
	}
	t.Logf("%d KiB without the library", (len(page)-len(fakeLib))>>10)
	if bytes.Count(page, []byte("10.21.15.254")) != 1 {
		t.Error("the last destination is not listed once")
	}
}

// TestBuildBulkIPv6 groups 300 IPv6 destinations: prefixes and blocks of
// 128-bit addresses.
func TestBuildBulkIPv6(t *testing.T) {
	var ts []*analysis.Trace
	for i := range 300 {
		dst := fmt.Sprintf("fd00:21::%x", i+1)
		ts = append(ts, trace(dst, dst, flow(1, dst, "fd00::1", "fd00:1:1::2", dst), flow(2, dst, "fd00::1", "fd00:1:2::2", dst)))
	}
	bk := BuildBulk(ts)
	if len(bk.Groups) != 1 || bk.Groups[0].Label != "fd00:21::/119 - 300 destinations\n300 reached" || bk.Nodes[1].ID != "fd00::1" {
		t.Fatalf("groups %+v, nodes %+v", bk.Groups, bk.Nodes)
	}
	checkBlocks(t, bk, 0)
	if b := bk.Groups[0].Blocks[0]; b.Label != "fd00:21::/125\n7 destinations" {
		t.Errorf("first block %+v", b)
	}
}

// TestNewHandlerBulk serves the page of several destinations, the same
// WriteHTML writes, and the union graph at /nodes.json.
func TestNewHandlerBulk(t *testing.T) {
	ts := scanTraces(300)
	h, err := NewHandler(ts)
	if !Available() {
		if !errors.Is(err, ErrNoLibrary) || h != nil {
			t.Fatalf("without the library: %v, %v", h, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := WriteHTML(&want, ts); err != nil {
		t.Fatal(err)
	}
	for path, check := range map[string]func([]byte) bool{
		"/": func(b []byte) bool { return bytes.Equal(b, want.Bytes()) },
		"/nodes.json": func(b []byte) bool {
			var d Data
			return json.Unmarshal(b, &d) == nil && len(d.Destinations) == 300 && len(d.Nodes[1].Via) == 300
		},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !check(rec.Body.Bytes()) {
			t.Errorf("GET %s: %d, %d bytes", path, rec.Code, rec.Body.Len())
		}
	}
}
