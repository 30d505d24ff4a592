package analysis

import (
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Options select how a Trace is written.
type Options struct {
	// Dedup writes one row (vert) or column (horiz) per distinct path,
	// labelled with the path IDs that took it, instead of one per path ID.
	Dedup bool
}

// minCellWidth is the cell width of the seed's tables.
const minCellWidth = 18

// table is a Trace laid out as labelled lines of cells, one per TTL.
type table struct {
	labels   []string
	cells    [][]string // cells[i] has the true length of line i
	cols     int        // the longest line
	distinct int
	notes    []string // lines under the table (Dedup: the graph's marks, diamonds, ...)
}

func makeTable(t *Trace, opts Options) table {
	groups := t.groups()
	tb := table{distinct: len(groups)}
	add := func(label string, f *Flow) {
		row := make([]string, len(f.Hops))
		for i, h := range f.Hops {
			row[i] = hopCell(f, h)
		}
		tb.labels = append(tb.labels, label)
		tb.cells = append(tb.cells, row)
		tb.cols = max(tb.cols, len(row))
	}
	if opts.Dedup {
		gr := BuildGraph(t)
		marked := false
		for gi, g := range groups {
			ids := make([]int, len(g))
			for j, fi := range g {
				ids[j] = t.Flows[fi].PathID
			}
			noun := "IDs"
			if len(ids) == 1 {
				noun = "ID"
			}
			add("Path "+strconv.Itoa(gi+1)+" ("+noun+" "+IDRanges(ids)+")", &t.Flows[g[0]])
			marked = gr.markRow(g[0], tb.cells[len(tb.cells)-1]) || marked
		}
		tb.notes = append(gr.notes(marked), rttLines(t, gr, groups)...)
	} else {
		for i := range t.Flows {
			add("Path ID "+strconv.Itoa(t.Flows[i].PathID), &t.Flows[i])
		}
		// The balancers (and route changes) the MDA found, whose rows
		// are draws of theirs (the Dedup notes have every probe
		// answered from several addresses).
		for _, pp := range t.PerPacket {
			if pp.Vertex.IsValid() {
				tb.notes = append(tb.notes, perPacketNotes([]PerPacketHop{pp})...)
			}
		}
	}
	tb.notes = append(tb.notes, rewriteNotes(t)...)
	tb.notes = append(tb.notes, reusedNotes(t)...)
	return tb
}

// reusedNotes says which vertices took their next hops from another
// destination's probes (the stop set), grouped by that destination:
// "TTL 1 10.0.0.1, TTL 2 10.1.1.2: next hops as probed towards 10.99.0.7".
func reusedNotes(t *Trace) []string {
	var lines []string
	for i := 0; i < len(t.Reused); {
		from := t.Reused[i].From
		var b strings.Builder
		for ; i < len(t.Reused) && t.Reused[i].From == from; i++ {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString("TTL " + strconv.Itoa(t.Reused[i].TTL) + " " + addrText(t.Reused[i].Addr))
		}
		lines = append(lines, b.String()+": next hops as probed towards "+addrText(from))
	}
	return lines
}

// hopCell renders a hop: "*" when silent ("* (ADDR?)" when it is probably
// ADDR limiting its ICMP rate, see MarkRateLimited; "* (rate-limited)" when
// the budget explained its silences but did not settle it, see
// Hop.Unsettled), else its address,
// followed like traceroute's by !N, !H, !P, !F, !S, !X or !<code> when a
// router (not the destination) answered with a destination unreachable
// (ICMPv6: !N no route, !X administratively prohibited, !H address
// unreachable, or !<code>).
func hopCell(f *Flow, h Hop) string {
	if h.Silent() {
		if h.RateLimited.IsValid() {
			return "* (" + h.RateLimited.String() + "?)"
		}
		if h.Unsettled {
			return "* (rate-limited)"
		}
		return "*"
	}
	s := hopText(h) + extMarks(&h)
	if !unreachable(h.ICMPType, h.Addr) || (f.Reached && h.TTL == f.ReachedTTL) {
		return s
	}
	if h.Addr.Is6() && !h.Addr.Is4In6() {
		switch h.ICMPCode {
		case 0:
			return s + " !N"
		case 1:
			return s + " !X"
		case 3:
			return s + " !H"
		}
		return s + " !" + strconv.Itoa(int(h.ICMPCode))
	}
	switch h.ICMPCode {
	case 0:
		return s + " !N"
	case 1:
		return s + " !H"
	case 2:
		return s + " !P"
	case 4:
		return s + " !F"
	case 5:
		return s + " !S"
	case 9, 10, 13:
		return s + " !X"
	}
	return s + " !" + strconv.Itoa(int(h.ICMPCode))
}

// header is the line above the tables.
func header(t *Trace) string {
	name := t.Name
	if name == "" {
		name = addrText(t.Destination)
	}
	maxTTL := t.MaxTTL
	if maxTTL == 0 {
		for _, f := range t.Flows {
			maxTTL = max(maxTTL, len(f.Hops))
		}
	}
	from := addrText(t.Source)
	if t.Vantage != "" {
		from += " (agent " + t.Vantage + ")"
	}
	s := "traceflow-fast to " + name + " (" + addrText(t.Destination) + ") from " + from +
		", " + plural(len(t.Flows), "path ID", "path IDs") + ", max TTL " + strconv.Itoa(maxTTL)
	if t.Partial {
		s += ", partial (interrupted)"
	}
	return s
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "?"
	}
	return a.String()
}

