package probe

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// What an Answer keeps of a reply beyond its hop: how the probe changed on
// its way (Rewrite), and the MPLS label stack and interface information of
// the reply's RFC 4884 extensions (AnswerExt). Both are fixed-size values,
// filled by Matcher.Match without allocating, so that an Answer still
// crosses a channel by value. They are the types a result keeps too
// (analysis.Hop), AnswerExt in slices (AnswerExt.Slices).

// Rewrite is a set of the changes a middlebox made to a probe, as the
// quote in the reply shows them (Answer.Rewrites, and a hop's in a
// result).
//
// Only what survives the receive filter can be seen: a quote whose source
// address, IP.ID (run tag and TTL), source port (outside the run's range)
// or destination port were rewritten is dropped in the kernel, and never
// becomes an Answer.
type Rewrite uint8

const (
	// RewriteTOS: the quoted TOS byte is not the one sent (--tos): a
	// DSCP rewrite, or an ECN mark.
	RewriteTOS Rewrite = 1 << iota
	// RewriteLength: the quoted IP total length or UDP length is not the
	// probe's (Len, UDPHeaderLen+PayloadLen), e.g. IP options added on
	// the way, or a stack that quotes the length in host byte order.
	RewriteLength
	// RewriteDst: the quoted destination is not the one probed (a
	// destination NAT that does not translate ICMP errors back). It can
	// only be seen when the Matcher knows the destination (Matcher.Dst):
	// in a run of several destinations the quoted destination is the key
	// of the reply, so a rewritten one cannot be told from a reply for
	// another destination, and is counted as late.
	RewriteDst
	// RewriteChecksum: the quote holds the whole UDP datagram and its
	// checksum is no longer valid: something changed it (or its pseudo
	// header) without fixing the checksum. A rewrite that fixes the
	// checksum cannot be seen this way, since the checksum carries a clock
	// (see the package documentation) rather than a known value.
	RewriteChecksum
)

var rewriteNames = [...]string{"tos", "length", "dst", "checksum"}

