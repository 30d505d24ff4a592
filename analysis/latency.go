package analysis

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// RTTStats summarises round-trip times: N of them, from Min to Max.
// Hops implied by the MDA without a probe (Hop.Inferred) have none and do
// not count. The zero value (N 0) is "no RTT".
type RTTStats struct {
	Min, Avg, Max time.Duration
	N             int
}

func (s *RTTStats) add(d time.Duration) {
	if s.N == 0 || d < s.Min {
		s.Min = d
	}
	s.Max = max(s.Max, d)
	// Avg holds the sum until done.
	s.Avg += d
	s.N++
}

func (s *RTTStats) done() {
	if s.N > 0 {
		s.Avg /= time.Duration(s.N)
	}
}

// PathRTT returns the RTTs at the destination of the flows of a distinct
// path (one of UniquePaths): the answer of the destination to each of
// them. It has none (N 0) when the path did not reach the destination.
func (t *Trace) PathRTT(up *UniquePath) RTTStats {
	var s RTTStats
	if !up.Reached {
		return s
	}
	for _, id := range up.PathIDs {
		k, ok := slices.BinarySearchFunc(t.Flows, id, func(f Flow, id int) int { return f.PathID - id })
		if !ok || t.Flows[k].PathID != id {
			// Flows out of order (a hand-built trace): look it up.
			if k = slices.IndexFunc(t.Flows, func(f Flow) bool { return f.PathID == id }); k < 0 {
				continue
			}
		}
		f := &t.Flows[k]
		if !f.Reached || len(f.Hops) == 0 {
			continue
		}
		if h := &f.Hops[len(f.Hops)-1]; h.HasRTT() {
			s.add(h.RTT)
		}
	}
	s.done()
	return s
}

// nodeRTTs returns, per node of g (built from t), the RTTs of the probes
// it answered, without the hops the MDA inferred.
func nodeRTTs(t *Trace, g *Graph) []RTTStats {
	out := make([]RTTStats, len(g.Nodes))
	for fi := range t.Flows {
		for i, n := range g.flowNodes[fi] {
			if h := &t.Flows[fi].Hops[i]; h.HasRTT() {
				out[n].add(h.RTT)
			}
		}
	}
	for i := range out {
		out[i].done()
	}
	return out
}

// rttText renders "1.037 / 1.167 / 1.296 ms" (min / avg / max).
func rttText(s RTTStats) string {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
	}
	return ms(s.Min) + " / " + ms(s.Avg) + " / " + ms(s.Max) + " ms"
}

// rttLines are the lines of a deduplicated table on latency: the RTTs of
// every responding hop (graph node), by TTL, then those of each distinct
// path (the order of groups) at the destination:
//
//	RTT min / avg / max:
//	  TTL 1  10.0.0.1          0.031 / 0.045 / 0.062 ms
//	  ...
//	  Path 1 at 10.99.0.1      0.101 / 0.133 / 0.170 ms
//	  Path 3                   not reached
func rttLines(t *Trace, g *Graph, groups [][]int) []string {
	var labels, values []string
	rtts := nodeRTTs(t, g)
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Silent || rtts[i].N == 0 {
			continue
		}
		labels = append(labels, "TTL "+strconv.Itoa(n.TTL)+"  "+n.Addr.String())
		values = append(values, rttText(rtts[i]))
	}
	for gi, grp := range groups {
		ids := make([]int, len(grp))
		for j, fi := range grp {
			ids[j] = t.Flows[fi].PathID
		}
		slices.Sort(ids)
		f := &t.Flows[grp[0]]
		up := UniquePath{Reached: f.Reached, PathIDs: ids}
		label := "Path " + strconv.Itoa(gi+1)
		s := t.PathRTT(&up)
		switch {
		case !f.Reached:
			labels, values = append(labels, label), append(values, "not reached")
		case s.N == 0:
			labels, values = append(labels, label+" at "+addrText(f.Hops[len(f.Hops)-1].Addr)), append(values, "no RTT (inferred)")
		default:
			labels, values = append(labels, label+" at "+addrText(f.Hops[len(f.Hops)-1].Addr)), append(values, rttText(s))
		}
	}
	if len(labels) == 0 {
		return nil
	}
	w := widest(0, labels)
	out := []string{"RTT min / avg / max:"}
	for i, l := range labels {
		out = append(out, "  "+l+strings.Repeat(" ", w-len(l)+1)+values[i])
	}
	return out
}
