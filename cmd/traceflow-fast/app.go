package main

import (
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/annotate"
	"github.com/traceflow-fast/traceflow-fast/fleet/fleetcmd"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tui"
	"github.com/traceflow-fast/traceflow-fast/viz"
)

// options are the validated command-line settings of a trace.
type options struct {
	cfg      tracer.Config  // how to probe
	out      output.Options // how to write the results
	dsts     []string
	pcap     string // --pcap FILE: every probe sent and packet received, or ""
	debug    bool
	ipv6     bool // -6: resolve host names to IPv6 addresses (an IPv6 run)
	logger   *slog.Logger
	expect   *expectation        // --expect
	annotate *annotate.Annotator // --asn-db, --ixp-db, --rdns
	view     *tui.Session        // --tui, or nil
	remote   *fleetcmd.Remote    // --agents: run on fleet agents, or nil

	// Bulk scans.
	files       []string       // --file: target files, "-" for standard input
	stdin       io.Reader      // read by --file -
	maxPrefix   uint64         // --max-prefix: the most addresses a prefix may expand to
	skipInvalid bool           // --skip-invalid
	exclude     []netip.Prefix // --exclude: never probed
	seed        uint64         // --seed: of the destination order, 0 = random
	progress    bool           // --progress
}

// traceHelp is the description --help prints.
//
//go:embed help/trace.txt
var traceHelp string

