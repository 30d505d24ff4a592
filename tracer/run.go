package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/mda"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// A run has four goroutines, under one errgroup:
//
//   - the scan (Run's own): admits destinations, sends their probes, feeds
//     the answers to the scheduler and the collectors, plans the MDA rounds
//     and hands each finished destination's result on;
//   - receive: reads the receive side, matches replies to probes and hands
//     the answers to the scan;
//   - prefetch: takes the destinations from Targets and looks up their
//     routes ahead of the scan, so that a slow lookup (an absent on-link
//     host takes seconds to fail) never holds up sending and receiving;
//   - write: marks the hops the routers' ICMP limits silenced and hands
//     each result to the sink, beside the scan.
//
// The scan ends first (every destination finished, or the context done);
// then the writer drains the results, prefetch is cancelled, the network
// flushes its sends, and closing the receive side ends receive.

// run is the state of one Run.
type run struct {
	t     *Tracer
	sc    *scanner
	sink  Sink
	slots []dest

	answers chan probe.Answer
	results chan *analysis.Trace
	ready   chan pending
	wake    chan struct{}
	cancel  context.CancelCauseFunc

	// The scan goroutine's.
	noMore bool
	// The stop set of an adaptive run (nil without), the destinations
	// admitted so far, and scratch.
	stops    *mda.StopSet
	owners   uint64
	wokenBuf []uint64
	cur      pending // what Next returned last, with its route
	debug    bool    // log every answer
	skips    []Skip
}

// dest is a destination in progress, in a slot of the scheduler.
type dest struct {
	col      *analysis.Collector
	start    time.Time
	complete bool // the MDA search said it was done
	mda      *mda.State
	owner    uint64 // in the stop set: one per destination of the run
}

// pending is a destination whose route was looked up.
type pending struct {
	t   Target
	rt  Route
	err error
}

// answerQueue is how many answers wait between receive and the scan.
const answerQueue = 1 << 14

// Run traces every destination, handing each result to sink as soon as it
// is finished, until all are or ctx is done. It returns what the run did,
// and ctx's error when it was interrupted (the destinations in progress are
// then handed to sink as partial results), or the error that stopped it:
// the sink's, or a failure to send or receive. Run closes the Tracer when
// it returns.
func (t *Tracer) Run(ctx context.Context, sink Sink) (Summary, error) {
	if !t.running.CompareAndSwap(false, true) {
		return Summary{}, errors.New("tracer: Run called twice")
	}
	defer t.Close()
	scanCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := t.newRun(sink, cancel)
	start := t.cfg.Clock.Now()
	t.start.Store(&start)
	t.sc.Store(r.sc)
	t.logStart()

	var g errgroup.Group
	quit := make(chan struct{})
	prefetchCtx, stopPrefetch := context.WithCancel(scanCtx)
	g.Go(func() error { return r.receive(quit) })
	g.Go(func() error { r.prefetch(prefetchCtx); return nil })
	g.Go(r.write)
	scanErr := r.sc.Run(scanCtx)
	close(r.results)
	stopPrefetch()
	close(quit)
	if _, dropped, err := t.rcv.Stats(); err == nil {
		t.dropped.Store(int64(dropped))
	}
	t.rcv.Close()
	sendErr := t.net.Close()
	g.Wait()

	sum := Summary{Stats: t.Stats(), Skips: r.skips, Duration: t.cfg.Clock.Now().Sub(start), RateLimits: r.sc.allRateLimits()}
	if r.debug {
		for _, rl := range sum.RateLimits {
			t.log.Debug("rate limit", "ttl", rl.TTL, "after", rl.After, "pace_per_s", rl.Pace, "silences", rl.Silences)
		}
	}
	switch {
	case ctx.Err() != nil:
		return sum, ctx.Err()
	case context.Cause(scanCtx) != nil && !errors.Is(context.Cause(scanCtx), context.Canceled):
		return sum, context.Cause(scanCtx) // the sink's, or receive's
	case scanErr != nil:
		return sum, fmt.Errorf("sending probes: %w", scanErr)
	case sendErr != nil:
		return sum, fmt.Errorf("sending probes: %w", sendErr)
	}
	return sum, nil
}

