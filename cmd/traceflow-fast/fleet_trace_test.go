package main

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// The tests of the fleet client run a NATS server in the test process and
// agents that trace through simulated networks (package tracertest): east
// sees a 4-way diamond, west a line, so their paths differ.

// simAgent describes a simulated agent.
type simAgent struct {
	name   string
	groups []string
	topo   func() *tracertest.Topology
	seed   uint64
	limits fleet.Limits
}

var (
	eastSim = simAgent{name: "east", groups: []string{"lab"}, topo: func() *tracertest.Topology { return tracertest.Diamond(4) }, seed: 1}
	westSim = simAgent{name: "west", groups: []string{"lab"}, topo: func() *tracertest.Topology { return tracertest.Line(3) }, seed: 2}
)

// startFleet starts a server and the agents, stopped when the test ends;
// it returns the server's URL.
func startFleet(t *testing.T, agents ...simAgent) string {
	t.Helper()
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	for _, a := range agents {
		startSimAgent(t, srv.URL(), a)
	}
	return srv.URL()
}

// startSimAgent runs agent a on url until the test ends, or until the
// function it returns is called.
func startSimAgent(t *testing.T, url string, a simAgent) (stop func()) {
	t.Helper()
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: url, Name: a.name})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ag, err := fleet.NewAgent(js, fleet.AgentConfig{
		Name: a.name, Groups: a.groups, Version: "test", Limits: a.limits, AckWait: 2 * time.Second,
		Engine: tracer.Config{Window: 2},
		Prepare: func(cfg *tracer.Config) error {
			n, err := tracertest.NewNetwork(a.topo(), &tracertest.Options{Seed: a.seed, Filter: true})
			if err != nil {
				return err
			}
			cfg.Network, cfg.Clock = n, n.Clock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent %s: %v", a.name, err)
			}
			nc.Close()
		})
	}
	t.Cleanup(stop)
	select {
	case <-ag.Ready():
	case err := <-done:
		t.Fatalf("agent %s: %v", a.name, err)
	case <-time.After(time.Minute):
		t.Fatalf("agent %s: not ready", a.name)
	}
	return stop
}

// localPaths traces dsts through a's network without NATS, as cfg says:
// the distinct paths of each destination that the agent must find.
func localPaths(t *testing.T, a simAgent, cfg tracer.Config, dsts []netip.Addr) map[string][]string {
	t.Helper()
	n, err := tracertest.NewNetwork(a.topo(), &tracertest.Options{Seed: a.seed, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Network, cfg.Clock = n, n.Clock()
	out := map[string][]string{}
	var mu sync.Mutex
	_, err = tracer.Trace(context.Background(), cfg, tracer.Addrs(dsts...), tracer.SinkFunc(func(tr *analysis.Trace) error {
		mu.Lock()
		defer mu.Unlock()
		out[tr.Destination.String()] = pathsOf(tr)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pathsOf returns the distinct paths of tr, as tracertest writes them.
func pathsOf(tr *analysis.Trace) []string {
	var out []string
	for _, up := range tr.UniquePaths() {
		out = append(out, tracertest.Path{Hops: up.Hops, Reached: up.Reached}.String())
	}
	slices.Sort(out)
	return out
}

// runCLI runs the command in the process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(append([]string{"traceflow-fast"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestFleetExplore(t *testing.T) {
	url := startFleet(t, eastSim, westSim)
	for _, f := range []string{"json", "vert", "horiz", "atlas", "dot"} {
		code, out, errs := runCLI("--agents", "east,west", "--nats", url, "--paths", "4", "--seed", "3", "--format", f, "10.99.3.1", "10.99.3.2")
		t.Logf("%s: exit %d\n%s\n---\n%s", f, code, out, errs)
	}
	_ = strings.Contains
}
