package analysis

import (
	"slices"
	"strconv"
	"strings"
)

// ASPath returns the AS path of a sequence of hops: the origin AS of each
// hop (Hop.ASN) with consecutive repeats collapsed. A hop of unknown AS (not
// in the database, or silent) is kept as a gap, 0, and a run of such hops is
// one gap: 64500 0 64500 says that something unknown sat between two hops of
// AS64500.
func ASPath(hops []Hop) []uint32 {
	path := make([]uint32, 0, 4)
	for i, h := range hops {
		asn := h.ASN
		if h.Silent() {
			asn = 0
		}
		if i > 0 && path[len(path)-1] == asn {
			continue
		}
		path = append(path, asn)
	}
	return path
}

// knownASes is an AS path without its gaps, consecutive repeats collapsed
// again: the ASes a path is known to cross, in order.
func knownASes(path []uint32) []uint32 {
	var out []uint32
	for _, asn := range path {
		if asn != 0 && (len(out) == 0 || out[len(out)-1] != asn) {
			out = append(out, asn)
		}
	}
	return out
}

// ASPaths returns the distinct AS-level routes of t's flows, or nil unless
// t.HasASN. A route is an AS path without its gaps: the ASes the flows are
// known to cross, in order. A path with gaps (unknown or silent hops) adds
// no route when some route fits it, a gap standing for any ASes or none
// (64500 * 64510 fits 64500 64501 64510), and a flow that did not reach the
// destination adds none when it is the beginning of a route: it stopped
// early, it did not go elsewhere. Routes come in the order of the first path
// ID that took each.
func (t *Trace) ASPaths() [][]uint32 {
	if !t.HasASN {
		return nil
	}
	ups := t.UniquePaths()
	// The most telling paths first: reached before not reached, then
	// without gaps before with gaps.
	order := make([]int, len(ups))
	for i := range order {
		order[i] = i
	}
	rank := func(up *UniquePath) int {
		r := 0
		if !up.Reached {
			r += 2
		}
		if slices.Contains(up.ASPath, 0) {
			r++
		}
		return r
	}
	slices.SortStableFunc(order, func(a, b int) int { return rank(&ups[a]) - rank(&ups[b]) })
	type route struct {
		ases  []uint32
		first int // index in ups of the path that gave it
	}
	var routes []route
	for _, i := range order {
		up := &ups[i]
		if slices.ContainsFunc(routes, func(r route) bool { return asPathFits(up.ASPath, r.ases, !up.Reached) }) {
			continue
		}
		if ases := knownASes(up.ASPath); len(ases) > 0 {
			routes = append(routes, route{ases, i})
		}
	}
	slices.SortStableFunc(routes, func(a, b route) int { return a.first - b.first })
	out := make([][]uint32, len(routes))
	for i, r := range routes {
		out[i] = r.ases
	}
	return out
}

// asPathFits reports whether the AS path p (0 = a gap, standing for any
// ASes or none) can be the route r; with prefix, whether it can be the
// beginning of r. An AS of p may also stand for nothing when it repeats the
// AS matched just before (64500 * 64500 fits 64500: repeats were collapsed).
func asPathFits(p, r []uint32, prefix bool) bool {
	// fits[j] says whether p[i:] can match r[j:]; computed for i from the
	// end of p down to 0.
	fits := make([]bool, len(r)+1)
	for j := range fits {
		fits[j] = prefix || j == len(r)
	}
	next := make([]bool, len(r)+1)
	for i := len(p) - 1; i >= 0; i-- {
		for j := len(r); j >= 0; j-- {
			switch {
			case p[i] == 0:
				next[j] = fits[j] || (j < len(r) && next[j+1])
			default:
				next[j] = (j < len(r) && r[j] == p[i] && fits[j+1]) || (j > 0 && r[j-1] == p[i] && fits[j])
			}
		}
		fits, next = next, fits
	}
	return fits[0]
}

// ASPathDivergence reports whether t's flows cross different AS paths
// (ASPaths has more than one): the destination is reached over several
// neighbouring ASes at once, as with BGP multipath and as-path-relax.
func (t *Trace) ASPathDivergence() bool {
	return len(t.ASPaths()) > 1
}

// FormatASPath renders an AS path as "AS64500 * AS64501", "*" for a gap.
func FormatASPath(path []uint32) string {
	var b strings.Builder
	for i, asn := range path {
		if i > 0 {
			b.WriteByte(' ')
		}
		if asn == 0 {
			b.WriteByte('*')
			continue
		}
		b.WriteString("AS")
		b.WriteString(strconv.FormatUint(uint64(asn), 10))
	}
	return b.String()
}

// hopText renders the address of an answering hop with its annotations,
// like traceroute: "10.0.0.1", "r1.example (10.0.0.1)", and when an AS or
// IXP is known "10.0.0.1 [AS64500]", "10.0.0.1 [AS64500, IX LAB-IX]".
func hopText(h Hop) string {
	s := h.Addr.String()
	if h.Hostname != "" {
		s = h.Hostname + " (" + s + ")"
	}
	var notes []string
	if h.ASN != 0 {
		notes = append(notes, "AS"+strconv.FormatUint(uint64(h.ASN), 10))
	}
	if h.IXP != "" {
		notes = append(notes, "IX "+h.IXP)
	}
	if len(notes) > 0 {
		s += " [" + strings.Join(notes, ", ") + "]"
	}
	return s
}

// asLines are the lines the tables print above the summary when t.HasASN:
// each AS path with the path IDs that took it, then, when the flows cross
// several AS-level routes, a line saying so.
func asLines(t *Trace) []string {
	if !t.HasASN {
		return nil
	}
	var paths [][]uint32
	var ids [][]int
	for _, up := range t.UniquePaths() {
		i := slices.IndexFunc(paths, func(p []uint32) bool { return slices.Equal(p, up.ASPath) })
		if i < 0 {
			paths, ids = append(paths, up.ASPath), append(ids, nil)
			i = len(paths) - 1
		}
		ids[i] = append(ids[i], up.PathIDs...)
	}
	var lines []string
	for i, p := range paths {
		slices.Sort(ids[i])
		noun := "path IDs "
		if len(ids[i]) == 1 {
			noun = "path ID "
		}
		text := FormatASPath(p)
		if text == "" {
			text = "(no hop answered)"
		}
		lines = append(lines, "AS path "+text+" ("+noun+IDRanges(ids[i])+")")
	}
	if routes := t.ASPaths(); len(routes) > 1 {
		lines = append(lines, "AS path divergence: the flows cross "+strconv.Itoa(len(routes))+" different AS paths")
	}
	return lines
}
