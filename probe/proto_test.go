package probe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// refPseudoProto is the IPv4 pseudo-header of a segment of protocol proto.
func refPseudoProto(src, dst netip.Addr, proto uint8, n int) []byte {
	b := refPseudo(src, dst, n)
	b[9] = proto
	return b
}

// testTCPSegment builds, by hand, an IPv4 TCP segment without options and
// with a valid checksum.
func testTCPSegment(from, to netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8) []byte {
	t := make([]byte, tcpHeaderLen)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = 5 << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 29200)
	binary.BigEndian.PutUint16(t[16:], refChecksum(refPseudoProto(from, to, protoTCP, len(t)), t))
	return testIPv4(from, to, 61, protoTCP, t)
}

// testEchoReply is the echo reply (RFC 792) a host sends for the echo
// request message req (ICMP header and data).
func testEchoReply(from, to netip.Addr, req []byte) []byte {
	m := append([]byte(nil), req...)
	m[0] = ICMPEchoReply
	return testIPv4(from, to, 61, protoICMP, fixICMPChecksum(m))
}

// checkIPHeader verifies the IPv4 header of a probe of protocol proto and
// length n, with x/net's parser and an independent checksum.
func checkIPHeader(t *testing.T, s *Spec, b []byte, dst netip.Addr, ttl int, proto, n int, where string) *ipv4.Header {
	t.Helper()
	h, err := ipv4.ParseHeader(b)
	if err != nil {
		t.Fatalf("%s: ipv4.ParseHeader: %v", where, err)
	}
	if h.Version != 4 || h.Len != 20 || h.TOS != int(s.TOS) || h.TotalLen != n || h.ID != int(IPID(s.Tag, ttl)) ||
		h.Flags != 0 || h.FragOff != 0 || h.TTL != ttl || h.Protocol != proto || len(h.Options) != 0 {
		t.Fatalf("%s: header %+v", where, h)
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
	return h
}

// checkTCPProbe verifies one encoded TCP probe field by field and returns
// its flow.
func checkTCPProbe(t *testing.T, s *Spec, b []byte, dst netip.Addr, path, ttl int, at time.Time) flowKey {
	t.Helper()
	where := fmt.Sprintf("tcp path %d ttl %d t %v", path, ttl, at.Sub(s.Epoch))
	h := checkIPHeader(t, s, b, dst, ttl, 6, lenTCP, where)
	u := b[ipv4HeaderLen:]
	sport, dport := binary.BigEndian.Uint16(u[0:]), binary.BigEndian.Uint16(u[2:])
	seq, ack := binary.BigEndian.Uint32(u[4:]), binary.BigEndian.Uint32(u[8:])
	if sport != s.BaseSrcPort+uint16(path) || dport != s.DstPort || ack != 0 {
		t.Fatalf("%s: TCP %d->%d ack %d", where, sport, dport, ack)
	}
	if seq>>16 != uint32(s.Clock(at)) || uint16(seq) != IPID(s.Tag, ttl) {
		t.Fatalf("%s: sequence number %#08x, want clock %#04x and IP.ID %#04x", where, seq, s.Clock(at), IPID(s.Tag, ttl))
	}
	if u[12] != 5<<4 || u[13] != TCPFlagSYN || binary.BigEndian.Uint16(u[14:]) != 65535 || u[18] != 0 || u[19] != 0 {
		t.Fatalf("%s: TCP offset/flags/window/urgent % x", where, u[12:20])
	}
	if sum := refOnesSum(refPseudoProto(s.Src, dst, 6, len(u)), u); sum != 0xffff {
		t.Fatalf("%s: TCP segment + pseudo-header sums to %#04x", where, sum)
	}
	return flowKey{s.Src, dst, h.Protocol, h.TOS, sport, dport}
}

// checkICMPProbe verifies one encoded ICMP probe field by field and returns
// its flow: the identifier as source port and the checksum as destination
// port, the two fields a load balancer that hashes ICMP may read.
func checkICMPProbe(t *testing.T, s *Spec, b []byte, dst netip.Addr, path, ttl int, at time.Time) flowKey {
	t.Helper()
	where := fmt.Sprintf("icmp path %d ttl %d t %v", path, ttl, at.Sub(s.Epoch))
	h := checkIPHeader(t, s, b, dst, ttl, 1, lenICMP, where)
	m := b[ipv4HeaderLen:]
	id, seq := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:])
	csum := binary.BigEndian.Uint16(m[2:])
	if m[0] != 8 || m[1] != 0 || id != s.BaseSrcPort+uint16(path) || seq != IPID(s.Tag, ttl) {
		t.Fatalf("%s: ICMP type %d code %d id %d seq %#04x", where, m[0], m[1], id, seq)
	}
	if clock := binary.BigEndian.Uint16(m[8:]); clock != s.Clock(at) {
		t.Fatalf("%s: payload clock %d, want %d", where, clock, s.Clock(at))
	}
	if sum := refOnesSum(m); sum != 0xffff {
		t.Fatalf("%s: ICMP message sums to %#04x", where, sum)
	}
	// The fixed checksum: that of the request with sequence and payload 0.
	zero := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 0, 0, 0, 0, 0}
	if want := refChecksum(zero); csum != want || csum != s.ICMPChecksum(path) {
		t.Fatalf("%s: checksum %#04x, want %#04x", where, csum, want)
	}
	return flowKey{s.Src, dst, h.Protocol, h.TOS, id, csum}
}

