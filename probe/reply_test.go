package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// rtrAddr is the router that answers in these tests.
var rtrAddr = netip.MustParseAddr("203.0.113.5")

// testIPv4 wraps payload in an IPv4 header (IHL 5, valid checksum).
func testIPv4(src, dst netip.Addr, ttl, proto uint8, payload []byte) []byte {
	b := make([]byte, ipv4HeaderLen+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0xbeef)
	b[8], b[9] = ttl, proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], refChecksum(b[:ipv4HeaderLen]))
	copy(b[ipv4HeaderLen:], payload)
	return b
}

// testICMPError builds, by hand, an IPv4 ICMP message of type typ quoting
// quote, without RFC 4884 length attribute (what Linux sends).
func testICMPError(from, to netip.Addr, typ, code uint8, quote []byte) []byte {
	m := make([]byte, 8+len(quote))
	m[0], m[1] = typ, code
	copy(m[8:], quote)
	binary.BigEndian.PutUint16(m[2:], refChecksum(m))
	return testIPv4(from, to, 250, protoICMP, m)
}

// testQuote returns the probe (dst, path, ttl, at) of s as a node quotes it:
// with the TTL it had on arrival and its header checksum updated.
func testQuote(s *Spec, dst netip.Addr, path, ttl int, at time.Time, arrival uint8) []byte {
	q := make([]byte, Len)
	s.Encode(q, dst, path, ttl, at)
	q[8] = arrival
	q[10], q[11] = 0, 0
	binary.BigEndian.PutUint16(q[10:], refChecksum(q[:ipv4HeaderLen]))
	return q
}

// withRouterAlert returns quote q with a 4-byte IP option (RFC 2113 router
// alert) after its header: IHL 6.
func withRouterAlert(q []byte) []byte {
	o := append(append(append([]byte(nil), q[:ipv4HeaderLen]...), 0x94, 0x04, 0, 0), q[ipv4HeaderLen:]...)
	o[0] = 0x46
	binary.BigEndian.PutUint16(o[2:], binary.BigEndian.Uint16(q[2:])+4)
	o[10], o[11] = 0, 0
	binary.BigEndian.PutUint16(o[10:], refChecksum(o[:24]))
	return o
}

// xnetMessage marshals an ICMP message with golang.org/x/net/icmp.
func xnetMessage(t testing.TB, typ ipv4.ICMPType, code int, quote []byte, exts ...icmp.Extension) []byte {
	t.Helper()
	var body icmp.MessageBody
	switch typ {
	case ipv4.ICMPTypeTimeExceeded:
		body = &icmp.TimeExceeded{Data: quote, Extensions: exts}
	case ipv4.ICMPTypeDestinationUnreachable:
		body = &icmp.DstUnreach{Data: quote, Extensions: exts}
	default:
		body = &icmp.Echo{ID: 7, Seq: 9, Data: quote}
	}
	b, err := (&icmp.Message{Type: typ, Code: code, Body: body}).Marshal(nil)
	if err != nil {
		t.Fatalf("icmp.Marshal: %v", err)
	}
	return b
}

// fixICMPChecksum recomputes the checksum of ICMP message m.
func fixICMPChecksum(m []byte) []byte {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], refChecksum(m))
	return m
}

// withLength returns a copy of ICMP message m with its RFC 4884 length
// attribute set to words.
func withLength(m []byte, words int) []byte {
	m = append([]byte(nil), m...)
	m[5] = byte(words)
	return fixICMPChecksum(m)
}

// withExtHeader returns a copy of ICMP message m whose extension structure
// at octet off of the original datagram field has version v and a checksum
// over the whole structure (sum "full"), over its header only (what scapy
// 2.5 sends, "header"), 0 ("zero") or a wrong one ("bad").
func withExtHeader(m []byte, off, v int, sum string) []byte {
	m = append([]byte(nil), m...)
	e := m[8+off:]
	e[0] = byte(v << 4)
	e[2], e[3] = 0, 0
	switch sum {
	case "full":
		binary.BigEndian.PutUint16(e[2:], refChecksum(e))
	case "header":
		binary.BigEndian.PutUint16(e[2:], refChecksum(e[:4]))
	case "bad":
		binary.BigEndian.PutUint16(e[2:], refChecksum(e)^0x0100)
	}
	return fixICMPChecksum(m)
}

// Extensions used by the tests.
var (
	testMPLS = &icmp.MPLSLabelStack{Class: 1, Type: 1, Labels: []icmp.MPLSLabel{
		{Label: 16005, TC: 5, TTL: 1},
		{Label: 1<<20 - 1, TC: 0, S: true, TTL: 255},
	}}
	testIfInfo = &icmp.InterfaceInfo{
		Class: 2, Type: 0x0f, // RFC 5837: incoming interface; ifIndex, IP address, name, MTU
		Interface: &net.Interface{Index: 42, Name: "ge-0/0/1.100", MTU: 1500},
		Addr:      &net.IPAddr{IP: net.IPv4(192, 0, 2, 77).To4()},
	}
	testRawExt = &icmp.RawExtension{Data: []byte{0, 12, 200, 7, 1, 2, 3, 4, 5, 6, 7, 8}}
)

// replyCase is a reply to decode and what x/net/icmp should think of it.
type replyCase struct {
	name string
	pkt  []byte
	// divergent: x/net/icmp drops the extension structure because it
	// cannot decode one of its objects, while ParseReply, which only
	// locates the structure, returns it.
	divergent bool
}

