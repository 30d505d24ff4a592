package tracer

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// burstTime is how many seconds' worth of probes the rate limiter lets go
// at once after a pause.
const burstTime = 4 * time.Millisecond

// scanner drives a sched over a stream of destinations: it admits them as
// the sender needs work (up to Window at once), encodes and sends the
// probes the scheduler asks for at the configured rate, feeds it the
// answers, and reports every destination as it finishes. Time, routing,
// sending and the observers are injected, so that it runs in tests
// without a network.
type scanner struct {
	Spec     *probe.Spec
	Schedule schedule
	// Window is the most destinations in progress at once (default 4096).
	Window int
	// Rate caps the probes sent per second, retries included; 0 is
	// unlimited.
	Rate float64
	// Next returns the next destination, false when there is none now.
	// Without Wake, false means there are no more. With Wake, Next may
	// have none yet (their routes are being looked up, say): Run waits
	// for a signal on Wake, and stops asking once Exhausted says so.
	Next      func() (Target, bool)
	Wake      <-chan struct{}
	Exhausted func() bool
	// Start is called when t begins in slot; it returns the link its
	// probes leave by (passed to Send). An error skips t: OnSkip is called
	// and the slot is reused.
	Start  func(slot int, t Target) (link int, err error)
	OnSkip func(t Target, err error)
	// Send transmits complete IP packets by link.
	Send func(link int, pkts [][]byte) error
	// Answers delivers matched replies; the scanner never closes it.
	Answers <-chan probe.Answer
	// OnSent is called for every probe sent. OnAnswer for every answer to
	// a destination in progress; first says it is the first answer to
	// that probe (later ones are repeats: retries' answers or
	// duplicates, where per-packet load balancers show).
	OnSent   func(probeRef)
	OnAnswer func(slot int, a *probe.Answer, first bool)
	// More, when set, is asked what a destination whose probes are all
	// settled needs next (see sched.More).
	More func(slot int) plan
	// OnDone is called once per destination when it is finished, or with
	// partial set when the run stops before; the slot is reused after it
	// returns.
	OnDone func(slot int, partial bool)
	// Clock tells the time (default: the system's).
	Clock Clock
	// Batch is the most probes encoded and sent at once (default 64).
	Batch int
	// Linger is how long an interrupted run still waits for the replies
	// to probes in flight (default 500 ms, at most Schedule.Timeout).
	Linger time.Duration
	// Prev, when set, paces probes by the budget of the hop they expire
	// at (see budgets): it returns the address that answered probe
	// (slot, path, ttl), false while none did.
	Prev func(slot, path, ttl int) (netip.Addr, bool)
	// Woken, when set, wakes (sched.Wake) the destinations waiting for
	// others (plan.Wait) that may go on; Unstick wakes them all, to plan
	// without waiting, when nothing else is left that could change it.
	Woken   func(q *sched)
	Unstick func(q *sched)

	sent, retries, late atomic.Int64

	// The state of Run, on its goroutine only.
	q         *sched
	links     []int32 // per slot
	refs      []probeRef
	bufs      [][]byte
	group     [][]byte
	timer     Timer
	exhausted bool
	// The token bucket that paces sending: Rate tokens a second, with up
	// to burstTime's worth saved up (at least one). Timers wake a
	// goroutine about a millisecond late at best, so a smaller bucket
	// would cap the rate at a few probes per wake-up.
	tokens, burst float64
	last          time.Time
	// srtt is the smoothed round-trip time of the answers.
	srtt time.Duration
	// The hops' budgets, with Prev; gateWake is when the first probe
	// the gate held back may go.
	budgets  *budgets
	gateWake time.Time
	now      time.Time // of the probes being handed out
	sentAt   time.Time // when the probe of the answer being recorded was sent
	// got holds the answer being recorded: received into the scanner,
	// not into a variable whose address would move it to the heap.
	got     probe.Answer
	limited atomic.Int64
}

// Sent returns how many probes (retries included) were sent so far; it may
// be called while Run runs.
func (r *scanner) Sent() int64 { return r.sent.Load() }

// Retries returns how many of the probes sent were retries.
func (r *scanner) Retries() int64 { return r.retries.Load() }

// Limited returns how many silences a hop's ICMP budget explained.
func (r *scanner) Limited() int64 { return r.limited.Load() }

// Late returns how many answers came for destinations no longer in
// progress.
func (r *scanner) Late() int64 { return r.late.Load() }

