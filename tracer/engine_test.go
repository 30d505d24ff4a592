package tracer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// Whole runs of the engine (scheduler, encoder, matcher, collector, MDA
// planner) through simulated networks, as an unprivileged user: what they
// find is compared with the paths the simulator knows are there.

// simRun is a run of the engine through a simulated network.
type simRun struct {
	net     *tracertest.Network
	results []*analysis.Trace
	sum     tracer.Summary
	spec    probe.Spec
	err     error
}

// run traces dsts through topo with cfg (its Network and Clock set to the
// simulator's).
func run(t *testing.T, topo *tracertest.Topology, seed uint64, cfg tracer.Config, dsts tracer.Targets) *simRun {
	t.Helper()
	n, err := tracertest.NewNetwork(topo, &tracertest.Options{Seed: seed, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Network, cfg.Clock = n, n.Clock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr, err := tracer.Open(ctx, cfg, dsts)
	if err != nil {
		t.Fatal(err)
	}
	r := &simRun{net: n, spec: tr.Spec()}
	var mu sync.Mutex
	r.sum, r.err = tr.Run(ctx, tracer.SinkFunc(func(tr *analysis.Trace) error {
		mu.Lock()
		r.results = append(r.results, tr)
		mu.Unlock()
		return nil
	}))
	return r
}

// truth returns the paths the simulator says the probes of spec to dst
// follow with path IDs 1..paths.
func (r *simRun) truth(t *testing.T, dst netip.Addr, paths int) []string {
	t.Helper()
	spec := r.spec
	spec.Paths = paths
	ps, err := r.net.Paths(&spec, dst)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

func TestRunFixedPathsFindsWhatTheirFlowsTake(t *testing.T) {
	for _, name := range []string{"line", "diamond4", "diamond8", "nested", "unequal", "meshed", "asymmetric", "two-diamonds", "silent-branch", "filtered-branch"} {
		t.Run(name, func(t *testing.T) {
			topo, err := tracertest.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, topo, 1, tracer.Config{Paths: 16}, tracer.Addrs(tracertest.DstAddr))
			if r.err != nil || len(r.results) != 1 {
				t.Fatalf("Run = %v, %d results", r.err, len(r.results))
			}
			tr := r.results[0]
			if got, want := tracertest.DistinctPaths(tr), r.truth(t, tracertest.DstAddr, 16); !slices.Equal(got, want) {
				t.Errorf("found\n  %s\nwant the paths of the 16 flows\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if len(tr.Flows) != 16 || tr.Partial || tr.MDA != nil {
				t.Errorf("%d flows, partial %v, mda %v: want 16 complete rows of a fixed run", len(tr.Flows), tr.Partial, tr.MDA)
			}
			if st := r.sum; st.Done != 1 || st.Sent != int64(tr.ProbesSent) || st.Replies != int64(tr.Replies) || st.Unmatched != 0 {
				t.Errorf("summary %+v, trace sent %d replies %d", st.Stats, tr.ProbesSent, tr.Replies)
			}
		})
	}
}

// An adaptive run finds every link of the topology (the MDA stopping rule
// misses one with a small probability, about 3% per run on these
// topologies: over 10 seeds, 2 misses are allowed per topology) and never reports one that is not there. Links, not
// paths: the search needs enough flows through each vertex, not a flow
// through every combination of branches.
func TestRunAdaptiveFindsEveryLink(t *testing.T) {
	for _, name := range []string{"line", "diamond4", "diamond8", "nested", "unequal", "meshed", "two-diamonds", "silent-branch"} {
		t.Run(name, func(t *testing.T) {
			misses := 0
			for seed := uint64(1); seed <= 10; seed++ {
				topo, _ := tracertest.ByName(name)
				r := run(t, topo, seed, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
				if r.err != nil || len(r.results) != 1 {
					t.Fatalf("seed %d: Run = %v, %d results", seed, r.err, len(r.results))
				}
				tr := r.results[0]
				all := linksOf(r.truth(t, tracertest.DstAddr, tracer.DefaultMaxPaths))
				got := linksOf(tracertest.DistinctPaths(tr))
				for _, l := range got {
					if !slices.Contains(all, l) {
						t.Errorf("seed %d: found link %q, which no flow takes", seed, l)
					}
				}
				if !slices.Equal(got, all) {
					misses++
					t.Logf("seed %d: found %d of %d links, %d probes", seed, len(got), len(all), tr.ProbesSent)
				}
				if tr.MDA == nil || !tr.MDA.Complete {
					t.Errorf("seed %d: the MDA search did not complete: %+v", seed, tr.MDA)
				}
			}
			if misses > 2 {
				t.Errorf("missed links in %d of 10 runs", misses)
			}
		})
	}
}

// linksOf returns the links of paths (as tracertest writes them): "TTL n:
// a -> b", sorted.
func linksOf(paths []string) []string {
	var out []string
	for _, p := range paths {
		hops := append([]string{"source"}, strings.Fields(strings.TrimSuffix(p, " !"))...)
		for i := 1; i < len(hops); i++ {
			l := fmt.Sprintf("TTL %d: %s -> %s", i, hops[i-1], hops[i])
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return out
}

// The probes an adaptive run spends stay near the stopping rule's figures
// (scamper's tracelb sends 29 probes on the 4-way diamond, 90 on the
// 8-way one).
func TestRunAdaptiveProbes(t *testing.T) {
	for _, tc := range []struct {
		name string
		most int
	}{{"diamond4", 60}, {"diamond8", 130}, {"nested", 80}} {
		topo, _ := tracertest.ByName(tc.name)
		r := run(t, topo, 7, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
		if r.err != nil {
			t.Fatal(r.err)
		}
		if sent := r.results[0].ProbesSent; sent > tc.most {
			t.Errorf("%s: %d probes, want at most %d", tc.name, sent, tc.most)
		}
	}
}

// A bulk run over a prefix the destination answers for: every destination
// traced once, each with the diamond's 4 paths, results handed over as
// they finish.
func TestRunBulk(t *testing.T) {
	set := make([]netip.Addr, 0, 254)
	for i := 1; i <= 254; i++ {
		set = append(set, netip.AddrFrom4([4]byte{10, 99, 3, byte(i)}))
	}
	r := run(t, tracertest.Diamond(4), 3, tracer.Config{Rate: tracer.Unlimited}, tracer.Addrs(set...))
	if r.err != nil {
		t.Fatal(r.err)
	}
	seen, full := map[netip.Addr]bool{}, 0
	for _, tr := range r.results {
		if seen[tr.Destination] {
			t.Errorf("%v traced twice", tr.Destination)
		}
		seen[tr.Destination] = true
		if len(tr.UniquePaths()) == 4 {
			full++
		}
	}
	if len(seen) != 254 || r.sum.Done != 254 || r.sum.Reached != 254 || r.sum.Total != 254 {
		t.Errorf("%d destinations, summary %+v", len(seen), r.sum.Stats)
	}
	// The stopping rule's 95%, with some room.
	if full < 254*9/10 {
		t.Errorf("%d of 254 destinations with all 4 paths", full)
	}
}

// Paced at a rate, the run's probes go out no faster than it allows.
func TestRunRate(t *testing.T) {
	dsts := make([]netip.Addr, 0, 32)
	for i := 1; i <= 32; i++ {
		dsts = append(dsts, netip.AddrFrom4([4]byte{10, 99, 4, byte(i)}))
	}
	r := run(t, tracertest.Diamond(4), 4, tracer.Config{Paths: 8, Rate: 1000}, tracer.Addrs(dsts...))
	if r.err != nil {
		t.Fatal(r.err)
	}
	sent := r.sum.Sent
	// The whole run in virtual time: sent probes at 1000/s, a burst
	// of 4 ms aside.
	if min := time.Duration(sent-4) * time.Millisecond; r.sum.Duration < min {
		t.Errorf("%d probes in %v at 1000/s: want at least %v", sent, r.sum.Duration, min)
	}
}

func TestRunIPv6(t *testing.T) {
	r := run(t, tracertest.Diamond(4), 1, tracer.Config{Paths: 16}, tracer.Addrs(tracertest.DstAddr6))
	if r.err != nil || len(r.results) != 1 {
		t.Fatalf("Run = %v, %d results", r.err, len(r.results))
	}
	if got, want := tracertest.DistinctPaths(r.results[0]), r.truth(t, tracertest.DstAddr6, 16); !slices.Equal(got, want) || len(got) < 2 {
		t.Errorf("found %q, want %q", got, want)
	}
	if !r.spec.Src.Is6() {
		t.Errorf("source %v for an IPv6 run", r.spec.Src)
	}
}

func TestRunProtocols(t *testing.T) {
	for _, proto := range []probe.Proto{probe.ProtoTCP, probe.ProtoICMP} {
		topo := tracertest.Diamond(4)
		r := run(t, topo, 2, tracer.Config{Paths: 16, Protocol: proto}, tracer.Addrs(tracertest.DstAddr))
		if r.err != nil || len(r.results) != 1 {
			t.Fatalf("%v: Run = %v, %d results", proto, r.err, len(r.results))
		}
		tr := r.results[0]
		if got, want := tracertest.DistinctPaths(tr), r.truth(t, tracertest.DstAddr, 16); !slices.Equal(got, want) {
			t.Errorf("%v: found %q, want %q", proto, got, want)
		}
		if tr.Protocol != proto.String() || r.sum.Reached != 1 {
			t.Errorf("%v: protocol %q, reached %d", proto, tr.Protocol, r.sum.Reached)
		}
	}
}

// A stream of destinations: the run takes them as they come and ends when
// the stream does.
func TestRunStream(t *testing.T) {
	ch := make(chan tracer.Target)
	go func() {
		for i := 1; i <= 5; i++ {
			ch <- tracer.Target{Addr: netip.AddrFrom4([4]byte{10, 99, 5, byte(i)}), Name: fmt.Sprintf("host%d", i)}
		}
		close(ch)
	}()
	r := run(t, tracertest.Diamond(2), 1, tracer.Config{Paths: 4}, tracer.Stream(ch))
	if r.err != nil {
		t.Fatal(r.err)
	}
	var names []string
	for _, tr := range r.results {
		names = append(names, tr.Name)
	}
	slices.Sort(names)
	if want := []string{"host1", "host2", "host3", "host4", "host5"}; !slices.Equal(names, want) {
		t.Errorf("results for %q, want %q", names, want)
	}
	if r.sum.Total != -1 || r.sum.Done != 5 {
		t.Errorf("summary %+v", r.sum.Stats)
	}
}

// Destinations that cannot be traced are skipped with their reason; the
// others are traced.
func TestRunSkips(t *testing.T) {
	none := netip.MustParseAddr("192.0.2.7") // no route in the simulator
	r := run(t, tracertest.Line(2), 1, tracer.Config{Paths: 2}, tracer.Addrs(tracertest.DstAddr, none))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.results) != 1 || r.sum.Skipped != 1 || len(r.sum.Skips) != 1 || r.sum.Skips[0].Target.Addr != none {
		t.Fatalf("%d results, summary %+v", len(r.results), r.sum)
	}
	if !errors.Is(r.sum.Skips[0].Err, tracertest.ErrNoRoute) {
		t.Errorf("skipped for %v", r.sum.Skips[0].Err)
	}
}

// Open fails, naming the destinations, when none has a route.
func TestOpenWithoutRoute(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tracer.Open(context.Background(), tracer.Config{Network: n, Clock: n.Clock()}, tracer.Addrs(netip.MustParseAddr("192.0.2.7")))
	if !errors.Is(err, tracertest.ErrNoRoute) || !strings.Contains(err.Error(), "192.0.2.7") {
		t.Errorf("Open = %v, want no route to 192.0.2.7", err)
	}
}

// A sink error stops the run, and Run returns it.
func TestRunSinkError(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	var dsts []netip.Addr
	for i := 1; i <= 200; i++ {
		dsts = append(dsts, netip.AddrFrom4([4]byte{10, 99, 6, byte(i)}))
	}
	full := errors.New("disk full")
	calls := 0
	_, err = tracer.Trace(context.Background(), tracer.Config{Paths: 4, Window: 8, Network: n, Clock: n.Clock()}, tracer.Addrs(dsts...),
		tracer.SinkFunc(func(*analysis.Trace) error { calls++; return full }))
	if !errors.Is(err, full) {
		t.Errorf("Run = %v, want the sink's error", err)
	}
	if calls != 1 {
		t.Errorf("sink called %d times after its error, want once", calls)
	}
}

// An interrupted run hands over what it has, marked partial, and returns
// the context's error.
func TestRunInterrupted(t *testing.T) {
	topo := tracertest.Diamond(4)
	topo.Node("dst").Silent = true // every path ID probes on to the gap limit
	n, err := tracertest.NewNetwork(topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var got []*analysis.Trace
	cfg := tracer.Config{Paths: 8, Network: n, Clock: n.Clock(), Wait: 5 * time.Second}
	tr, err := tracer.Open(ctx, cfg, tracer.Addrs(tracertest.DstAddr))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		// Interrupt once probes are out.
		for tr.Stats().Sent == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := tr.Run(ctx, tracer.SinkFunc(func(t *analysis.Trace) error { got = append(got, t); return nil }))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if len(got) != 1 || !got[0].Partial || sum.Partial != 1 {
		t.Errorf("%d results, partial %d", len(got), sum.Partial)
	}
}

// Every probe sent and every packet received goes to Config.Capture.
func TestRunCapture(t *testing.T) {
	var log packetLog
	r := run(t, tracertest.Diamond(2), 1, tracer.Config{Paths: 4, Capture: &log}, tracer.Addrs(tracertest.DstAddr))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if log.sent != int(r.sum.Sent) || log.received != int(r.sum.Received) || log.received == 0 {
		t.Errorf("captured %d sent, %d received; the run sent %d, received %d", log.sent, log.received, r.sum.Sent, r.sum.Received)
	}
}

type packetLog struct {
	mu             sync.Mutex
	sent, received int
}

func (l *packetLog) WritePacket(time.Time, []byte) error {
	l.mu.Lock()
	l.received++
	l.mu.Unlock()
	return nil
}

func (l *packetLog) WritePackets(_ time.Time, pkts [][]byte) error {
	l.mu.Lock()
	l.sent += len(pkts)
	l.mu.Unlock()
	return nil
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg   tracer.Config
		field string
	}{
		{tracer.Config{MaxTTL: 65}, "MaxTTL"},
		{tracer.Config{Paths: 5000}, "Paths"},
		{tracer.Config{FirstTTL: 3}, "FirstTTL"}, // adaptive starts at 1
		{tracer.Config{Paths: 4, FirstTTL: 31}, "FirstTTL"},
		{tracer.Config{Confidence: 0.2}, "Confidence"},
		{tracer.Config{SrcPort: 65500, Paths: 100}, "SrcPort"},
		{tracer.Config{Protocol: probe.ProtoICMP, DstPort: 80}, "DstPort"},
		{tracer.Config{Wait: time.Hour}, "Wait"},
		{tracer.Config{Retries: 11}, "Retries"},
		{tracer.Config{Rate: -5}, "Rate"},
		{tracer.Config{Window: -1}, "Window"},
	} {
		var ce *tracer.ConfigError
		if err := tc.cfg.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: Validate = %v, want an error about %s", tc.cfg, err, tc.field)
		}
	}
	if err := (tracer.Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
	d := tracer.Config{Protocol: probe.ProtoTCP, Retries: tracer.NoRetries, Rate: tracer.Unlimited}.WithDefaults()
	if d.DstPort != 80 || d.Retries != 0 || d.Rate != 0 || d.MaxPaths != tracer.DefaultMaxPaths || d.MaxTTL != 30 {
		t.Errorf("defaults %+v", d)
	}
}

// The run logs its start, with the seed of a shuffled order; its summary
// logs as the counters.
func TestRunLogs(t *testing.T) {
	b := targets.NewBuilder(targets.Options{})
	if err := b.AddArg(context.Background(), "10.99.7.0/30"); err != nil {
		t.Fatal(err)
	}
	set, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	r := run(t, tracertest.Diamond(2), 1, tracer.Config{Paths: 4, Logger: log}, tracer.Shuffle(set, 42))
	if r.err != nil {
		t.Fatal(r.err)
	}
	log.Info("done", slog.Any("", r.sum))
	out := buf.String()
	for _, want := range []string{
		"msg=tracing destinations=2 protocol=udp source=10.0.0.2 iface=sim0 paths=4 ttl=1..30 srcports=33453..33456 dstport=33452 rate=10000/s tag=",
		" seed=42\n",
		fmt.Sprintf("msg=done destinations=2 reached=2 skipped=0 partial=0 probes=%d retries=%d rate_limited=0 paced_hops=0 reused=0 replies=%d received=%d dropped=0 unmatched=0 late=0 duration=",
			r.sum.Sent, r.sum.Retries, r.sum.Replies, r.sum.Received),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}
