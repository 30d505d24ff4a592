package analysis

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// A probe sent again after its answer counts as a repeat, and its answers
// as later ones, from the first address or another.
func TestCollectorRepeats(t *testing.T) {
	r := netip.MustParseAddr
	c := NewCollector(testDst, "d", testSrc, 4, 8, testSrcBase, testDstPort)
	c.Sent(1, 2)
	c.Sent(1, 2) // a retry before any answer: no repeat
	c.Reply(1, 2, r("10.1.1.2"), time.Millisecond, 11, 0, false)
	for range 3 {
		c.Sent(1, 2)
	}
	if c.Reply(1, 2, r("10.1.1.2"), time.Millisecond, 11, 0, false) {
		t.Error("a repeat's answer taken as the first")
	}
	c.Sent(2, 2)
	c.Reply(2, 2, r("10.1.1.2"), time.Millisecond, 11, 0, false)
	c.Sent(2, 2)
	if !c.Reply(2, 2, r("10.1.2.2"), time.Millisecond, 11, 0, false) {
		c.Observe(2, 2, r("10.1.2.2"))
	}
	for range 20 {
		c.Sent(3, 1)
		c.Reply(3, 1, r("10.0.0.1"), time.Millisecond, 11, 0, false)
	}
	rows := c.Rows(nil)
	for _, tc := range []struct {
		p, ttl, repeats, later int
		differs                bool
	}{{1, 2, 3, 1, false}, {2, 2, 1, 1, true}, {3, 1, 15, 15, false}, {1, 1, 0, 0, false}} {
		if len(rows[tc.p-1]) < tc.ttl {
			t.Errorf("path ID %d: row %v", tc.p, rows[tc.p-1])
			continue
		}
		o := &rows[tc.p-1][tc.ttl-1]
		if echoes := tc.later; tc.differs && o.Echoes() != 0 || !tc.differs && o.Echoes() != echoes {
			t.Errorf("path ID %d TTL %d: %d answers from the first address, want %d", tc.p, tc.ttl, o.Echoes(), echoes)
		}
		if o.Repeats() != tc.repeats || o.Later() != tc.later || o.Differs() != tc.differs {
			t.Errorf("path ID %d TTL %d: repeats %d, later %d, differs %v; want %d, %d, %v",
				tc.p, tc.ttl, o.Repeats(), o.Later(), o.Differs(), tc.repeats, tc.later, tc.differs)
		}
	}
	if o := &rows[1][1]; o.From() != r("10.1.1.2") {
		t.Errorf("the first answer changed to %v", o.From())
	}
	want := []OtherAnswer{{PathID: 2, TTL: 2, Addr: r("10.1.2.2")}}
	if got := c.AppendOthers(nil); !reflect.DeepEqual(got, want) {
		t.Errorf("AppendOthers = %v, want %v", got, want)
	}
	if tr := c.Trace(testStart, testStart, false); tr.ProbesSent != 2+3+2+20 || tr.Replies != 3 {
		t.Errorf("sent %d, replies %d", tr.ProbesSent, tr.Replies)
	}
}

// perPacketTrace is r1 (TTL 1) balancing each packet over 10.1.1.2 and
// 10.1.2.2, which reach r3 (10.2.x.2) and the destination: path IDs 1 and 2
// drew one branch at TTL 2 and the other at TTL 3.
func perPacketTrace(t *testing.T, draws [][2]int) *Trace {
	t.Helper()
	c := NewCollector(testDst, "d", testSrc, len(draws), 8, testSrcBase, testDstPort)
	for i, d := range draws {
		p := i + 1
		for ttl := 1; ttl <= 4; ttl++ {
			c.Sent(p, ttl)
		}
		c.Reply(p, 1, netip.MustParseAddr("10.0.0.1"), time.Millisecond, 11, 0, false)
		c.Reply(p, 2, netip.AddrFrom4([4]byte{10, 1, byte(d[0]), 2}), time.Millisecond, 11, 0, false)
		c.Reply(p, 3, netip.AddrFrom4([4]byte{10, 2, byte(d[1]), 2}), time.Millisecond, 11, 0, false)
		c.Reply(p, 4, testDst, time.Millisecond, 3, 3, true)
	}
	c.Sent(1, 2)
	c.Reply(1, 2, netip.AddrFrom4([4]byte{10, 1, byte(3 - draws[0][0]), 2}), time.Millisecond, 11, 0, false)
	c.Observe(1, 2, netip.AddrFrom4([4]byte{10, 1, byte(3 - draws[0][0]), 2}))
	tr := c.Trace(testStart, testStart, false)
	tr.PerPacket[0].Vertex = netip.MustParseAddr("10.0.0.1") // as mda.MarkPerPacket names it
	return tr
}

