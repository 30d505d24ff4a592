package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Proto is the transport protocol of a run's probes. The zero value is UDP.
type Proto uint8

// The probe protocols.
const (
	ProtoUDP  Proto = iota // UDP datagrams to --dstport (the default)
	ProtoTCP               // TCP SYN segments to --dstport
	ProtoICMP              // ICMP echo requests
)

// Protos lists the protocols by name, in the order of the constants.
var protoNames = []string{"udp", "tcp", "icmp"}

// String returns the protocol's name: udp, tcp or icmp.
func (p Proto) String() string {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProto returns the protocol named s (udp, tcp or icmp).
func ParseProto(s string) (Proto, error) {
	for i, n := range protoNames {
		if s == n {
			return Proto(i), nil
		}
	}
	return 0, fmt.Errorf("probe: unknown protocol %q (want udp, tcp or icmp)", s)
}

// IPProto returns the IP protocol number of p's probes: 17, 6 or 1.
func (p Proto) IPProto() uint8 {
	switch p {
	case ProtoTCP:
		return protoTCP
	case ProtoICMP:
		return protoICMP
	}
	return protoUDP
}

// HasPorts says whether p's probes have a destination port (UDP and TCP).
func (p Proto) HasPorts() bool { return p != ProtoICMP }

// Layout of the TCP and ICMP probes.
const (
	tcpHeaderLen   = 20 // a SYN without options
	icmpHeaderLen  = 8
	icmpPayloadLen = 4 // the send clock and the checksum compensation
	// LenTCP and LenICMP are the lengths of a TCP and an ICMP probe on
	// the wire; Len is a UDP probe's.
	lenTCP  = ipv4HeaderLen + tcpHeaderLen
	lenICMP = ipv4HeaderLen + icmpHeaderLen + icmpPayloadLen
	// MaxLen is the length of the longest IPv4 probe, whatever the
	// protocol: a buffer of MaxLen bytes holds any IPv4 probe (and one of
	// MaxProbeLen bytes any probe, IPv6 ones included).
	MaxLen = lenTCP

	protoTCP = 6

	// TCP flags (RFC 9293 section 3.1).
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagACK = 0x10

	// tcpWindow is the receive window of every SYN probe.
	tcpWindow = 65535
)

// ProbeLen returns the length on the wire of the Spec's probes.
func (s *Spec) ProbeLen() int {
	if s.Src.Is6() {
		return Len6
	}
	switch s.Proto {
	case ProtoTCP:
		return lenTCP
	case ProtoICMP:
		return lenICMP
	}
	return Len
}

// TCPSeq returns the sequence number of a TCP probe: the send clock in the
// high half, the run tag and TTL (the probe's IP.ID) in the low half. The
// destination acknowledges it as TCPSeq+1 in its SYN-ACK or RST.
func TCPSeq(clock, tag uint16, ttl int) uint32 {
	return uint32(clock)<<16 | uint32(IPID(tag, ttl))
}

// ICMPChecksum returns the ICMP checksum of every echo request of path ID
// pathID: the checksum the message would have with a zero sequence number
// and payload. The payload's last word makes up for the sequence number
// and send clock that change from probe to probe.
func (s *Spec) ICMPChecksum(pathID int) uint16 {
	return ^fold(ICMPEcho<<8 + uint32(s.BaseSrcPort+uint16(pathID)))
}

// ipHeader writes the IPv4 header of a probe of length n and protocol
// proto into b.
func (s *Spec) ipHeader(b []byte, dst4 [4]byte, ttl int, proto uint8, n int) {
	ip := b[:ipv4HeaderLen]
	ip[0] = 0x45 // version 4, IHL 5
	ip[1] = s.TOS
	binary.BigEndian.PutUint16(ip[2:], uint16(n))
	binary.BigEndian.PutUint16(ip[4:], IPID(s.Tag, ttl))
	binary.BigEndian.PutUint16(ip[6:], 0) // flags/fragment: none (DF off, like the seed)
	ip[8] = uint8(ttl)
	ip[9] = proto
	ip[10], ip[11] = 0, 0
	src := s.Src.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))
}

// encodeTCP writes a TCP SYN probe (see the package documentation).
func (s *Spec) encodeTCP(b []byte, dst netip.Addr, pathID, ttl int, sent time.Time) int {
	_ = b[lenTCP-1]
	dst4 := dst.As4()
	s.ipHeader(b, dst4, ttl, protoTCP, lenTCP)
	t := b[ipv4HeaderLen:lenTCP]
	binary.BigEndian.PutUint16(t[0:], s.BaseSrcPort+uint16(pathID))
	binary.BigEndian.PutUint16(t[2:], s.DstPort)
	binary.BigEndian.PutUint32(t[4:], TCPSeq(s.Clock(sent), s.Tag, ttl))
	binary.BigEndian.PutUint32(t[8:], 0) // acknowledgment number
	t[12] = tcpHeaderLen / 4 << 4        // data offset, no options
	t[13] = TCPFlagSYN
	binary.BigEndian.PutUint16(t[14:], tcpWindow)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0 // checksum, urgent pointer
	binary.BigEndian.PutUint16(t[16:], ^fold(sum(t, pseudoProto(s.Src.As4(), dst4, protoTCP, tcpHeaderLen))))
	return lenTCP
}

// encodeICMP writes an ICMP echo request probe (see the package
// documentation).
func (s *Spec) encodeICMP(b []byte, dst netip.Addr, pathID, ttl int, sent time.Time) int {
	_ = b[lenICMP-1]
	s.ipHeader(b, dst.As4(), ttl, protoICMP, lenICMP)
	m := b[ipv4HeaderLen:lenICMP]
	m[0], m[1] = ICMPEcho, 0
	binary.BigEndian.PutUint16(m[2:], s.ICMPChecksum(pathID))
	binary.BigEndian.PutUint16(m[4:], s.BaseSrcPort+uint16(pathID))
	binary.BigEndian.PutUint16(m[6:], IPID(s.Tag, ttl))
	binary.BigEndian.PutUint16(m[8:], s.Clock(sent))
	m[10], m[11] = 0, 0
	// As for UDP: with the last word zero the message sums to S; the
	// word 0xffff - S makes the sum 0xffff, a valid checksum.
	binary.BigEndian.PutUint16(m[10:], 0xffff-fold(sum(m, 0)))
	return lenICMP
}
