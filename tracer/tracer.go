package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Sink receives each destination's result as soon as it is finished. Run
// calls Result from one goroutine, one result at a time, in the order the
// destinations finish; an error stops the run, and Run returns it.
type Sink interface {
	Result(t *analysis.Trace) error
}

// SinkFunc is a function as a Sink.
type SinkFunc func(t *analysis.Trace) error

// Result calls f(t).
func (f SinkFunc) Result(t *analysis.Trace) error { return f(t) }

// SkipSink is a Sink that is also told of every destination that could not
// be traced (no route, or a route from another source address), which gets
// no result: a program that waits for each destination's result before
// yielding it again (a monitor) learns that it will not come. Run calls
// Skipped from the goroutine that schedules the probes, which is not the
// one that calls Result; it must not block.
type SkipSink interface {
	Sink
	Skipped(t Target, err error)
}

// Stats are the live counters of a run.
type Stats struct {
	// Total is the number of destinations, -1 when not known (a stream).
	Total int64
	// Done counts the destinations finished, Reached those of them that
	// the probes reached, Partial those the run stopped before they were
	// finished, Skipped those that could not be traced (no route, say).
	Done, Reached, Partial, Skipped int64
	// Reused counts the destinations finished that took a router from
	// another destination's search (the stop set; see Config.NoStopSet).
	Reused int64
	// Sent counts the probes sent, Retries included; Replies the first
	// answers to them.
	Sent, Retries, Replies int64
	// Limited counts the silences of hops whose routers were answering
	// slower than they were asked (their ICMP rate limits): such probes
	// go again, beyond Retries, once the hop is paced below its rate.
	Limited int64
	// Received counts the packets the receive side passed, Unmatched
	// those that answered no probe of the run (more than a few means a
	// receive filter that is too lax), Late the answers that came for
	// destinations no longer in progress, Dropped the packets the
	// receive side lost because the run did not read them fast enough
	// (known at the end).
	Received, Unmatched, Late, Dropped int64
	// Start is when the run began.
	Start time.Time
}

// Skip is a destination that could not be traced, and why.
type Skip struct {
	Target Target
	Err    error
}

// Summary is what a run did.
type Summary struct {
	Stats
	// Skips holds the first destinations skipped (at most MaxSkips).
	Skips []Skip
	// Duration is how long the run took.
	Duration time.Duration
	// RateLimits lists every hop of the run whose routers answered
	// slower than they were asked (their ICMP rate limits): the pace its
	// probes were held to at the end (0 when no longer), and the
	// silences its budget explained. For TTL 1, After is invalid: the
	// source. The routers of a TTL as a whole also have an invalid After.
	RateLimits []analysis.RateLimit
}

// LogValue gives the summary as the attributes of a log line:
//
//	logger.Info("done", slog.Any("", sum))
func (s Summary) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("destinations", s.Total), slog.Int64("reached", s.Reached), slog.Int64("skipped", s.Skipped),
		slog.Int64("partial", s.Partial), slog.Int64("probes", s.Sent), slog.Int64("retries", s.Retries),
		slog.Int64("rate_limited", s.Limited), slog.Int("paced_hops", s.paced()), slog.Int64("reused", s.Reused),
		slog.Int64("replies", s.Replies), slog.Int64("received", s.Received), slog.Int64("dropped", s.Dropped),
		slog.Int64("unmatched", s.Unmatched), slog.Int64("late", s.Late), slog.Duration("duration", s.Duration.Round(time.Microsecond)),
		slog.Int64("probes_per_s", int64(float64(s.Sent)/max(s.Duration.Seconds(), 1e-9))))
}

// paced counts the hops of RateLimits paced at the end.
func (s Summary) paced() int {
	n := 0
	for _, rl := range s.RateLimits {
		if rl.Pace > 0 {
			n++
		}
	}
	return n
}

// MaxSkips bounds the skipped destinations that a Summary lists and that
// are logged one by one; Stats.Skipped counts them all.
const MaxSkips = 10

// Tracer is one run of the engine: Open prepares it (the steps that need
// privileges), Run traces its destinations. A Tracer runs once.
type Tracer struct {
	cfg     Config // defaults applied
	log     *slog.Logger
	net     Network
	rcv     Receiver
	spec    *probe.Spec
	release func() // of the run tag
	first   Route
	dsts    Targets
	total   int64
	only    netip.Addr // the first destination: the only one when total is 1

	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	sc        atomic.Pointer[scanner]
	start     atomic.Pointer[time.Time] // when Run began

	done, reached, partial, skipped, replies, reused atomic.Int64
	received, unmatched, dropped                     atomic.Int64
}

var discard = slog.New(slog.DiscardHandler)

