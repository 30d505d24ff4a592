package analysis

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// What a reply says beyond its hop: the MPLS label stack and interface
// information of its ICMP extensions (RFC 4884, 4950, 5837), and how the
// probe it quotes was changed on its way by a middlebox.

// MPLSLabel is an MPLS label stack entry (RFC 3032) of an RFC 4950 object:
// the labels the probe carried when it expired in a label switching router.
type MPLSLabel struct {
	Label uint32 // 20 bits
	TC    uint8  // traffic class (RFC 5462), formerly EXP; 3 bits
	S     bool   // bottom of stack
	TTL   uint8
}

// IfRole is the interface role of RFC 5837 interface information: which
// interface of the replying router the object describes.
type IfRole uint8

// The interface roles of RFC 5837 section 4.1.
const (
	IfIncoming IfRole = 0 // the interface the probe arrived on
	IfSubIP    IfRole = 1 // the sub-IP component of that interface
	IfOutgoing IfRole = 2 // the interface the probe would have left by
	IfNextHop  IfRole = 3 // the IP next hop it would have been sent to
)

var ifRoleNames = [...]string{"incoming", "sub-ip", "outgoing", "next-hop"}

// ifRoleShort are the roles as the tables mark them.
var ifRoleShort = [...]string{"in", "sub-ip", "out", "next hop"}

// String returns "incoming", "sub-ip", "outgoing" or "next-hop".
func (r IfRole) String() string {
	if int(r) < len(ifRoleNames) {
		return ifRoleNames[r]
	}
	return "role " + strconv.Itoa(int(r))
}

func parseIfRole(s string) (IfRole, bool) {
	i := slices.Index(ifRoleNames[:], s)
	return IfRole(i), i >= 0
}

// InterfaceInfo is an RFC 5837 interface information object. Each field
// is optional in the object; an absent one is zero.
type InterfaceInfo struct {
	Role    IfRole
	Ifindex uint32     // the router's ifIndex of the interface; 0 when absent
	Addr    netip.Addr // an address of the interface; invalid when absent
	Name    string     // its name (cut to MaxReplyIfName bytes); "" when absent
	MTU     uint32     // 0 when absent
}

// label renders the interface as the tables and DOT labels show it: its
// role and name, or ifindex, or address ("in eth0", "out #7").
func (i InterfaceInfo) label() string {
	role := "role " + strconv.Itoa(int(i.Role))
	if int(i.Role) < len(ifRoleShort) {
		role = ifRoleShort[i.Role]
	}
	switch {
	case i.Name != "":
		return role + " " + i.Name
	case i.Ifindex != 0:
		return role + " #" + strconv.FormatUint(uint64(i.Ifindex), 10)
	case i.Addr.IsValid():
		return role + " " + i.Addr.String()
	}
	return role
}

// details renders every field the object carries: "incoming eth0,
// ifindex 7, 10.1.1.2, MTU 1500".
func (i InterfaceInfo) details() string {
	parts := []string{i.Role.String()}
	if i.Name != "" {
		parts[0] += " " + i.Name
	}
	if i.Ifindex != 0 {
		parts = append(parts, "ifindex "+strconv.FormatUint(uint64(i.Ifindex), 10))
	}
	if i.Addr.IsValid() {
		parts = append(parts, i.Addr.String())
	}
	if i.MTU != 0 {
		parts = append(parts, "MTU "+strconv.FormatUint(uint64(i.MTU), 10))
	}
	return strings.Join(parts, ", ")
}

// ExtFlags qualify the extensions of a hop's reply.
type ExtFlags uint8

const (
	// ExtRFC4884: the reply had an RFC 4884 length attribute; without
	// it, its extensions followed 128 octets of quote (a non-compliant
	// sender, which RFC 4884 section 5 tells receivers to accept).
	ExtRFC4884 ExtFlags = 1 << iota
	// ExtTruncated: the reply carried more labels or interface objects
	// than the receive path keeps (MaxReplyLabels, MaxReplyInterfaces),
	// or a longer name than MaxReplyIfName bytes.
	ExtTruncated
)

// Rewrites is a set of the ways the probe that a hop quotes differs from
// what was sent: a middlebox between the source and that hop changed it.
type Rewrites uint8

const (
	RewriteTOS      Rewrites = 1 << iota // the TOS byte (DSCP or ECN)
	RewriteLength                        // the IP total length or UDP length
	RewriteDst                           // the destination address (a NAT)
	RewriteChecksum                      // the UDP datagram, without fixing its checksum
)

var rewriteNames = [...]string{"tos", "length", "dst", "checksum"}

