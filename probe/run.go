package probe

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"
)

// Answer is a matched reply handed from the receive loop to the scheduler.
// It is a value type so that passing it over a channel does not allocate.
type Answer struct {
	Dst      netip.Addr // the probe's destination, as quoted
	Path     uint16
	TTL      uint8
	Type     uint8
	Code     uint8
	From     netip.Addr
	RTT      time.Duration
	Received time.Time
	// Details of the reply, for formats that show them.
	ReplyTTL uint8  // TTL of the ICMP message on arrival
	QTTL     uint8  // TTL of the probe when it reached the replying node
	QTOS     uint8  // TOS of the probe as quoted
	Size     uint16 // bytes of the ICMP message's IP packet
	// Rewrites says how the probe as quoted differs from what was sent.
	Rewrites Rewrite
	// Ext holds the MPLS label stack and interface information of the
	// reply's RFC 4884 extensions; zero when it had none.
	Ext AnswerExt
	// Proto is the protocol of the probe answered.
	Proto Proto
}

// Reached says whether the answer comes from the destination: a port
// unreachable, any unreachable sent by the destination address, or the
// destination's own answer to a TCP or ICMP probe (Type TypeTCP: a SYN-ACK
// or RST; Type ICMPEchoReply: an echo reply). For an IPv6 destination, Type
// and Code are ICMPv6's.
func (a *Answer) Reached() bool {
	if a.Dst.Is6() {
		return reached(a.Type, a.Code, a.From, a.Dst)
	}
	switch a.Type {
	case ICMPUnreachable:
		// A port unreachable means the destination only for UDP: a
		// firewall on the way rejects TCP and ICMP with one too.
		return a.Code == CodePortUnreachable && a.Proto == ProtoUDP || a.From == a.Dst
	case ICMPEchoReply, TypeTCP:
		return a.From.IsValid() && a.From == a.Dst
	}
	return false
}

// Stops says whether no higher TTL of this flow can get further: any
// unreachable message (from the destination or a router), or an answer
// from the destination.
func (a *Answer) Stops() bool { return Unreachable(a.Type, a.Dst.Is6()) || a.Reached() }

// Matcher turns received packets into Answers to a run's probes.
type Matcher struct {
	Spec *Spec
	// Dst, when set, is the run's only destination: every reply that
	// quotes a probe of the run (run tag, ports) answers a probe to it,
	// whatever destination it quotes. A quoted destination other than Dst
	// is then reported as RewriteDst, and the RTT undoes the checksum fix
	// of the NAT that rewrote it. Unset (a run of several destinations),
	// the quoted destination says which destination a reply is for.
	Dst netip.Addr
}

// NewMatcher returns a Matcher for the probes of spec.
func NewMatcher(spec *Spec) *Matcher { return &Matcher{Spec: spec} }

// Match decodes pkt (starting at its IP header: IPv6 when the Spec's source
// is, else IPv4), received at ts, into a.
// It reports false for anything that is not a reply to a probe of this run.
// Beyond the hop, it fills in how the quoted probe was rewritten on its
// way and the reply's MPLS labels and interface information (RFC 4884
// extensions). It does not allocate.
func (m *Matcher) Match(pkt []byte, ts time.Time, r *Reply, a *Answer) bool {
	v6 := m.Spec.Src.Is6()
	if v6 {
		if ParseReply6(pkt, r) != nil {
			return false
		}
	} else if ParseReply(pkt, r) != nil {
		return false
	}
	path, ttl, ok := m.Spec.Match(r)
	if !ok {
		return false
	}
	dst, sent, rw := r.QDst, r.QChecksum, m.Spec.rewrites(r)
	if m.Dst.IsValid() && r.Direct && r.From != m.Dst {
		// A SYN-ACK, RST or echo reply is the destination's own: one
		// from elsewhere is not an answer to our probe, whatever its
		// ports or identifier.
		return false
	}
	if m.Dst.IsValid() && dst != m.Dst {
		// A NAT rewrote the destination. Unless the quote shows that it
		// left the checksum as it was (RewriteChecksum), it fixed it for
		// the new pseudo header, which moved the clock of a UDP probe:
		// undo that.
		if rw&RewriteChecksum == 0 && udpQuote(r) {
			sent = unrewrite(sent, m.Dst, dst)
		}
		dst, rw = m.Dst, rw|RewriteDst
	}
	*a = Answer{
		Dst: dst, Path: uint16(path), TTL: uint8(ttl),
		Type: r.Type, Code: r.Code, From: r.From,
		RTT: m.Spec.RTT(sent, ts), Received: ts,
		ReplyTTL: r.ReplyTTL, QTTL: r.QTTL, QTOS: r.QTOS, Size: ipLen(pkt),
		Rewrites: rw, Proto: m.Spec.Proto,
	}
	if r.Extensions != nil {
		a.Ext.decode(r)
	}
	return true
}

