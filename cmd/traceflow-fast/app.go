package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/internal/targets"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// options are the validated command-line settings of a trace.
type options struct {
	dsts       []string
	paths      int     // path IDs probed from the start
	auto       bool    // --paths auto: add path IDs until the MDA rule holds
	maxPaths   int     // path IDs at most (the fixed count when not auto)
	confidence float64 // MDA confidence, 0.95 or 0.99
	maxTTL     int
	firstTTL   int
	srcPort    int
	dstPort    int         // 0 with --protocol icmp
	proto      probe.Proto // --protocol
	wait       time.Duration
	retries    int
	gapLimit   int
	tos        int
	format     string
	output     string
	pcap       string // --pcap FILE: every probe sent and packet received, or ""
	bind       string
	dedup      bool
	debug      bool
	iface      string
	source     netip.Addr
	ipv6       bool // -6: resolve host names to IPv6 addresses (an IPv6 run)
	logger     *slog.Logger
	stdout     io.Writer
	stderr     io.Writer
	expect     *expectation // --expect
	annotate   *annotator   // --asn-db, --ixp-db, --rdns

	// Bulk scans.
	files       []string       // --file: target files, "-" for standard input
	stdin       io.Reader      // read by --file -
	maxPrefix   uint64         // --max-prefix: the most addresses a prefix may expand to
	skipInvalid bool           // --skip-invalid
	exclude     []netip.Prefix // --exclude: never probed
	rate        float64        // --rate: probes per second, 0 unlimited
	window      int            // --window: destinations in progress at once, 0 = from a memory budget
	seed        uint64         // --seed: of the destination order, 0 = random
	progress    bool           // --progress
}

// pathsLabel names the path IDs setting for the log.
func (o *options) pathsLabel() string {
	if o.auto {
		return fmt.Sprintf("auto (%d..%d)", o.paths, o.maxPaths)
	}
	return strconv.Itoa(o.paths)
}

// rateLabel names the rate setting for the log.
func (o *options) rateLabel() string {
	if o.rate == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g/s", o.rate)
}

// defaultRate is the probes per second sent unless --rate says otherwise:
// gentle enough for real networks, where routers rate-limit their ICMP
// answers, and the rate zmap uses by default.
const defaultRate = 10000