var formats = []string{"vert", "horiz", "json", "dot", "atlas", "viz"}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "traceflow-fast",
		Usage:           "find every path between this host and a destination",
		UsageText:       "traceflow-fast [options] DESTINATION [DESTINATION...]\ntraceflow-fast [options] -f TARGETS [DESTINATION...]",
		Description:     strings.TrimSpace(traceHelp),
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Commands:        append([]*cli.Command{diffCommand(stdout, stderr), monitorCommand(stdout, stderr)}, fleetcmd.Commands()...),
		Flags:           traceFlags(),
		Action: func(c *cli.Context) error {
			if err := needLinux(); err != nil {
				return &exitErr{code: exitError, err: err}
			}
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

// traceFlags are the flags of a trace.
func traceFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "paths", Aliases: []string{"p"}, Value: "auto", Usage: "path IDs (flows) to probe: a number 1..4096, or auto: add path IDs until the MDA stopping rule says, at --confidence, that no next hop is left unseen"},
		&cli.Float64Flag{Name: "confidence", Value: 95, Usage: "confidence (percent) of --paths auto that no path was missed: 95 or 99 use the published tables, other values 50..99.99 the closed form"},
		&cli.IntFlag{Name: "max-paths", Value: 256, Usage: "the most path IDs --paths auto may use, 1..4096"},
		&cli.BoolFlag{Name: "no-stop-set", Usage: "with --paths auto and several destinations, prove each destination's paths with its own probes; by default a router whose next hops one destination's search settled is taken as settled for the others whose probes show the same next hops (each such router is listed in the JSON record's \"reused\")"},
		&cli.IntFlag{Name: "ttl", Aliases: []string{"t"}, Value: 30, Usage: fmt.Sprintf("highest TTL to probe, 1..%d", probe.MaxTTL)},
		&cli.IntFlag{Name: "first-ttl", Value: 1, Usage: "first TTL to probe"},
		&cli.StringFlag{Name: "protocol", Value: "udp", Usage: "probe protocol: udp (datagrams to --dstport), tcp (SYNs to --dstport; reached on a SYN-ACK or RST) or icmp (echo requests; reached on an echo reply)"},
		&cli.IntFlag{Name: "srcport", Value: 33452, Usage: "base source port (icmp: echo identifier): path ID N uses srcport+N"},
		&cli.IntFlag{Name: "dstport", DefaultText: "33452 with udp, 80 with tcp", Usage: "destination port, the same for every probe (not with --protocol icmp)"},
		&cli.Float64Flag{Name: "wait", Aliases: []string{"w"}, Value: 1, Usage: "seconds to wait for the reply to a probe (fractional)"},
		&cli.IntFlag{Name: "retries", Value: 1, Usage: "times an unanswered probe is sent again"},
		&cli.IntFlag{Name: "gap-limit", Value: 5, Usage: "TTLs probed beyond the last that answered before a path gives up"},
		&cli.IntFlag{Name: "tos", Value: 0, Usage: "IP TOS byte of every probe, 0..255"},
		&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Usage: "trace over IPv6: resolve host names to IPv6 addresses (IPv6 addresses and prefixes make a run IPv6 without it; a run is IPv4 or IPv6, never both; IPv6 probes are UDP)"},
		&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "read destinations from `FILE` (repeatable; - is standard input): an IPv4 or IPv6 address, host name or CIDR prefix per line, # comments"},
		&cli.StringFlag{Name: "max-prefix", Value: "65536", Usage: "refuse prefixes of more than `N` addresses (or /LEN: the largest prefix length allowed, e.g. /16)"},
		&cli.BoolFlag{Name: "skip-invalid", Usage: "skip bad lines of target files with a warning instead of refusing to start"},
		&cli.StringFlag{Name: "exclude", Usage: "never probe the prefixes listed in `FILE` (one address or CIDR prefix per line, # comments, like a zmap blocklist)"},
		&cli.Float64Flag{Name: "rate", Value: tracer.DefaultRate, Usage: "probes per second at most, retries included (0: as fast as the host sends)"},
		&cli.IntFlag{Name: "window", Usage: "the most destinations traced at once; new ones start as the sender needs work", DefaultText: "as many as fit in about 100 MiB"},
		&cli.Uint64Flag{Name: "seed", Usage: "seed of the random destination order", DefaultText: "random"},
		&cli.BoolFlag{Name: "tui", Usage: "show the paths live, full screen, as the answers arrive (keys: q quit, p pause, d distinct paths / path IDs, arrows scroll, ? help); the results are written when it closes"},
		&cli.BoolFlag{Name: "progress", Value: true, Usage: "show progress on standard error (a bar on a terminal, a line every 10 s otherwise)"},
		&cli.StringFlag{Name: "format", Aliases: []string{"F"}, Value: "vert", Usage: "output format: vert (a row per path ID), horiz (a column per path ID), json (JSON Lines, one object per destination), dot (a Graphviz digraph; several destinations are grouped by their router paths), atlas (RIPE Atlas traceroute results, a JSON line per destination and path ID), viz (the hop graph as one self-contained HTML page; served on --bind unless --output is given)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write results to `FILE` instead of standard output"},
		&cli.StringFlag{Name: "pcap", Usage: "write every probe sent and every packet received to `FILE` (pcap, raw IP, kernel receive timestamps)"},
		&cli.BoolFlag{Name: "dedup", Usage: "print each distinct path once, with the path IDs that took it"},
		&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "send through `IFACE` instead of the one the routing table picks"},
		&cli.StringFlag{Name: "source", Aliases: []string{"s"}, Usage: "source `ADDRESS` of the probes (must be an address of this host)"},
		&cli.StringFlag{Name: "bind", Value: "127.0.0.1:8081", Usage: "`HOST:PORT` the browser view (--format viz) is served on when there is no --output"},
		&cli.BoolFlag{Name: "debug", Usage: "verbose logging on standard error"},
		&cli.StringFlag{Name: "expect", Usage: "compare the distinct paths found with `FILE` (a --format json result, or one path per line: hop addresses, * for silent, optional \"destination ADDR\" lines); when they differ, explain on standard error and exit 4"},
		&cli.StringSliceFlag{Name: "ignore-hop", Usage: "with --expect: a known-noisy hop `ADDR[/LEN]` that agrees with anything at its TTL (repeatable)"},
		&cli.StringFlag{Name: "asn-db", Usage: "annotate hops with their origin AS from `FILE`, offline: pyasn .dat, CAIDA pfx2as or ip2asn TSV (gzip or bzip2 too)"},
		&cli.StringFlag{Name: "asn-db-format", Value: "auto", Usage: "format of --asn-db: auto, pyasn, pfx2as or ip2asn"},
		&cli.StringFlag{Name: "ixp-db", Usage: "mark hops on IXP peering LANs listed in `FILE`: one prefix and IXP name per line"},
		&cli.BoolFlag{Name: "rdns", Usage: "look up the reverse DNS name of every hop (cached, concurrent, 2 s per lookup)"},
		&cli.StringFlag{Name: "rdns-server", Usage: "with --rdns, ask the DNS server `ADDR[:PORT]` instead of the system resolver"},
	}, fleetcmd.ClientFlags()...)
}

// parseOptions validates every flag and names the bad one.
func parseOptions(c *cli.Context, stdout, stderr io.Writer) (*options, error) {
	return parseWith(c, stdout, stderr, parseFormat, parseExpect, func(c *cli.Context, o *options) error { return fleetcmd.ParseClient(c, &o.remote) }, openView(true))
}

// openView opens the live view of --tui, which refuses bulk scans: the
// target files of a trace are one, a monitor's are not.
func openView(bulk bool) func(*cli.Context, *options) error {
	return func(c *cli.Context, o *options) (err error) {
		o.view, err = tui.Open(c.Bool("tui"), &o.cfg, &o.out, bulk && len(o.files) > 0)
		return err
	}
}

