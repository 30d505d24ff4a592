package probe

import (
	"context"
	"net/netip"
	"time"
)

// Answer is a matched reply handed from the receive loop to the scheduler.
// It is a value type so that passing it over a channel does not allocate.
type Answer struct {
	Dst      int32
	Path     uint16
	TTL      uint8
	Type     uint8
	Code     uint8
	From     netip.Addr
	RTT      time.Duration
	Received time.Time
}

// Reached says whether the answer comes from the destination.
func (a *Answer) Reached(dst netip.Addr) bool {
	return a.Type == ICMPUnreachable && (a.Code == CodePortUnreachable || a.From == dst)
}

// Stops says whether no higher TTL of this flow can get further: any
// unreachable message (from the destination or a router).
func (a *Answer) Stops() bool { return a.Type == ICMPUnreachable }

// Matcher turns received packets into Answers for the targets of a run.
type Matcher struct {
	Spec    *Spec
	targets map[netip.Addr]int32
}

// NewMatcher returns a Matcher for the given destinations.
func NewMatcher(spec *Spec, dsts []netip.Addr) *Matcher {
	m := &Matcher{Spec: spec, targets: make(map[netip.Addr]int32, len(dsts))}
	for i, d := range dsts {
		if _, dup := m.targets[d]; !dup {
			m.targets[d] = int32(i)
		}
	}
	return m
}

// Match decodes pkt (starting at its IPv4 header), received at ts, into a.
// It reports false for anything that is not a reply to a probe of this run
// toward one of its destinations. It does not allocate.
func (m *Matcher) Match(pkt []byte, ts time.Time, r *Reply, a *Answer) bool {
	if ParseReply(pkt, r) != nil {
		return false
	}
	path, ttl, ok := m.Spec.Match(r)
	if !ok {
		return false
	}
	dst, ok := m.targets[r.QDst]
	if !ok {
		return false
	}
	*a = Answer{
		Dst: dst, Path: uint16(path), TTL: uint8(ttl),
		Type: r.Type, Code: r.Code, From: r.From,
		RTT: m.Spec.RTT(r.QChecksum, ts), Received: ts,
	}
	return true
}

// Runner drives an Engine: it encodes and sends the probes the engine asks
// for, feeds it the answers, and returns when every destination is finished
// or ctx is done. Time, sending and the observers are injected.
type Runner struct {
	Spec     *Spec
	Schedule Schedule
	Dsts     []netip.Addr
	// Send transmits complete IPv4 packets toward destination dst.
	Send func(dst int, pkts [][]byte) error
	// Answers delivers matched replies; the runner never closes it.
	Answers <-chan Answer
	// OnSent is called for every probe sent; OnAnswer for every first
	// answer to a probe; OnDone once per destination when it is finished.
	OnSent   func(ProbeRef)
	OnAnswer func(Answer)
	OnDone   func(dst int)
	// OnRepeat is called for a further answer to a probe already answered
	// (a retry's, or a duplicate): per-packet load balancers show there.
	OnRepeat func(Answer)
	// More, when set, is asked whether a destination whose path IDs are
	// all finished needs more (see Engine.More).
	More func(dst int) (add, horizon int)
	Now  func() time.Time
	// Batch is the most probes encoded and sent at once (default 64).
	Batch int

	sent int
}

// Sent returns how many probes (retries included) the last Run sent.
func (r *Runner) Sent() int { return r.sent }

// Run probes until every destination is finished or ctx is done. It
// returns ctx's error when interrupted, or the first send error.
func (r *Runner) Run(ctx context.Context) error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	batch := r.Batch
	if batch <= 0 {
		batch = 64
	}
	e := NewEngine(r.Schedule, len(r.Dsts))
	e.More = r.More
	defer func() { r.sent = e.Sent() }()
	refs := make([]ProbeRef, 0, batch)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, Len)
	}
	byDst := make([][]byte, 0, batch)
	done := make([]bool, len(r.Dsts))
	finish := func() {
		for d := range done {
			if !done[d] && e.DstDone(d) {
				done[d] = true
				if r.OnDone != nil {
					r.OnDone(d)
				}
			}
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Time out what is due (queuing retries), let finished
		// destinations ask for more path IDs, and send everything the
		// engine allows now, a batch at a time, until nothing is left.
		for sentAny := true; sentAny; {
			sentAny = false
			e.Expire(now())
			e.Resolve()
			for {
				t := now()
				refs = e.Ready(t, refs[:0], batch)
				if len(refs) == 0 {
					break
				}
				sentAny = true
				if err := r.sendBatch(refs, bufs, byDst, t); err != nil {
					return err
				}
			}
		}
		finish()
		if e.Done() {
			return nil
		}
		next := e.NextExpiry()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case a := <-r.Answers:
			r.answer(e, a)
			// Take whatever else is queued before sending again.
			for drained := false; !drained; {
				select {
				case a := <-r.Answers:
					r.answer(e, a)
				default:
					drained = true
				}
			}
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (r *Runner) answer(e *Engine, a Answer) {
	dst := r.Dsts[a.Dst]
	if e.Answer(int(a.Dst), int(a.Path), int(a.TTL), a.Reached(dst), a.Stops()) {
		if r.OnAnswer != nil {
			r.OnAnswer(a)
		}
	} else if r.OnRepeat != nil {
		r.OnRepeat(a)
	}
}

// sendBatch encodes refs into bufs and sends them grouped by destination.
func (r *Runner) sendBatch(refs []ProbeRef, bufs [][]byte, byDst [][]byte, t time.Time) error {
	for i, p := range refs {
		r.Spec.Encode(bufs[i], r.Dsts[p.Dst], int(p.Path), int(p.TTL), t)
	}
	for start := 0; start < len(refs); {
		d := refs[start].Dst
		byDst = byDst[:0]
		end := start
		for end < len(refs) && refs[end].Dst == d {
			byDst = append(byDst, bufs[end])
			end++
		}
		if err := r.Send(int(d), byDst); err != nil {
			return err
		}
		if r.OnSent != nil {
			for _, p := range refs[start:end] {
				r.OnSent(p)
			}
		}
		start = end
	}
	return nil
}
