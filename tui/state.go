// Package tui is the live terminal view of a run (--tui): a full screen
// that redraws, as the answers arrive, a row per distinct path (or per
// path ID) and a column per TTL, each hop with its address, loss and
// round-trip times.
//
// The view is three parts: a State, which is a tracer.Observer and a sink
// of finished results, safe to feed from the run's goroutines; Render, a
// pure function of a Snapshot of the State, a View (the keys' settings)
// and the screen's size to the lines to show; and a Session, which owns
// the terminal (raw mode, the alternate screen, keys, resizes) around a
// run.
package tui

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// HopStats are the probes of one hop (a path ID's TTL, or the path IDs of
// a row at a TTL) and their round-trip times.
type HopStats struct {
	Addr       netip.Addr // the first address that answered; invalid while none did
	Sent, Recv int        // probes sent (retries included) and first answers
	Reached    bool       // the answer came from the destination
	// Round-trip times of the answers: the last, their sum (Avg divides
	// it by Recv), the best and the worst.
	Last, Sum, Best, Worst time.Duration
	Inferred               bool   // not probed: implied by the MDA search
	Name                   string // host name, AS and IXP of Addr, once the result's annotations give them
}

// Loss is the share of the probes sent that got no answer, in percent.
func (h *HopStats) Loss() float64 {
	if h.Sent == 0 {
		return 0
	}
	return 100 * float64(max(h.Sent-h.Recv, 0)) / float64(h.Sent)
}

// Avg is the mean round-trip time, 0 without answers.
func (h *HopStats) Avg() time.Duration {
	if h.Recv == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Recv)
}

// add merges o into h (the path IDs of a row at one TTL).
func (h *HopStats) add(o *HopStats) {
	if !h.Addr.IsValid() {
		h.Addr = o.Addr
	}
	h.Reached = h.Reached || o.Reached
	h.Inferred = h.Inferred || o.Inferred
	if o.Recv > 0 {
		if h.Recv == 0 || o.Best < h.Best {
			h.Best = o.Best
		}
		h.Worst = max(h.Worst, o.Worst)
		h.Last = o.Last
	}
	h.Sent += o.Sent
	h.Recv += o.Recv
	h.Sum += o.Sum
}

// Flow is one path ID's hops, index i being TTL i+1.
type Flow struct {
	PathID int
	Hops   []HopStats
}

// Snapshot is a copy of one destination's state, to render.
type Snapshot struct {
	Dst          netip.Addr
	Name         string // as the user gave it; empty when it is the address
	Index, Count int    // which destination (0-based) of how many
	Sent         int    // probes sent
	Replies      int    // first answers
	Flows        []Flow // by path ID
	// Final is the destination's result once it is finished (nil
	// before): its distinct paths then make the rows, and its
	// annotations name the hops.
	Final *analysis.Trace
	// Monitor says the view is of a monitor's rounds (State.Round): then
	// Final, Flows, Sent and Replies are those of the last round
	// finished, once there is one.
	Monitor bool
	Rounds  int    // rounds finished
	Err     string // why the last round could not trace the destination
	// Changed is when the monitor last reported a change of the paths,
	// Change what it was; Marks says when each path of the last paths
	// reported changed (added, or hops changed), by pathKey.
	Changed time.Time
	Change  string
	Marks   map[string]time.Time
}

// Done says the destination is finished.
func (s *Snapshot) Done() bool { return s.Final != nil }

// State gathers the live state of a run's destinations. It is a
// tracer.Observer; Result takes each finished result. Its methods may be
// called from any goroutine.
type State struct {
	mu      sync.Mutex
	dsts    map[netip.Addr]*destState
	order   []*destState
	version uint64 // counts the changes, for redrawing only when there are some
	monitor bool   // told of a monitor's rounds
}

type destState struct {
	addr    netip.Addr
	flows   [][]HopStats // [path ID-1][TTL-1]
	sent    int
	replies int
	final   *analysis.Trace
	mon     *monState // a monitor's rounds, nil before the first
}

// NewState returns an empty State.
func NewState() *State { return &State{dsts: make(map[netip.Addr]*destState)} }

func (s *State) dest(a netip.Addr) *destState {
	d := s.dsts[a]
	if d == nil {
		d = &destState{addr: a}
		s.dsts[a] = d
		s.order = append(s.order, d)
	}
	return d
}

// hop returns the cell of (path, ttl), growing the table as needed.
func (d *destState) hop(path, ttl int) *HopStats {
	if path < 1 || ttl < 1 {
		return nil
	}
	for len(d.flows) < path {
		d.flows = append(d.flows, nil)
	}
	f := d.flows[path-1]
	if len(f) < ttl {
		f = append(f, make([]HopStats, ttl-len(f))...)
		d.flows[path-1] = f
	}
	return &f[ttl-1]
}

// Sent records a probe sent to dst (tracer.Observer).
func (s *State) Sent(dst netip.Addr, path, ttl int) {
	s.mu.Lock()
	d := s.dest(dst)
	if h := d.hop(path, ttl); h != nil {
		h.Sent++
		d.sent++
		s.version++
	}
	s.mu.Unlock()
}

// Answer records an answer (tracer.Observer). Only the first answer to a
// probe counts: a repeat would count a probe twice.
func (s *State) Answer(a *probe.Answer, first bool) {
	if !first {
		return
	}
	s.mu.Lock()
	d := s.dest(a.Dst)
	if h := d.hop(int(a.Path), int(a.TTL)); h != nil {
		if !h.Addr.IsValid() {
			h.Addr = a.From
		}
		h.Reached = h.Reached || a.Reached()
		if h.Recv == 0 || a.RTT < h.Best {
			h.Best = a.RTT
		}
		h.Worst = max(h.Worst, a.RTT)
		h.Last = a.RTT
		h.Sum += a.RTT
		h.Recv++
		d.replies++
		s.version++
	}
	s.mu.Unlock()
}

// Result records a destination's finished result.
func (s *State) Result(t *analysis.Trace) {
	s.mu.Lock()
	s.dest(t.Destination).final = t
	s.version++
	s.mu.Unlock()
}

// Version changes whenever the state does.
func (s *State) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Len is the number of destinations seen so far.
func (s *State) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// Snapshot copies the state of destination i (in the order they were
// first seen; clamped to those there are). With none yet, it is empty.
func (s *State) Snapshot(i int) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := &Snapshot{Count: len(s.order), Monitor: s.monitor}
	if len(s.order) == 0 {
		return snap
	}
	i = min(max(i, 0), len(s.order)-1)
	d := s.order[i]
	snap.Index, snap.Dst, snap.Sent, snap.Replies, snap.Final = i, d.addr, d.sent, d.replies, d.final
	if d.final != nil && d.final.Name != d.addr.String() {
		snap.Name = d.final.Name
	}
	flows := d.flows
	if d.mon != nil {
		flows = d.mon.copyTo(snap)
	}
	for p, hops := range flows {
		if len(hops) > 0 {
			snap.Flows = append(snap.Flows, Flow{PathID: p + 1, Hops: slices.Clone(hops)})
		}
	}
	return snap
}
