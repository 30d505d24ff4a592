package probe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// extItem is one decoded extension object: its header and, for MPLS label
// stacks and interface information, what it holds.
type extItem struct {
	class, ctype uint8
	len          int // object length; 0 when the oracle does not say
	labels       []MPLSLabel
	ifi          *IfObject
	ifErr        error
}

func (it extItem) String() string {
	s := fmt.Sprintf("{class %d c-type %#x len %d", it.class, it.ctype, it.len)
	if it.labels != nil {
		s += fmt.Sprintf(" labels %+v", it.labels)
	}
	if it.ifi != nil {
		s += " " + ifString(it.ifi)
	}
	if it.ifErr != nil {
		s += " error " + it.ifErr.Error()
	}
	return s + "}"
}

func ifString(i *IfObject) string {
	return fmt.Sprintf("[%v has %#x ifindex %d addr %v name %q mtu %d]", i.Role, i.Has, i.Ifindex, i.Addr, i.NameBytes(), i.MTU)
}

// setName sets the name o has once decoded from name: the longest run of
// whole UTF-8 characters of name within IfNameMax bytes, IfNameCut when
// that is not all of it.
func setName(o *IfObject, name string) {
	n := 0
	for n < len(name) {
		_, size := utf8.DecodeRuneInString(name[n:])
		if n+size > IfNameMax {
			o.Has |= IfNameCut
			break
		}
		n += size
	}
	o.Has |= IfHasName
	o.NameLen = uint8(copy(o.Name[:], name[:n]))
}

// equal says whether it (decoded by us) matches want (from an oracle).
func (it extItem) equal(want extItem) bool {
	if it.class != want.class || it.ctype != want.ctype || (want.len != 0 && it.len != want.len) ||
		!slices.Equal(it.labels, want.labels) || (it.labels == nil) != (want.labels == nil) ||
		!errors.Is(it.ifErr, want.ifErr) || (it.ifi == nil) != (want.ifi == nil) {
		return false
	}
	return it.ifi == nil || *it.ifi == *want.ifi
}

// extDecoded is what our decoder makes of an extension structure.
type extDecoded struct {
	items      []extItem
	err        error
	checksumOK bool
}

// decodeExt decodes an extension structure with the API a caller uses.
func decodeExt(b []byte) extDecoded {
	var e Extensions
	err := ParseExtensions(b, &e)
	d := extDecoded{checksumOK: e.ChecksumOK}
	for e.Next() {
		it := extItem{class: e.Class(), ctype: e.CType(), len: e.Len()}
		if e.Len() != 4+len(e.Payload()) {
			panic("length and payload disagree")
		}
		if it.class == extClassMPLS && it.ctype == extCTypeMPLSIncoming {
			it.labels = e.MPLS([]MPLSLabel{})
		} else if l := e.MPLS(nil); l != nil {
			panic("labels from another object")
		}
		var info IfObject
		if err := e.Interface(&info); it.class == extClassInterface {
			it.ifi, it.ifErr = &info, err
			if err != nil {
				it.ifi = nil
			}
		} else if err != ErrExtClass {
			panic("interface information from another class")
		}
		d.items = append(d.items, it)
	}
	if e.Next() || e.Err() != err && err != nil {
		panic("the iterator restarted or forgot its error")
	}
	d.err = e.Err()
	return d
}

func itemsString(items []extItem) string {
	var s []string
	for _, it := range items {
		s = append(s, it.String())
	}
	return strings.Join(s, "\n\t")
}

// checkItems compares what we decoded with what an oracle says.
func checkItems(t *testing.T, name string, got extDecoded, want []extItem) {
	t.Helper()
	ok := got.err == nil && len(got.items) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got.items[i].equal(want[i])
	}
	if !ok {
		t.Errorf("%s: decoded (err %v)\n\t%s\nwant\n\t%s", name, got.err, itemsString(got.items), itemsString(want))
	}
}

// xnetItems is what x/net/icmp parsed, in our terms.
func xnetItems(xs []icmp.Extension) []extItem {
	var items []extItem
	for _, x := range xs {
		switch x := x.(type) {
		case *icmp.MPLSLabelStack:
			it := extItem{class: uint8(x.Class), ctype: uint8(x.Type), len: 4 + 4*len(x.Labels)}
			if x.Type == extCTypeMPLSIncoming {
				it.labels = []MPLSLabel{}
				for _, l := range x.Labels {
					it.labels = append(it.labels, MPLSLabel{uint32(l.Label), uint8(l.TC), l.S, uint8(l.TTL)})
				}
			}
			items = append(items, it)
		case *icmp.InterfaceInfo:
			info := &IfObject{Role: IfRole(x.Type >> 6)}
			if i := x.Interface; i != nil {
				if x.Type&ifCTypeIfindex != 0 {
					info.Has, info.Ifindex = info.Has|IfHasIfindex, uint32(i.Index)
				}
				if x.Type&ifCTypeName != 0 {
					setName(info, i.Name)
				}
				if x.Type&ifCTypeMTU != 0 {
					info.Has, info.MTU = info.Has|IfHasMTU, uint32(i.MTU)
				}
			}
			if x.Addr != nil && x.Type&ifCTypeAddr != 0 {
				info.Addr, _ = netip.AddrFromSlice(x.Addr.IP)
				info.Has |= IfHasAddr
			}
			items = append(items, extItem{class: uint8(x.Class), ctype: uint8(x.Type), ifi: info})
		case *icmp.RawExtension:
			items = append(items, extItem{class: x.Data[2], ctype: x.Data[3], len: len(x.Data)})
		case *icmp.InterfaceIdent:
			items = append(items, extItem{class: uint8(x.Class), ctype: uint8(x.Type)})
		default:
			items = append(items, extItem{class: 0xff, ctype: 0xff, len: -1}) // never equal
		}
	}
	return items
}

// extQuote returns a probe as a router quotes it, extended to n bytes.
func extQuote(n int) []byte {
	s := codecSpec()
	q := testQuote(s, codecDst, 3, 5, s.Epoch.Add(time.Second), 1)
	if n <= len(q) {
		return q[:n]
	}
	return append(q, bytes.Repeat([]byte{0xa5}, n-len(q))...)
}

// extTest is an ICMP message with extensions and the objects it holds.
type extTest struct {
	name string
	pkt  []byte // an IPv4 packet for ParseReply
	want []extItem
}

