package analysis

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// When the destination's answer to TTL d is lost but it answers TTL d+1,
// the TTL it quotes says where it really is: the flow ends at d, not d+1.
func TestCollectorDistanceFromQuotedTTL(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	c := NewCollector(dst, "", src, 1, 8, 33452, 33452)
	for ttl := 1; ttl <= 5; ttl++ {
		c.Sent(1, ttl)
	}
	for ttl := 1; ttl <= 3; ttl++ {
		c.Reply(1, ttl, netip.AddrFrom4([4]byte{10, 0, byte(ttl), 1}), time.Millisecond, 11, 0, false)
		c.Details(1, ttl, 64-uint8(ttl), 1, 56)
	}
	// TTL 4's answer is lost; TTL 5's probe reached the destination with
	// TTL 2 left, after 3 routers.
	c.Reply(1, 5, dst, 2*time.Millisecond, 3, 3, true)
	c.Details(1, 5, 61, 2, 56)
	c.Extras(&probe.Answer{Path: 1, TTL: 5, Rewrites: probe.RewriteTOS, QTOS: 0x20}) // goes with the answer, to TTL 4
	f := c.Trace(time.Unix(0, 0), time.Unix(1, 0), false).Flows[0]
	if f.Hops[3].Rewrites != probe.RewriteTOS || f.Hops[3].QuotedTOS != 0x20 {
		t.Errorf("hop 4 rewrites %v tos %#x, want the TTL-5 answer's", f.Hops[3].Rewrites, f.Hops[3].QuotedTOS)
	}
	if !f.Reached || f.ReachedTTL != 4 || len(f.Hops) != 4 {
		t.Fatalf("flow reached=%v at %d with %d hops, want the destination at TTL 4", f.Reached, f.ReachedTTL, len(f.Hops))
	}
	if h := f.Hops[3]; h.Addr != dst || h.TTL != 4 || h.RTT != 2*time.Millisecond || h.QuotedTTL != 2 {
		t.Errorf("hop 4 = %+v, want the destination's answer", h)
	}
	// Without the quoted TTL (not recorded), the answer's own TTL stands.
	c2 := NewCollector(dst, "", src, 1, 8, 33452, 33452)
	c2.Sent(1, 5)
	c2.Reply(1, 5, dst, time.Millisecond, 3, 3, true)
	if f := c2.Trace(time.Unix(0, 0), time.Unix(1, 0), false).Flows[0]; f.ReachedTTL != 5 {
		t.Errorf("reached at %d, want 5", f.ReachedTTL)
	}
}

// A reply that carried no send time (RTT 0: an ICMP echo request quoted
// in 8 bytes) is a hop without an RTT: it does not drag the minimum to 0.
func TestZeroRTTNotCounted(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	r1 := netip.MustParseAddr("10.0.0.1")
	c := NewCollector(dst, "", src, 2, 8, 33452, 33452)
	for p := 1; p <= 2; p++ {
		c.Sent(p, 1)
		c.Sent(p, 2)
		c.Reply(p, 2, dst, 3*time.Millisecond, 3, 3, true)
	}
	c.Reply(1, 1, r1, 2*time.Millisecond, 11, 0, false)
	c.Reply(2, 1, r1, 0, 11, 0, false) // no send time in the quote
	tr := c.Trace(time.Unix(0, 0), time.Unix(1, 0), false)
	if tr.Flows[1].Hops[0].HasRTT() || !tr.Flows[0].Hops[0].HasRTT() {
		t.Fatal("HasRTT wrong")
	}
	g := BuildGraph(tr)
	for _, n := range g.Nodes {
		if n.Addr == r1 && (n.RTTMin != 2*time.Millisecond || n.RTTMax != 2*time.Millisecond) {
			t.Errorf("r1's RTTs %v..%v, want 2ms (the reply without a send time left out)", n.RTTMin, n.RTTMax)
		}
	}
}

// rowsString writes rows as the probes' states per path ID: "-" not sent,
// "." sent and unanswered, "d" the destination, "!" an unreachable from a
// router, else the last byte of the address that answered.
func rowsString(rows [][]Probe) string {
	var b strings.Builder
	for i, r := range rows {
		fmt.Fprintf(&b, "%d:", i+1)
		for j := range r {
			p := &r[j]
			switch {
			case !p.Sent():
				b.WriteString(" -")
			case !p.Answered():
				b.WriteString(" .")
			case p.Reached():
				b.WriteString(" d")
			case p.Stops():
				b.WriteString(" !")
			default:
				fmt.Fprintf(&b, " %d", p.From().As4()[3])
			}
		}
		b.WriteString(";")
	}
	return b.String()
}

// Rows hands out the probes by path ID up to the highest TTL sent, from
// the Collector's memory: answers recorded later show in them.
func TestCollectorRows(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	r := func(n byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, n}) }
	c := NewCollector(dst, "", src, 8, 8, 33452, 33452)
	c.Sent(1, 1)
	c.Sent(1, 2)
	c.Sent(1, 3)
	c.Sent(3, 2)
	c.Sent(4, 3)
	c.Reply(1, 1, r(1), time.Millisecond, 11, 0, false)
	c.Reply(1, 3, dst, time.Millisecond, 3, 3, true)
	c.Reply(3, 2, r(2), time.Millisecond, 3, 13, false) // administratively prohibited
	c.Reply(2, 5, r(5), time.Millisecond, 11, 0, false) // answers a probe never sent
	c.Reply(4, 5, r(5), time.Millisecond, 11, 0, false) // beyond the TTLs sent
	rows := c.Rows(nil)
	if got, want := rowsString(rows), "1: 1 . d;2:;3: - !;4: - - .;"; got != want {
		t.Fatalf("rows %q, want %q", got, want)
	}
	if rows[0][1].From().IsValid() || rows[0][0].From() != r(1) {
		t.Errorf("addresses %v %v", rows[0][0].From(), rows[0][1].From())
	}
	// A later answer shows in the rows handed out.
	c.Reply(1, 2, r(9), time.Millisecond, 11, 0, false)
	if got := rowsString(rows[:1]); got != "1: 1 9 d;" {
		t.Errorf("row 1 after an answer: %q", got)
	}
	// dst's memory is reused, and a Reset Collector has no rows.
	again := c.Rows(rows[:0])
	if &again[0] != &rows[0] || len(again) != 4 {
		t.Errorf("rows not appended to dst")
	}
	c.Reset(dst, "")
	if rows := c.Rows(nil); len(rows) != 0 {
		t.Errorf("rows after Reset: %q", rowsString(rows))
	}
	c.Sent(2, 1)
	if got := rowsString(c.Rows(nil)); got != "1:;2: .;" {
		t.Errorf("rows after Reset and a probe: %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { rows = c.Rows(rows[:0]) }); n != 0 {
		t.Errorf("Rows: %v allocs per call", n)
	}
}

// A Collector holds a Probe per path ID and TTL (thousands for an
// adaptive run): its flags share a word with the answer's details.
func TestProbeSize(t *testing.T) {
	if n := unsafe.Sizeof(Probe{}); n > 40 {
		t.Errorf("a Probe takes %d bytes, want 40 at most", n)
	}
}
