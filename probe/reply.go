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
	ICMPEcho            = 8
	ICMPTimeExceeded    = 11
	CodePortUnreachable = 3
	CodeTTLExceeded     = 0
	protoICMP           = 1

	// TypeTCP is the Type of a Reply (and an Answer) that is a TCP
	// segment from the destination, a SYN-ACK or an RST: 255, an ICMP
	// type that is reserved (RFC 4884 registry) and never sent. Its Code
	// is the segment's TCP flags (0x12 SYN-ACK, 0x14 RST-ACK).
	TypeTCP = 0xff
)

// Errors returned by ParseReply. They are sentinels, so that decoding a
// reply that is not ours costs no allocation.
var (
	ErrShort    = errors.New("probe: packet too short")
	ErrNotIPv4  = errors.New("probe: not an IPv4 packet")
	ErrNotICMP  = errors.New("probe: not ICMP or TCP")
	ErrNotError = errors.New("probe: ICMP message is not time-exceeded, unreachable or echo reply")
	ErrNoQuote  = errors.New("probe: quoted packet too short")
	// ErrNotUDPQuote: the quoted packet is none of the probe protocols.
	ErrNotUDPQuote = errors.New("probe: quoted packet is not UDP, TCP or ICMP")
	// ErrTCPFlags: a TCP segment that is not a SYN-ACK or an RST with ACK.
	ErrTCPFlags = errors.New("probe: TCP segment is not a SYN-ACK or RST-ACK")
)

// Reply is a reply to a probe decoded in place: an ICMP error that quotes
// the probe, or the destination's own answer to a TCP or ICMP probe (a
// direct reply: a SYN-ACK or RST, an echo reply), which quotes nothing.
// Slices alias the decoded packet.
type Reply struct {
	From     netip.Addr // who sent the reply
	Dst      netip.Addr // outer destination (our source address)
	ReplyTTL uint8      // TTL of the reply on arrival
	Type     uint8      // ICMP type, or TypeTCP
	Code     uint8      // ICMP code, or the TCP flags
	// Length is the RFC 4884 "length of the original datagram" in bytes
	// (0 when the sender does not use RFC 4884).
	Length int

	// Proto is the IP protocol of the probe the reply is about: 17 (UDP),
	// 6 (TCP) or 1 (ICMP echo). Direct says the reply is the
	// destination's own answer, not an ICMP error.
	Proto  uint8
	Direct bool

	// The quoted (original) datagram. A direct reply quotes nothing: its
	// Q fields hold what it gives back of the probe, QSrc and QDst the
	// reply's addresses swapped, the others zero unless said below.
	QTOS      uint8
	QTotalLen uint16
	// QID is the quoted IP.ID (run tag and TTL); for a direct reply, the
	// same value as the probe carried it in its transport header: the low
	// half of the acknowledged TCP sequence number, the echo sequence
	// number.
	QID  uint16
	QTTL uint8 // TTL of the probe when it reached the replying node
	QSrc netip.Addr
	QDst netip.Addr
	// QSrcPort is the flow of the probe: its UDP or TCP source port, or
	// its ICMP echo identifier; QDstPort its UDP or TCP destination port
	// (0 for ICMP). A TCP reply's ports are swapped back.
	QSrcPort uint16
	QDstPort uint16
	QUDPLen  uint16 // the UDP length (0 for TCP and ICMP)
	// QChecksum is the probe's send clock (see Spec.Clock): the UDP
	// checksum, the high half of the TCP sequence number, the first word
	// of the ICMP echo payload; 0 (unknown) when the quote or the echo
	// reply is too short to hold it.
	QChecksum uint16
	// QSeq is the TCP sequence number of the probe (a direct reply's
	// acknowledgment number minus one), or its ICMP identifier and
	// sequence number (identifier in the high half); 0 for UDP.
	QSeq uint32
	// QType is the quoted ICMP type (ICMPEcho for a probe); 0 otherwise.
	QType uint8

	// Quote is the quoted datagram as received (with its RFC 4884
	// padding); Extensions is the RFC 4884 extension structure that
	// follows it, from its header on, when a valid one sits where the
	// length attribute says or, for non-compliant senders, after 128
	// octets of quote; else nil. Both are nil for a direct reply.
	Quote      []byte
	Extensions []byte
}

