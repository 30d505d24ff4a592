package tracertest

import (
	"encoding/binary"
	"net/netip"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Sizes of what a node quotes: Linux's icmp_send keeps an ICMP error
// within 576 bytes (RFC 1812 4.3.2.3), icmp6_send within the IPv6 minimum
// MTU, 1280 bytes (RFC 4443 2.4 (c)).
const (
	maxReply4 = 576
	maxReply6 = 1280
	// extQuote is the least original datagram field that RFC 4884
	// section 5.1 allows in front of extensions: 128 octets.
	extQuote = 128
	// bufSize holds the largest reply: an ICMPv6 error and extensions.
	bufSize = maxReply6 + 512
	// linuxTTL is the TTL (hop limit) of the packets a Linux host sends.
	linuxTTL = 64
	// synackMSS is the MSS option of a SYN-ACK: 1460, Ethernet's.
	synackMSS = 1460
)

// reply says what a node sends back and how.
type reply struct {
	from     netip.Addr // source of the reply
	to       netip.Addr // the probe's source
	ttl      uint8      // TTL of the reply as it leaves
	ipid     uint16     // IPv4 identification
	arrTTL   uint8      // the probe's TTL when it reached the node
	quoteMax int        // most bytes of the probe quoted; 0: as Linux
	mpls     []probe.MPLSLabel
}

// ipv4Header writes an IPv4 header (RFC 791 3.1) into b[:20].
func ipv4Header(b []byte, tos uint8, total int, id uint16, ttl, proto uint8, src, dst netip.Addr) {
	b[0], b[1] = 0x45, tos
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], id)
	b[6], b[7] = 0, 0 // flags and fragment offset
	b[8], b[9] = ttl, proto
	b[10], b[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ipv4Len], 0))
}

// ipv6Header writes an IPv6 header (RFC 8200 3) into b[:40].
func ipv6Header(b []byte, tc uint8, payload int, next, hlim uint8, src, dst netip.Addr) {
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(tc)<<20)
	binary.BigEndian.PutUint16(b[4:], uint16(payload))
	b[6], b[7] = next, hlim
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}

// icmpError writes into b the ICMP (ICMPv6) error of type typ and code
// code that r.from sends about p, and returns it.
func icmpError(b []byte, p *packet, r *reply, typ, code uint8) []byte {
	hdr, limit := ipv4Len, maxReply4
	if p.v6 {
		hdr, limit = ipv6Len, maxReply6
	}
	q := len(p.raw)
	q = min(q, limit-hdr-8)
	if r.quoteMax > 0 {
		q = min(q, r.quoteMax)
	}
	msg := b[hdr:]
	msg[0], msg[1] = typ, code
	clear(msg[2:8])
	quote(msg[8:8+q], p, r.arrTTL)
	field := q
	if len(r.mpls) > 0 {
		// RFC 4884 5.1: the original datagram field is zero padded
		// to at least 128 octets and to a whole number of words (32
		// bits for ICMP, 64 for ICMPv6), whose count the length
		// attribute gives.
		unit := 4
		if p.v6 {
			unit = 8
		}
		field = max(extQuote, (q+unit-1)/unit*unit)
		clear(msg[8+q : 8+field])
		if p.v6 {
			msg[4] = uint8(field / 8) // RFC 4884 4.5: octet 4 for ICMPv6
		} else {
			msg[5] = uint8(field / 4) // RFC 4884 4.1: octet 5 for ICMP
		}
		field += extensions(msg[8+field:], r.mpls)
	}
	return finishICMP(b, p, r, msg[:8+field], 0xc0|p.tos()&0x1e)
}

// finishICMP writes the IP header in front of the ICMP message msg
// (b[hdr:]) and its checksum, and returns the whole reply. tos is the
// IPv4 TOS byte.
func finishICMP(b []byte, p *packet, r *reply, msg []byte, tos uint8) []byte {
	msg[2], msg[3] = 0, 0
	if p.v6 {
		sum := checksum(msg, pseudoSum(r.from, r.to, protoICMPv6, len(msg)))
		binary.BigEndian.PutUint16(msg[2:], sum)
		ipv6Header(b, 0, len(msg), protoICMPv6, r.ttl, r.from, r.to)
		return b[:ipv6Len+len(msg)]
	}
	binary.BigEndian.PutUint16(msg[2:], checksum(msg, 0))
	ipv4Header(b, tos, ipv4Len+len(msg), r.ipid, r.ttl, protoICMP, r.from, r.to)
	return b[:ipv4Len+len(msg)]
}

