package viz

import (
	"encoding/json"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// MaxExpand is the most nodes a click on a group adds to the page: a larger
// group opens into blocks of destinations that share a prefix, which open
// the same way.
const MaxExpand = 64

// MaxSample is the number of destinations the tooltip of a link names.
const MaxSample = 8

// maxGroupPrefixes is the number of prefixes of a group the page lists.
const maxGroupPrefixes = 16

// Bulk is what the page of several destinations draws: the router graph
// once, and a node per group of destinations that share their router paths
// (analysis.BuildGroupGraph), which opens on a click. It is small whatever
// the number of destinations but for Members, which the page embeds apart
// and parses only when a group is opened or a destination searched.
type Bulk struct {
	Source       string     `json:"source"`
	Generated    time.Time  `json:"generated"`
	Destinations int        `json:"destinations"`
	Reached      int        `json:"reached"`
	Nodes        []BulkNode `json:"nodes"` // the source, then the routers
	// Paths are the router paths, as the ids of their nodes.
	Paths  [][]string `json:"paths"`
	Groups []Group    `json:"groups"`
	Edges  []BulkEdge `json:"edges"`
	// Members are the destinations of each group of several (nil for a
	// group of one, whose Group.Member it is), by address.
	Members [][]Member `json:"-"`
}

// BulkNode is the source, a router, or a silent hop of a router path.
type BulkNode struct {
	ID       string `json:"id"`
	Label    string `json:"label"`
	Addr     string `json:"addr,omitempty"`
	Level    int    `json:"level"` // the TTL; 0 for the source
	Source   bool   `json:"source,omitempty"`
	Silent   bool   `json:"silent,omitempty"`
	Diverge  bool   `json:"diverge,omitempty"`
	Converge bool   `json:"converge,omitempty"`
	ASN      uint32 `json:"asn,omitempty"`
	IXP      string `json:"ixp,omitempty"`
	RTT      *RTT   `json:"rtt_ms,omitempty"`
	// Destinations is the number of destinations whose paths cross it.
	Destinations int `json:"dsts"`
}

// Group is a group of destinations with the same router paths.
type Group struct {
	ID      string `json:"id"`
	Label   string `json:"label"`
	Level   int    `json:"level"` // one past the TTL of its last router
	Count   int    `json:"count"`
	Reached int    `json:"reached"`
	// Prefixes are the first of the NPrefixes prefixes that cover the
	// group and no destination of another (analysis.CoverPrefixes).
	Prefixes  []string `json:"prefixes"`
	NPrefixes int      `json:"nprefixes"`
	Paths     []int    `json:"paths"` // indices into Bulk.Paths
	// Blocks split a group of more than MaxExpand destinations.
	Blocks []Block `json:"blocks,omitempty"`
	// Member is the destination of a group of one.
	Member *Member `json:"member,omitempty"`
}

// Block is a run of the members of a group (Lo to Hi, excluded) inside one
// prefix, under the block Parent (-1: the group itself). A block without
// blocks under it opens into its members.
type Block struct {
	Label          string
	Lo, Hi, Parent int
}

// MarshalJSON writes b as [label, lo, hi, parent].
func (b Block) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{b.Label, b.Lo, b.Hi, b.Parent})
}

// Member is one destination.
type Member struct {
	Addr string
	// PathIDs are its path IDs along each path of its group, as ranges
	// ("1-4,7"), the paths separated by "|".
	PathIDs string
	RTT     float64 // of its replies, in ms; 0 when none
	Reached bool
	Partial bool
	Name    string // as given, when it is not the address
	// Summary is Trace.Summary when it differs from what the page says
	// from the group's paths and PathIDs: "N distinct paths among M path
	// IDs".
	Summary string
}

// MarshalJSON writes m compactly: [addr, path IDs, rtt, flags] (flags 1
// reached, 2 interrupted), then the name and the summary when set.
func (m Member) MarshalJSON() ([]byte, error) {
	flags := 0
	if m.Reached {
		flags |= 1
	}
	if m.Partial {
		flags |= 2
	}
	v := []any{m.Addr, m.PathIDs, m.RTT, flags}
	if m.Name != "" || m.Summary != "" {
		v = append(v, m.Name)
	}
	if m.Summary != "" {
		v = append(v, m.Summary)
	}
	return json.Marshal(v)
}

// BulkEdge is one drawn link: of one router path (coloured by Path), or of
// more than MaxParallel paths between the same two nodes (Path -1, grey).
type BulkEdge struct {
	ID    string `json:"id"`
	From  string `json:"from"`
	To    string `json:"to"`
	Path  int    `json:"path"`
	Paths int    `json:"npaths"`
	// Destinations and PathIDs count the destinations, and their path
	// IDs, that take it; Sample names the first MaxSample destinations
	// by address, with their path IDs along it.
	Destinations int         `json:"dsts"`
	PathIDs      int         `json:"ids"`
	Sample       [][2]string `json:"sample"`
}

