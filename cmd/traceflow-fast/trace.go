package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/mda"
	"github.com/traceflow-fast/traceflow-fast/bpf"
	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/internal/targets"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

const grantHint = "run as root, or grant it once: setcap cap_net_raw,cap_bpf+ep $(command -v traceflow-fast) (cap_bpf is optional: without it a classic BPF filter is used)"

// maxSkipLogs bounds the destinations skipped (no route, another source)
// that are logged one by one; the summary counts them all.
const maxSkipLogs = 10

// trace runs the probes and writes the results.
func trace(parent context.Context, o *options) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills the program the usual
	// way, should the partial results take too long to write.
	context.AfterFunc(ctx, stop)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) error { return &exitErr{code: exitError, err: err} }

	set, err := buildTargets(ctx, o)
	if err != nil {
		return fail(err)
	}
	// The run is IPv4 or IPv6, as its destinations are.
	ipv6 := set.Is6()
	if err := checkFamily(o, ipv6, set.Name(set.At(0))); err != nil {
		return fail(err)
	}
	total := set.Len()
	seed := uint64(time.Now().UnixNano())
	if o.seed != 0 {
		seed = o.seed
	}

	// Where the probes leave from: the route of the first destination
	// that has one (or --source). Every probe of a run has one source,
	// which the receive filter matches.
	routes, err := probe.NewRouteCache(ctx, probe.RouteOptions{Interface: o.iface, Source: o.source})
	if err != nil {
		return fail(err)
	}
	defer routes.Close()
	var first *probe.Route
	var firstErr error
	for i := uint64(0); i < min(total, 16) && first == nil; i++ {
		dst := set.At(i)
		rt, err := routes.Lookup(ctx, dst)
		if err != nil {
			firstErr = cmp(firstErr, fmt.Errorf("%s: %w", set.Name(dst), err))
			continue
		}
		first = rt
	}
	if first == nil {
		return fail(firstErr)
	}
	src := first.Src

	tag, release, err := probe.ReserveTag()
	if err != nil {
		return fail(err)
	}
	defer release()
	spec := &probe.Spec{
		Src:         src,
		BaseSrcPort: uint16(o.srcPort),
		DstPort:     uint16(o.dstPort),
		Paths:       o.maxPaths,
		Proto:       o.proto,
		Tag:         tag,
		TOS:         uint8(o.tos),
		Epoch:       time.Now(),
	}
	if err := spec.Validate(); err != nil {
		return fail(err)
	}

	// The receive side first, with its filter in place before any probe
	// leaves.
	// eBPF when it loads; else (no CAP_BPF, unprivileged eBPF disabled,
	// an old kernel) the equivalent classic BPF filter, which needs no
	// privilege.
	filter, kind, err := bpf.Load(bpf.Match{
		Proto:      spec.Proto,
		Src:        src,
		SrcPortMin: spec.BaseSrcPort + 1,
		SrcPortMax: spec.BaseSrcPort + uint16(o.maxPaths),
		DstPort:    spec.DstPort,
		Tag:        tag,
	})
	if err != nil {
		return fail(err)
	}
	defer filter.Close()
	if c, ok := filter.(*bpf.Classic); ok && kind == bpf.KindClassic {
		o.logger.Info("using the classic BPF receive filter", "reason", c.FallbackReason())
	}
	conn, err := capture.Listen(capture.Config{Attach: filter.Attach, IPv6: ipv6})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fail(fmt.Errorf("opening the AF_PACKET receive socket needs CAP_NET_RAW: %s (%v)", grantHint, err))
		}
		return fail(err)
	}
	defer conn.Close()

	// Sending goroutines (one per CPU), each with a socket per distinct
	// route (routes are interned by the cache).
	pool, err := probe.NewSendPool(runtime.GOMAXPROCS(0))
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fail(fmt.Errorf("opening the AF_PACKET send socket needs CAP_NET_RAW: %s (%v)", grantHint, err))
		}
		return fail(err)
	}
	defer pool.Close()
	routeOf := map[*probe.Route]int{}
	openRoute := func(rt *probe.Route) (int, error) {
		if i, ok := routeOf[rt]; ok {
			return i, nil
		}
		i, err := pool.AddRoute(rt)
		if err != nil {
			return 0, err
		}
		routeOf[rt] = i
		o.logger.Debug("route", "iface", rt.IfName, "src", rt.Src, "nexthop", rt.NextHop, "lladdr", rt.HWAddr)
		return i, nil
	}
	if _, err := openRoute(first); err != nil {
		return fail(err)
	}

	// --pcap: every probe as it is sent, every packet the filter passed.
	var pcapw *capture.PcapWriter
	if o.pcap != "" {
		if pcapw, err = capture.CreatePcap(o.pcap); err != nil {
			return fail(fmt.Errorf("--pcap: %w", err))
		}
		defer pcapw.Close()
	}
	out, err := newResultWriter(o)
	if err != nil {
		return fail(err)
	}
	defer out.abort()

	// Every socket and file of the run is open: no privilege is needed
	// from here on, so none is kept.
	if err := dropPrivileges(); err != nil {
		return fail(fmt.Errorf("dropping privileges: %w", err))
	}

	// The receive loop: decode, match, hand over.
	answers := make(chan probe.Answer, 1<<14)
	recvDone := make(chan struct{})
	quit := make(chan struct{})
	matcher := probe.NewMatcher(spec)
	if total == 1 {
		// One destination: every reply of the run is for it, so one
		// that quotes another destination shows a NAT on the way.
		matcher.Dst = set.At(0)
	}
	// received counts what the kernel filter let through; unmatched, the
	// part of it that the decoder did not recognise as an answer of this
	// run (non-zero would mean the filter is too lax).
	var received, unmatched int
	go func() {
		defer close(recvDone)
		var r probe.Reply
		var a probe.Answer
		handle := func(pkt []byte, ts time.Time) {
			received++
			if pcapw != nil {
				pcapw.WritePacket(ts, pkt) // an error sticks: Close reports it
			}
			if !matcher.Match(pkt, ts, &r, &a) {
				unmatched++
				return
			}
			select {
			case answers <- a:
			case <-quit:
			}
		}
		for {
			if _, err := conn.ReadBatch(handle); err != nil {
				select {
				case <-quit:
				default:
					o.logger.Error("receive", "err", err)
				}
				return
			}
		}
	}()

	window := o.window
	if window <= 0 {
		window = defaultWindow(o)
		if o.rate > 0 {
			// No more destinations at once than the rate serves in
			// about two timeouts: each then finishes soon after it
			// starts, and results stream out steadily.
			perDst := float64(o.paths) * 10
			if o.auto {
				perDst = 60
			}
			window = min(window, max(64, int(o.rate*2*o.wait.Seconds()/perDst)))
		}
	}
	window = int(min(uint64(window), max(total, 1)))
	collectors := make([]*analysis.Collector, window)
	started := make([]time.Time, window)
	complete := make([]bool, window)
	var stats runStats
	stats.total = total
	var skipped []string
	var skipErr error

	o.logger.Info("tracing", "destinations", total, "protocol", o.proto, "source", src, "iface", first.IfName,
		"paths", o.pathsLabel(), "ttl", fmt.Sprintf("%d..%d", o.firstTTL, o.maxTTL),
		"srcports", fmt.Sprintf("%d..%d", o.srcPort+1, o.srcPort+o.maxPaths), "dstport", o.dstPort,
		"rate", o.rateLabel(), "tag", tag, "seed", seed)
	start := time.Now()
	var mdas []*mda.State // --paths auto: the planner's input, per slot
	if o.auto {
		mdas = make([]*mda.State, window)
	}
	// Destinations leave the permutation through a pool of goroutines
	// that look up their routes ahead of the scan, so that a slow lookup
	// (an absent on-link host takes seconds to fail) never holds up
	// sending and receiving; the cache then answers Start at once.
	ready := make(chan netip.Addr, 4096)
	wake := make(chan struct{}, 1)
	var noMore bool
	go prefetchRoutes(ctx, targets.NewPermutation(total, seed), set, routes, ready, wake)
	scanner := &probe.Scanner{
		Spec: spec,
		Schedule: probe.Schedule{
			Paths: o.paths, MaxPaths: o.maxPaths, FirstTTL: o.firstTTL, MaxTTL: o.maxTTL,
			GapLimit: o.gapLimit, Timeout: o.wait, Retries: o.retries,
		},
		Window: window,
		Rate:   o.rate,
		Next: func() (netip.Addr, bool) {
			select {
			case dst, ok := <-ready:
				noMore = !ok
				return dst, ok
			default:
				return netip.Addr{}, false
			}
		},
		Wake:      wake,
		Exhausted: func() bool { return noMore },
		Start: func(slot int, dst netip.Addr) (int, error) {
			rt, err := routes.Lookup(ctx, dst)
			if err != nil {
				return 0, err
			}
			if rt.Src != src {
				return 0, fmt.Errorf("leaves from source %s, not %s like the others: give --source, or trace it in another run", rt.Src, src)
			}
			route, err := openRoute(rt)
			if err != nil {
				return 0, err
			}
			if collectors[slot] == nil {
				collectors[slot] = analysis.NewCollector(dst, set.Name(dst), src, o.maxPaths, o.maxTTL, spec.BaseSrcPort, spec.DstPort)
				collectors[slot].SetProtocol(o.proto.String())
			} else {
				collectors[slot].Reset(dst, set.Name(dst))
			}
			started[slot] = time.Now()
			complete[slot] = false
			if mdas != nil && mdas[slot] != nil {
				mdas[slot].Rounds = 0 // a new destination
			}
			return route, nil
		},
		OnSkip: func(dst netip.Addr, err error) {
			stats.skipped.Add(1)
			skipErr = cmp(skipErr, fmt.Errorf("%s: %w", set.Name(dst), err))
			if len(skipped) < maxSkipLogs {
				skipped = append(skipped, set.Name(dst))
				o.logger.Warn("skipped", "dst", set.Name(dst), "err", err)
			}
		},
		Send: func(route int, pkts [][]byte) error {
			if pcapw != nil {
				// Stamped when handed to the socket, just after encoding.
				pcapw.WritePackets(time.Now(), pkts)
			}
			return pool.Send(route, pkts)
		},
		Answers: answers,
		Linger:  min(o.wait, 500*time.Millisecond),
	}
	scanner.OnSent = func(p probe.ProbeRef) { collectors[p.Slot].Sent(int(p.Path), int(p.TTL)) }
	scanner.OnAnswer = func(slot int, a *probe.Answer, _ bool) {
		c := collectors[slot]
		if c.Reply(int(a.Path), int(a.TTL), a.From, a.RTT, a.Type, a.Code, a.Reached()) {
			c.Details(int(a.Path), int(a.TTL), a.ReplyTTL, a.QTTL, int(a.Size))
			recordExtras(c, a)
			stats.replies.Add(1)
		} else {
			c.Observe(int(a.Path), int(a.TTL), a.From)
		}
		if o.debug {
			o.logger.Debug("reply", "dst", a.Dst, "path", a.Path, "ttl", a.TTL, "from", a.From, "type", a.Type, "code", a.Code, "rtt", a.RTT)
		}
	}
	if o.auto {
		// Once a destination's probes are settled, the MDA planner says
		// which probes (path IDs and TTLs) it needs next.
		scanner.More = func(slot int) probe.Plan {
			st := mdaState(slot, collectors[slot], mdas, o)
			cells, done := mda.Plan(st, o.confidence, o.maxPaths)
			st.Rounds++
			complete[slot] = done
			if o.debug {
				o.logger.Debug("mda round", "dst", scanner.Sched().Addr(slot), "round", st.Rounds, "probes", len(cells), "complete", done)
			}
			plan := probe.Plan{Cells: make([]probe.Cell, len(cells))}
			for i, c := range cells {
				plan.Cells[i] = probe.Cell{Path: c.PathID, TTL: c.TTL}
			}
			return plan
		}
	}
	var writeErr error
	// Results are annotated, encoded and written by their own goroutine,
	// beside the scanning.
	results := make(chan *analysis.Trace, 1024)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for tr := range results {
			analysis.MarkRateLimited(tr)
			o.annotate.apply(context.WithoutCancel(ctx), []*analysis.Trace{tr})
			if err := out.write(tr); err != nil && writeErr == nil {
				// Nothing more could be kept: stop the run now.
				writeErr = err
				o.logger.Error("writing results", "err", err)
				cancel(err)
			}
		}
	}()
	scanner.OnDone = func(slot int, partial bool) {
		tr := collectors[slot].Trace(started[slot], time.Now(), partial)
		if partial && tr.ProbesSent == 0 {
			// Admitted but not probed yet when the run stopped: like
			// the destinations never reached, it has no result.
			return
		}
		if o.auto {
			// Rows get the hops the search implies without probing
			// them; path IDs that stay incomplete are not rows.
			st := mdaState(slot, collectors[slot], mdas, o)
			incomplete := mda.FillInferred(tr, st, o.confidence)
			tr.Flows = slices.DeleteFunc(tr.Flows, func(f analysis.Flow) bool { return slices.Contains(incomplete, f.PathID) })
			tr.MDA = &analysis.MDA{Confidence: o.confidence, MaxPaths: o.maxPaths, Complete: complete[slot] && !partial, Incomplete: incomplete}
		}
		stats.done.Add(1)
		if reachedAny(tr) {
			stats.reached.Add(1)
		}
		if partial {
			stats.partial.Add(1)
		}
		results <- tr
	}
	stats.sent = scanner.Sent
	stopProgress := startProgress(o, &stats, start)
	runErr := scanner.Run(ctx)
	close(results)
	<-writerDone
	if err := pool.Close(); err != nil && runErr == nil {
		runErr = err // a send queued before the end failed
	}
	end := time.Now()
	stopProgress()
	// Replies the kernel dropped because the receive buffer was full: a
	// sign that --rate is above what this host can take in.
	_, dropped, _ := conn.Stats()
	close(quit)
	conn.Close()
	<-recvDone
	var pcapErr error
	if pcapw != nil {
		if err := pcapw.Close(); err != nil {
			pcapErr = fmt.Errorf("--pcap %s: %w", o.pcap, err)
		}
	}

	interrupted := runErr != nil && ctx.Err() != nil
	// A send error ends the run, but what was measured until then is
	// written (the unfinished destinations as partial) before the error
	// is reported.
	var sendErr error
	if runErr != nil && !interrupted {
		sendErr = fmt.Errorf("sending probes: %w (the results written are partial)", runErr)
		interrupted = true
	}
	dur := end.Sub(start)
	o.logger.Info("done", "destinations", total, "reached", stats.reached.Load(), "skipped", stats.skipped.Load(),
		"partial", stats.partial.Load(), "probes", scanner.Sent(), "retries", scanner.Retries(),
		"replies", stats.replies.Load(), "received", received, "dropped", dropped, "unmatched", unmatched, "late", scanner.Late(),
		"duration", dur.Round(time.Microsecond), "probes_per_s", int64(float64(scanner.Sent())/max(dur.Seconds(), 1e-9)))
	if err := out.finish(); err != nil {
		return fail(err)
	}
	if writeErr != nil {
		return fail(writeErr)
	}
	if sendErr != nil {
		return fail(sendErr)
	}
	if pcapErr != nil {
		return fail(pcapErr)
	}
	if total == 1 && skipErr != nil {
		return fail(skipErr) // the only destination could not be traced
	}
	if !interrupted {
		if err := o.expect.check(out.kept, o.stderr); err != nil {
			return err
		}
	}
	switch {
	case interrupted:
		return &exitErr{code: exitInterrupted, err: errors.New("interrupted: results are partial")}
	case stats.reached.Load() < int64(total):
		return &exitErr{code: exitUnreached}
	}
	return nil
}