// xnetIf returns an x/net interface information object of role r and the
// item it decodes to. x/net writes an ifIndex only if it is not 0, a name
// and an MTU only with an ifIndex, and an IPv6 address only in ICMPv6: such
// an object is marshaled for ICMPv6 and carried as a raw object.
func xnetIf(r IfRole, index uint32, name string, mtu uint32, addr netip.Addr) (icmp.Extension, extItem) {
	x := &icmp.InterfaceInfo{Class: extClassInterface}
	info := &IfObject{Role: r}
	ct := int(r) << 6
	if index > 0 {
		x.Interface = &net.Interface{Index: int(index), Name: name, MTU: int(mtu)}
		info.Has, info.Ifindex = info.Has|IfHasIfindex, index
		ct |= ifCTypeIfindex
		if name != "" {
			setName(info, name)
			ct |= ifCTypeName
		}
		if mtu > 0 {
			info.Has, info.MTU = info.Has|IfHasMTU, mtu
			ct |= ifCTypeMTU
		}
	}
	if addr.IsValid() {
		x.Addr = &net.IPAddr{IP: addr.AsSlice()}
		info.Has, info.Addr = info.Has|IfHasAddr, addr
		ct |= ifCTypeAddr
	}
	x.Type = ct
	it := extItem{class: extClassInterface, ctype: uint8(ct), ifi: info}
	if addr.Is6() {
		b, err := x.Marshal(58)
		if err != nil {
			panic(err)
		}
		return &icmp.RawExtension{Data: b}, it
	}
	return x, it
}

func xnetMPLS(labels []MPLSLabel) (icmp.Extension, extItem) {
	x := &icmp.MPLSLabelStack{Class: extClassMPLS, Type: extCTypeMPLSIncoming}
	for _, l := range labels {
		x.Labels = append(x.Labels, icmp.MPLSLabel{Label: int(l.Label), TC: int(l.TC), S: l.S, TTL: int(l.TTL)})
	}
	return x, extItem{class: extClassMPLS, ctype: extCTypeMPLSIncoming, len: 4 + 4*len(labels), labels: labels}
}

func xnetRaw(class, ctype uint8, payload []byte) (icmp.Extension, extItem) {
	b := binary.BigEndian.AppendUint16(nil, uint16(4+len(payload)))
	b = append(append(b, class, ctype), payload...)
	return &icmp.RawExtension{Data: b}, extItem{class: class, ctype: ctype, len: len(b)}
}

// testLabels returns n random label stack entries, the last one the bottom
// of the stack, with the extremes of every field among them.
func testLabels(rng *rand.Rand, n int) []MPLSLabel {
	ls := make([]MPLSLabel, n)
	for i := range ls {
		ls[i] = MPLSLabel{Label: rng.Uint32N(1 << 20), TC: uint8(rng.IntN(8)), TTL: uint8(rng.Uint32())}
		switch rng.IntN(5) {
		case 0:
			ls[i] = MPLSLabel{Label: 1<<20 - 1, TC: 7, TTL: 255}
		case 1:
			ls[i] = MPLSLabel{Label: 0, TC: 0, TTL: 0}
		}
	}
	ls[n-1].S = true
	if i := rng.IntN(n); rng.IntN(4) == 0 {
		ls[i].S = !ls[i].S // S where RFC 3032 says not: decoded as sent
	}
	return ls
}

// testIfName returns an interface name of n bytes, UTF-8, without NUL.
func testIfName(rng *rand.Rand, n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:"
	var b []byte
	for len(b) < n {
		if n-len(b) >= 2 && rng.IntN(8) == 0 {
			b = append(b, "é"...)
			continue
		}
		b = append(b, chars[rng.IntN(len(chars))])
	}
	return string(b)
}

var (
	extV4 = netip.MustParseAddr("192.0.2.77")
	extV6 = netip.MustParseAddr("2001:db8:85a3::8a2e:370:7334")
)

// xnetExtTests builds time-exceeded messages with x/net/icmp: MPLS stacks
// of 1 to 4 entries, interface information with each combination of
// fields x/net can write, IPv4 and IPv6 addresses, names of 1 to 63 bytes,
// unknown classes, several objects at once; behind quotes of 28 to 201
// bytes, with the length attribute set (compliant) and, where the quote
// fits in 128 bytes, with it cleared (non-compliant).
func xnetExtTests(t testing.TB) []extTest {
	rng := rand.New(rand.NewPCG(5, 6))
	var sets [][]icmp.Extension
	var wants [][]extItem
	add := func(pairs ...any) {
		var xs []icmp.Extension
		var want []extItem
		for i := 0; i < len(pairs); i += 2 {
			xs = append(xs, pairs[i].(icmp.Extension))
			want = append(want, pairs[i+1].(extItem))
		}
		sets, wants = append(sets, xs), append(wants, want)
	}
	pair := func(x icmp.Extension, it extItem) []any { return []any{x, it} }
	for n := 1; n <= 4; n++ {
		for range 3 {
			add(pair(xnetMPLS(testLabels(rng, n)))...)
		}
	}
	for r := IfIncoming; r <= IfNextHop; r++ {
		for _, index := range []uint32{0, 1, 1<<32 - 1} {
			for _, name := range []string{"", "e", testIfName(rng, 63)} {
				for _, mtu := range []uint32{0, 1500, 1<<32 - 1} {
					for _, addr := range []netip.Addr{{}, extV4, extV6} {
						if index == 0 && (name != "" || mtu != 0) {
							continue // x/net would not write them
						}
						add(pair(xnetIf(r, index, name, mtu, addr))...)
					}
				}
			}
		}
	}
	for n := 1; n <= 63; n++ {
		add(pair(xnetIf(IfIncoming, uint32(n), testIfName(rng, n), 9000, extV4))...)
	}
	add(pair(xnetRaw(200, 7, []byte{1, 2, 3, 4}))...)
	add(pair(xnetRaw(extClassMPLS, 2, []byte{0, 1, 0x01, 64}))...) // not an incoming stack
	empty, emptyItem := xnetRaw(extClassMPLS, 1, nil)              // an empty stack
	emptyItem.labels = []MPLSLabel{}
	add(empty, emptyItem)
	all := slices.Concat(
		pair(xnetMPLS(testLabels(rng, 3))),
		pair(xnetRaw(4, 1, []byte{9, 9, 9, 9, 9, 9, 9, 9})),
		pair(xnetIf(IfIncoming, 7, "xe-0/0/0", 9192, extV4)),
		pair(xnetRaw(0, 0, nil)),
		pair(xnetIf(IfOutgoing, 8, "xe-0/0/1.4000", 1500, extV6)),
		pair(xnetIf(IfNextHop, 0, "", 0, netip.MustParseAddr("198.51.100.1"))),
		pair(xnetRaw(255, 255, bytes.Repeat([]byte{0xff}, 64))),
	)
	add(all...)

	var tests []extTest
	for i, xs := range sets {
		for _, qlen := range []int{28, 30, 128, 132, 201} {
			if i%7 != 0 && qlen != 30 && qlen != 132 && i != len(sets)-1 {
				continue // every set behind the short and the long quote, some behind all
			}
			m := xnetMessage(t, ipv4.ICMPTypeTimeExceeded, 0, extQuote(qlen), xs...)
			name := fmt.Sprintf("x/net set %d, %d-byte quote", i, qlen)
			tests = append(tests, extTest{name + ", compliant", testIPv4(rtrAddr, codecSrc, 250, protoICMP, m), wants[i]})
			if qlen <= 128 {
				tests = append(tests, extTest{name + ", non-compliant", testIPv4(rtrAddr, codecSrc, 250, protoICMP, withLength(m, 0)), wants[i]})
			}
		}
	}
	return tests
}