// BuildBulk returns the grouped view of traces.
func BuildBulk(traces []*analysis.Trace) *Bulk {
	gg := analysis.BuildGroupGraph(traces)
	bk := &Bulk{Destinations: gg.Destinations, Reached: gg.Reached, Paths: [][]string{}, Groups: []Group{}, Edges: []BulkEdge{}}
	if gg.Source.IsValid() {
		bk.Source = gg.Source.String()
	}
	for _, t := range traces {
		if t.End.After(bk.Generated) {
			bk.Generated = t.End
		}
	}
	ids := bulkNodes(bk, gg)
	for _, p := range gg.Paths {
		path := make([]string, len(p.Routers))
		for i, r := range p.Routers {
			path[i] = ids[r]
		}
		bk.Paths = append(bk.Paths, path)
	}
	bk.Members = make([][]Member, len(gg.Groups))
	for gi := range gg.Groups {
		bk.Groups = append(bk.Groups, bulkGroup(bk, gg, gi, traces))
	}
	bulkEdges(bk, gg, ids)
	return bk
}

// bulkNodes adds the source and the routers to bk, and returns the id of
// each router: its address, "address@TTL" when it answered at several
// TTLs, "*N" for a silent hop.
func bulkNodes(bk *Bulk, gg *analysis.GroupGraph) []string {
	src := BulkNode{ID: sourceID, Label: "source", Addr: bk.Source, Source: true, Destinations: gg.Destinations}
	if bk.Source != "" {
		src.Label = "source\n" + bk.Source
	}
	bk.Nodes = append(bk.Nodes, src)
	ttls := map[netip.Addr]int{}
	for _, r := range gg.Routers {
		if !r.Silent {
			ttls[r.Addr]++
		}
	}
	ids := make([]string, len(gg.Routers))
	for i, r := range gg.Routers {
		n := BulkNode{Level: r.TTL, Silent: r.Silent, Diverge: r.Diverge, Converge: r.Converge, ASN: r.ASN, IXP: r.IXP, Destinations: r.Destinations}
		switch {
		case r.Silent:
			n.ID, n.Label = "*"+strconv.Itoa(i), "*"
		case ttls[r.Addr] > 1:
			n.ID, n.Label, n.Addr = r.Addr.String()+"@"+strconv.Itoa(r.TTL), r.Addr.String(), r.Addr.String()
		default:
			n.ID, n.Label, n.Addr = r.Addr.String(), r.Addr.String(), r.Addr.String()
		}
		if r.RTTCount > 0 {
			n.RTT = &RTT{Min: ms(r.RTTMin), Avg: ms(r.RTTAvg), Max: ms(r.RTTMax)}
		}
		ids[i] = n.ID
		bk.Nodes = append(bk.Nodes, n)
	}
	return ids
}

// bulkGroup returns group gi of gg, and sets its members in bk.
func bulkGroup(bk *Bulk, gg *analysis.GroupGraph, gi int, traces []*analysis.Trace) Group {
	g := &gg.Groups[gi]
	out := Group{
		ID: "g" + strconv.Itoa(gi), Label: g.Label(), Level: g.TTL, Count: len(g.Members), Reached: g.Reached,
		NPrefixes: len(g.Prefixes), Paths: g.Paths,
	}
	for _, p := range g.Prefixes[:min(len(g.Prefixes), maxGroupPrefixes)] {
		out.Prefixes = append(out.Prefixes, analysis.PrefixText([]netip.Prefix{p}))
	}
	members := make([]Member, len(g.Members))
	for i, m := range g.Members {
		members[i] = member(&m, traces[m.Trace])
	}
	if len(members) == 1 {
		out.Member = &members[0]
		return out
	}
	bk.Members[gi] = members
	if len(members) > MaxExpand {
		addrs := make([]netip.Addr, len(g.Members))
		reached := make([]bool, len(g.Members))
		for i, m := range g.Members {
			addrs[i], reached[i] = m.Addr, m.Reached
		}
		out.Blocks = splitBlocks(addrs, reached, 0, len(addrs), -1, nil)
	}
	return out
}

// member returns m, a destination of trace t, as the page shows it.
func member(m *analysis.Member, t *analysis.Trace) Member {
	out := Member{Addr: m.Addr.String(), RTT: ms(m.RTT), Reached: m.Reached, Partial: m.Partial, Name: m.Name}
	var b strings.Builder
	n := 0
	for k, ids := range m.PathIDs {
		if k > 0 {
			b.WriteByte('|')
		}
		b.WriteString(analysis.IDRanges(ids))
		n += len(ids)
	}
	out.PathIDs = b.String()
	if s := t.Summary(); s != analysis.PathsSummary(len(m.PathIDs), n) {
		out.Summary = s
	}
	return out
}

// splitBlocks splits addrs[lo:hi] (sorted) into at most MaxExpand blocks
// along prefixes, each split again when it holds more than MaxExpand, and
// appends them to out in depth-first order under parent.
func splitBlocks(addrs []netip.Addr, reached []bool, lo, hi, parent int, out []Block) []Block {
	runs := prefixRuns(addrs[lo:hi])
	for _, r := range runs {
		a, b := lo+r[0], lo+r[1]
		out = append(out, Block{Label: blockLabel(addrs[a:b], reached[a:b]), Lo: a, Hi: b, Parent: parent})
		if b-a > MaxExpand {
			out = splitBlocks(addrs, reached, a, b, len(out)-1, out)
		}
	}
	return out
}

