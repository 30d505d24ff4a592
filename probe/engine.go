package probe

import (
	"time"
)

// Schedule holds the knobs of the probe scheduler.
type Schedule struct {
	Paths    int           // path IDs probed from the start, 1..Paths
	MaxPaths int           // path IDs that More may add up to (default Paths)
	FirstTTL int           // first TTL probed (default 1)
	MaxTTL   int           // last TTL probed (at most MaxTTL)
	GapLimit int           // TTLs probed above the highest that answered before a path gives up
	Timeout  time.Duration // how long a probe waits for its reply
	Retries  int           // how often an unanswered probe is sent again
}

// ProbeRef names one probe: a destination (an index into the target list),
// a path ID and a TTL.
type ProbeRef struct {
	Dst  int32
	Path uint16
	TTL  uint8
}

// Probe states.
const (
	stUnsent uint8 = iota
	stInFlight
	stAnswered
	stSilent
)

type probeState struct {
	state    uint8
	attempts uint8
	sentAt   time.Time
}

type pathState struct {
	next     int // next TTL to send
	limit    int // highest TTL worth probing (lowered when the destination answers)
	answered int // highest TTL that answered
	inFlight int
	done     bool
}

type timeout struct {
	idx    int32
	expiry time.Time
}

// Engine decides which probe to send when. It is a pure state machine:
// time, replies and sending are the caller's, so that it is tested without
// sockets. It is not safe for concurrent use.
//
// Per path ID it keeps up to GapLimit TTLs in flight above the highest TTL
// that answered: all of a short path's probes go out at once, a long path
// advances as its hops answer, and a path whose last GapLimit TTLs stayed
// silent stops. Once the destination has answered at TTL d, no TTL above d
// is sent and replies to those still in flight are not waited for.
type Engine struct {
	s       Schedule
	ndst    int
	probes  []probeState // [dst][path][ttl]
	paths   []pathState  // [dst][path]
	pending []int        // unfinished paths per destination
	open    int          // unfinished destinations
	retry   []int32      // probes to send again
	queue   []timeout    // in send order, hence in expiry order
	head    int
	cursor  int // round-robin position over [dst][path] for fairness
	sent    int
	active  []int   // path IDs in use per destination
	idle    []int32 // destinations whose paths are all finished, for Resolve
	state   []uint8 // per destination: dstProbing, dstIdle, dstDone

	// More, when set, is asked (by Resolve) whether a destination whose
	// path IDs are all finished needs more: it returns how many path IDs to
	// add and the TTL up to which their first probes may go at once (the
	// destination's distance, when known). Zero ends the destination.
	More func(dst int) (add, horizon int)
}

const (
	dstProbing uint8 = iota
	dstIdle
	dstDone
)

// NewEngine returns an engine for ndst destinations.
func NewEngine(s Schedule, ndst int) *Engine {
	if s.FirstTTL < 1 {
		s.FirstTTL = 1
	}
	if s.MaxTTL > MaxTTL {
		s.MaxTTL = MaxTTL
	}
	if s.GapLimit < 1 {
		s.GapLimit = 1
	}
	if s.MaxPaths < s.Paths {
		s.MaxPaths = s.Paths
	}
	e := &Engine{
		s:       s,
		ndst:    ndst,
		probes:  make([]probeState, ndst*s.MaxPaths*s.MaxTTL),
		paths:   make([]pathState, ndst*s.MaxPaths),
		pending: make([]int, ndst),
		active:  make([]int, ndst),
		state:   make([]uint8, ndst),
		open:    ndst,
	}
	for i := range e.paths {
		e.paths[i] = pathState{next: s.FirstTTL, limit: s.MaxTTL, answered: s.FirstTTL - 1}
		if i%s.MaxPaths >= s.Paths {
			e.paths[i].done = true // not in use yet
		}
	}
	for d := range e.pending {
		e.pending[d] = s.Paths
		e.active[d] = s.Paths
	}
	if s.FirstTTL > s.MaxTTL || s.Paths < 1 {
		e.open = 0
		clear(e.pending)
		for d := range e.state {
			e.state[d] = dstDone
		}
	}
	return e
}

