// Package mda plans an adaptive (--paths auto) multipath trace probe by
// probe with the Multipath Detection Algorithm: which path IDs (flows) to
// probe at which TTLs in the next round (Plan), so that the MDA stopping
// rule (Flows) holds at every vertex with far fewer probes than probing
// every flow at every TTL; and which hops of a trace the probes imply
// without probing them (FillInferred). Its input is what an
// analysis.Collector recorded of the probes (State).
//
// The rule is applied per vertex, with node control: a vertex v at TTL h
// with k distinct successors seen needs n_k flows known to pass through v
// and probed at h+1. A flow is known to pass through v when it was probed
// at h and v answered, or when its vertex at h-1 passed its own test with v
// as its only successor: such hops are inferred rather than probed. Hence
//
//   - after a hop proven to be a single vertex (the source, a lone router),
//     fresh flows are probed at the next TTL only;
//   - behind a hop of several vertices, flows already known at a vertex are
//     reused, and fresh flows are only brought forward (probed at the TTL
//     of the vertex to find out where they go) when too few are known;
//   - the vertices at which the branches of a diamond converge are tested
//     as a whole, as in MDA-Lite: when w >= 2 vertices at a TTL all have the
//     same single successor, n_1 flows over them together (each probed at
//     least once) stand for all of them;
//   - so are, with MDA-Lite's hop-level test (Vermeulen et al., IMC 2018),
//     w >= 2 vertices at a TTL whose successors are their own (none
//     reached from two of them: no meshing): n_k flows over them all, k
//     their successors in all. That is the whole test when each has as
//     many successors (a uniform hop), with a meshing test: as many flows
//     seen at a vertex after its first as phi flows at each would give,
//     over the hop as a whole; else node control follows. Branches that never
//     converge (routers answering from the interface a probe came in by
//     show one address per branch) are tested this way;
//   - without meshing, a flow probed at h+1 alone is placed at h by the
//     vertex it reached: its one predecessor (backwards inference). Such
//     flows count for hop-level tests only, not for a vertex's own: a
//     successor shared with another vertex, not seen from it yet, would
//     pass the other's flows off as its own;
//   - a vertex whose only successor is the destination needs one flow (a
//     destination is reached over its directly connected interface), as in
//     scamper, and so does one whose only successor answers with an
//     unreachable (the branch ends there);
//   - a silent answer is no evidence (a lost probe and a router that never
//     answers look alike) unless nothing answered, when it is one anonymous
//     successor; anonymous hops are not tested (nothing can be aimed at
//     them), but the flows through them are probed onwards until GapLimit
//     silent TTLs in a row.
//
// Each round asks for the flows already known at vertices that need them,
// at every TTL at once, and for one batch of fresh flows, sized for the
// shallowest TTL that needs some (as in Diamond-Miner, by the share of flows
// each vertex got so far), but for a hop-level test one TTL further, whose
// flows are probed there alone when backwards inference places them. Flows
// sent at a TTL whose vertices are not known yet are also sent one TTL
// deeper for a test of every vertex there (so that the first round probes
// the first flows at every TTL of a single path at once, and a diamond's
// flows go on through it in the round they enter it).
//
// Every flow used is probed at each TTL up to the end of its path where its
// hop cannot be inferred (after a vertex with several successors, or an
// anonymous one), so that it ends up as a complete row (FillInferred).
package mda

import (
	"math"
	"net/netip"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Flows that must have reached a vertex, having seen k distinct next hops
// from it, before one may conclude at 95% / 99% confidence that it has no
// (k+1)-th: the MDA stopping rule (Veitch et al., INFOCOM 2009), as tabled
// by scamper for k = 1..16.
var (
	n95 = [...]int{6, 11, 16, 21, 27, 33, 38, 44, 51, 57, 63, 70, 76, 83, 90, 96}
	n99 = [...]int{8, 15, 21, 28, 36, 43, 51, 58, 66, 74, 82, 90, 98, 106, 115, 123}
)

// Flows returns n_k: how many flows must reach a vertex from which k
// distinct next hops were seen before the search for another may stop, at
// the given confidence (0.95 or 0.99 use the published tables; other
// levels and k beyond the tables use the closed form
// n(K) = ceil(ln(eps/K) / ln((K-1)/K)) with K = k+1, eps = 1-confidence).
func Flows(k int, confidence float64) int {
	if k < 1 {
		k = 1
	}
	switch {
	case confidence == 0.95 && k <= len(n95):
		return n95[k-1]
	case confidence == 0.99 && k <= len(n99):
		return n99[k-1]
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
// by probe uses Plan instead, whose completion differs where branches
// converge (tested together there, and a vertex before the destination
// needs one flow).
func FlowsNeeded(t *analysis.Trace, confidence float64) int {
	type vertex struct {
		ttl  int
		addr netip.Addr
	}
	var flows []*analysis.Flow
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
			need := Flows(len(succ[v]), confidence)
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
