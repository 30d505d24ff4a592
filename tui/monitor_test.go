package tui

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// monRun is a monitor on the simulated 4-way diamond whose rounds a State
// is told of, as a Session has them told.
type monRun struct {
	state  *State
	mu     sync.Mutex
	rounds map[netip.Addr]int
	events []*monitor.Event // the changes reported
	// sent is the most probes any hop of a destination's table shown had
	// sent after each round: one round's, not the sum of the rounds'.
	sent  int
	cells int // the most cells of a destination's tables after a round
	marks int // the most paths marked of a destination
}

const (
	monRounds = 24 // rounds of the first destination before the monitor stops
	restoreAt = 3  // the round of the first destination after which a4 is back
)

// runMonitor monitors two destinations of the diamond with the branch of
// a4 withdrawn at r1, gives it back after round restoreAt of the first,
// and stops after round monRounds of it.
func runMonitor(t *testing.T) *monRun {
	t.Helper()
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), &tracertest.Options{Seed: 7, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetRoute("r1", "10.99.0.0/20", "a1", "a2", "a3"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := netip.MustParseAddr("10.99.0.1")
	r := &monRun{state: NewState(), rounds: map[netip.Addr]int{}}
	onRound := func(x monitor.Round) {
		r.state.Round(x)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.rounds[x.Target.Addr]++
		if x.Event != nil && x.Event.Diff != nil {
			r.events = append(r.events, x.Event)
		}
		r.measure(x.Target.Addr)
		if x.Target.Addr != first {
			return
		}
		switch r.rounds[first] {
		case restoreAt:
			if err := n.SetRoute("r1", "10.99.0.0/20", "a1", "a2", "a3", "a4"); err != nil {
				t.Error(err)
			}
		case monRounds:
			cancel()
		}
	}
	m, err := monitor.New(ctx, monitor.Config{
		Load: func(context.Context) ([]tracer.Target, error) {
			return []tracer.Target{{Addr: first, Name: "10.99.0.1"}, {Addr: netip.MustParseAddr("10.99.0.2"), Name: "10.99.0.2"}}, nil
		},
		Interval: 5 * time.Second, Confirm: 1, Clock: n.Clock(), OnRound: onRound,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracer.Open(ctx, tracer.Config{Paths: 16, Network: n, Clock: n.Clock(), Observer: r.state}, m.Targets())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx, tr, nil); err != nil {
		t.Fatal(err)
	}
	if r.rounds[first] < monRounds {
		t.Fatalf("the monitor stopped after %d rounds (%v)", r.rounds[first], ctx.Err())
	}
	return r
}

// measure records how large the state of dst is after a round.
func (r *monRun) measure(dst netip.Addr) {
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	d := r.state.dsts[dst]
	cells := 0
	for _, table := range [][][]HopStats{d.flows, d.mon.flows} {
		for _, f := range table {
			cells += len(f)
			for _, h := range f {
				r.sent = max(r.sent, h.Sent)
			}
		}
	}
	r.cells = max(r.cells, cells)
	r.marks = max(r.marks, len(d.mon.marks))
}

// The view of a monitor counts each destination's rounds, shows its last
// round's paths, and marks the path that the route given back added, with
// the time of the change the monitor reported; the state of a destination
// does not grow with the rounds.
func TestMonitorRoundsAndChange(t *testing.T) {
	r := runMonitor(t)
	if r.state.Len() != 2 {
		t.Fatalf("%d destinations in the state, want 2", r.state.Len())
	}
	for i := range 2 {
		s := r.state.Snapshot(i)
		events := 0
		for _, e := range r.events {
			if e.Target.Addr != s.Dst {
				continue
			}
			events++
			if len(e.Diff.Added) != 1 || e.Diff.PathsBefore != 3 || e.Diff.PathsAfter != 4 {
				t.Errorf("%v: change %+v, want the branch of a4 added", s.Dst, e.Diff)
			}
			if !s.Changed.Equal(e.Time) {
				t.Errorf("%v: changed at %v, the event says %v", s.Dst, s.Changed, e.Time)
			}
		}
		if events != 1 {
			t.Fatalf("%v: %d changes reported, want 1", s.Dst, events)
		}
		if !s.Monitor || s.Rounds != r.rounds[s.Dst] || s.Rounds < 2 {
			t.Errorf("%v: %d rounds in the snapshot (monitor %v), the monitor ran %d", s.Dst, s.Rounds, s.Monitor, r.rounds[s.Dst])
		}
		checkMonitorScreen(t, s, r.rounds[s.Dst])
	}
	// One round's probes: a path ID's hop is sent a probe and at most one
	// retry a round, whatever the rounds.
	if r.sent < 1 || r.sent > 2 {
		t.Errorf("a hop shows %d probes sent after a round, want 1 or 2: the rounds add up", r.sent)
	}
	// 16 path IDs, 4 TTLs each and a few beyond at most: the tables of
	// the round shown and the one in progress, however many rounds.
	if r.cells == 0 || r.cells > 2*16*8 {
		t.Errorf("%d cells in a destination's tables", r.cells)
	}
	if r.marks != 4 {
		t.Errorf("%d paths known with their marks at most, want the 4 of the diamond", r.marks)
	}
}

// checkMonitorScreen reads the screen of s: the round count, the change
// in the title, and the one row marked, that of the branch of a4 with the
// change's time.
func checkMonitorScreen(t *testing.T, s *Snapshot, rounds int) {
	t.Helper()
	v := View{Dest: s.Index}
	lines := Render(s, v, 80, 24)
	checkSize(t, lines, 80, 24)
	when := s.Changed.Local().Format("15:04:05")
	if !strings.HasPrefix(lines[0], "monitor "+s.Dst.String()+" ["+strconv.Itoa(s.Index+1)+"/2 n next]  CHANGED "+when+" path change +1 (3->4 paths)") {
		t.Errorf("title %q", lines[0])
	}
	if want := "[running]  round " + strconv.Itoa(rounds) + "  4 distinct paths"; !strings.HasPrefix(lines[1], want) {
		t.Errorf("counts %q, want %q", lines[1], want)
	}
	rows := readScreen(t, s, v, 80, 24)
	if len(rows) != 4 {
		t.Fatalf("%d rows, want the 4 paths of the diamond", len(rows))
	}
	marked := 0
	for label, row := range rows {
		if !strings.HasPrefix(label, "*") {
			continue
		}
		marked++
		if row.hops[2] != "10.1.4.2" {
			t.Errorf("row %s marked changed: %s, want the branch of a4", label, row.path())
		}
		i := 0
		for i < len(lines) && !strings.HasPrefix(lines[i], label) {
			i++
		}
		if i+2 >= len(lines) || !strings.HasPrefix(lines[i+1], "changed") || !strings.HasPrefix(lines[i+2], when) {
			t.Errorf("row %s: not marked with the time of the change %s:\n%s", label, when, strings.Join(lines, "\n"))
		}
	}
	if marked != 1 {
		t.Errorf("%d rows marked changed, want 1:\n%s", marked, strings.Join(lines, "\n"))
	}
}

// A destination the monitor cannot trace (no route in the simulator) has
// its rounds counted and the reason shown, without paths.
func TestMonitorNoRoute(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(2), &tracertest.Options{Seed: 2, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	state := NewState()
	lost := netip.MustParseAddr("192.0.2.1")
	rounds := 0
	m, err := monitor.New(ctx, monitor.Config{
		// The engine opens with a destination it has a route to.
		Load: func(context.Context) ([]tracer.Target, error) {
			return []tracer.Target{{Addr: netip.MustParseAddr("10.99.0.1")}, {Addr: lost, Name: "192.0.2.1"}}, nil
		},
		Interval: 2 * time.Second, Clock: n.Clock(),
		OnRound: func(r monitor.Round) {
			state.Round(r)
			if r.Target.Addr != lost {
				return
			}
			if rounds++; rounds == 3 {
				cancel()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracer.Open(ctx, tracer.Config{Paths: 2, Network: n, Clock: n.Clock(), Observer: state}, m.Targets())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx, tr, nil); err != nil || rounds < 3 {
		t.Fatalf("Run: %v after %d rounds", err, rounds)
	}
	i := 0
	for i < state.Len() && state.Snapshot(i).Dst != lost {
		i++
	}
	lines := Render(state.Snapshot(i), View{Dest: i}, 80, 24)
	if want := "[running]  round " + strconv.Itoa(rounds) + "  error: "; !strings.HasPrefix(lines[1], want) ||
		!strings.Contains(lines[1], "no route") || !strings.HasPrefix(lines[0], "monitor 192.0.2.1 [") {
		t.Errorf("the screen of a destination without a route:\n%s", strings.Join(lines, "\n"))
	}
}