// scapyProtoCase is a JSON case of testdata/proto_scapy.py.
type scapyProtoCase struct {
	Proto  string `json:"proto"`
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	Rtr    string `json:"rtr"`
	TOS    uint8  `json:"tos"`
	Tag    uint16 `json:"tag"`
	TTL    int    `json:"ttl"`
	Sport  uint16 `json:"sport"`
	Dport  uint16 `json:"dport"`
	Clock  uint16 `json:"clock"`
	SrvSeq uint32 `json:"srvseq"`

	spec *Spec
	dst  netip.Addr
	path int
	at   time.Time
}

type scapyProtoOut struct {
	Probe   string      `json:"probe"`
	Replies [][2]string `json:"replies"`
}

// needScapy skips the test without Debian's scapy for /usr/bin/python3
// (with the Python modules mods, "scapy.layers.inet" when none are given),
// unless CI=true, and returns the interpreter's path.
func needScapy(t *testing.T, mods ...string) string {
	t.Helper()
	if len(mods) == 0 {
		mods = []string{"scapy.layers.inet"}
	}
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testenv.Skipf(t, "no %s: %v", py, err)
	}
	for _, m := range mods {
		if out, err := exec.Command(py, "-c", "import "+m).CombinedOutput(); err != nil {
			testenv.Skipf(t, "%s has no %s (apt-get install python3-scapy): %v: %s", py, m, err, out)
		}
	}
	return py
}