// burstTime is how many seconds' worth of probes the rate limiter lets go
// at once after a pause.
const burstTime = 4 * time.Millisecond

// Scanner drives a Sched over a stream of destinations: it admits them as
// the sender needs work (up to Window at once), encodes and sends the
// probes the scheduler asks for at the configured rate, feeds it the
// answers, and reports every destination as it finishes. Time, routing,
// sending and the observers are injected.
type Scanner struct {
	Spec     *Spec
	Schedule Schedule
	// Window is the most destinations in progress at once (default 4096).
	Window int
	// Rate caps the probes sent per second, retries included; 0 is
	// unlimited.
	Rate float64
	// Next returns the next destination, false when there is none now.
	// Without Wake, false means there are no more. With Wake, Next may
	// have none yet (their routes are being looked up, say): Run waits
	// for a signal on Wake, and stops asking once Exhausted says so.
	Next      func() (netip.Addr, bool)
	Wake      <-chan struct{}
	Exhausted func() bool
	// Start is called when dst begins in slot; it returns the index of the
	// route its probes leave by (passed to Send). An error skips dst:
	// OnSkip is called and the slot is reused.
	Start  func(slot int, dst netip.Addr) (route int, err error)
	OnSkip func(dst netip.Addr, err error)
	// Send transmits complete IP packets by route.
	Send func(route int, pkts [][]byte) error
	// Answers delivers matched replies; the scanner never closes it.
	Answers <-chan Answer
	// OnSent is called for every probe sent. OnAnswer for every answer to
	// a destination in progress; first says it is the first answer to
	// that probe (later ones are repeats: retries' answers or
	// duplicates, where per-packet load balancers show).
	OnSent   func(ProbeRef)
	OnAnswer func(slot int, a *Answer, first bool)
	// More, when set, is asked what a destination whose probes are all
	// settled needs next (see Sched.More).
	More func(slot int) Plan
	// OnDone is called once per destination when it is finished, or with
	// partial set when the run stops before; the slot is reused after it
	// returns.
	OnDone func(slot int, partial bool)
	Now    func() time.Time
	// Batch is the most probes encoded and sent at once (default 64).
	Batch int
	// Linger is how long an interrupted run still waits for the replies
	// to probes in flight (default 500 ms, at most Schedule.Timeout).
	Linger time.Duration

	sent, retries, late atomic.Int64
	sched               *Sched
	// srtt is the smoothed round-trip time of the answers (Run's
	// goroutine only).
	srtt time.Duration
}

// Sent returns how many probes (retries included) were sent so far; it may
// be called while Run runs.
func (r *Scanner) Sent() int64 { return r.sent.Load() }

// Retries returns how many of the probes sent were retries.
func (r *Scanner) Retries() int64 { return r.retries.Load() }

// Late returns how many answers came for destinations no longer in
// progress.
func (r *Scanner) Late() int64 { return r.late.Load() }