func (e *Engine) pathIndex(dst, path int) int { return dst*e.s.MaxPaths + path - 1 }

func (e *Engine) probeIndex(dst, path, ttl int) int {
	return (dst*e.s.MaxPaths+path-1)*e.s.MaxTTL + ttl - 1
}

func (e *Engine) ref(idx int) ProbeRef {
	ttl := idx%e.s.MaxTTL + 1
	pi := idx / e.s.MaxTTL
	return ProbeRef{Dst: int32(pi / e.s.MaxPaths), Path: uint16(pi%e.s.MaxPaths + 1), TTL: uint8(ttl)}
}

// canSend says whether path state p allows sending its next TTL.
func (e *Engine) canSend(p *pathState) bool {
	return !p.done && p.next <= p.limit && p.next <= p.answered+e.s.GapLimit
}

// Ready appends to out, up to max probes, the probes to send now and marks
// them sent at now. Retries go first, then new TTLs round-robin over paths.
func (e *Engine) Ready(now time.Time, out []ProbeRef, max int) []ProbeRef {
	for len(e.retry) > 0 && len(out) < max {
		idx := e.retry[len(e.retry)-1]
		e.retry = e.retry[:len(e.retry)-1]
		ps := &e.probes[idx]
		if ps.state != stUnsent {
			continue // a late reply to the earlier send answered it
		}
		r := e.ref(int(idx))
		p := &e.paths[e.pathIndex(int(r.Dst), int(r.Path))]
		if p.done || int(r.TTL) > p.limit {
			ps.state = stSilent // no longer needed: the destination turned out closer
			e.settle(int(r.Dst), int(r.Path))
			continue
		}
		out = append(out, r)
		e.mark(int(idx), p, now)
	}
	n := len(e.paths)
	for scanned := 0; scanned < n && len(out) < max; scanned++ {
		pi := e.cursor
		e.cursor++
		if e.cursor == n {
			e.cursor = 0
		}
		p := &e.paths[pi]
		for e.canSend(p) && len(out) < max {
			idx := pi*e.s.MaxTTL + p.next - 1
			out = append(out, e.ref(idx))
			p.next++
			e.mark(idx, p, now)
		}
	}
	return out
}

func (e *Engine) mark(idx int, p *pathState, now time.Time) {
	ps := &e.probes[idx]
	ps.state = stInFlight
	ps.attempts++
	ps.sentAt = now
	p.inFlight++
	e.sent++
	e.queue = append(e.queue, timeout{idx: int32(idx), expiry: now.Add(e.s.Timeout)})
}

// Sent returns how many probes (retries included) Ready has handed out.
func (e *Engine) Sent() int { return e.sent }

// Answer records a reply to probe (dst, path, ttl). reached says it came from
// the destination; stop says the path cannot go further at this TTL (an
// unreachable from a router). It returns false for a duplicate or a reply to
// a probe that was never sent.
func (e *Engine) Answer(dst, path, ttl int, reached, stop bool) bool {
	if dst < 0 || dst >= e.ndst || path < 1 || path > e.s.MaxPaths || ttl < 1 || ttl > e.s.MaxTTL {
		return false
	}
	ps := &e.probes[e.probeIndex(dst, path, ttl)]
	p := &e.paths[e.pathIndex(dst, path)]
	switch ps.state {
	case stInFlight:
		p.inFlight--
	case stSilent:
		// a late reply after the probe timed out still counts
	case stUnsent:
		if ps.attempts == 0 {
			return false // never sent
		}
		// a late reply to a send whose retry is still queued: it counts,
		// and Ready drops the retry
	default:
		return false
	}
	ps.state = stAnswered
	if ttl > p.answered {
		p.answered = ttl
	}
	if (reached || stop) && ttl < p.limit {
		p.limit = ttl
	}
	e.settle(dst, path)
	return true
}

