// Package probe is traceflow-fast's wire: the bytes of its probes and of the
// replies they provoke.
//
//   - Probe encoding: a Spec (what every probe of a run shares) encodes the
//     probe of a path ID and a TTL over IPv4 (UDP, TCP SYN or ICMP echo) or
//     IPv6 (UDP), in place, without allocating.
//   - Reply parsing and matching: ParseReply and ParseReply6 decode an ICMP
//     error, an echo reply or a TCP answer in place; a Matcher tells whether
//     it answers a probe of this run and which one, as an Answer.
//   - Reply extensions: the RFC 4884 extension objects of an ICMP error
//     (Extensions: MPLS label stacks, RFC 5837 interface information), and
//     what an Answer keeps of them (AnswerExt) and of the changes a
//     middlebox made to the probe (Rewrite).
//   - Sending: a Sender and a SendPool write whole IP packets to a route's
//     next hop through AF_PACKET sockets (Linux only; the route itself comes
//     from package route).
//   - The run tag: ReserveTag picks a tag that no other run on this host
//     holds, so that concurrent runs never take each other's replies.
//
// For now it also holds the scheduler (Sched, Scanner) that decides which
// probe to send when.
//
// On systems other than Linux everything but sending and the run tag works;
// those return an error that matches errors.Is(err, errors.ErrUnsupported).
//
// # Probe encoding
//
// A UDP probe is a 30-byte IPv4/UDP packet. All of its state survives in the
// 28 bytes that every router quotes back in an ICMP error (RFC 792: "Internet
// Header + 64 bits of Original Data Datagram"):
//
//	IP.TOS       fixed for the run (--tos)
//	IP.ID        bits 15..6: run tag (10 bits, 1..1023, chosen per run)
//	             bits  5..0: TTL-1 (so TTL 1..64)
//	IP.TTL       the probe's TTL
//	IP.dst       the destination
//	UDP.sport    --srcport + path ID (path ID 1..N): fixed for one path ID
//	UDP.dport    --dstport: fixed for the run
//	UDP.length   10 (8 header + 2 payload bytes)
//	UDP.checksum the send time: 1 + (elapsed/100µs mod 65535), made a valid
//	             checksum by the two payload bytes
//
// The 5-tuple (source, destination, protocol, ports) and the TOS are the same
// for every TTL of one path ID, so a per-flow load balancer sends all of them
// the same way; from one path ID to the next only the source port changes.
// A reply's quoted header alone gives back the path ID (sport - base), the TTL
// (IP.ID & 63 + 1), the run (IP.ID >> 6) and the round-trip time (receive
// time minus the send time in the checksum, modulo 6.5535 s).
//
// A TCP probe (40 bytes) is a SYN with the same IP header and ports; the
// sequence number carries the send clock (high half) and the IP.ID's run tag
// and TTL (low half), so that a router's quote of 8 bytes holds the clock,
// and the destination's SYN-ACK or RST, which acknowledges the sequence
// number plus one and quotes nothing, still says which probe it answers.
//
// An ICMP probe (32 bytes) is an echo request with the same IP header: the
// identifier (--srcport + path ID) and the checksum (ICMPChecksum) are fixed
// per path ID, the sequence number is the IP.ID (run tag and TTL), and the
// payload holds the send clock and a word that keeps the checksum fixed. The
// destination's echo reply echoes identifier, sequence number and payload.
//
// A run is IPv4 or IPv6, as its source address is. An IPv6 probe (52
// bytes, UDP only) carries the run tag and TTL in the first two bytes of its
// UDP payload instead of the IP.ID, which IPv6 lacks, and a flow label fixed
// per path ID (see probe6.go and ParseReply6).
package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Layout of a probe.
const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	payloadLen    = 2
	// Len is the length of a whole UDP probe on the wire (without link
	// layer); see also LenTCP, LenICMP and MaxLen.
	Len = ipv4HeaderLen + udpHeaderLen + payloadLen

	// TagShift is where the run tag starts in the IP.ID.
	TagShift = 6
	ttlBits  = TagShift
	ttlMask  = 1<<ttlBits - 1
	// MaxTTL is the largest TTL the IP.ID can carry.
	MaxTTL = 1 << ttlBits
	// MaxTag is the largest run tag; tags are 1..MaxTag.
	MaxTag = 1<<(16-ttlBits) - 1

	// ClockUnit is the resolution of the send time carried in the checksum.
	ClockUnit = 100 * time.Microsecond
	// clockWrap is the number of distinct clock values (the checksum 0 means
	// "no checksum" in UDP over IPv4, so the clock runs 1..65535).
	clockWrap = 65535
	// ClockWrap is the time after which the send clock repeats; a reply later
	// than this after its probe gets an RTT that is short by a multiple of it.
	ClockWrap = clockWrap * ClockUnit

	protoUDP = 17
)

// Spec is what every probe of one run shares.
type Spec struct {
	Src         netip.Addr // source address: IPv4, or IPv6 for an IPv6 run (UDP only)
	BaseSrcPort uint16     // path ID p uses source port (ICMP: identifier) BaseSrcPort+p
	DstPort     uint16     // fixed destination port (UDP, TCP)
	Paths       int        // path IDs are 1..Paths
	Proto       Proto      // probe protocol (zero: UDP)
	Tag         uint16     // run tag, 1..MaxTag
	TOS         uint8      // IP TOS byte (IPv6: traffic class)
	Epoch       time.Time  // zero of the send clock
}

