package probe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// Fixed inputs of the codec tests (RFC 5737 documentation addresses).
var (
	codecSrc   = netip.MustParseAddr("192.0.2.10")
	codecDst   = netip.MustParseAddr("198.51.100.7")
	codecEpoch = time.Date(2024, 1, 2, 3, 4, 5, 6789, time.UTC)
)

// codecSpec is a valid Spec with a TOS and a tag that set bits everywhere.
func codecSpec() *Spec {
	return &Spec{
		Src:         codecSrc,
		BaseSrcPort: 33000,
		DstPort:     33452,
		Paths:       32,
		Tag:         613,
		TOS:         0x28,
		Epoch:       codecEpoch,
	}
}

// codecSpecs are Specs that exercise the edges of every field.
func codecSpecs() []*Spec {
	edge := codecSpec()
	edge.Src = netip.MustParseAddr("255.255.255.254")
	edge.BaseSrcPort = 65535 - 8
	edge.Paths = 8
	edge.DstPort = 65535
	edge.Tag = MaxTag
	edge.TOS = 0xff
	low := codecSpec()
	low.Src = netip.MustParseAddr("0.0.0.1")
	low.BaseSrcPort = 0
	low.Paths = 3
	low.DstPort = 0
	low.Tag = 1
	low.TOS = 0
	return []*Spec{codecSpec(), edge, low}
}

// codecTimes are send times: before the epoch, at it, inside the first
// clock period, around the first and a later clock wrap, and far away.
func codecTimes(s *Spec) []time.Time {
	e := s.Epoch
	return []time.Time{
		e.Add(-time.Hour),
		e,
		e.Add(ClockUnit - 1),
		e.Add(123456789 * time.Nanosecond),
		e.Add(ClockWrap - ClockUnit),
		e.Add(ClockWrap - 1),
		e.Add(ClockWrap),
		e.Add(7*ClockWrap + 31*ClockUnit + 17),
		e.Add(1000*time.Hour + 3*time.Millisecond),
	}
}

// refOnesSum is an independent one's-complement sum of the concatenation of
// parts as big-endian 16-bit words (an odd total length is padded with a
// zero byte). It reduces modulo 0xffff instead of folding carries, and
// returns 0xffff (negative zero) for any non-zero input that sums to zero.
func refOnesSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint64
	for i := 0; i < len(all); i += 2 {
		s += uint64(all[i])<<8 + uint64(all[i+1])
	}
	r := s % 0xffff
	if r == 0 && s != 0 {
		return 0xffff
	}
	return uint16(r)
}

// refChecksum is the Internet checksum of parts (computed with the field
// zero), from refOnesSum.
func refChecksum(parts ...[]byte) uint16 { return ^refOnesSum(parts...) }

// refPseudo is the IPv4 pseudo-header of a UDP datagram (RFC 768).
func refPseudo(src, dst netip.Addr, udpLen int) []byte {
	s, d := src.As4(), dst.As4()
	b := append(s[:], d[:]...)
	return append(b, 0, 17, byte(udpLen>>8), byte(udpLen))
}

// flowKey is what a per-flow load balancer may hash.
type flowKey struct {
	src, dst     netip.Addr
	proto, tos   int
	sport, dport uint16
}

// withProto returns a copy of s that sends probes of protocol p.
func withProto(s *Spec, p Proto) *Spec {
	c := *s
	c.Proto = p
	return &c
}

// protoSpecs are codecSpecs for every protocol.
func protoSpecs() []*Spec {
	var out []*Spec
	for _, p := range []Proto{ProtoUDP, ProtoTCP, ProtoICMP} {
		for _, s := range codecSpecs() {
			out = append(out, withProto(s, p))
		}
	}
	return out
}

