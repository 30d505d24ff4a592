package tracer

import "github.com/traceflow-fast/traceflow-fast/analysis/mda"

// perPacketTest turns on the MDA's per-packet test (mda.State.PerPacket);
// the tests turn it off to measure what it costs.
var perPacketTest = true

// more is the scanner's More for an adaptive run: once a destination's
// probes are settled, the MDA planner says which probes (path IDs and
// TTLs) it needs next.
func (r *run) more(slot int) plan {
	st := r.mdaState(slot)
	cells, done := mda.Plan(st, r.t.cfg.Confidence, r.t.cfg.MaxPaths)
	st.Rounds++
	r.slots[slot].complete = done
	if r.debug {
		r.t.log.Debug("mda round", "dst", r.sc.Sched().Addr(slot), "round", st.Rounds, "probes", len(cells), "repeats", len(st.Repeats), "complete", done)
	}
	return plan{Cells: cells, Repeats: st.Repeats}
}

// mdaState hands the planner the destination's probes as the collector
// holds them: a row per path ID, sliced from the collector's own memory,
// not copied. The collector is the one owner of what each (path ID, TTL)
// probe got; the scheduler keeps only how far each probe is in being sent
// (a byte per probe, the state of the send loop), and the planner runs
// only once every probe of the destination is settled, so that "sent" is
// "settled" for it. (When a run is interrupted, the probes still in
// flight then count as silent when the rows are filled.)
func (r *run) mdaState(slot int) *mda.State {
	d, cfg := &r.slots[slot], &r.t.cfg
	if d.mda == nil {
		d.mda = &mda.State{MaxTTL: cfg.MaxTTL, GapLimit: cfg.GapLimit, OneFirstHop: true, PerPacket: perPacketTest}
	}
	d.mda.Rows = d.col.Rows(d.mda.Rows[:0])
	d.mda.Others = d.col.AppendOthers(d.mda.Others[:0])
	return d.mda
}
