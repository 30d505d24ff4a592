package tracertest_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// event is what a wait returned: a reply's TTL, or the timer ("timer"),
// and the virtual time since the start.
type event struct {
	what string
	at   time.Duration
}

// waitEvent waits for the next reply or the timer's firing.
func (r *rig) waitEvent(start time.Time) event {
	select {
	case g := <-r.got:
		return event{fmt.Sprintf("ttl%d", g.a.TTL), g.ts.Sub(start)}
	case at := <-r.timer.C():
		return event{"timer", at.Sub(start)}
	}
}

// A timer fires at its deadline; replies due before it come first, and
// those due at the same time too; the clock reads the time of the event.
func TestClockOrder(t *testing.T) {
	r := newRig(t, tracertest.Line(3), nil, probe.ProtoUDP, tracertest.DstAddr)
	start := r.clock.Now()
	if !start.Equal(tracertest.Start) {
		t.Errorf("clock starts at %v, want %v", start, tracertest.Start)
	}
	for ttl := 4; ttl >= 1; ttl-- { // replies due at 8, 6, 4 and 2 ms
		r.send(tracertest.DstAddr, 1, ttl)
	}
	r.timer.Reset(4 * time.Millisecond) // due with the reply to TTL 2
	var got []event
	for len(got) < 6 {
		e := r.waitEvent(start)
		got = append(got, e)
		if now := r.clock.Now().Sub(start); now != e.at {
			t.Errorf("after %v: the clock reads %v", e, now)
		}
		if e.what == "timer" {
			r.timer.Reset(3 * time.Millisecond)
		}
	}
	want := []event{{"ttl1", 2 * time.Millisecond}, {"ttl2", 4 * time.Millisecond}, {"timer", 4 * time.Millisecond},
		{"ttl3", 6 * time.Millisecond}, {"timer", 7 * time.Millisecond}, {"ttl4", 8 * time.Millisecond}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v\nwant %v", got, want)
	}
}

// A stopped timer is no event; Reset discards a firing not received, and
// fires at once for a duration of zero.
func TestTimerStopReset(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := n.Clock()
	start := c.Now()
	stopped, stale, main := c.NewTimer(), c.NewTimer(), c.NewTimer()
	stopped.Reset(time.Millisecond)
	stopped.Stop()
	stale.Reset(2 * time.Millisecond)
	main.Reset(5 * time.Millisecond)
	if at := (<-main.C()).Sub(start); at != 5*time.Millisecond {
		t.Errorf("timer fired at %v, want 5ms (a stopped timer is no event)", at)
	}
	select {
	case at := <-stopped.C():
		t.Errorf("a stopped timer fired at %v", at.Sub(start))
	default:
	}
	// stale fired at 2 ms unread: Reset drops that firing.
	stale.Reset(10 * time.Millisecond)
	if at := (<-stale.C()).Sub(start); at != 15*time.Millisecond {
		t.Errorf("reset timer fired at %v, want 15ms", at)
	}
	main.Reset(0)
	if at := (<-main.C()).Sub(start); at != 15*time.Millisecond {
		t.Errorf("Reset(0) fired at %v, want at once (15ms)", at)
	}
	if at := c.Now().Sub(start); at != 15*time.Millisecond {
		t.Errorf("with nothing pending the clock moved to %v", at)
	}
}

// An engine that waits for a reply without a timer leaves the clock
// stopped; Options.Stall moves it on all the same.
func TestClockStall(t *testing.T) {
	r := newRig(t, tracertest.Line(1), &tracertest.Options{Stall: 5 * time.Millisecond}, probe.ProtoUDP, tracertest.DstAddr)
	sent := r.send(tracertest.DstAddr, 1, 1)
	g := <-r.got
	if !g.matched || g.ts.Sub(sent) != 2*time.Millisecond {
		t.Errorf("reply matched %v after %v", g.matched, g.ts.Sub(sent))
	}
}

// In real time, replies come after their delay, stamped with the time
// they were due.
func TestRealTime(t *testing.T) {
	topo := tracertest.Line(2)
	topo.SetDelay(5 * time.Millisecond)
	r := newRig(t, topo, &tracertest.Options{RealTime: true}, probe.ProtoUDP, tracertest.DstAddr)
	sent := r.send(tracertest.DstAddr, 1, 3)
	g := <-r.got
	if !g.matched || g.ts.Sub(sent) < 30*time.Millisecond || !g.a.Reached() {
		t.Errorf("reply matched %v, reached %v, stamped %v after sending", g.matched, g.a.Reached(), g.ts.Sub(sent))
	}
	if g.a.RTT < 30*time.Millisecond {
		t.Errorf("RTT %v, want at least 30ms", g.a.RTT)
	}
}

// With Options.Filter, each run's receiver gets only the replies to its
// own probes, as the kernel's filter would keep them.
func TestFilter(t *testing.T) {
	for _, c := range []struct {
		filter bool
		dst    netip.Addr
	}{{false, tracertest.DstAddr}, {true, tracertest.DstAddr}, {true, tracertest.DstAddr6}} {
		filter := c.filter
		r := newRig(t, tracertest.Diamond(2), &tracertest.Options{Filter: filter}, probe.ProtoUDP, c.dst)
		other := *r.spec
		other.Tag = r.spec.Tag%probe.MaxTag + 1
		rx, err := r.net.Listen(&other)
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		go func() {
			for {
				if _, err := rx.ReadBatch(func([]byte, time.Time) {}); err != nil {
					return
				}
			}
		}()
		if got := r.sendFlows(c.dst, 100, 3); len(got) != 100 {
			t.Errorf("filter %v: %d replies", filter, len(got))
		}
		received, _, _ := rx.Stats()
		s := r.net.Stats()
		if filter && (received != 0 || s.Filtered != 100) || !filter && (received != 100 || s.Filtered != 0) {
			t.Errorf("filter %v: the other run received %d replies, %d filtered", filter, received, s.Filtered)
		}
	}
}

// A receiver that holds QueueLen replies drops the next. (Nobody reads it
// while the timer runs: the clock moves on after Options.Stall.)
func TestQueueLen(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(1), &tracertest.Options{QueueLen: 10, Stall: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	spec := &probe.Spec{Src: tracertest.SrcAddr, BaseSrcPort: 1000, DstPort: 33434, Paths: 100, Tag: 1}
	rx, _ := n.Listen(spec)
	var pkts [][]byte
	for id := 1; id <= 30; id++ {
		b := make([]byte, probe.MaxProbeLen)
		pkts = append(pkts, b[:spec.Encode(b, tracertest.DstAddr, id, 1, tracertest.Start)])
	}
	n.Send(0, pkts)
	tm := n.Clock().NewTimer()
	tm.Reset(time.Second)
	<-tm.C()
	read, _ := rx.ReadBatch(func([]byte, time.Time) {})
	received, dropped, _ := rx.Stats()
	if read != 10 || received != 10 || dropped != 20 {
		t.Errorf("read %d, received %d, dropped %d; want 10, 10, 20", read, received, dropped)
	}
}