func TestEncodeChecksumsAndFields(t *testing.T) {
	dsts := []netip.Addr{codecDst, netip.MustParseAddr("10.255.0.1"), netip.MustParseAddr("255.255.255.255")}
	n := 0
	for _, s := range protoSpecs() {
		if err := s.Validate(); err != nil {
			t.Fatalf("spec %+v: %v", s, err)
		}
		for _, dst := range dsts {
			var first flowKey
			sports := map[uint16]int{}
			for path := 1; path <= s.Paths; path++ {
				var pathKey flowKey
				for ttl := 1; ttl <= MaxTTL; ttl++ {
					for _, at := range codecTimes(s) {
						plen := s.ProbeLen()
						b := make([]byte, plen+4)
						copy(b[plen:], "\xde\xad\xbe\xef")
						if got := s.Encode(b, dst, path, ttl, at); got != plen {
							t.Fatalf("%v: Encode returned %d, want %d", s.Proto, got, plen)
						}
						if !bytes.Equal(b[plen:], []byte("\xde\xad\xbe\xef")) {
							t.Fatalf("%v: Encode wrote past ProbeLen", s.Proto)
						}
						var k flowKey
						switch s.Proto {
						case ProtoTCP:
							k = checkTCPProbe(t, s, b[:plen], dst, path, ttl, at)
						case ProtoICMP:
							k = checkICMPProbe(t, s, b[:plen], dst, path, ttl, at)
						default:
							k = checkProbe(t, s, b[:plen], dst, path, ttl, at)
						}
						n++
						if path == 1 && ttl == 1 {
							first = k
						}
						if ttl == 1 && pathKey == (flowKey{}) {
							pathKey = k
						}
						if k != pathKey {
							t.Fatalf("path %d ttl %d: flow %+v differs from TTL 1's %+v", path, ttl, k, pathKey)
						}
					}
				}
				if prev, dup := sports[pathKey.sport]; dup {
					t.Fatalf("paths %d and %d share source port %d", prev, path, pathKey.sport)
				}
				sports[pathKey.sport] = path
				other := pathKey
				other.sport = first.sport
				if s.Proto == ProtoICMP {
					// The checksum follows the identifier.
					other.dport = first.dport
				}
				if other != first {
					t.Fatalf("path %d differs from path 1 beyond the source port: %+v vs %+v", path, pathKey, first)
				}
			}
		}
	}
	if udpLen := withProto(codecSpec(), ProtoUDP).ProbeLen(); udpLen != 30 || lenTCP != 40 || lenICMP != 32 || MaxLen != 40 {
		t.Fatalf("probe lengths: UDP %d TCP %d ICMP %d, max %d", udpLen, lenTCP, lenICMP, MaxLen)
	}
	// Every probe of every spec, destination, path ID, TTL and send time
	// went through its checker.
	want := 0
	for _, s := range protoSpecs() {
		want += len(dsts) * s.Paths * MaxTTL * len(codecTimes(s))
	}
	if want < 10000 || n != want {
		t.Fatalf("%d probes checked, want %d (and at least 10000)", n, want)
	}
	t.Logf("%d probes checked", n)
}