// Open prepares a run over dsts: it opens the network (Config.Network, or
// the host's), finds the route of the first destinations (the probes of a
// run all leave from one source address, which the receive side matches),
// reserves a run tag and opens the receive side. These are the steps that
// need privileges: a program may drop them once Open returns.
func Open(ctx context.Context, cfg Config, dsts Targets) (*Tracer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.WithDefaults()
	t := &Tracer{cfg: c, log: c.Logger, net: c.Network, release: func() {}}
	if t.log == nil {
		t.log = discard
	}
	if t.net == nil {
		n, err := HostNetwork(ctx, c)
		if err != nil {
			return nil, err
		}
		t.net = n
	}
	if err := t.open(ctx, dsts); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tracer) open(ctx context.Context, dsts Targets) error {
	if err := t.firstRoute(ctx, dsts); err != nil {
		return err
	}
	tag, release, err := t.net.ReserveTag()
	if err != nil {
		return err
	}
	t.release = release
	c := &t.cfg
	t.spec = &probe.Spec{
		Src:         t.first.Src,
		BaseSrcPort: uint16(c.SrcPort),
		DstPort:     uint16(c.DstPort),
		Paths:       c.MaxPaths,
		Proto:       c.Protocol,
		Tag:         tag,
		TOS:         c.TOS,
		Epoch:       c.Clock.Now(),
	}
	if err := t.spec.Validate(); err != nil {
		return err
	}
	// The receive side first, with its filter in place before any probe
	// leaves.
	t.rcv, err = t.net.Listen(t.spec)
	return err
}

// firstRoute looks up the routes of the first destinations (at most 16)
// until one has one: its source is the run's. The destinations looked at
// are traced first.
func (t *Tracer) firstRoute(ctx context.Context, dsts Targets) error {
	p := &peeked{rest: dsts}
	var firstErr error
	for len(p.first) < 16 {
		tg, ok := dsts.Next(ctx)
		if !ok {
			break
		}
		p.first = append(p.first, tg)
		if tg.Addr.Is6() && t.cfg.Protocol != probe.ProtoUDP {
			return fmt.Errorf("%s: IPv6 destinations are traced with UDP probes only, not %s", tg.name(), t.cfg.Protocol)
		}
		rt, err := t.net.Route(ctx, tg.Addr)
		if err == nil {
			t.first = rt
			break
		}
		firstErr = cmp(firstErr, fmt.Errorf("%s: %w", tg.name(), err))
	}
	if len(p.first) == 0 {
		return errors.New("no destination to trace")
	}
	if !t.first.Src.IsValid() {
		return firstErr
	}
	t.dsts, t.total, t.only = p, dsts.Len(), p.first[0].Addr
	return nil
}

// Spec returns what every probe of the run shares: its source address, run
// tag, ports and protocol.
func (t *Tracer) Spec() probe.Spec { return *t.spec }

// Route returns how the probes to the first destination leave this host.
func (t *Tracer) Route() Route { return t.first }

// Config returns the run's configuration, defaults applied.
func (t *Tracer) Config() Config { return t.cfg }

// Stats returns the run's counters so far; it may be called at any time,
// from any goroutine.
func (t *Tracer) Stats() Stats {
	s := Stats{
		Total: t.total,
		Done:  t.done.Load(), Reached: t.reached.Load(), Partial: t.partial.Load(),
		Skipped: t.skipped.Load(), Replies: t.replies.Load(), Reused: t.reused.Load(),
		Received: t.received.Load(), Unmatched: t.unmatched.Load(), Dropped: t.dropped.Load(),
	}
	if start := t.start.Load(); start != nil {
		s.Start = *start
	}
	if sc := t.sc.Load(); sc != nil {
		s.Sent, s.Retries, s.Late, s.Limited = sc.Sent(), sc.Retries(), sc.Late(), sc.Limited()
	}
	return s
}

// Close releases what the run holds: the receive side, the network and
// the run tag. Run closes them itself when it returns; Close is for a
// Tracer that is not run, and may be called again.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		if t.rcv != nil {
			t.rcv.Close()
		}
		t.closeErr = t.net.Close()
		t.release()
	})
	return t.closeErr
}

// Trace opens a run over dsts and runs it: Open and Run in one, for a
// program that keeps its privileges.
func Trace(ctx context.Context, cfg Config, dsts Targets, sink Sink) (Summary, error) {
	t, err := Open(ctx, cfg, dsts)
	if err != nil {
		return Summary{}, err
	}
	defer t.Close()
	return t.Run(ctx, sink)
}

// cmp returns err if it is set, else next: the first error wins.
func cmp(err, next error) error {
	if err != nil {
		return err
	}
	return next
}