// Validate reports whether the Spec can encode probes.
func (s *Spec) Validate() error {
	switch {
	case s.Proto > ProtoICMP:
		return errors.New("probe: unknown protocol")
	case !s.Src.Is4() && !s.Src.Is6() || s.Src.Is4In6():
		return errors.New("probe: source address must be IPv4 or IPv6 (not IPv4-mapped)")
	case s.Src.Zone() != "":
		return errors.New("probe: source address must have no zone")
	case s.Src.Is6() && s.Proto != ProtoUDP:
		return errors.New("probe: IPv6 probes are UDP only")
	case s.Tag == 0 || s.Tag > MaxTag:
		return errors.New("probe: run tag out of range 1..1023")
	case s.Paths < 1:
		return errors.New("probe: need at least one path ID")
	case int(s.BaseSrcPort)+s.Paths > 65535:
		return errors.New("probe: source port (ICMP identifier) + path IDs exceed 65535")
	}
	return nil
}

// IPID returns the IP.ID of a probe with the given run tag and TTL (1..64).
func IPID(tag uint16, ttl int) uint16 {
	return tag<<ttlBits | uint16(ttl-1)&ttlMask
}

// SplitIPID is the inverse of IPID.
func SplitIPID(id uint16) (tag uint16, ttl int) {
	return id >> ttlBits, int(id&ttlMask) + 1
}

// Clock returns the 16-bit send-clock value (1..65535) for time t.
func (s *Spec) Clock(t time.Time) uint16 {
	u := t.Sub(s.Epoch) / ClockUnit
	if u < 0 {
		u = 0
	}
	return uint16(1 + int64(u)%clockWrap)
}

// RTT returns the time from the send clock value sent to the receive time
// recv, assuming the round trip took less than ClockWrap. The clock value 0
// (never sent) stands for an unknown send time: RTT returns 0.
func (s *Spec) RTT(sent uint16, recv time.Time) time.Duration {
	if sent == 0 {
		return 0
	}
	now := int64(s.Clock(recv))
	d := (now - int64(sent)) % clockWrap
	if d < 0 {
		d += clockWrap
	}
	// Add the part of a unit that Clock truncated, so that an RTT below one
	// unit is not reported as zero.
	frac := recv.Sub(s.Epoch) % ClockUnit
	if frac < 0 {
		frac = 0
	}
	return time.Duration(d)*ClockUnit + frac
}

// Encode writes the probe for (dst, pathID, ttl), sent at time sent, into b,
// which must hold at least s.ProbeLen() bytes (MaxProbeLen for any probe), and
// returns the number of bytes written, s.ProbeLen(). It does not allocate.
// An IPv6 run's dst must be IPv6.
func (s *Spec) Encode(b []byte, dst netip.Addr, pathID, ttl int, sent time.Time) int {
	if s.Src.Is6() {
		return s.encode6(b, dst, pathID, ttl, sent)
	}
	switch s.Proto {
	case ProtoTCP:
		return s.encodeTCP(b, dst, pathID, ttl, sent)
	case ProtoICMP:
		return s.encodeICMP(b, dst, pathID, ttl, sent)
	}
	_ = b[Len-1]
	dst4 := dst.As4()
	s.ipHeader(b, dst4, ttl, protoUDP, Len)

	udp := b[ipv4HeaderLen:Len]
	binary.BigEndian.PutUint16(udp[0:], s.BaseSrcPort+uint16(pathID))
	binary.BigEndian.PutUint16(udp[2:], s.DstPort)
	binary.BigEndian.PutUint16(udp[4:], udpHeaderLen+payloadLen)
	want := s.Clock(sent)
	binary.BigEndian.PutUint16(udp[6:], want)
	udp[8], udp[9] = 0, 0
	// The checksum field must make the one's-complement sum of pseudo-header
	// and datagram 0xffff. With the payload word zero, that sum is
	// S = fold(rest + want); a payload word P gives fold(S + P), so
	// P = 0xffff - S (one's-complement subtraction) makes it 0xffff.
	s0 := fold(sum(udp, pseudo(s.Src.As4(), dst4, udpHeaderLen+payloadLen)))
	binary.BigEndian.PutUint16(udp[8:], 0xffff-s0)
	return Len
}

// pseudo returns the partial sum of the IPv4 pseudo-header of a UDP datagram.
func pseudo(src, dst [4]byte, length int) uint32 {
	return pseudoProto(src, dst, protoUDP, length)
}

// pseudoProto returns the partial sum of the IPv4 pseudo-header of a
// datagram or segment of protocol proto (UDP, TCP) and the given length.
func pseudoProto(src, dst [4]byte, proto uint8, length int) uint32 {
	return (uint32(src[0])<<8 | uint32(src[1])) + (uint32(src[2])<<8 | uint32(src[3])) +
		(uint32(dst[0])<<8 | uint32(dst[1])) + (uint32(dst[2])<<8 | uint32(dst[3])) +
		uint32(proto) + uint32(length)
}

// sum adds b as big-endian 16-bit words to acc.
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// fold folds a 32-bit partial sum into 16 bits with end-around carry.
func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// Checksum returns the Internet checksum (RFC 1071) of b.
func Checksum(b []byte) uint16 { return ^fold(sum(b, 0)) }
