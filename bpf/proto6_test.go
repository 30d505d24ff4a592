//go:build linux

package bpf

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// The IPv6 run of the udp6 corpus: runSpec from an IPv6 source.
var (
	ourSrc6  = netip.MustParseAddr("2001:db8::10")
	target6  = netip.MustParseAddr("2001:db8:99::7")
	router6  = netip.MustParseAddr("2001:db8:1::1")
	udp6Spec = func() probe.Spec { s := runSpec; s.Src = ourSrc6; return s }()
)

// encodeProbe6 returns the IPv6 probe s sends to target6 on path pathID
// with TTL ttl.
func encodeProbe6(s probe.Spec, pathID, ttl int) []byte {
	b := make([]byte, probe.MaxProbeLen)
	return b[:s.Encode(b, target6, pathID, ttl, s.Epoch.Add(1234*time.Microsecond))]
}

// ipv6 returns an IPv6 packet (RFC 8200) with next header next.
func ipv6(next uint8, src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	binary.BigEndian.PutUint32(b[0:], 6<<28|0x12345) // flow label 0x12345
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = next, 61
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], payload)
	return b
}

// icmp6 returns an ICMPv6 message (RFC 4443) from src to dst quoting
// quote, with its checksum. With ext, the quote is zero-padded to 128
// bytes, its length in 64-bit words goes in byte 4 (RFC 4884) and an
// extension structure holding ext follows.
func icmp6(typ, code uint8, src, dst netip.Addr, quote, ext []byte) []byte {
	b := make([]byte, 8, 8+128+4+len(ext))
	b[0], b[1] = typ, code
	b = append(b, quote...)
	if ext != nil {
		b = append(b, make([]byte, 128-len(quote))...)
		b[4] = 128 / 8
		eh := len(b)
		b = append(b, 2<<4, 0, 0, 0)
		b = append(b, ext...)
		binary.BigEndian.PutUint16(b[eh+2:], probe.Checksum(b[eh:]))
	}
	s, d := src.As16(), dst.As16()
	pseudo := append(append(s[:], d[:]...), 0, 0, byte(len(b)>>8), byte(len(b)), 0, 0, 0, 58)
	binary.BigEndian.PutUint16(b[2:], probe.Checksum(append(pseudo, b...)))
	return b
}

// reply6From returns the frame of an ICMPv6 error from from to us.
func reply6From(from netip.Addr, typ, code uint8, quote []byte) []byte {
	return eth(unix.ETH_P_IPV6, ipv6(58, from, ourSrc6, icmp6(typ, code, from, ourSrc6, quote, nil)))
}

// reply6 returns the frame of an ICMPv6 error from router6 to us.
func reply6(typ, code uint8, quote []byte) []byte { return reply6From(router6, typ, code, quote) }