// TestProtoScapy has scapy build, from the fields the package documentation
// lays out, the probes of every protocol (they must equal Encode's bytes)
// and the replies routers and destinations send to them: time exceeded and
// unreachable messages quoting them, SYN-ACKs and RSTs, echo replies, and
// near misses. ParseReply, Spec.Match and Matcher.Match must decode each
// into the probe's path ID, TTL and send clock, reached or not, and refuse
// the near misses.
func TestProtoScapy(t *testing.T) {
	py := needScapy(t)
	var cases []scapyProtoCase
	var in bytes.Buffer
	srv := uint32(0x9e3779b9)
	for _, s := range protoSpecs() {
		for _, dst := range []netip.Addr{codecDst, netip.MustParseAddr("10.1.2.3")} {
			for _, path := range []int{1, 2, s.Paths} {
				for _, ttl := range []int{1, 2, 33, MaxTTL} {
					for _, at := range codecTimes(s) {
						srv = srv*1664525 + 1013904223
						c := scapyProtoCase{
							Proto: s.Proto.String(), Src: s.Src.String(), Dst: dst.String(), Rtr: rtrAddr.String(),
							TOS: s.TOS, Tag: s.Tag, TTL: ttl, Sport: s.BaseSrcPort + uint16(path), Dport: s.DstPort,
							Clock: s.Clock(at), SrvSeq: srv,
							spec: s, dst: dst, path: path, at: at,
						}
						b, err := json.Marshal(c)
						if err != nil {
							t.Fatal(err)
						}
						in.Write(append(b, '\n'))
						cases = append(cases, c)
					}
				}
			}
		}
	}
	file := filepath.Join(t.TempDir(), "cases.jsonl")
	if err := os.WriteFile(file, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "proto_scapy.py"), file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scapy: %v\n%s", err, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	i := 0
	kinds := map[string]int{}
	for ; sc.Scan(); i++ {
		if i >= len(cases) {
			t.Fatalf("scapy printed more lines than the %d cases", len(cases))
		}
		c := cases[i]
		var o scapyProtoOut
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatal(err)
		}
		s := c.spec
		where := fmt.Sprintf("%s path %d ttl %d to %v clock %d", c.Proto, c.path, c.TTL, c.dst, c.Clock)
		got := make([]byte, MaxLen)
		got = got[:s.Encode(got, c.dst, c.path, c.TTL, c.at)]
		if want := mustHex(t, o.Probe); !bytes.Equal(got, want) {
			t.Fatalf("%s: Encode\n  % x\nscapy\n  % x", where, got, want)
		}
		for _, kr := range o.Replies {
			kind, pkt := kr[0], mustHex(t, kr[1])
			kinds[c.Proto+": "+kind]++
			checkScapyReply(t, s, c, where+": "+kind, kind, pkt)
		}
	}
	if i != len(cases) {
		t.Fatalf("scapy printed %d lines for %d cases\n%s", i, len(cases), stderr.Bytes())
	}
	checkReplyKinds(t, cases, kinds)
	t.Logf("scapy agrees on %d probes and their replies: %v", len(cases), kinds)
}