// checkExtTest decodes a test's reply and compares it with what it was
// built from and with what x/net/icmp parses from the same bytes.
func checkExtTest(t *testing.T, c extTest) {
	t.Helper()
	var r Reply
	if err := ParseReply(c.pkt, &r); err != nil {
		t.Fatalf("%s: ParseReply: %v", c.name, err)
	}
	if r.Extensions == nil {
		t.Fatalf("%s: no extensions after a %d-byte quote, length attribute %d", c.name, len(r.Quote), r.Length)
	}
	got := decodeExt(r.Extensions)
	if !got.checksumOK {
		t.Errorf("%s: checksum not OK", c.name)
	}
	checkItems(t, c.name+" (as built)", got, c.want)
	_, _, _, _, xs := xnetView(t, c.pkt)
	checkItems(t, c.name+" (as x/net parses it)", got, xnetItems(xs))
}

func TestExtensionsXNet(t *testing.T) {
	tests := xnetExtTests(t)
	layouts := map[string]int{}
	for _, c := range tests {
		checkExtTest(t, c)
		var r Reply
		_ = ParseReply(c.pkt, &r)
		layouts[fmt.Sprintf("quote %d, length attribute %d", len(r.Quote), r.Length)]++
	}
	t.Logf("%d messages; layouts %v", len(tests), layouts)
	if len(layouts) < 4 {
		t.Errorf("only %d layouts", len(layouts))
	}
	// The 300-odd sets, each behind 3 layouts at least.
	if len(tests) < 900 {
		t.Errorf("only %d messages compared with x/net", len(tests))
	}
}

// TestExtensionsXNetICMPv6 decodes the extension structures of ICMPv6
// time-exceeded messages (length attribute in 64-bit words, RFC 4884
// section 4.2), where x/net writes IPv6 interface addresses natively.
func TestExtensionsXNetICMPv6(t *testing.T) {
	q := make([]byte, 48)
	q[0] = 0x60
	n := 0
	for r := IfIncoming; r <= IfNextHop; r++ {
		for _, name := range []string{"", "lo", "a-name-of-exactly-thirty-two-by!"} {
			for _, addr := range []netip.Addr{{}, extV6, netip.MustParseAddr("fe80::1")} {
				x := &icmp.InterfaceInfo{Class: 2, Type: int(r)<<6 | ifCTypeIfindex | ifCTypeMTU,
					Interface: &net.Interface{Index: 3 + n, Name: name, MTU: 1280 + n}}
				want := &IfObject{Role: r, Has: IfHasIfindex | IfHasMTU, Ifindex: uint32(3 + n), MTU: uint32(1280 + n)}
				if name != "" {
					x.Type |= ifCTypeName
					setName(want, name)
				}
				if addr.IsValid() {
					x.Type |= ifCTypeAddr
					x.Addr = &net.IPAddr{IP: addr.AsSlice()}
					want.Has, want.Addr = want.Has|IfHasAddr, addr
				}
				mx, mit := xnetMPLS([]MPLSLabel{{Label: uint32(n), TC: 1, S: true, TTL: 2}})
				b, err := (&icmp.Message{Type: ipv6.ICMPTypeTimeExceeded, Body: &icmp.TimeExceeded{
					Data: q, Extensions: []icmp.Extension{x, mx}}}).Marshal(nil)
				if err != nil {
					t.Fatal(err)
				}
				m, err := icmp.ParseMessage(58, b)
				if err != nil {
					t.Fatal(err)
				}
				xs := m.Body.(*icmp.TimeExceeded).Extensions
				name := fmt.Sprintf("ICMPv6 %d", n)
				got := decodeExt(b[8+8*int(b[4]):])
				checkItems(t, name+" (as built)", got, []extItem{{class: 2, ctype: uint8(x.Type), ifi: want}, mit})
				checkItems(t, name+" (as x/net parses it)", got, xnetItems(xs))
				n++
			}
		}
	}
	// 4 roles, 3 names, 3 addresses.
	if n != 4*3*3 {
		t.Errorf("compared %d messages with x/net, want %d", n, 4*3*3)
	}
}

// scapyIf and scapyObj are the JSON cases of testdata/icmp_ext.py.
type scapyIf struct {
	Role    int     `json:"role"`
	Ifindex *uint32 `json:"ifindex,omitempty"`
	AFI     int     `json:"afi,omitempty"`
	IP      *string `json:"ip,omitempty"`
	Name    *string `json:"name,omitempty"` // hex
	MTU     *uint32 `json:"mtu,omitempty"`
}

type scapyRaw struct {
	Class   uint8  `json:"class"`
	CType   uint8  `json:"ctype"`
	Payload string `json:"payload"` // hex
}

type scapyObj struct {
	MPLS [][4]uint32 `json:"mpls,omitempty"`
	If   *scapyIf    `json:"if,omitempty"`
	Raw  *scapyRaw   `json:"raw,omitempty"`
}

type scapyCase struct {
	Src    string     `json:"src"`
	Dst    string     `json:"dst"`
	Quote  string     `json:"quote"` // hex
	Pad    int        `json:"pad"`
	Length int        `json:"length"`
	Sum    string     `json:"sum"`
	Objs   []scapyObj `json:"objs"`

	name string
	want []extItem
}

