package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// options are the validated command-line settings of a trace.
type options struct {
	dsts     []string
	paths    int
	maxTTL   int
	firstTTL int
	srcPort  int
	dstPort  int
	wait     time.Duration
	retries  int
	gapLimit int
	tos      int
	format   string
	output   string
	bind     string
	dedup    bool
	debug    bool
	iface    string
	source   netip.Addr
	logger   *slog.Logger
	stdout   io.Writer
	stderr   io.Writer
}

var formats = []string{"vert", "horiz", "json"}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "traceflow-fast",
		Usage:     "find every path between this host and a destination",
		UsageText: "traceflow-fast [options] DESTINATION [DESTINATION...]",
		Description: `Sends UDP probes whose 5-tuple is fixed per path ID while the TTL varies, so
per-flow load balancers keep each path ID on one path; only the source port
(--srcport + path ID) changes between path IDs. Replies are matched to their
probe by the quoted IP.ID (run tag and TTL) and source port, and the paths are
printed per path ID.

Needs CAP_NET_RAW (AF_PACKET sockets) and CAP_BPF (the receive filter): run as
root, or grant them once with
  setcap cap_net_raw,cap_bpf+ep bin/traceflow-fast

Exit status: 0 every destination reached, 1 error, 2 some destination not
reached, 3 interrupted.`,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "paths", Aliases: []string{"p"}, Value: 4, Usage: "number of path IDs (flows) to probe, 1..4096"},
			&cli.IntFlag{Name: "ttl", Aliases: []string{"t"}, Value: 30, Usage: fmt.Sprintf("highest TTL to probe, 1..%d", probe.MaxTTL)},
			&cli.IntFlag{Name: "first-ttl", Value: 1, Usage: "first TTL to probe"},
			&cli.IntFlag{Name: "srcport", Value: 33452, Usage: "base source port: path ID N uses srcport+N"},
			&cli.IntFlag{Name: "dstport", Value: 33452, Usage: "destination port, the same for every probe"},
			&cli.Float64Flag{Name: "wait", Aliases: []string{"w"}, Value: 1, Usage: "seconds to wait for the reply to a probe (fractional)"},
			&cli.IntFlag{Name: "retries", Value: 1, Usage: "times an unanswered probe is sent again"},
			&cli.IntFlag{Name: "gap-limit", Value: 5, Usage: "TTLs probed beyond the last that answered before a path gives up"},
			&cli.IntFlag{Name: "tos", Value: 0, Usage: "IP TOS byte of every probe, 0..255"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "vert", Usage: "output format: vert (a row per path ID), horiz (a column per path ID), json (JSON Lines, one object per destination)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write results to `FILE` instead of standard output"},
			&cli.BoolFlag{Name: "dedup", Usage: "print each distinct path once, with the path IDs that took it"},
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "send through `IFACE` instead of the one the routing table picks"},
			&cli.StringFlag{Name: "source", Aliases: []string{"s"}, Usage: "source `ADDRESS` of the probes (must be an address of this host)"},
			&cli.StringFlag{Name: "bind", Value: "127.0.0.1:8081", Usage: "address the browser view (--format viz) is served on"},
			&cli.BoolFlag{Name: "debug", Usage: "verbose logging on standard error"},
		},
		Action: func(c *cli.Context) error {
			o, err := parseOptions(c, stdout, stderr)
			if err != nil {
				return &exitErr{code: exitError, err: err}
			}
			return trace(c.Context, o)
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &exitErr{code: exitError, err: fmt.Errorf("%v (see --help)", err)}
		},
	}
}

// parseOptions validates every flag and names the bad one.
func parseOptions(c *cli.Context, stdout, stderr io.Writer) (*options, error) {
	o := &options{
		dsts:     c.Args().Slice(),
		paths:    c.Int("paths"),
		maxTTL:   c.Int("ttl"),
		firstTTL: c.Int("first-ttl"),
		srcPort:  c.Int("srcport"),
		dstPort:  c.Int("dstport"),
		retries:  c.Int("retries"),
		gapLimit: c.Int("gap-limit"),
		tos:      c.Int("tos"),
		format:   c.String("format"),
		output:   c.String("output"),
		bind:     c.String("bind"),
		dedup:    c.Bool("dedup"),
		debug:    c.Bool("debug"),
		iface:    c.String("interface"),
		stdout:   stdout,
		stderr:   stderr,
	}
	if len(o.dsts) == 0 {
		return nil, fmt.Errorf("no destination given (usage: %s)", c.App.UsageText)
	}
	if o.paths < 1 || o.paths > 4096 {
		return nil, fmt.Errorf("--paths %d: must be 1..4096", o.paths)
	}
	if o.maxTTL < 1 || o.maxTTL > probe.MaxTTL {
		return nil, fmt.Errorf("--ttl %d: must be 1..%d (the IP.ID carries 6 bits of TTL)", o.maxTTL, probe.MaxTTL)
	}
	if o.firstTTL < 1 || o.firstTTL > o.maxTTL {
		return nil, fmt.Errorf("--first-ttl %d: must be 1..--ttl (%d)", o.firstTTL, o.maxTTL)
	}
	if o.srcPort < 0 || o.srcPort+o.paths > 65535 {
		return nil, fmt.Errorf("--srcport %d: srcport + paths (%d) must stay within 0..65535", o.srcPort, o.paths)
	}
	if o.dstPort < 1 || o.dstPort > 65535 {
		return nil, fmt.Errorf("--dstport %d: must be 1..65535", o.dstPort)
	}
	w := c.Float64("wait")
	if math.IsNaN(w) || w <= 0 || w > 60 {
		return nil, fmt.Errorf("--wait %v: must be more than 0 and at most 60 seconds", w)
	}
	o.wait = time.Duration(w * float64(time.Second))
	if o.wait >= probe.ClockWrap {
		return nil, fmt.Errorf("--wait %v: must be below %.1f s, the wrap of the send clock carried in the probes", w, probe.ClockWrap.Seconds())
	}
	if o.retries < 0 || o.retries > 10 {
		return nil, fmt.Errorf("--retries %d: must be 0..10", o.retries)
	}
	if o.gapLimit < 1 || o.gapLimit > probe.MaxTTL {
		return nil, fmt.Errorf("--gap-limit %d: must be 1..%d", o.gapLimit, probe.MaxTTL)
	}
	if o.tos < 0 || o.tos > 255 {
		return nil, fmt.Errorf("--tos %d: must be 0..255", o.tos)
	}
	switch o.format {
	case "vert", "horiz", "json":
	case "viz":
		return nil, fmt.Errorf("--format viz: the browser view is not available yet; use one of %v", formats)
	default:
		return nil, fmt.Errorf("--format %q: must be one of %v", o.format, formats)
	}
	if s := c.String("source"); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("--source %q: not an IPv4 address", s)
		}
		o.source = a
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	o.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return o, nil
}
