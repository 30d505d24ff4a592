// Package probe builds traceflow-fast's IPv4/UDP probes, decodes the ICMP
// replies they provoke, and schedules which probe to send when.
//
// # Probe encoding
//
// Every probe is a 30-byte IPv4/UDP packet. All of its state survives in the
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
package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Layout of a probe.
const (
	IPv4HeaderLen = 20
	UDPHeaderLen  = 8
	PayloadLen    = 2
	// Len is the length of a whole probe on the wire (without link layer).
	Len = IPv4HeaderLen + UDPHeaderLen + PayloadLen

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
	Src         netip.Addr // IPv4 source address
	BaseSrcPort uint16     // path ID p uses source port BaseSrcPort+p
	DstPort     uint16     // fixed destination port
	Paths       int        // path IDs are 1..Paths
	Tag         uint16     // run tag, 1..MaxTag
	TOS         uint8      // IP TOS byte
	Epoch       time.Time  // zero of the send clock
}

// Validate reports whether the Spec can encode probes.
func (s *Spec) Validate() error {
	switch {
	case !s.Src.Is4():
		return errors.New("probe: source address must be IPv4")
	case s.Tag == 0 || s.Tag > MaxTag:
		return errors.New("probe: run tag out of range 1..1023")
	case s.Paths < 1:
		return errors.New("probe: need at least one path ID")
	case int(s.BaseSrcPort)+s.Paths > 65535:
		return errors.New("probe: source port + path IDs exceed 65535")
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
// recv, assuming the round trip took less than ClockWrap.
func (s *Spec) RTT(sent uint16, recv time.Time) time.Duration {
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
// which must hold at least Len bytes, and returns the number of bytes
// written. It does not allocate.
func (s *Spec) Encode(b []byte, dst netip.Addr, pathID, ttl int, sent time.Time) int {
	_ = b[Len-1]
	ip := b[:IPv4HeaderLen]
	ip[0] = 0x45 // version 4, IHL 5
	ip[1] = s.TOS
	binary.BigEndian.PutUint16(ip[2:], Len)
	binary.BigEndian.PutUint16(ip[4:], IPID(s.Tag, ttl))
	binary.BigEndian.PutUint16(ip[6:], 0) // flags/fragment: none (DF off, like the seed)
	ip[8] = uint8(ttl)
	ip[9] = protoUDP
	ip[10], ip[11] = 0, 0
	src, dst4 := s.Src.As4(), dst.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))

	udp := b[IPv4HeaderLen:Len]
	binary.BigEndian.PutUint16(udp[0:], s.BaseSrcPort+uint16(pathID))
	binary.BigEndian.PutUint16(udp[2:], s.DstPort)
	binary.BigEndian.PutUint16(udp[4:], UDPHeaderLen+PayloadLen)
	want := s.Clock(sent)
	binary.BigEndian.PutUint16(udp[6:], want)
	udp[8], udp[9] = 0, 0
	// The checksum field must make the one's-complement sum of pseudo-header
	// and datagram 0xffff. With the payload word zero, that sum is
	// S = fold(rest + want); a payload word P gives fold(S + P), so
	// P = 0xffff - S (one's-complement subtraction) makes it 0xffff.
	s0 := fold(sum(udp, pseudo(src, dst4, UDPHeaderLen+PayloadLen)))
	binary.BigEndian.PutUint16(udp[8:], 0xffff-s0)
	return Len
}

// pseudo returns the partial sum of the IPv4 pseudo-header of a UDP datagram.
func pseudo(src, dst [4]byte, length int) uint32 {
	return (uint32(src[0])<<8 | uint32(src[1])) + (uint32(src[2])<<8 | uint32(src[3])) +
		(uint32(dst[0])<<8 | uint32(dst[1])) + (uint32(dst[2])<<8 | uint32(dst[3])) +
		protoUDP + uint32(length)
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