func scapyMPLS(ls []MPLSLabel) (scapyObj, extItem) {
	var o scapyObj
	for _, l := range ls {
		s := uint32(0)
		if l.S {
			s = 1
		}
		o.MPLS = append(o.MPLS, [4]uint32{l.Label, uint32(l.TC), s, uint32(l.TTL)})
	}
	return o, extItem{class: 1, ctype: 1, len: 4 + 4*len(ls), labels: ls}
}

// scapyInterface returns an interface object with the sub-objects of
// flags (RFC 5837 c-type bits).
func scapyInterface(rng *rand.Rand, r IfRole, flags int, v6 bool, nameLen int) (scapyObj, extItem) {
	o := &scapyIf{Role: int(r)}
	info := &IfObject{Role: r, Has: uint8(flags) &^ ifCTypeName}
	if flags&ifCTypeIfindex != 0 {
		v := rng.Uint32()
		o.Ifindex, info.Ifindex = &v, v
	}
	if flags&ifCTypeAddr != 0 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		info.Addr = netip.AddrFrom4([4]byte(b[:4]))
		o.AFI = 1
		if v6 {
			info.Addr, o.AFI = netip.AddrFrom16(b), 2
		}
		s := info.Addr.String()
		o.IP = &s
	}
	if flags&ifCTypeName != 0 {
		n := testIfName(rng, nameLen)
		h := hex.EncodeToString([]byte(n))
		o.Name = &h
		setName(info, n)
	}
	if flags&ifCTypeMTU != 0 {
		v := rng.Uint32()
		o.MTU, info.MTU = &v, v
	}
	return scapyObj{If: o}, extItem{class: 2, ctype: uint8(int(r)<<6 | flags), ifi: info}
}

// scapyCases are messages for scapy to build: interface information with
// every combination of sub-objects, role and address family, names of 0 to
// 63 bytes, label stacks of 1 to 4 entries, unknown classes, several
// interface objects in one message; compliant and non-compliant layouts;
// checksums over the whole structure, 0, wrong and over the header only.
func scapyCases() []scapyCase {
	rng := rand.New(rand.NewPCG(7, 8))
	var sets [][]scapyObj
	var wants [][]extItem
	add := func(objs []scapyObj, want []extItem) {
		sets, wants = append(sets, objs), append(wants, want)
	}
	one := func(o scapyObj, it extItem) { add([]scapyObj{o}, []extItem{it}) }
	for flags := range 16 {
		for r := IfIncoming; r <= IfNextHop; r++ {
			for _, v6 := range []bool{false, true} {
				one(scapyInterface(rng, r, flags, v6, 1+rng.IntN(63)))
			}
		}
	}
	for n := 0; n <= 63; n++ {
		one(scapyInterface(rng, IfIncoming, ifCTypeName|ifCTypeMTU, false, n))
		one(scapyInterface(rng, IfOutgoing, 0x0f, true, n))
	}
	for n := 1; n <= 4; n++ {
		for range 4 {
			one(scapyMPLS(testLabels(rng, n)))
		}
	}
	for range 40 {
		var objs []scapyObj
		var want []extItem
		for k := 1 + rng.IntN(5); k > 0; k-- {
			var o scapyObj
			var it extItem
			switch rng.IntN(3) {
			case 0:
				o, it = scapyMPLS(testLabels(rng, 1+rng.IntN(4)))
			case 1:
				o, it = scapyInterface(rng, IfRole(rng.IntN(4)), rng.IntN(16), rng.IntN(2) == 0, rng.IntN(64))
			default:
				p := make([]byte, 4*rng.IntN(5))
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				class := uint8(4 + rng.IntN(252))
				o = scapyObj{Raw: &scapyRaw{Class: class, CType: uint8(rng.Uint32()), Payload: hex.EncodeToString(p)}}
				it = extItem{class: class, ctype: o.Raw.CType, len: 4 + len(p)}
			}
			objs, want = append(objs, o), append(want, it)
		}
		add(objs, want)
	}

	var cs []scapyCase
	for i, objs := range sets {
		layouts := []struct {
			name              string
			qlen, pad, length int
		}{
			{"compliant, 30-byte quote", 30, 128, 32},
			{"non-compliant", 30, 128, 0},
			{"compliant, 133-byte quote", 133, 136, 34},
			{"compliant, 200-byte quote", 200, 200, 50},
		}
		l := layouts[i%len(layouts)]
		sum := []string{"full", "full", "full", "zero", "bad", "header"}[i/4%6]
		cs = append(cs, scapyCase{
			Src: rtrAddr.String(), Dst: codecSrc.String(), Quote: hex.EncodeToString(extQuote(l.qlen)),
			Pad: l.pad, Length: l.length, Sum: sum, Objs: objs,
			name: fmt.Sprintf("scapy %d (%s, checksum %s)", i, l.name, sum), want: wants[i],
		})
	}
	return cs
}

// TestExtensionsScapy has Debian's scapy build the messages: the objects
// of RFC 4950 and RFC 5837 with each combination of fields, in both
// layouts, and checks our decoder against what scapy was asked to build and
// against x/net/icmp's parse of scapy's bytes.
func TestExtensionsScapy(t *testing.T) {
	py := needScapy(t, "scapy.contrib.icmp_extensions")
	cs := scapyCases()
	var in bytes.Buffer
	for _, c := range cs {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(append(b, '\n'))
	}
	file := filepath.Join(t.TempDir(), "cases.jsonl")
	if err := os.WriteFile(file, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "icmp_ext.py"), file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scapy: %v\n%s", err, stderr.Bytes())
	}
	var pkts [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b, err := hex.DecodeString(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, b)
	}
	if len(pkts) != len(cs) {
		t.Fatalf("scapy built %d packets for %d cases\n%s", len(pkts), len(cs), stderr.Bytes())
	}
	stats := map[string]int{}
	for i, c := range cs {
		pkt := pkts[i]
		if c.Sum == "full" || c.Sum == "zero" {
			checkExtTest(t, extTest{c.name, pkt, c.want})
			var r Reply
			_ = ParseReply(pkt, &r)
			stats[fmt.Sprintf("quote %d, length attribute %d", len(r.Quote), r.Length)]++
			continue
		}
		// A wrong checksum: ParseReply and x/net both ignore the
		// structure; decoded on its own, it gives its objects and says
		// the checksum is wrong.
		var r Reply
		if err := ParseReply(pkt, &r); err != nil || r.Extensions != nil {
			t.Errorf("%s: ParseReply %v, %d bytes of extensions", c.name, err, len(r.Extensions))
		}
		if _, _, _, _, xs := xnetView(t, pkt); len(xs) != 0 {
			t.Errorf("%s: x/net found %d objects", c.name, len(xs))
		}
		got := decodeExt(pkt[ipv4HeaderLen+8+c.Pad:])
		if got.checksumOK {
			t.Errorf("%s: checksum OK", c.name)
		}
		checkItems(t, c.name, got, c.want)
		stats["checksum "+c.Sum]++
	}
	t.Logf("%d messages built by scapy: %v", len(cs), stats)
	// Every case was compared: with x/net (4 layouts) or as a wrong
	// checksum (2 kinds), each kind more than once.
	total := 0
	for _, n := range stats {
		total += n
	}
	if total != len(cs) || len(cs) < 300 || len(stats) != 6 {
		t.Errorf("compared %d of %d scapy messages, %d kinds (want all, at least 300, 6 kinds)", total, len(cs), len(stats))
	}
}

