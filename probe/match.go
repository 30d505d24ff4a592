package probe

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Answer is a matched reply handed from the receive loop to the scheduler.
// It is a value type so that passing it over a channel does not allocate.
type Answer struct {
	Dst      netip.Addr // the probe's destination, as quoted
	Path     uint16
	TTL      uint8
	Type     uint8
	Code     uint8
	From     netip.Addr
	RTT      time.Duration
	Received time.Time
	// Details of the reply, for formats that show them.
	ReplyTTL uint8  // TTL of the ICMP message on arrival
	QTTL     uint8  // TTL of the probe when it reached the replying node
	QTOS     uint8  // TOS of the probe as quoted
	Size     uint16 // bytes of the ICMP message's IP packet
	// Rewrites says how the probe as quoted differs from what was sent.
	Rewrites Rewrite
	// Ext holds the MPLS label stack and interface information of the
	// reply's RFC 4884 extensions; zero when it had none.
	Ext AnswerExt
	// Proto is the protocol of the probe answered.
	Proto Proto
}

// Reached says whether the answer comes from the destination: a port
// unreachable, any unreachable sent by the destination address, or the
// destination's own answer to a TCP or ICMP probe (Type TypeTCP: a SYN-ACK
// or RST; Type ICMPEchoReply: an echo reply). For an IPv6 destination, Type
// and Code are ICMPv6's.
func (a *Answer) Reached() bool {
	if a.Dst.Is6() {
		return reached(a.Type, a.Code, a.From, a.Dst)
	}
	switch a.Type {
	case ICMPUnreachable:
		// A port unreachable means the destination only for UDP: a
		// firewall on the way rejects TCP and ICMP with one too.
		return a.Code == CodePortUnreachable && a.Proto == ProtoUDP || a.From == a.Dst
	case ICMPEchoReply, TypeTCP:
		return a.From.IsValid() && a.From == a.Dst
	}
	return false
}

// Stops says whether no higher TTL of this flow can get further: any
// unreachable message (from the destination or a router), or an answer
// from the destination.
func (a *Answer) Stops() bool { return Unreachable(a.Type, a.Dst.Is6()) || a.Reached() }

// Matcher turns received packets into Answers to a run's probes.
type Matcher struct {
	Spec *Spec
	// Dst, when set, is the run's only destination: every reply that
	// quotes a probe of the run (run tag, ports) answers a probe to it,
	// whatever destination it quotes. A quoted destination other than Dst
	// is then reported as RewriteDst, and the RTT undoes the checksum fix
	// of the NAT that rewrote it. Unset (a run of several destinations),
	// the quoted destination says which destination a reply is for.
	Dst netip.Addr
}

// NewMatcher returns a Matcher for the probes of spec.
func NewMatcher(spec *Spec) *Matcher { return &Matcher{Spec: spec} }

// Match decodes pkt (starting at its IP header: IPv6 when the Spec's source
// is, else IPv4), received at ts, into a.
// It reports false for anything that is not a reply to a probe of this run.
// Beyond the hop, it fills in how the quoted probe was rewritten on its
// way and the reply's MPLS labels and interface information (RFC 4884
// extensions). It does not allocate.
func (m *Matcher) Match(pkt []byte, ts time.Time, r *Reply, a *Answer) bool {
	v6 := m.Spec.Src.Is6()
	if v6 {
		if ParseReply6(pkt, r) != nil {
			return false
		}
	} else if ParseReply(pkt, r) != nil {
		return false
	}
	path, ttl, ok := m.Spec.Match(r)
	if !ok {
		return false
	}
	dst, sent, rw := r.QDst, r.QChecksum, m.Spec.rewrites(r)
	if m.Dst.IsValid() && r.Direct && r.From != m.Dst {
		// A SYN-ACK, RST or echo reply is the destination's own: one
		// from elsewhere is not an answer to our probe, whatever its
		// ports or identifier.
		return false
	}
	if m.Dst.IsValid() && dst != m.Dst {
		// A NAT rewrote the destination. Unless the quote shows that it
		// left the checksum as it was (RewriteChecksum), it fixed it for
		// the new pseudo header, which moved the clock of a UDP probe:
		// undo that.
		if rw&RewriteChecksum == 0 && udpQuote(r) {
			sent = unrewrite(sent, m.Dst, dst)
		}
		dst, rw = m.Dst, rw|RewriteDst
	}
	*a = Answer{
		Dst: dst, Path: uint16(path), TTL: uint8(ttl),
		Type: r.Type, Code: r.Code, From: r.From,
		RTT: m.Spec.RTT(sent, ts), Received: ts,
		ReplyTTL: r.ReplyTTL, QTTL: r.QTTL, QTOS: r.QTOS, Size: ipLen(pkt),
		Rewrites: rw, Proto: m.Spec.Proto,
	}
	if r.Extensions != nil {
		a.Ext.decode(r)
	}
	return true
}

// ipLen is the length of the IP packet pkt as its header gives it (link
// layers pad short frames), or len(pkt) when that is shorter.
func ipLen(pkt []byte) uint16 {
	n := len(pkt)
	switch {
	case n >= 40 && pkt[0]>>4 == 6:
		n = min(n, 40+int(binary.BigEndian.Uint16(pkt[4:])))
	case n >= 20 && pkt[0]>>4 == 4:
		n = min(n, int(binary.BigEndian.Uint16(pkt[2:])))
	}
	return uint16(min(n, 0xffff))
}