func (t *Tracer) newRun(sink Sink, cancel context.CancelCauseFunc) *run {
	c := &t.cfg
	window := c.window(t.total)
	r := &run{
		t: t, sink: sink, cancel: cancel,
		slots:   make([]dest, window),
		answers: make(chan probe.Answer, answerQueue),
		results: make(chan *analysis.Trace, 1024),
		ready:   make(chan pending, 4096),
		wake:    make(chan struct{}, 1),
	}
	r.sc = &scanner{
		Spec: t.spec,
		Schedule: schedule{
			Paths: max(c.Paths, 1), MaxPaths: c.MaxPaths, FirstTTL: c.FirstTTL, MaxTTL: c.MaxTTL,
			GapLimit: c.GapLimit, Timeout: c.Wait, Retries: c.Retries,
		},
		Window:    window,
		Rate:      c.Rate,
		Clock:     c.Clock,
		Next:      r.next,
		Wake:      r.wake,
		Exhausted: func() bool { return r.noMore },
		Start:     r.start,
		OnSkip:    r.skip,
		Send:      r.send,
		Answers:   r.answers,
		OnSent:    r.sent,
		OnAnswer:  r.answer,
		OnDone:    r.finish,
		Linger:    min(c.Wait, 500*time.Millisecond),
	}
	if c.Adaptive() {
		r.sc.More = r.more
		if !c.NoStopSet && t.total != 1 {
			r.stops = mda.NewStopSet()
			r.sc.Woken, r.sc.Unstick = r.woken, r.unstick
		}
	}
	r.sc.Prev = func(slot, path, ttl int) (netip.Addr, bool) { return r.slots[slot].col.From(path, ttl) }
	r.debug = t.log.Enabled(context.Background(), slog.LevelDebug)
	return r
}

// receive reads the receive side until quit is closed: it decodes every
// packet, matches it to a probe of the run and hands the answer over. It
// does not allocate per packet.
func (r *run) receive(quit <-chan struct{}) error {
	t := r.t
	m := probe.NewMatcher(t.spec)
	if t.total == 1 {
		// One destination: every reply of the run is for it, so one
		// that quotes another destination shows a NAT on the way.
		m.Dst = t.only
	}
	log := t.cfg.Capture
	var rep probe.Reply
	var a probe.Answer
	handle := func(pkt []byte, ts time.Time) {
		t.received.Add(1)
		if log != nil {
			log.WritePacket(ts, pkt) // an error sticks: its owner reports it
		}
		if !m.Match(pkt, ts, &rep, &a) {
			t.unmatched.Add(1)
			return
		}
		select {
		case r.answers <- a:
		case <-quit:
		}
	}
	for {
		if _, err := t.rcv.ReadBatch(handle); err != nil {
			select {
			case <-quit:
				return nil
			default:
			}
			err = fmt.Errorf("receiving replies: %w", err)
			r.cancel(err)
			return err
		}
	}
}