// Sched returns the scheduler of the run in progress, for callbacks that
// need to look at a slot's probes (sched.Probed). Only valid inside them.
func (r *scanner) Sched() *sched { return r.q }

// Run probes until every destination is finished or ctx is done. It
// returns ctx's error when interrupted, or the first send error; either
// way the destinations in progress are reported with OnDone as partial.
func (r *scanner) Run(ctx context.Context) error {
	r.init()
	defer r.timer.Stop()
	q := r.q
	for {
		// Replies already received count before anything times out:
		// a loop that was held up must not expire answered probes.
		r.drain()
		t := r.Clock.Now()
		q.Expire(t)
		r.unblock(t)
		r.wakeParked(false)
		ahead := r.ahead()
		demand := r.admit(ahead)
		r.refill(t)
		if err := r.sendReady(); err != nil {
			q.Abandon(r.partial)
			return err
		}
		if (demand && q.readyCount() < ahead || q.Unresolved()) && ctx.Err() == nil {
			// The sender took the work that held destinations
			// back, or a destination settled while its probes were
			// handed out (a planned probe already sent): go on now,
			// not after the next wait.
			continue
		}
		if r.exhausted && q.Active() == 0 {
			return nil
		}
		if r.wakeParked(true) {
			continue
		}
		if err := r.wait(ctx); err != nil {
			r.linger()
			q.Abandon(r.partial)
			return err
		}
	}
}

// wakeParked hands the destinations that wait for others back to the
// scheduler when what they wait for changed, or, when stuck is set and
// nothing else is going on that could change it (no probe in flight,
// ready, held or to resolve), all of them, told to wait no more. It says
// whether some are to be resolved.
func (r *scanner) wakeParked(stuck bool) bool {
	q := r.q
	if q.Parked() == 0 || r.Woken == nil {
		return false
	}
	r.Woken(q)
	if stuck && !q.Unresolved() && !q.InFlight() && !q.HasReady() && !q.Blocked() {
		r.Unstick(q)
	}
	return q.Unresolved()
}

// init applies the defaults and sets up the state of a run.
func (r *scanner) init() {
	if r.Clock == nil {
		r.Clock = systemClock{}
	}
	if r.Batch <= 0 {
		r.Batch = 64
	}
	if r.Window <= 0 {
		r.Window = 4096
	}
	r.q = newSched(r.Schedule, r.Window)
	r.q.More = r.More
	r.links = make([]int32, r.Window)
	r.refs = make([]probeRef, 0, r.Batch)
	r.bufs = make([][]byte, r.Batch)
	for i := range r.bufs {
		r.bufs[i] = make([]byte, probe.MaxProbeLen)
	}
	r.group = make([][]byte, 0, r.Batch)
	r.burst = max(1, r.Rate*burstTime.Seconds())
	r.tokens, r.last = min(r.burst, float64(r.Batch)), r.Clock.Now()
	r.timer = r.Clock.NewTimer()
	r.exhausted = false
	if r.Prev != nil {
		r.budgets = newBudgets(r.Schedule.Timeout)
		r.q.Gate, r.q.Settled = r.gate, r.settled
	}
}

// hop is the budget key of probe (slot, path, ttl), and whether it is
// blind: the address before it is not known yet. All probes leave by one
// next hop, so the first answer of any path ID is TTL 1's of all.
func (r *scanner) hop(slot int32, path, ttl int) (k budgetKey, blind bool) {
	k.ttl = uint8(ttl)
	if ttl == 1 {
		return k, false
	}
	prev, ok := r.Prev(int(slot), path, ttl-1)
	if !ok && ttl == 2 {
		prev, ok = r.Prev(int(slot), 1, 1)
	}
	k.prev = prev
	return k, !ok
}

// gate is the scheduler's Gate: a probe goes when its hop has a token,
// and so has its TTL as a whole (the routers of one TTL may be one router
// answering from several addresses, with one budget).
func (r *scanner) gate(slot int32, path, ttl int) (ok, blind bool) {
	k, blind := r.hop(slot, path, ttl)
	wide := budgetKey{ttl: k.ttl}
	ok, wake := r.budgets.take(wide, r.now)
	if ok && k != wide {
		if ok, wake = r.budgets.take(k, r.now); !ok {
			r.budgets.give(wide)
		}
	}
	if !ok && (r.gateWake.IsZero() || wake.Before(r.gateWake)) {
		r.gateWake = wake
	}
	return ok, blind
}

