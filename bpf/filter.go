// Package bpf holds traceflow-fast's eBPF socket filter for the receive socket
// and its loader.
//
// The filter (filter.c) runs on an AF_PACKET SOCK_DGRAM socket, where offset 0
// is the IP header. For an IPv4 run (Match.Src IPv4) it keeps an IPv4 packet
// only if it is
//
//   - an ICMP time exceeded (type 11) or destination unreachable (type 3)
//     message whose quoted packet is an IPv4 probe of this run: the run's
//     protocol, source address and run tag, a source port (ICMP: an echo
//     request with an identifier) in the run's range and, for UDP and TCP,
//     the run's destination port;
//   - with TCP probes, a TCP segment to our source address from the
//     destination port to a source port of the range, with ACK and SYN or
//     RST set, acknowledging a sequence number that carries the run tag;
//   - with ICMP probes, an echo reply to our source address with an
//     identifier in the range and the run tag in its sequence number;
//
// (see package probe for the encoding), and then keeps all of it, ICMP
// extensions included. Everything else is dropped in the kernel, before it
// is queued on the socket. The protocol is a load-time constant: the
// verifier prunes the branches of the others.
//
// For an IPv6 run (Match.Src IPv6; UDP probes only) another program of the
// same object keeps an IPv6 packet only if it is an ICMPv6 time exceeded
// (type 3) or destination unreachable (type 1) message, right after the IPv6
// header (a message behind extension headers is dropped), whose quoted
// packet is an IPv6 UDP probe of this run: our source address, a source
// port in the range, the destination port, and the run tag in the first two
// bytes of the UDP payload.
//
// The generated files filter_bpf{el,eb}.{go,o} are committed; regenerate them
// with `go generate ./bpf/` (needs clang and llvm-strip).
package bpf

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Match is what a reply must carry to pass the filter. For a probe.Spec s it
// is
//
//	Match{Proto: s.Proto, Src: s.Src, SrcPortMin: s.BaseSrcPort + 1,
//		SrcPortMax: s.BaseSrcPort + uint16(s.Paths), DstPort: s.DstPort, Tag: s.Tag}
type Match struct {
	Proto probe.Proto // the probes' protocol; the zero value is UDP
	// Src is our source address, as quoted: IPv4, or IPv6 for an IPv6 run
	// (whose Proto must be UDP). An IPv4-mapped address is IPv4.
	Src netip.Addr
	// SrcPortMin..SrcPortMax is the inclusive range of our source ports
	// (ICMP: echo identifiers).
	SrcPortMin, SrcPortMax uint16
	DstPort                uint16 // UDP or TCP destination port; unused for ICMP
	// Tag is the run tag: quoted IP.ID >> probe.TagShift (IPv6: the
	// quoted payload's first word >> probe.TagShift).
	Tag uint16
}

// validate reports the first field of m that the filter cannot match on.
func (m *Match) validate() error {
	switch src := m.Src.Unmap(); {
	case m.Proto > probe.ProtoICMP:
		return fmt.Errorf("invalid Match.Proto %d: want udp, tcp or icmp", m.Proto)
	case !src.Is4() && !src.Is6():
		return fmt.Errorf("invalid Match.Src %v: not an IPv4 or IPv6 address", m.Src)
	case src.IsUnspecified():
		return fmt.Errorf("invalid Match.Src %v: unspecified address", m.Src)
	case src.Zone() != "":
		return fmt.Errorf("invalid Match.Src %v: an address with a zone", m.Src)
	case src.Is6() && m.Proto != probe.ProtoUDP:
		return fmt.Errorf("invalid Match.Proto %v: IPv6 runs probe with udp only", m.Proto)
	case m.SrcPortMin == 0:
		return fmt.Errorf("invalid Match.SrcPortMin 0: ports start at 1")
	case m.SrcPortMax < m.SrcPortMin:
		return fmt.Errorf("invalid Match.SrcPortMax %d: below Match.SrcPortMin %d", m.SrcPortMax, m.SrcPortMin)
	case m.DstPort == 0 && m.Proto.HasPorts():
		return fmt.Errorf("invalid Match.DstPort 0: ports start at 1")
	case m.Tag == 0 || m.Tag > probe.MaxTag:
		return fmt.Errorf("invalid Match.Tag %d: want 1..%d", m.Tag, probe.MaxTag)
	}
	return nil
}

// Filter is a loaded socket filter. It is not safe for concurrent use.
type Filter struct {
	prog *ebpf.Program
}

// Close releases the program. Sockets it is attached to hold their own
// reference and keep filtering, so a Filter may be closed right after Attach.
// Close is idempotent.
func (f *Filter) Close() error {
	if f == nil || f.prog == nil {
		return nil
	}
	err := f.prog.Close()
	f.prog = nil
	if err != nil {
		return fmt.Errorf("bpf: close filter: %w", err)
	}
	return nil
}