// checkProbe verifies one encoded probe field by field and returns its flow.
func checkProbe(t *testing.T, s *Spec, b []byte, dst netip.Addr, path, ttl int, at time.Time) flowKey {
	t.Helper()
	where := fmt.Sprintf("path %d ttl %d t %v", path, ttl, at.Sub(s.Epoch))

	// IP header: x/net's view and an independent checksum.
	h, err := ipv4.ParseHeader(b)
	if err != nil {
		t.Fatalf("%s: ipv4.ParseHeader: %v", where, err)
	}
	want := ipv4.Header{
		Version: 4, Len: 20, TOS: int(s.TOS), TotalLen: Len, ID: int(IPID(s.Tag, ttl)),
		TTL: ttl, Protocol: 17, Checksum: h.Checksum,
	}
	if h.Version != want.Version || h.Len != want.Len || h.TOS != want.TOS || h.TotalLen != want.TotalLen ||
		h.ID != want.ID || h.Flags != 0 || h.FragOff != 0 || h.TTL != want.TTL || h.Protocol != want.Protocol ||
		len(h.Options) != 0 {
		t.Fatalf("%s: header %+v, want %+v", where, h, want)
	}
	if got, _ := netip.AddrFromSlice(h.Src.To4()); got != s.Src {
		t.Fatalf("%s: src %v, want %v", where, h.Src, s.Src)
	}
	if got, _ := netip.AddrFromSlice(h.Dst.To4()); got != dst {
		t.Fatalf("%s: dst %v, want %v", where, h.Dst, dst)
	}
	if sum := refOnesSum(b[:ipv4HeaderLen]); sum != 0xffff {
		t.Fatalf("%s: IP header sums to %#04x, want 0xffff", where, sum)
	}
	zeroed := append([]byte(nil), b[:ipv4HeaderLen]...)
	zeroed[10], zeroed[11] = 0, 0
	if c := refChecksum(zeroed); int(c) != h.Checksum {
		t.Fatalf("%s: IP checksum %#04x, independent %#04x", where, h.Checksum, c)
	}

	// UDP over the pseudo-header.
	u := b[ipv4HeaderLen:]
	sport, dport := binary.BigEndian.Uint16(u[0:]), binary.BigEndian.Uint16(u[2:])
	ulen, csum := binary.BigEndian.Uint16(u[4:]), binary.BigEndian.Uint16(u[6:])
	if sport != s.BaseSrcPort+uint16(path) || dport != s.DstPort || ulen != udpHeaderLen+payloadLen {
		t.Fatalf("%s: UDP %d->%d len %d", where, sport, dport, ulen)
	}
	if csum == 0 {
		t.Fatalf("%s: UDP checksum 0 (means no checksum)", where)
	}
	if csum != s.Clock(at) {
		t.Fatalf("%s: UDP checksum %d, want clock %d", where, csum, s.Clock(at))
	}
	if sum := refOnesSum(refPseudo(s.Src, dst, len(u)), u); sum != 0xffff {
		t.Fatalf("%s: UDP datagram + pseudo-header sums to %#04x, want 0xffff", where, sum)
	}
	uz := append([]byte(nil), u...)
	uz[6], uz[7] = 0, 0
	c := refChecksum(refPseudo(s.Src, dst, len(u)), uz)
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	if c != csum {
		t.Fatalf("%s: UDP checksum %#04x, independent %#04x", where, csum, c)
	}
	return flowKey{s.Src, dst, h.Protocol, h.TOS, sport, dport}
}

func TestIPIDRoundTrip(t *testing.T) {
	var seen [1 << 16]bool
	for tag := uint16(1); tag <= MaxTag; tag++ {
		for ttl := 1; ttl <= MaxTTL; ttl++ {
			id := IPID(tag, ttl)
			if seen[id] {
				t.Fatalf("IPID(%d, %d) = %#04x repeats", tag, ttl, id)
			}
			seen[id] = true
			gtag, gttl := SplitIPID(id)
			if gtag != tag || gttl != ttl {
				t.Fatalf("SplitIPID(IPID(%d, %d)) = %d, %d", tag, ttl, gtag, gttl)
			}
		}
	}
	if MaxTag != 1023 || MaxTTL != 64 {
		t.Fatalf("MaxTag %d MaxTTL %d, want 1023 and 64", MaxTag, MaxTTL)
	}
}

func TestClockRTT(t *testing.T) {
	s := codecSpec()
	delays := []time.Duration{0, 1, ClockUnit - 1, ClockUnit, ClockUnit + 1, time.Millisecond,
		1234567890, 3 * time.Second, 6*time.Second - 1, 6 * time.Second}
	for d := time.Duration(0); d <= 6*time.Second; d += 7*time.Millisecond + 3*ClockUnit + 11 {
		delays = append(delays, d)
	}
	// Send offsets from the epoch; those marked wrap put the clock wrap
	// between the send and (most of) the receive times.
	sends := []struct {
		off  time.Duration
		wrap bool
	}{
		{0, false},
		{ClockUnit / 2, false},
		{987654321, false},
		{ClockWrap - 3*time.Second - 17, true},
		{ClockWrap - ClockUnit, true},
		{ClockWrap - 1, true},
		{5*ClockWrap - 250*time.Millisecond + 42, true},
		{10000*time.Hour + 1, false},
	}
	wrapped := 0
	for _, snd := range sends {
		sent := s.Epoch.Add(snd.off)
		c := s.Clock(sent)
		if c == 0 {
			t.Fatalf("Clock(%v) = 0", snd.off)
		}
		for _, d := range delays {
			recv := sent.Add(d)
			if s.Clock(recv) < c {
				wrapped++
			}
			got := s.RTT(c, recv)
			if got < d || got-d >= ClockUnit {
				t.Fatalf("send at %v, delay %v: RTT %v (clock %d -> %d)", snd.off, d, got, c, s.Clock(recv))
			}
		}
		if snd.wrap && s.Clock(sent.Add(6*time.Second)) >= c {
			t.Fatalf("send at %v: clock does not wrap within 6 s", snd.off)
		}
	}
	if wrapped == 0 {
		t.Fatal("no case crossed the clock wrap")
	}
	if c := s.Clock(s.Epoch.Add(-time.Minute)); c != 1 {
		t.Fatalf("Clock before the epoch = %d, want 1", c)
	}
	if c := s.Clock(s.Epoch.Add(ClockWrap - 1)); c != 65535 {
		t.Fatalf("last clock value %d, want 65535", c)
	}
	if c := s.Clock(s.Epoch.Add(ClockWrap)); c != 1 {
		t.Fatalf("clock after the wrap %d, want 1", c)
	}
	if ClockWrap != 6553500*time.Microsecond {
		t.Fatalf("ClockWrap %v", ClockWrap)
	}
}

