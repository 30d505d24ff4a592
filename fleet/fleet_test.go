package fleet

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// The tests run real NATS servers with JetStream in the test process, and
// agents that trace through simulated networks (package tracertest), as an
// unprivileged user.

// testTimeout bounds each test's waits on NATS.
const testTimeout = 45 * time.Second

func startServer(t *testing.T, users ...User) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// connect returns a JetStream context on url, closed when the test ends.
func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectWith(t, ConnOptions{URLs: url})
}

// connectWith is connect with options: TLS, credentials.
func connectWith(t *testing.T, o ConnOptions) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	o.Name = t.Name()
	nc, err := Connect(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// simulated returns agent settings that trace through topology topo (made
// anew for each run, with seed).
func simulated(name string, topo func() *tracertest.Topology, seed uint64) AgentConfig {
	return AgentConfig{
		Name:    name,
		Version: "test",
		AckWait: time.Second,
		Engine:  tracer.Config{Window: 2},
		Prepare: func(cfg *tracer.Config) error {
			n, err := tracertest.NewNetwork(topo(), &tracertest.Options{Seed: seed, Filter: true})
			if err != nil {
				return err
			}
			cfg.Network, cfg.Clock = n, n.Clock()
			return nil
		},
	}
}

// runningAgent is an agent running in the background on a connection of
// its own, until it is stopped.
type runningAgent struct {
	*Agent
	nc   *nats.Conn
	stop context.CancelFunc
	done chan error
	once sync.Once
}

func startAgent(t *testing.T, url string, cfg AgentConfig, hook func(ctx context.Context, n int)) *runningAgent {
	t.Helper()
	return startAgentWith(t, ConnOptions{URLs: url}, cfg, hook)
}

// startAgentWith is startAgent with connection options.
func startAgentWith(t *testing.T, o ConnOptions, cfg AgentConfig, hook func(ctx context.Context, n int)) *runningAgent {
	t.Helper()
	nc, js := connectWith(t, o)
	a, err := NewAgent(js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.afterResult = hook
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, nc: nc, stop: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() { ra.kill(t) })
	select {
	case <-a.Ready():
	case err := <-ra.done:
		ra.done <- err // for kill
		t.Fatalf("agent %s: Run = %v", cfg.Name, err)
	case <-time.After(testTimeout):
		t.Fatalf("agent %s: not ready", cfg.Name)
	}
	return ra
}

// kill stops the agent as a crash would: its measurement in progress is
// left unacknowledged, its connection closed.
func (ra *runningAgent) kill(t *testing.T) {
	ra.once.Do(func() {
		ra.stop()
		if err := <-ra.done; err != nil {
			t.Errorf("agent %s: Run = %v", ra.cfg.Name, err)
		}
		ra.nc.Close()
	})
}

// localPaths traces dsts through topo (seed) without NATS: what an agent
// on that network must find, distinct paths by destination.
func localPaths(t *testing.T, topo *tracertest.Topology, seed uint64, cfg tracer.Config, dsts []netip.Addr) map[string][]string {
	t.Helper()
	out, err := tracertest.FoundPaths(topo, seed, cfg, dsts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hosts(prefix string) []netip.Addr {
	p := netip.MustParsePrefix(prefix)
	var out []netip.Addr
	for a := p.Addr().Next(); p.Contains(a.Next()); a = a.Next() {
		out = append(out, a)
	}
	return out
}

func newClient(t *testing.T, js jetstream.JetStream) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := NewClient(ctx, js, Layout{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkResults checks that agent traced every destination of want once,
// finding the paths want gives.
func checkResults(t *testing.T, agent string, got []*analysis.Trace, want map[string][]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, tr := range got {
		d := tr.Destination.String()
		if seen[d] {
			t.Errorf("%s: %s given twice", agent, d)
		}
		seen[d] = true
		if w, ok := want[d]; !ok {
			t.Errorf("%s: result for %s, which was not asked for", agent, d)
		} else if p := tracertest.DistinctPaths(tr); !slices.Equal(p, w) {
			t.Errorf("%s: %s: paths\n  %s\nwant\n  %s", agent, d, strings.Join(p, "\n  "), strings.Join(w, "\n  "))
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%s: %d destinations, want %d", agent, len(seen), len(want))
	}
}
