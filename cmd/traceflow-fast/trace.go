package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/fleet/fleetcmd"
	"github.com/traceflow-fast/traceflow-fast/internal/privs"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

const grantHint = "run as root, or grant it once: setcap cap_net_raw,cap_bpf+ep $(command -v traceflow-fast) (cap_bpf is optional: without it a classic BPF filter is used)"

// trace runs the probes and writes the results.
func trace(parent context.Context, o *options) error {
	ctx, stop := signal.NotifyContext(o.view.Context(parent), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills the program the usual
	// way, should the partial results take too long to write.
	context.AfterFunc(ctx, stop)

	set, err := buildTargets(ctx, o)
	if err != nil {
		return fail(err)
	}
	// The run is IPv4 or IPv6, as its destinations are.
	if err := checkFamily(o, set.Is6(), set.Name(set.At(0))); err != nil {
		return fail(err)
	}
	if o.remote != nil { // traced by agents
		return o.remote.Trace(ctx, fleetcmd.Run{Config: o.cfg, Output: o.out, Targets: set, Seed: o.seed, Annotate: o.annotate, Exit: newExit})
	}
	var pcapw *capture.PcapWriter
	if o.pcap != "" {
		if pcapw, err = capture.CreatePcap(o.pcap); err != nil {
			return fail(fmt.Errorf("--pcap: %w", err))
		}
		defer pcapw.Close()
		o.cfg.Capture = pcapw
	}
	tr, err := tracer.Open(ctx, o.cfg, tracer.Shuffle(set, o.seed))
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w: %s", err, grantHint)
		}
		return fail(err)
	}
	defer tr.Close()
	o.out.Keep = o.expect != nil
	out, err := output.Open(o.out)
	switch {
	case err != nil && o.out.Format == "viz" && o.out.Output == "":
		return fail(fmt.Errorf("--bind %s: %w", o.out.Bind, err))
	case err != nil:
		return fail(fmt.Errorf("--output: %w", err))
	}
	defer out.Abort()
	// Every socket and file of the run is open: no privilege is needed
	// from here on, so none is kept.
	if err := privs.Drop(); err != nil {
		return fail(fmt.Errorf("dropping privileges: %w", err))
	}
	stopProgress := func() {}
	if o.progress && o.view == nil {
		stopProgress = output.Progress(o.out.Stderr, tr.Stats)
	}
	sum, runErr := o.view.Run(ctx, tr.Run, tracer.SinkFunc(o.annotate.Then(context.WithoutCancel(ctx), out.Result)))
	stopProgress()
	o.logger.Info("done", slog.Any("", sum))
	return finish(ctx, o, out, pcapw, &sum, runErr)
}

// finish writes what waits for the end of the run and turns its outcome
// into an exit status.
func finish(ctx context.Context, o *options, out *output.Writer, pcapw *capture.PcapWriter, sum *tracer.Summary, runErr error) error {
	interrupted := runErr != nil && ctx.Err() != nil
	if err := out.Finish(); err != nil {
		if o.out.Output != "" {
			err = fmt.Errorf("--output %w", err)
		}
		return fail(err)
	}
	if runErr != nil && !interrupted {
		// What was measured until then was written, the unfinished
		// destinations as partial.
		return fail(fmt.Errorf("%w (the results written are partial)", runErr))
	}
	if pcapw != nil {
		if err := pcapw.Close(); err != nil {
			return fail(fmt.Errorf("--pcap %s: %w", o.pcap, err))
		}
	}
	if sum.Total == 1 && len(sum.Skips) > 0 {
		// The only destination could not be traced.
		return fail(fmt.Errorf("%s: %w", sum.Skips[0].Target.Name, sum.Skips[0].Err))
	}
	if !interrupted {
		if err := o.expect.check(out.Kept(), o.out.Stderr); err != nil {
			return err
		}
	}
	switch {
	case interrupted:
		return &exitErr{code: exitInterrupted, err: errors.New("interrupted: results are partial")}
	case sum.Reached < sum.Total:
		return &exitErr{code: exitUnreached}
	}
	return nil
}

func fail(err error) error { return &exitErr{code: exitError, err: err} }

func newExit(code int, err error) error { return &exitErr{code: code, err: err} }

// checkFamily checks the options of a run that is IPv6 (or IPv4) as its
// destinations are, the first named dst: IPv6 runs send UDP probes only,
// and --source must be of the run's family.
func checkFamily(o *options, ipv6 bool, dst string) error {
	if ipv6 && o.cfg.Protocol != 0 {
		return fmt.Errorf("--protocol %s: IPv6 destinations (%s) are traced with udp probes only", o.cfg.Protocol, dst)
	}
	if src := o.cfg.Source; src.IsValid() && src.Is6() != ipv6 {
		fam, hint := "IPv4", " (-6 resolves host names to IPv6 addresses)"
		if ipv6 {
			fam, hint = "IPv6", ""
		}
		return fmt.Errorf("--source %s: not an %s address, as the destinations (%s) are%s", src, fam, dst, hint)
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
		if err := b.AddPath(ctx, f, o.stdin); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				err = fmt.Errorf("--file: %w", err)
			}
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
