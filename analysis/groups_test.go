package analysis

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// hopsTrace builds the trace towards dst of flows given as their hop
// addresses at TTL 1, 2, ... ("*" a silent hop): flow i is path ID i+1, and
// it reached dst when its last hop is dst. The RTT of the hop at TTL n is
// n*100 µs plus the path ID.
func hopsTrace(dst string, flows ...[]string) *Trace {
	t := &Trace{Destination: netip.MustParseAddr(dst), Name: dst, Source: netip.MustParseAddr("10.0.0.2"), Protocol: "udp", MaxTTL: 30}
	for i, hops := range flows {
		f := Flow{PathID: i + 1, SrcPort: uint16(33453 + i), DstPort: 33452}
		for n, h := range hops {
			hop := Hop{TTL: n + 1}
			if h != "*" {
				hop.Addr = netip.MustParseAddr(h)
				hop.RTT = time.Duration(n+1)*100*time.Microsecond + time.Duration(i+1)*time.Microsecond
				hop.ICMPType = 11
			}
			f.Hops = append(f.Hops, hop)
		}
		if len(hops) > 0 && hops[len(hops)-1] == dst {
			f.Reached, f.ReachedTTL = true, len(hops)
			f.Hops[len(hops)-1].ICMPType, f.Hops[len(hops)-1].ICMPCode = 3, 3
		}
		t.Flows = append(t.Flows, f)
	}
	return t
}

// branch is the path through branch k (1..4) of a 4-way diamond to dst;
// without dst when the destination did not answer.
func branch(k int, dst string) []string {
	p := []string{"10.0.0.1", fmt.Sprintf("10.1.%d.2", k), fmt.Sprintf("10.2.%d.2", k)}
	if dst != "" {
		p = append(p, dst)
	}
	return p
}

// bulkTraces is a scan of 10.21.0.1-15 through a 4-way diamond: .1-.10
// see the 4 branches, .11 and .12 branches 1-3, .13 branches 1 and 2 (but
// branch 2 does not reach it) and .14 the same without reaching it; .15
// takes branch 1 past a silent hop at TTL 2.
func bulkTraces() []*Trace {
	var ts []*Trace
	for i := 1; i <= 15; i++ {
		dst := fmt.Sprintf("10.21.0.%d", i)
		var flows [][]string
		switch {
		case i <= 10:
			for p := range 8 {
				flows = append(flows, branch(p%4+1, dst))
			}
		case i <= 12:
			flows = [][]string{branch(1, dst), branch(2, dst), branch(3, dst), branch(1, dst)}
		case i == 13:
			flows = [][]string{branch(1, dst), branch(2, ""), branch(2, dst)}
		case i == 14:
			flows = [][]string{branch(1, ""), branch(2, "")}
		default:
			flows = [][]string{{"10.0.0.1", "*", "10.2.1.2", dst}}
		}
		ts = append(ts, hopsTrace(dst, flows...))
	}
	// Shuffled: the groups come out by address all the same.
	slices.Reverse(ts)
	return ts
}

func memberAddrs(g *DestinationGroup) string {
	var s []string
	for _, m := range g.Members {
		s = append(s, m.Addr.String())
	}
	return strings.Join(s, " ")
}

func routerName(gg *GroupGraph, r int) string {
	if gg.Routers[r].Silent {
		return fmt.Sprintf("*%d", gg.Routers[r].TTL)
	}
	return gg.Routers[r].Addr.String()
}

func pathNames(gg *GroupGraph, p int) string {
	var s []string
	for _, r := range gg.Paths[p].Routers {
		s = append(s, routerName(gg, r))
	}
	return strings.Join(s, " ")
}

