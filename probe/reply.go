package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// ICMP types and codes (RFC 792) that a trace cares about.
const (
	ICMPEchoReply       = 0
	ICMPUnreachable     = 3
	ICMPTimeExceeded    = 11
	CodePortUnreachable = 3
	CodeTTLExceeded     = 0
	protoICMP           = 1
)

// Errors returned by ParseReply. They are sentinels, so that decoding a
// reply that is not ours costs no allocation.
var (
	ErrShort       = errors.New("probe: packet too short")
	ErrNotIPv4     = errors.New("probe: not an IPv4 packet")
	ErrNotICMP     = errors.New("probe: not ICMP")
	ErrNotError    = errors.New("probe: ICMP message is not time-exceeded or unreachable")
	ErrNoQuote     = errors.New("probe: quoted packet too short")
	ErrNotUDPQuote = errors.New("probe: quoted packet is not UDP")
)

// Reply is an ICMP error decoded in place. Slices alias the decoded packet.
type Reply struct {
	From     netip.Addr // who sent the ICMP message
	Dst      netip.Addr // outer destination (our source address)
	ReplyTTL uint8      // TTL of the ICMP message on arrival
	Type     uint8      // ICMP type
	Code     uint8      // ICMP code
	// Length is the RFC 4884 "length of the original datagram" in bytes
	// (0 when the sender does not use RFC 4884).
	Length int

	// The quoted (original) datagram.
	QTOS      uint8
	QTotalLen uint16
	QID       uint16
	QTTL      uint8 // TTL of the probe when it reached the replying node
	QSrc      netip.Addr
	QDst      netip.Addr
	QSrcPort  uint16
	QDstPort  uint16
	QUDPLen   uint16
	QChecksum uint16

	// Quote is the quoted datagram as received (with its RFC 4884 padding);
	// Extensions is the RFC 4884 extension structure that follows it, from
	// its header on, when a valid one sits where the length attribute says
	// or, for non-compliant senders, after 128 octets of quote; else nil.
	Quote      []byte
	Extensions []byte
}

// ParseReply decodes b, an IPv4 packet starting at its IP header, into r.
// It accepts ICMP time-exceeded and destination-unreachable messages that
// quote at least an IPv4 header and 8 bytes of UDP, and does not allocate.
func ParseReply(b []byte, r *Reply) error {
	if len(b) < IPv4HeaderLen {
		return ErrShort
	}
	if b[0]>>4 != 4 {
		return ErrNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < IPv4HeaderLen || len(b) < ihl+8 {
		return ErrShort
	}
	if b[9] != protoICMP {
		return ErrNotICMP
	}
	// Trust the IP total length over the frame length (link layers pad).
	if tl := int(binary.BigEndian.Uint16(b[2:])); tl >= ihl+8 && tl < len(b) {
		b = b[:tl]
	}
	r.From = netip.AddrFrom4([4]byte(b[12:16]))
	r.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	r.ReplyTTL = b[8]
	icmp := b[ihl:]
	r.Type, r.Code = icmp[0], icmp[1]
	if r.Type != ICMPTimeExceeded && r.Type != ICMPUnreachable {
		return ErrNotError
	}
	// RFC 4884 section 3: the length attribute, in 32-bit words, sits in
	// the sixth octet of time-exceeded and unreachable messages.
	r.Length = int(icmp[5]) * 4
	q := icmp[8:]
	if len(q) < IPv4HeaderLen || q[0]>>4 != 4 {
		return ErrNoQuote
	}
	qihl := int(q[0]&0x0f) * 4
	if qihl < IPv4HeaderLen || len(q) < qihl+UDPHeaderLen {
		return ErrNoQuote
	}
	if q[9] != protoUDP {
		return ErrNotUDPQuote
	}
	r.QTOS = q[1]
	r.QTotalLen = binary.BigEndian.Uint16(q[2:])
	r.QID = binary.BigEndian.Uint16(q[4:])
	r.QTTL = q[8]
	r.QSrc = netip.AddrFrom4([4]byte(q[12:16]))
	r.QDst = netip.AddrFrom4([4]byte(q[16:20]))
	u := q[qihl:]
	r.QSrcPort = binary.BigEndian.Uint16(u[0:])
	r.QDstPort = binary.BigEndian.Uint16(u[2:])
	r.QUDPLen = binary.BigEndian.Uint16(u[4:])
	r.QChecksum = binary.BigEndian.Uint16(u[6:])
	r.Quote, r.Extensions = q, nil
	if n := extOffset(q, r.Length); n > 0 {
		r.Quote, r.Extensions = q[:n], q[n:]
	}
	return nil
}

// extOffset returns where the RFC 4884 extension structure starts in q, the
// "original datagram" field and what follows it, or 0 if there is none.
// RFC 4884: with extensions, the original datagram field holds at least 128
// octets; a receiver meeting a non-compliant sender (no length attribute)
// looks for an extension header at octet 128 and accepts it only with a
// valid version and checksum. As in golang.org/x/net/icmp, a length
// attribute below 128 octets or past the end counts as non-compliant, a
// structure needs at least 8 octets (its header and one object header), and
// a zero checksum is not checked.
func extOffset(q []byte, length int) int {
	if length >= 128 && length+8 <= len(q) && validExtHeader(q[length:]) {
		return length
	}
	if 128+8 <= len(q) && validExtHeader(q[128:]) {
		return 128
	}
	return 0
}

// validExtHeader says whether b starts an ICMP extension structure:
// version 2 and a checksum over the whole structure that is valid or 0.
func validExtHeader(b []byte) bool {
	return b[0]>>4 == 2 && (binary.BigEndian.Uint16(b[2:]) == 0 || Checksum(b) == 0)
}

// Match says whether r answers a probe of this run and, if so, which one.
// It checks the quoted source, protocol, ports and run tag.
func (s *Spec) Match(r *Reply) (pathID, ttl int, ok bool) {
	if r.QSrc != s.Src || r.QDstPort != s.DstPort {
		return 0, 0, false
	}
	tag, ttl := SplitIPID(r.QID)
	if tag != s.Tag {
		return 0, 0, false
	}
	p := int(r.QSrcPort) - int(s.BaseSrcPort)
	if p < 1 || p > s.Paths {
		return 0, 0, false
	}
	return p, ttl, true
}

// Reached says whether the reply comes from the probed destination itself:
// a port unreachable, or any unreachable sent by the destination address.
func (r *Reply) Reached() bool {
	return r.Type == ICMPUnreachable && (r.Code == CodePortUnreachable || r.From == r.QDst)
}
