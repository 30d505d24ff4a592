package analysis

import (
	"io"
	"slices"
	"strconv"
	"strings"
)

// dotTooltipPrefixes is the most prefixes a group's tooltip lists.
const dotTooltipPrefixes = 16

// WriteGroupDOT writes traces (a bulk scan) as one Graphviz digraph of
// their GroupGraph, to be laid out with `dot`:
//
//   - the source, then one rank per TTL from left to right, as in WriteDOT;
//   - a node per router that answered at a TTL (address, mean RTT and the
//     number of destinations its paths lead to; a double border where
//     paths diverge or converge; with an AS table, the AS line and fill of
//     WriteDOT), and a dashed "*" node per silent hop of a router path;
//   - a node per group of destinations, at the TTL past its last router:
//     where they are (their addresses, or the prefixes that cover them), how
//     many, and how many were reached; its tooltip lists the prefixes. A
//     group of one destination is the destination's node, filled green, or
//     dashed when it did not answer;
//   - an edge per link of the router paths, and from the end of each path
//     to each group that takes it, labelled with the number of destinations
//     whose paths take it, thicker the more.
func WriteGroupDOT(w io.Writer, traces []*Trace) error {
	gg := BuildGroupGraph(traces)
	var b strings.Builder
	maxTTL := 0
	for _, g := range gg.Groups {
		maxTTL = max(maxTTL, g.TTL)
	}
	title := "traceflow-fast to " + counted(gg.Destinations, "destination", "destinations")
	b.WriteString("digraph " + dotQuote(title) + " {\n")
	vantage := ""
	if len(traces) > 0 {
		vantage = traces[0].Vantage
	}
	from := addrText(gg.Source)
	if vantage != "" {
		from += " (agent " + vantage + ")"
	}
	label := "traceflow-fast from " + from + " to " + thousands(gg.Destinations) + " destinations\n" +
		thousands(gg.Reached) + " reached, " + counted(len(gg.Groups), "group", "groups") + " of destinations with the same router paths"
	b.WriteString("\tlabel=" + dotQuote(label) + ";\n")
	b.WriteString("\tlabelloc=t;\n\trankdir=LR;\n\tnewrank=true;\n\tranksep=0.6;\n\tnodesep=0.25;\n")
	b.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n")
	dotAxis(&b, maxTTL)
	b.WriteString("\tsource [shape=ellipse, label=" + dotQuote(sourceText(gg.Source, vantage)) + ", tooltip=\"source\"];\n")
	b.WriteString("\t{ rank=same; ttl_0; source; }\n")
	dotGroupRanks(&b, gg, maxTTL)
	fills := dotRouterFills(gg)
	for i := range gg.Routers {
		r := &gg.Routers[i]
		b.WriteString("\tr" + strconv.Itoa(i) + " [" + dotRouterAttrs(r, fills[r.ASN]) + "];\n")
	}
	for i := range gg.Groups {
		b.WriteString("\tg" + strconv.Itoa(i) + " [" + dotGroupAttrs(&gg.Groups[i], len(gg.Paths)) + "];\n")
	}
	for _, l := range gg.Links() {
		dotGroupEdge(&b, gg, &l)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotGroupRanks puts the routers and groups of each TTL in its rank.
func dotGroupRanks(b *strings.Builder, gg *GroupGraph, maxTTL int) {
	perTTL := make([][]string, maxTTL+1)
	for i, r := range gg.Routers {
		perTTL[r.TTL] = append(perTTL[r.TTL], "r"+strconv.Itoa(i))
	}
	for i, g := range gg.Groups {
		perTTL[g.TTL] = append(perTTL[g.TTL], "g"+strconv.Itoa(i))
	}
	for ttl := 1; ttl <= maxTTL; ttl++ {
		if len(perTTL[ttl]) == 0 {
			continue
		}
		b.WriteString("\t{ rank=same; ttl_" + strconv.Itoa(ttl) + ";")
		for _, id := range perTTL[ttl] {
			b.WriteString(" " + id + ";")
		}
		b.WriteString(" }\n")
	}
}

// dotRouterFills returns the fill colour of each AS of the routers.
func dotRouterFills(gg *GroupGraph) map[uint32]string {
	var asns []uint32
	for _, r := range gg.Routers {
		if r.ASN != 0 && !slices.Contains(asns, r.ASN) {
			asns = append(asns, r.ASN)
		}
	}
	slices.Sort(asns)
	fills := make(map[uint32]string, len(asns))
	for i, a := range asns {
		fills[a] = dotASPalette[i%len(dotASPalette)]
	}
	return fills
}

func dotRouterAttrs(r *Router, fill string) string {
	ttl := "TTL " + strconv.Itoa(r.TTL)
	towards := "towards " + counted(r.Destinations, "destination", "destinations")
	if r.Silent {
		return "label=\"*\", shape=circle, style=dashed, width=0.3, fixedsize=true, color=\"#999999\", tooltip=" +
			dotQuote("silent: "+ttl+", "+towards)
	}
	n := &Node{Addr: r.Addr, ASN: r.ASN, IXP: r.IXP}
	label := r.Addr.String() + "\n" + dotMillis(r.RTTAvg) + "\n" + thousands(r.Destinations) + " dst"
	tip := r.Addr.String() + ", " + ttl + ", " + towards + ", RTT " + dotMillis(r.RTTMin) + " / " + dotMillis(r.RTTAvg) + " / " + dotMillis(r.RTTMax) + " (min / avg / max)"
	if as := dotASText(n); as != "" {
		label += "\n" + as
		tip += ", " + as
	}
	attrs := "label=" + dotQuote(label) + ", style=\"rounded"
	if fill != "" {
		attrs += ",filled\", fillcolor=\"" + fill + "\""
	} else {
		attrs += "\""
	}
	if r.Diverge || r.Converge {
		attrs += ", peripheries=2"
		if r.Diverge {
			tip += ", paths diverge"
		}
		if r.Converge {
			tip += ", paths converge"
		}
	}
	return attrs + ", tooltip=" + dotQuote(tip)
}

// dotGroupAttrs returns the attributes of the node of group g; paths is
// the number of router paths of the graph.
func dotGroupAttrs(g *DestinationGroup, paths int) string {
	label := g.Label()
	style := "rounded,filled,bold"
	if g.Reached == 0 {
		style = "rounded,dashed"
		if len(g.Members) == 1 {
			label += "\nnot reached"
		}
	}
	var tip string
	if len(g.Members) == 1 {
		tip = "destination " + g.Members[0].Addr.String()
	} else {
		tip = thousands(len(g.Members)) + " destinations, " + thousands(g.Reached) + " reached, in " +
			counted(len(g.Prefixes), "prefix", "prefixes") + ": " + PrefixText(g.Prefixes[:min(len(g.Prefixes), dotTooltipPrefixes)])
		if len(g.Prefixes) > dotTooltipPrefixes {
			tip += " and " + thousands(len(g.Prefixes)-dotTooltipPrefixes) + " more"
		}
	}
	tip += "; " + counted(len(g.Paths), "router path", "router paths")
	if paths > 1 {
		tip += " of " + strconv.Itoa(paths)
	}
	return "label=" + dotQuote(label) + ", style=\"" + style + "\", fillcolor=\"#c8e6c9\", color=\"#2e7d32\", penwidth=2, tooltip=" + dotQuote(tip)
}

// dotGroupEdge writes the edge of link l, thicker the more destinations
// take it.
func dotGroupEdge(b *strings.Builder, gg *GroupGraph, l *GroupLink) {
	from, to := "source", "g"+strconv.Itoa(l.To)
	dashed := false
	if l.From >= 0 {
		from = "r" + strconv.Itoa(l.From)
		dashed = gg.Routers[l.From].Silent
	}
	if !l.ToGroup {
		to = "r" + strconv.Itoa(l.To)
		dashed = dashed || gg.Routers[l.To].Silent
	}
	width := 1.0
	if gg.Destinations > 0 {
		width += 3 * float64(l.Destinations) / float64(gg.Destinations)
	}
	b.WriteString("\t" + from + " -> " + to + " [label=" + dotQuote(thousands(l.Destinations)) +
		", tooltip=" + dotQuote(counted(l.Destinations, "destination", "destinations")+" over "+counted(len(l.Paths), "router path", "router paths")) +
		", penwidth=" + strconv.FormatFloat(width, 'f', 2, 64))
	if dashed {
		b.WriteString(", style=dashed")
	}
	b.WriteString("];\n")
}
