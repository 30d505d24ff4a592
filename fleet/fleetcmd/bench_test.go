package fleetcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// scanTargets are the 4,094 addresses of 10.99.0.0/20.
func scanTargets(b *testing.B) *targets.Set {
	bl := targets.NewBuilder(targets.Options{MaxPrefix: 1 << 16})
	if err := bl.AddArg(context.Background(), "10.99.0.0/20"); err != nil {
		b.Fatal(err)
	}
	set, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	return set
}

func simNetwork(b *testing.B, cfg *tracer.Config) error {
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), &tracertest.Options{Seed: 1, Filter: true})
	if err != nil {
		return err
	}
	cfg.Network, cfg.Clock = n, n.Clock()
	return nil
}

// BenchmarkScan compares a scan of 4,094 destinations of the simulated
// 4-way diamond (16 path IDs, --format json) run here with the same scan
// run by an agent through an embedded NATS server and written by the
// client (`--agents`): the overhead of --nats.
//
//	go test ./fleet/fleetcmd -run '^$' -bench Scan -benchtime 3x
func BenchmarkScan(b *testing.B) {
	set := scanTargets(b)
	cfg := tracer.Config{Paths: 16, Rate: tracer.Unlimited}
	b.Run("local", func(b *testing.B) {
		for range b.N {
			c := cfg
			if err := simNetwork(b, &c); err != nil {
				b.Fatal(err)
			}
			out, _ := output.Open(output.Options{Format: "json", Stdout: io.Discard})
			if _, err := tracer.Trace(context.Background(), c, tracer.Shuffle(set, 1), out); err != nil {
				b.Fatal(err)
			}
			out.Finish()
		}
		b.ReportMetric(float64(set.Len()*uint64(b.N))/b.Elapsed().Seconds(), "dst/s")
	})
	b.Run("nats", func(b *testing.B) {
		url := benchAgent(b, "bench")
		r := &Remote{conn: fleet.ConnOptions{URLs: url}, agents: []string{"bench"}}
		for range b.N {
			err := r.Trace(context.Background(), Run{Config: cfg, Targets: set, Seed: 1,
				Output: output.Options{Format: "json", Stdout: io.Discard, Stderr: io.Discard},
				Exit:   func(code int, err error) error { return fmt.Errorf("exit %d: %w", code, err) }})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(set.Len()*uint64(b.N))/b.Elapsed().Seconds(), "dst/s")
	})
}

// benchAgent starts a server and an agent on the simulated diamond.
func benchAgent(b *testing.B, name string) string {
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	a, err := fleet.NewAgent(js, fleet.AgentConfig{Name: name, Limits: fleet.Limits{MaxRate: 1e8},
		Prepare: func(cfg *tracer.Config) error { return simNetwork(b, cfg) }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; nc.Close() })
	<-a.Ready()
	return srv.URL()
}

// BenchmarkLatency measures the time from an agent's result to the
// client's output: an agent publishes recorded results (the 4-way
// diamond, 16 path IDs) one at a time as an agent does, waiting for each
// to be stored, and the client writes them in --format F as they come; the
// latency of a result runs from just before its publication to its write.
// Paced, the agent publishes 500 results a second (a scan's pace); not
// paced, as fast as the server stores them, and the latency includes the
// queue of results the client has not written yet.
//
//	go test ./fleet/fleetcmd -run '^$' -bench Latency -benchtime 3x
func BenchmarkLatency(b *testing.B) {
	const records = 2000
	var tr *analysis.Trace
	cfg := tracer.Config{Paths: 16}
	if err := simNetwork(b, &cfg); err != nil {
		b.Fatal(err)
	}
	if _, err := tracer.Trace(context.Background(), cfg, tracer.Addrs(tracertest.DstAddr),
		tracer.SinkFunc(func(t *analysis.Trace) error { tr = t; return nil })); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		format string
		paced  bool
	}{{"json", true}, {"vert", true}, {"json", false}, {"vert", false}} {
		format := bc.format
		b.Run(fmt.Sprintf("format=%s/paced=%v", format, bc.paced), func(b *testing.B) {
			srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			js, done, err := dial(fleet.ConnOptions{URLs: srv.URL()})
			if err != nil {
				b.Fatal(err)
			}
			defer done()
			var lat []time.Duration
			for i := range b.N {
				lat = append(lat, latencyRun(b, js, tr, format, fmt.Sprintf("lat%d", i), records, bc.paced)...)
			}
			slices.Sort(lat)
			for _, q := range []float64{0.5, 0.9, 0.99} {
				b.ReportMetric(float64(lat[int(q*float64(len(lat)-1))].Microseconds()), fmt.Sprintf("p%.0f-µs", q*100))
			}
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
		})
	}
}