// settled is the scheduler's Settled: answers and silences feed the
// budgets of the hop and of its TTL the probe was paced by.
func (r *scanner) settled(slot int32, path, ttl int, blind bool, o outcome, sent time.Time) bool {
	k := budgetKey{ttl: uint8(ttl)}
	if !blind {
		k, _ = r.hop(slot, path, ttl)
	}
	now := r.Clock.Now()
	if sent.IsZero() {
		sent = r.sentAt // an answer's: its arrival less its round trip (see answer)
	}
	again := r.budgets.settle(k, now, sent, o)
	if wide := (budgetKey{ttl: k.ttl}); k != wide && r.budgets.settle(wide, now, sent, o) {
		again = true
	}
	if again {
		r.limited.Add(1)
	}
	return again
}

// unblock hands the probes the gate held back to the scheduler again once
// the first of them may go.
func (r *scanner) unblock(now time.Time) {
	if r.q.Blocked() && !now.Before(r.gateWake) {
		r.gateWake = time.Time{}
		r.q.Unblock()
	}
}

func (r *scanner) done(slot int) {
	if r.OnDone != nil {
		r.OnDone(slot, false)
	}
}

func (r *scanner) partial(slot int) {
	if r.OnDone != nil {
		r.OnDone(slot, true)
	}
}

// ahead is how many destinations with a probe ready are enough: two
// batches keep the sender busy, and with a rate, as many as it serves in
// two round trips make one pass over them last longer than a round trip,
// so that a destination's next probe goes out after the answer to its last
// (path ID 1 does not probe past the destination for want of its answer).
func (r *scanner) ahead() int {
	ahead := 2 * r.Batch
	if r.Rate > 0 {
		ahead = max(ahead, int(2*r.Rate*r.srtt.Seconds()))
	}
	return ahead
}

// admit resolves the destinations that settled and fills free slots while
// fewer than ahead destinations have a probe ready; those with nothing to
// probe settle at once, so it resolves again. It says whether destinations
// were left waiting only because enough others had probes ready.
//
// With a rate, admitting on demand keeps as few destinations in progress
// as keep the sender busy: where answers come back within a few batches,
// each finishes in a few round trips and its state stays in cache; where
// they are slow or lost, the window fills up. Unpaced, each pass sends all
// that is ready, so the window fills unless answers come back at once.
func (r *scanner) admit(ahead int) (demand bool) {
	q := r.q
	for {
		q.Resolve(r.done)
		if r.exhausted || q.Free() == 0 {
			return false
		}
		admitted := false
		for q.Free() > 0 && q.readyCount()+q.heldBack() < ahead {
			t, ok := r.Next()
			if !ok {
				r.exhausted = r.Wake == nil || r.Exhausted == nil || r.Exhausted()
				break
			}
			if r.start(t) {
				admitted = true
			}
		}
		if !admitted {
			return !r.exhausted && q.Free() > 0 && q.readyCount() >= ahead
		}
	}
}

// start admits destination t, and says whether it took a slot.
func (r *scanner) start(t Target) bool {
	slot, ok := r.q.Admit(t.Addr)
	if !ok {
		return false // already in progress
	}
	link := 0
	if r.Start != nil {
		var err error
		if link, err = r.Start(slot, t); err != nil {
			r.q.release(int32(slot))
			if r.OnSkip != nil {
				r.OnSkip(t, err)
			}
			return true
		}
	}
	r.links[slot] = int32(link)
	return true
}

// refill adds the tokens earned since the last refill.
func (r *scanner) refill(t time.Time) {
	if r.Rate > 0 {
		r.tokens = min(r.tokens+t.Sub(r.last).Seconds()*r.Rate, r.burst)
		r.last = t
	}
}

// sendReady sends the probes that are ready, as far as the tokens go.
func (r *scanner) sendReady() error {
	q := r.q
	for q.HasReady() {
		n := r.Batch
		if r.Rate > 0 {
			n = min(n, int(r.tokens))
			if n == 0 {
				return nil
			}
		}
		t := r.Clock.Now()
		r.now = t
		before := q.Retries()
		r.refs = q.Ready(t, r.refs[:0], n)
		if len(r.refs) == 0 {
			return nil
		}
		if r.Rate > 0 {
			r.tokens -= float64(len(r.refs))
		}
		r.retries.Add(int64(q.Retries() - before))
		if err := r.sendBatch(t); err != nil {
			return err
		}
	}
	return nil
}

