package analysis

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// ipv6Trace is a trace of an IPv6 destination: path ID 1 reaches it at TTL
// 3 (ICMPv6 port unreachable, type 1 code 4) after two time exceeded (type
// 3, which is "unreachable" in ICMP); path ID 2 is stopped at TTL 2 by a
// router's no route (type 1 code 0).
func ipv6Trace(t *testing.T) *Trace {
	t.Helper()
	src, dst := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8:99::1")
	r1, r2, r3 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2"), netip.MustParseAddr("2001:db8:2::2")
	c := NewCollector(dst, "", src, 2, 8, 33452, 33452)
	for p := 1; p <= 2; p++ {
		for ttl := 1; ttl <= 4; ttl++ {
			c.Sent(p, ttl)
		}
	}
	for _, a := range []struct {
		path, ttl  int
		from       netip.Addr
		typ, code  uint8
		reached    bool
		size, hlim int
	}{
		{1, 1, r1, 3, 0, false, 100, 64}, {1, 2, r2, 3, 0, false, 100, 63}, {1, 3, dst, 1, 4, true, 100, 62},
		{2, 1, r1, 3, 0, false, 100, 64}, {2, 2, r3, 1, 0, false, 100, 63},
	} {
		c.Reply(a.path, a.ttl, a.from, time.Millisecond, a.typ, a.code, a.reached)
		c.Details(a.path, a.ttl, uint8(a.hlim), 1, a.size)
	}
	return c.Trace(time.Unix(1700000000, 0), time.Unix(1700000001, 0), false)
}

func TestIPv6Trace(t *testing.T) {
	tr := ipv6Trace(t)
	f1, f2 := tr.Flows[0], tr.Flows[1]
	// An ICMPv6 time exceeded (type 3) does not end a flow; a no route
	// (type 1) does.
	if !f1.Reached || f1.ReachedTTL != 3 || len(f1.Hops) != 3 {
		t.Errorf("path ID 1: reached %v at %d, %d hops", f1.Reached, f1.ReachedTTL, len(f1.Hops))
	}
	if f2.Reached || len(f2.Hops) != 2 {
		t.Errorf("path ID 2: reached %v, %d hops; want stopped at TTL 2", f2.Reached, len(f2.Hops))
	}

	var b bytes.Buffer
	if err := WriteVert(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); !strings.Contains(s, "2001:db8:2::2 !N") || strings.Contains(s, "2001:db8:1::2 !") ||
		strings.Contains(s, "2001:db8:99::1 !") {
		t.Errorf("table marks:\n%s", s)
	}

	b.Reset()
	if err := WriteAtlas(&b, tr, AtlasOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var recs []map[string]any
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 || recs[0]["af"] != 6.0 || recs[0]["size"] != 4.0 || recs[0]["dst_addr"] != "2001:db8:99::1" {
		t.Fatalf("records %v", lines)
	}
	hops := recs[0]["result"].([]any)
	first := hops[0].(map[string]any)["result"].([]any)[0].(map[string]any)
	last := hops[2].(map[string]any)["result"].([]any)[0].(map[string]any)
	// The reply size after the IPv6 and ICMPv6 headers (48 bytes).
	if first["size"] != 52.0 || first["ttl"] != 64.0 || last["err"] != nil {
		t.Errorf("hops %v", hops)
	}
	stop := recs[1]["result"].([]any)[1].(map[string]any)["result"].([]any)[0].(map[string]any)
	if stop["err"] != "N" {
		t.Errorf("no route: err %v, want N", stop["err"])
	}
	for code, want := range map[uint8]any{0: "N", 1: "A", 3: "H", 4: nil, 5: 5} {
		if got := atlasErr6(code); got != want {
			t.Errorf("atlasErr6(%d) = %v, want %v", code, got, want)
		}
	}
}

// TestUnreachableFamilies checks which ICMP type is a destination
// unreachable: 1 from an IPv6 address, 3 from an IPv4 one.
func TestUnreachableFamilies(t *testing.T) {
	for _, tc := range []struct {
		addr       string
		typ, code  uint8
		atDestRows bool
	}{
		{"2001:db8::1", 3, 0, false},
		{"2001:db8:99::1", 1, 4, true},
		{"192.0.2.1", 11, 0, false},
		{"198.51.100.1", 3, 3, true},
	} {
		a := netip.MustParseAddr(tc.addr)
		if !unreachable(tc.typ, a) && tc.atDestRows {
			t.Errorf("%s: type %d is not an unreachable", tc.addr, tc.typ)
		}
		if unreachable(tc.typ, a) && !tc.atDestRows {
			t.Errorf("%s: type %d is an unreachable", tc.addr, tc.typ)
		}
	}
}