var formats = []string{"vert", "horiz", "json", "dot", "atlas", "viz"}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "traceflow-fast",
		Usage:     "find every path between this host and a destination",
		UsageText: "traceflow-fast [options] DESTINATION [DESTINATION...]\ntraceflow-fast [options] -f TARGETS [DESTINATION...]",
		Description: `Sends UDP probes whose 5-tuple is fixed per path ID while the TTL varies, so
per-flow load balancers keep each path ID on one path; only the source port
(--srcport + path ID) changes between path IDs. Replies are matched to their
probe by the quoted IP.ID (run tag and TTL) and source port, and the paths are
printed per path ID.

--protocol tcp sends TCP SYNs to --dstport (default 80) instead, with the same
fixed 5-tuple per path ID and the send time, run tag and TTL in the sequence
number; the destination is reached when it answers with a SYN-ACK (open port)
or an RST (closed port). --protocol icmp sends ICMP echo requests whose
identifier (--srcport + path ID) and checksum are fixed per path ID, the run
tag and TTL in the sequence number; the destination is reached when it sends
an echo reply. Only load balancers that hash the ICMP header keep ICMP path
IDs apart. With udp, the destination is reached when it sends a port (or any)
unreachable.

A run is IPv4 or IPv6, as its destinations are (-6 resolves host names to
IPv6 addresses). IPv6 probes are UDP only: the flow label is fixed per path ID,
the run tag and TTL travel in the UDP payload (IPv6 has no IP.ID), and the
replies are ICMPv6 time exceeded and destination unreachable messages.

Needs CAP_NET_RAW (AF_PACKET sockets), and CAP_BPF for the eBPF receive filter
(without it, an equivalent classic BPF filter is used): run as root, or grant
them once with
  setcap cap_net_raw,cap_bpf+ep bin/traceflow-fast
Every capability is dropped once the sockets and files are open.

Destinations are IPv4 or IPv6 addresses, host names or CIDR prefixes (a
prefix is expanded without its network and broadcast addresses, an IPv6 one
without its subnet-router anycast address), on the command line or
in target files (-f FILE, -f - for standard input; one per line, # comments).
Every destination is traced once; their probes are interleaved in a seeded
random order, paced by --rate, and each result is written as soon as it is
finished (in the order destinations finish). A summary goes to standard
error, and a progress bar when it is a terminal (a line every 10 s when not).

Exit status: 0 every destination reached, 1 error, 2 some destination not
reached, 3 interrupted, 4 the paths found differ from the ones --expect gives
(explained on standard error).

traceflow-fast diff BEFORE AFTER compares the distinct paths of two results
(exit 0 same, 1 changed, 2 error): see traceflow-fast diff --help.`,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Commands:        []*cli.Command{diffCommand(stdout, stderr)},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "paths", Aliases: []string{"p"}, Value: "auto", Usage: "path IDs (flows) to probe: a number 1..4096, or auto: add path IDs until the MDA stopping rule says, at --confidence, that no next hop is left unseen"},
			&cli.Float64Flag{Name: "confidence", Value: 95, Usage: "confidence (percent) of --paths auto that no path was missed: 95 or 99 use the published tables, other values 50..99.99 the closed form"},
			&cli.IntFlag{Name: "max-paths", Value: 256, Usage: "the most path IDs --paths auto may use, 1..4096"},
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
			&cli.Float64Flag{Name: "rate", Value: defaultRate, Usage: "probes per second at most, retries included (0: as fast as the host sends)"},
			&cli.IntFlag{Name: "window", Usage: "the most destinations traced at once; new ones start as the sender needs work", DefaultText: "as many as fit in about 100 MiB"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the random destination order", DefaultText: "random"},
			&cli.BoolFlag{Name: "progress", Value: true, Usage: "show progress on standard error (a bar on a terminal, a line every 10 s otherwise)"},
			&cli.StringFlag{Name: "format", Aliases: []string{"F"}, Value: "vert", Usage: "output format: vert (a row per path ID), horiz (a column per path ID), json (JSON Lines, one object per destination), dot (Graphviz digraph per destination), atlas (RIPE Atlas traceroute results, a JSON line per destination and path ID), viz (the hop graph as one self-contained HTML page; served on --bind unless --output is given)"},
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
		},
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

