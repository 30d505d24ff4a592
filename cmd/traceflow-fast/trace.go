package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/bpf"
	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

const grantHint = "run as root, or grant it once: setcap cap_net_raw,cap_bpf+ep $(command -v traceflow-fast)"

// target is one destination as the user named it.
type target struct {
	name string
	addr netip.Addr
}

// resolve turns the command-line destinations into IPv4 addresses, keeping
// the first of duplicates.
func resolve(ctx context.Context, o *options) ([]target, error) {
	var out []target
	seen := map[netip.Addr]bool{}
	for _, name := range o.dsts {
		addr, err := netip.ParseAddr(name)
		if err != nil {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
			cancel()
			if lerr != nil || len(addrs) == 0 {
				return nil, fmt.Errorf("cannot resolve %q to an IPv4 address: %v", name, lerr)
			}
			addr = addrs[0].Unmap()
			o.logger.Info("resolved", "name", name, "addr", addr)
		}
		if !addr.Is4() {
			return nil, fmt.Errorf("destination %q: only IPv4 is supported", name)
		}
		if seen[addr] {
			continue
		}
		seen[addr] = true
		out = append(out, target{name: name, addr: addr})
	}
	return out, nil
}

// trace runs the probes and writes the results.
func trace(parent context.Context, o *options) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fail := func(err error) error { return &exitErr{code: exitError, err: err} }

	targets, err := resolve(ctx, o)
	if err != nil {
		return fail(err)
	}

	// Where each destination's probes leave from.
	routes := make([]*probe.Route, len(targets))
	for i, t := range targets {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		rt, err := probe.LookupRoute(rctx, t.addr, probe.RouteOptions{Interface: o.iface, Source: o.source})
		cancel()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", t.name, err))
		}
		if i > 0 && rt.Src != routes[0].Src {
			return fail(fmt.Errorf("%s leaves from source %s but %s from %s: give --source", t.name, rt.Src, targets[0].name, routes[0].Src))
		}
		routes[i] = rt
	}
	src := routes[0].Src

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
		Tag:         tag,
		TOS:         uint8(o.tos),
		Epoch:       time.Now(),
	}
	if err := spec.Validate(); err != nil {
		return fail(err)
	}

	// The receive side first, with its filter in place before any probe
	// leaves.
	filter, err := bpf.LoadFilter(bpf.Match{
		Src:        src,
		SrcPortMin: spec.BaseSrcPort + 1,
		SrcPortMax: spec.BaseSrcPort + uint16(o.maxPaths),
		DstPort:    spec.DstPort,
		Tag:        tag,
	})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fail(fmt.Errorf("loading the eBPF receive filter needs CAP_BPF: %s (%v)", grantHint, err))
		}
		return fail(err)
	}
	defer filter.Close()
	conn, err := capture.Listen(capture.Config{Attach: filter.Attach})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fail(fmt.Errorf("opening the AF_PACKET receive socket needs CAP_NET_RAW: %s (%v)", grantHint, err))
		}
		return fail(err)
	}
	defer conn.Close()

	// --pcap: every probe as it is sent, every packet the filter passed.
	var pcapw *capture.PcapWriter
	if o.pcap != "" {
		if pcapw, err = capture.CreatePcap(o.pcap); err != nil {
			return fail(fmt.Errorf("--pcap: %w", err))
		}
		defer pcapw.Close()
	}
	if o.format == "atlas" {
		o.replies = new(analysis.ReplyDetails)
	}

	senders := make([]*probe.Sender, len(targets))
	byRoute := map[string]*probe.Sender{}
	for i, rt := range routes {
		key := fmt.Sprintf("%d/%s/%s", rt.Ifindex, rt.NextHop, rt.HWAddr)
		s := byRoute[key]
		if s == nil {
			s, err = probe.NewSender(rt)
			if err != nil {
				if errors.Is(err, os.ErrPermission) {
					return fail(fmt.Errorf("opening the AF_PACKET send socket needs CAP_NET_RAW: %s (%v)", grantHint, err))
				}
				return fail(err)
			}
			defer s.Close()
			byRoute[key] = s
		}
		senders[i] = s
		o.logger.Debug("route", "dst", targets[i].addr, "iface", rt.IfName, "src", rt.Src, "nexthop", rt.NextHop, "lladdr", rt.HWAddr)
	}

	dsts := make([]netip.Addr, len(targets))
	collectors := make([]*analysis.Collector, len(targets))
	for i, t := range targets {
		dsts[i] = t.addr
		collectors[i] = analysis.NewCollector(t.addr, t.name, src, o.maxPaths, o.maxTTL, spec.BaseSrcPort, spec.DstPort)
	}

	// The receive loop: decode, match, hand over.
	answers := make(chan probe.Answer, 4096)
	recvDone := make(chan struct{})
	quit := make(chan struct{})
	matcher := probe.NewMatcher(spec, dsts)
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
				o.logger.Debug("unmatched packet", "len", len(pkt))
				return
			}
			if o.replies != nil {
				o.replies.Record(int(a.Dst), int(a.Path), int(a.TTL), analysis.ReplyDetail{TTL: r.ReplyTTL, QuotedTTL: r.QTTL, Len: len(pkt)})
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

	o.logger.Info("tracing", "destinations", len(targets), "source", src, "iface", routes[0].IfName,
		"paths", o.paths, "ttl", fmt.Sprintf("%d..%d", o.firstTTL, o.maxTTL), "srcports", fmt.Sprintf("%d..%d", o.srcPort+1, o.srcPort+o.maxPaths), "auto", o.auto, "dstport", o.dstPort, "tag", tag)
	start := time.Now()
	runner := &probe.Runner{
		Spec: spec,
		Schedule: probe.Schedule{
			Paths: o.paths, MaxPaths: o.maxPaths, FirstTTL: o.firstTTL, MaxTTL: o.maxTTL,
			GapLimit: o.gapLimit, Timeout: o.wait, Retries: o.retries,
		},
		Dsts: dsts,
		Send: func(dst int, pkts [][]byte) error {
			if pcapw != nil {
				// Stamped when handed to the socket, just after encoding.
				pcapw.WritePackets(time.Now(), pkts)
			}
			_, err := senders[dst].Send(pkts)
			return err
		},
		Answers:  answers,
		OnSent:   func(p probe.ProbeRef) { collectors[p.Dst].Sent(int(p.Path), int(p.TTL)) },
		OnRepeat: func(a probe.Answer) { collectors[a.Dst].Observe(int(a.Path), int(a.TTL), a.From) },
		OnAnswer: func(a probe.Answer) {
			reached := a.Reached(dsts[a.Dst])
			collectors[a.Dst].Reply(int(a.Path), int(a.TTL), a.From, a.RTT, a.Type, a.Code, reached)
			o.logger.Debug("reply", "dst", dsts[a.Dst], "path", a.Path, "ttl", a.TTL, "from", a.From, "type", a.Type, "code", a.Code, "rtt", a.RTT)
		},
	}
	// --paths auto: when a destination's path IDs are done, the MDA rule
	// says whether more are needed.
	complete := make([]bool, len(targets))
	if o.auto {
		runner.More = func(d int) (add, horizon int) {
			tr := collectors[d].Trace(start, time.Now(), false)
			used := len(tr.Flows)
			need := analysis.FlowsNeeded(tr, o.confidence)
			complete[d] = need <= used
			for _, f := range tr.Flows {
				horizon = max(horizon, f.ReachedTTL)
			}
			add = min(need, o.maxPaths) - used
			o.logger.Debug("mda round", "dst", dsts[d], "path_ids", used, "needed", need, "adding", max(add, 0))
			return add, horizon
		}
	}
	runErr := runner.Run(ctx)
	end := time.Now()
	close(quit)
	conn.Close()
	<-recvDone
	// Replies still queued (late ones, repeats) are measurements too.
	for drained := false; !drained; {
		select {
		case a := <-answers:
			c := collectors[a.Dst]
			if !c.Reply(int(a.Path), int(a.TTL), a.From, a.RTT, a.Type, a.Code, a.Reached(dsts[a.Dst])) {
				c.Observe(int(a.Path), int(a.TTL), a.From)
			}
		default:
			drained = true
		}
	}
	var pcapErr error
	if pcapw != nil {
		if err := pcapw.Close(); err != nil {
			pcapErr = fmt.Errorf("--pcap %s: %w", o.pcap, err)
		}
	}

	interrupted := runErr != nil && ctx.Err() != nil
	// A send error ends the run, but what was measured until then is
	// still written (as partial) before the error is reported.
	var sendErr error
	if runErr != nil && !interrupted {
		sendErr = fmt.Errorf("sending probes: %w (the results written are partial)", runErr)
		interrupted = true
	}
	traces := make([]*analysis.Trace, len(targets))
	unreached := 0
	for i, c := range collectors {
		traces[i] = c.Trace(start, end, interrupted)
		if o.auto {
			traces[i].MDA = &analysis.MDA{Confidence: o.confidence, MaxPaths: o.maxPaths, Complete: complete[i] && !interrupted}
		}
		if !reachedAny(traces[i]) {
			unreached++
		}
	}
	o.logger.Info("done", "probes", runner.Sent(), "replies", countReplies(traces),
		"received", received, "unmatched", unmatched, "duration", end.Sub(start).Round(time.Microsecond))
	o.annotate.apply(context.WithoutCancel(ctx), traces)
	if err := writeResults(o, traces); err != nil {
		return fail(err)
	}
	if sendErr != nil {
		return fail(sendErr)
	}
	if pcapErr != nil {
		return fail(pcapErr)
	}
	if !interrupted {
		if err := o.expect.check(traces, o.stderr); err != nil {
			return err
		}
	}
	switch {
	case interrupted:
		return &exitErr{code: exitInterrupted, err: errors.New("interrupted: results are partial")}
	case unreached > 0:
		return &exitErr{code: exitUnreached}
	}
	return nil
}

