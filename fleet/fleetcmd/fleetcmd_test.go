package fleetcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// `results` prints the records of a measurement, once each, and the
// agents' outcomes; a measurement an agent refused fails with its reason.
func TestResults(t *testing.T) {
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	a, err := fleet.NewAgent(js, fleet.AgentConfig{
		Name:   "east",
		Limits: fleet.Limits{Protocols: []probe.Proto{probe.ProtoUDP}},
		Prepare: func(cfg *tracer.Config) error {
			n, err := tracertest.NewNetwork(tracertest.Diamond(2), &tracertest.Options{Seed: 1, Filter: true})
			cfg.Network, cfg.Clock = n, n.Clock()
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()
	c, err := fleet.NewClient(ctx, js, fleet.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := c.Submit(ctx, fleet.Request{Targets: []string{"10.99.3.0/29"}, Paths: 4}, []string{"east"})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := c.Submit(ctx, fleet.Request{Targets: []string{"10.99.3.1"}, Protocol: "icmp"}, []string{"east"})
	if err != nil {
		t.Fatal(err)
	}

	results := func(id string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		app := &cli.App{Writer: &stdout, ErrWriter: &stderr, Commands: Commands()}
		err := app.RunContext(ctx, []string{"traceflow-fast", "results", "--nats", srv.URL(), "--measurement", id})
		return stdout.String(), stderr.String(), err
	}
	out, log, err := results(ok.ID)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var rec struct{ Agent, Measurement, Destination string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Agent != "east" || rec.Measurement != ok.ID || seen[rec.Destination] {
			t.Errorf("record %.80s: %+v, %v", l, rec, err)
		}
		seen[rec.Destination] = true
	}
	if len(seen) != 6 || log != "east: 6 of 6 destinations reached\n" {
		t.Errorf("%d destinations; stderr %q", len(seen), log)
	}
	out, log, err = results(refused.ID)
	if want := "east: protocol icmp: this agent does not probe with it (allowed: udp)\n"; err == nil || log != want || out != "" {
		t.Errorf("refused measurement: %v, stdout %q, stderr %q; want an error and the reason %q", err, out, log, want)
	}
}

// `agent --nats embedded` runs a server in the process: the agent is
// listed there, and stops on its context.
func TestAgentEmbedded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		app := &cli.App{Writer: io.Discard, ErrWriter: &stderr, Commands: Commands()}
		done <- app.RunContext(ctx, []string{"traceflow-fast", "agent", "--nats", "embedded", "--nats-listen", addr,
			"--nats-store", t.TempDir(), "--name", "local", "--group", "lab"})
	}()
	deadline := time.Now().Add(time.Minute)
	var st []fleet.Status
	for len(st) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // the agent starts its server
		nc, err := fleet.Connect(fleet.ConnOptions{URLs: "nats://" + addr})
		if err != nil {
			continue
		}
		js, _ := jetstream.New(nc)
		if c, err := fleet.NewClient(ctx, js, fleet.Layout{}); err == nil {
			st, _ = c.Agents(ctx)
		}
		nc.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v (%s)", err, stderr.String())
	}
	if len(st) != 1 || st[0].Name != "local" || st[0].Groups[0] != "lab" {
		t.Fatalf("agents on the embedded server: %+v", st)
	}
}