func TestSpecValidate(t *testing.T) {
	mod := func(f func(*Spec)) *Spec { s := codecSpec(); f(s); return s }
	bad := map[string]*Spec{
		"zero source":       mod(func(s *Spec) { s.Src = netip.Addr{} }),
		"IPv6 source, TCP":  mod(func(s *Spec) { s.Src, s.Proto = netip.MustParseAddr("2001:db8::1"), ProtoTCP }),
		"IPv6 source, ICMP": mod(func(s *Spec) { s.Src, s.Proto = netip.MustParseAddr("2001:db8::1"), ProtoICMP }),
		"zoned source":      mod(func(s *Spec) { s.Src = netip.MustParseAddr("fe80::1%eth0") }),
		"4in6 source":       mod(func(s *Spec) { s.Src = netip.MustParseAddr("::ffff:192.0.2.10") }),
		"tag 0":             mod(func(s *Spec) { s.Tag = 0 }),
		"tag 1024":          mod(func(s *Spec) { s.Tag = MaxTag + 1 }),
		"tag 65535":         mod(func(s *Spec) { s.Tag = 65535 }),
		"no paths":          mod(func(s *Spec) { s.Paths = 0 }),
		"negative":          mod(func(s *Spec) { s.Paths = -1 }),
		"port overflow":     mod(func(s *Spec) { s.BaseSrcPort = 65535 - 31; s.Paths = 32 }),
		"huge paths":        mod(func(s *Spec) { s.BaseSrcPort = 0; s.Paths = 65536 }),
	}
	for name, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, s)
		}
	}
	good := map[string]*Spec{
		"default":        codecSpec(),
		"max tag":        mod(func(s *Spec) { s.Tag = MaxTag }),
		"last port":      mod(func(s *Spec) { s.BaseSrcPort = 65535 - 32; s.Paths = 32 }),
		"all ports":      mod(func(s *Spec) { s.BaseSrcPort = 0; s.Paths = 65535 }),
		"one path":       mod(func(s *Spec) { s.Paths = 1 }),
		"zero dst port":  mod(func(s *Spec) { s.DstPort = 0 }),
		"zero epoch too": mod(func(s *Spec) { s.Epoch = time.Time{} }),
	}
	for name, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: Validate rejected %+v: %v", name, s, err)
		}
	}
}

// scapyScript parses hex-encoded probes, one a line, with scapy, then
// rebuilds each with both checksums deleted (so scapy recomputes them) and
// prints the fields and whether scapy's checksums and bytes equal the wire's.
const scapyScript = `
import sys
from scapy.layers.inet import IP, UDP
for line in open(sys.argv[1]):
    raw = bytes.fromhex(line.strip())
    p = IP(raw)
    u = p[UDP]
    q = IP(raw)
    del q.chksum
    del q[UDP].chksum
    rebuilt = bytes(q)
    r = IP(rebuilt)
    print(p.version, p.ihl, p.tos, p.len, p.id, p.flags.value, p.frag, p.ttl, p.proto, p.src, p.dst,
          u.sport, u.dport, u.len, u.chksum,
          int(r.chksum == p.chksum), int(r[UDP].chksum == u.chksum), int(rebuilt == raw))
`

