package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Fixed inputs of the IPv6 codec tests (RFC 3849 documentation addresses).
var (
	codecSrc6 = netip.MustParseAddr("2001:db8::10")
	codecDst6 = netip.MustParseAddr("2001:db8:99::7")
	rtrAddr6  = netip.MustParseAddr("2001:db8:1::1")
)

// codecSpec6 is codecSpec from an IPv6 source.
func codecSpec6() *Spec {
	s := codecSpec()
	s.Src = codecSrc6
	return s
}

// refPseudo6 is the IPv6 pseudo header (RFC 8200 section 8.1) of an
// upper-layer packet of protocol next and length n.
func refPseudo6(src, dst netip.Addr, next uint8, n int) []byte {
	s, d := src.As16(), dst.As16()
	b := append(s[:], d[:]...)
	return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, next)
}

// testIPv6 builds an IPv6 packet by hand.
func testIPv6(src, dst netip.Addr, hlim, next uint8, payload []byte) []byte {
	b := make([]byte, ipv6HeaderLen+len(payload))
	binary.BigEndian.PutUint32(b, 6<<28|0xabcde)
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = next, hlim
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], payload)
	return b
}

// testICMPv6Error builds an ICMPv6 error of type typ from from to to,
// quoting quote, without RFC 4884 length attribute (what Linux sends).
func testICMPv6Error(from, to netip.Addr, typ, code uint8, quote []byte) []byte {
	m := make([]byte, 8+len(quote))
	m[0], m[1] = typ, code
	copy(m[8:], quote)
	binary.BigEndian.PutUint16(m[2:], refChecksum(refPseudo6(from, to, 58, len(m)), m))
	return testIPv6(from, to, 250, 58, m)
}

// testQuote6 returns the IPv6 probe (dst, path, ttl, at) of s as a node
// quotes it: with the hop limit it had on arrival.
func testQuote6(s *Spec, dst netip.Addr, path, ttl int, at time.Time, arrival uint8) []byte {
	q := make([]byte, Len6)
	s.Encode(q, dst, path, ttl, at)
	q[7] = arrival
	return q
}

// testMatchReply6 is testMatchReply over IPv6: a port unreachable from dst
// at the last TTL, else a time exceeded from a router.
func testMatchReply6(s *Spec, dst netip.Addr, path, ttl, last int, at time.Time) []byte {
	if ttl >= last {
		return testICMPv6Error(dst, s.Src, ICMPv6Unreachable, CodeV6PortUnreachable, testQuote6(s, dst, path, ttl, at, uint8(ttl-last+1)))
	}
	return testICMPv6Error(rtrAddr6, s.Src, ICMPv6TimeExceeded, codeV6HopLimitExceeded, testQuote6(s, dst, path, ttl, at, 1))
}