// grid writes rows of cells padded like the seed's tables: "cell| " with
// the label column labelWidth wide and the others cellWidth wide.
type grid struct {
	b                     strings.Builder
	labelWidth, cellWidth int
}

func (g *grid) row(label string, cells []string, n int) {
	g.pad(label, g.labelWidth)
	for i := range n {
		var c string
		if i < len(cells) {
			c = cells[i]
		}
		g.b.WriteString("| ")
		g.pad(c, g.cellWidth)
	}
	g.b.WriteString("|\n")
}

func (g *grid) pad(s string, w int) {
	g.b.WriteString(s)
	for n := len(s); n < w; n++ {
		g.b.WriteByte(' ')
	}
}

func (g *grid) line(s string) {
	g.b.WriteString(s)
	g.b.WriteByte('\n')
}

// widest returns a cell width that leaves at least one space after the
// longest of ss, and is no less than least.
func widest(least int, ss ...[]string) int {
	w := least
	for _, s := range ss {
		for _, c := range s {
			w = max(w, len(c)+1)
		}
	}
	return w
}

// WriteVert writes t as the seed's vertical table: a header line, a row of
// TTLs, one row per path ID (or per distinct path with opts.Dedup) holding
// its true length of hops ("*" when silent, blank after the flow's end), and
// the summary line, e.g. "2 distinct paths among 16 path IDs".
func WriteVert(w io.Writer, t *Trace, opts Options) error {
	tb := makeTable(t, opts)
	g := grid{labelWidth: widest(minCellWidth, tb.labels), cellWidth: widest(minCellWidth, tb.cells...)}
	ttls := make([]string, tb.cols)
	for i := range ttls {
		ttls[i] = strconv.Itoa(i + 1)
	}
	g.line(header(t))
	g.row("TTL:", ttls, tb.cols)
	for i, l := range tb.labels {
		g.row(l, tb.cells[i], tb.cols)
	}
	for _, l := range tb.notes {
		g.line(l)
	}
	for _, l := range asLines(t) {
		g.line(l)
	}
	g.line(PathsSummary(tb.distinct, len(t.Flows)))
	_, err := io.WriteString(w, g.b.String())
	return err
}

// WriteHoriz writes t transposed: a header line, a row of path labels, one
// row per TTL with a column per path ID (or per distinct path with
// opts.Dedup), and the summary line.
func WriteHoriz(w io.Writer, t *Trace, opts Options) error {
	tb := makeTable(t, opts)
	g := grid{
		labelWidth: widest(0, []string{"TTL:", strconv.Itoa(tb.cols)}),
		cellWidth:  widest(widest(minCellWidth, tb.labels), tb.cells...),
	}
	g.line(header(t))
	g.row("TTL:", tb.labels, len(tb.labels))
	row := make([]string, len(tb.labels))
	for ttl := 1; ttl <= tb.cols; ttl++ {
		for i, c := range tb.cells {
			row[i] = ""
			if ttl <= len(c) {
				row[i] = c[ttl-1]
			}
		}
		g.row(strconv.Itoa(ttl), row, len(row))
	}
	for _, l := range tb.notes {
		g.line(l)
	}
	for _, l := range asLines(t) {
		g.line(l)
	}
	g.line(PathsSummary(tb.distinct, len(t.Flows)))
	_, err := io.WriteString(w, g.b.String())
	return err
}