// testReplies are replies to probes of codecSpec(): ICMP messages without
// and with RFC 4884 extensions, compliant and not.
func testReplies(t testing.TB) []replyCase {
	s := codecSpec()
	at := s.Epoch.Add(1500 * time.Millisecond)
	me := s.Src
	q := testQuote(s, codecDst, 3, 5, at, 1)
	qd := testQuote(s, codecDst, 4, 9, at, 2)
	qo := withRouterAlert(q)
	long := append(append([]byte(nil), q...), bytes.Repeat([]byte{0}, 100)...)
	te := ipv4.ICMPTypeTimeExceeded
	un := ipv4.ICMPTypeDestinationUnreachable
	wrap := func(m []byte) []byte { return testIPv4(rtrAddr, me, 250, protoICMP, m) }

	mpls := xnetMessage(t, te, 0, q, testMPLS)
	padded := append(wrap(mpls), 0, 0, 0, 0, 0, 0) // link-layer padding
	badObj := xnetMessage(t, te, 0, q, &icmp.RawExtension{Data: []byte{0, 4, 3, 2}})
	shortExt := func(n int) []byte { // an extension header with no room for an object
		p := append(append([]byte(nil), q...), make([]byte, 128-len(q))...)
		p = append(p, 0x20, 0, 0, 0)
		p = append(p, make([]byte, n-len(p))...)
		return testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, p)
	}
	return []replyCase{
		{name: "time exceeded, 28-byte quote", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, q[:28])},
		{name: "time exceeded, whole probe", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, q)},
		{name: "time exceeded, reassembly", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 1, q)},
		{name: "port unreachable", pkt: testICMPError(codecDst, me, ICMPUnreachable, CodePortUnreachable, qd)},
		{name: "host unreachable", pkt: testICMPError(rtrAddr, me, ICMPUnreachable, 1, q)},
		{name: "x/net net unreachable", pkt: wrap(xnetMessage(t, un, 0, q))},
		{name: "x/net time exceeded, 28-byte quote", pkt: wrap(xnetMessage(t, te, 0, q[:28]))},
		{name: "quote IHL 6", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, qo)},
		{name: "quote IHL 6, 8 bytes of UDP", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, qo[:32])},
		{name: "quote IHL 6, port unreachable", pkt: testICMPError(codecDst, me, ICMPUnreachable, 3, withRouterAlert(qd))},
		{name: "quote 130 bytes, no extensions", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, long)},
		{name: "quote 300 bytes of zeros", pkt: testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, append(q, make([]byte, 270)...))},

		// RFC 4884 compliant, marshaled by x/net/icmp.
		{name: "MPLS", pkt: wrap(mpls)},
		{name: "MPLS, link-layer padding", pkt: padded},
		{name: "MPLS, IHL 6 quote", pkt: wrap(xnetMessage(t, te, 0, qo, testMPLS))},
		{name: "MPLS, 28-byte quote", pkt: wrap(xnetMessage(t, te, 0, q[:28], testMPLS))},
		{name: "interface info, port unreachable", pkt: testIPv4(codecDst, me, 60, protoICMP, xnetMessage(t, un, 3, qd, testIfInfo))},
		{name: "MPLS + interface info + raw, host unreachable", pkt: wrap(xnetMessage(t, un, 1, q, testMPLS, testIfInfo, testRawExt))},
		{name: "raw object", pkt: wrap(xnetMessage(t, te, 0, q, testRawExt))},
		{name: "MPLS after a 132-byte quote (length 33)", pkt: wrap(xnetMessage(t, te, 0, long, testMPLS))},

		// Crafted: non-compliant and broken layouts.
		{name: "length 0, extensions at 128", pkt: wrap(withLength(mpls, 0))},
		{name: "length 1 word, extensions at 128", pkt: wrap(withLength(mpls, 1))},
		{name: "length 7 words, extensions at 128", pkt: wrap(withLength(mpls, 7))},
		{name: "length 31 words, extensions at 128", pkt: wrap(withLength(mpls, 31))},
		{name: "length 34 words, extensions at 128", pkt: wrap(withLength(mpls, 34))},
		{name: "length past the end", pkt: wrap(withLength(mpls, 255))},
		{name: "length 33 words, extensions at 128", pkt: wrap(withLength(xnetMessage(t, te, 0, q, testMPLS, testRawExt), 33))},
		{name: "extension version 1", pkt: wrap(withExtHeader(mpls, 128, 1, "full"))},
		{name: "extension version 1, length 0", pkt: wrap(withLength(withExtHeader(mpls, 128, 1, "full"), 0))},
		{name: "extension checksum wrong", pkt: wrap(withExtHeader(mpls, 128, 2, "bad"))},
		{name: "extension checksum wrong, length 0", pkt: wrap(withLength(withExtHeader(mpls, 128, 2, "bad"), 0))},
		{name: "extension checksum over header only (scapy 2.5)", pkt: wrap(withExtHeader(mpls, 128, 2, "header"))},
		{name: "extension checksum 0", pkt: wrap(withExtHeader(mpls, 128, 2, "zero"))},
		{name: "extension checksum 0, length 0", pkt: wrap(withLength(withExtHeader(mpls, 128, 2, "zero"), 0))},
		{name: "extension header, 132 bytes", pkt: shortExt(132)},
		{name: "extension header, 135 bytes", pkt: shortExt(135)},
		{name: "extension header, 136 bytes", pkt: shortExt(136)},
		{name: "extension objects malformed for x/net", pkt: wrap(badObj), divergent: true},
	}
}

