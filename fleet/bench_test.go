package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
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

// benchRecords is the number of records of a measurement, over all its
// agents.
const benchRecords = 2000

// benchTrace is a recorded result: a 4-way diamond traced with 16 path IDs.
func benchTrace(b *testing.B) *analysis.Trace {
	var tr *analysis.Trace
	n, _ := tracertest.NewNetwork(tracertest.Diamond(4), &tracertest.Options{Seed: 1, Filter: true})
	_, err := tracer.Trace(context.Background(), tracer.Config{Paths: 16, Network: n, Clock: n.Clock()},
		tracer.Addrs(tracertest.DstAddr), tracer.SinkFunc(func(t *analysis.Trace) error { tr = t; return nil }))
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkResults measures records per second through an embedded server
// (users with passwords) from N agents to one client: each agent publishes recorded results (a
// 4-way diamond traced with 16 path IDs) as an agent does, one at a time
// with its message id, then its final record; the client reads them all.
// p50-ms and p99-ms are the time from an agent's publishing a result to
// the client's reading it.
//
//	go test ./fleet -run '^$' -bench Results -benchtime 3x
func BenchmarkResults(b *testing.B) {
	tr := benchTrace(b)
	for _, agents := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			srv, err := StartEmbedded(EmbeddedConfig{StoreDir: b.TempDir(), Users: benchUsers})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			benchAgents(b, tr, agents, srv.URL(), 1)
		})
	}
}

// BenchmarkClusterResults is BenchmarkResults through a 3-node cluster
// whose streams have 3 replicas, agents and client logging in with a
// user and password each.
//
//	go test ./fleet -run '^$' -bench ClusterResults -benchtime 3x
func BenchmarkClusterResults(b *testing.B) {
	tr := benchTrace(b)
	for _, agents := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			_, urls := startCluster(b, 3, benchUsers...)
			benchAgents(b, tr, agents, urls, 3)
		})
	}
}

// benchUsers are the users of the benchmarks' servers.
var benchUsers = []User{{Name: "agent", Password: "agent-secret"}, {Name: "client", Password: "client-secret"}}

// userURLs returns the URLs of urls with user and password.
func userURLs(urls, user, password string) string {
	var out []string
	for _, u := range strings.Split(urls, ",") {
		p, _ := url.Parse(u)
		p.User = url.UserPassword(user, password)
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

// benchAgents connects agents and one client to urls (as users "agent"
// and "client"), sets the streams up with replicas, and runs b.N
// measurements.
func benchAgents(b *testing.B, tr *analysis.Trace, agents int, urls string, replicas int) {
	conn := func(user string) jetstream.JetStream {
		nc, err := Connect(ConnOptions{URLs: userURLs(urls, user, user+"-secret")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	client := conn("client")
	if replicas > 1 {
		setupReplicated(b, client)
	} else if err := Setup(context.Background(), client, Layout{}); err != nil {
		b.Fatal(err)
	}
	jss := make([]jetstream.JetStream, agents)
	for i := range jss {
		jss[i] = conn("agent")
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, benchMeasurement(b, client, jss, tr, fmt.Sprintf("bench%d", i), benchRecords/agents)...)
	}
	b.ReportMetric(float64(benchRecords*b.N)/b.Elapsed().Seconds(), "records/s")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	if m, err := resultMsg("a0", "bench0", tr); err == nil {
		b.ReportMetric(float64(len(m.Data)), "bytes/record")
	}
}

// benchMeasurement publishes per records from each agent of jss and reads
// them back through client; it returns the time each record took from
// its publishing to its reading.
func benchMeasurement(b *testing.B, client jetstream.JetStream, jss []jetstream.JetStream, tr *analysis.Trace, id string, per int) []time.Duration {
	ctx := context.Background()
	m := &Measurement{ID: id, js: client}
	for i := range jss {
		m.Agents = append(m.Agents, fmt.Sprintf("a%d", i))
	}
	var sent sync.Map // agent/destination: time.Time
	var wg sync.WaitGroup
	for i, js := range jss {
		wg.Go(func() {
			a := &Agent{cfg: AgentConfig{Name: m.Agents[i]}, js: js}
			t := *tr
			for d := range per {
				t.Destination = netip.AddrFrom4([4]byte{10, 99, byte(d >> 8), byte(d)})
				sent.Store(a.cfg.Name+"/"+t.Destination.String(), time.Now())
				err := a.publish(ctx, func(*Final) (*nats.Msg, error) { return resultMsg(a.cfg.Name, id, &t) }, nil, msgID(id, a.cfg.Name, t.Destination.String()))
				if err != nil {
					b.Error(err)
					return
				}
			}
			fin := &Final{Agent: a.cfg.Name, Measurement: id, Destinations: per, Attempt: 1}
			if err := a.publish(ctx, finalMsg, fin, msgID(id, a.cfg.Name, "final")); err != nil {
				b.Error(err)
			}
		})
	}
	var lat []time.Duration
	err := m.Results(ctx, func(r *Result) error {
		if r.Final == nil {
			if t0, ok := sent.Load(r.Agent + "/" + r.Destination); ok {
				lat = append(lat, time.Since(t0.(time.Time)))
			}
		}
		return nil
	})
	wg.Wait()
	if err != nil || len(lat) != per*len(jss) {
		b.Fatalf("%d records read, want %d: %v", len(lat), per*len(jss), err)
	}
	return lat
}
