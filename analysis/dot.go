package analysis

import (
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dotEdgeLabelMax is the longest path ID list written on an edge; a longer
// one is replaced by a count ("12 path IDs"), the list staying in the
// edge's tooltip.
const dotEdgeLabelMax = 24

// WriteDOT writes t as a Graphviz digraph (graphviz.org/doc/info/lang.html)
// of its topology graph (BuildGraph), to be laid out with `dot`:
//
//   - the source, then one rank per TTL from left to right, with a "TTL n"
//     label heading each;
//   - a node per responding interface and TTL, labelled with its address
//     and mean RTT; the destination filled and bold, nodes where paths
//     diverge or converge with a double border;
//   - a dashed "*" node per silent hop of each path ID: nothing says that
//     two silent hops are the same router;
//   - an edge per link the flows took, labelled with their path IDs (or
//     their count when the list is long), thicker the more flows took it;
//   - when the destination never answered, a dashed node for it, apart;
//   - with an AS table (Hop.ASN), the AS of each node on a line of its
//     label ("AS64501", with the IXP when known), and the nodes of one AS
//     filled with one colour of dotASPalette;
//   - under it, what the node's replies said beyond the hop: a line per
//     MPLS label stack ("MPLS 16005/3"), a line of RFC 5837 interfaces
//     ("in eth0"), a line of the rewrites the probes show ("tos
//     rewritten"); the tooltip has every field of them.
//
// Each call writes one digraph; WriteGroupDOT draws several destinations in
// one.
func WriteDOT(w io.Writer, t *Trace, opts Options) error {
	_ = opts
	g := BuildGraph(t)
	var b strings.Builder
	dotHeader(&b, t, len(g.Branching))
	dotNodes(&b, t, g)
	dotEdges(&b, t, g)
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotHeader writes the digraph's opening, its defaults, and the TTL axis up
// to maxTTL: headings chained in rank order.
func dotHeader(b *strings.Builder, t *Trace, maxTTL int) {
	name := t.Name
	if name == "" {
		name = addrText(t.Destination)
	}
	b.WriteString("digraph ")
	b.WriteString(dotQuote("traceflow-fast to " + name))
	b.WriteString(" {\n")
	b.WriteString("\tlabel=" + dotQuote(header(t)+"\n"+t.Summary()) + ";\n")
	b.WriteString("\tlabelloc=t;\n\trankdir=LR;\n\tnewrank=true;\n\tranksep=0.6;\n\tnodesep=0.25;\n")
	b.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n")
	dotAxis(b, maxTTL)
}

// dotAxis writes the TTL axis up to maxTTL: headings chained in rank order.
func dotAxis(b *strings.Builder, maxTTL int) {
	b.WriteString("\t{\n\t\tnode [shape=plaintext, style=\"\", fontcolor=\"#555555\"];\n")
	b.WriteString("\t\tttl_0 [label=\"source\"];\n")
	for ttl := 1; ttl <= maxTTL; ttl++ {
		b.WriteString("\t\tttl_" + strconv.Itoa(ttl) + " [label=\"TTL " + strconv.Itoa(ttl) + "\"];\n")
	}
	b.WriteString("\t\tttl_0")
	for ttl := 1; ttl <= maxTTL; ttl++ {
		b.WriteString(" -> ttl_" + strconv.Itoa(ttl))
	}
	b.WriteString(" [style=invis];\n\t}\n")
}

// dotNodes writes the source and the nodes, one rank per TTL, and the
// destination apart when it never answered.
func dotNodes(b *strings.Builder, t *Trace, g *Graph) {
	b.WriteString("\tsource [shape=ellipse, label=" + dotQuote(sourceText(t.Source, t.Vantage)) + ", tooltip=\"source\"];\n")
	b.WriteString("\t{ rank=same; ttl_0; source; }\n")
	fills := dotASFills(g)
	extras := graphExtras(t, g)
	reached := false
	for i := 0; i < len(g.Nodes); {
		ttl := g.Nodes[i].TTL
		j := i
		for j < len(g.Nodes) && g.Nodes[j].TTL == ttl {
			j++
		}
		b.WriteString("\t{ rank=same; ttl_" + strconv.Itoa(ttl) + ";")
		for k := i; k < j; k++ {
			b.WriteString(" " + dotNodeID(NodeID(k)) + ";")
		}
		b.WriteString(" }\n")
		for k := i; k < j; k++ {
			n := &g.Nodes[k]
			reached = reached || n.Destination
			var x *nodeExtras
			if extras != nil {
				x = &extras[k]
			}
			b.WriteString("\t" + dotNodeID(n.ID) + " [" + dotNodeAttrs(n, fills[n.ASN], x) + "];\n")
		}
		i = j
	}
	if !reached {
		b.WriteString("\tdestination [label=" + dotQuote(addrText(t.Destination)+"\nnot reached") +
			", style=\"rounded,dashed\", color=\"#2e7d32\", tooltip=\"the destination did not answer\"];\n")
		b.WriteString("\t{ rank=max; destination; }\n")
	}
}

// dotEdges writes the edges: from the source to each flow's first hop (the
// path IDs of a node that no link brings there), then one per link.
func dotEdges(b *strings.Builder, t *Trace, g *Graph) {
	flows := len(t.Flows)
	arriving := make([][]int, len(g.Nodes))
	for _, l := range g.Links {
		arriving[l.To] = append(arriving[l.To], l.PathIDs...)
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		first := subtractSorted(n.PathIDs, arriving[i])
		if len(first) == 0 {
			continue
		}
		b.WriteString("\tsource -> " + dotNodeID(n.ID) + " [" + dotEdgeAttrs(first, flows, n.Silent) + "];\n")
	}
	for _, l := range g.Links {
		dashed := g.Nodes[l.From].Silent || g.Nodes[l.To].Silent
		b.WriteString("\t" + dotNodeID(l.From) + " -> " + dotNodeID(l.To) + " [" + dotEdgeAttrs(l.PathIDs, flows, dashed) + "];\n")
	}
}

func dotNodeID(n NodeID) string { return "n" + strconv.Itoa(int(n)) }

// dotASPalette are the fill colours of the ASes, light enough for black
// text, given in AS number order (and reused past the last).
var dotASPalette = []string{"#bbdefb", "#ffe0b2", "#e1bee7", "#fff9c4", "#b2dfdb", "#f8bbd0", "#d7ccc8", "#c5cae9", "#dcedc8", "#cfd8dc"}

// dotASFills returns the fill colour of each AS of g's nodes.
func dotASFills(g *Graph) map[uint32]string {
	var asns []uint32
	for i := range g.Nodes {
		if a := g.Nodes[i].ASN; a != 0 && !slices.Contains(asns, a) {
			asns = append(asns, a)
		}
	}
	slices.Sort(asns)
	fills := make(map[uint32]string, len(asns))
	for i, a := range asns {
		fills[a] = dotASPalette[i%len(dotASPalette)]
	}
	return fills
}

// dotASText is the AS line of a node's label: "AS64501", "AS64501, IX
// LAB-IX", "IX LAB-IX" or "".
func dotASText(n *Node) string {
	var parts []string
	if n.ASN != 0 {
		parts = append(parts, "AS"+strconv.FormatUint(uint64(n.ASN), 10))
	}
	if n.IXP != "" {
		parts = append(parts, "IX "+n.IXP)
	}
	return strings.Join(parts, ", ")
}

// dotNodeAttrs returns the attributes of node n; fill is the colour of its
// AS, "" when none; x what its replies said beyond the hop (MPLS labels,
// interfaces, rewrites), nil when nothing.
func dotNodeAttrs(n *Node, fill string, x *nodeExtras) string {
	ids := "path ID"
	if len(n.PathIDs) != 1 {
		ids = "path IDs"
	}
	ids += " " + IDRanges(n.PathIDs)
	ttl := "TTL " + strconv.Itoa(n.TTL)
	if n.Silent {
		return "label=\"*\", shape=circle, style=dashed, width=0.3, fixedsize=true, color=\"#999999\", tooltip=" +
			dotQuote("silent: "+ttl+", "+ids)
	}
	label := n.Addr.String() + "\n" + dotMillis(n.RTTAvg)
	tip := n.Addr.String() + ", " + ttl + ", " + ids + ", RTT " + dotMillis(n.RTTMin) + " / " + dotMillis(n.RTTAvg) + " / " + dotMillis(n.RTTMax) + " (min / avg / max)"
	if as := dotASText(n); as != "" {
		label += "\n" + as
		tip += ", " + as
	}
	if x != nil {
		for _, l := range x.labelLines() {
			label += "\n" + l
		}
		if s := x.tooltip(); s != "" {
			tip += ", " + s
		}
	}
	var attrs []string
	style := "rounded"
	switch {
	case n.Destination:
		style += ",filled,bold"
		if fill == "" {
			fill = "#c8e6c9"
		}
		attrs = append(attrs, "fillcolor=\""+fill+"\"", "color=\"#2e7d32\"", "penwidth=2")
		tip += ", destination"
	case fill != "":
		style += ",filled"
		attrs = append(attrs, "fillcolor=\""+fill+"\"")
	}
	if n.PerPacket {
		// A per-packet balancer: its next hops are draws, not flows'.
		label += "\nper-packet"
		tip += ", per-packet load balancer"
		attrs = append(attrs, "color=\"#c62828\"", "penwidth=2")
	}
	if n.Diverge || n.Converge {
		attrs = append(attrs, "peripheries=2")
		if n.Diverge {
			tip += ", paths diverge"
		}
		if n.Converge {
			tip += ", paths converge"
		}
	}
	return "label=" + dotQuote(label) + ", style=\"" + style + "\", " + strings.Join(append(attrs, "tooltip="+dotQuote(tip)), ", ")
}

func dotEdgeAttrs(pathIDs []int, flows int, dashed bool) string {
	list := IDRanges(pathIDs)
	label := list
	if len(label) > dotEdgeLabelMax {
		label = plural(len(pathIDs), "path ID", "path IDs")
	}
	width := 1.0
	if flows > 0 {
		width += 2 * float64(len(pathIDs)) / float64(flows)
	}
	s := "label=" + dotQuote(label) + ", tooltip=" + dotQuote(plural(len(pathIDs), "path ID", "path IDs")+": "+list) +
		", penwidth=" + strconv.FormatFloat(width, 'f', 2, 64)
	if dashed {
		s += ", style=dashed"
	}
	return s
}

// dotMillis renders a duration as milliseconds with three decimals.
func dotMillis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + " ms"
}

// dotQuote returns s as a DOT double-quoted string: quotes and backslashes
// escaped, line breaks as \n (a centred line break in a label), other
// control characters as spaces.
func dotQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// subtractSorted returns the elements of a (ascending) not in b (any
// order).
func subtractSorted(a, b []int) []int {
	if len(b) == 0 {
		return a
	}
	in := make(map[int]bool, len(b))
	for _, x := range b {
		in[x] = true
	}
	var out []int
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

// sourceText is the label of the source node: its address, after the name
// of the agent that traced from it, if any.
func sourceText(src netip.Addr, vantage string) string {
	if vantage != "" {
		return "agent " + vantage + "\n" + addrText(src)
	}
	return addrText(src)
}