// checkReplyKinds checks that TestProtoScapy checked every kind of reply
// (counted in kinds by "protocol: kind") of each protocol, one for each
// case of the protocol.
func checkReplyKinds(t *testing.T, cases []scapyProtoCase, kinds map[string]int) {
	t.Helper()
	if len(kinds) < 3*5+8+6 {
		t.Fatalf("only %d kinds of replies: %v", len(kinds), kinds)
	}
	perProto := map[string]int{}
	for _, c := range cases {
		perProto[c.Proto]++
	}
	for k, n := range kinds {
		if proto, _, _ := strings.Cut(k, ": "); n != perProto[proto] || n == 0 {
			t.Errorf("%s: %d replies checked, want one per %s case (%d)", k, n, proto, perProto[proto])
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkScapyReply decodes one of scapy's replies to the probe of case c.
func checkScapyReply(t *testing.T, s *Spec, c scapyProtoCase, where, kind string, pkt []byte) {
	t.Helper()
	var r Reply
	err := ParseReply(pkt, &r)
	miss := strings.HasSuffix(kind, "!")
	if miss {
		if err == nil {
			if p, ttl, ok := s.Match(&r); ok {
				t.Fatalf("%s: near miss matched path %d TTL %d", where, p, ttl)
			}
			var a Answer
			if NewMatcher(s).Match(pkt, c.at, &r, &a) {
				t.Fatalf("%s: Matcher.Match accepted a near miss: %+v", where, a)
			}
		} else if !errors.Is(err, ErrTCPFlags) && !errors.Is(err, ErrNotError) {
			t.Fatalf("%s: %v", where, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: ParseReply: %v", where, err)
	}
	p, ttl, ok := s.Match(&r)
	if !ok || p != c.path || ttl != c.TTL {
		t.Fatalf("%s: Match = %d, %d, %v", where, p, ttl, ok)
	}
	direct := kind == "syn-ack" || kind == "rst-ack" || strings.HasPrefix(kind, "echo reply")
	clock := c.Clock
	if kind == "echo reply, no payload" || (c.Proto == "icmp" && kind == "time exceeded, 28 bytes") {
		clock = 0 // not in what came back
	}
	reached := direct || kind == "port unreachable"
	if r.Direct != direct || r.QChecksum != clock || r.Reached() != reached || r.QDst != c.dst || r.QSrc != s.Src {
		t.Fatalf("%s: direct %v clock %d reached %v dst %v src %v", where, r.Direct, r.QChecksum, r.Reached(), r.QDst, r.QSrc)
	}
	if c.Proto == "tcp" && uint16(r.QSeq) != IPID(s.Tag, c.TTL) {
		t.Fatalf("%s: sequence number %#08x", where, r.QSeq)
	}
	if direct && (r.Quote != nil || r.Extensions != nil) {
		t.Fatalf("%s: a direct reply with a quote", where)
	}
	var a Answer
	recv := c.at.Add(1234567 * time.Nanosecond)
	if !NewMatcher(s).Match(pkt, recv, &r, &a) {
		t.Fatalf("%s: Matcher.Match rejected", where)
	}
	wantType := map[string]uint8{"syn-ack": TypeTCP, "rst-ack": TypeTCP, "host unreachable": 3, "port unreachable": 3}[kind]
	switch {
	case strings.HasPrefix(kind, "echo reply"):
		wantType = ICMPEchoReply
	case strings.HasPrefix(kind, "time exceeded"):
		wantType = ICMPTimeExceeded
	}
	if a.Type != wantType || a.Reached() != reached || a.Stops() != (reached || kind == "host unreachable") ||
		int(a.Path) != c.path || int(a.TTL) != c.TTL || a.Dst != c.dst {
		t.Fatalf("%s: answer %+v", where, a)
	}
	if kind == "syn-ack" && a.Code != TCPFlagSYN|TCPFlagACK || kind == "rst-ack" && a.Code != TCPFlagRST|TCPFlagACK {
		t.Fatalf("%s: code %#x, want the TCP flags", where, a.Code)
	}
	if c.at.Before(s.Epoch) {
		return // the clock stands still before its epoch
	}
	if clock != 0 && (a.RTT < 1234567*time.Nanosecond || a.RTT >= 1234567*time.Nanosecond+ClockUnit) {
		t.Fatalf("%s: RTT %v", where, a.RTT)
	}
	if clock == 0 && a.RTT != 0 {
		t.Fatalf("%s: RTT %v without a clock, want 0 (unknown)", where, a.RTT)
	}
}

// testProtoReplies are replies to the probe (dst, path, ttl) of s, a TCP or
// ICMP spec, sent at: a router's time exceeded quoting all of it, and the
// destination's direct answer(s).
func testProtoReplies(s *Spec, dst netip.Addr, path, ttl int, at time.Time) (quote []byte, direct [][]byte) {
	p := make([]byte, MaxLen)
	p = p[:s.Encode(p, dst, path, ttl, at)]
	q := append([]byte(nil), p...)
	q[8] = 1
	q[10], q[11] = 0, 0
	binary.BigEndian.PutUint16(q[10:], refChecksum(q[:ipv4HeaderLen]))
	quote = testICMPError(rtrAddr, s.Src, ICMPTimeExceeded, CodeTTLExceeded, q)
	if s.Proto == ProtoTCP {
		seq := binary.BigEndian.Uint32(p[ipv4HeaderLen+4:])
		sport := s.BaseSrcPort + uint16(path)
		direct = [][]byte{
			testTCPSegment(dst, s.Src, s.DstPort, sport, 0x12345678, seq+1, TCPFlagSYN|TCPFlagACK),
			testTCPSegment(dst, s.Src, s.DstPort, sport, 0, seq+1, TCPFlagRST|TCPFlagACK),
		}
	} else {
		direct = [][]byte{testEchoReply(dst, s.Src, p[ipv4HeaderLen:])}
	}
	return quote, direct
}

// TestMatchProtos matches the replies to every TCP and ICMP probe of a
// run, and refuses near misses: other tags, ports, identifiers, sources,
// flags and message types, and replies meant for another protocol.
func TestMatchProtos(t *testing.T) {
	sent := codecEpoch.Add(ClockWrap - 40*time.Millisecond)
	recv := sent.Add(123456 * time.Microsecond)
	for _, proto := range []Proto{ProtoTCP, ProtoICMP} {
		s := withProto(codecSpec(), proto)
		m := NewMatcher(s)
		var r Reply
		var a Answer
		for _, dst := range []netip.Addr{codecDst, netip.MustParseAddr("10.0.0.1")} {
			for path := 1; path <= s.Paths; path++ {
				for ttl := 1; ttl <= MaxTTL; ttl++ {
					quote, direct := testProtoReplies(s, dst, path, ttl, sent)
					for i, pkt := range append([][]byte{quote}, direct...) {
						where := fmt.Sprintf("%v reply %d to path %d ttl %d", proto, i, path, ttl)
						if err := ParseReply(pkt, &r); err != nil {
							t.Fatalf("%s: %v", where, err)
						}
						if p, hop, ok := s.Match(&r); !ok || p != path || hop != ttl {
							t.Fatalf("%s: Spec.Match = %d, %d, %v", where, p, hop, ok)
						}
						if !m.Match(pkt, recv, &r, &a) {
							t.Fatalf("%s: Matcher.Match rejected", where)
						}
						from, typ, reached := rtrAddr, uint8(ICMPTimeExceeded), i > 0
						if reached {
							from, typ = dst, map[Proto]uint8{ProtoTCP: TypeTCP, ProtoICMP: ICMPEchoReply}[proto]
						}
						if a.Dst != dst || int(a.Path) != path || int(a.TTL) != ttl || a.From != from || a.Type != typ ||
							a.Reached() != reached || a.Stops() != reached ||
							a.RTT < 123456*time.Microsecond || a.RTT >= 123456*time.Microsecond+ClockUnit {
							t.Fatalf("%s: answer %+v", where, a)
						}
					}
				}
			}
		}
		// Replies meant for the other protocols' runs.
		for _, other := range []Proto{ProtoUDP, ProtoTCP, ProtoICMP} {
			if other == proto {
				continue
			}
			o := withProto(codecSpec(), other)
			var pkts [][]byte
			if other == ProtoUDP {
				pkts = [][]byte{testMatchReply(o, codecDst, 2, 3, 20, sent), testMatchReply(o, codecDst, 2, 20, 20, sent)}
			} else {
				q, d := testProtoReplies(o, codecDst, 2, 3, sent)
				pkts = append([][]byte{q}, d...)
			}
			for i, pkt := range pkts {
				if m.Match(pkt, recv, &r, &a) {
					t.Errorf("%v run: matched reply %d to a %v probe: %+v", proto, i, other, a)
				}
			}
		}
	}

	// Near misses of TCP and ICMP, built by hand.
	tcp, icmp := withProto(codecSpec(), ProtoTCP), withProto(codecSpec(), ProtoICMP)
	seq := TCPSeq(77, tcp.Tag, 5)
	sport := tcp.BaseSrcPort + 3
	mut := func(s *Spec, f func(*Spec)) *Spec { c := *s; f(&c); return &c }
	echo := func(s *Spec, path, ttl int) []byte {
		p := make([]byte, MaxLen)
		return p[ipv4HeaderLen:s.Encode(p, codecDst, path, ttl, sent)]
	}
	for _, tc := range []struct {
		name string
		spec *Spec
		pkt  []byte
		err  error
	}{
		{"tcp: SYN without ACK", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, seq+1, TCPFlagSYN), ErrTCPFlags},
		{"tcp: ACK only", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, seq+1, TCPFlagACK), ErrTCPFlags},
		{"tcp: FIN-ACK", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, seq+1, TCPFlagFIN|TCPFlagACK), ErrTCPFlags},
		{"tcp: RST without ACK", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, seq+1, TCPFlagRST), ErrTCPFlags},
		{"tcp: 19-byte header", tcp, testIPv4(codecDst, codecSrc, 61, protoTCP,
			testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, seq+1, TCPFlagSYN|TCPFlagACK)[ipv4HeaderLen:ipv4HeaderLen+19]), ErrShort},
		{"tcp: wrong destination port", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort+1, sport, 1, seq+1, TCPFlagSYN|TCPFlagACK), nil},
		{"tcp: source port = base", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, tcp.BaseSrcPort, 1, seq+1, TCPFlagSYN|TCPFlagACK), nil},
		{"tcp: source port past the last path", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, tcp.BaseSrcPort+uint16(tcp.Paths)+1, 1, seq+1, TCPFlagSYN|TCPFlagACK), nil},
		{"tcp: other tag", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, TCPSeq(77, tcp.Tag+1, 5)+1, TCPFlagSYN|TCPFlagACK), nil},
		{"tcp: ack = seq (TTL 1)", tcp, testTCPSegment(codecDst, codecSrc, tcp.DstPort, sport, 1, TCPSeq(77, tcp.Tag, 1), TCPFlagRST|TCPFlagACK), nil},
		{"tcp: to another address", tcp, testTCPSegment(codecDst, netip.MustParseAddr("192.0.2.11"), tcp.DstPort, sport, 1, seq+1, TCPFlagSYN|TCPFlagACK), nil},
		{"tcp: quote of another destination port", tcp, func() []byte {
			q, _ := testProtoReplies(mut(tcp, func(c *Spec) { c.DstPort++ }), codecDst, 3, 5, sent)
			return q
		}(), nil},
		{"tcp: quote of another tag", tcp, func() []byte {
			q, _ := testProtoReplies(mut(tcp, func(c *Spec) { c.Tag++ }), codecDst, 3, 5, sent)
			return q
		}(), nil},
		{"icmp: echo request", icmp, testIPv4(codecDst, codecSrc, 61, protoICMP, echo(icmp, 3, 5)), ErrNotError},
		{"icmp: other identifier", icmp, testEchoReply(codecDst, codecSrc, echo(mut(icmp, func(c *Spec) { c.BaseSrcPort += 100 }), 3, 5)), nil},
		{"icmp: identifier = base", icmp, testEchoReply(codecDst, codecSrc, echo(icmp, 0, 5)), nil},
		{"icmp: other tag", icmp, testEchoReply(codecDst, codecSrc, echo(mut(icmp, func(c *Spec) { c.Tag-- }), 3, 5)), nil},
		{"icmp: to another address", icmp, testEchoReply(codecDst, netip.MustParseAddr("192.0.2.11"), echo(icmp, 3, 5)), nil},
		{"icmp: quote of an echo reply", icmp, func() []byte {
			p := make([]byte, MaxLen)
			p = p[:icmp.Encode(p, codecDst, 3, 5, sent)]
			p[ipv4HeaderLen] = ICMPEchoReply
			fixICMPChecksum(p[ipv4HeaderLen:])
			return testICMPError(rtrAddr, codecSrc, ICMPTimeExceeded, 0, p)
		}(), nil},
		{"icmp: quote of another identifier", icmp, func() []byte {
			q, _ := testProtoReplies(mut(icmp, func(c *Spec) { c.BaseSrcPort = 60000 }), codecDst, 3, 5, sent)
			return q
		}(), nil},
		{"icmp: 7-byte echo reply", icmp, testIPv4(codecDst, codecSrc, 61, protoICMP, echo(icmp, 3, 5)[:7]), ErrShort},
	} {
		var r Reply
		var a Answer
		err := ParseReply(tc.pkt, &r)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: ParseReply = %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if p, ttl, ok := tc.spec.Match(&r); ok {
			t.Errorf("%s: Spec.Match = %d, %d", tc.name, p, ttl)
		}
		if NewMatcher(tc.spec).Match(tc.pkt, recv, &r, &a) {
			t.Errorf("%s: Matcher.Match accepted: %+v", tc.name, a)
		}
	}
}

