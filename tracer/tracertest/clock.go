package tracertest

import (
	"time"

	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// virtualClock is a Network's virtual clock (see the package
// documentation for when it moves).
type virtualClock struct{ n *Network }

// Now returns the virtual time. It is a call into the network: the
// caller is not waiting.
func (c virtualClock) Now() time.Time {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.activity()
	return n.now
}

// NewTimer returns a stopped timer.
func (c virtualClock) NewTimer() tracer.Timer {
	return &vtimer{n: c.n, ch: make(chan time.Time, 1), idx: -1}
}

// vtimer is a timer of a virtual clock. It fires when the clock reaches
// its deadline, which only happens while it is armed.
type vtimer struct {
	n    *Network
	ch   chan time.Time
	when time.Time
	idx  int // in n.armed, -1 when stopped
}

// C says that the caller is about to wait, and returns the channel.
func (t *vtimer) C() <-chan time.Time {
	n := t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.waiting, n.waitingOn = true, t
	n.gen++
	n.wake()
	return t.ch
}

// Reset arms the timer to fire after d; d <= 0 fires it at once.
func (t *vtimer) Reset(d time.Duration) {
	n := t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.activity()
	t.drain()
	if d <= 0 {
		t.disarm()
		t.fire(n.now)
		return
	}
	t.when = n.now.Add(d)
	n.wake()
	if t.idx < 0 {
		t.idx = len(n.armed)
		n.armed = append(n.armed, t)
	}
}

// Stop disarms the timer and discards a firing not yet received.
func (t *vtimer) Stop() {
	n := t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.activity()
	t.drain()
	t.disarm()
}

// fire sends now on the channel, which holds one firing.
func (t *vtimer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default:
	}
}

func (t *vtimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}

// disarm removes t from the armed timers.
func (t *vtimer) disarm() {
	if t.idx < 0 {
		return
	}
	a := t.n.armed
	last := a[len(a)-1]
	a[t.idx], last.idx = last, t.idx
	t.n.armed = a[:len(a)-1]
	t.idx = -1
}

// clockLoop moves the virtual clock on, one event at a time, when the
// engine waits (canAdvance) and has made no call for Options.Quiet, or
// has made none for Options.Stall whatever it does.
func (n *Network) clockLoop() {
	defer close(n.loopDone)
	sleep := time.NewTimer(time.Hour)
	defer sleep.Stop()
	for {
		n.mu.Lock()
		gen, wait, stall := n.gen, time.Duration(-1), false
		if n.hasEvent() {
			if n.canAdvance() {
				wait = max(n.opts.Quiet, 0)
			} else if n.opts.Stall > 0 {
				wait, stall = n.opts.Stall, true
			}
		}
		n.mu.Unlock()
		if wait < 0 {
			select {
			case <-n.done:
				return
			case <-n.kick:
			}
			continue
		}
		sleep.Reset(wait)
		select {
		case <-n.done:
			return
		case <-n.kick:
			continue
		case <-sleep.C:
		}
		n.mu.Lock()
		if n.gen == gen && n.hasEvent() && (stall || n.canAdvance()) {
			n.advance()
		}
		n.mu.Unlock()
	}
}

// hasEvent says whether a reply or an armed timer is pending.
func (n *Network) hasEvent() bool { return n.pending.len() > 0 || len(n.armed) > 0 }

// canAdvance says whether the engine waits: it asked for a Timer's
// channel since its last call, and every reply delivered has been read
// by a ReadBatch callback that returned.
func (n *Network) canAdvance() bool {
	if !n.waiting || n.closed {
		return false
	}
	for _, r := range n.receivers {
		if r.inflight > 0 || r.head < len(r.queue) {
			return false
		}
	}
	return true
}

// advance moves the clock to the next event: the next replies due, or
// else (strictly before them) the next timers' deadline.
func (n *Network) advance() {
	var next *vtimer
	for _, t := range n.armed {
		if next == nil || t.when.Before(next.when) {
			next = t
		}
	}
	if n.pending.len() > 0 && (next == nil || !next.when.Before(n.pending.min().due)) {
		n.now = later(n.now, n.pending.min().due)
		n.deliverDue(n.now)
		return
	}
	n.now = later(n.now, next.when)
	for i := 0; i < len(n.armed); {
		t := n.armed[i]
		if t.when.After(n.now) {
			i++
			continue
		}
		t.disarm()
		t.fire(n.now)
		if t == n.waitingOn {
			// The engine wakes up on it: it is no longer waiting.
			n.waiting = false
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// realLoop delivers the replies in real time, with Options.RealTime.
func (n *Network) realLoop() {
	defer close(n.loopDone)
	sleep := time.NewTimer(time.Hour)
	defer sleep.Stop()
	for {
		n.mu.Lock()
		n.deliverDue(time.Now())
		wait := time.Hour
		if n.pending.len() > 0 {
			wait = time.Until(n.pending.min().due)
		}
		n.mu.Unlock()
		sleep.Reset(wait)
		select {
		case <-n.done:
			return
		case <-n.kick:
		case <-sleep.C:
		}
	}
}

// realClock is the system's clock, for Options.RealTime.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer() tracer.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &realTimer{t}
}

type realTimer struct{ t *time.Timer }

func (r *realTimer) C() <-chan time.Time { return r.t.C }

// Reset and Stop discard a pending firing (Go 1.23 timers).
func (r *realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r *realTimer) Stop()                 { r.t.Stop() }

// pendingReply is a reply on its way back.
type pendingReply struct {
	due time.Time
	seq uint64 // order of creation, for replies due at the same time
	pkt []byte
}

// replyHeap is a min-heap of pending replies by (due, seq).
type replyHeap struct{ h []pendingReply }

func (h *replyHeap) len() int           { return len(h.h) }
func (h *replyHeap) min() *pendingReply { return &h.h[0] }
func (h *replyHeap) less(i, j int) bool {
	a, b := &h.h[i], &h.h[j]
	return a.due.Before(b.due) || a.due.Equal(b.due) && a.seq < b.seq
}

func (h *replyHeap) push(r pendingReply) {
	h.h = append(h.h, r)
	for i := len(h.h) - 1; i > 0; {
		up := (i - 1) / 2
		if !h.less(i, up) {
			break
		}
		h.h[i], h.h[up] = h.h[up], h.h[i]
		i = up
	}
}

func (h *replyHeap) pop() pendingReply {
	top := h.h[0]
	last := len(h.h) - 1
	h.h[0] = h.h[last]
	h.h[last] = pendingReply{}
	h.h = h.h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < last && h.less(l, small) {
			small = l
		}
		if r < last && h.less(r, small) {
			small = r
		}
		if small == i {
			return top
		}
		h.h[i], h.h[small] = h.h[small], h.h[i]
		i = small
	}
}
