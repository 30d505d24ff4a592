package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/fleet/fleetcmd"
	"github.com/traceflow-fast/traceflow-fast/internal/privs"
	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tui"
)

// monitorHelp is the description monitor --help prints.
//
//go:embed help/monitor.txt
var monitorHelp string

// monitorCommand is `traceflow-fast monitor`: the flags of a trace that
// apply to runs repeated, and the monitor's own.
func monitorCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:            "monitor",
		Usage:           "trace the destinations again every --interval and report their path changes (events, Prometheus metrics)",
		UsageText:       "traceflow-fast monitor [options] DESTINATION...\ntraceflow-fast monitor [options] -f TARGETS [DESTINATION...]",
		Description:     strings.TrimSpace(monitorHelp),
		HideHelpCommand: true,
		Flags:           monitorFlags(),
		Action: func(c *cli.Context) error {
			if err := needLinux(); err != nil {
				return fail(err)
			}
			o, err := parseWith(c, stdout, stderr, openView(false))
			if err != nil {
				return fail(err)
			}
			mc, err := parseMonitor(c, o)
			if err != nil {
				return fail(err)
			}
			stopEvents, err := fleetcmd.PublishEvents(c, &mc) // --nats
			if err != nil {
				return fail(err)
			}
			defer stopEvents()
			return runMonitor(c.Context, o, mc, c.String("output"), c.String("metrics"))
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return fail(fmt.Errorf("monitor: %v (see traceflow-fast monitor --help)", err))
		},
	}
}

// monitorFlags are the flags of a trace but those of one-shot output, and
// the monitor's.
func monitorFlags() []cli.Flag {
	oneShot := []string{"format", "output", "bind", "dedup", "expect", "ignore-hop", "pcap", "progress", "agents", "split", "nats", "nats-creds", "nats-ca", "nats-cert", "nats-key"}
	flags := append(slices.DeleteFunc(traceFlags(), func(f cli.Flag) bool { return slices.Contains(oneShot, f.Names()[0]) }), fleetcmd.MonitorFlags()...)
	return append(flags,
		&cli.DurationFlag{Name: "interval", Value: monitor.DefaultInterval, Usage: "trace every destination again after `DURATION` (such as 60s or 5m)"},
		&cli.IntFlag{Name: "confirm", Value: monitor.DefaultConfirm, Usage: "report a change once `N` runs in a row showed it (1: at once)"},
		&cli.StringFlag{Name: "format", Aliases: []string{"F"}, Value: "json", Usage: "events as json (a JSON line each) or text (for people)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "append the events to `FILE` instead of writing them to standard output"},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics at http://`ADDRESS:PORT`/metrics (an IP address: 127.0.0.1:9108, or 0.0.0.0:9108 for every interface)"},
		&cli.IntFlag{Name: "hop-series", Value: monitor.DefaultHopSeries, Usage: "the most hop RTT series per destination, the lowest TTLs first (0: none)"},
		&cli.StringFlag{Name: "state", Usage: "keep the paths known in `FILE` across restarts (written atomically; a file that is not one is refused)"},
		&cli.StringSliceFlag{Name: "ignore-hop", Usage: "a known-noisy hop `ADDR[/LEN]` that agrees with anything at its TTL (repeatable)"},
	)
}

// parseMonitor reads the monitor's own flags into its Config.
func parseMonitor(c *cli.Context, o *options) (monitor.Config, error) {
	mc := monitor.Config{Interval: c.Duration("interval"), Confirm: c.Int("confirm"), HopSeries: c.Int("hop-series"),
		State: c.String("state"), Text: c.String("format") == "text", Annotate: o.annotate, Logger: o.logger, Seed: o.seed, OnRound: o.view.Rounds()}
	var err error
	switch {
	case mc.Interval <= 0:
		return mc, fmt.Errorf("--interval %v: must be more than 0", mc.Interval)
	case mc.Confirm < 1 || mc.Confirm > 100:
		return mc, fmt.Errorf("--confirm %d: must be 1..100", mc.Confirm)
	case mc.HopSeries < 0 || mc.HopSeries > 1024:
		return mc, fmt.Errorf("--hop-series %d: must be 0..1024", mc.HopSeries)
	case !mc.Text && c.String("format") != "json":
		return mc, fmt.Errorf("--format %q: must be json or text", c.String("format"))
	case slices.Contains(o.files, "-"):
		return mc, errors.New("--file -: the monitor reads its target files again on SIGHUP; name a file")
	}
	if mc.HopSeries == 0 {
		mc.HopSeries = monitor.NoHopSeries
	}
	if mc.Ignore, err = parseIgnoreHops(c.StringSlice("ignore-hop")); err != nil {
		return mc, err
	}
	mc.Load = func(ctx context.Context) ([]tracer.Target, error) {
		set, err := buildTargets(ctx, o)
		if err == nil {
			err = checkFamily(o, set.Is6(), set.Name(set.At(0)))
		}
		if err != nil {
			return nil, err
		}
		return monitor.List(set), nil
	}
	return mc, nil
}

// runMonitor opens what needs privileges (the engine, the metrics' socket,
// the events' file), drops them and monitors until SIGINT or SIGTERM;
// SIGHUP reloads the target files.
func runMonitor(parent context.Context, o *options, mc monitor.Config, output, metrics string) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	mc.Events = o.out.Stdout
	if output != "" {
		f, err := os.OpenFile(output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fail(fmt.Errorf("--output: %w", err))
		}
		defer f.Close()
		mc.Events = f
	}
	m, err := monitor.New(ctx, mc)
	var se *monitor.StateError
	if errors.As(err, &se) {
		err = fmt.Errorf("--state %w", err)
	}
	if err != nil {
		return fail(err)
	}
	var ln net.Listener
	if metrics != "" {
		if ln, err = monitor.Listen(metrics); err != nil {
			return fail(fmt.Errorf("--metrics %w", err))
		}
		defer ln.Close()
	}
	tr, err := tracer.Open(ctx, o.cfg, m.Targets())
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w: %s", err, grantHint)
		}
		return fail(err)
	}
	defer tr.Close()
	// Every socket and file is open: no privilege is kept.
	if err := privs.Drop(); err != nil {
		return fail(fmt.Errorf("dropping privileges: %w", err))
	}
	stopReload := m.ReloadOn(ctx, syscall.SIGHUP)
	_, err = o.view.Run(ctx, tui.RunMonitor(m, tr, ln), nil)
	stopReload()
	if err != nil {
		return fail(err)
	}
	return nil
}
