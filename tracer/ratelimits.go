package tracer

import (
	"net/netip"
	"slices"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// rateLimits returns what the budgets know of the hops of tr's paths: for
// each TTL, the routers after each address that answered the TTL before
// (the source for TTL 1), and the TTL as a whole. It is called from the
// scan's goroutine, which owns the budgets.
func (r *scanner) rateLimits(tr *analysis.Trace) []analysis.RateLimit {
	if r.budgets == nil {
		return nil
	}
	var out []analysis.RateLimit
	add := func(k budgetKey, after netip.Addr) {
		if rl, ok := r.budgets.report(k); ok {
			rl.After = after
			out = append(out, rl)
		}
	}
	add(budgetKey{ttl: 1}, tr.Source)
	longest := 0
	for _, f := range tr.Flows {
		longest = max(longest, len(f.Hops))
	}
	var prevs []netip.Addr
	for ttl := 2; ttl <= min(longest, 255); ttl++ {
		add(budgetKey{ttl: uint8(ttl)}, netip.Addr{})
		prevs = prevs[:0]
		for _, f := range tr.Flows {
			if ttl-2 < len(f.Hops) {
				if a := f.Hops[ttl-2].Addr; a.IsValid() && !slices.Contains(prevs, a) {
					prevs = append(prevs, a)
				}
			}
		}
		slices.SortFunc(prevs, netip.Addr.Compare)
		for _, a := range prevs {
			add(budgetKey{ttl: uint8(ttl), prev: a}, a)
		}
	}
	return out
}

// allRateLimits returns what the budgets know of every hop of the run,
// by TTL and then address (the TTL as a whole first). Call it once the
// scan is over.
func (r *scanner) allRateLimits() []analysis.RateLimit {
	if r.budgets == nil {
		return nil
	}
	var out []analysis.RateLimit
	for k := range r.budgets.m {
		if rl, ok := r.budgets.report(k); ok {
			out = append(out, rl)
		}
	}
	slices.SortFunc(out, func(a, b analysis.RateLimit) int {
		if a.TTL != b.TTL {
			return a.TTL - b.TTL
		}
		return a.After.Compare(b.After)
	})
	return out
}