// corpus6 holds the replies an IPv6 run's filter keeps (ICMPv6 time
// exceeded and unreachable messages quoting its probes) and near misses it
// drops.
func corpus6() []filterCase {
	s := udp6Spec
	other := func(f func(s *probe.Spec)) probe.Spec {
		c := s
		f(&c)
		return c
	}
	p := encodeProbe6(s, 3, 7)
	te := reply6(probe.ICMPv6TimeExceeded, 0, p)
	const quoted = 14 + 40 + 8 // where the quote starts in a frame
	// withExt puts an extension header of next header nh, 8 bytes, between
	// the outer IPv6 header and the ICMPv6 message of frame f.
	withExt := func(f []byte, nh uint8) []byte {
		b := append(append(append([]byte(nil), f[:14+40]...), 58, 0, 1, 4, 0, 0, 0, 0), f[14+40:]...)
		b[14+6] = nh
		binary.BigEndian.PutUint16(b[14+4:], binary.BigEndian.Uint16(b[14+4:])+8)
		return b
	}
	return []filterCase{
		{"time exceeded", te, true},
		{"port unreachable from the target", reply6From(target6, probe.ICMPv6Unreachable, probe.CodeV6PortUnreachable, p), true},
		{"no route", reply6(probe.ICMPv6Unreachable, 0, p), true},
		{"administratively prohibited", reply6(probe.ICMPv6Unreachable, 1, p), true},
		{"fragment reassembly time exceeded", reply6(probe.ICMPv6TimeExceeded, 1, p), true},
		{"first path, TTL 1", reply6(probe.ICMPv6TimeExceeded, 0, encodeProbe6(s, 1, 1)), true},
		{"last path, TTL 64", reply6(probe.ICMPv6TimeExceeded, 0, encodeProbe6(s, 16, 64)), true},
		{"quote cut after the tag word", reply6(probe.ICMPv6TimeExceeded, 0, p[:50]), true},
		{"frame cut after the tag word", te[:quoted+50], true},
		{"RFC 4884 MPLS extension", eth(unix.ETH_P_IPV6, ipv6(58, router6, ourSrc6,
			icmp6(probe.ICMPv6TimeExceeded, 0, router6, ourSrc6, p, mplsObject))), true},
		{"quoted traffic class and flow label rewritten", reply6(3, 0, edit(p, func(b []byte) { b[0], b[1], b[3] = 0x6b, 0x8f, 0x77 })), true},
		{"quoted hop limit 0", reply6(3, 0, edit(p, func(b []byte) { b[7] = 0 })), true},
		{"tag low bits set (TTL)", reply6(3, 0, edit(p, func(b []byte) { b[49] |= 0x3f })), true},
		{"link-layer padding", append(append([]byte(nil), te...), 0, 0, 0, 0), true},

		{"wrong tag (next run)", reply6(3, 0, encodeProbe6(other(func(s *probe.Spec) { s.Tag++ }), 3, 7)), false},
		{"wrong tag (previous run)", reply6(3, 0, encodeProbe6(other(func(s *probe.Spec) { s.Tag-- }), 3, 7)), false},
		{"other source", reply6(3, 0, encodeProbe6(other(func(s *probe.Spec) {
			s.Src = netip.MustParseAddr("2001:db8::11")
		}), 3, 7)), false},
		{"other source, first word", reply6(3, 0, encodeProbe6(other(func(s *probe.Spec) {
			s.Src = netip.MustParseAddr("2001:db9::10")
		}), 3, 7)), false},
		{"source port below range", reply6(3, 0, encodeProbe6(s, 0, 7)), false},
		{"source port above range", reply6(3, 0, encodeProbe6(s, 17, 7)), false},
		{"wrong destination port", reply6(3, 0, encodeProbe6(other(func(s *probe.Spec) { s.DstPort++ }), 3, 7)), false},
		{"quoted TCP", reply6(3, 0, edit(p, func(b []byte) { b[6] = unix.IPPROTO_TCP })), false},
		{"quoted hop-by-hop options header", reply6(3, 0, edit(p, func(b []byte) { b[6] = 0 })), false},
		{"quoted version 4", reply6(3, 0, edit(p, func(b []byte) { b[0] = 4<<4 | 5 })), false},
		{"quote cut in the tag word", reply6(3, 0, p[:49]), false},
		{"frame cut in the tag word", te[:quoted+49], false},
		{"frame cut in the quoted ports", te[:quoted+40+3], false},
		{"frame cut in the quoted header", te[:quoted+39], false},
		{"frame cut in the ICMPv6 header", te[:14+40+7], false},
		{"IPv6 header only", te[:14+40], false},
		{"echo reply", reply6(129, 0, p), false},
		{"packet too big", reply6(2, 0, p), false},
		{"parameter problem", reply6(4, 0, p), false},
		{"neighbour solicitation", reply6(135, 0, p), false},
		{"ICMPv4 type numbers (time exceeded 11)", reply6(11, 0, p), false},
		{"behind a hop-by-hop options header", withExt(te, 0), false},
		{"behind a destination options header", withExt(te, 60), false},
		{"UDP carrying the quote", eth(unix.ETH_P_IPV6, ipv6(17, router6, ourSrc6, te[14+40:])), false},
		{"our own outgoing probe", eth(unix.ETH_P_IPV6, p), false},
		{"outer version 4, IPv6 ethertype", edit(te, func(b []byte) { b[14] = 4<<4 | 5 }), false},
		{"IPv4 ethertype, IPv6 bytes", eth(unix.ETH_P_IP, te[14:]), false},
		{"ICMP time exceeded quoting an IPv4 probe", reply(probe.ICMPTimeExceeded, 0, encodeProbe(runSpec, 3, 7)), false},
	}
}

// v4DropsV6 are IPv6 replies to an IPv6 run, which an IPv4 run drops.
func v4DropsV6() []filterCase {
	p := encodeProbe6(udp6Spec, 3, 7)
	return []filterCase{
		{"ICMPv6 time exceeded quoting an IPv6 probe", reply6(probe.ICMPv6TimeExceeded, 0, p), false},
		{"ICMPv6 port unreachable quoting an IPv6 probe", reply6From(target6, 1, 4, p), false},
	}
}

