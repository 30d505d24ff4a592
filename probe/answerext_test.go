package probe

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// matchOne runs the Matcher of s (with dst, when valid, as the run's only
// destination) on pkt.
func matchOne(t *testing.T, s *Spec, dst netip.Addr, pkt []byte, recv time.Time) Answer {
	t.Helper()
	m := NewMatcher(s)
	m.Dst = dst
	var r Reply
	var a Answer
	if !m.Match(pkt, recv, &r, &a) {
		t.Fatalf("no match")
	}
	return a
}

func TestMatchExtensions(t *testing.T) {
	s := codecSpec()
	recv := s.Epoch.Add(1600 * time.Millisecond)
	cases := map[string][]byte{}
	for _, c := range testReplies(t) {
		cases[c.name] = c.pkt
	}
	wantMPLS := []MPLSLabel{{Label: 16005, TC: 5, TTL: 1}, {Label: 1<<20 - 1, S: true, TTL: 255}}

	// RFC 4884 compliant: the length attribute says where they start.
	a := matchOne(t, s, netip.Addr{}, cases["MPLS"], recv)
	if got := a.Ext.Labels[:a.Ext.NLabels]; !slices.Equal(got, wantMPLS) || a.Ext.NIfs != 0 || a.Ext.Flags != ExtRFC4884 {
		t.Errorf("MPLS: %+v", a.Ext)
	}
	// Non-compliant (no length attribute): found at 128, no ExtRFC4884.
	a = matchOne(t, s, netip.Addr{}, cases["length 0, extensions at 128"], recv)
	if got := a.Ext.Labels[:a.Ext.NLabels]; !slices.Equal(got, wantMPLS) || a.Ext.Flags != 0 {
		t.Errorf("length 0: %+v", a.Ext)
	}
	// Labels, an interface and an object of an unknown class.
	a = matchOne(t, s, netip.Addr{}, cases["MPLS + interface info + raw, host unreachable"], recv)
	ifi := a.Ext.Ifs[0]
	if a.Ext.NLabels != 2 || a.Ext.NIfs != 1 || ifi.Role != IfIncoming || ifi.Has != IfHasIfindex|IfHasAddr|IfHasName|IfHasMTU ||
		ifi.Ifindex != 42 || ifi.MTU != 1500 || ifi.Addr != netip.MustParseAddr("192.0.2.77") || string(ifi.NameBytes()) != "ge-0/0/1.100" ||
		a.Ext.Flags != ExtRFC4884 || a.Type != ICMPUnreachable {
		t.Errorf("MPLS + interface: %+v", a.Ext)
	}
	// No extensions: nothing.
	if a = matchOne(t, s, netip.Addr{}, cases["time exceeded, whole probe"], recv); a.Ext != (AnswerExt{}) || !a.Ext.Empty() {
		t.Errorf("no extensions: %+v", a.Ext)
	}

	// More than an Answer holds: 6 labels in two objects, 3 interfaces,
	// an 18-byte name.
	m1, _ := xnetMPLS([]MPLSLabel{{Label: 1}, {Label: 2}, {Label: 3}})
	m2, _ := xnetMPLS([]MPLSLabel{{Label: 4}, {Label: 5}, {Label: 6, S: true}})
	in, _ := xnetIf(IfIncoming, 42, "ge-0/0/1.100", 1500, extV4)
	out, _ := xnetIf(IfOutgoing, 43, "HundredGigE0/0/0/7", 9000, extV6)
	nh, _ := xnetIf(IfNextHop, 0, "", 0, netip.MustParseAddr("198.51.100.1"))
	pkt := testIPv4(rtrAddr, codecSrc, 250, protoICMP, xnetMessage(t, ipv4.ICMPTypeTimeExceeded, 0, extQuote(30), m1, m2, in, out, nh))
	a = matchOne(t, s, netip.Addr{}, pkt, recv)
	if got := a.Ext.Labels[:a.Ext.NLabels]; !slices.Equal(got, []MPLSLabel{{Label: 1}, {Label: 2}, {Label: 3}, {Label: 4}}) {
		t.Errorf("deep stack: labels %+v", got)
	}
	if a.Ext.NIfs != 2 || a.Ext.Flags != ExtRFC4884|ExtTruncated || string(a.Ext.Ifs[1].NameBytes()) != "HundredGigE0/0/0" ||
		a.Ext.Ifs[1].Addr != extV6 || a.Ext.Ifs[1].Role != IfOutgoing || a.Ext.Ifs[1].Ifindex != 43 {
		t.Errorf("deep stack: %+v", a.Ext)
	}
	// A name cut inside a UTF-8 character ends before it.
	in2, _ := xnetIf(IfIncoming, 7, "ge-0/0/1.10000aéx", 1500, netip.Addr{})
	pkt = testIPv4(rtrAddr, codecSrc, 250, protoICMP, xnetMessage(t, ipv4.ICMPTypeTimeExceeded, 0, extQuote(30), in2))
	if a = matchOne(t, s, netip.Addr{}, pkt, recv); string(a.Ext.Ifs[0].NameBytes()) != "ge-0/0/1.10000a" || a.Ext.Flags&ExtTruncated == 0 {
		t.Errorf("name cut: %q %+v", a.Ext.Ifs[0].NameBytes(), a.Ext)
	}
}