func TestEncode6(t *testing.T) {
	for _, s := range codecSpecs() {
		s.Src = codecSrc6
		if n := s.ProbeLen(); n != Len6 || Len6 != 52 || MaxProbeLen != 52 {
			t.Fatalf("probe length %d (Len6 %d, MaxProbeLen %d)", n, Len6, MaxProbeLen)
		}
		labels := map[uint32]int{}
		for path := 1; path <= s.Paths; path++ {
			for _, ttl := range []int{1, 2, 33, 64} {
				for _, at := range codecTimes(s) {
					b := make([]byte, MaxProbeLen)
					if n := s.Encode(b, codecDst6, path, ttl, at); n != Len6 {
						t.Fatalf("Encode wrote %d bytes", n)
					}
					b = b[:Len6]
					word := binary.BigEndian.Uint32(b)
					tc, fl := uint8(word>>20), word&0xfffff
					switch {
					case word>>28 != 6 || tc != s.TOS:
						t.Fatalf("version/traffic class %#x", word)
					case fl == 0 || fl != s.FlowLabel(path):
						t.Fatalf("flow label %#x, want %#x", fl, s.FlowLabel(path))
					case binary.BigEndian.Uint16(b[4:]) != 12 || b[6] != 17 || b[7] != uint8(ttl):
						t.Fatalf("payload length, next header, hop limit: % x", b[4:8])
					case netip.AddrFrom16([16]byte(b[8:24])) != s.Src || netip.AddrFrom16([16]byte(b[24:40])) != codecDst6:
						t.Fatalf("addresses % x", b[8:40])
					}
					u := b[40:]
					sport, dport := binary.BigEndian.Uint16(u), binary.BigEndian.Uint16(u[2:])
					if sport != s.BaseSrcPort+uint16(path) || dport != s.DstPort || binary.BigEndian.Uint16(u[4:]) != 12 {
						t.Fatalf("ports %d %d, length %d", sport, dport, binary.BigEndian.Uint16(u[4:]))
					}
					if c := binary.BigEndian.Uint16(u[6:]); c != s.Clock(at) || c == 0 {
						t.Fatalf("checksum field %d, want the clock %d", c, s.Clock(at))
					}
					if refOnesSum(refPseudo6(s.Src, codecDst6, 17, 12), u) != 0xffff {
						t.Fatalf("UDP checksum does not hold: % x", b)
					}
					if tag, got := SplitIPID(binary.BigEndian.Uint16(u[8:])); tag != s.Tag || got != ttl {
						t.Fatalf("payload tag %d TTL %d", tag, got)
					}
				}
			}
			labels[s.FlowLabel(path)]++
		}
		if len(labels) < s.Paths-1 {
			t.Errorf("%d flow labels for %d path IDs", len(labels), s.Paths)
		}
	}
	// The flow label depends on the source port alone.
	a, b := codecSpec6(), codecSpec6()
	b.Tag, b.TOS, b.DstPort = 1, 0, 53
	if a.FlowLabel(5) != b.FlowLabel(5) || a.FlowLabel(5) == a.FlowLabel(6) {
		t.Errorf("flow labels %#x %#x %#x", a.FlowLabel(5), b.FlowLabel(5), a.FlowLabel(6))
	}
	if n := testing.AllocsPerRun(100, func() { a.Encode(make([]byte, MaxProbeLen), codecDst6, 3, 9, a.Epoch) }); n > 1 {
		t.Errorf("Encode: %v allocations", n)
	}
}

