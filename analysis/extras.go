package analysis

import (
	"slices"
	"strconv"
	"strings"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// What a reply says beyond its hop: the MPLS label stack and interface
// information of its ICMP extensions (RFC 4884, 4950, 5837), and how the
// probe it quotes was changed on its way by a middlebox. Their types are
// probe's, which decodes them: probe.MPLSLabel, probe.InterfaceInfo (with
// probe.IfRole), probe.ExtFlag and probe.Rewrite.

// ifRoleShort are the roles as the tables mark them.
var ifRoleShort = [...]string{"in", "sub-ip", "out", "next hop"}

// parseIfRole returns the role named s (see probe.IfRole.String).
func parseIfRole(s string) (probe.IfRole, bool) {
	for r := probe.IfIncoming; r <= probe.IfNextHop; r++ {
		if r.String() == s {
			return r, true
		}
	}
	return 0, false
}

// ifLabel renders an interface as the tables and DOT labels show it: its
// role and name, or ifindex, or address ("in eth0", "out #7").
func ifLabel(i probe.InterfaceInfo) string {
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

// ifDetails renders every field an interface object carries: "incoming
// eth0, ifindex 7, 10.1.1.2, MTU 1500".
func ifDetails(i probe.InterfaceInfo) string {
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

// rewriteNames are the names of the rewrites probe knows, rewriteNames[i]
// that of the rewrite 1<<i (probe.Rewrite.Names lists them in bit order).
var rewriteNames = probe.Rewrite(0xff).Names()

// parseRewrite returns the rewrite named name (see probe.Rewrite.Names).
func parseRewrite(name string) (probe.Rewrite, bool) {
	i := slices.Index(rewriteNames, name)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// cellRewrite records the rewrites seen by the answer to cells[i].
type cellRewrite struct {
	i   int32
	rw  probe.Rewrite
	tos uint8 // the quoted TOS
}

// cellExt records the extensions of the answer to cells[i].
type cellExt struct {
	i   int32
	ext probe.AnswerExt
}

// Extras records what a, the first answer to the probe (a.Path, a.TTL),
// said beyond its hop: how the probe it quotes was rewritten on its way
// (a.Rewrites, with a.QTOS the TOS byte it quoted) and its ICMP extensions
// (a.Ext). Call it once, after Reply returned true. Only answers with
// something to record take room, in tables beside the cells, which keep
// their memory across Reset: in a run where nothing is rewritten and no
// router sends extensions it costs a test per answer.
func (c *Collector) Extras(a *probe.Answer) {
	if a.Rewrites == 0 && a.Ext.Empty() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index(int(a.Path), int(a.TTL))
	if !ok || !c.cells[i].Answered() {
		return
	}
	if a.Rewrites != 0 {
		c.rewrites = append(c.rewrites, cellRewrite{i: int32(i), rw: a.Rewrites, tos: a.QTOS})
	}
	if !a.Ext.Empty() {
		c.exts = append(c.exts, cellExt{i: int32(i), ext: a.Ext})
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
			if r.rw&probe.RewriteTOS != 0 {
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
		h.MPLS, h.Interfaces = x.Slices()
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
		if h.ExtFlags&probe.ExtTruncated != 0 {
			s += "+"
		}
		notes = append(notes, s)
	}
	for _, i := range h.Interfaces {
		notes = append(notes, ifLabel(i))
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
func mplsText(ls []probe.MPLSLabel) string {
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
	stacks    [][]probe.MPLSLabel
	ifs       []probe.InterfaceInfo
	truncated bool
	rewrites  probe.Rewrite
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
			if len(h.MPLS) > 0 && !slices.ContainsFunc(x.stacks, func(s []probe.MPLSLabel) bool { return slices.Equal(s, h.MPLS) }) {
				x.stacks = append(x.stacks, h.MPLS)
			}
			for _, i := range h.Interfaces {
				if !slices.Contains(x.ifs, i) {
					x.ifs = append(x.ifs, i)
				}
			}
			x.truncated = x.truncated || h.ExtFlags&probe.ExtTruncated != 0
			x.rewrites |= h.Rewrites
			if h.Rewrites&probe.RewriteTOS != 0 && !slices.Contains(x.tos, h.QuotedTOS) {
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
			ls = append(ls, ifLabel(i))
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
		parts = append(parts, "interface "+ifDetails(i))
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