// mdaState hands the MDA planner the probes of the destination in slot:
// the collector's record of them, not a copy. Every probe sent is settled
// when the scheduler asks for a plan, or when the destination is done; a
// destination abandoned when the run stops counts its probes still
// unanswered as silent, as its trace shows them.
func mdaState(slot int, c *analysis.Collector, states []*mda.State, o *options) *mda.State {
	st := states[slot]
	if st == nil {
		st = &mda.State{MaxTTL: o.maxTTL, GapLimit: o.gapLimit, OneFirstHop: true}
		states[slot] = st
	}
	st.Rows = c.Rows(st.Rows[:0])
	return st
}

// cmp returns err if it is set, else next: the first error wins.
func cmp(err, next error) error {
	if err != nil {
		return err
	}
	return next
}

// runStats are the counters the progress display and summary read while
// the run goes on.
type runStats struct {
	total                                    uint64
	done, reached, partial, skipped, replies atomic.Int64
	sent                                     func() int64
}

// checkFamily checks the options of a run that is IPv6 (or IPv4) as its
// destinations are, the first named dst: IPv6 runs send UDP probes only,
// and --source must be of the run's family.
func checkFamily(o *options, ipv6 bool, dst string) error {
	if ipv6 && o.proto != probe.ProtoUDP {
		return fmt.Errorf("--protocol %s: IPv6 destinations (%s) are traced with udp probes only", o.proto, dst)
	}
	if o.source.IsValid() && o.source.Is6() != ipv6 {
		fam, hint := "IPv4", " (-6 resolves host names to IPv6 addresses)"
		if ipv6 {
			fam, hint = "IPv6", ""
		}
		return fmt.Errorf("--source %s: not an %s address, as the destinations (%s) are%s", o.source, fam, dst, hint)
	}
	return nil
}

