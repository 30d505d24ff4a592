package fleet

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// Two agents at different places (a 4-way diamond, a line) trace the same
// destinations; the client gets each one's results, with the paths its own
// network has, and again when it attaches to the measurement later.
func TestAgentsAndClient(t *testing.T) {
	srv := startServer(t)
	diamond := func() *tracertest.Topology { return tracertest.Diamond(4) }
	line := func() *tracertest.Topology { return tracertest.Line(3) }
	east := simulated("east", diamond, 1)
	east.Groups = []string{"edge"}
	startAgent(t, srv.URL(), east, nil)
	startAgent(t, srv.URL(), simulated("west", line, 2), nil)

	_, js := connect(t, srv.URL())
	c := newClient(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := c.Agents(ctx)
	if err != nil || len(st) != 2 || st[0].Name != "east" || !slices.Equal(st[0].Groups, []string{"edge"}) || st[1].Name != "west" {
		t.Fatalf("Agents = %+v, %v", st, err)
	}
	if names, err := c.Resolve(ctx, []string{"group:edge"}); err != nil || !slices.Equal(names, []string{"east"}) {
		t.Errorf("Resolve(group:edge) = %v, %v", names, err)
	}
	to, err := c.Resolve(ctx, []string{"all"})
	if err != nil || !slices.Equal(to, []string{"east", "west"}) {
		t.Fatalf("Resolve(all) = %v, %v", to, err)
	}
	m, err := c.Submit(ctx, Request{Targets: []string{"10.99.3.0/29"}, Paths: 16}, to)
	if err != nil {
		t.Fatal(err)
	}
	dsts := hosts("10.99.3.0/29")
	want := map[string]map[string][]string{
		"east": localPaths(t, diamond(), 1, tracer.Config{Paths: 16}, dsts),
		"west": localPaths(t, line(), 2, tracer.Config{Paths: 16}, dsts),
	}
	if slices.Equal(want["east"]["10.99.3.1"], want["west"]["10.99.3.1"]) {
		t.Fatal("the two vantage points see the same paths: the test shows nothing")
	}
	var records [][]byte
	check := func(m *Measurement) {
		t.Helper()
		traces, finals, err := m.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range to {
			checkResults(t, a, traces[a], want[a])
			if f := finals[a]; f == nil || f.Error != "" || f.Destinations != len(dsts) || f.Attempt != 1 || f.Seed == 0 {
				t.Errorf("%s: final %+v, want %d destinations on the first attempt, in an order the agent picked", a, f, len(dsts))
			}
		}
	}
	check(m)
	again, err := c.Attach(ctx, m.ID)
	if err != nil || !slices.Equal(again.Agents, to) {
		t.Fatalf("Attach = %+v, %v", again, err)
	}
	check(again)
	// The records are --format json's, with the agent and measurement first.
	again.Results(ctx, func(r *Result) error {
		if r.Final == nil {
			records = append(records, r.Record)
		}
		return nil
	})
	for _, rec := range records {
		prefix := []byte(`{"agent":"east","measurement":"` + m.ID + `","destination":"10.99.3.`)
		if !bytes.HasPrefix(rec, prefix) && !bytes.HasPrefix(rec, bytes.Replace(prefix, []byte("east"), []byte("west"), 1)) {
			t.Errorf("record %.100s...: want it to start %s", rec, prefix)
		}
	}
	if len(records) != 2*len(dsts) {
		t.Errorf("%d records, want %d", len(records), 2*len(dsts))
	}
}

// An agent killed in the middle of a measurement, after some results are
// stored and before it acknowledged it, gets the measurement again when it
// comes back, traces only the destinations it has no result for, and the
// client, attached all along, sees every destination exactly once.
func TestAgentKilledMidMeasurement(t *testing.T) {
	srv := startServer(t)
	diamond := func() *tracertest.Topology { return tracertest.Diamond(4) }
	cfg := simulated("edge1", diamond, 3)
	const before = 3
	stored := make(chan struct{})
	first := startAgent(t, srv.URL(), cfg, func(ctx context.Context, n int) {
		if n == before {
			close(stored)
			<-ctx.Done() // killed here
		}
	})

	_, js := connect(t, srv.URL())
	c := newClient(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := c.Submit(ctx, Request{Targets: []string{"10.99.3.0/28"}, Paths: 8}, []string{"edge1"})
	if err != nil {
		t.Fatal(err)
	}
	type collected struct {
		traces map[string][]*analysis.Trace
		finals map[string]*Final
		err    error
	}
	got := make(chan collected, 1)
	go func() {
		tr, f, err := m.Collect(ctx)
		got <- collected{tr, f, err}
	}()
	select {
	case <-stored:
	case <-ctx.Done():
		t.Fatal("the agent stored no result")
	}
	first.kill(t)

	var second []int
	var mu sync.Mutex
	startAgent(t, srv.URL(), cfg, func(_ context.Context, n int) {
		mu.Lock()
		second = append(second, n)
		mu.Unlock()
	})
	res := <-got
	if res.err != nil {
		t.Fatal(res.err)
	}
	dsts := hosts("10.99.3.0/28")
	checkResults(t, "edge1", res.traces["edge1"], localPaths(t, diamond(), 3, tracer.Config{Paths: 8}, dsts))
	f := res.finals["edge1"]
	if f == nil || f.Error != "" || f.Attempt != 2 || f.Destinations != len(dsts) {
		t.Errorf("final %+v: want all %d destinations, finished on the second attempt", f, len(dsts))
	}
	mu.Lock()
	if len(second) != len(dsts)-before {
		t.Errorf("the second attempt traced %d destinations, want the %d left", len(second), len(dsts)-before)
	}
	mu.Unlock()
	// The stream holds each result once, and one final record.
	s, err := js.Stream(ctx, ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(ResultSubject(m.ID, "edge1")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[ResultSubject(m.ID, "edge1")]; n != uint64(len(dsts))+1 {
		t.Errorf("%d records stored, want %d results and the final one", n, len(dsts))
	}
}

// Requests are checked as the command line checks its flags, and against
// the agent's own limits: a refused one gets a final record with the
// reason and no result; one asking for more than the agent allows runs
// within its limits; the agent goes on taking measurements.
func TestAgentLimits(t *testing.T) {
	srv := startServer(t)
	cfg := simulated("guarded", func() *tracertest.Topology { return tracertest.Diamond(2) }, 4)
	cfg.Limits = Limits{
		MaxRate:    500,
		MaxTargets: 8,
		Protocols:  []probe.Proto{probe.ProtoUDP, probe.ProtoICMP},
		Exclude:    []netip.Prefix{netip.MustParsePrefix("10.99.5.0/24"), netip.MustParsePrefix("10.99.3.3/32")},
	}
	startAgent(t, srv.URL(), cfg, nil)
	_, js := connect(t, srv.URL())
	c := newClient(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	one := []string{"10.99.3.1"}
	refused := []struct {
		req  Request
		want string
	}{
		{Request{Targets: one, Protocol: "tcp"}, "protocol tcp: this agent does not probe with it (allowed: udp, icmp)"},
		{Request{Targets: one, Protocol: "sctp"}, `protocol "sctp": must be udp, tcp or icmp`},
		{Request{Targets: []string{"10.99.3.0/24"}}, "10.99.3.0/24 holds 256 addresses, more than --max-prefix 8"},
		{Request{Targets: []string{"10.99.3.0/30", "10.99.3.8/30", "10.99.3.16/30", "10.99.3.24/30", "10.99.3.32/30"}}, "targets: 10 addresses, more than this agent's limit of 8"},
		{Request{Targets: []string{"10.99.3.300"}}, `"10.99.3.300" is not a valid IPv4 address`},
		{Request{Targets: nil}, "no destination given"},
		{Request{Targets: []string{"10.99.5.1"}}, "no destination left: 1 excluded"},
		{Request{Targets: one, Paths: 5000}, "paths 5000: must be 1..4096"},
		{Request{Targets: one, MaxTTL: 99}, "ttl 99: must be 1..64"},
		{Request{Targets: one, Wait: -1}, "wait -1: must be more than 0"},
		{Request{Targets: one, Rate: -5}, "rate -5: must be a number"},
		{Request{Targets: one, Confidence: 20}, "confidence 20: must be 50..99.99"},
	}
	var ids []string
	for _, tc := range refused {
		m, err := c.Submit(ctx, tc.req, []string{"guarded"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	// Not a request at all, and one with a field the agent does not know.
	for id, data := range map[string]string{"garbled": "{not json", "unknown": `{"id":"unknown","targets":["10.99.3.1"],"tarce":1}`} {
		if _, err := js.Publish(ctx, MeasureSubject("guarded", id), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	ok, err := c.Submit(ctx, Request{Targets: []string{"10.99.3.0/29"}, Paths: 4, Rate: 1e9, Seed: 42}, []string{"guarded"})
	if err != nil {
		t.Fatal(err)
	}
	finalOf := func(id string) (*Final, []*analysis.Trace) {
		t.Helper()
		traces, finals, err := (&Measurement{ID: id, Agents: []string{"guarded"}, js: js}).Collect(ctx)
		if err != nil {
			t.Fatalf("measurement %s: %v", id, err)
		}
		return finals["guarded"], traces["guarded"]
	}
	for i, tc := range refused {
		f, traces := finalOf(ids[i])
		if f == nil || !strings.Contains(f.Error, tc.want) || len(traces) != 0 || f.Destinations != 0 {
			t.Errorf("%+v: final %+v and %d results, want the error %q and none", tc.req, f, len(traces), tc.want)
		}
	}
	for id, want := range map[string]string{"garbled": "bad request: invalid character", "unknown": `bad request: json: unknown field "tarce"`} {
		if f, _ := finalOf(id); f == nil || !strings.HasPrefix(f.Error, want) {
			t.Errorf("%s: final %+v, want the error %q", id, f, want)
		}
	}
	f, traces := finalOf(ok.ID)
	if f == nil || f.Error != "" || f.Rate != 500 || f.Excluded != 1 || f.Destinations != 5 || len(traces) != 5 || f.Seed != 42 {
		t.Fatalf("final %+v, %d results: want 5 destinations (10.99.3.3 excluded) at 500 probes/s, in the order of seed 42", f, len(traces))
	}
	for _, tr := range traces {
		if tr.Destination == netip.MustParseAddr("10.99.3.3") {
			t.Error("10.99.3.3 is excluded, but was traced")
		}
	}
}
