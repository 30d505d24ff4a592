package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// IPv6 probes. A run whose source address is IPv6 sends UDP probes of 52
// bytes (IPv6 has no IP.ID, so the run tag and TTL travel in the payload):
//
//	IPv6.traffic class  fixed for the run (--tos)
//	IPv6.flow label     FlowLabel(path ID): fixed for one path ID
//	IPv6.payload length 12
//	IPv6.next header    17 (UDP; no extension headers)
//	IPv6.hop limit      the probe's TTL
//	UDP.sport           --srcport + path ID
//	UDP.dport           --dstport
//	UDP.length          12 (8 header + 4 payload bytes)
//	UDP.checksum        the send time, as over IPv4 (1..65535: never 0,
//	                    which IPv6 forbids)
//	payload bytes 0-1   run tag (bits 15..6) and TTL-1 (bits 5..0): the IP.ID
//	                    of an IPv4 probe
//	payload bytes 2-3   whatever makes the checksum valid
//
// An ICMPv6 error quotes as much of the probe as fits in 1280 bytes (RFC
// 4443 section 2.4 (c)), so the whole probe comes back: the payload's tag
// word says which run and TTL, the source port which path ID, the checksum
// when it was sent.

// Layout of an IPv6 probe.
const (
	ipv6HeaderLen = 40
	// PayloadLen6 is the UDP payload of an IPv6 probe: the tag word and
	// the checksum compensation.
	payloadLen6 = 4
	// Len6 is the length of an IPv6 probe on the wire.
	Len6 = ipv6HeaderLen + udpHeaderLen + payloadLen6
	// MaxProbeLen is the length of the longest probe of either family: a
	// buffer of MaxProbeLen bytes holds any probe (MaxLen, any IPv4 one).
	MaxProbeLen = max(MaxLen, Len6)

	protoICMPv6 = 58
)

// ICMPv6 types and codes (RFC 4443) that a trace cares about.
const (
	ICMPv6Unreachable      = 1
	ICMPv6TimeExceeded     = 3
	CodeV6PortUnreachable  = 4
	codeV6HopLimitExceeded = 0
)

// ErrNotIPv6 is returned by ParseReply6 for a packet that is not IPv6.
var ErrNotIPv6 = errors.New("probe: not an IPv6 packet")

// Unreachable says whether an ICMP message of type typ is a destination
// unreachable: type 3 in ICMP, type 1 in ICMPv6 (v6).
func Unreachable(typ uint8, v6 bool) bool {
	if v6 {
		return typ == ICMPv6Unreachable
	}
	return typ == ICMPUnreachable
}

// reached says whether an ICMP message of type typ and code code, sent by
// from about a probe to dst, comes from the destination: a port
// unreachable, or any unreachable sent by the destination itself.
func reached(typ, code uint8, from, dst netip.Addr) bool {
	if dst.Is6() {
		return typ == ICMPv6Unreachable && (code == CodeV6PortUnreachable || from == dst)
	}
	return typ == ICMPUnreachable && (code == CodePortUnreachable || from == dst)
}

// FlowLabel returns the IPv6 flow label of the probes of path ID pathID: a
// 20-bit mix of its source port, never 0 (RFC 6437: 0 is "no label"). It
// depends on nothing else, so a path ID keeps its label from TTL to TTL and
// from run to run; routers that hash the flow label (with the addresses,
// or with the 5-tuple) then keep each path ID on one path, and spread
// different path IDs as they spread different source ports.
func (s *Spec) FlowLabel(pathID int) uint32 {
	x := uint32(s.BaseSrcPort+uint16(pathID)) + 0x7f4a7c15
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	x *= 0xc2b2ae35
	x ^= x >> 16
	if fl := x & 0xfffff; fl != 0 {
		return fl
	}
	return 1
}

// encode6 writes the IPv6 probe for (dst, pathID, ttl) into b (see above).
func (s *Spec) encode6(b []byte, dst netip.Addr, pathID, ttl int, sent time.Time) int {
	_ = b[Len6-1]
	src, d := s.Src.As16(), dst.As16()
	ip := b[:ipv6HeaderLen]
	binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(s.TOS)<<20|s.FlowLabel(pathID))
	binary.BigEndian.PutUint16(ip[4:], udpHeaderLen+payloadLen6)
	ip[6] = protoUDP
	ip[7] = uint8(ttl)
	copy(ip[8:24], src[:])
	copy(ip[24:40], d[:])

	udp := b[ipv6HeaderLen:Len6]
	binary.BigEndian.PutUint16(udp[0:], s.BaseSrcPort+uint16(pathID))
	binary.BigEndian.PutUint16(udp[2:], s.DstPort)
	binary.BigEndian.PutUint16(udp[4:], udpHeaderLen+payloadLen6)
	binary.BigEndian.PutUint16(udp[6:], s.Clock(sent))
	binary.BigEndian.PutUint16(udp[8:], IPID(s.Tag, ttl))
	udp[10], udp[11] = 0, 0
	// As over IPv4: with the last word zero the datagram and its pseudo
	// header sum to S, and the word 0xffff - S makes the sum 0xffff.
	s0 := fold(sum(udp, pseudo6(&src, &d, udpHeaderLen+payloadLen6)))
	binary.BigEndian.PutUint16(udp[10:], 0xffff-s0)
	return Len6
}