// ParseReply decodes b, an IPv4 packet starting at its IP header, into r.
// It accepts ICMP time-exceeded and destination-unreachable messages that
// quote at least an IPv4 header and 8 bytes of UDP, TCP or ICMP; ICMP echo
// replies; and TCP segments with ACK and SYN or RST set (at least 20 bytes
// of TCP header). It does not allocate.
func ParseReply(b []byte, r *Reply) error {
	if len(b) < ipv4HeaderLen {
		return ErrShort
	}
	if b[0]>>4 != 4 {
		return ErrNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || len(b) < ihl+8 {
		return ErrShort
	}
	if b[9] != protoICMP && b[9] != protoTCP {
		return ErrNotICMP
	}
	// Trust the IP total length over the frame length (link layers pad).
	if tl := int(binary.BigEndian.Uint16(b[2:])); tl >= ihl+8 && tl < len(b) {
		b = b[:tl]
	}
	from, dst, ttl := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[8]
	if b[9] == protoTCP {
		*r = Reply{From: from, Dst: dst, ReplyTTL: ttl}
		return parseTCPReply(b[ihl:], r)
	}
	icmp := b[ihl:]
	if icmp[0] == ICMPEchoReply {
		// RFC 792: identifier, sequence number and data echoed.
		*r = Reply{
			From: from, Dst: dst, ReplyTTL: ttl, Type: icmp[0], Code: icmp[1],
			Proto: protoICMP, Direct: true, QSrc: dst, QDst: from,
			QSrcPort: binary.BigEndian.Uint16(icmp[4:]),
			QID:      binary.BigEndian.Uint16(icmp[6:]),
			QSeq:     binary.BigEndian.Uint32(icmp[4:]),
		}
		if len(icmp) >= icmpHeaderLen+2 {
			r.QChecksum = binary.BigEndian.Uint16(icmp[8:])
		}
		return nil
	}
	r.From, r.Dst, r.ReplyTTL = from, dst, ttl
	r.Type, r.Code = icmp[0], icmp[1]
	if r.Type != ICMPTimeExceeded && r.Type != ICMPUnreachable {
		return ErrNotError
	}
	// RFC 4884 section 3: the length attribute, in 32-bit words, sits in
	// the sixth octet of time-exceeded and unreachable messages.
	r.Length = int(icmp[5]) * 4
	q := icmp[8:]
	if len(q) < ipv4HeaderLen || q[0]>>4 != 4 {
		return ErrNoQuote
	}
	qihl := int(q[0]&0x0f) * 4
	if qihl < ipv4HeaderLen || len(q) < qihl+udpHeaderLen {
		return ErrNoQuote
	}
	u := q[qihl:]
	r.Direct, r.QSeq, r.QType, r.QUDPLen, r.QDstPort, r.QChecksum = false, 0, 0, 0, 0, 0
	switch r.Proto = q[9]; r.Proto {
	case protoUDP:
		r.QSrcPort = binary.BigEndian.Uint16(u[0:])
		r.QDstPort = binary.BigEndian.Uint16(u[2:])
		r.QUDPLen = binary.BigEndian.Uint16(u[4:])
		r.QChecksum = binary.BigEndian.Uint16(u[6:])
	case protoTCP:
		// RFC 792's 64 bits of TCP: the ports and the sequence number.
		r.QSrcPort = binary.BigEndian.Uint16(u[0:])
		r.QDstPort = binary.BigEndian.Uint16(u[2:])
		r.QSeq = binary.BigEndian.Uint32(u[4:])
		r.QChecksum = uint16(r.QSeq >> 16)
	case protoICMP:
		r.QType = u[0]
		r.QSrcPort = binary.BigEndian.Uint16(u[4:])
		r.QSeq = binary.BigEndian.Uint32(u[4:])
		if len(u) >= icmpHeaderLen+2 {
			// The payload's clock, when the quote goes beyond the
			// 8 bytes RFC 792 requires (Linux quotes the whole probe).
			r.QChecksum = binary.BigEndian.Uint16(u[8:])
		}
	default:
		return ErrNotUDPQuote
	}
	r.QTOS = q[1]
	r.QTotalLen = binary.BigEndian.Uint16(q[2:])
	r.QID = binary.BigEndian.Uint16(q[4:])
	r.QTTL = q[8]
	r.QSrc = netip.AddrFrom4([4]byte(q[12:16]))
	r.QDst = netip.AddrFrom4([4]byte(q[16:20]))
	r.Quote, r.Extensions = q, nil
	if n := extOffset(q, r.Length); n > 0 {
		r.Quote, r.Extensions = q[:n], q[n:]
	}
	return nil
}

// parseTCPReply decodes t, the TCP segment of a direct reply, into r:
// RFC 9293 section 3.1: ports (0-3), sequence (4-7) and acknowledgment
// (8-11) numbers, data offset (12), flags (13). A SYN-ACK (open port) or an
// RST (closed port) answers a SYN with acknowledgment number SYN.seq+1.
func parseTCPReply(t []byte, r *Reply) error {
	if len(t) < tcpHeaderLen {
		return ErrShort
	}
	flags := t[13]
	if flags&TCPFlagACK == 0 || flags&(TCPFlagSYN|TCPFlagRST) == 0 {
		return ErrTCPFlags
	}
	r.Type, r.Code = TypeTCP, flags
	r.Proto, r.Direct = protoTCP, true
	r.QSrc, r.QDst = r.Dst, r.From
	r.QSrcPort = binary.BigEndian.Uint16(t[2:])
	r.QDstPort = binary.BigEndian.Uint16(t[0:])
	r.QSeq = binary.BigEndian.Uint32(t[8:]) - 1
	r.QID = uint16(r.QSeq)
	r.QChecksum = uint16(r.QSeq >> 16)
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
// It checks the protocol, the quoted source, the ports (or the quoted ICMP
// type) and the run tag, and takes the path ID from the source port (ICMP
// identifier) and the TTL from the IP.ID (or, for a direct reply, from the
// value the probe's transport header carried, which is the same).
func (s *Spec) Match(r *Reply) (pathID, ttl int, ok bool) {
	if r.Proto != s.Proto.IPProto() || r.QSrc != s.Src {
		return 0, 0, false
	}
	if s.Proto == ProtoICMP {
		if !r.Direct && r.QType != ICMPEcho {
			return 0, 0, false
		}
	} else if r.QDstPort != s.DstPort {
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
// a port unreachable, any unreachable sent by the destination address, or
// a direct reply (SYN-ACK, RST, echo reply); for an ICMPv6 reply (From is
// IPv6), a port unreachable or any unreachable from the destination.
func (r *Reply) Reached() bool {
	if r.From.Is6() {
		return reached(r.Type, r.Code, r.From, r.QDst)
	}
	switch r.Type {
	case ICMPUnreachable:
		return r.Code == CodePortUnreachable || r.From == r.QDst
	case ICMPEchoReply, TypeTCP:
		return r.Direct
	}
	return false
}
