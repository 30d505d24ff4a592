package tracertest

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The simulator reads probes and writes replies with its own code, not
// with package probe's, so that a test of the engine checks probe's
// encoding against an independent reading of the RFCs.

// IP protocol numbers (IANA) and ICMP types and codes (RFC 792, RFC 4443).
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	icmpEchoReply        = 0
	icmpUnreachable      = 3
	icmpEcho             = 8
	icmpTimeExceeded     = 11
	codeNetUnreachable   = 0
	codePortUnreachable  = 3
	codeAdminProhibited  = 13
	icmp6Unreachable     = 1
	icmp6TimeExceeded    = 3
	icmp6Echo            = 128
	icmp6EchoReply       = 129
	code6NoRoute         = 0
	code6AdminProhibited = 1
	code6PortUnreachable = 4

	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10

	ipv4Len = 20
	ipv6Len = 40
)

// Reasons a packet given to Send is not simulated.
var (
	errShort     = errors.New("packet too short")
	errVersion   = errors.New("not IPv4 or IPv6")
	errHeaderSum = errors.New("bad IPv4 header checksum")
	errLength    = errors.New("bad IP length")
	errProto     = errors.New("not UDP, TCP or ICMP echo request")
)

// packet is what the simulator reads of a packet sent: its IP header and
// the transport fields that routers hash and hosts answer. Slices alias
// the packet.
type packet struct {
	raw       []byte // the IP packet, cut to its IP length
	v6        bool
	hdrLen    int // IP header length
	src, dst  netip.Addr
	proto     uint8
	ttl       uint8
	flowLabel uint32 // IPv6 only
	l4        []byte // the transport header and payload
	// sport and dport are the UDP or TCP ports; for an ICMP echo request
	// sport is its identifier (what the lab's balancers hash).
	sport, dport uint16
	tcpFlags     uint8
	seq          uint32 // TCP sequence number
}

// parsePacket reads b, an IP packet from its header on, into p. It
// checks the IPv4 header checksum, as a router does, but not the
// transport checksum, which only the destination looks at.
func parsePacket(b []byte, p *packet) error {
	if len(b) < 1 {
		return errShort
	}
	*p = packet{}
	switch b[0] >> 4 {
	case 4:
		if err := parse4(b, p); err != nil {
			return err
		}
	case 6:
		if err := parse6(b, p); err != nil {
			return err
		}
	default:
		return errVersion
	}
	return parseL4(p)
}

// parse4 reads an IPv4 header (RFC 791 section 3.1).
func parse4(b []byte, p *packet) error {
	if len(b) < ipv4Len {
		return errShort
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < ipv4Len || total < ihl || total > len(b) {
		return errLength
	}
	if checksum(b[:ihl], 0) != 0 {
		return errHeaderSum
	}
	p.raw, p.hdrLen = b[:total], ihl
	p.ttl, p.proto = b[8], b[9]
	p.src = netip.AddrFrom4([4]byte(b[12:16]))
	p.dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.l4 = b[ihl:total]
	return nil
}

// parse6 reads an IPv6 header (RFC 8200 section 3); extension headers are
// not followed: a probe has none.
func parse6(b []byte, p *packet) error {
	if len(b) < ipv6Len {
		return errShort
	}
	total := ipv6Len + int(binary.BigEndian.Uint16(b[4:]))
	if total > len(b) {
		return errLength
	}
	p.raw, p.hdrLen, p.v6 = b[:total], ipv6Len, true
	p.flowLabel = binary.BigEndian.Uint32(b[0:]) & 0xfffff
	p.proto, p.ttl = b[6], b[7]
	p.src = netip.AddrFrom16([16]byte(b[8:24]))
	p.dst = netip.AddrFrom16([16]byte(b[24:40]))
	p.l4 = b[ipv6Len:total]
	return nil
}

// parseL4 reads the transport fields of p.
func parseL4(p *packet) error {
	l4 := p.l4
	switch p.proto {
	case protoUDP:
		if len(l4) < 8 {
			return errShort
		}
	case protoTCP:
		if len(l4) < 20 {
			return errShort
		}
		p.seq = binary.BigEndian.Uint32(l4[4:])
		p.tcpFlags = l4[13]
	case protoICMP, protoICMPv6:
		if len(l4) < 8 {
			return errShort
		}
		if !p.echoRequest() {
			return errProto
		}
		// RFC 792: identifier at octets 4-5 of an echo message.
		p.sport = binary.BigEndian.Uint16(l4[4:])
		return nil
	default:
		return errProto
	}
	p.sport = binary.BigEndian.Uint16(l4[0:])
	p.dport = binary.BigEndian.Uint16(l4[2:])
	return nil
}

// echoRequest says whether p is an ICMP (or ICMPv6) echo request.
func (p *packet) echoRequest() bool {
	if p.v6 {
		return p.proto == protoICMPv6 && p.l4[0] == icmp6Echo
	}
	return p.proto == protoICMP && p.l4[0] == icmpEcho
}

// l4Valid says whether the transport checksum of p is right, as the
// destination host checks it before answering (a UDP datagram with a bad
// checksum is dropped without a port unreachable, RFC 1122 4.1.3.4).
func (p *packet) l4Valid() bool {
	switch p.proto {
	case protoUDP:
		if !p.v6 && binary.BigEndian.Uint16(p.l4[6:]) == 0 {
			return true // RFC 768: no checksum (IPv4 only)
		}
		return checksum(p.l4, p.pseudo(protoUDP)) == 0
	case protoTCP:
		return checksum(p.l4, p.pseudo(protoTCP)) == 0
	case protoICMPv6:
		return checksum(p.l4, p.pseudo(protoICMPv6)) == 0
	}
	return checksum(p.l4, 0) == 0
}

// pseudo returns the partial sum of p's pseudo header for its transport
// payload (RFC 768, RFC 8200 section 8.1).
func (p *packet) pseudo(proto uint8) uint32 {
	return pseudoSum(p.src, p.dst, proto, len(p.l4))
}

// pseudoSum returns the partial sum of the pseudo header of a transport
// payload of length n from src to dst.
func pseudoSum(src, dst netip.Addr, proto uint8, n int) uint32 {
	var acc uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = words(s[:], acc)
		acc = words(d[:], acc)
	} else {
		s, d := src.As16(), dst.As16()
		acc = words(s[:], acc)
		acc = words(d[:], acc)
	}
	return acc + uint32(proto) + uint32(n>>16) + uint32(n&0xffff)
}

// words adds b to acc as big-endian 16-bit words, a last odd byte padded
// with zero (RFC 1071).
func words(b []byte, acc uint32) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if n < len(b) {
		acc += uint32(b[n]) << 8
	}
	return acc
}

// checksum returns the Internet checksum of b with the partial sum acc
// added: 0 when b holds a valid checksum over them.
func checksum(b []byte, acc uint32) uint16 {
	acc = words(b, acc)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
