package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

// ICMP extension objects: the RFC 4884 extension structure that
// ParseReply leaves in Reply.Extensions, its objects, the MPLS label stacks
// of RFC 4950 and the interface information of RFC 5837. Everything is
// decoded in place, without allocating.
//
// RFC 4884 section 7, the extension structure:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|      (Reserved)       |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             Length            |   Class-Num   |   C-Type      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Object payload ...                          |
//
// "Length: 16 bits; length of the object, measured in octets, including
// the object header and object payload." Objects follow one another to the
// end of the structure.

// Extension object classes (IANA "ICMP Extension Object Classes").
const (
	extClassMPLS      = 1 // RFC 4950: MPLS label stack
	extClassInterface = 2 // RFC 5837: interface information

	// ExtCTypeMPLSIncoming is the c-type of RFC 4950's "incoming MPLS
	// label stack", the only one defined for ExtClassMPLS.
	extCTypeMPLSIncoming = 1

	// ExtVersion is the version of the extension structure (RFC 4884).
	extVersion = 2
)

// Errors of the extension decoder. They are sentinels: decoding never
// allocates, not even to fail.
var (
	ErrExtShort     = errors.New("probe: ICMP extension structure shorter than its header")
	ErrExtVersion   = errors.New("probe: ICMP extension structure version is not 2")
	ErrExtObject    = errors.New("probe: malformed ICMP extension object")
	ErrExtClass     = errors.New("probe: ICMP extension object of another class")
	ErrExtInterface = errors.New("probe: malformed RFC 5837 interface information")
)

// Extensions iterates over the objects of an ICMP extension structure, in
// the manner of netlink's AttributeDecoder:
//
//	var e probe.Extensions
//	probe.ParseExtensions(r.Extensions, &e)
//	for e.Next() {
//		switch e.Class() {
//		case probe.ExtClassMPLS:
//			labels = e.MPLS(labels)
//		case probe.ExtClassInterface:
//			err := e.Interface(&obj)
//			...
//		}
//	}
//	if err := e.Err(); err != nil { ... }
//
// Objects of unknown classes are yielded too; skipping them is the
// caller's choice. The error is sticky: a malformed header or object ends
// the iteration, and the objects before it have been yielded. The zero
// value has no objects.
type Extensions struct {
	// Version is the version field of the header (ExtVersion once
	// ParseExtensions accepted it).
	Version uint8
	// Checksum is the checksum field of the header.
	Checksum uint16
	// ChecksumOK says whether the checksum, over the whole structure as
	// RFC 4884 section 7 defines it, is right, or is 0: "not computed",
	// which RFC 4884 does not allow but senders do. A wrong checksum does
	// not stop the decoding: it is reported here and the objects are
	// yielded all the same, for the caller to keep or drop. (ParseReply
	// only hands over structures whose checksum is right or 0.)
	ChecksumOK bool

	rest []byte // the objects not yet yielded
	obj  []byte // the current object, header included
	err  error
}

// ParseExtensions resets e to iterate over the objects of b, an ICMP
// extension structure from its header on (Reply.Extensions). An empty b
// (a reply without extensions) yields no object and no error. It returns,
// and e.Err keeps, ErrExtShort or ErrExtVersion if b does not start with a
// version 2 header; a wrong checksum is no error (see ChecksumOK).
func ParseExtensions(b []byte, e *Extensions) error {
	*e = Extensions{}
	switch {
	case len(b) == 0:
		return nil
	case len(b) < 4:
		e.err = ErrExtShort
		return e.err
	}
	e.Version = b[0] >> 4
	e.Checksum = binary.BigEndian.Uint16(b[2:])
	if e.Version != extVersion {
		e.err = ErrExtVersion
		return e.err
	}
	e.ChecksumOK = e.Checksum == 0 || Checksum(b) == 0
	e.rest = b[4:]
	return nil
}

// Next advances to the next object and says whether there is one. It
// returns false at the end of the structure and at the first malformed
// object (Err then says ErrExtObject): an object header cut short, or a
// length below 4 (the object header), not a multiple of 4 (RFC 4884
// section 7: objects are made of 32-bit words) or past the end.
func (e *Extensions) Next() bool {
	e.obj = nil
	if e.err != nil || len(e.rest) == 0 {
		return false
	}
	if len(e.rest) < 4 {
		e.err = ErrExtObject
		return false
	}
	n := int(binary.BigEndian.Uint16(e.rest))
	if n < 4 || n%4 != 0 || n > len(e.rest) {
		e.err = ErrExtObject
		return false
	}
	e.obj, e.rest = e.rest[:n:n], e.rest[n:]
	return true
}