// Hand-built structures for the malformed cases.

// craftObject returns an object with the length field n (its real length
// when n < 0).
func craftObject(n int, class, ctype uint8, payload ...byte) []byte {
	if n < 0 {
		n = 4 + len(payload)
	}
	return append([]byte{byte(n >> 8), byte(n), class, ctype}, payload...)
}

// craftExt returns a version 2 structure of objs with a checksum over
// all of it.
func craftExt(objs ...[]byte) []byte {
	b := slices.Concat(append([][]byte{{extVersion << 4, 0, 0, 0}}, objs...)...)
	binary.BigEndian.PutUint16(b[2:], refChecksum(b))
	return b
}

func TestExtensionsMalformed(t *testing.T) {
	mpls := craftObject(-1, 1, 1, 0x03, 0xe8, 0x51, 0xfe) // label 16005, TC 0, S, TTL 254
	mplsItem := extItem{class: 1, ctype: 1, len: 8, labels: []MPLSLabel{{16005, 0, true, 254}}}
	unknown := craftObject(-1, 77, 3, 1, 2, 3, 4)
	unknownItem := extItem{class: 77, ctype: 3, len: 8}
	good := craftExt(mpls, unknown)
	withSum := func(b []byte, sum uint16) []byte {
		b = slices.Clone(b)
		binary.BigEndian.PutUint16(b[2:], sum)
		return b
	}
	for _, tc := range []struct {
		name       string
		b          []byte
		want       []extItem
		err        error
		checksumOK bool
	}{
		{"empty", nil, nil, nil, false},
		{"1 byte", []byte{0x20}, nil, ErrExtShort, false},
		{"3 bytes", []byte{0x20, 0, 0}, nil, ErrExtShort, false},
		{"version 0", withSum(append([]byte{0x00, 0, 0, 0}, mpls...), 0), nil, ErrExtVersion, false},
		{"version 1", append([]byte{0x10, 0, 0, 0}, mpls...), nil, ErrExtVersion, false},
		{"version 15", []byte{0xf0, 0, 0, 0}, nil, ErrExtVersion, false},
		{"header only", craftExt(), nil, nil, true},
		{"header only, reserved bits set", []byte{0x2f, 0xff, 0xd0, 0x00}, nil, nil, true},
		{"good", good, []extItem{mplsItem, unknownItem}, nil, true},
		{"checksum 0", withSum(good, 0), []extItem{mplsItem, unknownItem}, nil, true},
		{"checksum wrong", withSum(good, binary.BigEndian.Uint16(good[2:])^0x0100), []extItem{mplsItem, unknownItem}, nil, false},
		{"checksum over the header only", withSum(good, refChecksum(good[:2])), []extItem{mplsItem, unknownItem}, nil, false},
		{"object length 0", craftExt(craftObject(0, 1, 1, 0, 0, 0, 0)), nil, ErrExtObject, true},
		{"object length 2", craftExt(craftObject(2, 1, 1)), nil, ErrExtObject, true},
		{"object length 3", craftExt(craftObject(3, 1, 1)), nil, ErrExtObject, true},
		{"object length 6", craftExt(craftObject(6, 1, 1, 0, 0, 0, 0)), nil, ErrExtObject, true},
		{"object length 7", craftExt(craftObject(7, 1, 1, 0, 0, 0, 0)), nil, ErrExtObject, true},
		{"object past the end", craftExt(craftObject(12, 1, 1, 0, 0, 0, 0)), nil, ErrExtObject, true},
		{"object length 0xffff", craftExt(craftObject(0xffff, 1, 1, 0, 0, 0, 0)), nil, ErrExtObject, true},
		{"object header cut, 1 byte", craftExt(mpls, []byte{0}), []extItem{mplsItem}, ErrExtObject, true},
		{"object header cut, 3 bytes", craftExt(mpls, []byte{0, 8, 1}), []extItem{mplsItem}, ErrExtObject, true},
		{"bad object between good ones", craftExt(mpls, craftObject(0, 1, 1), unknown), []extItem{mplsItem}, ErrExtObject, true},
		{"empty label stack", craftExt(craftObject(-1, 1, 1)), []extItem{{class: 1, ctype: 1, len: 4, labels: []MPLSLabel{}}}, nil, true},
		{"MPLS c-type 2 is not decoded", craftExt(craftObject(-1, 1, 2, 0, 0, 0x11, 1)), []extItem{{class: 1, ctype: 2, len: 8}}, nil, true},
		{"class 0 and 255", craftExt(craftObject(-1, 0, 0), craftObject(-1, 255, 255, 1, 1, 1, 1), mpls),
			[]extItem{{class: 0, ctype: 0, len: 4}, {class: 255, ctype: 255, len: 8}, mplsItem}, nil, true},
		{"4 labels, 2 stacks", craftExt(craftObject(-1, 1, 1, 0, 0, 0x10, 1, 0xff, 0xff, 0xff, 0xff, 0, 0x01, 0x2d, 0x40), mpls),
			[]extItem{{class: 1, ctype: 1, len: 16, labels: []MPLSLabel{{1, 0, false, 1}, {1<<20 - 1, 7, true, 255}, {18, 6, true, 64}}}, mplsItem}, nil, true},
	} {
		got := decodeExt(tc.b)
		ok := errors.Is(got.err, tc.err) && got.checksumOK == tc.checksumOK && len(got.items) == len(tc.want)
		for i := 0; ok && i < len(tc.want); i++ {
			ok = got.items[i].equal(tc.want[i])
		}
		if !ok {
			t.Errorf("%s: decoded (err %v, checksum OK %v)\n\t%s\nwant (err %v, checksum OK %v)\n\t%s",
				tc.name, got.err, got.checksumOK, itemsString(got.items), tc.err, tc.checksumOK, itemsString(tc.want))
		}
		var hdrErr error // ParseExtensions returns header errors only
		if tc.err == ErrExtShort || tc.err == ErrExtVersion {
			hdrErr = tc.err
		}
		var e Extensions
		if err := ParseExtensions(tc.b, &e); err != hdrErr {
			t.Errorf("%s: ParseExtensions = %v, want %v", tc.name, err, hdrErr)
		}
	}

	// The zero Extensions has no object, and no current object once done.
	var e Extensions
	if e.Next() || e.Err() != nil || e.Class() != 0 || e.CType() != 0 || e.Len() != 0 || e.Payload() != nil || e.MPLS(nil) != nil {
		t.Errorf("zero Extensions: %+v", e)
	}
	_ = ParseExtensions(good, &e)
	for e.Next() {
	}
	if e.Payload() != nil || e.Class() != 0 || e.MPLS(nil) != nil {
		t.Errorf("after the last object: class %d payload % x", e.Class(), e.Payload())
	}

	// MPLS appends, within the caller's capacity.
	_ = ParseExtensions(good, &e)
	e.Next()
	var buf [4]MPLSLabel
	dst := append(buf[:0], MPLSLabel{Label: 1})
	dst = e.MPLS(dst)
	if len(dst) != 2 || &dst[0] != &buf[0] || dst[0] != (MPLSLabel{Label: 1}) || dst[1] != mplsItem.labels[0] {
		t.Errorf("MPLS appended %+v", dst)
	}
	if p := e.Payload(); offsetIn(p, good) != 8 || len(p) != 4 {
		t.Errorf("payload at %d, %d bytes: does not alias the input", offsetIn(p, good), len(p))
	}
}