func TestMatch6(t *testing.T) {
	s := codecSpec6()
	m := NewMatcher(s)
	sent := s.Epoch.Add(ClockWrap - 40*time.Millisecond)
	recv := sent.Add(123456 * time.Microsecond)
	var r Reply
	var a Answer
	for path := 1; path <= s.Paths; path++ {
		for ttl := 1; ttl <= MaxTTL; ttl++ {
			pkt := testMatchReply6(s, codecDst6, path, ttl, 20, sent)
			if !m.Match(pkt, recv, &r, &a) {
				t.Fatalf("path %d TTL %d: no match", path, ttl)
			}
			if int(a.Path) != path || int(a.TTL) != ttl || a.Dst != codecDst6 || a.Rewrites != 0 || a.QTOS != s.TOS {
				t.Fatalf("path %d TTL %d: %+v", path, ttl, a)
			}
			if d := a.RTT - 123456*time.Microsecond; d < 0 || d >= ClockUnit {
				t.Fatalf("RTT %v", a.RTT)
			}
			reached := ttl >= 20
			if a.Reached() != reached || a.Stops() != reached || r.Reached() != reached {
				t.Fatalf("path %d TTL %d: reached %v, stops %v", path, ttl, a.Reached(), a.Stops())
			}
			if reached && (a.From != codecDst6 || a.Type != ICMPv6Unreachable || a.Code != CodeV6PortUnreachable || int(a.QTTL) != ttl-19) {
				t.Fatalf("destination's answer %+v", a)
			}
			if !reached && (a.From != rtrAddr6 || a.Type != ICMPv6TimeExceeded || a.QTTL != 1 || a.ReplyTTL != 250) {
				t.Fatalf("router's answer %+v", a)
			}
		}
	}
	q := testQuote6(s, codecDst6, 3, 5, sent, 1)
	for _, tc := range []struct {
		name          string
		pkt           []byte
		reached, stop bool
	}{
		{"no route from a router", testICMPv6Error(rtrAddr6, s.Src, ICMPv6Unreachable, 0, q), false, true},
		{"admin prohibited from the destination", testICMPv6Error(codecDst6, s.Src, ICMPv6Unreachable, 1, q), true, true},
		{"port unreachable from a router", testICMPv6Error(rtrAddr6, s.Src, ICMPv6Unreachable, CodeV6PortUnreachable, q), true, true},
		{"time exceeded from the destination", testICMPv6Error(codecDst6, s.Src, ICMPv6TimeExceeded, 0, q), false, false},
	} {
		if !m.Match(tc.pkt, recv, &r, &a) || a.Reached() != tc.reached || a.Stops() != tc.stop {
			t.Errorf("%s: reached %v stops %v, want %v %v", tc.name, a.Reached(), a.Stops(), tc.reached, tc.stop)
		}
	}
	// Not this run's: another tag, source, port range, destination port;
	// an IPv4 reply to the IPv6 run.
	other := func(f func(*Spec)) *Spec { o := codecSpec6(); f(o); return o }
	for name, pkt := range map[string][]byte{
		"tag":              testMatchReply6(other(func(o *Spec) { o.Tag++ }), codecDst6, 2, 3, 20, sent),
		"source":           testMatchReply6(other(func(o *Spec) { o.Src = netip.MustParseAddr("2001:db8::11") }), codecDst6, 2, 3, 20, sent),
		"path 0":           testMatchReply6(s, codecDst6, 0, 3, 20, sent),
		"path above range": testMatchReply6(s, codecDst6, s.Paths+1, 3, 20, sent),
		"destination port": testMatchReply6(other(func(o *Spec) { o.DstPort++ }), codecDst6, 2, 3, 20, sent),
		"IPv4 reply":       testMatchReply(codecSpec(), codecDst, 2, 3, 20, sent),
	} {
		if m.Match(pkt, recv, &r, &a) {
			t.Errorf("%s: matched %+v", name, a)
		}
	}
	// And the IPv4 run's Matcher takes no IPv6 reply.
	if NewMatcher(codecSpec()).Match(testMatchReply6(s, codecDst6, 2, 3, 20, sent), recv, &r, &a) {
		t.Error("an IPv4 run matched an IPv6 reply")
	}
}