// TestEncodeScapy has Debian's scapy decode the probes and recompute their
// checksums.
func TestEncodeScapy(t *testing.T) {
	py := needScapy(t)

	var in bytes.Buffer
	var want []string
	for _, s := range codecSpecs() {
		for _, dst := range []netip.Addr{codecDst, netip.MustParseAddr("10.1.2.3")} {
			for _, path := range []int{1, 2, s.Paths} {
				for _, ttl := range []int{1, 2, 33, MaxTTL} {
					for _, at := range codecTimes(s) {
						b := make([]byte, Len)
						s.Encode(b, dst, path, ttl, at)
						fmt.Fprintf(&in, "%x\n", b)
						want = append(want, fmt.Sprintf("4 5 %d %d %d 0 0 %d 17 %v %v %d %d %d %d 1 1 1",
							s.TOS, Len, IPID(s.Tag, ttl), ttl, s.Src, dst,
							s.BaseSrcPort+uint16(path), s.DstPort, udpHeaderLen+payloadLen, s.Clock(at)))
					}
				}
			}
		}
	}
	file := filepath.Join(t.TempDir(), "probes.hex")
	if err := os.WriteFile(file, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", scapyScript, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scapy: %v\n%s", err, stderr.Bytes())
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		got = append(got, strings.TrimSpace(sc.Text()))
	}
	if len(got) != len(want) {
		t.Fatalf("scapy printed %d lines for %d probes\n%s", len(got), len(want), stderr.Bytes())
	}
	compared := 0
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("probe %d: scapy says\n  %s\nwant\n  %s", i, got[i], want[i])
		}
		compared++
	}
	// 2 destinations, 3 path IDs, 4 TTLs, every send time, every spec.
	if n := len(codecSpecs()) * 2 * 3 * 4 * len(codecTimes(codecSpec())); compared != n {
		t.Fatalf("compared %d probes with scapy, want %d", compared, n)
	}
	t.Logf("scapy agrees on %d probes", compared)
}

func TestEncodeAllocs(t *testing.T) {
	for _, p := range []Proto{ProtoUDP, ProtoTCP, ProtoICMP} {
		s := withProto(codecSpec(), p)
		b := make([]byte, MaxLen)
		at := s.Epoch.Add(time.Second)
		if n := testing.AllocsPerRun(1000, func() { s.Encode(b, codecDst, 7, 9, at) }); n != 0 {
			t.Errorf("Encode %v: %v allocations per run, want 0", p, n)
		}
	}
}

var sinkInt int

func BenchmarkEncode(b *testing.B) {
	for _, p := range []Proto{ProtoUDP, ProtoTCP, ProtoICMP} {
		b.Run(p.String(), func(b *testing.B) {
			b.ReportAllocs()
			s := withProto(codecSpec(), p)
			buf := make([]byte, MaxLen)
			at := s.Epoch.Add(time.Second)
			b.SetBytes(int64(s.ProbeLen()))
			for i := 0; i < b.N; i++ {
				sinkInt += s.Encode(buf, codecDst, 1+i%s.Paths, 1+i%MaxTTL, at)
			}
		})
	}
}

