package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// labDiamond returns n flows through the lab's 4-way diamond as a tracer
// sees it: r1 (10.0.0.1), one of 4 middle routers (10.1.i.2), r3 answering
// from the interface facing that router (10.2.i.2), the destination.
func labDiamond(n int) []flowSpec {
	out := make([]flowSpec, n)
	for i := range out {
		b := i%4 + 1
		out[i] = flowSpec{hops: []string{"10.0.0.1", fmt.Sprintf("10.1.%d.2", b), fmt.Sprintf("10.2.%d.2", b)}, reached: true}
	}
	return out
}

// nodeByAddr returns the node of addr at ttl.
func nodeByAddr(t *testing.T, g *Graph, addr string, ttl int) *Node {
	t.Helper()
	a := netip.MustParseAddr(addr)
	for i := range g.Nodes {
		if g.Nodes[i].Addr == a && g.Nodes[i].TTL == ttl {
			return &g.Nodes[i]
		}
	}
	t.Fatalf("no node %s at TTL %d", addr, ttl)
	return nil
}

func ids(from, to, step int) []int {
	var out []int
	for i := from; i <= to; i += step {
		out = append(out, i)
	}
	return out
}

// checkGraph checks the invariants of every graph: IDs are indices, nodes
// are ordered by TTL, links join consecutive TTLs, the flags match the
// links.
func checkGraph(t *testing.T, g *Graph) {
	t.Helper()
	succ := make([]int, len(g.Nodes))
	pred := make([]int, len(g.Nodes))
	for i, n := range g.Nodes {
		if int(n.ID) != i || (i > 0 && n.TTL < g.Nodes[i-1].TTL) || n.Silent == n.Addr.IsValid() || !slices.IsSorted(n.PathIDs) {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	for i, l := range g.Links {
		if g.Nodes[l.To].TTL != l.TTL+1 || g.Nodes[l.From].TTL != l.TTL || len(l.PathIDs) == 0 {
			t.Errorf("link %d: %+v", i, l)
		}
		if i > 0 && (l.From < g.Links[i-1].From || l.From == g.Links[i-1].From && l.To <= g.Links[i-1].To) {
			t.Errorf("links out of order at %d", i)
		}
		if !g.Nodes[l.To].Silent {
			succ[l.From]++
		}
		if !g.Nodes[l.From].Silent {
			pred[l.To]++
		}
	}
	for i, n := range g.Nodes {
		if n.Diverge != (succ[i] > 1) || n.Converge != (pred[i] > 1) {
			t.Errorf("node %d flags %v %v, %d successors %d predecessors", i, n.Diverge, n.Converge, succ[i], pred[i])
		}
	}
}

func TestGraphFourWayDiamond(t *testing.T) {
	tr := collect(t, labDiamond(16))
	g := BuildGraph(tr)
	checkGraph(t, g)
	if len(g.Nodes) != 10 || len(g.Links) != 12 {
		t.Fatalf("%d nodes %d links, want 10 and 12", len(g.Nodes), len(g.Links))
	}
	if !slices.Equal(g.Branching, []int{1, 4, 4, 1}) {
		t.Errorf("branching %v", g.Branching)
	}
	r1 := nodeByAddr(t, g, "10.0.0.1", 1)
	dst := nodeByAddr(t, g, "10.99.0.1", 4)
	if r1.ID != 0 || !r1.Diverge || r1.Converge || r1.Destination || !slices.Equal(r1.PathIDs, ids(1, 16, 1)) {
		t.Errorf("r1 %+v", r1)
	}
	if dst.ID != 9 || dst.Diverge || !dst.Converge || !dst.Destination {
		t.Errorf("destination %+v", dst)
	}
	for b := 1; b <= 4; b++ {
		m := nodeByAddr(t, g, fmt.Sprintf("10.1.%d.2", b), 2)
		if m.ID != NodeID(b) || m.Diverge || m.Converge || !slices.Equal(m.PathIDs, ids(b, 16, 4)) {
			t.Errorf("middle %d: %+v", b, m)
		}
	}
	// RTTs over the 4 flows through 10.1.2.2: path IDs 2, 6, 10, 14.
	m := nodeByAddr(t, g, "10.1.2.2", 2)
	if m.RTTMin != rttFor(2, 2) || m.RTTMax != rttFor(14, 2) || m.RTTAvg != rttFor(8, 2) {
		t.Errorf("RTT %v/%v/%v", m.RTTMin, m.RTTAvg, m.RTTMax)
	}
	if l := g.Links[0]; l.From != 0 || l.To != 1 || l.TTL != 1 || !slices.Equal(l.PathIDs, []int{1, 5, 9, 13}) {
		t.Errorf("link 0 %+v", l)
	}
	want := []Diamond{{Diverge: 0, Converge: 9, FirstTTL: 1, LastTTL: 4, MaxWidth: 4, Length: 3, Paths: 4}}
	if !reflect.DeepEqual(g.Diamonds, want) {
		t.Errorf("diamonds %+v, want %+v", g.Diamonds, want)
	}
	if len(g.Balancers) != 1 || g.Balancers[0].Node != 0 || g.Balancers[0].Uneven || g.Balancers[0].PValue != 1 || len(g.Balancers[0].Shares) != 4 {
		t.Fatalf("balancers %+v", g.Balancers)
	}
	for i, s := range g.Balancers[0].Shares {
		if s.Node != NodeID(i+1) || s.Flows != 4 || s.Fraction != 0.25 {
			t.Errorf("share %d: %+v", i, s)
		}
	}
	if len(g.PerPacket) != 0 {
		t.Errorf("per packet %+v", g.PerPacket)
	}
}

func TestGraphNestedDiamond(t *testing.T) {
	// r1 splits 2 ways, each branch splits 2 ways again, all meet at r4.
	specs := make([]flowSpec, 16)
	for i := range specs {
		a, b := i%2, (i/2)%2
		specs[i] = flowSpec{hops: []string{"10.0.0.1", fmt.Sprintf("10.1.%d.1", a), fmt.Sprintf("10.2.%d.1", 2*a+b), "10.4.0.1"}, reached: true}
	}
	g := BuildGraph(collect(t, specs))
	checkGraph(t, g)
	if !slices.Equal(g.Branching, []int{1, 2, 4, 1, 1}) {
		t.Errorf("branching %v", g.Branching)
	}
	r4 := nodeByAddr(t, g, "10.4.0.1", 4)
	want := []Diamond{{Diverge: 0, Converge: r4.ID, FirstTTL: 1, LastTTL: 4, MaxWidth: 4, Length: 3, Paths: 4}}
	if !reflect.DeepEqual(g.Diamonds, want) {
		t.Errorf("diamonds %+v, want only the outer one %+v", g.Diamonds, want)
	}
	// The inner diverge points are balancers all the same.
	if len(g.Balancers) != 3 || !nodeByAddr(t, g, "10.1.0.1", 2).Diverge || !nodeByAddr(t, g, "10.1.1.1", 2).Diverge {
		t.Errorf("balancers %+v", g.Balancers)
	}

	// Paths count the sequences along the links, not the flows: two
	// routers at TTL 2 each reaching both routers at TTL 3 make 4 paths
	// in a diamond 2 wide.
	specs = specs[:8]
	for i := range specs {
		specs[i] = flowSpec{hops: []string{"10.0.0.1", fmt.Sprintf("10.1.%d.1", i%2), fmt.Sprintf("10.2.%d.1", (i/2)%2), "10.4.0.1"}, reached: true}
	}
	g = BuildGraph(collect(t, specs))
	checkGraph(t, g)
	if len(g.Diamonds) != 1 || g.Diamonds[0].MaxWidth != 2 || g.Diamonds[0].Paths != 4 {
		t.Errorf("meshed diamond %+v", g.Diamonds)
	}
}

func TestGraphUnequalLengthDiamond(t *testing.T) {
	// Branch a is 2 hops from r1 to r3, branch b-c is 3: the flows reach
	// r3 at TTL 3 or 4, which are two nodes. The diamond converges at the
	// address.
	var specs []flowSpec
	for i := range 8 {
		if i%2 == 0 {
			specs = append(specs, flowSpec{hops: []string{"10.0.0.1", "10.1.1.1", "10.3.0.1"}, reached: true})
		} else {
			specs = append(specs, flowSpec{hops: []string{"10.0.0.1", "10.1.2.1", "10.1.2.2", "10.3.0.1"}, reached: true})
		}
	}
	tr := collect(t, specs)
	g := BuildGraph(tr)
	checkGraph(t, g)
	r3a, r3b := nodeByAddr(t, g, "10.3.0.1", 3), nodeByAddr(t, g, "10.3.0.1", 4)
	if r3a.ID == r3b.ID || r3a.Converge || r3b.Converge {
		t.Errorf("r3 nodes %+v %+v", r3a, r3b)
	}
	want := []Diamond{{Diverge: 0, Converge: r3a.ID, FirstTTL: 1, LastTTL: 4, MaxWidth: 2, Length: 3, Paths: 2}}
	if !reflect.DeepEqual(g.Diamonds, want) {
		t.Errorf("diamonds %+v, want %+v", g.Diamonds, want)
	}
	if !slices.Equal(g.Branching, []int{1, 2, 2, 2, 1}) {
		t.Errorf("branching %v", g.Branching)
	}
	vert, _, _ := render(t, tr, Options{Dedup: true})
	if !strings.Contains(vert, "\ndiamond: 10.0.0.1 (TTL 1) -> 10.3.0.1 (TTL 3-4): width 2, 2 paths\n") {
		t.Errorf("no diamond line:\n%s", vert)
	}
	if got := row(t, vert, "Path 2 (IDs 2,4,6,8)"); !slices.Equal(got, []string{"10.0.0.1 <", "10.1.2.1", "10.1.2.2", "> 10.3.0.1", "10.99.0.1"}) {
		t.Errorf("row %q\n%s", got, vert)
	}
}

func TestGraphSilentHopsNeverMerge(t *testing.T) {
	specs := []flowSpec{
		{hops: []string{"10.0.0.1", "", "10.2.0.1"}, reached: true},
		{hops: []string{"10.0.0.1", "", "10.2.0.1"}, reached: true},
		{hops: []string{"10.0.0.1", "10.1.1.1", "10.2.0.1"}, reached: true},
	}
	tr := collect(t, specs)
	g := BuildGraph(tr)
	checkGraph(t, g)
	if !slices.Equal(g.Branching, []int{1, 3, 1, 1}) {
		t.Errorf("branching %v", g.Branching)
	}
	// TTL 2: 10.1.1.1, then the silent nodes by path ID.
	s1, s2 := g.Nodes[2], g.Nodes[3]
	for i, n := range []Node{s1, s2} {
		if !n.Silent || n.Addr.IsValid() || n.TTL != 2 || !slices.Equal(n.PathIDs, []int{i + 1}) || n.RTTMax != 0 || n.Destination {
			t.Errorf("silent node %d: %+v", i, n)
		}
	}
	// A silent neighbour is no evidence of a branch: 10.0.0.1 has one
	// responding successor, 10.2.0.1 one responding predecessor.
	if g.Nodes[0].Diverge || nodeByAddr(t, g, "10.2.0.1", 3).Converge || len(g.Diamonds) != 0 || len(g.Balancers) != 0 {
		t.Errorf("silent hops make a branch: %+v %+v", g.Nodes, g.Diamonds)
	}
	if len(g.Links) != 7 {
		t.Errorf("%d links, want 7: %+v", len(g.Links), g.Links)
	}
	vert, _, _ := render(t, tr, Options{Dedup: true})
	if strings.Contains(vert, "marks:") || strings.Contains(vert, "<") || lastLine(vert) != "2 distinct paths among 3 path IDs" {
		t.Errorf("marks without a branch:\n%s", vert)
	}
}

func TestGraphSparseHops(t *testing.T) {
	// A flow without a hop at TTL 3 (never probed) has no link across it.
	r := netip.MustParseAddr
	tr := &Trace{Destination: testDst, Flows: []Flow{{PathID: 1, Hops: []Hop{
		{TTL: 1, Addr: r("10.0.0.1"), RTT: time.Millisecond},
		{TTL: 2, Addr: r("10.1.0.1"), RTT: time.Millisecond},
		{TTL: 4, Addr: testDst, RTT: time.Millisecond},
	}}}}
	g := BuildGraph(tr)
	checkGraph(t, g)
	if len(g.Nodes) != 3 || len(g.Links) != 1 || !slices.Equal(g.Branching, []int{1, 1, 0, 1}) || !g.Nodes[2].Destination {
		t.Errorf("graph %+v", g)
	}
	if g := BuildGraph(&Trace{}); len(g.Nodes) != 0 || len(g.Links) != 0 || len(g.Diamonds) != 0 {
		t.Errorf("empty graph %+v", g)
	}
}

// unevenSplit returns n flows of which the path IDs that are multiples of
// every take 10.1.2.2 and the others 10.1.1.2.
func unevenSplit(n, every int) []flowSpec {
	out := make([]flowSpec, n)
	for i := range out {
		b := 1
		if (i+1)%every == 0 {
			b = 2
		}
		out[i] = flowSpec{hops: []string{"10.0.0.1", fmt.Sprintf("10.1.%d.2", b), "10.2.0.1"}, reached: true}
	}
	return out
}

func TestGraphUnevenSplit(t *testing.T) {
	// 28 of 32 flows on one of 2 branches: chi-square 18 with 1 degree of
	// freedom, p = erfc(3) = 2.2e-5.
	tr := collect(t, unevenSplit(32, 8))
	g := BuildGraph(tr)
	if len(g.Balancers) != 1 {
		t.Fatalf("balancers %+v", g.Balancers)
	}
	lb := g.Balancers[0]
	want := []BranchShare{{Node: 1, Flows: 28, Fraction: 0.875}, {Node: 2, Flows: 4, Fraction: 0.125}}
	if lb.Node != 0 || lb.TTL != 1 || !lb.Uneven || !reflect.DeepEqual(lb.Shares, want) || math.Abs(lb.PValue-math.Erfc(3)) > 1e-12 {
		t.Errorf("balancer %+v", lb)
	}
	vert, horiz, js := render(t, tr, Options{Dedup: true})
	for _, out := range []string{vert, horiz} {
		if !strings.Contains(out, "\nuneven split at 10.0.0.1 (TTL 1): 10.1.1.2 28/32, 10.1.2.2 4/32 (chi-square p = 2.2e-05)\n") {
			t.Errorf("no uneven line:\n%s", out)
		}
		if lastLine(out) != "2 distinct paths among 32 path IDs" {
			t.Errorf("last line %q", lastLine(out))
		}
	}
	if !strings.Contains(js, `"balancers":[{"node":0,"ttl":1,"shares":[{"node":1,"flows":28,"fraction":0.875},{"node":2,"flows":4,"fraction":0.125}],"uneven":true,"p_value":2.209e-05}]`) {
		t.Errorf("JSON balancers:\n%s", js)
	}

	// 16 and 16: even.
	g = BuildGraph(collect(t, unevenSplit(32, 2)))
	if lb := g.Balancers[0]; lb.Uneven || lb.PValue != 1 || lb.Shares[0].Flows != 16 {
		t.Errorf("even split %+v", lb)
	}
	// 13, 1, 1, 1 of 16 is lopsided (p = 6e-6) but 4 flows expected per
	// branch are too few for the test.
	specs := make([]flowSpec, 16)
	for i := range specs {
		b := 1
		if i >= 13 {
			b = i - 11
		}
		specs[i] = flowSpec{hops: []string{"10.0.0.1", fmt.Sprintf("10.1.%d.2", b), "10.2.0.1"}, reached: true}
	}
	g = BuildGraph(collect(t, specs))
	if lb := g.Balancers[0]; lb.Uneven || lb.PValue > 1e-5 || len(lb.Shares) != 4 {
		t.Errorf("few flows %+v", lb)
	}
}

func TestGraphPerPacket(t *testing.T) {
	r := netip.MustParseAddr
	feed := func(observe bool) *Trace {
		c := NewCollector(testDst, "d", testSrc, 4, 8, testSrcBase, testDstPort)
		for p := 1; p <= 4; p++ {
			for ttl := 1; ttl <= 3; ttl++ {
				c.Sent(p, ttl)
			}
			c.Reply(p, 1, r("10.0.0.1"), time.Millisecond, 11, 0, false)
			c.Reply(p, 2, r("10.1.1.2"), 2*time.Millisecond, 11, 0, false)
			c.Reply(p, 3, testDst, 3*time.Millisecond, 3, 3, true)
		}
		c.Reply(2, 4, testDst, 3*time.Millisecond, 3, 3, true) // in flight, past the destination
		if observe {
			// Path ID 3's retry at TTL 2 is answered by another router:
			// per-packet load balancing.
			c.Observe(3, 2, r("10.1.2.2"))
			c.Observe(3, 2, r("10.1.2.2"))             // recorded once
			c.Observe(3, 2, r("10.1.1.2"))             // the first answer's address
			c.Observe(3, 2, r("10.1.3.2"))             // a third one
			c.Observe(1, 5, r("10.1.2.2"))             // unanswered probe
			c.Observe(2, 4, r("10.1.2.2"))             // past the flow's end
			c.Observe(9, 2, r("10.1.2.2"))             // out of range
			c.Observe(1, 1, r("10.0.0.1"))             // duplicate
			c.Observe(4, 2, netip.Addr{})              // nothing
			c.Observe(1, 2, r("2001:db8::1"))          // another flow
			c.Observe(1, 2, r("2001:db8::1"))          // recorded once
			c.Observe(1, 2, r("2001:db8::1%eth0"))     // a zone is another address
			c.Observe(0, 0, r("2001:db8::1"))          // out of range
			c.Observe(1, 9, r("2001:db8::1"))          // out of range
			c.Observe(1, 8, netip.MustParseAddr("::")) // unanswered
		}
		return c.Trace(testStart, testStart, false)
	}
	plain, tr := feed(false), feed(true)
	want := []PerPacketHop{
		{PathID: 1, TTL: 2, Addrs: []netip.Addr{r("10.1.1.2"), r("2001:db8::1"), r("2001:db8::1%eth0")}},
		{PathID: 3, TTL: 2, Addrs: []netip.Addr{r("10.1.1.2"), r("10.1.2.2"), r("10.1.3.2")}},
	}
	if !reflect.DeepEqual(tr.PerPacket, want) {
		t.Errorf("PerPacket %v, want %v", tr.PerPacket, want)
	}
	if plain.PerPacket != nil {
		t.Errorf("PerPacket without Observe: %v", plain.PerPacket)
	}
	// No path is invented: the graph, but for PerPacket, is the same.
	g, gp := BuildGraph(tr), BuildGraph(plain)
	if !reflect.DeepEqual(g.PerPacket, want) {
		t.Errorf("Graph.PerPacket %v", g.PerPacket)
	}
	g.PerPacket = nil
	if !reflect.DeepEqual(g, gp) || len(g.Nodes) != 3 || len(tr.UniquePaths()) != 1 {
		t.Errorf("per-packet answers changed the graph: %+v", g)
	}
	vert, _, js := render(t, tr, Options{Dedup: true})
	if !strings.Contains(vert, "\nper-packet load balancing at TTL 2, path ID 3: answers from 10.1.1.2, 10.1.2.2, 10.1.3.2\n") ||
		lastLine(vert) != "1 distinct path among 4 path IDs" {
		t.Errorf("vert:\n%s", vert)
	}
	if !strings.Contains(js, `"per_packet":[{"path_id":1,"ttl":2,"addrs":["10.1.1.2","2001:db8::1","2001:db8::1%eth0"]},{"path_id":3,"ttl":2,"addrs":["10.1.1.2","10.1.2.2","10.1.3.2"]}]`) {
		t.Errorf("JSON:\n%s", js)
	}
	// ReadJSON restores them.
	for got, err := range ReadJSON(strings.NewReader(js)) {
		if err != nil || !reflect.DeepEqual(got.PerPacket, want) {
			t.Errorf("read back %v (%v)", got.PerPacket, err)
		}
	}
	for got, err := range ReadJSON(strings.NewReader(strings.Replace(js, `"graph":`, `"x":`, 1))) {
		if err != nil || got.PerPacket != nil {
			t.Errorf("without a graph: %v (%v)", got.PerPacket, err)
		}
	}
}

func TestObserveNoAllocs(t *testing.T) {
	c := NewCollector(testDst, "d", testSrc, 16, 32, testSrcBase, testDstPort)
	a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for p := 1; p <= 16; p++ {
		for ttl := 1; ttl <= 32; ttl++ {
			c.Reply(p, ttl, a, time.Millisecond, 11, 0, false)
		}
	}
	c.Observe(1, 1, b)
	p, ttl := 1, 1
	if n := testing.AllocsPerRun(1000, func() {
		c.Observe(p, ttl, a) // the common case: a duplicate from the same address
		c.Observe(1, 1, b)   // already recorded
		p, ttl = p%16+1, ttl%32+1
	}); n != 0 {
		t.Errorf("Observe: %v allocs per call", n)
	}
}

func TestGraphJSON(t *testing.T) {
	specs := labDiamond(4)
	specs[1].hops = []string{"10.0.0.1", "", "10.2.2.2"}
	var b bytes.Buffer
	if err := WriteJSON(&b, collect(t, specs), Options{}); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b.Bytes()) || bytes.Count(b.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("not one line of JSON:\n%s", b.String())
	}
	var top struct {
		Graph map[string]json.RawMessage `json:"graph"`
	}
	mustUnmarshal(t, b.Bytes(), &top)
	checkKeys(t, "graph", top.Graph, "nodes", "links", "diamonds", "branching", "balancers", "per_packet")
	var nodes []map[string]json.RawMessage
	mustUnmarshal(t, top.Graph["nodes"], &nodes)
	silent := 0
	for _, n := range nodes {
		checkKeys(t, "node", n, "id", "addr", "ttl", "silent", "path_ids", "destination", "diverge", "converge", "rtt_ms")
		if string(n["silent"]) == "true" {
			silent++
			if string(n["addr"]) != "null" || string(n["rtt_ms"]) != "null" {
				t.Errorf("silent node %s %s", n["addr"], n["rtt_ms"])
			}
		}
	}
	if silent != 1 || len(nodes) != 10 {
		t.Errorf("%d nodes, %d silent", len(nodes), silent)
	}
	var links []map[string]json.RawMessage
	mustUnmarshal(t, top.Graph["links"], &links)
	for _, l := range links {
		checkKeys(t, "link", l, "from", "to", "ttl", "path_ids")
	}
	want := map[string]string{
		"diamonds":   `[{"diverge":0,"converge":9,"first_ttl":1,"last_ttl":4,"max_width":4,"length":3,"paths":4}]`,
		"branching":  `[1,4,4,1]`,
		"balancers":  `[{"node":0,"ttl":1,"shares":[{"node":1,"flows":1,"fraction":0.3333},{"node":2,"flows":1,"fraction":0.3333},{"node":3,"flows":1,"fraction":0.3333}],"uneven":false,"p_value":1}]`,
		"per_packet": `[]`,
	}
	for k, w := range want {
		if got := string(top.Graph[k]); got != w {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	if !strings.Contains(b.String(), `{"id":0,"addr":"10.0.0.1","ttl":1,"silent":false,"path_ids":[1,2,3,4],"destination":false,"diverge":true,"converge":false,"rtt_ms":{"min":1.001,"avg":1.002,"max":1.004}}`) {
		t.Errorf("node 0:\n%s", b.String())
	}
	// An empty trace has an empty graph, not nulls.
	b.Reset()
	if err := WriteJSON(&b, &Trace{}, Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"graph":{"nodes":[],"links":[],"diamonds":[],"branching":[],"balancers":[],"per_packet":[]}`) {
		t.Errorf("empty graph:\n%s", b.String())
	}
}

func TestDedupMarks(t *testing.T) {
	vert, horiz, _ := render(t, collect(t, labDiamond(8)), Options{Dedup: true})
	want := "traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 8 path IDs, max TTL 16\n" +
		"TTL:              | 1                 | 2                 | 3                 | 4                 |\n" +
		"Path 1 (IDs 1,5)  | 10.0.0.1 <        | 10.1.1.2          | 10.2.1.2          | > 10.99.0.1       |\n" +
		"Path 2 (IDs 2,6)  | 10.0.0.1 <        | 10.1.2.2          | 10.2.2.2          | > 10.99.0.1       |\n" +
		"Path 3 (IDs 3,7)  | 10.0.0.1 <        | 10.1.3.2          | 10.2.3.2          | > 10.99.0.1       |\n" +
		"Path 4 (IDs 4,8)  | 10.0.0.1 <        | 10.1.4.2          | 10.2.4.2          | > 10.99.0.1       |\n" +
		"marks: < paths diverge after this hop, > paths converge at this hop\n" +
		"diamond: 10.0.0.1 (TTL 1) -> 10.99.0.1 (TTL 4): width 4, 4 paths\n" +
		"RTT min / avg / max:\n" +
		"  TTL 1  10.0.0.1      1.001 / 1.004 / 1.008 ms\n" +
		"  TTL 2  10.1.1.2      2.001 / 2.003 / 2.005 ms\n" +
		"  TTL 2  10.1.2.2      2.002 / 2.004 / 2.006 ms\n" +
		"  TTL 2  10.1.3.2      2.003 / 2.005 / 2.007 ms\n" +
		"  TTL 2  10.1.4.2      2.004 / 2.006 / 2.008 ms\n" +
		"  TTL 3  10.2.1.2      3.001 / 3.003 / 3.005 ms\n" +
		"  TTL 3  10.2.2.2      3.002 / 3.004 / 3.006 ms\n" +
		"  TTL 3  10.2.3.2      3.003 / 3.005 / 3.007 ms\n" +
		"  TTL 3  10.2.4.2      3.004 / 3.006 / 3.008 ms\n" +
		"  TTL 4  10.99.0.1     4.001 / 4.005 / 4.008 ms\n" +
		"  Path 1 at 10.99.0.1  4.001 / 4.003 / 4.005 ms\n" +
		"  Path 2 at 10.99.0.1  4.002 / 4.004 / 4.006 ms\n" +
		"  Path 3 at 10.99.0.1  4.003 / 4.005 / 4.007 ms\n" +
		"  Path 4 at 10.99.0.1  4.004 / 4.006 / 4.008 ms\n" +
		"4 distinct paths among 8 path IDs\n"
	if vert != want {
		t.Errorf("got\n%s\nwant\n%s", vert, want)
	}
	if got := row(t, horiz, "4"); !slices.Equal(got, slices.Repeat([]string{"> 10.99.0.1"}, 4)) {
		t.Errorf("horiz:\n%s", horiz)
	}
	// Without Dedup, no marks and no notes.
	vert, _, _ = render(t, collect(t, labDiamond(8)), Options{})
	if strings.ContainsAny(vert, "<>") || strings.Contains(vert, "diamond") {
		t.Errorf("marks without Dedup:\n%s", vert)
	}
}

// benchTrace returns flows x ttls hops through chained diamonds of widths
// 1, 2, 4, 8, 4, 2, 1, ... with a silent hop now and then, the flows
// spread by a hash of path ID and TTL.
func benchTrace(flows, ttls int) *Trace {
	widths := []int{1, 2, 4, 8, 4, 2}
	tr := &Trace{Destination: testDst, Flows: make([]Flow, flows)}
	for p := 1; p <= flows; p++ {
		f := Flow{PathID: p, Hops: make([]Hop, ttls), Reached: true, ReachedTTL: ttls}
		for ttl := 1; ttl <= ttls; ttl++ {
			h := uint32(p)*2654435761 ^ uint32(ttl)*40503
			h ^= h >> 13
			w := widths[ttl%len(widths)]
			hop := Hop{TTL: ttl, RTT: time.Duration(ttl) * time.Millisecond, ICMPType: 11}
			switch {
			case ttl == ttls:
				hop.Addr, hop.ICMPType, hop.ICMPCode = testDst, 3, 3
			case h%97 == 0:
				hop = Hop{TTL: ttl}
			default:
				hop.Addr = netip.AddrFrom4([4]byte{10, byte(ttl), byte(int(h) % w), 1})
			}
			f.Hops[ttl-1] = hop
		}
		tr.Flows[p-1] = f
	}
	return tr
}

func BenchmarkBuildGraph(b *testing.B) {
	tr := benchTrace(256, 30)
	var g *Graph
	b.ReportAllocs()
	for b.Loop() {
		g = BuildGraph(tr)
	}
	b.ReportMetric(float64(len(g.Nodes)), "nodes")
	b.ReportMetric(float64(len(g.Diamonds)), "diamonds")
}

// TestGraphNodeASN checks that a node takes the AS and IXP of its address
// from the hops that make it, and that the JSON graph carries them, only
// when known.
func TestGraphNodeASN(t *testing.T) {
	tr := collect(t, labDiamond(8))
	tr.HasASN = true
	asn := map[string]uint32{"10.0.0.1": 64500, "10.1.1.2": 64501, "10.1.2.2": 64501, "10.1.3.2": 64502}
	for i := range tr.Flows {
		for j := range tr.Flows[i].Hops {
			h := &tr.Flows[i].Hops[j]
			a := h.Addr.String()
			// 10.1.2.2 is known from the hops of the later flows alone.
			if a == "10.1.2.2" && tr.Flows[i].PathID <= 4 {
				continue
			}
			h.ASN = asn[a]
			if a == "10.1.3.2" {
				h.IXP = "LAB-IX"
			}
		}
	}
	g := BuildGraph(tr)
	checkGraph(t, g)
	for a, w := range asn {
		n := nodeByAddr(t, g, a, map[bool]int{true: 1, false: 2}[a == "10.0.0.1"])
		if n.ASN != w {
			t.Errorf("%s: AS%d, want AS%d", a, n.ASN, w)
		}
		if (n.IXP == "LAB-IX") != (a == "10.1.3.2") {
			t.Errorf("%s: IXP %q", a, n.IXP)
		}
	}
	if n := nodeByAddr(t, g, "10.1.4.2", 2); n.ASN != 0 || n.IXP != "" {
		t.Errorf("10.1.4.2: AS%d %q, want none", n.ASN, n.IXP)
	}

	var b bytes.Buffer
	if err := WriteJSON(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	var top struct {
		Graph struct {
			Nodes []map[string]json.RawMessage `json:"nodes"`
		} `json:"graph"`
	}
	mustUnmarshal(t, b.Bytes(), &top)
	seen := 0
	for _, n := range top.Graph.Nodes {
		var addr string
		_ = json.Unmarshal(n["addr"], &addr)
		w, known := asn[addr]
		if got, ok := n["asn"]; ok != known || (known && string(got) != fmt.Sprint(w)) {
			t.Errorf("node %s: asn %s, want %d", addr, got, w)
		}
		if got, ok := n["ixp"]; ok != (addr == "10.1.3.2") || (ok && string(got) != `"LAB-IX"`) {
			t.Errorf("node %s: ixp %s", addr, got)
		}
		if known {
			seen++
		}
	}
	if seen != len(asn) {
		t.Errorf("%d nodes with an AS, want %d", seen, len(asn))
	}
}