// parseWith reads the flags that every run of the engine has, then those
// of more parsers.
func parseWith(c *cli.Context, stdout, stderr io.Writer, more ...func(*cli.Context, *options) error) (*options, error) {
	o := &options{
		out: output.Options{Format: c.String("format"), Output: c.String("output"), Bind: c.String("bind"),
			Dedup: c.Bool("dedup"), Stdout: stdout, Stderr: stderr},
		dsts:        c.Args().Slice(),
		pcap:        c.String("pcap"),
		debug:       c.Bool("debug"),
		ipv6:        c.Bool("ipv6"),
		stdin:       os.Stdin,
		files:       c.StringSlice("file"),
		skipInvalid: c.Bool("skip-invalid"),
		seed:        c.Uint64("seed"),
		progress:    c.Bool("progress"),
	}
	if len(o.dsts) == 0 && len(o.files) == 0 {
		usage := c.App.UsageText
		if c.Command != nil && c.Command.UsageText != "" {
			usage = c.Command.UsageText // a subcommand's
		}
		return nil, fmt.Errorf("no destination given (usage: %s)", strings.ReplaceAll(usage, "\n", " or "))
	}
	for _, parse := range append([]func(*cli.Context, *options) error{
		parseRanges, parsePaths, parseProtocol, parseTiming, parseScan, parseSource, parseAnnotations,
	}, more...) {
		if err := parse(c, o); err != nil {
			return nil, err
		}
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	o.logger = slog.New(slog.NewTextHandler(o.out.Stderr, &slog.HandlerOptions{Level: level}))
	o.cfg.Logger = o.logger
	return o, o.cfg.Validate()
}

// parseRanges checks the integer flags that have a range of their own.
func parseRanges(c *cli.Context, o *options) error {
	for _, r := range []struct {
		flag   string
		lo, hi int
		why    string
	}{
		{"max-paths", 1, tracer.MaxPathIDs, ""},
		{"ttl", 1, probe.MaxTTL, " (the IP.ID carries 6 bits of TTL)"},
		{"first-ttl", 1, c.Int("ttl"), fmt.Sprintf(" (--ttl is %d)", c.Int("ttl"))},
		{"retries", 0, 10, ""},
		{"gap-limit", 1, probe.MaxTTL, ""},
		{"tos", 0, 255, ""},
		{"window", 0, 1 << 20, " (0: automatic)"},
	} {
		if v := c.Int(r.flag); v < r.lo || v > r.hi {
			return fmt.Errorf("--%s %d: must be %d..%d%s", r.flag, v, r.lo, r.hi, r.why)
		}
	}
	o.cfg.MaxTTL, o.cfg.FirstTTL, o.cfg.GapLimit = c.Int("ttl"), c.Int("first-ttl"), c.Int("gap-limit")
	o.cfg.TOS, o.cfg.Window, o.cfg.Retries = uint8(c.Int("tos")), c.Int("window"), c.Int("retries")
	if o.cfg.Retries == 0 {
		o.cfg.Retries = tracer.NoRetries
	}
	return nil
}

// parsePaths reads --paths, --max-paths, --confidence and --srcport.
func parsePaths(c *cli.Context, o *options) error {
	o.cfg.MaxPaths = c.Int("max-paths")
	conf := c.Float64("confidence")
	if math.IsNaN(conf) || conf < 50 || conf > 99.99 {
		return fmt.Errorf("--confidence %v: must be 50..99.99 (percent)", conf)
	}
	o.cfg.Confidence, o.cfg.NoStopSet = conf/100, c.Bool("no-stop-set")
	if p := c.String("paths"); p != "auto" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > tracer.MaxPathIDs {
			return fmt.Errorf("--paths %q: must be auto or a number 1..%d", p, tracer.MaxPathIDs)
		}
		o.cfg.Paths, o.cfg.MaxPaths = n, n
	} else if o.cfg.FirstTTL > 1 {
		return fmt.Errorf("--first-ttl %d needs a fixed --paths N: the MDA search of --paths auto starts at TTL 1", o.cfg.FirstTTL)
	}
	o.cfg.SrcPort = c.Int("srcport")
	if o.cfg.SrcPort < 0 || o.cfg.SrcPort+o.cfg.MaxPaths > 65535 {
		return fmt.Errorf("--srcport %d: srcport + path IDs (%d) must stay within 0..65535", o.cfg.SrcPort, o.cfg.MaxPaths)
	}
	return nil
}