// natQuote returns the probe (dst, path, ttl, at) of s as a node behind a
// NAT quotes it: with its destination changed to to, the UDP checksum
// fixed for it when fix, and a valid IP header checksum.
func natQuote(s *Spec, dst, to netip.Addr, path, ttl int, at time.Time, fix bool) []byte {
	q := testQuote(s, dst, path, ttl, at, 1)
	copy(q[16:20], to.AsSlice())
	q[10], q[11] = 0, 0
	binary.BigEndian.PutUint16(q[10:], refChecksum(q[:ipv4HeaderLen]))
	if fix {
		// The checksum a NAT computes from scratch for the new pseudo
		// header; RFC 1624's incremental update gives the same value.
		u := q[ipv4HeaderLen:]
		u[6], u[7] = 0, 0
		binary.BigEndian.PutUint16(u[6:], ^fold(sum(u, pseudo(s.Src.As4(), to.As4(), len(u)))))
	}
	return q
}

func TestMatchRewrites(t *testing.T) {
	s := codecSpec()
	sent := s.Epoch.Add(3 * time.Second)
	recv := sent.Add(12345 * time.Microsecond)
	nat := netip.MustParseAddr("10.77.0.9")
	mod := func(f func(q []byte)) []byte {
		q := testQuote(s, codecDst, 4, 6, sent, 1)
		f(q)
		q[10], q[11] = 0, 0
		binary.BigEndian.PutUint16(q[10:], refChecksum(q[:ipv4HeaderLen]))
		return q
	}
	te := func(q []byte) []byte { return testICMPError(rtrAddr, s.Src, ICMPTimeExceeded, 0, q) }
	for _, tc := range []struct {
		name  string
		pkt   []byte
		only  netip.Addr // Matcher.Dst
		want  Rewrite
		dst   netip.Addr // Answer.Dst
		exact bool       // the RTT is the true one
	}{
		{"none", te(mod(func([]byte) {})), netip.Addr{}, 0, codecDst, true},
		{"none, one destination", te(mod(func([]byte) {})), codecDst, 0, codecDst, true},
		{"none, 28 bytes", te(mod(func([]byte) {})[:28]), netip.Addr{}, 0, codecDst, true},
		{"DSCP", te(mod(func(q []byte) { q[1] = 0xb8 })), netip.Addr{}, RewriteTOS, codecDst, true},
		{"ECN CE", te(mod(func(q []byte) { q[1] |= 3 })), netip.Addr{}, RewriteTOS, codecDst, true},
		{"IP length", te(mod(func(q []byte) { binary.BigEndian.PutUint16(q[2:], 0x1e00) })), netip.Addr{}, RewriteLength, codecDst, true},
		{"IP options added", te(withRouterAlert(testQuote(s, codecDst, 4, 6, sent, 1))), netip.Addr{}, RewriteLength, codecDst, true},
		// A changed UDP length breaks the checksum too, but the length
		// says it: the checksum is checked only over the probe's length.
		{"UDP length", te(mod(func(q []byte) { q[25] = 12 })), netip.Addr{}, RewriteLength, codecDst, true},
		{"payload", te(mod(func(q []byte) { q[29] ^= 0x40 })), netip.Addr{}, RewriteChecksum, codecDst, true},
		{"checksum zeroed", te(mod(func(q []byte) { q[26], q[27] = 0, 0 })), netip.Addr{}, RewriteChecksum, codecDst, false},
		// A NAT that fixes the checksum: several destinations, the
		// quoted one is the key; one destination, a rewrite, and the RTT
		// undoes the fix.
		{"NAT, several destinations", te(natQuote(s, codecDst, nat, 4, 6, sent, true)), netip.Addr{}, 0, nat, false},
		{"NAT", te(natQuote(s, codecDst, nat, 4, 6, sent, true)), codecDst, RewriteDst, codecDst, true},
		{"NAT, 28 bytes", te(natQuote(s, codecDst, nat, 4, 6, sent, true)[:28]), codecDst, RewriteDst, codecDst, true},
		{"NAT, port unreachable", testICMPError(nat, s.Src, ICMPUnreachable, CodePortUnreachable, natQuote(s, codecDst, nat, 4, 6, sent, true)), codecDst, RewriteDst, codecDst, true},
		// A NAT that leaves the checksum: the clock is intact.
		{"NAT without checksum fix", te(natQuote(s, codecDst, nat, 4, 6, sent, false)), codecDst, RewriteDst | RewriteChecksum, codecDst, true},
		{"NAT and DSCP", te(func() []byte {
			q := natQuote(s, codecDst, nat, 4, 6, sent, true)
			q[1] = 0x20
			q[10], q[11] = 0, 0
			binary.BigEndian.PutUint16(q[10:], refChecksum(q[:ipv4HeaderLen]))
			return q
		}()), codecDst, RewriteDst | RewriteTOS, codecDst, true},
	} {
		a := matchOne(t, s, tc.only, tc.pkt, recv)
		if a.Rewrites != tc.want || a.Dst != tc.dst || a.Path != 4 || a.TTL != 6 {
			t.Errorf("%s: rewrites %v (%03b) dst %v path %d ttl %d, want %v dst %v", tc.name, a.Rewrites.Names(), a.Rewrites, a.Dst, a.Path, a.TTL, tc.want.Names(), tc.dst)
		}
		if ok := a.RTT >= 12345*time.Microsecond && a.RTT < 12345*time.Microsecond+ClockUnit; ok != tc.exact {
			t.Errorf("%s: RTT %v, true one %v", tc.name, a.RTT, tc.exact)
		}
		if tc.name == "NAT, port unreachable" && !a.Reached() {
			t.Errorf("%s: not reached", tc.name)
		}
	}
	if got := (RewriteTOS | RewriteDst | RewriteChecksum).Names(); !slices.Equal(got, []string{"tos", "dst", "checksum"}) {
		t.Errorf("names %q", got)
	}
}

