package mda

import (
	"net/netip"
	"slices"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// ICMP values (RFC 792, RFC 4443) that an inferred hop takes when no
// probed hop of its vertex says how it answers.
const (
	icmpTimeExceeded     = 11
	icmpUnreachable      = 3
	codePortUnreachable  = 3
	icmp6Unreachable     = 1
	icmp6TimeExceeded    = 3
	code6PortUnreachable = 4
)

// FillInferred completes the rows of t (built from the same probes as st)
// with the hops that were not probed but are implied by what was: a hop
// after a vertex that passed the stopping rule with a single successor, a
// hop before a vertex with a single predecessor where no meshing was seen,
// or the end of the flow after a vertex whose only successor is the
// destination (or a router answering with an unreachable).
// Filled hops have Inferred set, the address, ICMP type and code of that
// vertex's answers, and no RTT; a flow inferred to reach the destination
// gets Reached and ReachedTTL.
//
// It returns, ascending, the path IDs whose rows are still not complete: a
// hop between the source and the end of the flow is neither probed nor
// implied (the search stopped before it, or the flow was only used to find
// its way to one vertex). Their hops are left as they are; rows of complete
// paths should leave them out.
func FillInferred(t *analysis.Trace, st *State, confidence float64) (partial []int) {
	a := analyze(st, confidence)
	defer a.release()
	a.indexAnswers(t)
	block := a.growth(t)
	for fi := range t.Flows {
		f := &t.Flows[fi]
		ai, ok := a.lookup(f.PathID)
		if !ok {
			continue
		}
		af := &a.flows[ai]
		end, complete := a.rowEnd(af)
		if !complete {
			partial = append(partial, f.PathID)
			continue
		}
		if f.Reached && f.ReachedTTL < end {
			// The destination's answer to a higher TTL placed it
			// nearer (its quoted TTL): the row ends there.
			end = f.ReachedTTL
		}
		if n := len(f.Hops); n < end {
			hops := block[:end:end]
			block = block[end:]
			copy(hops, f.Hops)
			for i := n; i < end; i++ {
				hops[i].TTL = i + 1
			}
			f.Hops = hops
		}
		a.fillRow(f, af, end)
	}
	slices.Sort(partial)
	t.Reused = a.appendReused(nil)
	return partial
}

// growth returns the hops for the rows of t that grow, in one block.
func (a *analyzer) growth(t *analysis.Trace) []analysis.Hop {
	grown := 0
	for _, f := range t.Flows {
		if ai, ok := a.lookup(f.PathID); ok {
			if end, complete := a.rowEnd(&a.flows[ai]); complete && len(f.Hops) < end {
				grown += end
			}
		}
	}
	if grown == 0 {
		return nil
	}
	return make([]analysis.Hop, grown)
}

// fillRow writes into the row of f, end hops long, the hops inferred for
// af, and cuts it to its true length: a flow ends where it reached the
// destination or was stopped, else at its last responding hop.
func (a *analyzer) fillRow(f *analysis.Flow, af *flow, end int) {
	for h := 1; h <= end; h++ {
		if fh := &f.Hops[h-1]; af.how[h] == howInferred && !fh.Addr.IsValid() {
			*fh = a.inferredHop(af, h)
		}
	}
	f.Hops = f.Hops[:end]
	if af.reached {
		f.Reached, f.ReachedTTL = true, end
		return
	}
	n := len(f.Hops)
	for n > 0 && !f.Hops[n-1].Addr.IsValid() {
		n--
	}
	f.Hops = f.Hops[:n]
}

// inferredHop returns the hop of af at h, inferred: its vertex's address,
// ICMP type and code as the vertex answered other probes, or when none
// did, a time exceeded (a port unreachable from the destination).
func (a *analyzer) inferredHop(af *flow, h int) analysis.Hop {
	k := af.key[h]
	ans, ok := a.answer(k)
	if !ok {
		ans = answerRef{typ: icmpTimeExceeded}
		if af.reached && h == af.end {
			ans = answerRef{typ: icmpUnreachable, code: codePortUnreachable}
		}
		if k.addr.Is6() && !k.addr.Is4In6() {
			ans = answerRef{typ: icmp6TimeExceeded}
			if af.reached && h == af.end {
				ans = answerRef{typ: icmp6Unreachable, code: code6PortUnreachable}
			}
		}
	}
	return analysis.Hop{TTL: h, Addr: k.addr, ICMPType: ans.typ, ICMPCode: ans.code, Inferred: true}
}

// answerRef is how the vertex at addr (at some TTL) answered: the ICMP type
// and code of its first answer.
type answerRef struct {
	addr      netip.Addr
	typ, code uint8
}

// indexAnswers records how each vertex of t answered, for answer: the
// first of its probed hops, in the order of t's flows.
func (a *analyzer) indexAnswers(t *analysis.Trace) {
	longest := 0
	for _, f := range t.Flows {
		longest = max(longest, len(f.Hops))
	}
	a.answers = a.answers[:0]
	a.answerAt = resize(a.answerAt, longest+2)
	a.answerAt[0] = 0
	for ttl := 1; ttl <= longest; ttl++ {
		from := len(a.answers)
		a.answerAt[ttl] = from
		for _, f := range t.Flows {
			if ttl > len(f.Hops) {
				continue
			}
			h := &f.Hops[ttl-1]
			if !h.Addr.IsValid() || h.Inferred {
				continue
			}
			if !slices.ContainsFunc(a.answers[from:], func(x answerRef) bool { return x.addr == h.Addr }) {
				a.answers = append(a.answers, answerRef{h.Addr, h.ICMPType, h.ICMPCode})
			}
		}
	}
	a.answerAt[longest+1] = len(a.answers)
}

// answer returns how the vertex k answered, as indexAnswers found it.
func (a *analyzer) answer(k node) (answerRef, bool) {
	if k.ttl < 1 || k.ttl+1 >= len(a.answerAt) {
		return answerRef{}, false
	}
	for _, x := range a.answers[a.answerAt[k.ttl]:a.answerAt[k.ttl+1]] {
		if x.addr == k.addr {
			return x, true
		}
	}
	return answerRef{}, false
}
