package analysis

import "net/netip"

// Routers limit the rate of the ICMP errors they send (Linux by default: a
// burst of 6, then one per second per destination; many vendors far
// less). A probe that such a router drops the answer to leaves a silent
// hop in its flow although the router answered other flows at the same
// TTL. Reported as it is, the silent hop looks like an anonymous router of
// its own, and its flow like a distinct path. MarkRateLimited recognises
// those hops from the other flows of the trace.

// MarkRateLimited sets Hop.RateLimited on the silent hops of t that are
// probably a router limiting its ICMP rate, and clears it on every other
// hop. A run of silent hops (TTLs a..b) of a flow is marked when other
// flows have the same hops just around it, at TTL a-1 (or are all at the
// source, when a is 1) and at TTL b+1, and answered every TTL of a..b, and
// all those flows answered them from the same addresses: the silent hops
// are then probably those addresses. Nothing is marked where the flows
// that fit disagree (several routers could be the silent one), where no
// flow fits (a router that never answers stays silent), or after the last
// hop that answered.
//
// Only probed answers count as evidence: hops implied by the MDA
// (Hop.Inferred), destination unreachables and other marks are not. The
// result does not depend on the order of the flows, and calling it again
// changes nothing.
func MarkRateLimited(t *Trace) {
	for fi := range t.Flows {
		for hi := range t.Flows[fi].Hops {
			t.Flows[fi].Hops[hi].RateLimited = netip.Addr{}
		}
	}
	// What the flows that fit a silent run answered, per run: computed
	// once for all the flows with the same run and the same neighbours.
	type runKey struct {
		first, last int // 0-based indices into Hops of the silent run
		prev, next  netip.Addr
	}
	found := map[runKey][]netip.Addr{} // nil: no flow fits, or they disagree
	for fi := range t.Flows {
		hops := t.Flows[fi].Hops
		for i := 0; i < len(hops); i++ {
			if !hops[i].Silent() {
				continue
			}
			j := i
			for j+1 < len(hops) && hops[j+1].Silent() {
				j++
			}
			first, last := i, j
			i = j
			if last+1 >= len(hops) {
				break // nothing answered after the run
			}
			k := runKey{first: first, last: last, next: hops[last+1].Addr}
			if first > 0 {
				k.prev = hops[first-1].Addr
			}
			addrs, ok := found[k]
			if !ok {
				addrs = fitRun(t, k.first, k.last, k.prev, k.next)
				found[k] = addrs
			}
			for h, a := range addrs {
				hops[first+h].RateLimited = a
			}
		}
	}
}

// fitRun returns the addresses from which the flows of t whose hops at
// first-1 and last+1 are prev and next (prev invalid: first is 0, the flows
// all start at the source), and that answered every hop of first..last
// themselves, answered them: when there is at least one such flow and all
// agree; nil otherwise.
func fitRun(t *Trace, first, last int, prev, next netip.Addr) []netip.Addr {
	var addrs []netip.Addr
	for gi := range t.Flows {
		g := t.Flows[gi].Hops
		if last+1 >= len(g) || g[last+1].Addr != next || (first > 0 && g[first-1].Addr != prev) {
			continue
		}
		if !answeredRun(t, &t.Flows[gi], first, last) {
			continue // silent there too, or not a router's probed answer
		}
		if addrs == nil {
			addrs = make([]netip.Addr, 0, last-first+1)
			for h := first; h <= last; h++ {
				addrs = append(addrs, g[h].Addr)
			}
			continue
		}
		for h := first; h <= last; h++ {
			if g[h].Addr != addrs[h-first] {
				return nil // several routers could be the silent ones
			}
		}
	}
	return addrs
}

// answeredRun reports whether flow f answered every TTL of first..last
// (0-based hop indices) itself: from a router, probed, not the destination.
func answeredRun(t *Trace, f *Flow, first, last int) bool {
	for h := first; h <= last; h++ {
		hop := &f.Hops[h]
		if hop.Silent() || hop.Inferred || unreachable(hop.ICMPType, hop.Addr) ||
			hop.Addr == t.Destination || (f.Reached && h+1 == f.ReachedTTL) {
			return false
		}
	}
	return true
}

// pathAddr is the address a hop stands for in a path: its own, or the one
// MarkRateLimited says a silent hop probably is (invalid when unknown).
func (h Hop) pathAddr() netip.Addr {
	if h.Silent() {
		return h.RateLimited
	}
	return h.Addr
}

// MarkUnsettled sets Hop.Unsettled on the silent hops of t that a router's
// ICMP budget probably explains although no flow fits them well enough
// for MarkRateLimited: the budget of the routers of that hop (after the
// flow's hop before it, the source for TTL 1; else its TTL as a whole)
// explained silences, and some of its probes were answered when sent
// again (t.RateLimits, see limitedHop); the probe got no answer within its retries, and a later
// hop of the flow answered. Such a hop is rate-limited, not settled, and
// its flow no path of its own (see UniquePaths). It clears the mark on
// every other hop; calling it again changes nothing.
func MarkUnsettled(t *Trace) {
	for fi := range t.Flows {
		hops := t.Flows[fi].Hops
		answered := false // a later hop answered
		for hi := len(hops) - 1; hi >= 0; hi-- {
			h := &hops[hi]
			h.Unsettled = false
			if !h.Silent() {
				answered = true
				continue
			}
			if !answered || h.Inferred {
				continue
			}
			after := t.Source
			if hi > 0 {
				after = hops[hi-1].pathAddr()
			}
			h.Unsettled = limitedHop(t.RateLimits, h.TTL, after)
		}
	}
}

// limitedHop says whether rls show the routers of the hop at ttl after
// address after (else of the TTL as a whole) limited: their budget
// explained silences there, and probes answered when sent again
// (RateLimit.Recovered) show silences that pass. An anonymous router's
// never do: its flows stay a path of their own.
func limitedHop(rls []RateLimit, ttl int, after netip.Addr) bool {
	wide := false
	for _, rl := range rls {
		switch {
		case rl.TTL != ttl:
		case rl.After == after && after.IsValid():
			return rl.Recovered > 0
		case !rl.After.IsValid():
			wide = rl.Recovered > 0
		}
	}
	return wide
}