// Expire marks the probes whose timeout passed by now as silent (or queues
// them to be sent again) and returns the next expiry, zero when none.
func (e *Engine) Expire(now time.Time) time.Time {
	for e.head < len(e.queue) {
		t := e.queue[e.head]
		ps := &e.probes[t.idx]
		if ps.state != stInFlight || !ps.sentAt.Add(e.s.Timeout).Equal(t.expiry) {
			e.head++ // answered, or superseded by a retry
			continue
		}
		if t.expiry.After(now) {
			break
		}
		e.head++
		r := e.ref(int(t.idx))
		p := &e.paths[e.pathIndex(int(r.Dst), int(r.Path))]
		if int(ps.attempts) <= e.s.Retries && int(r.TTL) <= p.limit {
			// Stays in flight until sent again.
			p.inFlight--
			ps.state = stUnsent
			e.retry = append(e.retry, t.idx)
			continue
		}
		ps.state = stSilent
		p.inFlight--
		e.settle(int(r.Dst), int(r.Path))
	}
	if e.head > 1024 && e.head*2 > len(e.queue) {
		n := copy(e.queue, e.queue[e.head:])
		e.queue = e.queue[:n]
		e.head = 0
	}
	for i := e.head; i < len(e.queue); i++ {
		t := e.queue[i]
		ps := &e.probes[t.idx]
		if ps.state == stInFlight && ps.sentAt.Add(e.s.Timeout).Equal(t.expiry) {
			return t.expiry
		}
	}
	return time.Time{}
}

// NextExpiry returns when the earliest probe in flight times out, zero when
// none is. Unlike Expire it changes nothing.
func (e *Engine) NextExpiry() time.Time {
	for i := e.head; i < len(e.queue); i++ {
		t := e.queue[i]
		ps := &e.probes[t.idx]
		if ps.state == stInFlight && ps.sentAt.Add(e.s.Timeout).Equal(t.expiry) {
			return t.expiry
		}
	}
	return time.Time{}
}

// settle updates whether a path, and with it its destination, is finished:
// nothing left to send, and no probe at or below its limit still awaited.
func (e *Engine) settle(dst, path int) {
	p := &e.paths[e.pathIndex(dst, path)]
	if p.done || e.canSend(p) {
		return
	}
	for ttl := e.s.FirstTTL; ttl <= p.limit && ttl < p.next; ttl++ {
		st := e.probes[e.probeIndex(dst, path, ttl)].state
		if st == stInFlight || st == stUnsent {
			return
		}
	}
	p.done = true
	e.pending[dst]--
	if e.pending[dst] == 0 && e.state[dst] == dstProbing {
		e.state[dst] = dstIdle
		e.idle = append(e.idle, int32(dst))
	}
}

// Resolve decides, for every destination whose path IDs have all finished
// since the last call, whether it needs more path IDs (asking More) or is
// done. Call it after the answers of a batch have been recorded, so that
// More sees them.
func (e *Engine) Resolve() {
	for len(e.idle) > 0 {
		dst := int(e.idle[len(e.idle)-1])
		e.idle = e.idle[:len(e.idle)-1]
		add, horizon := 0, 0
		if e.More != nil {
			add, horizon = e.More(dst)
		}
		add = min(add, e.s.MaxPaths-e.active[dst])
		if add <= 0 {
			e.state[dst] = dstDone
			e.open--
			continue
		}
		// The new path IDs may send their first probes up to the
		// horizon at once, then advance as their hops answer.
		answered := e.s.FirstTTL - 1
		if horizon >= e.s.FirstTTL {
			// May be below FirstTTL-1: it only sets how far the first
			// probes go (answered + GapLimit = horizon).
			answered = min(horizon, e.s.MaxTTL) - e.s.GapLimit
		}
		for path := e.active[dst] + 1; path <= e.active[dst]+add; path++ {
			e.paths[e.pathIndex(dst, path)] = pathState{next: e.s.FirstTTL, limit: e.s.MaxTTL, answered: answered}
		}
		e.active[dst] += add
		e.pending[dst] += add
		e.state[dst] = dstProbing
	}
}

// Active returns how many path IDs destination dst has used.
func (e *Engine) Active(dst int) int { return e.active[dst] }

// DstDone says whether destination dst is finished.
func (e *Engine) DstDone(dst int) bool { return e.state[dst] == dstDone }

// Done says whether every destination is finished.
func (e *Engine) Done() bool { return e.open == 0 }