// FuzzEncodeRoundTrip encodes a probe of any protocol, has a router quote
// it in a time exceeded message (whole, and cut to the 8 bytes of transport
// header RFC 792 requires) and, for TCP and ICMP, the destination answer it
// (SYN-ACK, RST or echo reply), and checks that parsing and matching the
// replies give back the path ID, TTL, run tag and RTT.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add(uint16(33000), uint16(1), uint16(1), uint16(613), uint16(0x28), int64(0), int64(0), uint8(0))
	f.Add(uint16(65534), uint16(1), uint16(63), uint16(1023), uint16(0xff), int64(ClockWrap-1), int64(6*time.Second), uint8(1))
	f.Add(uint16(0), uint16(65535), uint16(64), uint16(1), uint16(0), int64(-1), int64(ClockUnit-1), uint8(2))
	f.Add(uint16(40000), uint16(77), uint16(200), uint16(5000), uint16(3), int64(5*ClockWrap-50*time.Millisecond), int64(time.Second), uint8(4))
	f.Add(uint16(65000), uint16(534), uint16(64), uint16(1022), uint16(0x10), int64(ClockWrap-ClockUnit), int64(ClockUnit), uint8(5))
	f.Fuzz(func(t *testing.T, base, path, ttl, tag, tos uint16, sendNs, rttNs int64, proto uint8) {
		if base == 65535 {
			base = 65534
		}
		s := &Spec{
			Src:         codecSrc,
			BaseSrcPort: base,
			DstPort:     33452,
			Paths:       int(65535 - base),
			Proto:       Proto(proto % 3),
			Tag:         1 + tag%MaxTag,
			TOS:         uint8(tos),
			Epoch:       codecEpoch,
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		p := 1 + int(path)%s.Paths
		hop := 1 + int(ttl)%MaxTTL
		sent := s.Epoch.Add(time.Duration(uint64(sendNs) % uint64(1000*time.Hour)))
		delay := time.Duration(uint64(rttNs) % uint64(6*time.Second+1))
		recv := sent.Add(delay)

		pkt := make([]byte, s.ProbeLen())
		s.Encode(pkt, codecDst, p, hop, sent)
		// A router quotes the probe with the TTL it had on arrival (1).
		quote := append([]byte(nil), pkt...)
		quote[8] = 1
		binary.BigEndian.PutUint16(quote[10:], 0)
		binary.BigEndian.PutUint16(quote[10:], refChecksum(quote[:ipv4HeaderLen]))
		type reply struct {
			pkt      []byte
			from     netip.Addr
			typ      uint8
			hasClock bool
		}
		replies := []reply{
			{testICMPError(rtrAddr, codecSrc, ICMPTimeExceeded, CodeTTLExceeded, quote), rtrAddr, ICMPTimeExceeded, true},
			{testICMPError(rtrAddr, codecSrc, ICMPTimeExceeded, CodeTTLExceeded, quote[:ipv4HeaderLen+8]), rtrAddr, ICMPTimeExceeded, s.Proto != ProtoICMP},
		}
		switch s.Proto {
		case ProtoTCP:
			seq := binary.BigEndian.Uint32(pkt[ipv4HeaderLen+4:])
			flags := uint8(TCPFlagSYN | TCPFlagACK)
			if proto&4 != 0 {
				flags = TCPFlagRST | TCPFlagACK
			}
			replies = append(replies, reply{testTCPSegment(codecDst, codecSrc, s.DstPort, s.BaseSrcPort+uint16(p), uint32(rttNs), seq+1, flags), codecDst, TypeTCP, true})
		case ProtoICMP:
			replies = append(replies, reply{testEchoReply(codecDst, codecSrc, pkt[ipv4HeaderLen:]), codecDst, ICMPEchoReply, true})
		}
		for i, rp := range replies {
			var r Reply
			if err := ParseReply(rp.pkt, &r); err != nil {
				t.Fatalf("reply %d: ParseReply: %v", i, err)
			}
			gp, gttl, ok := s.Match(&r)
			if !ok || gp != p || gttl != hop {
				t.Fatalf("reply %d: Match = %d, %d, %v; want %d, %d", i, gp, gttl, ok, p, hop)
			}
			if gtag, _ := SplitIPID(r.QID); gtag != s.Tag || r.QDst != codecDst || r.Direct != (rp.from == codecDst) {
				t.Fatalf("reply %d: tag %d dst %v direct %v", i, gtag, r.QDst, r.Direct)
			}
			if !r.Direct && r.QTOS != s.TOS {
				t.Fatalf("reply %d: TOS %d", i, r.QTOS)
			}
			rtt := s.RTT(r.QChecksum, recv)
			if rp.hasClock && (rtt < delay || rtt-delay >= ClockUnit) {
				t.Fatalf("reply %d: RTT %v for a delay of %v", i, rtt, delay)
			}
			if !rp.hasClock && (r.QChecksum != 0 || rtt != 0) {
				t.Fatalf("reply %d: clock %d, RTT %v from a quote without clock", i, r.QChecksum, rtt)
			}
			m := NewMatcher(s)
			var a Answer
			if !m.Match(rp.pkt, recv, &r, &a) {
				t.Fatalf("reply %d: Matcher.Match rejected its own reply", i)
			}
			if a.Dst != codecDst || int(a.Path) != p || int(a.TTL) != hop || a.From != rp.from || a.Type != rp.typ ||
				(rp.hasClock && (a.RTT < delay || a.RTT-delay >= ClockUnit)) || a.Reached() != r.Direct || a.Stops() != r.Direct {
				t.Fatalf("reply %d: answer %+v", i, a)
			}
		}
	})
}