// Sched returns the scheduler of the run in progress, for callbacks that
// need to look at a slot's probes (Sched.Probed). Only valid inside them.
func (r *Scanner) Sched() *Sched { return r.sched }

// Run probes until every destination is finished or ctx is done. It
// returns ctx's error when interrupted, or the first send error; either
// way the destinations in progress are reported with OnDone as partial.
func (r *Scanner) Run(ctx context.Context) error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	batch := r.Batch
	if batch <= 0 {
		batch = 64
	}
	window := r.Window
	if window <= 0 {
		window = 4096
	}
	q := NewSched(r.Schedule, window)
	q.More = r.More
	r.sched = q
	routes := make([]int32, window)
	refs := make([]ProbeRef, 0, batch)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, MaxProbeLen)
	}
	group := make([][]byte, 0, batch)
	done := func(slot int) {
		if r.OnDone != nil {
			r.OnDone(slot, false)
		}
	}
	partial := func(slot int) {
		if r.OnDone != nil {
			r.OnDone(slot, true)
		}
	}
	// A token bucket paces sending: Rate tokens a second, with up to
	// burstTime's worth saved up (at least one). Timers wake a goroutine
	// about a millisecond late at best, so a smaller bucket would cap
	// the rate at a few probes per wake-up.
	burst := max(1, r.Rate*burstTime.Seconds())
	tokens, last := min(burst, float64(batch)), now()
	exhausted := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Replies already received count before anything times out:
		// a loop that was held up must not expire answered probes.
		r.drain(q)
		t := now()
		q.Expire(t)
		// ahead is how many destinations with a probe ready are enough:
		// two batches keep the sender busy, and with a rate, as many as
		// it serves in two round trips make one pass over them last
		// longer than a round trip, so that a destination's next probe
		// goes out after the answer to its last (path ID 1 does not
		// probe past the destination for want of its answer).
		ahead := 2 * batch
		if r.Rate > 0 {
			ahead = max(ahead, int(2*r.Rate*r.srtt.Seconds()))
		}
		// demand says that destinations were left waiting only because
		// enough others had probes ready.
		demand := false
		for {
			q.Resolve(done)
			if exhausted || q.Free() == 0 {
				break
			}
			// Fill free slots while fewer than two batches of
			// destinations have a probe ready; those with nothing
			// to probe settle at once, so resolve again. With a
			// rate, admitting on demand keeps as few destinations
			// in progress as keep the sender busy: where answers
			// come back within a few batches, each finishes in a
			// few round trips and its state stays in cache; where
			// they are slow or lost, the window fills up as before.
			// Unpaced, each pass sends all that is ready, so the
			// window fills unless answers come back at once.
			admitted := false
			for q.Free() > 0 && q.readyCount() < ahead {
				dst, ok := r.Next()
				if !ok {
					exhausted = r.Wake == nil || r.Exhausted == nil || r.Exhausted()
					break
				}
				slot, ok := q.Admit(dst)
				if !ok {
					continue // already in progress
				}
				admitted = true
				route := 0
				if r.Start != nil {
					var err error
					if route, err = r.Start(slot, dst); err != nil {
						q.release(int32(slot))
						if r.OnSkip != nil {
							r.OnSkip(dst, err)
						}
						continue
					}
				}
				routes[slot] = int32(route)
			}
			if !admitted {
				demand = !exhausted && q.Free() > 0 && q.readyCount() >= ahead
				break
			}
		}
		if r.Rate > 0 {
			tokens = min(tokens+t.Sub(last).Seconds()*r.Rate, burst)
			last = t
		}
		for q.HasReady() {
			n := batch
			if r.Rate > 0 {
				n = min(n, int(tokens))
				if n == 0 {
					break
				}
			}
			t := now()
			before := q.Retries()
			refs = q.Ready(t, refs[:0], n)
			if len(refs) == 0 {
				break
			}
			if r.Rate > 0 {
				tokens -= float64(len(refs))
			}
			r.retries.Add(int64(q.Retries() - before))
			if err := r.sendBatch(refs, routes, bufs, group, t); err != nil {
				q.Abandon(partial)
				return err
			}
		}
		if (demand && q.readyCount() < ahead || q.Unresolved()) && ctx.Err() == nil {
			// The sender took the work that held destinations
			// back, or a destination settled while its probes were
			// handed out (a planned probe already sent): go on now,
			// not after the next wait.
			continue
		}
		if exhausted && q.Active() == 0 {
			return nil
		}
		wait := time.Hour
		if next := q.NextExpiry(); !next.IsZero() {
			wait = max(next.Sub(now()), 0)
		}
		if r.Rate > 0 && q.HasReady() {
			// Wake when a batch (or what is ready, if less) is paid for.
			need := min(float64(batch), float64(q.readyCount()), burst) - tokens
			wait = min(wait, time.Duration(max(need, 1)/r.Rate*float64(time.Second)))
		}
		timer.Reset(wait)
		var wake <-chan struct{}
		if !exhausted && q.Free() > 0 {
			wake = r.Wake // more destinations may become ready
		}
		select {
		case <-ctx.Done():
			r.linger(q, now)
			q.Abandon(partial)
			return ctx.Err()
		case a := <-r.Answers:
			r.answer(q, &a)
			// Take whatever else is queued before sending again.
			r.drain(q)
		case <-wake:
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

// linger records the answers to probes in flight for a short while after
// an interruption.
func (r *Scanner) linger(q *Sched, now func() time.Time) {
	d := r.Linger
	if d <= 0 {
		d = 500 * time.Millisecond
	}
	d = min(d, r.Schedule.Timeout)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.drain(q)
		q.Expire(now())
		if q.NextExpiry().IsZero() {
			return
		}
		select {
		case a := <-r.Answers:
			r.answer(q, &a)
		case <-deadline.C:
			return
		}
	}
}

