// Package fleetcmd holds the command's subcommands of package fleet
// (`traceflow-fast agent`, `agents` and `results`), the client side of a
// trace run on agents (--agents), and what `monitor --nats` and `diff
// nats:ID` add to those commands.
package fleetcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/privs"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/viz"
)

// Embedded is the --nats value that starts a server in the process.
const Embedded = "embedded"

// Commands returns the subcommands.
func Commands() []*cli.Command {
	return []*cli.Command{agentCommand(), agentsCommand(), resultsCommand()}
}

// natsFlags are the flags that reach NATS.
func natsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats", Required: true, EnvVars: []string{"TRACEFLOW_NATS"}, Usage: "NATS server URLs, comma-separated (user:password@ in them, or from $TRACEFLOW_NATS); `embedded` runs a server in this process (agent only)"},
		&cli.StringFlag{Name: "nats-creds", EnvVars: []string{"TRACEFLOW_NATS_CREDS"}, Usage: "NATS credentials file (user JWT and NKey seed; or from $TRACEFLOW_NATS_CREDS)"},
		&cli.StringFlag{Name: "nats-ca", EnvVars: []string{"TRACEFLOW_NATS_CA"}, Usage: "PEM file of the CAs trusted for TLS to the servers"},
		&cli.StringFlag{Name: "nats-cert", EnvVars: []string{"TRACEFLOW_NATS_CERT"}, Usage: "PEM client certificate, for servers that verify their clients (with --nats-key)"},
		&cli.StringFlag{Name: "nats-key", EnvVars: []string{"TRACEFLOW_NATS_KEY"}, Usage: "PEM private key of --nats-cert"},
		&cli.IntFlag{Name: "nats-replicas", Value: 1, Usage: "replicas of the streams and of the agents bucket, if this creates them (3 in a 3-node cluster)"},
	}
}

// certFlags are the flags of a client certificate, for servers that
// verify their clients (mutual TLS); with names the flag they go with.
func certFlags(with string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats-cert", Usage: "with " + with + ": PEM client certificate `FILE`, for servers that verify their clients (with --nats-key)"},
		&cli.StringFlag{Name: "nats-key", Usage: "with " + with + ": PEM `FILE` of the private key of --nats-cert"},
	}
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:      "agent",
		Usage:     "run as a vantage point: take the measurements addressed to --name from NATS JetStream, publish their results",
		UsageText: "traceflow-fast agent --nats URLS --name NAME [options]",
		Flags: append(natsFlags(),
			&cli.StringFlag{Name: "name", Required: true, Usage: "agent name (letters, digits, - and _)"},
			&cli.StringSliceFlag{Name: "group", Usage: "a group the agent belongs to (repeatable)"},
			&cli.Float64Flag{Name: "max-rate", Value: tracer.DefaultRate, Usage: "probes per second at most, whatever a request asks"},
			&cli.Uint64Flag{Name: "max-targets", Value: targets.DefaultMaxPrefix, Usage: "addresses a measurement may hold at most"},
			&cli.StringFlag{Name: "exclude", Usage: "never probe the addresses of FILE (a prefix or address per line)"},
			&cli.StringFlag{Name: "protocols", Value: "udp,tcp,icmp", Usage: "protocols the agent probes with"},
			&cli.DurationFlag{Name: "ack-wait", Value: time.Minute, Usage: "how long a measurement stays with this agent, should it stop answering, before it is delivered again"},
			&cli.StringFlag{Name: "nats-listen", Value: "127.0.0.1:4222", Usage: "with --nats embedded: where the server listens for clients"},
			&cli.StringFlag{Name: "nats-store", Usage: "with --nats embedded: JetStream's store directory (default: traceflow-fast/nats under the user's state directory)"},
			&cli.BoolFlag{Name: "debug", Usage: "verbose logs"},
		),
		Action: runAgent,
	}
}

