package tracer

import (
	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// more is the scanner's More for an adaptive run: once a destination's
// probes are settled, the MDA planner says which probes (path IDs and
// TTLs) it needs next.
func (r *run) more(slot int) plan {
	st := r.mdaState(slot)
	cells, done := analysis.PlanMDA(st, r.t.cfg.Confidence, r.t.cfg.MaxPaths)
	st.Rounds++
	r.slots[slot].complete = done
	r.t.log.Debug("mda round", "dst", r.sc.Sched().Addr(slot), "round", st.Rounds, "probes", len(cells), "complete", done)
	p := plan{Cells: make([]Cell, len(cells))}
	for i, c := range cells {
		p.Cells[i] = Cell{Path: c.PathID, TTL: c.TTL}
	}
	return p
}

// mdaState fills the MDA planner's view of the destination in slot: every
// probe sent and settled, and what answered it.
func (r *run) mdaState(slot int) *analysis.MDAState {
	q, c, cfg := r.sc.Sched(), r.slots[slot].col, &r.t.cfg
	st := r.slots[slot].mda
	if st == nil {
		st = &analysis.MDAState{}
		r.slots[slot].mda = st
	}
	// Rebuilt from the scheduler and the collector each time: cheap, and
	// never out of step with them.
	rounds := st.Rounds
	*st = analysis.MDAState{Flows: st.Flows[:0], MaxTTL: cfg.MaxTTL, GapLimit: cfg.GapLimit, OneFirstHop: true, Rounds: rounds}
	for p := 1; p <= q.Paths(slot); p++ {
		for ttl := cfg.FirstTTL; ttl <= c.ProbedTTL(p); ttl++ {
			sent, answered, silent := q.Probed(slot, p, ttl)
			if !sent || !answered && !silent {
				continue
			}
			obs := analysis.MDAObs{Probed: true}
			if from, typ, _, reached, ok := c.Answer(p, ttl); ok {
				obs.Addr, obs.Reached = from, reached
				obs.Stop = probe.Unreachable(typ, from.Is6()) && !reached
			}
			st.Set(p, ttl, obs)
		}
	}
	return st
}