// Err returns the error that stopped the iteration, or nil.
func (e *Extensions) Err() error { return e.err }

// Len returns the length of the current object, its header included.
func (e *Extensions) Len() int { return len(e.obj) }

// Class returns the class-num of the current object.
func (e *Extensions) Class() uint8 {
	if e.obj == nil {
		return 0
	}
	return e.obj[2]
}

// CType returns the c-type of the current object.
func (e *Extensions) CType() uint8 {
	if e.obj == nil {
		return 0
	}
	return e.obj[3]
}

// Payload returns the payload of the current object, after its 4-byte
// header. It aliases the decoded structure.
func (e *Extensions) Payload() []byte {
	if e.obj == nil {
		return nil
	}
	return e.obj[4:]
}

// MPLSLabel is an MPLS label stack entry (RFC 3032 section 2.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Label                  | TC  |S|      TTL      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// It is the entry of an Answer's label stack (AnswerExt) and of a
// result's (analysis.Hop.MPLS).
type MPLSLabel struct {
	Label uint32 // 20 bits
	TC    uint8  // traffic class, formerly EXP (RFC 5462); 3 bits
	S     bool   // bottom of stack
	TTL   uint8
}

// MPLS appends to dst the label stack entries of the current object if it
// is an RFC 4950 incoming MPLS label stack (class 1, c-type 1), top of the
// stack first, and returns the extended slice; for any other object it
// returns dst unchanged. It allocates only when dst is out of capacity:
// e.MPLS(buf[:0]) with a fixed-size buf does not.
func (e *Extensions) MPLS(dst []MPLSLabel) []MPLSLabel {
	if e.Class() != extClassMPLS || e.CType() != extCTypeMPLSIncoming {
		return dst
	}
	// RFC 4950 section 7: "one or more MPLS Label Stack Entries"; Next has
	// checked that the payload is a whole number of 4-byte entries.
	for p := e.obj[4:]; len(p) >= 4; p = p[4:] {
		v := binary.BigEndian.Uint32(p)
		dst = append(dst, MPLSLabel{
			Label: v >> 12,
			TC:    uint8(v>>9) & 7,
			S:     v>>8&1 == 1,
			TTL:   uint8(v),
		})
	}
	return dst
}

// IfRole is the interface role of RFC 5837 interface information: which
// interface of the replying node the object describes.
type IfRole uint8

// Interface roles (RFC 5837 section 4.1), the two high bits of the c-type.
const (
	IfIncoming IfRole = 0 // the interface on which the datagram arrived
	IfSubIP    IfRole = 1 // the sub-IP component of that interface
	IfOutgoing IfRole = 2 // the interface the datagram would have left by
	IfNextHop  IfRole = 3 // the IP next hop it would have been sent to
)

var ifRoleNames = [...]string{"incoming", "sub-ip", "outgoing", "next-hop"}

// String returns "incoming", "sub-ip", "outgoing" or "next-hop" (the names
// the JSON output uses), "role N" for any other value.
func (r IfRole) String() string {
	if int(r) < len(ifRoleNames) {
		return ifRoleNames[r]
	}
	return "role " + strconv.Itoa(int(r))
}

// IfNameMax is the most bytes of an interface name an IfObject keeps: 16,
// Linux's IFNAMSIZ. RFC 5837 allows 63.
const IfNameMax = 16

// IfObject is an RFC 5837 interface information object as decoded, in a
// fixed size: Extensions.Interface fills it without allocating, and an
// Answer carries it (AnswerExt) across a channel by value. A sub-object
// the object does not carry is zero (Addr invalid, NameLen 0); Has says
// which it carries. Info turns it into the InterfaceInfo a result keeps.
type IfObject struct {
	Role    IfRole
	Has     uint8 // IfHasIfindex, IfHasAddr, IfHasName, IfHasMTU; IfNameCut
	NameLen uint8 // length of the name in Name
	Name    [IfNameMax]byte
	Ifindex uint32
	MTU     uint32
	Addr    netip.Addr // IPv4 or IPv6
}

// Bits of IfObject.Has: the sub-objects decoded, as the low four bits of
// the RFC 5837 c-type announce them, and whether the name was cut.
const (
	IfHasMTU     = ifCTypeMTU
	IfHasName    = ifCTypeName // possibly an empty name
	IfHasAddr    = ifCTypeAddr
	IfHasIfindex = ifCTypeIfindex
	// IfNameCut: the name was longer than IfNameMax bytes; Name holds
	// its start, cut at a UTF-8 character boundary.
	IfNameCut = 0x10
)

// NameBytes returns the interface name; it aliases o.Name.
func (o *IfObject) NameBytes() []byte { return o.Name[:min(int(o.NameLen), IfNameMax)] }