func TestPerPacketBalancerReported(t *testing.T) {
	tr := perPacketTrace(t, [][2]int{{1, 2}, {2, 2}, {1, 1}})
	if got, want := tr.PerPacketVertices(), []PerPacketVertex{{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1")}}; !slices.Equal(got, want) {
		t.Errorf("PerPacketVertices = %v, want %v", got, want)
	}
	g := BuildGraph(tr)
	for _, n := range g.Nodes {
		if n.PerPacket != (n.Addr.String() == "10.0.0.1") {
			t.Errorf("node %v (TTL %d): per-packet %v", n.Addr, n.TTL, n.PerPacket)
		}
	}
	const line = "per-packet load balancer 10.0.0.1 (TTL 1): path ID 1 at TTL 2 answered from 10.1.1.2, 10.1.2.2"
	for _, opts := range []Options{{}, {Dedup: true}} {
		vert, horiz, js := render(t, tr, opts)
		if strings.Count(vert, line+"\n") != 1 || strings.Count(horiz, line+"\n") != 1 {
			t.Errorf("dedup %v: want the line %q once under each table:\n%s\n%s", opts.Dedup, line, vert, horiz)
		}
		if !strings.Contains(js, `"per_packet":[{"path_id":1,"ttl":2,"vertex":"10.0.0.1","addrs":["10.1.1.2","10.1.2.2"]}]`) ||
			!strings.Contains(js, `"addr":"10.0.0.1","ttl":1,`) || strings.Count(js, `"per_packet":true`) != 1 {
			t.Errorf("JSON:\n%s", js)
		}
		for got, err := range ReadJSON(strings.NewReader(js)) {
			if err != nil || !reflect.DeepEqual(got.PerPacket, tr.PerPacket) {
				t.Errorf("read back %v (%v), want %v", got.PerPacket, err, tr.PerPacket)
			}
		}
	}
	var b strings.Builder
	if err := WriteDOT(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), `\nper-packet"`); n != 1 || !strings.Contains(b.String(), "per-packet load balancer") {
		t.Errorf("DOT marks %d nodes per-packet:\n%s", n, b.String())
	}
}

// Behind a per-packet balancer the path IDs' hops are draws: other draws
// of the same branches are no change, a branch gone is one.
func TestDiffPerPacketBranchesAsASet(t *testing.T) {
	before := perPacketTrace(t, [][2]int{{1, 2}, {2, 2}, {1, 1}})
	after := perPacketTrace(t, [][2]int{{2, 1}, {1, 1}, {2, 2}})
	if d := DiffTraces([]*Trace{before}, []*Trace{after}, DiffOptions{}); d.Changed() {
		t.Errorf("other draws of the same branches: %+v", d.Destinations[0])
	}
	// Without the balancer named, the same results are distinct paths
	// that changed.
	plainB, plainA := perPacketTrace(t, [][2]int{{1, 2}, {2, 2}, {1, 1}}), perPacketTrace(t, [][2]int{{2, 1}, {1, 1}, {2, 2}})
	plainB.PerPacket, plainA.PerPacket = nil, nil
	if d := DiffTraces([]*Trace{plainB}, []*Trace{plainA}, DiffOptions{}); !d.Changed() {
		t.Error("distinct paths that changed, no balancer named: no change")
	}
	// Branch 10.2.2.2 gone behind the balancer (the after side names it).
	gone := perPacketTrace(t, [][2]int{{1, 1}, {2, 1}, {1, 1}})
	plainB.PerPacket = nil
	d := DiffTraces([]*Trace{plainB}, []*Trace{gone}, DiffOptions{})
	if !d.Changed() || len(d.Destinations[0].Removed)+len(d.Destinations[0].Changed) == 0 {
		t.Errorf("a branch gone behind the balancer: %+v", d.Destinations[0])
	}
	for _, p := range d.Destinations[0].Same {
		if slices.Contains(p.Hops, netip.MustParseAddr("10.2.2.2")) {
			t.Errorf("a path through the branch gone kept: %v", p.Hops)
		}
	}
}

// A route that changed during the run is reported as such, and is no
// balancer.
func TestRouteChangeReported(t *testing.T) {
	tr := perPacketTrace(t, [][2]int{{1, 1}, {2, 2}})
	tr.PerPacket[0].RouteChange = true
	if v := tr.PerPacketVertices(); len(v) != 0 {
		t.Errorf("PerPacketVertices = %v after a route change", v)
	}
	for _, n := range BuildGraph(tr).Nodes {
		if n.PerPacket {
			t.Errorf("node %v marked per-packet after a route change", n.Addr)
		}
	}
	const line = "route change after 10.0.0.1 (TTL 1): path ID 1 at TTL 2 answered from 10.1.1.2, then from 10.1.2.2"
	vert, _, js := render(t, tr, Options{})
	if strings.Count(vert, line+"\n") != 1 || strings.Contains(vert, "per-packet") {
		t.Errorf("want the line %q:\n%s", line, vert)
	}
	if !strings.Contains(js, `"per_packet":[{"path_id":1,"ttl":2,"vertex":"10.0.0.1","route_change":true,"addrs":["10.1.1.2","10.1.2.2"]}]`) ||
		strings.Contains(js, `"per_packet":true`) {
		t.Errorf("JSON:\n%s", js)
	}
	for got, err := range ReadJSON(strings.NewReader(js)) {
		if err != nil || !reflect.DeepEqual(got.PerPacket, tr.PerPacket) {
			t.Errorf("read back %v (%v), want %v", got.PerPacket, err, tr.PerPacket)
		}
	}
}