// wait waits for an answer, a timeout, tokens for the next batch or new
// destinations. It returns ctx's error when ctx is done.
func (r *scanner) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q := r.q
	var wait time.Duration = -1 // nothing to time
	if next := q.NextExpiry(); !next.IsZero() {
		wait = max(next.Sub(r.Clock.Now()), 0)
	}
	if r.Rate > 0 && q.HasReady() {
		// Wake when a batch (or what is ready, if less) is paid for.
		need := min(float64(r.Batch), float64(q.readyCount()), r.burst) - r.tokens
		pay := time.Duration(max(need, 1) / r.Rate * float64(time.Second))
		if wait < 0 || pay < wait {
			wait = pay
		}
	}
	if q.Blocked() && !r.gateWake.IsZero() {
		// Wake when a hop's budget lets a held probe go.
		if d := max(r.gateWake.Sub(r.Clock.Now()), 0); wait < 0 || d < wait {
			wait = d
		}
	}
	var fire <-chan time.Time
	if wait >= 0 {
		r.timer.Reset(wait)
		fire = r.timer.C()
	}
	var wake <-chan struct{}
	if !r.exhausted && q.Free() > 0 {
		wake = r.Wake // more destinations may become ready
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r.got = <-r.Answers:
		r.answer(&r.got)
		// Take whatever else is queued before sending again.
		r.drain()
	case <-wake:
	case <-fire:
	}
	r.timer.Stop()
	return nil
}

// linger records the answers to probes in flight for a short while after
// an interruption.
func (r *scanner) linger() {
	d := r.Linger
	if d <= 0 {
		d = 500 * time.Millisecond
	}
	d = min(d, r.Schedule.Timeout)
	deadline := r.Clock.Now().Add(d)
	for {
		r.drain()
		now := r.Clock.Now()
		r.q.Expire(now)
		if r.q.NextExpiry().IsZero() || !now.Before(deadline) {
			return
		}
		r.timer.Reset(deadline.Sub(now))
		select {
		case r.got = <-r.Answers:
			r.answer(&r.got)
		case <-r.timer.C():
		}
	}
}

// drain records every answer already queued, without waiting.
func (r *scanner) drain() {
	for {
		select {
		case r.got = <-r.Answers:
			r.answer(&r.got)
		default:
			return
		}
	}
}

func (r *scanner) answer(a *probe.Answer) {
	q := r.q
	slot, ok := q.Lookup(a.Dst)
	if !ok {
		r.late.Add(1)
		return
	}
	if a.RTT > 0 {
		if r.srtt == 0 {
			r.srtt = a.RTT
		} else {
			r.srtt += (a.RTT - r.srtt) / 8
		}
	}
	if r.budgets != nil {
		r.budgets.lag = r.srtt
	}
	r.sentAt = a.Received.Add(-a.RTT)
	first := q.Answer(slot, int(a.Path), int(a.TTL), a.Reached(), a.Stops())
	if a.Reached() && a.QTTL > 1 && a.QTTL <= a.TTL {
		// The destination is nearer than this probe's TTL: the
		// answers below it were lost, not beyond it (see sched.Reached).
		q.Reached(slot, int(a.Path), int(a.TTL-a.QTTL)+1)
	}
	if r.OnAnswer != nil {
		r.OnAnswer(slot, a, first)
	}
}

// sendBatch encodes r.refs and sends them grouped by link.
func (r *scanner) sendBatch(t time.Time) error {
	q, refs := r.q, r.refs
	for i, p := range refs {
		b := r.bufs[i][:cap(r.bufs[i])]
		r.bufs[i] = b[:r.Spec.Encode(b, q.Addr(int(p.Slot)), int(p.Path), int(p.TTL), t)]
	}
	for start := 0; start < len(refs); {
		link := r.links[refs[start].Slot]
		r.group = r.group[:0]
		end := start
		for end < len(refs) && r.links[refs[end].Slot] == link {
			r.group = append(r.group, r.bufs[end])
			end++
		}
		if err := r.Send(int(link), r.group); err != nil {
			return err
		}
		r.sent.Add(int64(end - start))
		if r.OnSent != nil {
			for _, p := range refs[start:end] {
				r.OnSent(p)
			}
		}
		start = end
	}
	return nil
}