// Names returns the names of the rewrites in r, in the order "tos",
// "length", "dst", "checksum"; nil when r is empty.
func (r Rewrites) Names() []string {
	var out []string
	for i, n := range rewriteNames {
		if r&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// parseRewrite returns the rewrite named name (see Names).
func parseRewrite(name string) (Rewrites, bool) {
	i := slices.Index(rewriteNames[:], name)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// Sizes of ReplyExt: what the receive path keeps of a reply's extensions.
const (
	MaxReplyLabels     = 4
	MaxReplyInterfaces = 2
	MaxReplyIfName     = 16
)

// ReplyExt is a reply's ICMP extensions as the receive path hands them to
// Collector.Extras: fixed arrays, so that passing them on costs nothing.
type ReplyExt struct {
	Labels  [MaxReplyLabels]MPLSLabel
	NLabels uint8
	NIfs    uint8
	Flags   ExtFlags
	Ifs     [MaxReplyInterfaces]ReplyInterface
}

// ReplyInterface is an InterfaceInfo without a string.
type ReplyInterface struct {
	Role    IfRole
	NameLen uint8
	Name    [MaxReplyIfName]byte
	Ifindex uint32
	MTU     uint32
	Addr    netip.Addr
}

// empty says whether x carries nothing to record.
func (x *ReplyExt) empty() bool { return x == nil || x.NLabels == 0 && x.NIfs == 0 }

// cellRewrite records the rewrites seen by the answer to cells[i].
type cellRewrite struct {
	i   int32
	rw  Rewrites
	tos uint8 // the quoted TOS
}

// cellExt records the extensions of the answer to cells[i].
type cellExt struct {
	i   int32
	ext ReplyExt
}

// Extras records what the first answer to the probe (pathID, ttl) said
// beyond its hop: how the probe it quotes was rewritten on its way (rw,
// with quotedTOS the TOS byte it quoted) and its ICMP extensions (ext, nil
// when none). Call it once, after Reply returned true. Only answers with
// something to record take room, in tables beside the cells, which keep
// their memory across Reset: in a run where nothing is rewritten and no
// router sends extensions it costs nothing.
func (c *Collector) Extras(pathID, ttl int, rw Rewrites, quotedTOS uint8, ext *ReplyExt) {
	if rw == 0 && ext.empty() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index(pathID, ttl)
	if !ok || !c.cells[i].Answered() {
		return
	}
	if rw != 0 {
		c.rewrites = append(c.rewrites, cellRewrite{i: int32(i), rw: rw, tos: quotedTOS})
	}
	if !ext.empty() {
		c.exts = append(c.exts, cellExt{i: int32(i), ext: *ext})
	}
}

// addExtras sets the Rewrites and extensions of the hops of flows (sorted
// by path ID) from the tables Extras fills. A probe recorded twice keeps
// its first record.
func (c *Collector) addExtras(flows []Flow, moved map[int]int) {
	hop := func(i int32) *Hop {
		p, ttl := int(i)/c.maxTTL+1, int(i)%c.maxTTL+1
		k, ok := slices.BinarySearchFunc(flows, p, func(f Flow, p int) int { return f.PathID - p })
		if !ok {
			return nil
		}
		if from, ok := moved[p]; ok && from == ttl {
			// The destination's answer to this TTL is shown at its
			// distance (see Collector.Trace).
			ttl = len(flows[k].Hops)
		}
		if ttl > len(flows[k].Hops) || flows[k].Hops[ttl-1].Silent() {
			return nil
		}
		return &flows[k].Hops[ttl-1]
	}
	for _, r := range c.rewrites {
		if h := hop(r.i); h != nil && h.Rewrites == 0 {
			h.Rewrites = r.rw
			if r.rw&RewriteTOS != 0 {
				h.QuotedTOS = r.tos
			}
		}
	}
	for k := range c.exts {
		x := &c.exts[k].ext
		h := hop(c.exts[k].i)
		if h == nil || h.MPLS != nil || h.Interfaces != nil {
			continue
		}
		if n := int(min(x.NLabels, MaxReplyLabels)); n > 0 {
			h.MPLS = slices.Clone(x.Labels[:n])
		}
		for _, ri := range x.Ifs[:min(x.NIfs, MaxReplyInterfaces)] {
			h.Interfaces = append(h.Interfaces, InterfaceInfo{
				Role: ri.Role, Ifindex: ri.Ifindex, Addr: ri.Addr, MTU: ri.MTU,
				Name: string(ri.Name[:min(ri.NameLen, MaxReplyIfName)]),
			})
		}
		h.ExtFlags = x.Flags
	}
}

// extMarks returns what a table cell shows after a hop's address: its
// MPLS labels and interfaces ("[MPLS 16005/3, in ge-0/0/1]", a "+" after
// the labels when the stack was cut), then its rewrites ("[tos
// rewritten]").
func extMarks(h *Hop) string {
	var notes []string
	if len(h.MPLS) > 0 {
		s := "MPLS " + mplsText(h.MPLS)
		if h.ExtFlags&ExtTruncated != 0 {
			s += "+"
		}
		notes = append(notes, s)
	}
	for _, i := range h.Interfaces {
		notes = append(notes, i.label())
	}
	var s string
	if len(notes) > 0 {
		s = " [" + strings.Join(notes, ", ") + "]"
	}
	if h.Rewrites != 0 {
		s += " [" + strings.Join(h.Rewrites.Names(), ",") + " rewritten]"
	}
	return s
}

// mplsText renders a label stack top first: "16005/3".
func mplsText(ls []MPLSLabel) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strconv.FormatUint(uint64(l.Label), 10))
	}
	return b.String()
}