// parseOptions validates every flag and names the bad one.
func parseOptions(c *cli.Context, stdout, stderr io.Writer) (*options, error) {
	o := &options{
		dsts:        c.Args().Slice(),
		maxTTL:      c.Int("ttl"),
		firstTTL:    c.Int("first-ttl"),
		srcPort:     c.Int("srcport"),
		dstPort:     c.Int("dstport"),
		retries:     c.Int("retries"),
		gapLimit:    c.Int("gap-limit"),
		tos:         c.Int("tos"),
		format:      c.String("format"),
		output:      c.String("output"),
		pcap:        c.String("pcap"),
		bind:        c.String("bind"),
		dedup:       c.Bool("dedup"),
		debug:       c.Bool("debug"),
		iface:       c.String("interface"),
		ipv6:        c.Bool("ipv6"),
		stdout:      stdout,
		stderr:      stderr,
		stdin:       os.Stdin,
		files:       c.StringSlice("file"),
		skipInvalid: c.Bool("skip-invalid"),
		rate:        c.Float64("rate"),
		window:      c.Int("window"),
		seed:        c.Uint64("seed"),
		progress:    c.Bool("progress"),
	}
	if len(o.dsts) == 0 && len(o.files) == 0 {
		return nil, fmt.Errorf("no destination given (usage: %s)", strings.ReplaceAll(c.App.UsageText, "\n", " or "))
	}
	if math.IsNaN(o.rate) || o.rate < 0 || o.rate > 1e8 {
		return nil, fmt.Errorf("--rate %v: must be 0 (unlimited) or a number of probes per second up to 100000000", c.Float64("rate"))
	}
	if o.window < 0 || o.window > 1<<20 {
		return nil, fmt.Errorf("--window %d: must be 1..%d (0: automatic)", o.window, 1<<20)
	}
	mp, err := parseMaxPrefix(c.String("max-prefix"))
	if err != nil {
		return nil, err
	}
	o.maxPrefix = mp
	if f := c.String("exclude"); f != "" {
		ex, err := readExclude(f)
		if err != nil {
			return nil, err
		}
		o.exclude = ex
	}
	o.maxPaths = c.Int("max-paths")
	if o.maxPaths < 1 || o.maxPaths > 4096 {
		return nil, fmt.Errorf("--max-paths %d: must be 1..4096", o.maxPaths)
	}
	o.confidence = c.Float64("confidence") / 100
	if math.IsNaN(o.confidence) || o.confidence < 0.5 || o.confidence > 0.9999 {
		return nil, fmt.Errorf("--confidence %v: must be 50..99.99 (percent)", c.Float64("confidence"))
	}
	switch p := c.String("paths"); p {
	case "auto":
		o.auto = true
		o.paths = 1 // path ID 1 finds the distance, then the MDA planner takes over
	default:
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("--paths %q: must be auto or a number 1..4096", p)
		}
		o.paths, o.maxPaths = n, n
	}
	if o.maxTTL < 1 || o.maxTTL > probe.MaxTTL {
		return nil, fmt.Errorf("--ttl %d: must be 1..%d (the IP.ID carries 6 bits of TTL)", o.maxTTL, probe.MaxTTL)
	}
	if o.firstTTL < 1 || o.firstTTL > o.maxTTL {
		return nil, fmt.Errorf("--first-ttl %d: must be 1..--ttl (%d)", o.firstTTL, o.maxTTL)
	}
	if o.auto && o.firstTTL > 1 {
		return nil, fmt.Errorf("--first-ttl %d needs a fixed --paths N: the MDA search of --paths auto starts at TTL 1", o.firstTTL)
	}
	if o.srcPort < 0 || o.srcPort+o.maxPaths > 65535 {
		return nil, fmt.Errorf("--srcport %d: srcport + path IDs (%d) must stay within 0..65535", o.srcPort, o.maxPaths)
	}
	proto, err := probe.ParseProto(c.String("protocol"))
	if err != nil {
		return nil, fmt.Errorf("--protocol %q: must be udp, tcp or icmp", c.String("protocol"))
	}
	o.proto = proto
	if o.ipv6 && proto != probe.ProtoUDP {
		return nil, fmt.Errorf("--protocol %s: IPv6 runs (-6) send udp probes only", proto)
	}
	switch {
	case proto == probe.ProtoICMP && c.IsSet("dstport"):
		return nil, fmt.Errorf("--dstport %d: ICMP echo requests have no port (--protocol icmp)", o.dstPort)
	case proto == probe.ProtoICMP:
		o.dstPort = 0
	case !c.IsSet("dstport") && proto == probe.ProtoTCP:
		o.dstPort = 80
	case !c.IsSet("dstport"):
		o.dstPort = 33452
	case o.dstPort < 1 || o.dstPort > 65535:
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
	case "vert", "horiz", "json", "dot", "atlas":
	case "viz":
		if err := checkViz(o); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("--format %q: must be one of %v", o.format, formats)
	}
	if s := c.String("source"); s != "" {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			return nil, fmt.Errorf("--source %q: not an IPv4 or IPv6 address", s)
		case a.Is4In6():
			return nil, fmt.Errorf("--source %q: an IPv4-mapped address, give %s", s, a.Unmap())
		case a.Zone() != "":
			return nil, fmt.Errorf("--source %q: an address with a zone", s)
		case o.ipv6 && a.Is4():
			return nil, fmt.Errorf("--source %q: not an IPv6 address (-6)", s)
		}
		o.source = a
	}
	if err := parseAnnotations(c, o); err != nil {
		return nil, err
	}
	if err := parseExpect(c, o); err != nil {
		return nil, err
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	o.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return o, nil
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
