package tracer

import (
	"net/netip"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis/mda"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Schedule holds the knobs of the probe scheduler.
type schedule struct {
	// Paths is the number of path IDs every destination gets. Path ID 1
	// goes first and finds the destination's distance; the others follow
	// with their first probes up to that distance at once.
	Paths    int
	MaxPaths int           // path IDs that More may add up to (default Paths)
	FirstTTL int           // first TTL probed (default 1)
	MaxTTL   int           // last TTL probed (at most MaxTTL)
	GapLimit int           // TTLs probed above the highest that answered before a path gives up
	Timeout  time.Duration // how long a probe waits for its reply
	Retries  int           // how often an unanswered probe is sent again
}

// ProbeRef names one probe: a destination slot, a path ID and a TTL.
type probeRef struct {
	Slot  int32
	Path  uint16
	TTL   uint8
	blind bool // paced without knowing the hop before it (see sched.Gate)
}

// plan is what More asks for a destination whose probes are all settled:
// Add more path IDs that probe TTL by TTL like the first ones (their first
// probes going up to Horizon at once), and/or the explicit probes Cells (of
// existing or new path IDs, at any TTL), and/or Repeats: probes answered
// already, to send again (the MDA's per-packet test). An empty Plan
// finishes the destination.
type plan struct {
	Add     int
	Horizon int
	Cells   []mda.Cell
	Repeats []mda.Cell
	// Wait says that the destination, with nothing to send, waits for
	// other destinations' searches (see mda.State.Waiting): it is parked
	// until Wake.
	Wait bool
}

// outcome is what came of a probe, for Settled.
type outcome uint8

const (
	outSilent   outcome = iota // timed out
	outAnswered                // answered at its first send
	outAgain                   // answered when sent again, or late
)

// Probe cell states, in the low two bits of a cell byte; bit 2 marks a cell
// asked for explicitly (Plan.Cells), bit 3 one last sent blind (see
// sched.Gate); the bits above count the sends.
const (
	stUnsent uint8 = iota
	stInFlight
	stAnswered
	stSilent

	stMask       = 3
	cellExplicit = 4
	cellBlind    = 8
	attemptShift = 4
	maxSends     = 1<<(8-attemptShift) - 1
)

func cellState(c uint8) uint8    { return c & stMask }
func cellAttempts(c uint8) uint8 { return c >> attemptShift }

// pathState is the TTL-by-TTL progress of one path ID.
type pathState struct {
	next     int16 // next TTL to send
	limit    int16 // highest TTL worth probing (lowered when the destination answers)
	answered int16 // highest TTL that answered
	top      int16 // highest TTL the current round may send
	done     bool  // finished, or not probing TTL by TTL (explicit cells only)
}

// slot is one destination in progress.
type slot struct {
	addr   netip.Addr
	gen    uint32 // bumped when the slot is reused, to invalidate its old timeouts
	inUse  bool
	queued bool // in the ready ring
	idle   bool // in the idle list
	parked bool // waiting for other destinations' searches (plan.Wait)
	paths  []pathState
	cells  []uint8    // [path-1][ttl-1]
	expl   []mda.Cell // explicit probes not yet sent (from Plan.Cells)
	explAt int
	// explOut counts explicit probes not yet answered or given up.
	explOut int
	// pending counts path IDs still probing TTL by TTL.
	pending int
	cursor  int // round-robin position over path IDs
	scouted bool
	blocked bool // in the blocked list: the gate refused its probes
}

// queued probe timeouts and retries.
type timeoutEntry struct {
	slot    int32
	gen     uint32
	cell    int32
	attempt uint8
	expiry  int64 // nanoseconds since Sched.base
}

type retryEntry struct {
	slot int32
	gen  uint32
	cell int32
}

// Sched decides which probe to send when, for up to a fixed number of
// destinations in progress at once (slots). It is a pure state machine:
// time, replies and sending are the caller's, so that it is tested without
// sockets. It is not safe for concurrent use, and it does not allocate per
// probe: its state is a byte per (path ID, TTL) of the destinations in
// progress, reused when a destination finishes.
//
// Path ID 1 of a destination goes first, TTL by TTL: it keeps up to
// GapLimit TTLs in flight above the highest TTL that answered, and stops
// above the TTL at which the destination answered, or after GapLimit silent
// TTLs. The other path IDs then send their first probes up to that distance
// at once and advance the same way. Once every probe of a destination is
// answered or given up, More (if set) may ask for more probes (Plan), else
// the destination is finished.
//
// Ready hands out probes round-robin over the destinations that have one to
// send, so consecutive probes go to different destinations.
type sched struct {
	s      schedule
	slots  []slot
	free   []int32
	byAddr map[netip.Addr]int32
	ready  []int32 // ring of slots with something to send
	rhead  int
	rlen   int
	retry  []retryEntry
	queue  []timeoutEntry // ring, in send order and so in expiry order
	qhead  int
	qlen   int
	idle   []int32
	parked int // destinations waiting for other destinations' searches
	// distance is the TTL at which the last destination answered path
	// ID 1: the next destinations' path ID 1 sends up to it at once.
	distance int16
	// base is the time the expiries count from: durations from a
	// time.Now carry its monotonic reading, so a step of the wall clock
	// changes no timeout.
	base   time.Time
	sent   int
	resent int
	active int

	// More, when set, is asked what a destination whose probes are all
	// settled needs next; an empty Plan finishes it.
	More func(slot int) plan
	// Gate, when set, says whether probe (slot, path, ttl) may go now
	// (the budget of the hop it expires at), and whether it goes blind
	// (paced without knowing the hop before it). A destination whose
	// probes the gate refuses waits, and so does a refused retry, until
	// Unblock.
	Gate func(slot int32, path, ttl int) (ok, blind bool)
	// Settled, when set, is told of the first answer to a probe and of
	// each of its timeouts; for a timeout it says whether the silence is
	// one that the hop's budget explains, which is then sent again
	// (budgetRetries times at most) beyond Schedule.Retries. sent is
	// when a timed-out probe was sent; zero for an answer (its round
	// trip says).
	Settled func(slot int32, path, ttl int, blind bool, o outcome, sent time.Time) (again bool)

	blocked  []int32      // destinations the gate held back
	deferred []retryEntry // retries the gate held back
}

// NewSched returns a scheduler for up to window destinations at once.
func newSched(s schedule, window int) *sched {
	if s.FirstTTL < 1 {
		s.FirstTTL = 1
	}
	if s.MaxTTL > probe.MaxTTL {
		s.MaxTTL = probe.MaxTTL
	}
	if s.GapLimit < 1 {
		s.GapLimit = 1
	}
	if s.Paths < 1 {
		s.Paths = 1
	}
	if s.MaxPaths < s.Paths {
		s.MaxPaths = s.Paths
	}
	// A cell counts its sends in 4 bits, retries for the budget
	// included.
	s.Retries = min(max(s.Retries, 0), maxSends-1-budgetRetries)
	window = max(window, 1)
	q := &sched{
		s:      s,
		slots:  make([]slot, window),
		free:   make([]int32, 0, window),
		byAddr: make(map[netip.Addr]int32, window),
		ready:  make([]int32, window),
		queue:  make([]timeoutEntry, 1024),
	}
	for i := window - 1; i >= 0; i-- {
		q.free = append(q.free, int32(i))
	}
	return q
}

// Schedule returns the scheduler's settings, defaults applied.
func (q *sched) schedule() schedule { return q.s }

// Free returns how many more destinations Admit takes now.
func (q *sched) Free() int { return len(q.free) }

// Active returns how many destinations are in progress.
func (q *sched) Active() int { return q.active }

// Sent returns how many probes Ready has handed out, retries included;
// Retries how many of them were retries.
func (q *sched) Sent() int    { return q.sent }
func (q *sched) Retries() int { return q.resent }

// Admit starts destination addr in a free slot and returns the slot. It
// returns false when no slot is free, or when addr is already in progress.
func (q *sched) Admit(addr netip.Addr) (int, bool) {
	if len(q.free) == 0 {
		return 0, false
	}
	if _, dup := q.byAddr[addr]; dup {
		return 0, false
	}
	i := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	sl := &q.slots[i]
	// A slot freed while in the ready ring stays there (at most once).
	*sl = slot{addr: addr, gen: sl.gen + 1, inUse: true, queued: sl.queued,
		paths: sl.paths[:0], cells: sl.cells[:0], expl: sl.expl[:0]}
	q.byAddr[addr] = i
	q.active++
	if q.s.FirstTTL > q.s.MaxTTL {
		q.markIdle(i) // nothing to probe
		return int(i), true
	}
	top := q.s.FirstTTL - 1 + q.s.GapLimit
	if d := int(q.distance); d >= q.s.FirstTTL && d < top {
		// The last destination answered at d: this one goes no
		// further at once, where it would only ask the destination
		// again (and spend its ICMP budget) if it is as far.
		top = d
	}
	q.addPaths(sl, 1, top)
	q.enqueue(i)
	return int(i), true
}

// Lookup returns the slot of destination addr while it is in progress.
func (q *sched) Lookup(addr netip.Addr) (int, bool) {
	i, ok := q.byAddr[addr]
	return int(i), ok
}

// Addr returns the destination in slot i.
func (q *sched) Addr(i int) netip.Addr { return q.slots[i].addr }

// Paths returns how many path IDs slot i uses.
func (q *sched) Paths(i int) int { return len(q.slots[i].paths) }

// addPaths appends n path IDs that probe TTL by TTL, their first round
// going up to TTL top at once.
func (q *sched) addPaths(sl *slot, n, top int) {
	for range n {
		sl.paths = append(sl.paths, pathState{
			next: int16(q.s.FirstTTL), limit: int16(q.s.MaxTTL),
			answered: int16(q.s.FirstTTL - 1), top: int16(top),
		})
		sl.cells = append(sl.cells, make([]uint8, q.s.MaxTTL)...)
		sl.pending++
	}
}

// ensurePath makes path IDs up to p exist; new ones only take explicit
// probes.
func (q *sched) ensurePath(sl *slot, p int) {
	for len(sl.paths) < p {
		sl.paths = append(sl.paths, pathState{done: true})
		sl.cells = append(sl.cells, make([]uint8, q.s.MaxTTL)...)
	}
}

func (q *sched) cellIndex(path, ttl int) int { return (path-1)*q.s.MaxTTL + ttl - 1 }

// canSend says whether path state p allows sending its next TTL now.
//
// A path probes in rounds of up to GapLimit TTLs sent at once. The next
// round starts as soon as the highest TTL of the round answers (so the
// destination is further), or when every probe of the round is settled and
// one of the last GapLimit TTLs answered. So no probe goes beyond the
// destination's distance except in the round that finds it, and a path
// stops after GapLimit silent TTLs in a row.
func (q *sched) canSend(p *pathState) bool {
	return !p.done && p.next <= p.limit && p.next <= p.top
}

// hasWork says whether slot sl has a new probe to send.
func (q *sched) hasWork(sl *slot) bool {
	if sl.explAt < len(sl.expl) {
		return true
	}
	for i := range sl.paths {
		if q.canSend(&sl.paths[i]) {
			return true
		}
	}
	return false
}

func (q *sched) enqueue(i int32) {
	sl := &q.slots[i]
	if sl.queued || sl.blocked || !q.hasWork(sl) {
		return
	}
	sl.queued = true
	q.ready[(q.rhead+q.rlen)%len(q.ready)] = i
	q.rlen++
}

// HasReady says whether Ready has a probe to hand out.
func (q *sched) HasReady() bool { return q.rlen > 0 || len(q.retry) > 0 }

// readyCount is about how many probes Ready could hand out at once.
func (q *sched) readyCount() int { return q.rlen + len(q.retry) }

// Ready appends to out, up to max probes, the probes to send now and marks
// them sent at now. Retries go first, then one new probe per destination in
// turn. Probes the Gate refuses wait for Unblock.
func (q *sched) Ready(now time.Time, out []probeRef, max int) []probeRef {
	ns := q.clock(now)
	for len(q.retry) > 0 && len(out) < max {
		r := q.retry[len(q.retry)-1]
		q.retry = q.retry[:len(q.retry)-1]
		if ref, ok := q.retryReady(r, ns); ok {
			out = append(out, ref)
		}
	}
	for q.rlen > 0 && len(out) < max {
		i := q.ready[q.rhead]
		q.rhead = (q.rhead + 1) % len(q.ready)
		q.rlen--
		sl := &q.slots[i]
		sl.queued = false
		if !sl.inUse {
			continue
		}
		ref, ok, refused := q.next(i, sl)
		if ok {
			out = append(out, ref)
			q.mark(i, int32(q.cellIndex(int(ref.Path), int(ref.TTL))), ns, ref.blind)
		} else if refused {
			sl.blocked = true
			q.blocked = append(q.blocked, i)
			continue
		}
		q.enqueue(i)
	}
	return out
}

// retryReady hands out retry r, unless it is no longer needed or the gate
// holds it back.
func (q *sched) retryReady(r retryEntry, ns int64) (probeRef, bool) {
	sl := &q.slots[r.slot]
	if sl.gen != r.gen || !sl.inUse {
		return probeRef{}, false
	}
	c := sl.cells[r.cell]
	if cellState(c) != stUnsent {
		return probeRef{}, false // a late reply to the earlier send answered it
	}
	path, ttl := int(r.cell)/q.s.MaxTTL+1, int(r.cell)%q.s.MaxTTL+1
	if c&cellExplicit == 0 && ttl > int(sl.paths[path-1].limit) {
		// No longer needed: the destination turned out closer.
		sl.cells[r.cell] = c&^stMask | stSilent
		q.settle(r.slot, path)
		q.enqueue(r.slot)
		return probeRef{}, false
	}
	ok, blind := q.gate(r.slot, path, ttl)
	if !ok {
		q.deferred = append(q.deferred, r)
		return probeRef{}, false
	}
	q.mark(r.slot, r.cell, ns, blind)
	q.resent++
	return probeRef{Slot: r.slot, Path: uint16(path), TTL: uint8(ttl)}, true
}

func (q *sched) gate(slot int32, path, ttl int) (ok, blind bool) {
	if q.Gate == nil {
		return true, false
	}
	return q.Gate(slot, path, ttl)
}

// Blocked says whether the gate holds probes back.
func (q *sched) Blocked() bool { return len(q.blocked) > 0 || len(q.deferred) > 0 }

// heldBack counts the destinations and retries the gate holds back: they
// have probes to send, once the hops' budgets let them.
func (q *sched) heldBack() int { return len(q.blocked) + len(q.deferred) }

// Unblock hands the probes the gate held back to Ready again.
func (q *sched) Unblock() {
	for _, i := range q.blocked {
		if sl := &q.slots[i]; sl.blocked {
			sl.blocked = false
			q.enqueue(i)
		}
	}
	q.blocked = q.blocked[:0]
	q.retry = append(q.retry, q.deferred...)
	q.deferred = q.deferred[:0]
}

// next picks slot i's next new probe: explicit ones first, then the path
// IDs in turn, passing over those the gate refuses (refused says it did,
// when nothing else was left).
func (q *sched) next(i int32, sl *slot) (ref probeRef, ok, refused bool) {
	if ref, ok, refused = q.nextExplicit(i, sl); ok {
		return ref, true, false
	}
	n := len(sl.paths)
	for range n {
		pi := sl.cursor
		sl.cursor = (sl.cursor + 1) % n
		p := &sl.paths[pi]
		if !q.canSend(p) {
			continue
		}
		ttl := int(p.next)
		idx := q.cellIndex(pi+1, ttl)
		if cellState(sl.cells[idx]) != stUnsent || cellAttempts(sl.cells[idx]) > 0 {
			p.next++
			continue // probed explicitly already
		}
		pass, blind := q.gate(i, pi+1, ttl)
		if !pass {
			refused = true
			continue
		}
		p.next++
		return probeRef{Slot: i, Path: uint16(pi + 1), TTL: uint8(ttl), blind: blind}, true, false
	}
	return probeRef{}, false, refused
}

// nextExplicit picks slot i's next explicit probe (Plan.Cells) that the
// gate lets go. The ones before sl.explAt are done with; the ones refused
// stay after it, in turn.
func (q *sched) nextExplicit(i int32, sl *slot) (ref probeRef, ok, refused bool) {
	for k := sl.explAt; k < len(sl.expl); k++ {
		c := sl.expl[k]
		idx := q.cellIndex(c.PathID, c.TTL)
		if cellState(sl.cells[idx]) != stUnsent || cellAttempts(sl.cells[idx]) > 0 {
			// Already probed: nothing to send; it was never counted,
			// but it may have been the last thing the slot waited for.
			sl.expl[k], sl.expl[sl.explAt] = sl.expl[sl.explAt], sl.expl[k]
			sl.explAt++
			if sl.explAt == len(sl.expl) && sl.pending == 0 && sl.explOut == 0 {
				q.markIdle(i)
			}
			continue
		}
		pass, blind := q.gate(i, c.PathID, c.TTL)
		if !pass {
			refused = true
			continue
		}
		sl.expl[k], sl.expl[sl.explAt] = sl.expl[sl.explAt], sl.expl[k]
		sl.explAt++
		sl.cells[idx] |= cellExplicit
		sl.explOut++
		return probeRef{Slot: i, Path: uint16(c.PathID), TTL: uint8(c.TTL), blind: blind}, true, false
	}
	return probeRef{}, false, refused
}

func (q *sched) mark(i int32, cell int32, ns int64, blind bool) {
	sl := &q.slots[i]
	c := sl.cells[cell]
	att := cellAttempts(c) + 1
	sl.cells[cell] = att<<attemptShift | c&cellExplicit | stInFlight
	if blind {
		sl.cells[cell] |= cellBlind
	}
	q.sent++
	if q.qlen == len(q.queue) {
		q.growQueue()
	}
	q.queue[(q.qhead+q.qlen)%len(q.queue)] = timeoutEntry{
		slot: i, gen: sl.gen, cell: cell, attempt: att, expiry: ns + int64(q.s.Timeout),
	}
	q.qlen++
}

func (q *sched) growQueue() {
	n := make([]timeoutEntry, 2*len(q.queue))
	for k := range q.qlen {
		n[k] = q.queue[(q.qhead+k)%len(q.queue)]
	}
	q.queue, q.qhead = n, 0
}

// Answer records a reply to probe (slot, path, ttl). reached says it came
// from the destination; stop says the path cannot go further at this TTL
// (an unreachable from a router). It returns false for a duplicate or a
// reply to a probe that was never sent.
func (q *sched) Answer(i, path, ttl int, reached, stop bool) bool {
	if i < 0 || i >= len(q.slots) || !q.slots[i].inUse {
		return false
	}
	sl := &q.slots[i]
	if path < 1 || path > len(sl.paths) || ttl < 1 || ttl > q.s.MaxTTL {
		return false
	}
	idx := q.cellIndex(path, ttl)
	c := sl.cells[idx]
	switch cellState(c) {
	case stInFlight, stSilent:
		// (a late reply after the probe timed out still counts)
	case stUnsent:
		if cellAttempts(c) == 0 {
			return false // never sent
		}
		// a late reply to a send whose retry is still queued: it counts,
		// and Ready drops the retry
	default:
		return false
	}
	if c&cellExplicit != 0 && cellState(c) != stSilent {
		sl.explOut--
	}
	sl.cells[idx] = c&^stMask | stAnswered
	if q.Settled != nil {
		o := outAnswered
		if cellAttempts(c) > 1 {
			o = outAgain
		}
		q.Settled(int32(i), path, ttl, c&cellBlind != 0, o, time.Time{})
	}
	p := &sl.paths[path-1]
	if ttl > int(p.answered) {
		p.answered = int16(ttl)
	}
	if (reached || stop) && ttl < int(p.limit) {
		p.limit = int16(ttl)
	}
	if reached && path == 1 {
		q.distance = int16(ttl)
	}
	if !reached && !stop && ttl == int(p.top) && !p.done {
		// The round's highest TTL answered: the next round may go.
		p.top = max(p.top, p.answered+int16(q.s.GapLimit))
	}
	q.settle(int32(i), path)
	q.enqueue(int32(i))
	return true
}

// Reached records that the destination of slot i is ttl hops away on path
// ID path, as a reply to a higher TTL showed: nothing beyond ttl is sent
// any more, and the probes up to it still count.
func (q *sched) Reached(i, path, ttl int) {
	if i < 0 || i >= len(q.slots) || !q.slots[i].inUse || path < 1 || path > len(q.slots[i].paths) || ttl < 1 {
		return
	}
	if p := &q.slots[i].paths[path-1]; ttl < int(p.limit) {
		p.limit = int16(ttl)
		q.settle(int32(i), path)
	}
}

// Expire marks the probes whose timeout passed by now as silent, or queues
// them to be sent again.
func (q *sched) Expire(now time.Time) {
	ns := q.clock(now)
	for q.qlen > 0 {
		t := &q.queue[q.qhead]
		sl := &q.slots[t.slot]
		if !q.current(t) {
			q.pop() // answered, superseded by a retry, or the slot moved on
			continue
		}
		c := sl.cells[t.cell]
		if t.expiry > ns {
			break
		}
		slotIdx, cell := t.slot, t.cell
		q.pop()
		path, ttl := int(cell)/q.s.MaxTTL+1, int(cell)%q.s.MaxTTL+1
		explicit := c&cellExplicit != 0
		sent := q.base.Add(time.Duration(t.expiry) - q.s.Timeout)
		again := q.Settled != nil && q.Settled(slotIdx, path, ttl, c&cellBlind != 0, outSilent, sent)
		sends := int(cellAttempts(c))
		if (sends <= q.s.Retries || again && sends <= q.s.Retries+budgetRetries) && (explicit || ttl <= int(sl.paths[path-1].limit)) {
			sl.cells[cell] = c&^stMask | stUnsent
			q.retry = append(q.retry, retryEntry{slot: slotIdx, gen: sl.gen, cell: cell})
			continue
		}
		sl.cells[cell] = c&^stMask | stSilent
		if explicit {
			sl.explOut--
		}
		q.settle(slotIdx, path)
		q.enqueue(slotIdx)
	}
}

// clock returns now in nanoseconds since the scheduler's base time.
func (q *sched) clock(now time.Time) int64 {
	if q.base.IsZero() {
		q.base = now
	}
	return int64(now.Sub(q.base))
}

// current says whether timeout t is still that of a probe in flight.
func (q *sched) current(t *timeoutEntry) bool {
	sl := &q.slots[t.slot]
	if !sl.inUse || sl.gen != t.gen {
		return false
	}
	c := sl.cells[t.cell]
	return cellState(c) == stInFlight && cellAttempts(c) == t.attempt
}

func (q *sched) pop() {
	q.qhead = (q.qhead + 1) % len(q.queue)
	q.qlen--
}

// NextExpiry returns when the earliest probe in flight times out, zero when
// none is. Unlike Expire it changes nothing.
func (q *sched) NextExpiry() time.Time {
	for k := range q.qlen {
		t := &q.queue[(q.qhead+k)%len(q.queue)]
		if q.current(t) {
			return q.base.Add(time.Duration(t.expiry))
		}
	}
	return time.Time{}
}

// InFlight says whether any probe still awaits its reply or a retry.
func (q *sched) InFlight() bool { return !q.NextExpiry().IsZero() || len(q.retry) > 0 }

// settle updates whether a path, and with it its destination, is finished:
// nothing left to send, and no probe at or below its limit still awaited.
func (q *sched) settle(i int32, path int) {
	sl := &q.slots[i]
	p := &sl.paths[path-1]
	if !p.done && !q.canSend(p) {
		row := sl.cells[(path-1)*q.s.MaxTTL:]
		done := true
		for ttl := q.s.FirstTTL; ttl <= int(p.limit) && ttl < int(p.next); ttl++ {
			if st := cellState(row[ttl-1]); st == stInFlight || st == stUnsent {
				done = false
				break
			}
		}
		if done && p.next <= p.limit && int(p.next) <= int(p.answered)+q.s.GapLimit {
			// The round is settled and the path may go on.
			p.top = p.answered + int16(q.s.GapLimit)
			done = false
		}
		if done {
			p.done = true
			sl.pending--
		}
	}
	if sl.pending == 0 && sl.explOut == 0 && sl.explAt == len(sl.expl) {
		q.markIdle(i)
	}
}

func (q *sched) markIdle(i int32) {
	sl := &q.slots[i]
	if !sl.idle {
		sl.idle = true
		q.idle = append(q.idle, i)
	}
}

// Unresolved says whether destinations settled since the last Resolve: a
// probe handed out by Ready may be the last a destination waited for.
func (q *sched) Unresolved() bool { return len(q.idle) > 0 }

// Resolve decides, for every destination whose probes have all settled
// since the last call, what comes next: the remaining path IDs of the
// schedule after path ID 1 found the distance, or what More plans, or the
// end, when done is called with the slot (which is free again when done
// returns). Call it after the answers of a batch are recorded.
func (q *sched) Resolve(done func(slot int)) {
	for len(q.idle) > 0 {
		i := q.idle[len(q.idle)-1]
		q.idle = q.idle[:len(q.idle)-1]
		sl := &q.slots[i]
		sl.idle = false
		if !sl.inUse {
			continue
		}
		if !sl.scouted && q.s.FirstTTL <= q.s.MaxTTL {
			sl.scouted = true
			if n := min(q.s.Paths, q.s.MaxPaths) - len(sl.paths); n > 0 {
				// At least the first TTL: the destination may be
				// nearer than that.
				q.addPaths(sl, n, max(q.horizon(sl), q.s.FirstTTL))
				q.enqueue(i)
				continue
			}
		}
		var p plan
		if q.More != nil {
			p = q.More(int(i))
		}
		if q.apply(i, sl, p) {
			q.enqueue(i)
			continue
		}
		if p.Wait {
			sl.parked = true
			q.parked++
			continue
		}
		done(int(i))
		q.release(i)
	}
}

// Parked returns how many destinations wait for others (plan.Wait).
func (q *sched) Parked() int { return q.parked }

// IsParked says whether slot i waits for others.
func (q *sched) IsParked(i int) bool { return q.slots[i].parked }

// Wake hands slot i, if parked, to the next Resolve, which asks More again
// what it is to do.
func (q *sched) Wake(i int) {
	if sl := &q.slots[i]; sl.parked {
		sl.parked = false
		q.parked--
		q.markIdle(int32(i))
	}
}

// horizon is how far the first path ID got: the destination's distance,
// or the TTL where it stopped.
func (q *sched) horizon(sl *slot) int {
	p := &sl.paths[0]
	return min(int(p.next)-1, int(p.limit))
}

// apply adds what plan asks for to slot i and says whether anything is
// left to do.
func (q *sched) apply(i int32, sl *slot, plan plan) bool {
	if add := min(plan.Add, q.s.MaxPaths-len(sl.paths)); add > 0 {
		horizon := plan.Horizon
		if horizon < q.s.FirstTTL {
			horizon = q.s.FirstTTL - 1 + q.s.GapLimit
		}
		q.addPaths(sl, add, min(horizon, q.s.MaxTTL))
	}
	sl.expl = sl.expl[:0]
	sl.explAt = 0
	for _, c := range plan.Cells {
		if c.PathID < 1 || c.PathID > q.s.MaxPaths || c.TTL < q.s.FirstTTL || c.TTL > q.s.MaxTTL {
			continue
		}
		q.ensurePath(sl, c.PathID)
		idx := q.cellIndex(c.PathID, c.TTL)
		if cellAttempts(sl.cells[idx]) > 0 {
			continue // probed already
		}
		sl.expl = append(sl.expl, c)
	}
	for _, c := range plan.Repeats {
		if c.PathID < 1 || c.PathID > len(sl.paths) || c.TTL < q.s.FirstTTL || c.TTL > q.s.MaxTTL {
			continue
		}
		idx := q.cellIndex(c.PathID, c.TTL)
		if cellState(sl.cells[idx]) != stAnswered || !sl.paths[c.PathID-1].done {
			continue // only a probe answered, of a path ID done with its TTLs
		}
		sl.cells[idx] = stUnsent // sent again as a new explicit probe
		sl.expl = append(sl.expl, c)
	}
	return sl.pending > 0 || len(sl.expl) > 0
}

// release frees slot i for another destination.
func (q *sched) release(i int32) {
	sl := &q.slots[i]
	delete(q.byAddr, sl.addr)
	sl.inUse = false
	sl.gen++
	q.free = append(q.free, i)
	q.active--
}

// Abandon ends every destination in progress, calling done with each slot
// (for partial results), and frees the slots.
func (q *sched) Abandon(done func(slot int)) {
	for i := range q.slots {
		if q.slots[i].inUse {
			done(i)
			q.release(int32(i))
		}
		q.slots[i].queued = false
		q.slots[i].blocked = false
		q.slots[i].parked = false
	}
	q.idle = q.idle[:0]
	q.parked = 0
	q.retry = q.retry[:0]
	q.blocked = q.blocked[:0]
	q.deferred = q.deferred[:0]
	q.rlen = 0
	q.qlen = 0
}

// Probed tells whether probe (path, ttl) of slot i was sent and what came
// of it: answered, silent (given up), or neither yet.
func (q *sched) Probed(i, path, ttl int) (sent, answered, silent bool) {
	sl := &q.slots[i]
	if path < 1 || path > len(sl.paths) || ttl < 1 || ttl > q.s.MaxTTL {
		return false, false, false
	}
	c := sl.cells[q.cellIndex(path, ttl)]
	return cellAttempts(c) > 0, cellState(c) == stAnswered, cellState(c) == stSilent
}