// prefetch hands the destinations to the scan once their routes are looked
// up, with a signal on wake for each, by a pool of goroutines; it closes
// ready at the end.
func (r *run) prefetch(ctx context.Context) {
	const workers = 32
	jobs := make(chan Target)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tg := range jobs {
				rt, err := r.t.net.Route(ctx, tg.Addr)
				select {
				case r.ready <- pending{t: tg, rt: rt, err: err}:
				case <-ctx.Done():
					return
				}
				r.signal()
			}
		})
	}
	for {
		tg, ok := r.t.dsts.Next(ctx)
		if !ok {
			break
		}
		select {
		case jobs <- tg:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	close(r.ready)
	r.signal()
}

func (r *run) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next is the scanner's Next: a destination whose route is known, if one
// is ready.
func (r *run) next() (Target, bool) {
	select {
	case p, ok := <-r.ready:
		r.noMore = !ok
		r.cur = p
		return p.t, ok
	default:
		return Target{}, false
	}
}

// start is the scanner's Start, called for the destination next returned.
func (r *run) start(slot int, tg Target) (int, error) {
	t := r.t
	p := r.cur
	if p.err != nil {
		return 0, p.err
	}
	if p.rt.Src != t.spec.Src {
		return 0, fmt.Errorf("leaves from source %s, not %s like the others: set the source address, or trace it in another run", p.rt.Src, t.spec.Src)
	}
	d := &r.slots[slot]
	c := &t.cfg
	if d.col == nil {
		d.col = analysis.NewCollector(tg.Addr, tg.name(), t.spec.Src, c.MaxPaths, c.MaxTTL, t.spec.BaseSrcPort, t.spec.DstPort)
		d.col.SetProtocol(c.Protocol.String())
	} else {
		d.col.Reset(tg.Addr, tg.name())
	}
	d.start, d.complete = c.Clock.Now(), false
	if d.mda != nil {
		d.mda.Rounds, d.mda.NoWait = 0, false // a new destination
	}
	r.owners++
	d.owner = r.owners<<21 | uint64(slot)
	return p.rt.Link, nil
}

func (r *run) skip(tg Target, err error) {
	r.t.skipped.Add(1)
	if len(r.skips) < MaxSkips {
		r.skips = append(r.skips, Skip{Target: tg, Err: err})
		r.t.log.Warn("skipped", "dst", tg.name(), "err", err)
	}
	if s, ok := r.sink.(SkipSink); ok {
		s.Skipped(tg, err)
	}
}

func (r *run) send(link int, pkts [][]byte) error {
	if log := r.t.cfg.Capture; log != nil {
		// Stamped when handed to the network, just after encoding.
		log.WritePackets(r.t.cfg.Clock.Now(), pkts)
	}
	return r.t.net.Send(link, pkts)
}

// answer is the scanner's OnAnswer.
func (r *run) answer(slot int, a *probe.Answer, first bool) {
	c := r.slots[slot].col
	if c.Reply(int(a.Path), int(a.TTL), a.From, a.RTT, a.Type, a.Code, a.Reached()) {
		c.Details(int(a.Path), int(a.TTL), a.ReplyTTL, a.QTTL, int(a.Size))
		c.Extras(a)
		r.t.replies.Add(1)
	} else {
		c.Observe(int(a.Path), int(a.TTL), a.From)
	}
	if r.debug {
		r.t.log.Debug("reply", "dst", a.Dst, "path", a.Path, "ttl", a.TTL, "from", a.From, "type", a.Type, "code", a.Code, "rtt", a.RTT)
	}
	if o := r.t.cfg.Observer; o != nil {
		o.Answer(a, first)
	}
}

// finish is the scanner's OnDone: it builds the destination's result and
// hands it to the writer.
func (r *run) finish(slot int, partial bool) {
	t, d := r.t, &r.slots[slot]
	r.stops.Release(d.owner)
	tr := d.col.Trace(d.start, t.cfg.Clock.Now(), partial)
	if partial && tr.ProbesSent == 0 {
		// Admitted but not probed yet when the run stopped: like
		// the destinations never reached, it has no result.
		return
	}
	tr.RateLimits = r.sc.rateLimits(tr)
	if t.cfg.Adaptive() {
		// Rows get the hops the search implies without probing
		// them; path IDs that stay incomplete are not rows.
		st := r.mdaState(slot)
		incomplete := mda.FillInferred(tr, st, t.cfg.Confidence)
		mda.MarkPerPacket(tr, st, t.cfg.Confidence)
		tr.Flows = slices.DeleteFunc(tr.Flows, func(f analysis.Flow) bool { return slices.Contains(incomplete, f.PathID) })
		tr.MDA = &analysis.MDA{Confidence: t.cfg.Confidence, MaxPaths: t.cfg.MaxPaths, Complete: d.complete && !partial, Incomplete: incomplete}
	}
	t.done.Add(1)
	if reachedAny(tr) {
		t.reached.Add(1)
	}
	if partial {
		t.partial.Add(1)
	}
	if len(tr.Reused) > 0 {
		t.reused.Add(1)
	}
	r.results <- tr
}

// write hands the results to the sink; after an error of the sink it
// stops the run, and drains the results until the scan is over.
func (r *run) write() error {
	var err error
	for tr := range r.results {
		if err != nil {
			continue
		}
		analysis.MarkRateLimited(tr)
		analysis.MarkUnsettled(tr)
		if err = r.sink.Result(tr); err != nil {
			r.t.log.Error("writing results", "err", err)
			r.cancel(err)
		}
	}
	return err
}

func reachedAny(t *analysis.Trace) bool {
	for _, f := range t.Flows {
		if f.Reached {
			return true
		}
	}
	return false
}

// logStart logs what the run is about to do.
func (t *Tracer) logStart() {
	c, spec := &t.cfg, t.spec
	paths, rate := fmt.Sprint(c.Paths), "unlimited"
	if c.Adaptive() {
		paths = fmt.Sprintf("auto (1..%d)", c.MaxPaths)
	}
	if c.Rate > 0 {
		rate = fmt.Sprintf("%g/s", c.Rate)
	}
	t.log.Info("tracing", "destinations", t.total, "protocol", c.Protocol, "source", spec.Src, "iface", t.first.Iface,
		"paths", paths, "ttl", fmt.Sprintf("%d..%d", c.FirstTTL, c.MaxTTL),
		"srcports", fmt.Sprintf("%d..%d", c.SrcPort+1, c.SrcPort+c.MaxPaths), "dstport", c.DstPort,
		"rate", rate, "tag", spec.Tag, slog.Any("", t.dsts))
}
