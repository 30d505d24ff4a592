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
	if st.Waiting {
		st.Rounds-- // a round not sent
	}
	if r.debug {
		r.t.log.Debug("mda round", "dst", r.sc.Sched().Addr(slot), "round", st.Rounds, "probes", len(cells), "repeats", len(st.Repeats), "complete", done, "waiting", st.Waiting)
	}
	return plan{Cells: cells, Repeats: st.Repeats, Wait: st.Waiting}
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
		d.mda = &mda.State{MaxTTL: cfg.MaxTTL, GapLimit: cfg.GapLimit, OneFirstHop: true, PerPacket: perPacketTest, Stops: r.stops}
	}
	d.mda.Owner, d.mda.Dst = d.owner, r.sc.Sched().Addr(slot)
	d.mda.Rows = d.col.Rows(d.mda.Rows[:0])
	d.mda.Others = d.col.AppendOthers(d.mda.Others[:0])
	return d.mda
}

// woken is the scanner's Woken: the destinations whose wait for other
// destinations' searches is over are resolved again.
func (r *run) woken(q *sched) {
	r.wokenBuf = r.stops.Woken(r.wokenBuf[:0])
	for _, owner := range r.wokenBuf {
		slot := int(owner & ownerSlotMask)
		if slot < len(r.slots) && r.slots[slot].owner == owner {
			q.Wake(slot)
		}
	}
}

// unstick is the scanner's Unstick: every destination waiting for others
// is resolved again, and plans without waiting from now on.
func (r *run) unstick(q *sched) {
	for i := range r.slots {
		if q.IsParked(i) {
			r.slots[i].mda.NoWait = true
			q.Wake(i)
		}
	}
}

// ownerSlotMask: a destination's owner in the stop set is its slot in the
// low bits (the window is at most 1<<20), a count of the destinations
// admitted above them.
const ownerSlotMask = 1<<21 - 1