// xnetView decodes pkt with x/net: its IP header, the ICMP message (as
// ParseReply sees it: cut to the IP total length), the original datagram
// and the extensions.
func xnetView(t testing.TB, pkt []byte) (h *ipv4.Header, msg []byte, m *icmp.Message, data []byte, exts []icmp.Extension) {
	t.Helper()
	h, err := ipv4.ParseHeader(pkt)
	if err != nil {
		t.Fatalf("ipv4.ParseHeader: %v", err)
	}
	msg = pkt[h.Len:]
	if h.TotalLen >= h.Len+8 && h.TotalLen < len(pkt) {
		msg = pkt[h.Len:h.TotalLen]
	}
	m, err = icmp.ParseMessage(1, msg)
	if err != nil {
		t.Fatalf("icmp.ParseMessage: %v", err)
	}
	switch b := m.Body.(type) {
	case *icmp.TimeExceeded:
		data, exts = b.Data, b.Extensions
	case *icmp.DstUnreach:
		data, exts = b.Data, b.Extensions
	default:
		t.Fatalf("x/net body %T", m.Body)
	}
	return h, msg, m, data, exts
}

// extObject is one object of an ICMP extension structure (RFC 4884).
type extObject struct {
	class, ctype uint8
	raw          []byte // the whole object, header included
}

// walkExtensions splits an extension structure into its objects.
func walkExtensions(b []byte) []extObject {
	var objs []extObject
	for b = b[4:]; len(b) >= 4; {
		n := int(binary.BigEndian.Uint16(b))
		if n < 4 || n > len(b) {
			break
		}
		objs = append(objs, extObject{b[2], b[3], b[:n]})
		b = b[n:]
	}
	return objs
}

// compareWithXNet checks that ParseReply and x/net/icmp agree on pkt.
func compareWithXNet(t *testing.T, c replyCase) {
	t.Helper()
	var r Reply
	if err := ParseReply(c.pkt, &r); err != nil {
		t.Fatalf("%s: ParseReply: %v", c.name, err)
	}
	h, msg, m, data, exts := xnetView(t, c.pkt)
	from, _ := netip.AddrFromSlice(h.Src.To4())
	to, _ := netip.AddrFromSlice(h.Dst.To4())
	if r.From != from || r.Dst != to || int(r.ReplyTTL) != h.TTL {
		t.Errorf("%s: from %v to %v TTL %d; x/net: %v %v %d", c.name, r.From, r.Dst, r.ReplyTTL, from, to, h.TTL)
	}
	if typ := m.Type.(ipv4.ICMPType); int(r.Type) != int(typ) || int(r.Code) != m.Code {
		t.Errorf("%s: type %d code %d; x/net: %v %d", c.name, r.Type, r.Code, typ, m.Code)
	}
	if r.Length != 4*int(msg[5]) {
		t.Errorf("%s: length attribute %d, want %d", c.name, r.Length, 4*int(msg[5]))
	}

	// The quoted datagram, through x/net's ipv4 parser.
	qh, err := ipv4.ParseHeader(data)
	if err != nil {
		t.Fatalf("%s: quoted header: %v", c.name, err)
	}
	qsrc, _ := netip.AddrFromSlice(qh.Src.To4())
	qdst, _ := netip.AddrFromSlice(qh.Dst.To4())
	u := data[qh.Len:]
	if int(r.QTOS) != qh.TOS || int(r.QTotalLen) != qh.TotalLen || int(r.QID) != qh.ID ||
		int(r.QTTL) != qh.TTL || r.QSrc != qsrc || r.QDst != qdst ||
		r.QSrcPort != binary.BigEndian.Uint16(u[0:]) || r.QDstPort != binary.BigEndian.Uint16(u[2:]) ||
		r.QUDPLen != binary.BigEndian.Uint16(u[4:]) || r.QChecksum != binary.BigEndian.Uint16(u[6:]) {
		t.Errorf("%s: quoted fields %+v; x/net header %+v, UDP % x", c.name, r, qh, u[:8])
	}

	// The quote/extension boundary.
	rest := msg[8:]
	if c.divergent {
		if len(exts) != 0 || !bytes.Equal(data, rest) {
			t.Fatalf("%s: x/net found %d extensions and a %d-byte quote; the case expects none", c.name, len(exts), len(data))
		}
		if len(r.Extensions) == 0 || len(r.Quote) != 128 {
			t.Errorf("%s: ParseReply: %d-byte quote, %d bytes of extensions", c.name, len(r.Quote), len(r.Extensions))
		}
		return
	}
	if !bytes.Equal(r.Quote, data) {
		t.Errorf("%s: quote is %d bytes, x/net's %d", c.name, len(r.Quote), len(data))
	}
	if len(data) == len(rest) {
		if r.Extensions != nil {
			t.Errorf("%s: %d bytes of extensions, x/net found none", c.name, len(r.Extensions))
		}
		return
	}
	if !bytes.Equal(r.Extensions, rest[len(data):]) {
		t.Fatalf("%s: extensions % x, want % x", c.name, r.Extensions, rest[len(data):])
	}
	objs := walkExtensions(r.Extensions)
	if len(objs) != len(exts) {
		t.Fatalf("%s: %d extension objects, x/net %d", c.name, len(objs), len(exts))
	}
	for i, e := range exts {
		o := objs[i]
		switch e := e.(type) {
		case *icmp.MPLSLabelStack:
			if o.class != 1 || int(o.ctype) != e.Type || len(o.raw)-4 != 4*len(e.Labels) {
				t.Errorf("%s: object %d: class %d type %d len %d; x/net %+v", c.name, i, o.class, o.ctype, len(o.raw), e)
				continue
			}
			for j, l := range e.Labels {
				b := o.raw[4+4*j:]
				got := icmp.MPLSLabel{
					Label: int(b[0])<<12 | int(b[1])<<4 | int(b[2])>>4,
					TC:    int(b[2]>>1) & 7, S: b[2]&1 == 1, TTL: int(b[3]),
				}
				if got != l {
					t.Errorf("%s: label %d: %+v, x/net %+v", c.name, j, got, l)
				}
			}
		case *icmp.InterfaceInfo:
			if o.class != 2 || int(o.ctype) != e.Type {
				t.Errorf("%s: object %d: class %d type %d; x/net %+v", c.name, i, o.class, o.ctype, e)
			}
			if o.ctype&0x08 != 0 && int(binary.BigEndian.Uint32(o.raw[4:])) != e.Interface.Index {
				t.Errorf("%s: ifIndex % x, x/net %d", c.name, o.raw[4:8], e.Interface.Index)
			}
		case *icmp.RawExtension:
			if !bytes.Equal(o.raw, e.Data) {
				t.Errorf("%s: object %d: % x, x/net % x", c.name, i, o.raw, e.Data)
			}
		default:
			t.Errorf("%s: object %d: x/net %T", c.name, i, e)
		}
	}
}