func TestExtensionsInterfaceMalformed(t *testing.T) {
	v4 := []byte{0, 1, 0, 0, 192, 0, 2, 1}
	name := []byte{8, 'e', 't', 'h', '0', 0, 0, 0}
	mtu := []byte{0, 0, 5, 0xdc}
	idx := []byte{0, 0, 0, 9}
	cat := func(p ...[]byte) []byte { return slices.Concat(p...) }
	nameOf := func(s string) (n [IfNameMax]byte) { copy(n[:], s); return n }
	const all = IfHasIfindex | IfHasAddr | IfHasName | IfHasMTU
	for _, tc := range []struct {
		name    string
		ctype   uint8
		payload []byte
		want    IfObject // what was decoded before the error, if any
		err     error
	}{
		{"nothing", 0xc0, nil, IfObject{Role: IfNextHop}, nil},
		{"all", 0x4f, cat(idx, v4, name, mtu), IfObject{Role: IfSubIP, Has: all, Ifindex: 9,
			Addr: netip.MustParseAddr("192.0.2.1"), NameLen: 4, Name: nameOf("eth0"), MTU: 1500}, nil},
		{"reserved c-type bits ignored", 0x30 | ifCTypeMTU, mtu, IfObject{Has: IfHasMTU, MTU: 1500}, nil},
		{"extra octets ignored", ifCTypeIfindex, cat(idx, mtu), IfObject{Has: IfHasIfindex, Ifindex: 9}, nil},
		{"empty name", ifCTypeName, []byte{4, 0, 0, 0}, IfObject{Has: IfHasName}, nil},
		{"name of 16 bytes", ifCTypeName, append([]byte{20}, "0123456789abcdef\x00\x00\x00"...),
			IfObject{Has: IfHasName, NameLen: 16, Name: nameOf("0123456789abcdef")}, nil},
		{"name of 63 bytes, cut", ifCTypeName | ifCTypeMTU, cat(append([]byte{64}, bytes.Repeat([]byte{'n'}, 63)...), mtu),
			IfObject{Has: IfHasName | IfNameCut | IfHasMTU, NameLen: 16, Name: nameOf(strings.Repeat("n", 16)), MTU: 1500}, nil},
		{"name cut before a character across byte 16", ifCTypeName, append([]byte{20}, "0123456789abcde\u00e9\x00\x00"...),
			IfObject{Has: IfHasName | IfNameCut, NameLen: 15, Name: nameOf("0123456789abcde")}, nil},
		{"name with a NUL inside", ifCTypeName, []byte{8, 'a', 0, 'b', 0, 0, 0, 0}, IfObject{Has: IfHasName, NameLen: 3, Name: nameOf("a\x00b")}, nil},
		{"ifIndex missing", ifCTypeIfindex, nil, IfObject{}, ErrExtInterface},
		{"address missing", ifCTypeIfindex | ifCTypeAddr, idx, IfObject{Has: IfHasIfindex, Ifindex: 9}, ErrExtInterface},
		{"AFI without address", ifCTypeAddr, []byte{0, 1, 0, 0}, IfObject{}, ErrExtInterface},
		{"AFI 3", ifCTypeAddr, []byte{0, 3, 0, 0, 1, 2, 3, 4}, IfObject{}, ErrExtInterface},
		{"AFI 0", ifCTypeAddr, []byte{0, 0, 0, 0, 1, 2, 3, 4}, IfObject{}, ErrExtInterface},
		{"IPv6 address cut", ifCTypeAddr, []byte{0, 2, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, IfObject{}, ErrExtInterface},
		{"IPv6 address cut at 12 bytes", ifCTypeAddr, []byte{0, 2, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, IfObject{}, ErrExtInterface},
		{"IPv4 address with an IPv6 AFI", ifCTypeAddr | ifCTypeMTU, cat([]byte{0, 2, 0, 0, 192, 0, 2, 1}, mtu), IfObject{}, ErrExtInterface},
		{"name missing", ifCTypeName | ifCTypeMTU, nil, IfObject{}, ErrExtInterface},
		{"name length 0", ifCTypeName, []byte{0, 0, 0, 0}, IfObject{}, ErrExtInterface},
		{"name length 3", ifCTypeName, []byte{3, 'a', 'b', 0}, IfObject{}, ErrExtInterface},
		{"name length 5", ifCTypeName, []byte{5, 'a', 'b', 'c', 'd', 0, 0, 0}, IfObject{}, ErrExtInterface},
		{"name length 68", ifCTypeName, append([]byte{68}, make([]byte, 67)...), IfObject{}, ErrExtInterface},
		{"name past the object", ifCTypeName, []byte{8, 'a', 'b', 'c'}, IfObject{}, ErrExtInterface},
		{"MTU missing", ifCTypeName | ifCTypeMTU, name, IfObject{Has: IfHasName, NameLen: 4, Name: nameOf("eth0")}, ErrExtInterface},
	} {
		b := craftExt(craftObject(-1, extClassInterface, tc.ctype, tc.payload...), craftObject(-1, 1, 1, 0, 0, 0x11, 1))
		var e Extensions
		if err := ParseExtensions(b, &e); err != nil || !e.Next() {
			t.Fatalf("%s: %v", tc.name, err)
		}
		info := IfObject{Ifindex: 12345, NameLen: 9} // overwritten
		if err := e.Interface(&info); err != tc.err || info != tc.want {
			t.Errorf("%s: %v %s, want %v %s", tc.name, err, ifString(&info), tc.err, ifString(&tc.want))
		}
		// The next object is still there.
		if !e.Next() || len(e.MPLS(nil)) != 1 || e.Next() || e.Err() != nil {
			t.Errorf("%s: iteration stopped: %v", tc.name, e.Err())
		}
		if err := e.Interface(&info); err != ErrExtClass || info != (IfObject{}) {
			t.Errorf("%s: Interface after the end: %v %+v", tc.name, err, info)
		}
	}
	for r, s := range map[IfRole]string{IfIncoming: "incoming", IfSubIP: "sub-ip", IfOutgoing: "outgoing", IfNextHop: "next-hop", 4: "role 4"} {
		if r.String() != s {
			t.Errorf("IfRole(%d) = %q, want %q", r, r.String(), s)
		}
	}
}

// TestExtensionsTruncated decodes every prefix of a structure: the objects
// that fit whole come out as in the full structure, a cut object stops the
// iteration with ErrExtObject, and nothing reads past the prefix.
func TestExtensionsTruncated(t *testing.T) {
	var all extTest
	tests := xnetExtTests(t)
	for _, c := range tests {
		if len(c.want) > len(all.want) {
			all = c
		}
	}
	var r Reply
	if err := ParseReply(all.pkt, &r); err != nil || len(all.want) < 5 {
		t.Fatalf("%v, %d objects", err, len(all.want))
	}
	full := decodeExt(r.Extensions)
	ends := map[int]int{4: 0} // object boundary -> objects before it
	off := 4
	for i, it := range full.items {
		off += it.len
		ends[off] = i + 1
	}
	if off != len(r.Extensions) || full.err != nil {
		t.Fatalf("objects end at %d of %d: %v", off, len(r.Extensions), full.err)
	}
	for n := 0; n <= len(r.Extensions); n++ {
		b := slices.Clone(r.Extensions[:n]) // exact capacity: overruns panic
		got := decodeExt(b)
		objs, boundary := ends[n]
		if !boundary {
			objs = 0
			for end, k := range ends {
				if end < n && k > objs {
					objs = k
				}
			}
		}
		var want error
		switch {
		case n == 0:
		case n < 4:
			want = ErrExtShort
		case !boundary:
			want = ErrExtObject
		}
		if got.err != want || len(got.items) != objs {
			t.Fatalf("%d of %d bytes: %d objects, error %v; want %d, %v", n, len(r.Extensions), len(got.items), got.err, objs, want)
		}
		for i := range got.items {
			if !got.items[i].equal(full.items[i]) {
				t.Fatalf("%d bytes: object %d: %v, want %v", n, i, got.items[i], full.items[i])
			}
		}
	}
}

// extReplyMPLSInterfaces is a time exceeded with two label stacks, an
// incoming (IPv4) and an outgoing (IPv6) interface and an unknown object.
func extReplyMPLSInterfaces(t testing.TB) []byte {
	mx, _ := xnetMPLS([]MPLSLabel{{16005, 5, false, 1}, {299792, 0, false, 1}, {3, 0, true, 1}})
	in, _ := xnetIf(IfIncoming, 42, "ge-0/0/1.100", 1500, extV4)
	out, _ := xnetIf(IfOutgoing, 43, "HundredGigE0/0/0/7", 9000, extV6)
	raw, _ := xnetRaw(200, 1, []byte{1, 2, 3, 4})
	m := xnetMessage(t, ipv4.ICMPTypeTimeExceeded, 0, extQuote(30), mx, in, out, raw)
	return testIPv4(rtrAddr, codecSrc, 250, protoICMP, m)
}

// extSummary is what a trace keeps of a reply's extensions: fixed arrays.
type extSummary struct {
	labels [8]MPLSLabel
	nl     int
	ifs    [4]IfObject
	ni     int
}

func (s *extSummary) decode(b []byte, e *Extensions) error {
	s.nl, s.ni = 0, 0
	_ = ParseExtensions(b, e)
	for e.Next() {
		switch e.Class() {
		case extClassMPLS:
			// Within the array's capacity MPLS appends in place; past
			// it, the extra labels are dropped.
			s.nl = min(len(e.MPLS(s.labels[:s.nl])), len(s.labels))
		case extClassInterface:
			if s.ni < len(s.ifs) && e.Interface(&s.ifs[s.ni]) == nil {
				s.ni++
			}
		}
	}
	return e.Err()
}

func TestExtensionsZeroAllocs(t *testing.T) {
	pkt := extReplyMPLSInterfaces(t)
	var r Reply
	var e Extensions
	var s extSummary
	decode := func() {
		if ParseReply(pkt, &r) != nil || s.decode(r.Extensions, &e) != nil {
			panic("decoding failed")
		}
	}
	decode()
	if s.nl != 3 || s.labels[1].Label != 299792 || s.ni != 2 || s.ifs[0].Addr != extV4 || s.ifs[1].Addr != extV6 ||
		string(s.ifs[1].NameBytes()) != "HundredGigE0/0/0" || s.ifs[1].Role != IfOutgoing || !e.ChecksumOK {
		t.Fatalf("decoded %+v", s)
	}
	if n := testing.AllocsPerRun(1000, decode); n != 0 {
		t.Errorf("ParseReply + extensions: %v allocations per run, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = s.decode(r.Extensions, &e) }); n != 0 {
		t.Errorf("extensions: %v allocations per run, want 0", n)
	}
	ls := make([]MPLSLabel, 0, 16) // append into a slice the caller keeps
	if n := testing.AllocsPerRun(1000, func() {
		ls = ls[:0]
		_ = ParseExtensions(r.Extensions, &e)
		for e.Next() {
			ls = e.MPLS(ls)
		}
	}); n != 0 || len(ls) != 3 {
		t.Errorf("MPLS into a slice: %v allocations per run, %d labels", n, len(ls))
	}
}

var sinkExt extSummary

func BenchmarkExtensions(b *testing.B) {
	pkt := extReplyMPLSInterfaces(b)
	var r Reply
	var e Extensions
	if err := ParseReply(pkt, &r); err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(r.Extensions)))
		for b.Loop() {
			if err := sinkExt.decode(r.Extensions, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reply+decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkt)))
		for b.Loop() {
			if err := ParseReply(pkt, &r); err != nil {
				b.Fatal(err)
			}
			if err := sinkExt.decode(r.Extensions, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("x/net", func(b *testing.B) { // the oracle, for scale
		b.ReportAllocs()
		msg := pkt[ipv4HeaderLen:]
		for b.Loop() {
			if _, err := icmp.ParseMessage(1, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// extFuzzMessage is an ICMP time exceeded quoting a probe in 128 bytes
// (length attribute 32 words) followed by ext, and the IPv4 packet of it.
func extFuzzMessage(ext []byte) (msg, pkt []byte) {
	m := make([]byte, 8, 8+128+len(ext))
	m[0], m[5] = ICMPTimeExceeded, 32
	m = append(m, extQuote(30)...)
	m = append(m, make([]byte, 8+128-len(m))...)
	m = fixICMPChecksum(append(m, ext...))
	pkt = testIPv4(rtrAddr, codecSrc, 250, protoICMP, m)
	return pkt[ipv4HeaderLen:], pkt
}

// FuzzExtensions decodes arbitrary bytes as an extension structure, on
// its own and, with its checksum made right, after a 128-byte quote.
// Nothing panics, objects lie within the input, and when x/net/icmp
// accepts the structure, it finds the same objects, MPLS labels and
// interface fields.
func FuzzExtensions(f *testing.F) {
	seen := map[string]bool{}
	for _, c := range xnetExtTests(f) {
		var r Reply
		if ParseReply(c.pkt, &r) == nil && r.Extensions != nil && len(c.want) > 1 && !seen[string(r.Extensions)] {
			seen[string(r.Extensions)] = true
			f.Add(r.Extensions)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0, 0, 0x11, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Extensions
		hdrErr := ParseExtensions(b, &e)
		var labels [4]MPLSLabel
		end := 4
		for e.Next() {
			p := e.Payload()
			if e.Len() < 4 || e.Len()%4 != 0 || len(p) != e.Len()-4 || len(p) > 0 && offsetIn(p, b) != end+4 {
				t.Fatalf("object of %d bytes at %d, payload of %d at %d", e.Len(), end, len(p), offsetIn(p, b))
			}
			end += e.Len()
			n, want := len(e.MPLS(labels[:0])), 0
			if e.Class() == extClassMPLS && e.CType() == extCTypeMPLSIncoming {
				want = len(p) / 4
			}
			if n != want {
				t.Fatalf("%d labels in %d bytes of class %d c-type %d", n, len(p), e.Class(), e.CType())
			}
			var info IfObject
			if err := e.Interface(&info); err == nil && int(info.NameLen) > min(len(p), IfNameMax) {
				t.Fatalf("name of %d bytes in %d", info.NameLen, len(p))
			}
		}
		if hdrErr == nil && len(b) > 0 && e.Err() == nil && end != len(b) {
			t.Fatalf("objects end at %d of %d", end, len(b))
		}
		if len(b) == 0 || len(b) > 1<<15 {
			return // no extensions, or too long for one IPv4 packet
		}

		// Behind a quote, with a right checksum (unless 0) so that the
		// objects, not the checksum, decide what x/net accepts.
		if len(b) >= 4 && b[0]>>4 == extVersion && binary.BigEndian.Uint16(b[2:]) != 0 {
			b = slices.Clone(b)
			b[2], b[3] = 0, 0
			binary.BigEndian.PutUint16(b[2:], Checksum(b))
		}
		msg, pkt := extFuzzMessage(b)
		var r Reply
		if err := ParseReply(pkt, &r); err != nil {
			t.Fatal(err)
		}
		if r.Extensions != nil && (!bytes.Equal(r.Extensions, b) || len(r.Quote) != 128) {
			t.Fatalf("ParseReply found %d bytes of extensions after %d bytes", len(r.Extensions), len(r.Quote))
		}
		m, err := icmp.ParseMessage(1, msg)
		if err != nil {
			t.Fatal(err)
		}
		te := m.Body.(*icmp.TimeExceeded)
		if len(te.Data) != 128 {
			if r.Extensions != nil && len(te.Data) != len(msg)-8 {
				t.Fatalf("x/net quote of %d bytes", len(te.Data))
			}
			return // x/net rejected the structure or one of its objects
		}
		if r.Extensions == nil {
			t.Fatal("x/net found extensions, ParseReply did not")
		}
		got := decodeExt(r.Extensions)
		want := xnetItems(te.Extensions)
		if !got.checksumOK || len(got.items) > len(want) || got.err == nil && len(got.items) != len(want) {
			t.Fatalf("checksum OK %v, %d objects (err %v), x/net %d", got.checksumOK, len(got.items), got.err, len(want))
		}
		for i, it := range got.items {
			w := want[i]
			if w.ifi != nil && it.ifi == nil {
				continue // x/net is laxer about interface information
			}
			if x, ok := te.Extensions[i].(*icmp.InterfaceInfo); ok && it.ifi != nil && x.Interface != nil && w.ifi.Has&IfHasName != 0 {
				// x/net also trims leading NULs from names, and
				// keeps them whole: the name kept is the start of
				// its, all of it unless cut.
				n := bytes.TrimLeft(it.ifi.NameBytes(), "\x00")
				if !strings.HasPrefix(x.Interface.Name, string(n)) || it.ifi.Has&IfNameCut == 0 && len(n) != len(x.Interface.Name) {
					t.Fatalf("object %d: name %q, x/net %q", i, it.ifi.NameBytes(), x.Interface.Name)
				}
				c, cw := *it.ifi, *w.ifi
				c.Has, c.Name, c.NameLen = c.Has&^IfNameCut, [IfNameMax]byte{}, 0
				cw.Has, cw.Name, cw.NameLen = cw.Has&^IfNameCut, [IfNameMax]byte{}, 0
				it.ifi, w.ifi = &c, &cw
			}
			if !it.equal(w) {
				t.Fatalf("object %d: %v, x/net %v", i, it, w)
			}
		}
	})
}
