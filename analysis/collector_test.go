package analysis

import (
	"net/netip"
	"testing"
	"time"
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
	f := c.Trace(time.Unix(0, 0), time.Unix(1, 0), false).Flows[0]
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