// InterfaceInfo is an RFC 5837 interface information object as a result
// holds it (analysis.Hop.Interfaces). Each field is optional in the
// object; an absent one is zero, and so is a present one of value zero.
type InterfaceInfo struct {
	Role    IfRole
	Ifindex uint32     // the replying node's ifIndex of the interface
	Addr    netip.Addr // an address of the interface; invalid when absent
	Name    string     // its name (at most IfNameMax bytes)
	MTU     uint32
}

// Info returns o as a result keeps it.
func (o *IfObject) Info() InterfaceInfo {
	return InterfaceInfo{Role: o.Role, Ifindex: o.Ifindex, Addr: o.Addr, Name: string(o.NameBytes()), MTU: o.MTU}
}

// C-type bits of an interface information object (RFC 5837 section 4.1:
// bits 0-1 interface role, 2-3 reserved, then one bit per sub-object).
const (
	ifCTypeIfindex = 0x08
	ifCTypeAddr    = 0x04
	ifCTypeName    = 0x02
	ifCTypeMTU     = 0x01
)

// Address family numbers (IANA) of the IP address sub-object.
const (
	afiIPv4 = 1
	afiIPv6 = 2
)

// Interface decodes the current object, which must be an RFC 5837
// interface information object (class 2; else ErrExtClass), into o.
// The sub-objects its c-type announces follow in this order:
//
//	ifIndex     4 octets
//	IP address  AFI (2 octets), reserved (2), the address (4 or 16)
//	name        a length octet counting itself, a multiple of 4 up to 64,
//	            then the name, padded with NULs
//	MTU         4 octets
//
// A name longer than IfNameMax bytes is cut (IfNameCut). It returns
// ErrExtInterface if a sub-object is cut short by the object's end, an
// address family is neither IPv4 (1) nor IPv6 (2), or a name length is not
// a multiple of 4 in 4..64; o then holds the sub-objects before the faulty
// one. Octets after the announced sub-objects are ignored. A malformed
// object does not stop the iteration: its length still says where the
// next one starts.
func (e *Extensions) Interface(o *IfObject) error {
	*o = IfObject{}
	if e.Class() != extClassInterface {
		return ErrExtClass
	}
	ct := e.obj[3]
	o.Role = IfRole(ct >> 6)
	p := e.obj[4:]
	if ct&ifCTypeIfindex != 0 {
		if len(p) < 4 {
			return ErrExtInterface
		}
		o.Ifindex, o.Has = binary.BigEndian.Uint32(p), o.Has|IfHasIfindex
		p = p[4:]
	}
	if ct&ifCTypeAddr != 0 {
		if len(p) < 4 {
			return ErrExtInterface
		}
		afi := binary.BigEndian.Uint16(p)
		p = p[4:]
		switch {
		case afi == afiIPv4 && len(p) >= 4:
			o.Addr = netip.AddrFrom4([4]byte(p))
			p = p[4:]
		case afi == afiIPv6 && len(p) >= 16:
			o.Addr = netip.AddrFrom16([16]byte(p))
			p = p[16:]
		default:
			return ErrExtInterface
		}
		o.Has |= IfHasAddr
	}
	if ct&ifCTypeName != 0 {
		n, ok := o.setName(p)
		if !ok {
			return ErrExtInterface
		}
		p = p[n:]
	}
	if ct&ifCTypeMTU != 0 {
		if len(p) < 4 {
			return ErrExtInterface
		}
		o.MTU, o.Has = binary.BigEndian.Uint32(p), o.Has|IfHasMTU
	}
	return nil
}

// setName decodes the name sub-object at the start of p into o, and
// returns its length; false if it is malformed. RFC 5837 section 4.3:
// "The length of the interface name sub-object, including the length
// octet ... MUST be a multiple of 4 octets and MUST NOT exceed 64
// octets." The NUL padding is removed; a name longer than IfNameMax bytes
// keeps its start, cut at a UTF-8 character boundary (the name is not
// checked to be UTF-8).
func (o *IfObject) setName(p []byte) (int, bool) {
	if len(p) == 0 {
		return 0, false
	}
	n := int(p[0])
	if n < 4 || n > 64 || n%4 != 0 || n > len(p) {
		return 0, false
	}
	name := p[1:n]
	for len(name) > 0 && name[len(name)-1] == 0 {
		name = name[:len(name)-1]
	}
	o.Has |= IfHasName
	if len(name) > IfNameMax {
		k := IfNameMax
		for k > 0 && !utf8.RuneStart(name[k]) {
			k--
		}
		name = name[:k]
		o.Has |= IfNameCut
	}
	o.NameLen = uint8(copy(o.Name[:], name))
	return n, true
}