// ipLen is the length of the IP packet pkt as its header gives it (link
// layers pad short frames), or len(pkt) when that is shorter.
func ipLen(pkt []byte) uint16 {
	n := len(pkt)
	switch {
	case n >= 40 && pkt[0]>>4 == 6:
		n = min(n, 40+int(binary.BigEndian.Uint16(pkt[4:])))
	case n >= 20 && pkt[0]>>4 == 4:
		n = min(n, int(binary.BigEndian.Uint16(pkt[2:])))
	}
	return uint16(min(n, 0xffff))
}

// drain records every answer already queued, without waiting.
func (r *Scanner) drain(q *Sched) {
	for {
		select {
		case a := <-r.Answers:
			r.answer(q, &a)
		default:
			return
		}
	}
}

func (r *Scanner) answer(q *Sched, a *Answer) {
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
	first := q.Answer(slot, int(a.Path), int(a.TTL), a.Reached(), a.Stops())
	if a.Reached() && a.QTTL > 1 && a.QTTL <= a.TTL {
		// The destination is nearer than this probe's TTL: the
		// answers below it were lost, not beyond it (see Sched.Reached).
		q.Reached(slot, int(a.Path), int(a.TTL-a.QTTL)+1)
	}
	if r.OnAnswer != nil {
		r.OnAnswer(slot, a, first)
	}
}

// sendBatch encodes refs and sends them grouped by route.
func (r *Scanner) sendBatch(refs []ProbeRef, routes []int32, bufs [][]byte, group [][]byte, t time.Time) error {
	q := r.sched
	for i, p := range refs {
		bufs[i] = bufs[i][:r.Spec.Encode(bufs[i][:cap(bufs[i])], q.Addr(int(p.Slot)), int(p.Path), int(p.TTL), t)]
	}
	for start := 0; start < len(refs); {
		route := routes[refs[start].Slot]
		group = group[:0]
		end := start
		for end < len(refs) && routes[refs[end].Slot] == route {
			group = append(group, bufs[end])
			end++
		}
		if err := r.Send(int(route), group); err != nil {
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