func TestBuildGroupGraph(t *testing.T) {
	gg := BuildGroupGraph(bulkTraces())
	if gg.Source != netip.MustParseAddr("10.0.0.2") || gg.Destinations != 15 || gg.Reached != 14 {
		t.Errorf("source %s, %d destinations, %d reached", gg.Source, gg.Destinations, gg.Reached)
	}
	want := []struct {
		members, prefixes, label string
		paths                    []string
		reached                  int
	}{
		{"10.21.0.1 10.21.0.2 10.21.0.3 10.21.0.4 10.21.0.5 10.21.0.6 10.21.0.7 10.21.0.8 10.21.0.9 10.21.0.10",
			"[10.21.0.0/29 10.21.0.8/31 10.21.0.10/32]", "10.21.0.0/29, 10.21.0.8/31, 10.21.0.10 - 10 destinations\n10 reached",
			[]string{"10.0.0.1 10.1.1.2 10.2.1.2", "10.0.0.1 10.1.2.2 10.2.2.2", "10.0.0.1 10.1.3.2 10.2.3.2", "10.0.0.1 10.1.4.2 10.2.4.2"}, 10},
		{"10.21.0.11 10.21.0.12", "[10.21.0.11/32 10.21.0.12/32]", "10.21.0.11, 10.21.0.12 - 2 destinations\n2 reached",
			[]string{"10.0.0.1 10.1.1.2 10.2.1.2", "10.0.0.1 10.1.2.2 10.2.2.2", "10.0.0.1 10.1.3.2 10.2.3.2"}, 2},
		{"10.21.0.13 10.21.0.14", "[10.21.0.13/32 10.21.0.14/32]", "10.21.0.13, 10.21.0.14 - 2 destinations\n1 reached, 1 not",
			[]string{"10.0.0.1 10.1.1.2 10.2.1.2", "10.0.0.1 10.1.2.2 10.2.2.2"}, 1},
		{"10.21.0.15", "[10.21.0.15/32]", "10.21.0.15", []string{"10.0.0.1 *2 10.2.1.2"}, 1},
	}
	if len(gg.Groups) != len(want) {
		t.Fatalf("%d groups, want %d", len(gg.Groups), len(want))
	}
	for i, w := range want {
		g := &gg.Groups[i]
		var paths []string
		for _, p := range g.Paths {
			paths = append(paths, pathNames(gg, p))
		}
		if memberAddrs(g) != w.members || fmt.Sprint(g.Prefixes) != w.prefixes || g.Label() != w.label ||
			!slices.Equal(paths, w.paths) || g.Reached != w.reached || g.TTL != 4 {
			t.Errorf("group %d: members %s, prefixes %v, label %q, paths %q, %d reached, TTL %d\nwant %s, %s, %q, %q, %d, 4",
				i, memberAddrs(g), g.Prefixes, g.Label(), paths, g.Reached, g.TTL, w.members, w.prefixes, w.label, w.paths, w.reached)
		}
	}
	if got := gg.Groups[0].Where(2); got != "within 10.21.0.0/28" {
		t.Errorf("Where(2) = %q", got)
	}

	// Path IDs per group path; a destination is reached by any of them.
	m13, m14 := gg.Groups[2].Members[0], gg.Groups[2].Members[1]
	if fmt.Sprint(m13.PathIDs) != "[[1] [2 3]]" || !m13.Reached || m13.RTT != 402*time.Microsecond || m13.Trace != 2 {
		t.Errorf("10.21.0.13: %+v", m13)
	}
	if fmt.Sprint(m14.PathIDs) != "[[1] [2]]" || m14.Reached || m14.RTT != 0 {
		t.Errorf("10.21.0.14: %+v", m14)
	}
	if m := gg.Groups[0].Members[0]; fmt.Sprint(m.PathIDs) != "[[1 5] [2 6] [3 7] [4 8]]" {
		t.Errorf("10.21.0.1: path IDs %v", m.PathIDs)
	}
	checkRouters(t, gg)
	checkLinks(t, gg)
}

func checkRouters(t *testing.T, gg *GroupGraph) {
	t.Helper()
	var names []string
	for r := range gg.Routers {
		names = append(names, routerName(gg, r))
	}
	want := "10.0.0.1 10.1.1.2 10.1.2.2 10.1.3.2 10.1.4.2 *2 10.2.1.2 10.2.2.2 10.2.3.2 10.2.4.2"
	if strings.Join(names, " ") != want {
		t.Fatalf("routers %q, want %q", names, want)
	}
	type check struct {
		dsts              int
		diverge, converge bool
		min, avg, max     time.Duration
		count             int
	}
	checks := map[int]check{
		0: {15, true, false, 101 * time.Microsecond, 0, 108 * time.Microsecond, 10*8 + 2*4 + 3 + 2 + 1},
		1: {14, false, false, 201 * time.Microsecond, 0, 205 * time.Microsecond, 10*2 + 2*2 + 1 + 1},
		5: {1, false, false, 0, 0, 0, 0},
		6: {15, false, false, 301 * time.Microsecond, 0, 305 * time.Microsecond, 10*2 + 2*2 + 1 + 1 + 1},
		9: {10, false, false, 304 * time.Microsecond, 0, 308 * time.Microsecond, 10 * 2},
	}
	for r, w := range checks {
		got := gg.Routers[r]
		w.avg = got.RTTAvg
		if w.count > 0 && (got.RTTAvg <= w.min || got.RTTAvg >= w.max) {
			t.Errorf("%s: mean RTT %v not within %v..%v", routerName(gg, r), got.RTTAvg, w.min, w.max)
		}
		g := check{got.Destinations, got.Diverge, got.Converge, got.RTTMin, got.RTTAvg, got.RTTMax, got.RTTCount}
		if g != w {
			t.Errorf("%s: %+v, want %+v", routerName(gg, r), g, w)
		}
	}
}

