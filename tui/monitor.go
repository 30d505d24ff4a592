package tui

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// monState is what the view keeps of a monitored destination's rounds:
// the last one finished, whose table replaces the live one each round, and
// the last change reported. It does not grow with the rounds.
type monState struct {
	rounds        int
	flows         [][]HopStats // of the last round finished
	sent, replies int
	err           string
	changed       time.Time
	change        string
	marks         map[string]time.Time // the paths known, by pathKey: when each last changed (zero: never)
}

// Round records a monitor's round of a destination (monitor.Config.OnRound):
// its result and table become those shown, the live table starts again
// empty for the next round, and a change reported marks its paths.
func (s *State) Round(r monitor.Round) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.monitor = true
	d := s.dest(r.Target.Addr)
	if d.mon == nil {
		d.mon = &monState{}
	}
	m := d.mon
	m.rounds++
	m.flows, m.sent, m.replies, m.err = d.flows, d.sent, d.replies, r.Err
	d.flows, d.sent, d.replies = nil, 0, 0
	d.final = r.Trace
	if d.final == nil {
		d.final = &analysis.Trace{Destination: r.Target.Addr, Name: r.Target.Name}
	}
	if r.Event != nil {
		m.event(r.Event)
	}
	s.version++
}

// event takes the paths an event says are known from now on, and when
// those added or changed changed.
func (m *monState) event(ev *monitor.Event) {
	marks := make(map[string]time.Time)
	if ev.Diff == nil { // a baseline
		for _, p := range ev.Paths {
			marks[diffKey(&p)] = time.Time{}
		}
		m.marks = marks
		return
	}
	dd := ev.Diff
	for _, p := range dd.Same {
		k := diffKey(&p)
		marks[k] = m.marks[k]
	}
	for _, p := range dd.Added {
		marks[diffKey(&p)] = ev.Time
	}
	for _, c := range dd.Changed {
		marks[diffKey(&c.After)] = ev.Time
	}
	m.marks, m.changed = marks, ev.Time
	// Such as "path change +1 -1 ~2 (4->4 paths)": paths added, removed
	// and changed.
	m.change = strings.ReplaceAll(ev.Type, "_", " ")
	for _, n := range []struct {
		n    int
		sign string
	}{{len(dd.Added), "+"}, {len(dd.Removed), "-"}, {len(dd.Changed), "~"}} {
		if n.n > 0 {
			m.change += fmt.Sprintf(" %s%d", n.sign, n.n)
		}
	}
	m.change += fmt.Sprintf(" (%d->%d paths)", dd.PathsBefore, dd.PathsAfter)
}

// copyTo fills the monitor's fields of snap, and returns the table to show.
func (m *monState) copyTo(snap *Snapshot) [][]HopStats {
	snap.Rounds, snap.Err, snap.Changed, snap.Change = m.rounds, m.err, m.changed, m.change
	snap.Sent, snap.Replies = m.sent, m.replies
	snap.Marks = maps.Clone(m.marks)
	return m.flows
}

// diffKey is pathKey of a path of a diff.
func diffKey(p *analysis.DiffPath) string { return addrKey(p.Hops, p.Reached) }

func addrKey(hops []netip.Addr, reached bool) string {
	var b strings.Builder
	for _, a := range hops {
		b.WriteString(a.String())
		b.WriteByte(' ')
	}
	if reached {
		b.WriteByte('!')
	}
	return b.String()
}

// Rounds returns what monitor.Config.OnRound takes for the view to show a
// monitor's rounds (nil Session: nil).
func (s *Session) Rounds() func(monitor.Round) {
	if s == nil {
		return nil
	}
	return s.state.Round
}

// RunMonitor is the RunFunc of a Session showing monitor m, which runs
// with t and serves its metrics on ln (monitor.Monitor.Run). The view's
// sink is not used: the rounds reach the view through m's OnRound
// (Session.Rounds), and their results go to m's events.
func RunMonitor(m *monitor.Monitor, t *tracer.Tracer, ln net.Listener) RunFunc {
	return func(ctx context.Context, _ tracer.Sink) (tracer.Summary, error) {
		return tracer.Summary{}, m.Run(ctx, t, ln)
	}
}
