package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// startCluster starts n embedded servers clustered together, and returns
// them with the list of their client URLs; users, if given, are the only
// ones let in. A clustered server is ready
// when the cluster has elected its JetStream leader: they start at once.
func startCluster(t testing.TB, n int, users ...User) ([]*Embedded, string) {
	t.Helper()
	var routes []string
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		routes = append(routes, "nats-route://"+l.Addr().String())
		l.Close()
	}
	nodes := make([]*Embedded, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := EmbeddedConfig{
			StoreDir: t.TempDir(), Name: fmt.Sprintf("n%d", i+1), Users: users,
			Cluster: &ClusterConfig{Name: "traceflow-test", Port: ports[i], Routes: routes},
		}
		wg.Go(func() { nodes[i], errs[i] = StartEmbedded(cfg) })
	}
	wg.Wait()
	var urls []string
	for i, e := range nodes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(e.Shutdown)
		urls = append(urls, e.URL())
	}
	return nodes, strings.Join(urls, ",")
}

// setupReplicated creates the streams and bucket with 3 replicas, once the
// cluster has elected its JetStream leader.
func setupReplicated(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		err := Setup(actx, js, Layout{Replicas: 3})
		acancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("setup: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the cluster is still electing its leaders
	}
}

// A 3-node cluster with streams of 3 replicas: the node leading the
// results stream is stopped in the middle of a measurement, and the client
// still gets every destination exactly once.
func TestClusterNodeLost(t *testing.T) {
	nodes, urls := startCluster(t, 3)
	_, js := connect(t, urls)
	setupReplicated(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := js.Stream(ctx, ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("results stream has %d replicas", r)
	}
	var stopOnce sync.Once
	diamond := func() *tracertest.Topology { return tracertest.Diamond(4) }
	startAgent(t, urls, simulated("pop1", diamond, 6), func(ctx context.Context, n int) {
		if n != 3 {
			return
		}
		stopOnce.Do(func() {
			info, err := s.Info(ctx)
			if err != nil || info.Cluster == nil {
				t.Errorf("results stream: %v", err)
				return
			}
			for _, e := range nodes {
				if e.s.Name() == info.Cluster.Leader {
					t.Logf("stopping %s, the results stream's leader", info.Cluster.Leader)
					e.Shutdown()
				}
			}
		})
	})
	c := newClient(t, js)
	m, err := c.Submit(ctx, Request{Targets: []string{"10.99.3.0/28"}, Paths: 8}, []string{"pop1"})
	if err != nil {
		t.Fatal(err)
	}
	// A client whose consumer went with the lost leader may wait in
	// vain: it attaches again by the measurement's id, as a user would.
	cctx, ccancel := context.WithTimeout(ctx, testTimeout/3)
	traces, finals, err := m.Collect(cctx)
	ccancel()
	if finals["pop1"] == nil {
		t.Logf("attaching again after %v", err)
		if m, err = c.Attach(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		traces, finals, err = m.Collect(ctx)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	dsts := hosts("10.99.3.0/28")
	checkResults(t, "pop1", traces["pop1"], localPaths(t, diamond(), 6, tracer.Config{Paths: 8}, dsts))
	if f := finals["pop1"]; f == nil || f.Error != "" || f.Destinations != len(dsts) {
		t.Errorf("final %+v, want %d destinations", f, len(dsts))
	} else {
		t.Logf("finished on attempt %d", f.Attempt)
	}
}

// The node leading an agent's consumer of measurements is stopped while
// the agent waits for one: the agent keeps fetching, and runs the next
// measurement once a new leader is elected.
func TestClusterConsumerLeaderLost(t *testing.T) {
	nodes, urls := startCluster(t, 3)
	_, js := connect(t, urls)
	setupReplicated(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	diamond := func() *tracertest.Topology { return tracertest.Diamond(2) }
	startAgent(t, urls, simulated("pop1", diamond, 2), nil)
	c := newClient(t, js)
	cons, err := js.Consumer(ctx, MeasurementsStream, ConsumerName("pop1"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("consumer: %+v, %v", info, err)
	}
	for _, e := range nodes {
		if e.s.Name() == info.Cluster.Leader {
			t.Logf("stopping %s, the consumer's leader", info.Cluster.Leader)
			e.Shutdown()
		}
	}
	// A request sent as the client's own server went is lost: the
	// submission is sent again (its message id stores it once).
	var m *Measurement
	for m == nil {
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		m, err = c.Submit(sctx, Request{ID: "after-loss", Targets: []string{"10.99.3.0/29"}, Paths: 4}, []string{"pop1"})
		scancel()
		if ctx.Err() != nil {
			t.Fatalf("submit: %v", err)
		}
	}
	traces, finals, err := m.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, "pop1", traces["pop1"], localPaths(t, diamond(), 2, tracer.Config{Paths: 4}, hosts("10.99.3.0/29")))
	if f := finals["pop1"]; f == nil || f.Error != "" {
		t.Errorf("final %+v", f)
	}
}
