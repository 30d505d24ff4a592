package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// View is what the keys set: how the rows are shown and which part of
// them.
type View struct {
	ByID   bool // a row per path ID, not per distinct path
	Paused bool // the screen keeps the state it showed when paused
	Help   bool // the help screen instead of the paths
	Top    int  // the first row shown
	Left   int  // the first TTL shown, less one
	Dest   int  // the destination shown (0-based)
	// Status, when set, is the run's state in the title line ("done",
	// "interrupted"); Log is the last line logged.
	Status, Log string
}

// Smallest screen the view draws in; below it, it says so.
const (
	MinWidth  = 40
	MinHeight = 10
)

// Geometry of the screen: the title, counts and TTL lines above the rows,
// the keys' line and the last log line below; a row takes rowLines lines, its label labelWidth
// columns, a hop at least minCell (a gap included).
const (
	headLines  = 3
	footLines  = 2
	rowLines   = 3
	labelWidth = 8
	minCell    = 18
	maxCell    = 42
	maxNamed   = 30 // the widest a name makes a hop
)

// layout is where things go on a screen of a size.
type layout struct {
	cell     int // columns of a hop, its gap included
	cols     int // TTLs shown
	rowsShow int // rows shown
	ttls     int // TTLs of the longest row
}

func newLayout(rows []Row, width, height int) layout {
	l := layout{cell: minCell}
	for i := range rows {
		l.ttls = max(l.ttls, len(rows[i].Hops))
		for _, h := range rows[i].Hops {
			w := len(h.Addr.String()) + 3
			if h.Name != "" {
				w = min(w+1+len(h.Name), maxNamed)
			}
			l.cell = max(l.cell, w)
		}
	}
	l.cell = min(l.cell, maxCell, width-labelWidth)
	l.cols = max(1, (width-labelWidth)/l.cell)
	l.rowsShow = max(1, (height-headLines-footLines)/rowLines)
	return l
}

// clamp keeps v's scroll within what there is to show.
func (l layout) clamp(v *View, rows int) {
	v.Top = min(max(v.Top, 0), max(rows-l.rowsShow, 0))
	v.Left = min(max(v.Left, 0), max(l.ttls-l.cols, 0))
}

// Render returns the lines of a screen of width x height showing s as v
// says: exactly height lines, none wider than width (in bytes: the view
// writes ASCII only).
func Render(s *Snapshot, v View, width, height int) []string {
	if width < MinWidth || height < MinHeight {
		return fit([]string{fmt.Sprintf("terminal too small: %dx%d, the view needs %dx%d (q quits)", width, height, MinWidth, MinHeight)}, width, height)
	}
	if v.Help {
		return fit(append(helpLines(), "", "any key returns to the paths"), width, height)
	}
	rows := Rows(s, v.ByID)
	l := newLayout(rows, width, height)
	l.clamp(&v, len(rows))
	out := header(s, &v, rows, l)
	for r := v.Top; r < min(len(rows), v.Top+l.rowsShow); r++ {
		out = append(out, rowLinesOf(&rows[r], r, &v, l)...)
	}
	for len(out) < height-footLines {
		out = append(out, "")
	}
	out = append(out[:height-footLines], footer(&v, len(rows), l), v.Log)
	return fit(out, width, height)
}

// header is the title, the counts and the TTLs shown.
func header(s *Snapshot, v *View, rows []Row, l layout) []string {
	title := "traceflow-fast --tui: waiting for the first probe"
	if s.Dst.IsValid() {
		name := s.Dst.String()
		if s.Name != "" {
			name = s.Name + " (" + name + ")"
		}
		title = "traceflow-fast to " + name
		if s.Count > 1 {
			title += fmt.Sprintf("  [destination %d of %d: n next]", s.Index+1, s.Count)
		}
		if s.Monitor {
			// Shorter, for the change to fit in 80 columns.
			title = "monitor " + name
			if s.Count > 1 {
				title += fmt.Sprintf(" [%d/%d n next]", s.Index+1, s.Count)
			}
			if !s.Changed.IsZero() {
				title += "  CHANGED " + clock(s.Changed) + " " + s.Change
			}
		}
	}
	state := "running"
	switch {
	case s.Monitor && s.Rounds == 0 && !v.Paused && v.Status == "":
		state = "first round"
	case v.Paused:
		state = "PAUSED (p resumes)"
	case v.Status != "":
		state = v.Status
	case s.Done() && !s.Monitor:
		state = "done"
	}
	ids := make(map[int]bool)
	for i := range rows {
		for _, id := range rows[i].PathIDs {
			ids[id] = true
		}
	}
	counts := fmt.Sprintf("[%s]  ", state)
	if s.Monitor {
		counts += fmt.Sprintf("round %d  ", s.Rounds)
	}
	if v.ByID {
		counts += fmt.Sprintf("%d path IDs", len(rows))
	} else {
		counts += fmt.Sprintf("%d distinct paths among %d path IDs", len(rows), len(ids))
	}
	counts += fmt.Sprintf("  sent %d  replies %d", s.Sent, s.Replies)
	if s.Err != "" {
		// The last round could not trace the destination: why, in
		// place of the counts (none).
		counts = fmt.Sprintf("[%s]  round %d  error: %s", state, s.Rounds, s.Err)
	}
	ttl := pad("TTL", labelWidth)
	for c := v.Left; c < min(v.Left+l.cols, max(l.ttls, 1)); c++ {
		ttl += pad(strconv.Itoa(c+1), l.cell)
	}
	return []string{title, counts, ttl}
}