// quote copies the start of p into q as the node received it: with the
// TTL it arrived with and, over IPv4, the header checksum that each
// router updated when it decremented the TTL (RFC 1624).
func quote(q []byte, p *packet, arrTTL uint8) {
	copy(q, p.raw)
	if p.v6 {
		if len(q) > 7 {
			q[7] = arrTTL
		}
		return
	}
	if len(q) < p.hdrLen {
		return
	}
	q[8] = arrTTL
	q[10], q[11] = 0, 0
	binary.BigEndian.PutUint16(q[10:], checksum(q[:p.hdrLen], 0))
}

// extensions writes an RFC 4884 extension structure holding one RFC 4950
// MPLS label stack object into b and returns its length.
func extensions(b []byte, labels []probe.MPLSLabel) int {
	// RFC 4884 7: version 2, reserved, checksum over the whole
	// structure; RFC 4950: class 1 (MPLS label stack), c-type 1
	// (incoming), one 32-bit entry per label (RFC 3032 2.1).
	n := 4 + 4 + 4*len(labels)
	b[0], b[1], b[2], b[3] = 2<<4, 0, 0, 0
	obj := b[4:n]
	binary.BigEndian.PutUint16(obj[0:], uint16(len(obj)))
	obj[2], obj[3] = 1, 1
	for i, l := range labels {
		v := l.Label&0xfffff<<12 | uint32(l.TC&7)<<9 | uint32(l.TTL)
		if l.S || i == len(labels)-1 {
			v |= 1 << 8
		}
		binary.BigEndian.PutUint32(obj[4+4*i:], v)
	}
	binary.BigEndian.PutUint16(b[2:], checksum(b[:n], 0))
	return n
}

// tos returns the TOS byte (IPv6: traffic class) of p.
func (p *packet) tos() uint8 {
	if p.v6 {
		return uint8(binary.BigEndian.Uint32(p.raw) >> 20)
	}
	return p.raw[1]
}

// echoReply writes into b the echo reply to p, an echo request (RFC 792:
// identifier, sequence number and data echoed; RFC 4443 4.2), and returns
// it. The reply comes from the address p was sent to.
func echoReply(b []byte, p *packet, r *reply) []byte {
	hdr, typ := ipv4Len, uint8(icmpEchoReply)
	if p.v6 {
		hdr, typ = ipv6Len, icmp6EchoReply
	}
	msg := b[hdr : hdr+len(p.l4)]
	copy(msg, p.l4)
	msg[0], msg[1] = typ, 0
	// Linux's icmp_reply keeps the request's TOS.
	return finishICMP(b, p, r, msg, p.tos())
}

// tcpReply writes into b the destination's answer to p, a TCP segment:
// to a SYN, a SYN-ACK when the port is open, else an RST (RFC 9293
// 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, the SYN counting
// as one). isn is the SYN-ACK's initial sequence number.
func tcpReply(b []byte, p *packet, r *reply, open bool, isn uint32) []byte {
	hdr := ipv4Len
	if p.v6 {
		hdr = ipv6Len
	}
	n := 20
	if open {
		n = 24
	}
	t := b[hdr : hdr+n]
	clear(t)
	binary.BigEndian.PutUint16(t[0:], p.dport)
	binary.BigEndian.PutUint16(t[2:], p.sport)
	seglen := uint32(len(p.l4) - int(p.l4[12]>>4)*4)
	if p.tcpFlags&tcpSYN != 0 {
		seglen++
	}
	if p.tcpFlags&tcpFIN != 0 {
		seglen++
	}
	binary.BigEndian.PutUint32(t[8:], p.seq+seglen)
	t[13] = tcpRST | tcpACK
	if open {
		binary.BigEndian.PutUint32(t[4:], isn)
		t[13] = tcpSYN | tcpACK
		binary.BigEndian.PutUint16(t[14:], 64240)
		// RFC 9293 3.7.1: the MSS option, kind 2, length 4.
		t[20], t[21] = 2, 4
		binary.BigEndian.PutUint16(t[22:], synackMSS)
	}
	t[12] = uint8(n/4) << 4
	binary.BigEndian.PutUint16(t[16:], checksum(t, pseudoSum(r.from, r.to, protoTCP, n)))
	if p.v6 {
		ipv6Header(b, 0, n, protoTCP, r.ttl, r.from, r.to)
	} else {
		ipv4Header(b, 0, ipv4Len+n, r.ipid, r.ttl, protoTCP, r.from, r.to)
	}
	return b[:hdr+n]
}