// rewriteLegend is the line under a table that shows rewrites.
const rewriteLegend = "rewritten: the probe reached the hop changed by a middlebox on the way (tos: DSCP/ECN, length, dst: NAT, checksum)"

// rewriteNotes returns the legend of the rewrite marks when t has any.
func rewriteNotes(t *Trace) []string {
	for i := range t.Flows {
		for j := range t.Flows[i].Hops {
			if t.Flows[i].Hops[j].Rewrites != 0 {
				return []string{rewriteLegend}
			}
		}
	}
	return nil
}

// nodeExtras is what the replies of the hops that make a graph node said
// beyond the hop: the distinct label stacks and interfaces, and the union
// of the rewrites.
type nodeExtras struct {
	stacks    [][]MPLSLabel
	ifs       []InterfaceInfo
	truncated bool
	rewrites  Rewrites
	tos       []uint8 // the distinct quoted TOS bytes, with RewriteTOS
}

// maxNodeStacks is the most label stacks a DOT label lists; the tooltip
// has them all.
const maxNodeStacks = 2

// graphExtras returns the nodeExtras of every node of g (built from t),
// nil when no hop has any.
func graphExtras(t *Trace, g *Graph) []nodeExtras {
	var out []nodeExtras
	for fi := range t.Flows {
		for i, n := range g.flowNodes[fi] {
			h := &t.Flows[fi].Hops[i]
			if len(h.MPLS) == 0 && len(h.Interfaces) == 0 && h.Rewrites == 0 {
				continue
			}
			if out == nil {
				out = make([]nodeExtras, len(g.Nodes))
			}
			x := &out[n]
			if len(h.MPLS) > 0 && !slices.ContainsFunc(x.stacks, func(s []MPLSLabel) bool { return slices.Equal(s, h.MPLS) }) {
				x.stacks = append(x.stacks, h.MPLS)
			}
			for _, i := range h.Interfaces {
				if !slices.Contains(x.ifs, i) {
					x.ifs = append(x.ifs, i)
				}
			}
			x.truncated = x.truncated || h.ExtFlags&ExtTruncated != 0
			x.rewrites |= h.Rewrites
			if h.Rewrites&RewriteTOS != 0 && !slices.Contains(x.tos, h.QuotedTOS) {
				x.tos = append(x.tos, h.QuotedTOS)
			}
		}
	}
	return out
}

// labelLines are the lines a DOT node label shows: "MPLS 16005/3" per
// label stack (at most maxNodeStacks, then "+N"), the interfaces ("in
// eth0, out eth1"), the rewrites ("tos rewritten").
func (x *nodeExtras) labelLines() []string {
	var out []string
	for k, s := range x.stacks {
		if k == maxNodeStacks {
			out = append(out, "MPLS +"+strconv.Itoa(len(x.stacks)-k))
			break
		}
		out = append(out, "MPLS "+mplsText(s))
	}
	if len(x.ifs) > 0 {
		var ls []string
		for _, i := range x.ifs {
			ls = append(ls, i.label())
		}
		out = append(out, strings.Join(ls, ", "))
	}
	if x.rewrites != 0 {
		out = append(out, strings.Join(x.rewrites.Names(), ",")+" rewritten")
	}
	return out
}

// tooltip is the text the DOT tooltip adds: every label stack entry,
// every interface field, the quoted TOS bytes.
func (x *nodeExtras) tooltip() string {
	var parts []string
	for _, s := range x.stacks {
		var es []string
		for _, l := range s {
			e := "label " + strconv.FormatUint(uint64(l.Label), 10) + " TC " + strconv.Itoa(int(l.TC)) + " TTL " + strconv.Itoa(int(l.TTL))
			if l.S {
				e += " S"
			}
			es = append(es, e)
		}
		parts = append(parts, "MPLS "+strings.Join(es, " / "))
	}
	if x.truncated {
		parts = append(parts, "more extensions than kept")
	}
	for _, i := range x.ifs {
		parts = append(parts, "interface "+i.details())
	}
	if x.rewrites != 0 {
		s := "probe rewritten: " + strings.Join(x.rewrites.Names(), ", ")
		for _, tos := range x.tos {
			s += ", quoted TOS " + strconv.Itoa(int(tos))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