// TestProbe6Layout checks the offsets the IPv6 filters rely on against the
// probe package's encoding: the quoted source address, ports and tag word.
func TestProbe6Layout(t *testing.T) {
	p := encodeProbe6(udp6Spec, 5, 9)
	if len(p) != probe.Len6 || p[0]>>4 != 6 || p[6] != 17 || p[7] != 9 {
		t.Fatalf("probe % x", p)
	}
	if netip.AddrFrom16([16]byte(p[8:24])) != ourSrc6 {
		t.Errorf("source at bytes 8-23: % x", p[8:24])
	}
	if sp, dp := binary.BigEndian.Uint16(p[40:]), binary.BigEndian.Uint16(p[42:]); sp != udp6Spec.BaseSrcPort+5 || dp != udp6Spec.DstPort {
		t.Errorf("ports %d, %d", sp, dp)
	}
	if tag, ttl := probe.SplitIPID(binary.BigEndian.Uint16(p[48:])); tag != udp6Spec.Tag || ttl != 9 {
		t.Errorf("tag word at byte 48: tag %d, TTL %d", tag, ttl)
	}
}

// TestMatch6 checks that the IPv6 keys reach both programs at the ends of
// their ranges: the port range, the largest tag, the highest TTL, and a
// source address whose every word matters.
func TestMatch6(t *testing.T) {
	s := probe.Spec{Src: netip.MustParseAddr("fd00:ffff:1:2:3:4:5:6"), BaseSrcPort: 65000, DstPort: 65535,
		Paths: 535, Tag: probe.MaxTag, Epoch: runSpec.Epoch}
	m := matchOf(s)
	vm := forVM(t, loadClassic(t, m).insns)
	f := loadFilterIfAllowed(t, m)
	for _, tc := range []struct {
		pathID, ttl int
		keep        bool
	}{{1, 1, true}, {535, 64, true}, {0, 1, false}} {
		for _, frame := range [][]byte{
			reply6(probe.ICMPv6TimeExceeded, 0, encodeProbe6(s, tc.pathID, tc.ttl)),
			reply6From(target6, probe.ICMPv6Unreachable, probe.CodeV6PortUnreachable, encodeProbe6(s, tc.pathID, tc.ttl)),
		} {
			got := runVM(t, vm, frame)
			if (got == keepAll) != tc.keep || (got != keepAll && got != 0) {
				t.Errorf("path %d TTL %d: classic returned %#x, want keep=%v", tc.pathID, tc.ttl, got, tc.keep)
			}
			if f == nil {
				continue
			}
			if e, _ := runEBPF(t, f, frame); e != got {
				t.Errorf("path %d TTL %d: eBPF returned %#x, classic %#x", tc.pathID, tc.ttl, e, got)
			}
		}
	}
	// Each 32-bit word of the source address is compared.
	for w := range 4 {
		o := s
		b := o.Src.As16()
		b[4*w+3] ^= 1
		o.Src = netip.AddrFrom16(b)
		frame := reply6(probe.ICMPv6TimeExceeded, 0, encodeProbe6(o, 1, 1))
		if got := runVM(t, vm, frame); got != 0 {
			t.Errorf("source word %d differs: classic returned %#x", w, got)
		}
		if f != nil {
			if e, _ := runEBPF(t, f, frame); e != 0 {
				t.Errorf("source word %d differs: eBPF returned %#x", w, e)
			}
		}
	}
}

// TestMatch6Invalid checks that an IPv6 Match takes UDP only.
func TestMatch6Invalid(t *testing.T) {
	for _, p := range []probe.Proto{probe.ProtoTCP, probe.ProtoICMP} {
		m := matchOf(udp6Spec)
		m.Proto = p
		if p == probe.ProtoICMP {
			m.DstPort = 0
		}
		want := "bpf: load filter: invalid Match.Proto " + p.String() + ": IPv6 runs probe with udp only"
		if _, _, err := Load(m); err == nil || err.Error() != want {
			t.Errorf("Load(%+v) = %v, want %q", m, err, want)
		}
		if _, err := LoadClassic(m); err == nil {
			t.Errorf("LoadClassic(%+v) succeeded", m)
		}
	}
	m := matchOf(udp6Spec)
	m.Src = netip.MustParseAddr("fe80::1%eth0")
	if _, err := LoadClassic(m); err == nil {
		t.Errorf("LoadClassic with a zone succeeded")
	}
}