func TestParseReplyAgreesWithXNet(t *testing.T) {
	withExt := 0
	for _, c := range testReplies(t) {
		compareWithXNet(t, c)
		var r Reply
		if ParseReply(c.pkt, &r) == nil && r.Extensions != nil {
			withExt++
		}
	}
	if withExt < 10 {
		t.Fatalf("only %d cases carry extensions", withExt)
	}
}

func TestParseReplyCases(t *testing.T) {
	s := codecSpec()
	cs := testReplies(t)
	get := func(name string) []byte {
		for _, c := range cs {
			if c.name == name {
				return c.pkt
			}
		}
		t.Fatalf("no case %q", name)
		return nil
	}
	var r Reply
	for _, tc := range []struct {
		name       string
		quote, ext int // lengths of Quote and Extensions
		length     int
		path, ttl  int
		reached    bool
		quotedTTL  uint8
		typ, code  uint8
		from       netip.Addr
		quotedIHL6 bool
	}{
		{name: "time exceeded, 28-byte quote", quote: 28, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "port unreachable", quote: 30, path: 4, ttl: 9, quotedTTL: 2, typ: 3, code: 3, from: codecDst, reached: true},
		{name: "host unreachable", quote: 30, path: 3, ttl: 5, quotedTTL: 1, typ: 3, code: 1, from: rtrAddr},
		{name: "quote IHL 6, 8 bytes of UDP", quote: 32, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr, quotedIHL6: true},
		{name: "MPLS", quote: 128, ext: 4 + 4 + 8, length: 128, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "MPLS, link-layer padding", quote: 128, ext: 16, length: 128, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "MPLS after a 132-byte quote (length 33)", quote: 132, ext: 16, length: 132, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "length 0, extensions at 128", quote: 128, ext: 16, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "length 1 word, extensions at 128", quote: 128, ext: 16, length: 4, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "extension checksum wrong", quote: 144, length: 128, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
		{name: "quote 300 bytes of zeros", quote: 300, path: 3, ttl: 5, quotedTTL: 1, typ: 11, from: rtrAddr},
	} {
		if err := ParseReply(get(tc.name), &r); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p, ttl, ok := s.Match(&r)
		if len(r.Quote) != tc.quote || len(r.Extensions) != tc.ext || r.Length != tc.length ||
			!ok || p != tc.path || ttl != tc.ttl || r.QTTL != tc.quotedTTL || r.Type != tc.typ || r.Code != tc.code ||
			r.From != tc.from || r.Dst != s.Src || r.Reached() != tc.reached || r.QDst != codecDst ||
			r.QUDPLen != udpHeaderLen+payloadLen || r.QDstPort != s.DstPort ||
			(r.Quote[0] == 0x46) != tc.quotedIHL6 {
			t.Errorf("%s: quote %d ext %d length %d match %d/%d/%v TTL %d type %d/%d from %v reached %v, reply %+v",
				tc.name, len(r.Quote), len(r.Extensions), r.Length, p, ttl, ok, r.QTTL, r.Type, r.Code, r.From, r.Reached(), r)
		}
	}
}

// TestParseReplyXNetRandom compares ParseReply's quote/extension boundary
// with x/net/icmp's on random layouts: extension structures (MPLS and
// unknown-class objects, which x/net always decodes) placed at or off the
// length attribute, with right, zero and wrong checksums and versions,
// behind quotes of every length, sometimes cut short by a snap length.
func TestParseReplyXNetRandom(t *testing.T) {
	s := codecSpec()
	rng := rand.New(rand.NewPCG(1, 2))
	stats := map[string]int{}
	for i := range 20000 {
		q := testQuote(s, codecDst, 1+rng.IntN(s.Paths), 1+rng.IntN(MaxTTL), s.Epoch.Add(time.Duration(rng.Int64N(int64(time.Hour)))), 1)
		if rng.IntN(4) == 0 {
			q = withRouterAlert(q)
		}
		need := len(q) - payloadLen // the quoted IP and UDP headers
		n := need + rng.IntN(3)
		if rng.IntN(2) == 0 {
			n = max(need, 28+rng.IntN(300))
		}
		body := make([]byte, n)
		copy(body, q)
		if rng.IntN(3) == 0 {
			for j := len(q); j < n; j++ {
				body[j] = byte(rng.Uint32())
			}
		}
		words := 0
		if rng.IntN(10) < 7 {
			off := 128
			switch rng.IntN(4) {
			case 0:
				off = max(128, (n+3)&^3)
			case 1:
				off = 96 + 4*rng.IntN(24)
			}
			ext := []byte{2 << 4, 0, 0, 0}
			for k := rng.IntN(4); k > 0; k-- {
				obj := []byte{0, 0, 1, 1}
				if rng.IntN(3) == 0 {
					obj[2], obj[3] = byte(4+rng.IntN(250)), byte(rng.Uint32())
				}
				for l := rng.IntN(5); l > 0; l-- {
					obj = binary.BigEndian.AppendUint32(obj, rng.Uint32())
				}
				binary.BigEndian.PutUint16(obj, uint16(len(obj)))
				ext = append(ext, obj...)
			}
			switch rng.IntN(10) {
			case 0:
				ext[0] = byte(rng.IntN(16)) << 4
				binary.BigEndian.PutUint16(ext[2:], refChecksum(ext))
			case 1: // zero checksum
			case 2:
				binary.BigEndian.PutUint16(ext[2:], refChecksum(ext)^uint16(1+rng.IntN(0xfffe)))
			default:
				binary.BigEndian.PutUint16(ext[2:], refChecksum(ext))
			}
			if off > len(body) {
				body = append(body, make([]byte, off-len(body))...)
			}
			body = append(body[:off], ext...)
			switch rng.IntN(4) {
			case 0:
				words = rng.IntN(256)
			case 1:
				words = 0
			default:
				words = off / 4
			}
		}
		m := make([]byte, 8+len(body))
		m[0], m[5] = ICMPTimeExceeded, byte(words)
		if rng.IntN(2) == 0 {
			m[0], m[1] = ICMPUnreachable, byte(rng.IntN(16))
		}
		copy(m[8:], body)
		pkt := testIPv4(rtrAddr, s.Src, 250, protoICMP, fixICMPChecksum(m))
		if rng.IntN(10) == 0 {
			cut := ipv4HeaderLen + 8 + need
			pkt = pkt[:cut+rng.IntN(len(pkt)-cut+1)]
		}
		c := replyCase{name: fmt.Sprintf("random %d", i), pkt: pkt}
		compareWithXNet(t, c)
		if t.Failed() {
			t.Fatalf("packet % x", pkt)
		}
		var r Reply
		if err := ParseReply(pkt, &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Extensions == nil:
			stats["none"]++
		case len(r.Quote) == r.Length:
			stats["at length"]++
		default:
			stats["at 128, length "+map[bool]string{true: "0", false: "not 0"}[r.Length == 0]]++
		}
	}
	t.Logf("extension boundaries: %v", stats)
	for _, k := range []string{"none", "at length", "at 128, length 0", "at 128, length not 0"} {
		if stats[k] < 100 {
			t.Errorf("only %d cases with extensions %s", stats[k], k)
		}
	}
}

// offsetIn returns the offset of sub in b, or -1 if sub does not alias b.
func offsetIn(sub, b []byte) int {
	if len(sub) == 0 {
		return -1
	}
	for i := range b {
		if &b[i] == &sub[0] {
			if i+len(sub) > len(b) {
				return -1
			}
			return i
		}
	}
	return -1
}

// checkReplySlices checks that a parsed reply's slices lie within b and
// where: the quote right after the ICMP header, the extensions right after
// the quote, together up to the end of the ICMP message.
func checkReplySlices(t *testing.T, b []byte, r *Reply) {
	t.Helper()
	ihl := int(b[0]&0x0f) * 4
	end := len(b)
	if tl := int(binary.BigEndian.Uint16(b[2:])); tl >= ihl+8 && tl < len(b) {
		end = tl
	}
	qo := offsetIn(r.Quote, b)
	if qo != ihl+8 {
		t.Fatalf("quote at offset %d of the input, want %d", qo, ihl+8)
	}
	if len(r.Quote) < ipv4HeaderLen || len(r.Quote) < int(r.Quote[0]&0x0f)*4+udpHeaderLen {
		t.Fatalf("quote of %d bytes is shorter than the header it was decoded from", len(r.Quote))
	}
	if r.Extensions == nil {
		if qo+len(r.Quote) != end {
			t.Fatalf("quote ends at %d without extensions; message ends at %d", qo+len(r.Quote), end)
		}
		return
	}
	eo := offsetIn(r.Extensions, b)
	if eo != qo+len(r.Quote) || eo+len(r.Extensions) != end {
		t.Fatalf("extensions at %d..%d, quote at %d..%d, message ends at %d", eo, eo+len(r.Extensions), qo, qo+len(r.Quote), end)
	}
	if len(r.Extensions) < 8 || r.Extensions[0]>>4 != 2 || len(r.Quote) < 128 {
		t.Fatalf("extensions % x after a %d-byte quote", r.Extensions, len(r.Quote))
	}
}

func TestParseReplyTruncated(t *testing.T) {
	cs := testReplies(t)
	for _, c := range cs {
		var full Reply
		if err := ParseReply(c.pkt, &full); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// The shortest prefix holding the quoted UDP header.
		need := ipv4HeaderLen + 8 + int(full.Quote[0]&0x0f)*4 + udpHeaderLen
		for n := 0; n <= len(c.pkt); n++ {
			b := append([]byte(nil), c.pkt[:n]...) // exact capacity: overruns panic
			var r Reply
			err := ParseReply(b, &r)
			if n < need {
				if err == nil {
					t.Fatalf("%s: %d of %d bytes parsed without error", c.name, n, len(c.pkt))
				}
				if !errors.Is(err, ErrShort) && !errors.Is(err, ErrNoQuote) {
					t.Fatalf("%s: %d bytes: %v", c.name, n, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %d of %d bytes: %v", c.name, n, len(c.pkt), err)
			}
			checkReplySlices(t, b, &r)
			if r.QID != full.QID || r.QSrcPort != full.QSrcPort || r.QChecksum != full.QChecksum ||
				r.QDst != full.QDst || r.From != full.From || r.Type != full.Type {
				t.Fatalf("%s: %d bytes: %+v, full reply %+v", c.name, n, r, full)
			}
		}
	}
}

func TestParseReplyRejects(t *testing.T) {
	s := codecSpec()
	q := testQuote(s, codecDst, 1, 1, s.Epoch, 1)
	me := s.Src
	mod := func(b []byte, f func([]byte)) []byte { b = append([]byte(nil), b...); f(b); return b }
	requote := func(f func([]byte)) []byte {
		return testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, mod(q, f))
	}
	good := testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, q)

	// An IPv6 packet carrying an ICMPv6 time exceeded that quotes a probe.
	v6 := make([]byte, 40+8+len(q))
	v6[0] = 0x60
	binary.BigEndian.PutUint16(v6[4:], uint16(8+len(q)))
	v6[6], v6[7] = 58, 64
	copy(v6[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(v6[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	v6[40] = 3
	copy(v6[48:], q)

	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"19 bytes", good[:19], ErrShort},
		{"IPv6", v6, ErrNotIPv4},
		{"version 0", mod(good, func(b []byte) { b[0] = 0x05 }), ErrNotIPv4},
		{"IHL 4", mod(good, func(b []byte) { b[0] = 0x44 }), ErrShort},
		{"IHL 15, short", mod(good[:56], func(b []byte) { b[0] = 0x4f }), ErrShort},
		{"UDP", testIPv4(rtrAddr, me, 64, 17, q), ErrNotICMP},
		{"GRE", testIPv4(rtrAddr, me, 64, 47, q), ErrNotICMP},
		// A UDP probe read as a TCP header: flags 0x00 (byte 13).
		{"TCP without ACK", testIPv4(rtrAddr, me, 64, 6, q), ErrTCPFlags},
		{"TCP, 19 bytes", testIPv4(rtrAddr, me, 64, 6, q[:19]), ErrShort},
		{"echo request", testIPv4(rtrAddr, me, 64, 1, xnetMessage(t, ipv4.ICMPTypeEcho, 0, q)), ErrNotError},
		{"redirect", testICMPError(rtrAddr, me, 5, 1, q), ErrNotError},
		{"parameter problem", testICMPError(rtrAddr, me, 12, 0, q), ErrNotError},
		{"source quench", testICMPError(rtrAddr, me, 4, 0, q), ErrNotError},
		{"no quote", testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, nil), ErrNoQuote},
		{"19-byte quote", testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, q[:19]), ErrNoQuote},
		{"27-byte quote", testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, q[:27]), ErrNoQuote},
		{"IHL 6 quote, 31 bytes", testICMPError(rtrAddr, me, ICMPTimeExceeded, 0, withRouterAlert(q)[:31]), ErrNoQuote},
		{"quoted IPv6", requote(func(b []byte) { b[0] = 0x65 }), ErrNoQuote},
		{"quoted IHL 4", requote(func(b []byte) { b[0] = 0x44 }), ErrNoQuote},
		{"quoted IHL 15", requote(func(b []byte) { b[0] = 0x4f }), ErrNoQuote},
		{"quoted GRE", requote(func(b []byte) { b[9] = 47 }), ErrNotUDPQuote},
		{"quoted IPv6 in IPv4", requote(func(b []byte) { b[9] = 41 }), ErrNotUDPQuote},
	} {
		var r Reply
		if err := ParseReply(tc.pkt, &r); !errors.Is(err, tc.want) {
			t.Errorf("%s: ParseReply = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// testMatchReply is the reply to probe (dst, path, ttl) of s sent at at: a
// port unreachable from dst at the last TTL, else a time exceeded.
func testMatchReply(s *Spec, dst netip.Addr, path, ttl, last int, at time.Time) []byte {
	if ttl >= last {
		return testICMPError(dst, s.Src, ICMPUnreachable, CodePortUnreachable, testQuote(s, dst, path, ttl, at, uint8(ttl-last+1)))
	}
	return testICMPError(rtrAddr, s.Src, ICMPTimeExceeded, CodeTTLExceeded, testQuote(s, dst, path, ttl, at, 1)[:28])
}

func TestMatch(t *testing.T) {
	s := codecSpec()
	other := netip.MustParseAddr("198.51.100.99")
	dsts := []netip.Addr{other, codecDst, other, netip.MustParseAddr("10.0.0.1")}
	m := NewMatcher(s)
	sent := s.Epoch.Add(ClockWrap - 40*time.Millisecond)
	recv := sent.Add(123456 * time.Microsecond)
	var r Reply
	var a Answer
	for _, dst := range dsts {
		for path := 1; path <= s.Paths; path++ {
			for ttl := 1; ttl <= MaxTTL; ttl++ {
				pkt := testMatchReply(s, dst, path, ttl, 20, sent)
				if err := ParseReply(pkt, &r); err != nil {
					t.Fatal(err)
				}
				p, hop, ok := s.Match(&r)
				if !ok || p != path || hop != ttl {
					t.Fatalf("Spec.Match(dst %v path %d ttl %d) = %d, %d, %v", dst, path, ttl, p, hop, ok)
				}
				if !m.Match(pkt, recv, &r, &a) {
					t.Fatalf("Matcher.Match(dst %v path %d ttl %d) rejected", dst, path, ttl)
				}
				want := Answer{Dst: dst, Path: uint16(path), TTL: uint8(ttl), Type: ICMPTimeExceeded,
					From: rtrAddr, RTT: a.RTT, Received: recv,
					ReplyTTL: r.ReplyTTL, QTTL: r.QTTL, QTOS: r.QTOS, Size: uint16(len(pkt))}
				if ttl >= 20 {
					want.Type, want.Code, want.From = ICMPUnreachable, CodePortUnreachable, dst
				}
				if a != want || a.RTT < 123456*time.Microsecond || a.RTT >= 123456*time.Microsecond+ClockUnit {
					t.Fatalf("answer %+v, want %+v", a, want)
				}
				if a.Reached() != (ttl >= 20) || a.Stops() != (ttl >= 20) {
					t.Fatalf("ttl %d: reached %v stops %v", ttl, a.Reached(), a.Stops())
				}
			}
		}
	}

	// Replies to probes this run did not send.
	mut := func(f func(*Spec)) *Spec { c := *s; f(&c); return &c }
	for _, tc := range []struct {
		name       string
		spec       *Spec
		dst        netip.Addr
		path       int
		specAccept bool // Spec.Match (and so the Matcher) accepts it: only the scheduler knows the destinations
	}{
		{"other tag", mut(func(c *Spec) { c.Tag = s.Tag + 1 }), codecDst, 1, false},
		{"other tag, high bit", mut(func(c *Spec) { c.Tag = s.Tag ^ 0x200 }), codecDst, 1, false},
		{"other source", mut(func(c *Spec) { c.Src = netip.MustParseAddr("192.0.2.11") }), codecDst, 1, false},
		{"source port = base", s, codecDst, 0, false},
		{"source port below base", mut(func(c *Spec) { c.BaseSrcPort = s.BaseSrcPort - 5 }), codecDst, 1, false},
		{"source port past the last path", s, codecDst, s.Paths + 1, false},
		{"source port far above", mut(func(c *Spec) { c.BaseSrcPort = 60000 }), codecDst, 1, false},
		{"other destination port", mut(func(c *Spec) { c.DstPort = s.DstPort + 1 }), codecDst, 1, false},
		{"unknown destination", s, netip.MustParseAddr("198.51.100.8"), 1, true},
	} {
		for _, ttl := range []int{1, 7, 20, MaxTTL} {
			pkt := testMatchReply(tc.spec, tc.dst, tc.path, ttl, 20, sent)
			// The router answers our source address whatever it quotes.
			copy(pkt[16:20], codecSrc.AsSlice())
			if err := ParseReply(pkt, &r); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := s.Match(&r); ok != tc.specAccept {
				t.Errorf("%s, ttl %d: Spec.Match = %v", tc.name, ttl, ok)
			}
			if m.Match(pkt, recv, &r, &a) != tc.specAccept {
				t.Errorf("%s, ttl %d: Matcher.Match = %v: %+v", tc.name, ttl, !tc.specAccept, a)
			}
		}
	}
	for _, c := range []replyCase{
		{name: "garbage", pkt: []byte("not a packet at all, not a packet at all, not a packet at all")},
		{name: "echo reply", pkt: testIPv4(codecDst, s.Src, 64, 1, xnetMessage(t, ipv4.ICMPTypeEchoReply, 0, nil))},
	} {
		if m.Match(c.pkt, recv, &r, &a) {
			t.Errorf("%s: Matcher.Match accepted", c.name)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	s := codecSpec()
	var mpls []byte
	for _, c := range testReplies(t) {
		if c.name == "MPLS + interface info + raw, host unreachable" {
			mpls = c.pkt
		}
	}
	plain := testMatchReply(s, codecDst, 2, 3, 20, s.Epoch)
	m := NewMatcher(s)
	recv := s.Epoch.Add(time.Second)
	tcp, icmp := withProto(s, ProtoTCP), withProto(s, ProtoICMP)
	mt, mi := NewMatcher(tcp), NewMatcher(icmp)
	tcpQuote, tcpDirect := testProtoReplies(tcp, codecDst, 2, 3, s.Epoch)
	icmpQuote, icmpDirect := testProtoReplies(icmp, codecDst, 2, 3, s.Epoch)
	var r Reply
	var a Answer
	for name, f := range map[string]func(){
		"ParseReply":                 func() { _ = ParseReply(plain, &r) },
		"ParseReply with extensions": func() { _ = ParseReply(mpls, &r) },
		"ParseReply, SYN-ACK":        func() { _ = ParseReply(tcpDirect[0], &r) },
		"ParseReply, echo reply":     func() { _ = ParseReply(icmpDirect[0], &r) },
		"Matcher.Match":              func() { m.Match(plain, recv, &r, &a) },
		"Matcher.Match, extensions":  func() { m.Match(mpls, recv, &r, &a) },
		"Matcher.Match, rejected":    func() { m.Match(plain[:30], recv, &r, &a) },
		"Matcher.Match, TCP quote":   func() { mt.Match(tcpQuote, recv, &r, &a) },
		"Matcher.Match, SYN-ACK":     func() { mt.Match(tcpDirect[0], recv, &r, &a) },
		"Matcher.Match, RST":         func() { mt.Match(tcpDirect[1], recv, &r, &a) },
		"Matcher.Match, ICMP quote":  func() { mi.Match(icmpQuote, recv, &r, &a) },
		"Matcher.Match, echo reply":  func() { mi.Match(icmpDirect[0], recv, &r, &a) },
		"Matcher.Match, TCP for UDP": func() { m.Match(tcpDirect[0], recv, &r, &a) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
	if !m.Match(mpls, recv, &r, &a) || r.Extensions == nil {
		t.Fatal("the extension case does not match")
	}
	// The zero allocations above include decoding the labels and the
	// interface into the Answer.
	if a.Ext.NLabels != 2 || a.Ext.Labels[0].Label != 16005 || a.Ext.NIfs != 1 || string(a.Ext.Ifs[0].NameBytes()) != "ge-0/0/1.100" {
		t.Errorf("extensions of the answer: %+v", a.Ext)
	}
	if !mt.Match(tcpDirect[0], recv, &r, &a) || !a.Reached() || !mi.Match(icmpDirect[0], recv, &r, &a) || !a.Reached() ||
		!mt.Match(tcpQuote, recv, &r, &a) || !mi.Match(icmpQuote, recv, &r, &a) {
		t.Fatal("the TCP and ICMP cases do not match")
	}
}

var (
	sinkReply Reply
	sinkDur   time.Duration
)

func BenchmarkParseReply(b *testing.B) {
	s := codecSpec()
	var ext []byte
	for _, c := range testReplies(b) {
		if c.name == "MPLS" {
			ext = c.pkt
		}
	}
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"quote28", testMatchReply(s, codecDst, 2, 3, 20, s.Epoch)},
		{"rfc4884", ext},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.pkt)))
			for i := 0; i < b.N; i++ {
				if err := ParseReply(bc.pkt, &sinkReply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatch decodes, matches and times replies from 4096 destinations
// (the receive path of a bulk run) on one goroutine.
func BenchmarkMatch(b *testing.B) {
	s := codecSpec()
	s.Paths = 16
	dsts := make([]netip.Addr, 4096)
	for i := range dsts {
		dsts[i] = netip.AddrFrom4([4]byte{10, 21, byte(i >> 8), byte(i)})
	}
	m := NewMatcher(s)
	rng := rand.New(rand.NewPCG(3, 4))
	pkts := make([][]byte, 1024)
	for i := range pkts {
		pkts[i] = testMatchReply(s, dsts[rng.IntN(len(dsts))], 1+rng.IntN(s.Paths), 1+rng.IntN(12), 8, s.Epoch.Add(time.Duration(i)*time.Millisecond))
	}
	recv := s.Epoch.Add(2 * time.Second)
	var r Reply
	var a Answer
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !m.Match(pkts[i&(len(pkts)-1)], recv, &r, &a) {
			b.Fatal("no match")
		}
		sinkDur += a.RTT
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
}

// FuzzParseReply checks that ParseReply never panics and that what it
// returns lies where it should within the input.
func FuzzParseReply(f *testing.F) {
	for _, c := range testReplies(f) {
		f.Add(c.pkt)
	}
	f.Add([]byte{})
	f.Add([]byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 0, 0, 0, 0, 0, 0, 0})
	tcp, icmp := withProto(codecSpec(), ProtoTCP), withProto(codecSpec(), ProtoICMP)
	for _, s := range []*Spec{tcp, icmp} {
		q, d := testProtoReplies(s, codecDst, 2, 3, s.Epoch)
		f.Add(q)
		for _, p := range d {
			f.Add(p)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Reply
		if err := ParseReply(b, &r); err != nil {
			return
		}
		if r.From != netip.AddrFrom4([4]byte(b[12:16])) {
			t.Fatalf("reply %+v", r)
		}
		if r.Direct {
			if r.Quote != nil || r.Extensions != nil || r.QSrc != r.Dst || r.QDst != r.From ||
				!(r.Proto == protoTCP && r.Type == TypeTCP && b[9] == protoTCP ||
					r.Proto == protoICMP && r.Type == ICMPEchoReply && b[9] == protoICMP) {
				t.Fatalf("direct reply %+v", r)
			}
			return
		}
		checkReplySlices(t, b, &r)
		if r.Type != ICMPTimeExceeded && r.Type != ICMPUnreachable || r.Proto != r.Quote[9] {
			t.Fatalf("reply %+v", r)
		}
	})
}