// parseProtocol reads --protocol and --dstport.
func parseProtocol(c *cli.Context, o *options) error {
	proto, err := probe.ParseProto(c.String("protocol"))
	if err != nil {
		return fmt.Errorf("--protocol %q: must be udp, tcp or icmp", c.String("protocol"))
	}
	o.cfg.Protocol = proto
	if o.ipv6 && proto != probe.ProtoUDP {
		return fmt.Errorf("--protocol %s: IPv6 runs (-6) send udp probes only", proto)
	}
	port := c.Int("dstport")
	switch {
	case proto == probe.ProtoICMP && c.IsSet("dstport"):
		return fmt.Errorf("--dstport %d: ICMP echo requests have no port (--protocol icmp)", port)
	case c.IsSet("dstport") && (port < 1 || port > 65535):
		return fmt.Errorf("--dstport %d: must be 1..65535", port)
	}
	o.cfg.DstPort = port // 0: the protocol's default
	return nil
}

// parseTiming reads --wait.
func parseTiming(c *cli.Context, o *options) error {
	w := c.Float64("wait")
	if math.IsNaN(w) || w <= 0 || w > 60 {
		return fmt.Errorf("--wait %v: must be more than 0 and at most 60 seconds", w)
	}
	o.cfg.Wait = time.Duration(w * float64(time.Second))
	if o.cfg.Wait >= probe.ClockWrap {
		return fmt.Errorf("--wait %v: must be below %.1f s, the wrap of the send clock carried in the probes", w, probe.ClockWrap.Seconds())
	}
	return nil
}

// parseScan reads the settings of bulk scans.
func parseScan(c *cli.Context, o *options) error {
	rate := c.Float64("rate")
	if math.IsNaN(rate) || rate < 0 || rate > 1e8 {
		return fmt.Errorf("--rate %v: must be 0 (unlimited) or a number of probes per second up to 100000000", rate)
	}
	o.cfg.Rate = rate
	if rate == 0 {
		o.cfg.Rate = tracer.Unlimited
	}
	mp, err := parseMaxPrefix(c.String("max-prefix"))
	if err != nil {
		return err
	}
	o.maxPrefix = mp
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	if f := c.String("exclude"); f != "" {
		if o.exclude, err = readExclude(f); err != nil {
			return err
		}
	}
	return nil
}

// parseSource reads --source and --interface.
func parseSource(c *cli.Context, o *options) error {
	o.cfg.Interface = c.String("interface")
	s := c.String("source")
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return fmt.Errorf("--source %q: not an IPv4 or IPv6 address", s)
	case a.Is4In6():
		return fmt.Errorf("--source %q: an IPv4-mapped address, give %s", s, a.Unmap())
	case a.Zone() != "":
		return fmt.Errorf("--source %q: an address with a zone", s)
	case o.ipv6 && a.Is4():
		return fmt.Errorf("--source %q: not an IPv6 address (-6)", s)
	}
	o.cfg.Source = a
	return nil
}

// parseFormat reads --format.
func parseFormat(_ *cli.Context, o *options) error {
	switch o.out.Format {
	case "vert", "horiz", "json", "dot", "atlas":
		return nil
	case "viz":
		return checkViz(o)
	}
	return fmt.Errorf("--format %q: must be one of %v", o.out.Format, formats)
}

// parseMaxPrefix reads --max-prefix: a number of addresses, or /LEN.
func parseMaxPrefix(s string) (uint64, error) {
	if l, ok := strings.CutPrefix(s, "/"); ok {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > 32 {
			return 0, fmt.Errorf("--max-prefix %q: want a number of addresses or /LEN with LEN 0..32", s)
		}
		return 1 << (32 - n), nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > 1<<32 {
		return 0, fmt.Errorf("--max-prefix %q: want a number of addresses 1..4294967296 or /LEN", s)
	}
	return n, nil
}

// readExclude reads the --exclude file.
func readExclude(name string) ([]netip.Prefix, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	defer f.Close()
	ex, err := targets.ParseExclude(f, name)
	if err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	return ex, nil
}

// checkViz validates --format viz before anything is sent: the binary must
// have the vis-network library built in, and without --output the page is
// served on --bind, which must be HOST:PORT.
func checkViz(o *options) error {
	if !viz.Available() {
		return fmt.Errorf("--format viz: this binary was %v", viz.ErrNoLibrary)
	}
	if o.out.Output != "" {
		return nil
	}
	_, port, err := net.SplitHostPort(o.out.Bind)
	if err != nil {
		return fmt.Errorf("--bind %q: %v (want HOST:PORT, such as 127.0.0.1:8081)", o.out.Bind, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--bind %q: bad port %q", o.out.Bind, port)
	}
	return nil
}