// TestUnrewriteRFC1624 checks the undoing of a NAT's checksum fix against
// RFC 1624's incremental update, for random clocks and addresses.
func TestUnrewriteRFC1624(t *testing.T) {
	for i := range 20000 {
		c := uint16(1 + i*7919%65535)
		var a, b [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(i)*2654435761)
		binary.BigEndian.PutUint32(b[:], uint32(i)*40503+17)
		dst, to := netip.AddrFrom4(a), netip.AddrFrom4(b)
		// HC' = ~(~HC + ~m + m') over the two words of the address.
		acc := uint32(^c)
		for k := 0; k < 4; k += 2 {
			acc += uint32(^binary.BigEndian.Uint16(a[k:])) + uint32(binary.BigEndian.Uint16(b[k:]))
		}
		quoted := ^fold(acc)
		got := unrewrite(quoted, dst, to)
		// 0 and 0xffff are one value in one's complement arithmetic, and
		// one clock value for the RTT (it counts modulo 65535).
		if got != c && !(got == 0 && c == 0xffff) {
			t.Fatalf("clock %#04x, %v -> %v: quoted %#04x, undone %#04x", c, dst, to, quoted, got)
		}
	}
}

func TestMatchExtensionsZeroAllocs(t *testing.T) {
	s := codecSpec()
	recv := s.Epoch.Add(time.Second)
	m1, _ := xnetMPLS([]MPLSLabel{{Label: 1}, {Label: 2}, {Label: 3}, {Label: 4}, {Label: 5}, {Label: 6, S: true}})
	in, _ := xnetIf(IfIncoming, 42, "ge-0/0/1.100", 1500, extV4)
	out, _ := xnetIf(IfOutgoing, 43, "HundredGigE0/0/0/7", 9000, extV6)
	nh, _ := xnetIf(IfNextHop, 44, "x", 0, netip.Addr{})
	deep := testIPv4(rtrAddr, codecSrc, 250, protoICMP, xnetMessage(t, ipv4.ICMPTypeTimeExceeded, 0, extQuote(30), m1, in, out, nh, &icmp.RawExtension{Data: []byte{0, 8, 9, 9, 1, 2, 3, 4}}))
	nat := testICMPError(rtrAddr, s.Src, ICMPTimeExceeded, 0, natQuote(s, codecDst, netip.MustParseAddr("10.77.0.9"), 3, 5, s.Epoch, true))
	m := NewMatcher(s)
	one := NewMatcher(s)
	one.Dst = codecDst
	var r Reply
	var a Answer
	for name, f := range map[string]func(){
		"deep stack, 3 interfaces": func() { m.Match(deep, recv, &r, &a) },
		"rewritten destination":    func() { one.Match(nat, recv, &r, &a) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
	if !m.Match(deep, recv, &r, &a) || a.Ext.NLabels != answerLabels || a.Ext.NIfs != answerInterfaces || a.Ext.Flags&ExtTruncated == 0 {
		t.Errorf("deep: %+v", a.Ext)
	}
	if !one.Match(nat, recv, &r, &a) || a.Rewrites != RewriteDst {
		t.Errorf("nat: %v", a.Rewrites.Names())
	}
}