func TestParseReply6Rejects(t *testing.T) {
	s := codecSpec6()
	me := s.Src
	q := testQuote6(s, codecDst6, 1, 1, s.Epoch, 1)
	mod := func(b []byte, f func([]byte)) []byte { b = append([]byte(nil), b...); f(b); return b }
	good := testICMPv6Error(rtrAddr6, me, ICMPv6TimeExceeded, 0, q)
	requote := func(f func([]byte)) []byte { return testICMPv6Error(rtrAddr6, me, ICMPv6TimeExceeded, 0, mod(q, f)) }
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"39 bytes", good[:39], ErrShort},
		{"IPv4", testMatchReply(codecSpec(), codecDst, 2, 3, 20, s.Epoch), ErrNotIPv6},
		{"version 0", mod(good, func(b []byte) { b[0] = 0x05 }), ErrNotIPv6},
		{"hop-by-hop options first", mod(good, func(b []byte) { b[6] = 0 }), ErrNotICMP},
		{"UDP", testIPv6(rtrAddr6, me, 64, 17, q), ErrNotICMP},
		{"ICMPv6 header cut", good[:40+7], ErrShort},
		{"payload length cuts the quote", mod(good, func(b []byte) { binary.BigEndian.PutUint16(b[4:], 8+39) }), ErrNoQuote},
		{"echo reply", testICMPv6Error(codecDst6, me, 129, 0, q), ErrNotError},
		{"packet too big", testICMPv6Error(rtrAddr6, me, 2, 0, q), ErrNotError},
		{"parameter problem", testICMPv6Error(rtrAddr6, me, 4, 0, q), ErrNotError},
		{"ICMPv4 time exceeded type", testICMPv6Error(rtrAddr6, me, 11, 0, q), ErrNotError},
		{"no quote", testICMPv6Error(rtrAddr6, me, 3, 0, nil), ErrNoQuote},
		{"39-byte quote", testICMPv6Error(rtrAddr6, me, 3, 0, q[:39]), ErrNoQuote},
		{"quote without the tag word", testICMPv6Error(rtrAddr6, me, 3, 0, q[:49]), ErrNoQuote},
		{"quoted IPv4", requote(func(b []byte) { b[0] = 0x45 }), ErrNoQuote},
		{"quoted TCP", requote(func(b []byte) { b[6] = 6 }), ErrNotUDPQuote},
		{"quoted fragment header", requote(func(b []byte) { b[6] = 44 }), ErrNotUDPQuote},
	} {
		var r Reply
		if err := ParseReply6(tc.pkt, &r); !errors.Is(err, tc.want) {
			t.Errorf("%s: ParseReply6 = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The quote up to the tag word is enough; link-layer padding is cut.
	var r Reply
	if err := ParseReply6(testICMPv6Error(rtrAddr6, me, 3, 0, q[:50]), &r); err != nil || r.QID != IPID(s.Tag, 1) || len(r.Quote) != 50 {
		t.Errorf("quote of 50 bytes: %v, %+v", err, r)
	}
	if err := ParseReply6(append(slices.Clone(good), 0, 0, 0, 0), &r); err != nil || len(r.Quote) != Len6 {
		t.Errorf("padded: %v, quote of %d bytes", err, len(r.Quote))
	}
	// Every prefix of a valid reply decodes or fails cleanly.
	for n := range len(good) {
		_ = ParseReply6(good[:n], &r)
	}
}

// TestReply6Extensions decodes ICMPv6 errors with RFC 4884 extensions as
// golang.org/x/net/icmp writes them (length attribute in 64-bit words at
// octet 4, the quote padded to 128 bytes), and without the attribute.
func TestReply6Extensions(t *testing.T) {
	s := codecSpec6()
	q := testQuote6(s, codecDst6, 4, 6, s.Epoch, 1)
	mpls := &icmp.MPLSLabelStack{Class: 1, Type: 1, Labels: []icmp.MPLSLabel{{Label: 16005, TC: 5, TTL: 1}, {Label: 77, S: true, TTL: 255}}}
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeTimeExceeded, Body: &icmp.TimeExceeded{
		Data: q, Extensions: []icmp.Extension{mpls},
	}}).Marshal(icmp.IPv6PseudoHeader(rtrAddr6.AsSlice(), s.Src.AsSlice()))
	if err != nil {
		t.Fatal(err)
	}
	pkt := testIPv6(rtrAddr6, s.Src, 64, 58, msg)
	var r Reply
	if err := ParseReply6(pkt, &r); err != nil {
		t.Fatal(err)
	}
	if r.Length != 128 || len(r.Quote) != 128 || r.Extensions == nil || r.QID != IPID(s.Tag, 6) {
		t.Fatalf("length %d, quote %d bytes, extensions % x", r.Length, len(r.Quote), r.Extensions)
	}
	a := matchOne(t, s, netip.Addr{}, pkt, s.Epoch.Add(time.Millisecond))
	want := []MPLSLabel{{Label: 16005, TC: 5, TTL: 1}, {Label: 77, S: true, TTL: 255}}
	if got := a.Ext.Labels[:a.Ext.NLabels]; !slices.Equal(got, want) || a.Ext.Flags != ExtRFC4884 || a.Rewrites != 0 {
		t.Errorf("answer extensions %+v, rewrites %v", a.Ext, a.Rewrites)
	}
	// Without the length attribute: found at 128 all the same.
	noLen := slices.Clone(pkt)
	noLen[40+4] = 0
	if err := ParseReply6(noLen, &r); err != nil || r.Length != 0 || r.Extensions == nil {
		t.Errorf("no length attribute: %v, length %d, extensions % x", err, r.Length, r.Extensions)
	}
	var r2 Reply
	var a2 Answer
	m := NewMatcher(s)
	if n := testing.AllocsPerRun(1000, func() { m.Match(pkt, s.Epoch, &r2, &a2) }); n != 0 {
		t.Errorf("Matcher.Match with extensions: %v allocations", n)
	}
}