func runAgent(c *cli.Context) error {
	limits, err := parseLimits(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	js, closeNATS, err := connect(c, true)
	if err != nil {
		return err
	}
	defer closeNATS()
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	a, err := fleet.NewAgent(js, fleet.AgentConfig{
		Name: c.String("name"), Groups: c.StringSlice("group"), Version: version(),
		Limits: limits, Logger: log, Engine: tracer.Config{Logger: log}, Layout: layout(c), AckWait: c.Duration("ack-wait"),
	})
	if err != nil {
		return err
	}
	// An agent opens sockets for every measurement: it keeps what that
	// takes, CAP_NET_RAW and CAP_BPF, and gives up every other
	// capability, now that its connection (and an embedded server's
	// store) is open and its configuration checked.
	if err := privs.KeepTracing(); err != nil {
		return err
	}
	return a.Run(ctx)
}

// parseLimits reads the agent's limits.
func parseLimits(c *cli.Context) (fleet.Limits, error) {
	l := fleet.Limits{MaxRate: c.Float64("max-rate"), MaxTargets: c.Uint64("max-targets")}
	if l.MaxRate <= 0 || l.MaxRate > 1e8 {
		return l, fmt.Errorf("--max-rate %v: must be a number of probes per second up to 100000000", l.MaxRate)
	}
	if l.MaxTargets == 0 {
		return l, errors.New("--max-targets 0: must be at least 1")
	}
	for _, s := range strings.Split(c.String("protocols"), ",") {
		p, err := probe.ParseProto(strings.TrimSpace(s))
		if err != nil {
			return l, fmt.Errorf("--protocols %q: each must be udp, tcp or icmp", c.String("protocols"))
		}
		l.Protocols = append(l.Protocols, p)
	}
	if path := c.String("exclude"); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return l, fmt.Errorf("--exclude: %w", err)
		}
		defer f.Close()
		if l.Exclude, err = targets.ParseExclude(f, path); err != nil {
			return l, fmt.Errorf("--exclude: %w", err)
		}
	}
	return l, nil
}

// connect reaches NATS as the flags say, starting the embedded server
// when allowed and asked for.
func connect(c *cli.Context, embeddedOK bool) (jetstream.JetStream, func(), error) {
	urls, closers := c.String("nats"), []func(){}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if urls == Embedded {
		if !embeddedOK {
			return nil, nil, errors.New("--nats embedded: only an agent runs the embedded server; point --nats at it (nats://127.0.0.1:4222)")
		}
		e, err := startEmbedded(c)
		if err != nil {
			return nil, nil, err
		}
		closers, urls = append(closers, e.Shutdown), e.URL()
	}
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: urls, Creds: c.String("nats-creds"), CA: c.String("nats-ca"),
		Cert: c.String("nats-cert"), Key: c.String("nats-key"), Name: "traceflow-fast " + c.Command.Name})
	if err != nil {
		done()
		return nil, nil, err
	}
	closers = append(closers, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		done()
		return nil, nil, err
	}
	return js, done, nil
}

func startEmbedded(c *cli.Context) (*fleet.Embedded, error) {
	ap, err := netip.ParseAddrPort(c.String("nats-listen"))
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: want ADDRESS:PORT", c.String("nats-listen"))
	}
	dir := c.String("nats-store")
	if dir == "" {
		if dir, err = stateDir(); err != nil {
			return nil, err
		}
	}
	return fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: dir, Host: ap.Addr().String(), Port: int(ap.Port())})
}

// stateDir is traceflow-fast/nats under $XDG_STATE_HOME (default
// ~/.local/state).
func stateDir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("--nats-store: no default: %w", err)
		}
		base = home + "/.local/state"
	}
	return base + "/traceflow-fast/nats", nil
}

func agentsCommand() *cli.Command {
	return &cli.Command{
		Name:      "agents",
		Usage:     "list the agents running, from NATS",
		UsageText: "traceflow-fast agents --nats URLS",
		Flags:     natsFlags(),
		Action: func(c *cli.Context) error {
			js, done, err := connect(c, false)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			cl, err := fleet.NewClient(ctx, js, layout(c))
			if err != nil {
				return natsErr(js, err)
			}
			st, err := cl.Agents(ctx)
			if err != nil {
				return natsErr(js, err)
			}
			return printAgents(c, st)
		},
	}
}