func checkLinks(t *testing.T, gg *GroupGraph) {
	t.Helper()
	var got []string
	for _, l := range gg.Links() {
		from, to := "source", ""
		if l.From >= 0 {
			from = routerName(gg, l.From)
		}
		if l.ToGroup {
			to = "g" + fmt.Sprint(l.To)
		} else {
			to = routerName(gg, l.To)
		}
		got = append(got, fmt.Sprintf("%s>%s %v %d", from, to, l.Paths, l.Destinations))
	}
	want := []string{
		"source>10.0.0.1 [0 1 2 3 4] 15",
		"10.0.0.1>10.1.1.2 [0] 14", "10.0.0.1>10.1.2.2 [1] 14", "10.0.0.1>10.1.3.2 [2] 12", "10.0.0.1>10.1.4.2 [3] 10", "10.0.0.1>*2 [4] 1",
		"10.1.1.2>10.2.1.2 [0] 14", "10.1.2.2>10.2.2.2 [1] 14", "10.1.3.2>10.2.3.2 [2] 12", "10.1.4.2>10.2.4.2 [3] 10", "*2>10.2.1.2 [4] 1",
		"10.2.1.2>g0 [0] 10", "10.2.1.2>g1 [0] 2", "10.2.1.2>g2 [0] 2", "10.2.1.2>g3 [4] 1",
		"10.2.2.2>g0 [1] 10", "10.2.2.2>g1 [1] 2", "10.2.2.2>g2 [1] 2",
		"10.2.3.2>g0 [2] 10", "10.2.3.2>g1 [2] 2",
		"10.2.4.2>g0 [3] 10",
	}
	if !slices.Equal(got, want) {
		t.Errorf("links\n got %q\nwant %q", got, want)
	}
}

// TestBuildGroupGraphEdges: a destination that answers the first TTL, one
// from which nothing answered, and no traces at all.
func TestBuildGroupGraphEdges(t *testing.T) {
	ts := []*Trace{
		hopsTrace("10.0.0.1", []string{"10.0.0.1"}, []string{"10.0.0.1"}),
		hopsTrace("10.9.9.9", []string{}, []string{}),
	}
	gg := BuildGroupGraph(ts)
	// Both leave from the source: one group, half reached.
	if len(gg.Groups) != 1 || len(gg.Routers) != 0 || len(gg.Paths) != 1 {
		t.Fatalf("%d groups, %d routers, %d paths", len(gg.Groups), len(gg.Routers), len(gg.Paths))
	}
	g := &gg.Groups[0]
	if g.TTL != 1 || !slices.Equal(g.Paths, []int{0}) || g.Label() != "10.0.0.1, 10.9.9.9 - 2 destinations\n1 reached, 1 not" {
		t.Errorf("group %s: TTL %d, paths %v, label %q", memberAddrs(g), g.TTL, g.Paths, g.Label())
	}
	links := gg.Links()
	if len(links) != 1 || links[0].From != -1 || !links[0].ToGroup || links[0].To != 0 || links[0].Destinations != 2 {
		t.Errorf("links %+v", links)
	}
	ts = append(ts, &Trace{Destination: netip.MustParseAddr("10.9.9.10")})
	gg = BuildGroupGraph(ts)
	if len(gg.Groups) != 2 || len(gg.Groups[1].Paths) != 0 || gg.Groups[1].Label() != "10.9.9.10" || len(gg.Links()) != 1 {
		t.Errorf("a trace without flows: groups %+v", gg.Groups)
	}
	if gg := BuildGroupGraph(nil); gg.Destinations != 0 || len(gg.Groups) != 0 || len(gg.Links()) != 0 {
		t.Errorf("no traces: %+v", gg)
	}
}

func TestDestinationGroupWhere(t *testing.T) {
	g := DestinationGroup{Members: make([]Member, 5), Prefixes: prefixes("10.21.0.0/24", "10.21.2.0/24", "10.21.4.0/24", "192.168.7.0/24")}
	for max, want := range map[int]string{
		4: "10.21.0.0/24, 10.21.2.0/24, 10.21.4.0/24, 192.168.7.0/24",
		// Not 0.0.0.0/0: the fewest prefixes at most twice the size of
		// the smallest three.
		3: "within 10.21.0.0/21, 192.168.7.0/24",
		2: "within 10.21.0.0/21, 192.168.7.0/24",
		1: "within 0.0.0.0/0",
	} {
		if got := g.Where(max); got != want {
			t.Errorf("Where(%d) = %q, want %q", max, got, want)
		}
	}
}