// buildTargets reads the destinations of the command line and of every
// --file into a deduplicated set (IPv6 ones with -6).
func buildTargets(ctx context.Context, o *options) (*targets.Set, error) {
	b := targets.NewBuilder(targets.Options{
		MaxPrefix:   o.maxPrefix,
		SkipInvalid: o.skipInvalid,
		Exclude:     o.exclude,
		IPv6:        o.ipv6,
		Warn:        func(msg string) { o.logger.Warn("skipped invalid destination", "entry", msg) },
	})
	for _, d := range o.dsts {
		if err := b.AddArg(ctx, d); err != nil {
			return nil, err
		}
	}
	for _, f := range o.files {
		if err := addFile(ctx, b, f, o); err != nil {
			return nil, err
		}
	}
	set, err := b.Build()
	if err != nil {
		return nil, err
	}
	st := set.Stats()
	if st.Invalid+st.Duplicates+st.Excluded+st.Unroutable > 0 || len(o.files) > 0 {
		o.logger.Info("destinations", "count", set.Len(), "entries", st.Entries, "invalid_skipped", st.Invalid,
			"duplicates", st.Duplicates, "excluded", st.Excluded, "unroutable", st.Unroutable)
	}
	return set, nil
}

// addFile adds the destinations of a target file ("-" is standard input).
func addFile(ctx context.Context, b *targets.Builder, name string, o *options) error {
	if name == "-" {
		return b.AddFile(ctx, o.stdin, "-")
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("--file: %w", err)
	}
	defer f.Close()
	return b.AddFile(ctx, f, name)
}