func TestZeroAllocs6(t *testing.T) {
	s := codecSpec6()
	pkt := testMatchReply6(s, codecDst6, 2, 3, 20, s.Epoch)
	unreach := testMatchReply6(s, codecDst6, 2, 20, 20, s.Epoch)
	m := NewMatcher(s)
	nat := NewMatcher(s)
	nat.Dst = netip.MustParseAddr("2001:db8:aaaa::1")
	recv := s.Epoch.Add(time.Second)
	var r Reply
	var a Answer
	for name, f := range map[string]func(){
		"ParseReply6":                func() { _ = ParseReply6(pkt, &r) },
		"ParseReply6, rejected":      func() { _ = ParseReply6(pkt[:60], &r) },
		"Matcher.Match":              func() { m.Match(pkt, recv, &r, &a) },
		"Matcher.Match, unreachable": func() { m.Match(unreach, recv, &r, &a) },
		"Matcher.Match, rewritten":   func() { nat.Match(pkt, recv, &r, &a) },
		"Answer.Reached":             func() { _ = a.Reached() || a.Stops() },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

// TestRewrites6 checks what the quote of an IPv6 probe shows of a
// middlebox: a traffic class, lengths or checksum changed, a destination
// rewritten by a NAT that fixed the checksum (the RTT undoes the fix).
func TestRewrites6(t *testing.T) {
	s := codecSpec6()
	sent := s.Epoch.Add(3 * time.Second)
	recv := sent.Add(7 * time.Millisecond)
	q := testQuote6(s, codecDst6, 2, 3, sent, 1)
	reply := func(q []byte) []byte { return testICMPv6Error(rtrAddr6, s.Src, ICMPv6TimeExceeded, 0, q) }
	mod := func(f func([]byte)) []byte { b := slices.Clone(q); f(b); return b }
	for _, tc := range []struct {
		name string
		q    []byte
		want Rewrite
	}{
		{"none", q, 0},
		{"flow label (not a rewrite we report)", mod(func(b []byte) { b[3] ^= 0xff }), 0},
		{"traffic class", mod(func(b []byte) { b[1] ^= 0x10 }), RewriteTOS},
		{"payload length", mod(func(b []byte) { b[5] = 16 }), RewriteLength},
		{"UDP length (the checksum is then not checked)", mod(func(b []byte) { b[45] = 16 }), RewriteLength},
		{"checksum", mod(func(b []byte) { b[47] ^= 1 }), RewriteChecksum},
		{"payload", mod(func(b []byte) { b[51] ^= 1 }), RewriteChecksum},
	} {
		if a := matchOne(t, s, netip.Addr{}, reply(tc.q), recv); a.Rewrites != tc.want {
			t.Errorf("%s: rewrites %v, want %v", tc.name, a.Rewrites.Names(), tc.want.Names())
		}
	}
	// A NAT changed the destination and fixed the checksum as RFC 1624 says.
	natDst := netip.MustParseAddr("2001:db8:aaaa::1")
	natted := mod(func(b []byte) {
		d := natDst.As16()
		copy(b[24:40], d[:])
		b[46], b[47] = 0, 0
		u := slices.Clone(b[40:52])
		u[6], u[7] = 0, 0
		// Recompute the checksum field as the NAT would, keeping the
		// datagram valid for the new pseudo header; the payload word
		// then no longer compensates for the clock alone.
		binary.BigEndian.PutUint16(b[46:], refChecksum(refPseudo6(s.Src, natDst, 17, 12), u))
	})
	a := matchOne(t, s, codecDst6, reply(natted), recv)
	if a.Rewrites != RewriteDst || a.Dst != codecDst6 {
		t.Errorf("NAT: rewrites %v, destination %s", a.Rewrites.Names(), a.Dst)
	}
	if d := a.RTT - 7*time.Millisecond; d < 0 || d >= ClockUnit {
		t.Errorf("NAT: RTT %v, want 7 ms (the fix undone)", a.RTT)
	}
}