// pacedRate is the results a second of a paced run: below what the client
// writes, so that the latency is the way through, not a queue.
const pacedRate = 500

// latencyRun publishes n results of measurement id, at pacedRate if paced
// or as fast as they are stored, and returns the latency of each.
func latencyRun(b *testing.B, js jetstream.JetStream, tr *analysis.Trace, format, id string, n int, paced bool) []time.Duration {
	ctx := context.Background()
	cl, err := fleet.NewClient(ctx, js, fleet.Layout{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := cl.Submit(ctx, fleet.Request{ID: id, Targets: []string{"192.0.2.1"}}, []string{"agent"})
	if err != nil {
		b.Fatal(err)
	}
	lw := &latencyWriter{sent: map[string]time.Time{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / pacedRate)
		defer tick.Stop()
		t := *tr
		for d := range n {
			if paced {
				<-tick.C
			}
			t.Destination = netip.AddrFrom4([4]byte{10, 99, byte(d >> 8), byte(d)})
			t.Name = t.Destination.String()
			var rec bytes.Buffer
			writeRecord(&rec, "agent", id, &t, analysis.Options{})
			msg := nats.NewMsg(fleet.ResultSubject(id, "agent"))
			msg.Data = rec.Bytes()
			msg.Header.Set(fleet.HeaderRecord, "result")
			msg.Header.Set(fleet.HeaderDestination, t.Destination.String())
			lw.sentAt(t.Destination.String())
			if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id+".agent."+t.Destination.String())); err != nil {
				b.Error(err)
				return
			}
		}
		fin := nats.NewMsg(fleet.ResultSubject(id, "agent"))
		fin.Data = fmt.Appendf(nil, `{"agent":"agent","measurement":%q,"final":true,"destinations":%d,"reached":%d,"attempt":1}`+"\n", id, n, n)
		fin.Header.Set(fleet.HeaderRecord, "final")
		if _, err := js.PublishMsg(ctx, fin); err != nil {
			b.Error(err)
		}
	})
	out, err := openOutput(output.Options{Format: format, Stdout: lw, Stderr: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	f := follower{m: m, out: out, stderr: io.Discard}
	code, err := f.follow(ctx)
	wg.Wait()
	if code != 0 || len(lw.lat) != n {
		b.Fatalf("exit %d, %d results written, want %d: %v", code, len(lw.lat), n, err)
	}
	return lw.lat
}

// latencyWriter records, for each result written, the time since it was
// published: each Write is one result, whose destination is the first
// address 10.99.x.y it holds.
type latencyWriter struct {
	mu   sync.Mutex
	sent map[string]time.Time
	lat  []time.Duration
}

func (l *latencyWriter) sentAt(dst string) {
	l.mu.Lock()
	l.sent[dst] = time.Now()
	l.mu.Unlock()
}

func (l *latencyWriter) Write(p []byte) (int, error) {
	now := time.Now()
	i := bytes.Index(p, []byte("10.99."))
	if i < 0 {
		return len(p), nil
	}
	j := i + bytes.IndexAny(p[i:], `" )`)
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.sent[string(p[i:j])]; ok {
		l.lat = append(l.lat, now.Sub(t))
	}
	return len(p), nil
}