// pseudo6 returns the partial sum of the IPv6 pseudo header (RFC 8200
// section 8.1) of a UDP datagram of the given length.
func pseudo6(src, dst *[16]byte, length int) uint32 {
	return sum(dst[:], sum(src[:], 0)) + uint32(length>>16) + uint32(length&0xffff) + protoUDP
}

// ParseReply6 decodes b, an IPv6 packet starting at its IPv6 header, into
// r, as ParseReply does for IPv4. It accepts ICMPv6 time exceeded (type 3)
// and destination unreachable (type 1) messages that follow the IPv6
// header directly (no extension headers) and quote at least the IPv6
// header, the UDP header and the two bytes of payload that hold the run
// tag and TTL of a probe. r.QID is that payload word (the IP.ID an IPv4
// probe would carry), r.QTotalLen the quoted payload length plus 40, r.QTOS
// the quoted traffic class, r.QTTL the quoted hop limit; r.Length is the
// RFC 4884 length attribute (octet 4, in 64-bit words). It does not
// allocate.
func ParseReply6(b []byte, r *Reply) error {
	if len(b) < ipv6HeaderLen {
		return ErrShort
	}
	if b[0]>>4 != 6 {
		return ErrNotIPv6
	}
	if b[6] != protoICMPv6 {
		return ErrNotICMP
	}
	// Trust the payload length over the frame length (link layers pad).
	if pl := int(binary.BigEndian.Uint16(b[4:])); pl >= 8 && ipv6HeaderLen+pl < len(b) {
		b = b[:ipv6HeaderLen+pl]
	}
	if len(b) < ipv6HeaderLen+8 {
		return ErrShort
	}
	icmp := b[ipv6HeaderLen:]
	*r = Reply{
		From:     netip.AddrFrom16([16]byte(b[8:24])),
		Dst:      netip.AddrFrom16([16]byte(b[24:40])),
		ReplyTTL: b[7],
		Type:     icmp[0],
		Code:     icmp[1],
		Length:   int(icmp[4]) * 8,
	}
	if r.Type != ICMPv6TimeExceeded && r.Type != ICMPv6Unreachable {
		return ErrNotError
	}
	q := icmp[8:]
	if len(q) < ipv6HeaderLen || q[0]>>4 != 6 {
		return ErrNoQuote
	}
	if q[6] != protoUDP {
		return ErrNotUDPQuote
	}
	if len(q) < ipv6HeaderLen+udpHeaderLen+2 {
		return ErrNoQuote
	}
	u := q[ipv6HeaderLen:]
	r.Proto = protoUDP
	r.QTOS = q[0]<<4 | q[1]>>4
	r.QTotalLen = ipv6HeaderLen + binary.BigEndian.Uint16(q[4:])
	r.QTTL = q[7]
	r.QSrc = netip.AddrFrom16([16]byte(q[8:24]))
	r.QDst = netip.AddrFrom16([16]byte(q[24:40]))
	r.QSrcPort = binary.BigEndian.Uint16(u[0:])
	r.QDstPort = binary.BigEndian.Uint16(u[2:])
	r.QUDPLen = binary.BigEndian.Uint16(u[4:])
	r.QChecksum = binary.BigEndian.Uint16(u[6:])
	r.QID = binary.BigEndian.Uint16(u[8:])
	r.Quote = q
	if n := extOffset(q, r.Length); n > 0 {
		r.Quote, r.Extensions = q[:n], q[n:]
	}
	return nil
}

// rewrites6 is rewrites for the quote of an IPv6 probe: its traffic class,
// its lengths and, when the whole datagram is quoted, its UDP checksum.
func (s *Spec) rewrites6(r *Reply) Rewrite {
	if len(r.Quote) < ipv6HeaderLen {
		return 0
	}
	var rw Rewrite
	if r.QTOS != s.TOS {
		rw |= RewriteTOS
	}
	if r.QTotalLen != Len6 || r.QUDPLen != udpHeaderLen+payloadLen6 {
		rw |= RewriteLength
	}
	if u := r.Quote[ipv6HeaderLen:]; r.QUDPLen == udpHeaderLen+payloadLen6 && len(u) >= udpHeaderLen+payloadLen6 {
		src, dst := r.QSrc.As16(), r.QDst.As16()
		if fold(sum(u[:udpHeaderLen+payloadLen6], pseudo6(&src, &dst, udpHeaderLen+payloadLen6))) != 0xffff {
			rw |= RewriteChecksum
		}
	}
	return rw
}