// rowLinesOf draws row r: the label, then per TTL shown the hop's address
// (">" before it: paths converge there; "<" after it: they diverge), its
// loss and average, and its last, best and worst round-trip times (ms).
func rowLinesOf(row *Row, r int, v *View, l layout) []string {
	lines := make([]string, rowLines)
	if v.ByID {
		lines[0] = pad("id "+strconv.Itoa(row.PathIDs[0]), labelWidth)
		lines[1], lines[2] = pad("", labelWidth), pad("", labelWidth)
	} else {
		lines[0] = pad("path "+strconv.Itoa(r+1), labelWidth)
		lines[1] = pad(fmt.Sprintf("%d ID%s", len(row.PathIDs), plural(len(row.PathIDs))), labelWidth)
		lines[2] = pad(idList(row.PathIDs, labelWidth-1), labelWidth)
	}
	if !row.Changed.IsZero() {
		// A monitor reported this path changed: when, instead of its
		// path IDs (d shows them).
		lines[0] = pad("*"+strings.TrimSpace(lines[0]), labelWidth)
		lines[1], lines[2] = pad("changed", labelWidth), pad(clock(row.Changed), labelWidth)
	}
	for t := v.Left; t < min(v.Left+l.cols, len(row.Hops)); t++ {
		c := hopCell(row, t)
		for i := range lines {
			// A gap of one column at least: a name is cut short.
			lines[i] += pad(pad(c[i], l.cell-1), l.cell)
		}
	}
	return lines
}

// hopCell is the three lines of the hop at TTL index t.
func hopCell(row *Row, t int) [rowLines]string {
	h := &row.Hops[t]
	var c [rowLines]string
	conv, div := " ", ""
	if row.Converge[t] {
		conv = ">"
	}
	if row.Diverge[t] {
		div = "<"
	}
	switch {
	case h.Addr.IsValid():
		c[0] = conv + h.Addr.String() + div
		if h.Name != "" {
			c[0] += " " + h.Name
		}
	case h.Sent == 0 && !h.Inferred:
		c[0] = " ."
	default:
		c[0] = " *"
	}
	switch {
	case h.Inferred && h.Sent == 0:
		c[1] = " (inferred)"
	case h.Recv > 0:
		c[1] = fmt.Sprintf(" %3.0f%% %s", h.Loss(), ms(h.Avg()))
		c[2] = " " + ms(h.Last) + " " + ms(h.Best) + " " + ms(h.Worst)
	case h.Sent > 0:
		c[1] = fmt.Sprintf(" %3.0f%%", h.Loss())
	}
	return c
}

// footer is where the scroll is, and the keys.
func footer(v *View, rows int, l layout) string {
	keys := "q quit  p pause  d " + map[bool]string{false: "path IDs", true: "distinct paths"}[v.ByID] + "  arrows scroll  ? help"
	where := fmt.Sprintf("rows %d-%d/%d TTLs %d-%d/%d", min(v.Top+1, rows), min(v.Top+l.rowsShow, rows), rows,
		min(v.Left+1, l.ttls), min(v.Left+l.cols, l.ttls), l.ttls)
	return where + "  " + keys
}

// helpLines is the help screen.
func helpLines() []string {
	return []string{
		"traceflow-fast --tui: the paths to the destination, live",
		"",
		"A row is a distinct path (or, after d, a path ID); a column is a TTL.",
		"Per hop: its address, then loss % and the average round trip,",
		"then the last, best and worst round trips, in milliseconds.",
		"  >ADDR   paths from different hops converge at this hop",
		"  ADDR<   paths that share this hop diverge after it",
		"  *       no answer (yet)     .  not probed (yet)",
		"",
		"  q, ^C        quit (the results are still written, to --output if given)",
		"  p            pause the screen (the run goes on)",
		"  d            distinct paths / path IDs",
		"  arrows       scroll rows and TTLs (PgUp, PgDn, Home too)",
		"  n, N         next, previous destination",
		"",
		"monitor --tui: the paths of each destination's last round, the rounds",
		"counted; CHANGED gives the time and the diff of the last change reported,",
		"and *path, \"changed\" and its time mark each path it added or changed.",
		"  ?            this help",
	}
}

// clock writes the time of day of t, to the second, in local time.
func clock(t time.Time) string { return t.Local().Format("15:04:05") }

// ms writes d in milliseconds with 3 significant digits at most.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case f < 100:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 0, 64)
}

// idList writes path IDs as a list no longer than n, "+" when cut.
func idList(ids []int, n int) string {
	s := ""
	for i, id := range ids {
		next := strconv.Itoa(id)
		if i > 0 {
			next = "," + next
		}
		if len(s)+len(next) > n || (i < len(ids)-1 && len(s)+len(next) == n) {
			return s + "+"
		}
		s += next
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// pad cuts or fills s to n columns.
func pad(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

// fit makes lines exactly height lines, none wider than width.
func fit(lines []string, width, height int) []string {
	out := make([]string, height)
	for i := range out {
		if i < len(lines) {
			out[i] = strings.TrimRight(lines[i], " ")
			if len(out[i]) > width {
				out[i] = out[i][:width]
			}
		}
	}
	return out
}
