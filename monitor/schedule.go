package monitor

import (
	"container/heap"
	"context"
	"net/netip"
	"time"

	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// The schedule: every destination is traced once per interval, at its own
// phase, so that the runs of a large list are spread over the interval
// instead of going out in a burst. The destinations a start or a reload
// adds are put in a random order (seeded) and spaced evenly over one
// interval from then, each a random part of the space late (jitter); each
// then keeps its phase. A destination is handed to the engine only once
// the result of its previous run is back: a run that outlasts the interval
// delays the next one, which starts as soon as it ends (an overrun),
// rather than overlapping it.

// dest is a destination monitored.
type dest struct {
	t   tracer.Target
	due time.Time // of its next run, or of the run in flight
	idx int       // in the queue; -1 when not queued

	inFlight bool // handed to the engine, result not back yet
	removed  bool // by a reload, while in flight: forgotten when its result is back

	det  detector
	hops []hopKey // its hop RTT series
}

// queue is a min-heap of the destinations waiting for their next run, by
// due time.
type queue []*dest

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].idx, q[j].idx = i, j
}
func (q *queue) Push(x any) {
	d := x.(*dest)
	d.idx = len(*q)
	*q = append(*q, d)
}
func (q *queue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	d.idx = -1
	return d
}

// dueTargets is the Monitor as the engine's tracer.Targets: Next hands out
// each destination when it is due. The engine calls it from one goroutine
// at a time.
type dueTargets struct{ m *Monitor }

// Len is -1: the destinations never run out.
func (dueTargets) Len() int64 { return -1 }

// Next waits for the next destination due, and marks it in flight. While
// tracer.Open looks for the first route, it returns false once every
// destination was handed out, so that Open fails rather than waits when
// none has a route.
func (ts dueTargets) Next(ctx context.Context) (tracer.Target, bool) {
	m := ts.m
	for {
		m.mu.Lock()
		if m.opening && len(m.queue) == 0 {
			m.mu.Unlock()
			return tracer.Target{}, false
		}
		wait := time.Duration(-1)
		if len(m.queue) > 0 {
			now := m.clock.Now()
			d := m.queue[0]
			if !d.due.After(now) {
				heap.Pop(&m.queue)
				d.inFlight = true
				m.mu.Unlock()
				return d.t, true
			}
			wait = d.due.Sub(now)
		}
		m.mu.Unlock()
		var fire <-chan time.Time
		if wait >= 0 {
			m.timer.Reset(wait)
			fire = m.timer.C()
		}
		select {
		case <-ctx.Done():
			m.timer.Stop()
			return tracer.Target{}, false
		case <-m.wake:
		case <-fire:
		}
		m.timer.Stop()
	}
}

// signal wakes Next: the queue changed.
func (m *Monitor) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// done takes d back from the engine, its run having ended at end: it is
// queued again for one interval after its last due time, or at once when
// that has passed (an overrun). It says whether d is still monitored.
func (m *Monitor) done(d *dest, end time.Time) bool {
	d.inFlight = false
	if d.removed {
		delete(m.dests, d.t.Addr)
		return false
	}
	next := d.due.Add(m.cfg.Interval)
	if next.Before(end) {
		m.metrics.overruns.Inc()
		m.log.Debug("overrun: the run outlasted the interval", "dst", d.t.Addr, "late", end.Sub(next))
		next = end
	}
	d.due = next
	heap.Push(&m.queue, d)
	m.signal()
	return true
}

// setTargets makes ts the destinations monitored, from now on: new ones are
// spread over the next interval, those no longer listed are forgotten
// (once their run in flight is back) with their metrics. It returns how
// many were added and removed.
func (m *Monitor) setTargets(ts []tracer.Target, now time.Time) (added, removed int) {
	keep := make(map[netip.Addr]bool, len(ts))
	var fresh []*dest
	for _, t := range ts {
		keep[t.Addr] = true
		d := m.dests[t.Addr]
		switch {
		case d == nil:
			d = &dest{t: t, idx: -1}
			m.dests[t.Addr] = d
			fresh = append(fresh, d)
		case d.removed:
			// Listed again before its last run came back: it goes
			// on as it was.
			d.removed = false
			added++
		}
		d.t.Name = t.Name
	}
	for a, d := range m.dests {
		if keep[a] || d.removed {
			continue
		}
		removed++
		m.metrics.forget(a.String())
		if d.inFlight {
			d.removed = true
			continue
		}
		heap.Remove(&m.queue, d.idx)
		delete(m.dests, a)
	}
	step := m.cfg.Interval / time.Duration(max(len(fresh), 1))
	for i, j := range m.rng.Perm(len(fresh)) {
		d := fresh[j]
		d.due = now.Add(time.Duration(i) * step)
		if i > 0 {
			d.due = d.due.Add(time.Duration(m.rng.Int64N(int64(step) + 1)))
		}
		if st, ok := m.stored[d.t.Addr]; ok {
			d.det = detector{known: st.Known, candidate: st.Candidate, seen: st.Seen}
			delete(m.stored, d.t.Addr)
		}
		heap.Push(&m.queue, d)
	}
	m.metrics.destinations.Set(float64(len(m.dests) - m.removedInFlight()))
	m.signal()
	return added + len(fresh), removed
}

// removedInFlight counts the destinations removed whose run is still in
// flight.
func (m *Monitor) removedInFlight() int {
	n := 0
	for _, d := range m.dests {
		if d.removed {
			n++
		}
	}
	return n
}