// TestParseDirectReply checks the fields of direct replies: the TCP
// acknowledgment number minus one (wrapping), swapped ports, flags in the
// code; the echo identifier, sequence and clock, or no clock when the
// reply carries no payload.
func TestParseDirectReply(t *testing.T) {
	var r Reply
	// seq 0xffffffff: the destination acknowledges 0.
	pkt := testTCPSegment(codecDst, codecSrc, 80, 40001, 5, 0, TCPFlagSYN|TCPFlagACK)
	if err := ParseReply(pkt, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Direct || r.Proto != 6 || r.QSeq != 0xffffffff || r.QChecksum != 0xffff || r.QID != 0xffff ||
		r.QSrcPort != 40001 || r.QDstPort != 80 || r.Type != TypeTCP || r.Code != 0x12 || r.From != codecDst ||
		r.QDst != codecDst || r.QSrc != codecSrc || r.ReplyTTL != 61 || !r.Reached() || r.Quote != nil {
		t.Fatalf("reply %+v", r)
	}
	// Link-layer padding and TCP options.
	opts := testTCPSegment(codecDst, codecSrc, 80, 40001, 5, 0x10203041, TCPFlagRST|TCPFlagACK)
	opts = append(opts, 0, 0, 0, 0)
	if err := ParseReply(opts, &r); err != nil || r.QSeq != 0x10203040 || r.Code != 0x14 {
		t.Fatalf("padded RST: %v %+v", err, r)
	}
	echo := []byte{ICMPEchoReply, 0, 0, 0, 0x9c, 0x41, 0x99, 0x44, 0x12, 0x34, 0xab, 0xcd}
	pkt = testIPv4(codecDst, codecSrc, 61, protoICMP, fixICMPChecksum(echo))
	if err := ParseReply(pkt, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Direct || r.Proto != 1 || r.QSrcPort != 0x9c41 || r.QID != 0x9944 || r.QSeq != 0x9c419944 ||
		r.QChecksum != 0x1234 || r.Type != ICMPEchoReply || !r.Reached() || r.Quote != nil {
		t.Fatalf("echo reply %+v", r)
	}
	pkt = testIPv4(codecDst, codecSrc, 61, protoICMP, fixICMPChecksum(echo[:9]))
	if err := ParseReply(pkt, &r); err != nil || r.QChecksum != 0 || r.QID != 0x9944 {
		t.Fatalf("echo reply with one byte of payload: %v %+v", err, r)
	}
}

// A port unreachable means the destination only for UDP probes: for TCP
// and ICMP, a firewall on the way sends one too.
func TestReachedByProtocol(t *testing.T) {
	router := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		proto Proto
		from  netip.Addr
		want  bool
	}{
		{ProtoUDP, router, true},
		{ProtoUDP, codecDst, true},
		{ProtoTCP, router, false},
		{ProtoTCP, codecDst, true},
		{ProtoICMP, router, false},
		{ProtoICMP, codecDst, true},
	} {
		a := Answer{Dst: codecDst, From: tc.from, Type: ICMPUnreachable, Code: CodePortUnreachable, Proto: tc.proto}
		if a.Reached() != tc.want {
			t.Errorf("%v port unreachable from %v: reached %v, want %v", tc.proto, tc.from, a.Reached(), tc.want)
		}
	}
}

// With one destination, a direct reply (echo reply, SYN-ACK, RST) from any
// other address is not an answer.
func TestMatcherDirectReplyFromElsewhere(t *testing.T) {
	s := withProto(codecSpec(), ProtoICMP)
	m := NewMatcher(s)
	m.Dst = codecDst
	_, direct := testProtoReplies(s, codecDst, 3, 8, codecEpoch)
	var r Reply
	var a Answer
	for _, pkt := range direct {
		if !m.Match(pkt, codecEpoch.Add(time.Millisecond), &r, &a) {
			t.Fatal("the destination's echo reply rejected")
		}
		other := append([]byte(nil), pkt...)
		copy(other[12:16], netip.MustParseAddr("198.51.100.200").AsSlice()) // another source
		other[10], other[11] = 0, 0
		c := Checksum(other[:20])
		other[10], other[11] = byte(c>>8), byte(c)
		if m.Match(other, codecEpoch.Add(time.Millisecond), &r, &a) {
			t.Errorf("an echo reply from %v accepted as %+v", r.From, a)
		}
	}
}
