package fleetcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet"
)

// NATSPrefix starts a diff operand that names a measurement stored in
// NATS instead of a file: nats:ID, or nats:ID:AGENT when several agents
// ran it.
const NATSPrefix = "nats:"

// DiffFlags are the flags with which `diff` reads measurements from NATS.
func DiffFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats", Usage: "for the operands nats:ID[:AGENT]: the NATS server `URLS`, comma-separated, user:password@ in them (default $" + EnvNATS + ")"},
		&cli.StringFlag{Name: "nats-creds", Usage: "with --nats: NATS credentials `FILE` (JWT and NKey seed)"},
		&cli.StringFlag{Name: "nats-ca", Usage: "with --nats: PEM `FILE` of the CAs trusted for TLS to the servers"},
		certFlags("--nats")[0], certFlags("--nats")[1],
	}
}

// OpenPathFile reads a diff operand: the results of one agent of a stored
// measurement (nats:ID or nats:ID:AGENT), or else the file name as
// analysis.OpenPathFile does.
func OpenPathFile(c *cli.Context, name string, stdin io.Reader) (*analysis.PathFile, error) {
	spec, ok := strings.CutPrefix(name, NATSPrefix)
	if !ok {
		return analysis.OpenPathFile(name, stdin)
	}
	id, agent, _ := strings.Cut(spec, ":")
	urls := c.String("nats")
	if urls == "" {
		urls = os.Getenv(EnvNATS)
	}
	if urls == "" {
		return nil, fmt.Errorf("%s: needs --nats URLS (or $%s)", name, EnvNATS)
	}
	js, done, err := dial(fleet.ConnOptions{URLs: urls, Creds: c.String("nats-creds"), CA: c.String("nats-ca"),
		Cert: c.String("nats-cert"), Key: c.String("nats-key"), Name: "traceflow-fast diff"})
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	cl, err := fleet.NewClient(ctx, js, fleet.Layout{})
	if err != nil {
		return nil, natsErr(js, err)
	}
	m, err := cl.Attach(ctx, id)
	if err != nil {
		return nil, natsErr(js, err)
	}
	b, err := agentRecords(ctx, m, agent)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	pf, err := analysis.ReadPathFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pf, nil
}

// agentRecords returns the records of agent in m (the only agent of m
// when agent is ""), once its final record is in.
func agentRecords(ctx context.Context, m *fleet.Measurement, agent string) ([]byte, error) {
	switch {
	case agent == "" && len(m.Agents) > 1:
		return nil, fmt.Errorf("measurement %s was run by %s: name one (nats:%s:AGENT)", m.ID, strings.Join(m.Agents, ", "), m.ID)
	case agent == "":
		agent = m.Agents[0]
	case !slices.Contains(m.Agents, agent):
		return nil, fmt.Errorf("measurement %s was not sent to agent %q (it was to %s)", m.ID, agent, strings.Join(m.Agents, ", "))
	default:
		m.Agents = []string{agent}
	}
	var buf bytes.Buffer
	var refused error
	n := 0
	err := m.Results(ctx, func(r *fleet.Result) error {
		if r.Final != nil {
			if r.Final.Error != "" {
				refused = fmt.Errorf("agent %s did not run it: %s", agent, r.Final.Error)
			}
			return nil
		}
		n++
		buf.Write(r.Record)
		return nil
	})
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("agent %s has not finished it (%d results so far)", agent, n)
	case err != nil:
		return nil, err
	case refused != nil:
		return nil, refused
	case n == 0:
		return nil, fmt.Errorf("agent %s stored no result of it", agent)
	}
	return buf.Bytes(), nil
}
