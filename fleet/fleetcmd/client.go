package fleetcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/annotate"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Exit statuses of a trace through agents, as those of a local run.
const (
	ExitError       = 1 // bad input, NATS refused, or an agent refused or failed
	ExitUnreached   = 2 // every agent ran it, some destination was not reached
	ExitInterrupted = 3 // the client stopped following; the measurement runs on
)

// EnvNATS is the environment variable --nats defaults to with --agents.
const EnvNATS = "TRACEFLOW_NATS"

// ClientFlags are the flags of the trace command that run it on agents.
func ClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "agents", Usage: "trace from fleet agents instead of this host: `NAME,...`, all, or group:G; results come back in --format, the agent named in each (see --nats)"},
		&cli.StringFlag{Name: "nats", Usage: "with --agents: the NATS server `URLS`, comma-separated, user:password@ in them (default $" + EnvNATS + ")"},
		&cli.BoolFlag{Name: "split", Usage: "with --agents: share the destinations among the agents in the order of --seed (each traces a disjoint part, all of them every destination once) instead of each tracing all"},
		&cli.StringFlag{Name: "nats-creds", Usage: "with --agents: NATS credentials `FILE` (JWT and NKey seed)"},
		&cli.StringFlag{Name: "nats-ca", Usage: "with --agents: PEM `FILE` of the CAs trusted for TLS to the servers"},
		certFlags("--agents")[0], certFlags("--agents")[1],
	}
}

// localOnly are the flags of a trace that are about this host's run.
var localOnly = []string{"pcap", "tui", "source", "interface", "window", "expect"}

// Remote is a trace run on agents, as the flags ask.
type Remote struct {
	conn    fleet.ConnOptions
	agents  []string
	split   bool
	fromEnv bool // --nats was $TRACEFLOW_NATS
}

// ParseClient reads the flags of ClientFlags into *r: nil when the trace
// is to run on this host (no --agents).
func ParseClient(c *cli.Context, r **Remote) (err error) {
	*r, err = parseClient(c)
	return err
}

func parseClient(c *cli.Context) (*Remote, error) {
	if !c.IsSet("agents") {
		for _, f := range []string{"nats", "split", "nats-creds", "nats-ca", "nats-cert", "nats-key"} {
			if c.IsSet(f) {
				return nil, fmt.Errorf("--%s needs --agents (the agents to trace from)", f)
			}
		}
		return nil, nil
	}
	r := &Remote{split: c.Bool("split"), conn: fleet.ConnOptions{
		URLs: c.String("nats"), Creds: c.String("nats-creds"), CA: c.String("nats-ca"),
		Cert: c.String("nats-cert"), Key: c.String("nats-key"), Name: "traceflow-fast client"}}
	for _, a := range strings.Split(c.String("agents"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			r.agents = append(r.agents, a)
		}
	}
	if len(r.agents) == 0 {
		return nil, errors.New("--agents: no agent given (NAME,..., all or group:G)")
	}
	if r.conn.URLs == "" {
		r.conn.URLs, r.fromEnv = os.Getenv(EnvNATS), true
	}
	switch r.conn.URLs {
	case "":
		return nil, fmt.Errorf("--agents needs --nats URLS (or $%s)", EnvNATS)
	case Embedded:
		return nil, errors.New("--nats embedded: only an agent runs the embedded server; point --nats at it (nats://127.0.0.1:4222)")
	}
	for _, f := range localOnly {
		if c.IsSet(f) {
			return nil, fmt.Errorf("--%s: not with --agents (it is about a run of this host)", f)
		}
	}
	return r, nil
}

// Run is a trace as the command parsed it: what a local run would do.
type Run struct {
	Config  tracer.Config
	Output  output.Options
	Targets *targets.Set
	Seed    uint64
	// Annotate annotates the results as they come (--asn-db, --rdns), or nil.
	Annotate *annotate.Annotator
	// Exit makes the error that ends the command with status code.
	Exit func(code int, err error) error
}

// Trace submits the run to the agents and writes their results as they
// come, in the run's format, then each agent's outcome to standard error.
func (r *Remote) Trace(ctx context.Context, run Run) error {
	js, done, err := dial(r.conn)
	if err != nil {
		return run.Exit(ExitError, err)
	}
	defer done()
	out, err := openOutput(run.Output)
	if err != nil {
		return run.Exit(ExitError, err)
	}
	defer out.abort()
	cl, err := fleet.NewClient(ctx, js, fleet.Layout{})
	if err != nil {
		return run.Exit(ExitError, natsErr(js, err))
	}
	m, err := r.submit(ctx, cl, run)
	if err != nil {
		return run.Exit(ExitError, natsErr(js, err))
	}
	fmt.Fprintf(run.Output.Stderr, "measurement %s sent to %s (traceflow-fast results --measurement %s follows it again)\n",
		m.ID, strings.Join(m.Agents, ", "), m.ID)
	f := follower{m: m, out: out, names: run.Targets, annotate: run.Annotate, stderr: run.Output.Stderr}
	code, err := f.follow(ctx)
	if code == ExitInterrupted {
		urls := fleet.Redact(r.conn.URLs)
		if r.fromEnv {
			urls = `"$` + EnvNATS + `"`
		}
		err = fmt.Errorf("interrupted: measurement %s keeps running on the agents; follow it again with: traceflow-fast results --nats %s --measurement %s",
			m.ID, urls, m.ID)
	}
	if code == 0 {
		return nil
	}
	return run.Exit(code, err)
}

// submit sends the run to the agents: the same request to each, or each
// its share with --split, under one measurement id.
func (r *Remote) submit(ctx context.Context, cl *fleet.Client, run Run) (*fleet.Measurement, error) {
	agents, err := cl.Resolve(ctx, r.agents)
	if err != nil {
		return nil, err
	}
	req := fleet.NewRequest(run.Config)
	req.IPv6, req.Seed = run.Targets.Is6(), run.Seed
	shares := [][]string{fleet.Addrs(run.Targets)}
	if r.split {
		shares = fleet.Split(run.Targets, run.Seed, len(agents))
	}
	var m *fleet.Measurement
	for i, a := range agents {
		req.Targets = shares[min(i, len(shares)-1)]
		if len(req.Targets) > fleet.MaxRequestTargets {
			return nil, fmt.Errorf("%d destinations for agent %s: a measurement gives an agent at most %d (--split shares them among agents)",
				len(req.Targets), a, fleet.MaxRequestTargets)
		}
		if len(req.Targets) == 0 {
			continue // more agents than destinations
		}
		sent, err := cl.Submit(ctx, req, []string{a})
		if errors.Is(err, nats.ErrMaxPayload) {
			err = fmt.Errorf("submit to %s: %d destinations make a request larger than the server takes (max_payload): --split them among agents, or raise max_payload", a, len(req.Targets))
		}
		if err != nil && m != nil {
			return nil, fmt.Errorf("%w (measurement %s was sent to %s already)", err, m.ID, strings.Join(m.Agents, ", "))
		} else if err != nil {
			return nil, err
		}
		req.ID = sent.ID
		if m == nil {
			m = sent
		} else {
			m.Agents = append(m.Agents, a)
		}
	}
	return m, nil
}

// dial connects to NATS; done closes the connection.
func dial(o fleet.ConnOptions) (jetstream.JetStream, func(), error) {
	nc, err := fleet.Connect(o)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}

// writeLine writes one line to w, ignoring errors (a summary on stderr).
func writeLine(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
