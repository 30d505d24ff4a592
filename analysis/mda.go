package analysis

import (
	"math"
	"net/netip"
)

// Flows that must have reached a vertex, having seen k distinct next hops
// from it, before one may conclude at 95% / 99% confidence that it has no
// (k+1)-th: the MDA stopping rule (Veitch et al., INFOCOM 2009), as tabled
// by scamper for k = 1..16.
var (
	mda95 = [...]int{6, 11, 16, 21, 27, 33, 38, 44, 51, 57, 63, 70, 76, 83, 90, 96}
	mda99 = [...]int{8, 15, 21, 28, 36, 43, 51, 58, 66, 74, 82, 90, 98, 106, 115, 123}
)

// MDAFlows returns n_k: how many flows must reach a vertex from which k
// distinct next hops were seen before the search for another may stop, at
// the given confidence (0.95 or 0.99 use the published tables; other
// levels and k beyond the tables use the closed form
// n(K) = ceil(ln(eps/K) / ln((K-1)/K)) with K = k+1, eps = 1-confidence).
func MDAFlows(k int, confidence float64) int {
	if k < 1 {
		k = 1
	}
	switch {
	case confidence == 0.95 && k <= len(mda95):
		return mda95[k-1]
	case confidence == 0.99 && k <= len(mda99):
		return mda99[k-1]
	}
	K := float64(k + 1)
	eps := 1 - confidence
	return int(math.Ceil(math.Log(eps/K) / math.Log((K-1)/K)))
}

// FlowsNeeded applies the MDA stopping rule with node control to the flows
// of t: for every vertex (a responding address at a TTL, and the source
// before TTL 1) with k distinct next hops seen, n_k flows with a known next
// hop must have passed through it. Flows are spread over the vertices of a
// TTL the way the flows seen so far were, or evenly if that gives it more,
// so a vertex that f of the F flows reached needs about
// (n_k - f) / max(f/F, 1/vertices) more flows. It returns the number of
// flows the trace needs in all; no more than len(t.Flows) (of those
// probed) means the rule holds everywhere.
//
// It models a run that probes every flow at every TTL. A run planned probe
// by probe uses PlanMDA instead, whose completion differs where branches
// converge (tested together there, and a vertex before the destination
// needs one flow).
func FlowsNeeded(t *Trace, confidence float64) int {
	type vertex struct {
		ttl  int
		addr netip.Addr
	}
	var flows []*Flow
	depth := 0
	for i := range t.Flows {
		f := &t.Flows[i]
		if f.ProbedTTL == 0 && len(f.Hops) == 0 {
			continue
		}
		flows = append(flows, f)
		depth = max(depth, len(f.Hops))
	}
	total := len(flows)
	if total == 0 {
		return 0
	}
	needed := total
	through := map[vertex]int{}              // flows with a known next hop, per vertex
	succ := map[vertex]map[netip.Addr]bool{} // distinct next hops, per vertex
	for ttl := 0; ttl < depth; ttl++ {
		clear(through)
		clear(succ)
		for _, f := range flows {
			if ttl+1 > len(f.Hops) {
				continue // the flow ended (reached, or went silent) before
			}
			var v vertex
			if ttl > 0 {
				h := f.Hops[ttl-1]
				if !h.Addr.IsValid() || h.Addr == t.Destination {
					continue // an anonymous vertex or the destination: nothing to test
				}
				v = vertex{ttl, h.Addr}
			}
			next := f.Hops[ttl]
			if !next.Addr.IsValid() {
				continue // silent next hop: no evidence either way
			}
			through[v]++
			if succ[v] == nil {
				succ[v] = map[netip.Addr]bool{}
			}
			succ[v][next.Addr] = true
		}
		for v, n := range through {
			need := MDAFlows(len(succ[v]), confidence)
			if n >= need {
				continue
			}
			// The flows still missing at v, at the share of flows that
			// reach v estimated optimistically: what was seen, or an even
			// split over the vertices of its TTL if that is more. An
			// unlucky vertex then costs another round rather than an
			// overshoot on a small sample.
			share := max(float64(n)/float64(total), 1/float64(len(through)))
			needed = max(needed, total+int(math.Ceil(float64(need-n)/share)))
		}
	}
	return needed
}