// defaultWindow sizes the destinations in progress at once to a memory
// budget: a destination costs about a byte of scheduler state and a 40-byte
// result cell per (path ID, TTL), plus a few hundred bytes; with --paths
// auto, about as much again for the planner's view, for the 20 to 60 path
// IDs a diamond takes.
func defaultWindow(o *options) int {
	const budget = 96 << 20
	paths := o.paths
	if o.auto {
		paths = max(paths, 32)
	}
	per := 512 + paths*o.maxTTL*48
	return min(max(budget/per, 16), 1<<16)
}

// prefetchRoutes hands the destinations of set, in the order of perm, to
// ready once their routes are looked up (results and errors land in the
// route cache), with a signal on wake for each; it closes ready at the end.
func prefetchRoutes(ctx context.Context, perm *targets.Permutation, set *targets.Set, routes *probe.RouteCache, ready chan<- netip.Addr, wake chan<- struct{}) {
	const workers = 32
	jobs := make(chan netip.Addr)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dst := range jobs {
				_, _ = routes.Lookup(ctx, dst) // Start reports an error
				select {
				case ready <- dst:
				case <-ctx.Done():
					return
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	for {
		i, ok := perm.Next()
		if !ok {
			break
		}
		select {
		case jobs <- set.At(i):
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	close(ready)
	select {
	case wake <- struct{}{}:
	default:
	}
}

func reachedAny(t *analysis.Trace) bool {
	for _, f := range t.Flows {
		if f.Reached {
			return true
		}
	}
	return false
}