func reachedAny(t *analysis.Trace) bool {
	for _, f := range t.Flows {
		if f.Reached {
			return true
		}
	}
	return false
}

func countReplies(ts []*analysis.Trace) int {
	n := 0
	for _, t := range ts {
		n += t.Replies
	}
	return n
}

// writeResults writes the traces in the chosen format to standard output,
// or atomically to --output (a crash never leaves half a file).
func writeResults(o *options, traces []*analysis.Trace) error {
	write := func(w io.Writer) error {
		if o.format == "viz" {
			return writeViz(w, traces)
		}
		opts := analysis.Options{Dedup: o.dedup}
		for i, t := range traces {
			var err error
			switch o.format {
			case "json":
				err = analysis.WriteJSON(w, t, opts)
			case "dot":
				err = analysis.WriteDOT(w, t, opts)
			case "atlas":
				err = analysis.WriteAtlas(w, t, analysis.AtlasOptions{Reply: o.replies.For(i)})
			case "horiz":
				if i > 0 {
					fmt.Fprintln(w)
				}
				err = analysis.WriteHoriz(w, t, opts)
			default:
				if i > 0 {
					fmt.Fprintln(w)
				}
				err = analysis.WriteVert(w, t, opts)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if o.format == "viz" && o.output == "" {
		return serveViz(o, traces)
	}
	if o.output == "" || o.output == "-" {
		return write(o.stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.output), "."+filepath.Base(o.output)+".*")
	if err != nil {
		return fmt.Errorf("--output %s: %w", o.output, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("--output %s: %w", o.output, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("--output %s: %w", o.output, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--output %s: %w", o.output, err)
	}
	if err := os.Rename(tmp.Name(), o.output); err != nil {
		return fmt.Errorf("--output %s: %w", o.output, err)
	}
	return nil
}