// prefixRuns cuts addrs (sorted, more than MaxExpand) into at most
// MaxExpand runs of addresses that share the longest possible prefix (one
// family per run), as [lo, hi) pairs.
func prefixRuns(addrs []netip.Addr) [][2]int {
	if v6 := sort.Search(len(addrs), func(i int) bool { return addrs[i].Is6() }); v6 > 0 && v6 < len(addrs) {
		return [][2]int{{0, v6}, {v6, len(addrs)}}
	}
	bitLen := addrs[0].BitLen()
	cuts := func(bits int) [][2]int {
		var runs [][2]int
		start := 0
		for i := 1; i <= len(addrs); i++ {
			if i == len(addrs) || netip.PrefixFrom(addrs[i], bits).Masked() != netip.PrefixFrom(addrs[start], bits).Masked() {
				runs = append(runs, [2]int{start, i})
				start = i
			}
		}
		return runs
	}
	// The runs multiply as the prefixes lengthen: take the longest that
	// gives at most MaxExpand runs.
	bits := sort.Search(bitLen+1, func(b int) bool { return len(cuts(b)) > MaxExpand }) - 1
	runs := cuts(max(bits, 0))
	if len(runs) == 1 {
		// One address many times over: runs of MaxExpand.
		runs = runs[:0]
		for i := 0; i < len(addrs); i += MaxExpand {
			runs = append(runs, [2]int{i, min(i+MaxExpand, len(addrs))})
		}
	}
	return runs
}

// blockLabel names a block: the smallest prefix around its addresses, how
// many, and how many were not reached when some were not.
func blockLabel(addrs []netip.Addr, reached []bool) string {
	first, last := addrs[0], addrs[len(addrs)-1]
	bits := 0
	for bits < first.BitLen() && netip.PrefixFrom(last, bits+1).Masked() == netip.PrefixFrom(first, bits+1).Masked() {
		bits++
	}
	s := analysis.PrefixText([]netip.Prefix{netip.PrefixFrom(first, bits).Masked()}) + "\n" + countedText(len(addrs), "destination", "destinations")
	if n := len(addrs) - countTrue(reached); n > 0 {
		s += ", " + countedText(n, "not reached", "not reached")
	}
	return s
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// countedText writes "1 one" or "4,094 many".
func countedText(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s + " " + many
}

// bulkEdges adds the edges of the links of gg: one per router path, or one
// grey edge for all when more than MaxParallel join the same two nodes.
func bulkEdges(bk *Bulk, gg *analysis.GroupGraph, ids []string) {
	for _, l := range gg.Links() {
		from, to := sourceID, ""
		if l.From >= 0 {
			from = ids[l.From]
		}
		if l.ToGroup {
			to = bk.Groups[l.To].ID
		} else {
			to = ids[l.To]
		}
		add := func(path int, paths []int) {
			e := BulkEdge{ID: "e" + strconv.Itoa(len(bk.Edges)), From: from, To: to, Path: path, Paths: len(paths)}
			carry(&e, gg, &l, paths)
			bk.Edges = append(bk.Edges, e)
		}
		if len(l.Paths) > MaxParallel {
			add(-1, l.Paths)
			continue
		}
		for _, p := range l.Paths {
			add(p, []int{p})
		}
	}
}

// carry counts the destinations and path IDs of link l that take its
// router paths paths, and names the first MaxSample by address.
func carry(e *BulkEdge, gg *analysis.GroupGraph, l *analysis.GroupLink, paths []int) {
	var groups []int
	if l.ToGroup {
		groups = []int{l.To}
	} else {
		for _, p := range paths {
			groups = append(groups, gg.Paths[p].Groups...)
		}
		slices.Sort(groups)
		groups = slices.Compact(groups)
	}
	type cand struct {
		m    *analysis.Member
		keep []int // the indices of its group's paths that take the edge
	}
	var sample []cand
	for _, gi := range groups {
		g := &gg.Groups[gi]
		var keep []int
		for k, p := range g.Paths {
			if slices.Contains(paths, p) {
				keep = append(keep, k)
			}
		}
		e.Destinations += len(g.Members)
		for mi := range g.Members {
			for _, k := range keep {
				e.PathIDs += len(g.Members[mi].PathIDs[k])
			}
			if mi < MaxSample {
				sample = append(sample, cand{&g.Members[mi], keep})
			}
		}
	}
	slices.SortFunc(sample, func(x, y cand) int { return x.m.Addr.Compare(y.m.Addr) })
	e.Sample = [][2]string{}
	for _, c := range sample[:min(len(sample), MaxSample)] {
		var ids []int
		for _, k := range c.keep {
			ids = append(ids, c.m.PathIDs[k]...)
		}
		slices.Sort(ids)
		e.Sample = append(e.Sample, [2]string{c.m.Addr.String(), analysis.IDRanges(ids)})
	}
}
