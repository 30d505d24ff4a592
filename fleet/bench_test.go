package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// BenchmarkResults measures records per second through an embedded server
// from N agents to one client: each agent publishes recorded results (a
// 4-way diamond traced with 16 path IDs) as an agent does, one at a time
// with its message id, then its final record; the client reads them all.
//
//	go test ./fleet -run '^$' -bench Results -benchtime 3x
func BenchmarkResults(b *testing.B) {
	const total = 2000 // records per measurement, over all agents
	var tr *analysis.Trace
	n, _ := tracertest.NewNetwork(tracertest.Diamond(4), &tracertest.Options{Seed: 1, Filter: true})
	_, err := tracer.Trace(context.Background(), tracer.Config{Paths: 16, Network: n, Clock: n.Clock()},
		tracer.Addrs(tracertest.DstAddr), tracer.SinkFunc(func(t *analysis.Trace) error { tr = t; return nil }))
	if err != nil {
		b.Fatal(err)
	}
	for _, agents := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			srv, err := StartEmbedded(EmbeddedConfig{StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			jss := make([]jetstream.JetStream, agents)
			for i := range jss {
				nc, err := Connect(ConnOptions{URLs: srv.URL()})
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				jss[i], _ = jetstream.New(nc)
			}
			if err := Setup(context.Background(), jss[0], Layout{}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				benchMeasurement(b, jss, tr, fmt.Sprintf("bench%d", i), total/agents)
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "records/s")
			if m, err := resultMsg("a0", "bench0", tr); err == nil {
				b.ReportMetric(float64(len(m.Data)), "bytes/record")
			}
		})
	}
}

// benchMeasurement publishes per records from each agent of jss and reads
// them back.
func benchMeasurement(b *testing.B, jss []jetstream.JetStream, tr *analysis.Trace, id string, per int) {
	ctx := context.Background()
	m := &Measurement{ID: id, js: jss[0]}
	for i := range jss {
		m.Agents = append(m.Agents, fmt.Sprintf("a%d", i))
	}
	var wg sync.WaitGroup
	for i, js := range jss {
		wg.Go(func() {
			a := &Agent{cfg: AgentConfig{Name: m.Agents[i]}, js: js}
			t := *tr
			for d := range per {
				t.Destination = netip.AddrFrom4([4]byte{10, 99, byte(d >> 8), byte(d)})
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
	got := 0
	err := m.Results(ctx, func(r *Result) error {
		if r.Final == nil {
			got++
		}
		return nil
	})
	wg.Wait()
	if err != nil || got != per*len(jss) {
		b.Fatalf("%d records read, want %d: %v", got, per*len(jss), err)
	}
}