// Names returns the names of the rewrites in r ("tos", "length", "dst",
// "checksum"), in that order.
func (r Rewrite) Names() []string {
	var out []string
	for i, n := range rewriteNames {
		if r&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Sizes of what an Answer keeps of a reply's extensions: a label stack
// deeper than AnswerLabels, more interface objects than AnswerInterfaces or
// a name longer than IfNameMax bytes are cut, and the answer marked
// ExtTruncated. Four labels cover the stacks seen in practice (transport,
// service, entropy label and its indicator); RFC 5837 defines one object
// per interface role, and routers send the incoming interface, sometimes
// the outgoing one too.
const (
	answerLabels     = 4
	answerInterfaces = 2
)

// ExtFlag qualifies the extensions of a reply (AnswerExt.Flags, and a
// hop's in a result).
type ExtFlag uint8

const (
	// ExtRFC4884: the reply had an RFC 4884 length attribute; without it
	// its extensions were found after 128 octets of quote (a
	// non-compliant sender, as RFC 4884 section 5 allows for).
	ExtRFC4884 ExtFlag = 1 << iota
	// ExtTruncated: the reply carried more than an AnswerExt holds.
	ExtTruncated
)

// AnswerExt is what a reply's RFC 4884 extensions said, in fixed arrays:
// the MPLS label stack of RFC 4950 objects (top first) and the RFC 5837
// interface information objects, in the order of the reply. The zero value
// is a reply without them. Slices returns them as a result keeps them.
type AnswerExt struct {
	Labels  [answerLabels]MPLSLabel
	NLabels uint8
	NIfs    uint8
	Flags   ExtFlag
	Ifs     [answerInterfaces]IfObject
}

// Empty says whether the reply carried no MPLS label and no interface
// information.
func (x *AnswerExt) Empty() bool { return x.NLabels == 0 && x.NIfs == 0 }

// Slices returns the label stack and the interface information of x in
// slices of their own, as a result (analysis.Hop) keeps them; each nil
// when x has none.
func (x *AnswerExt) Slices() (mpls []MPLSLabel, ifs []InterfaceInfo) {
	if n := min(int(x.NLabels), len(x.Labels)); n > 0 {
		mpls = slices.Clone(x.Labels[:n])
	}
	for i := range x.Ifs[:min(int(x.NIfs), len(x.Ifs))] {
		ifs = append(ifs, x.Ifs[i].Info())
	}
	return mpls, ifs
}

// decode fills x from r's extension structure. Malformed objects are
// skipped (what came before them is kept), objects of other classes
// ignored.
func (x *AnswerExt) decode(r *Reply) {
	*x = AnswerExt{}
	if r.Length != 0 && len(r.Quote) == r.Length {
		x.Flags |= ExtRFC4884
	}
	var e Extensions
	ParseExtensions(r.Extensions, &e)
	for e.Next() {
		switch e.Class() {
		case extClassMPLS:
			if e.CType() == extCTypeMPLSIncoming {
				x.addLabels(&e)
			}
		case extClassInterface:
			x.addInterface(&e)
		}
	}
}

// addLabels adds the label stack of e's current object to x, the top
// entries only when the arrays are full.
func (x *AnswerExt) addLabels(e *Extensions) {
	n := int(x.NLabels)
	if len(e.Payload())/4 <= len(x.Labels)-n {
		// Within the array's capacity: no allocation.
		x.NLabels += uint8(len(e.MPLS(x.Labels[n:n])))
		return
	}
	// A deeper stack than the array holds: the top entries.
	x.Flags |= ExtTruncated
	for p := e.Payload(); len(p) >= 4 && int(x.NLabels) < len(x.Labels); p = p[4:] {
		v := binary.BigEndian.Uint32(p)
		x.Labels[x.NLabels] = MPLSLabel{Label: v >> 12, TC: uint8(v>>9) & 7, S: v>>8&1 == 1, TTL: uint8(v)}
		x.NLabels++
	}
}

// addInterface adds the interface information of e's current object to x
// unless it is malformed; one past the array's capacity marks x truncated.
func (x *AnswerExt) addInterface(e *Extensions) {
	if int(x.NIfs) == len(x.Ifs) {
		var o IfObject
		if e.Interface(&o) == nil {
			x.Flags |= ExtTruncated
		}
		return
	}
	o := &x.Ifs[x.NIfs]
	if e.Interface(o) != nil {
		*o = IfObject{}
		return
	}
	if o.Has&IfNameCut != 0 {
		x.Flags |= ExtTruncated
	}
	x.NIfs++
}

// udpQuote says whether r quotes a UDP probe (IPv4 or IPv6).
func udpQuote(r *Reply) bool {
	if len(r.Quote) >= ipv6HeaderLen && r.Quote[0]>>4 == 6 {
		return r.Quote[6] == protoUDP
	}
	return len(r.Quote) >= ipv4HeaderLen && r.Quote[9] == protoUDP
}

// rewrites returns how the probe quoted in r differs from what the spec
// sends, the destination apart (see Matcher.Match). A reply that quotes
// nothing shows nothing; the lengths and the checksum are those of a UDP
// probe, checked in UDP quotes only.
func (s *Spec) rewrites(r *Reply) Rewrite {
	if r.QSrc.Is6() {
		return s.rewrites6(r)
	}
	if len(r.Quote) < ipv4HeaderLen {
		return 0
	}
	var rw Rewrite
	if r.QTOS != s.TOS {
		rw |= RewriteTOS
	}
	if !udpQuote(r) {
		return rw
	}
	if r.QTotalLen != Len || r.QUDPLen != udpHeaderLen+payloadLen {
		rw |= RewriteLength
	}
	// The whole datagram is quoted (Linux routers quote all 30 bytes; RFC
	// 792 requires 8 of UDP): its checksum must hold over the pseudo
	// header of the quoted addresses.
	qihl := int(r.Quote[0]&0x0f) * 4
	if u := r.Quote[qihl:]; r.QUDPLen == udpHeaderLen+payloadLen && len(u) >= udpHeaderLen+payloadLen {
		if fold(sum(u[:udpHeaderLen+payloadLen], pseudo(r.QSrc.As4(), r.QDst.As4(), udpHeaderLen+payloadLen))) != 0xffff {
			rw |= RewriteChecksum
		}
	}
	return rw
}

// unrewrite returns the UDP checksum a probe to dst had when sent, given
// the checksum quoted after a NAT changed its destination to qdst and
// fixed the checksum, as it must (RFC 1624 equation 3, HC' = ~(~HC + ~m +
// m'), solved for HC: HC = ~(~HC' + m + ~m')). dst and qdst are of one
// family, IPv4 or IPv6.
func unrewrite(quoted uint16, dst, qdst netip.Addr) uint16 {
	if dst.Is4() {
		m, m2 := dst.As4(), qdst.As4()
		return unrewriteWords(quoted, m[:], m2[:])
	}
	m, m2 := dst.As16(), qdst.As16()
	return unrewriteWords(quoted, m[:], m2[:])
}

// unrewriteWords is unrewrite over the address bytes m (sent) and m2
// (quoted), of the same even length.
func unrewriteWords(quoted uint16, m, m2 []byte) uint16 {
	acc := uint32(^quoted)
	for i := 0; i+1 < len(m); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(m[i:])) + uint32(^binary.BigEndian.Uint16(m2[i:]))
	}
	return ^fold(acc)
}