// natsErr explains err with the connection's last error, when the server
// refused something.
func natsErr(js jetstream.JetStream, err error) error {
	if last := js.Conn().LastError(); errors.Is(last, nats.ErrPermissionViolation) {
		return fmt.Errorf("%w (%v)", err, last)
	}
	return err
}

func printAgents(c *cli.Context, st []fleet.Status) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tVERSION\tGROUPS\tPROTOCOLS\tMAX RATE\tMAX TARGETS\tRUNNING\tDONE\tUPDATED")
	for _, s := range st {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%g\t%d\t%d\t%d\t%s\n", s.Name, s.Version, strings.Join(s.Groups, ","),
			strings.Join(s.Protocols, ","), s.MaxRate, s.MaxTargets, s.Running, s.Done, s.Updated.Format(time.RFC3339))
	}
	if len(st) == 0 {
		fmt.Fprintln(w, "(no agent running)")
	}
	return w.Flush()
}

// version is the module's version, as the build recorded it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

func resultsCommand() *cli.Command {
	return &cli.Command{
		Name:      "results",
		Usage:     "print the results of a measurement stored in NATS, in any --format, waiting for every agent's last",
		UsageText: "traceflow-fast results --nats URLS --measurement ID [--format F] [--output FILE]",
		Flags: append(natsFlags(),
			&cli.StringFlag{Name: "measurement", Required: true, Usage: "the measurement's id"},
			&cli.StringFlag{Name: "format", Aliases: []string{"F"}, Value: "json", Usage: "output format, as a trace's --format: vert, horiz, json (the stored records: \"agent\" and \"measurement\" first), dot (a digraph per agent), atlas (prb_id from the agent's name) or viz (one graph, a source per agent)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write results to `FILE` instead of standard output"},
			&cli.BoolFlag{Name: "dedup", Usage: "print each distinct path once, with the path IDs that took it"},
			&cli.StringFlag{Name: "bind", Value: "127.0.0.1:8081", Usage: "`HOST:PORT` the browser view (--format viz) is served on when there is no --output"},
		),
		Action: func(c *cli.Context) error {
			o, err := resultsOptions(c)
			if err != nil {
				return err
			}
			js, done, err := connect(c, false)
			if err != nil {
				return err
			}
			defer done()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			cl, err := fleet.NewClient(ctx, js, layout(c))
			if err != nil {
				return natsErr(js, err)
			}
			m, err := cl.Attach(ctx, c.String("measurement"))
			if err != nil {
				return natsErr(js, err)
			}
			return printResults(ctx, m, o)
		},
	}
}

// resultsOptions reads the output flags of results.
func resultsOptions(c *cli.Context) (output.Options, error) {
	o := output.Options{Format: c.String("format"), Output: c.String("output"), Bind: c.String("bind"),
		Dedup: c.Bool("dedup"), Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
	switch o.Format {
	case "vert", "horiz", "json", "dot", "atlas":
	case "viz":
		if !viz.Available() {
			return o, fmt.Errorf("--format viz: this binary was %v", viz.ErrNoLibrary)
		}
	default:
		return o, fmt.Errorf("--format %q: must be one of vert, horiz, json, dot, atlas, viz", o.Format)
	}
	return o, nil
}

// printResults writes the results of m as o says, as they come, and each
// agent's outcome to standard error; it fails when an agent refused the
// measurement (a destination not reached is no failure here).
func printResults(ctx context.Context, m *fleet.Measurement, o output.Options) error {
	out, err := openOutput(o)
	if err != nil {
		return err
	}
	defer out.abort()
	f := follower{m: m, out: out, stderr: o.Stderr}
	switch code, err := f.follow(ctx); code {
	case 0, ExitUnreached:
		return nil
	case ExitInterrupted:
		return errors.New("interrupted: results are partial")
	default:
		return err
	}
}

func layout(c *cli.Context) fleet.Layout { return fleet.Layout{Replicas: c.Int("nats-replicas")} }
