package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/fleet/fleetcmd"
	"github.com/traceflow-fast/traceflow-fast/internal/syncbuf"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
	"github.com/traceflow-fast/traceflow-fast/viz"
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
	out, err := tracertest.FoundPaths(a.topo(), a.seed, cfg, dsts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runCLI runs the command in the process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(append([]string{"traceflow-fast"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// agentTrace is a record of --format json from an agent.
type agentTrace struct {
	agent, measurement string
	trace              *analysis.Trace
}

// readRecords decodes the records of --format json written by a trace
// through agents, in their order.
func readRecords(t *testing.T, out string) []agentTrace {
	t.Helper()
	var recs []agentTrace
	for _, line := range strings.SplitAfter(out, "\n") {
		if line == "" {
			continue
		}
		var head struct{ Agent, Measurement string }
		if err := json.Unmarshal([]byte(line), &head); err != nil {
			t.Fatalf("record %.80s: %v", line, err)
		}
		for tr, err := range analysis.ReadJSON(strings.NewReader(line)) {
			if err != nil {
				t.Fatalf("record %.80s: %v", line, err)
			}
			tr.Vantage = head.Agent
			recs = append(recs, agentTrace{head.Agent, head.Measurement, tr})
		}
	}
	return recs
}

// checkPaths checks that recs hold each destination of want[agent] once
// for each agent of want, with the paths want gives, and nothing else.
func checkPaths(t *testing.T, recs []agentTrace, want map[string]map[string][]string) {
	t.Helper()
	seen := map[[2]string]bool{}
	for _, r := range recs {
		d := r.trace.Destination.String()
		key := [2]string{r.agent, d}
		if seen[key] {
			t.Errorf("%s: %s given twice", r.agent, d)
		}
		seen[key] = true
		if w, ok := want[r.agent][d]; !ok {
			t.Errorf("%s: result for %s, which it was not asked for", r.agent, d)
		} else if p := tracertest.DistinctPaths(r.trace); !slices.Equal(p, w) {
			t.Errorf("%s: %s: paths\n  %s\nwant, as a local run finds\n  %s", r.agent, d, strings.Join(p, "\n  "), strings.Join(w, "\n  "))
		}
	}
	n := 0
	for _, m := range want {
		n += len(m)
	}
	if len(seen) != n {
		t.Errorf("%d results, want %d", len(seen), n)
	}
}

// render writes traces, in their order, as --format f writes the results
// of agents.
func render(t *testing.T, f string, traces []*analysis.Trace) string {
	t.Helper()
	var b bytes.Buffer
	var err error
	byAgent := map[string][]*analysis.Trace{}
	var agents []string
	for i, tr := range traces {
		switch f {
		case "vert", "horiz":
			if i > 0 {
				b.WriteByte('\n')
			}
			if f == "vert" {
				err = analysis.WriteVert(&b, tr, analysis.Options{})
			} else {
				err = analysis.WriteHoriz(&b, tr, analysis.Options{})
			}
		case "atlas":
			err = analysis.WriteAtlas(&b, tr, analysis.AtlasOptions{})
		case "dot":
			if byAgent[tr.Vantage] == nil {
				agents = append(agents, tr.Vantage)
			}
			byAgent[tr.Vantage] = append(byAgent[tr.Vantage], tr)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		b.WriteString("// agent " + a + "\n")
		if err := analysis.WriteGroupDOT(&b, byAgent[a]); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

var measurementLine = regexp.MustCompile(`(?m)^measurement (\S+) sent to `)

// measurementOf returns the id of the measurement a trace printed.
func measurementOf(t *testing.T, stderr string) string {
	t.Helper()
	m := measurementLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no measurement id in\n%s", stderr)
	}
	return m[1]
}

// A trace through two agents finds each agent's own paths, as a local run
// of its network does, and writes them in every format, each result
// naming its agent; `results` replays the measurement the same way.
func TestFleetTrace(t *testing.T) {
	url := startFleet(t, eastSim, westSim)
	dsts := []netip.Addr{}
	for i := 1; i <= 6; i++ {
		dsts = append(dsts, netip.AddrFrom4([4]byte{10, 99, 3, byte(i)}))
	}
	want := map[string]map[string][]string{
		"east": localPaths(t, eastSim, tracer.Config{Paths: 4}, dsts),
		"west": localPaths(t, westSim, tracer.Config{Paths: 4}, dsts),
	}
	if slices.Equal(want["east"]["10.99.3.1"], want["west"]["10.99.3.1"]) {
		t.Fatal("the two vantage points see the same paths: the test shows nothing")
	}
	trace := []string{"--agents", "east,west", "--nats", url, "--paths", "4", "10.99.3.0/29"}
	code, out, errs := runCLI(append(trace, "--format", "json")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	id := measurementOf(t, errs)
	recs := readRecords(t, out)
	checkPaths(t, recs, want)
	for _, r := range recs {
		if r.measurement != id {
			t.Errorf("record of measurement %q, want %q", r.measurement, id)
		}
	}
	for _, line := range []string{"east: 6 of 6 destinations reached", "west: 6 of 6 destinations reached"} {
		if !strings.Contains(errs, line+"\n") {
			t.Errorf("stderr lacks %q:\n%s", line, errs)
		}
	}
	// Attached again, the measurement gives the same records.
	code, again, errs := runCLI("results", "--nats", url, "--measurement", id)
	if code != exitOK || again != out {
		t.Errorf("results: exit %d, %s\n%s\nwant the records of the trace\n%s", code, errs, again, out)
	}
	for _, f := range []string{"vert", "horiz", "atlas", "dot"} {
		checkFormat(t, url, f, trace, want)
	}
}

// checkFormat runs trace in format f: what it writes must be the results
// of its measurement (which must find want's paths) in that format, as
// the package analysis writes them, and results --format f the same.
func checkFormat(t *testing.T, url, f string, trace []string, want map[string]map[string][]string) {
	t.Helper()
	code, out, errs := runCLI(append(trace, "--format", f)...)
	if code != exitOK {
		t.Fatalf("--format %s: exit %d: %s", f, code, errs)
	}
	id := measurementOf(t, errs)
	code, records, errs := runCLI("results", "--nats", url, "--measurement", id)
	if code != exitOK {
		t.Fatalf("results: exit %d: %s", code, errs)
	}
	recs := readRecords(t, records)
	checkPaths(t, recs, want)
	traces := make([]*analysis.Trace, len(recs))
	for i, r := range recs {
		traces[i] = r.trace
	}
	if w := render(t, f, traces); out != w {
		t.Errorf("--format %s wrote\n%s\nwant\n%s", f, out, w)
	}
	if _, replay, _ := runCLI("results", "--nats", url, "--measurement", id, "--format", f); replay != out {
		t.Errorf("results --format %s wrote\n%s\nwant what the trace wrote\n%s", f, replay, out)
	}
	for _, a := range []string{"east", "west"} {
		mark := map[string]string{"vert": "(agent " + a + ")", "horiz": "(agent " + a + ")", "dot": `label="agent ` + a + `\n`,
			"atlas": fmt.Sprintf(`"prb_id":%d,`, analysis.AtlasProbeID(a))}[f]
		if !strings.Contains(out, mark) {
			t.Errorf("--format %s does not name agent %s (%s)", f, a, mark)
		}
	}
}

// An agent's refusal makes the exit status 1, a destination not reached
// 2, each agent's outcome a line; bad flags are refused before anything is
// sent.
func TestFleetTraceExit(t *testing.T) {
	strict := eastSim
	strict.name, strict.limits = "strict", fleet.Limits{Protocols: []probe.Proto{probe.ProtoUDP}}
	url := startFleet(t, eastSim, strict)
	t.Setenv(fleetcmd.EnvNATS, "")
	for _, tc := range []struct {
		args  []string
		dsts  int // traced by east
		code  int
		lines []string // on stderr, after the measurement's
	}{
		{[]string{"--agents", "strict,east", "--protocol", "icmp", "--paths", "2", "10.99.3.1", "10.99.3.2"}, 2, exitError, []string{
			"east: 2 of 2 destinations reached",
			"strict: protocol icmp: this agent does not probe with it (allowed: udp)",
			"traceflow-fast: 1 of 2 agents did not run measurement "}},
		{[]string{"--agents", "strict,east", "--ttl", "2", "--paths", "2", "10.99.3.1"}, 1, exitUnreached, []string{
			"east: 0 of 1 destinations reached", "strict: 0 of 1 destinations reached"}},
		{[]string{"--agents", "all", "--paths", "2", "10.99.3.1"}, 1, exitOK, []string{
			"east: 1 of 1 destinations reached", "strict: 1 of 1 destinations reached"}},
	} {
		code, out, errs := runCLI(append(tc.args, "--nats", url, "-F", "json")...)
		got := strings.Split(strings.TrimSpace(errs), "\n")
		id := measurementOf(t, errs)
		slices.Sort(got[1:])
		if code != tc.code || len(got) != len(tc.lines)+1 || !strings.HasPrefix(got[0], "measurement "+id+" sent to ") {
			t.Errorf("%q: exit %d, stderr\n%s\nwant exit %d and %q", tc.args, code, errs, tc.code, tc.lines)
			continue
		}
		for i, l := range tc.lines {
			if !strings.HasPrefix(got[i+1], l) {
				t.Errorf("%q: stderr line %q, want %q", tc.args, got[i+1], l)
			}
		}
		if n := strings.Count(out, `{"agent":"east"`); n != tc.dsts {
			t.Errorf("%q: %d records of east", tc.args, n)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--agents", "east", "x"}, "--agents needs --nats URLS (or $TRACEFLOW_NATS)"},
		{[]string{"--nats", url, "x"}, "--nats needs --agents"},
		{[]string{"--split", "x"}, "--split needs --agents"},
		{[]string{"--agents", "east", "--nats", url, "--pcap", "p", "x"}, "--pcap: not with --agents"},
		{[]string{"--agents", "east", "--nats", url, "--source", "10.0.0.2", "x"}, "--source: not with --agents"},
		{[]string{"--agents", "east", "--nats", "embedded", "x"}, "--nats embedded: only an agent"},
		{[]string{"--agents", "nosuch", "--nats", url, "10.99.3.1"}, `agent "nosuch": not running`},
		{[]string{"--agents", "group:none", "--nats", url, "10.99.3.1"}, `agents "group:none": no agent running matches`},
		{[]string{"--agents", "east", "--nats", "nats://127.0.0.1:1", "10.99.3.1"}, "no server reachable"},
		{[]string{"--agents", "east", "--nats", url, "fd00:1234:5678:9abc::/112"}, "submit to east: 65535 destinations make a request larger than the server takes"},
		{[]string{"monitor", "--nats-name", "lab", "10.99.3.1"}, "--nats-name needs --nats"},
		{[]string{"monitor", "--nats", "nats://127.0.0.1:1", "10.99.3.1"}, "no server reachable"},
		{[]string{"monitor", "--agents", "east", "10.99.3.1"}, "flag provided but not defined: -agents"},
	} {
		code, out, errs := runCLI(tc.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || out != "" {
			t.Errorf("%q: exit %d, stderr %q, want 1 and one line with %q", tc.args, code, errs, tc.want)
		}
	}
	// $TRACEFLOW_NATS stands for --nats.
	t.Setenv(fleetcmd.EnvNATS, url)
	if code, _, errs := runCLI("--agents", "east", "--paths", "2", "10.99.3.1"); code != exitOK {
		t.Errorf("--nats from the environment: exit %d: %s", code, errs)
	}
}

// --split shares the destinations among the agents: each traces a
// disjoint part, dealt in the order of --seed, and together every one once.
func TestFleetSplit(t *testing.T) {
	url := startFleet(t, eastSim, westSim)
	file := filepath.Join(t.TempDir(), "targets")
	if err := os.WriteFile(file, []byte("# the destinations\n10.99.3.0/27\n10.99.4.0/28\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := targets.NewBuilder(targets.Options{MaxPrefix: 1 << 16})
	if err := b.AddPath(context.Background(), file, nil); err != nil {
		t.Fatal(err)
	}
	set, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	shares := fleet.Split(set, 9, 2) // east's, west's
	want := map[string]map[string][]string{
		"east": localPaths(t, eastSim, tracer.Config{Paths: 4}, addrsOf(shares[0])),
		"west": localPaths(t, westSim, tracer.Config{Paths: 4}, addrsOf(shares[1])),
	}
	code, out, errs := runCLI("--agents", "group:lab", "--split", "--seed", "9", "--nats", url, "--paths", "4", "-f", file, "-F", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	recs := readRecords(t, out)
	checkPaths(t, recs, want)
	all := map[string]string{}
	for _, r := range recs {
		d := r.trace.Destination.String()
		if other, ok := all[d]; ok {
			t.Errorf("%s traced by %s and %s", d, other, r.agent)
		}
		all[d] = r.agent
	}
	if len(all) != int(set.Len()) || set.Len() != 30+14 {
		t.Errorf("%d destinations traced, the targets hold %d", len(all), set.Len())
	}
	for _, line := range []string{"east: 22 of 22 destinations reached", "west: 22 of 22 destinations reached"} {
		if !strings.Contains(errs, line+"\n") {
			t.Errorf("stderr lacks %q:\n%s", line, errs)
		}
	}
}

func addrsOf(ss []string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

type lockedBuffer = syncbuf.Buffer

// Ctrl-C leaves the measurement to the agents and says how to follow it
// again; results then gives every destination once, when the agent is back.
func TestFleetInterruptReattach(t *testing.T) {
	url := startFleet(t)
	stop := startSimAgent(t, url, eastSim)
	stop() // its status stays listed a while: it is given the measurement
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"traceflow-fast", "--agents", "east", "--nats", url, "--paths", "4", "-F", "json", "10.99.3.0/29"}, &stdout, &stderr)
	}()
	var id string
	for deadline := time.Now().Add(time.Minute); id == "" && time.Now().Before(deadline); {
		select {
		case code := <-done:
			t.Fatalf("exit %d before the interruption: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if m := measurementLine.FindStringSubmatch(stderr.String()); m != nil {
			id = m[1]
		}
	}
	if id == "" {
		t.Fatalf("no measurement submitted: %s", stderr.String())
	}
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Signal(os.Interrupt); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	var code int
	select {
	case code = <-done:
	case <-time.After(time.Minute):
		t.Fatal("still following the measurement after SIGINT")
	}
	hint := fmt.Sprintf("traceflow-fast: interrupted: measurement %s keeps running on the agents; follow it again with: traceflow-fast results --nats %s --measurement %s\n", id, url, id)
	if code != exitInterrupted || !strings.HasSuffix(stderr.String(), hint) || stdout.String() != "" {
		t.Fatalf("exit %d, stdout %q, stderr\n%s\nwant %d and\n%s", code, stdout.String(), stderr.String(), exitInterrupted, hint)
	}
	startSimAgent(t, url, eastSim)
	code, out, errs := runCLI("results", "--nats", url, "--measurement", id)
	if code != exitOK || errs != "east: 6 of 6 destinations reached\n" {
		t.Fatalf("results: exit %d: %s", code, errs)
	}
	want := localPaths(t, eastSim, tracer.Config{Paths: 4}, hostsOf("10.99.3.0/29"))
	checkPaths(t, readRecords(t, out), map[string]map[string][]string{"east": want})
}

func hostsOf(prefix string) []netip.Addr {
	p := netip.MustParsePrefix(prefix)
	var out []netip.Addr
	for a := p.Addr().Next(); p.Contains(a.Next()); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// diff compares two stored measurements, or two agents of one, without
// files, and a stored measurement with a file.
func TestFleetDiff(t *testing.T) {
	url := startFleet(t, eastSim, westSim)
	measure := func(agents string) (string, string) {
		code, out, errs := runCLI("--agents", agents, "--nats", url, "--paths", "4", "-F", "json", "10.99.3.1", "10.99.3.2")
		if code != exitOK {
			t.Fatalf("trace: exit %d: %s", code, errs)
		}
		return measurementOf(t, errs), out
	}
	both, _ := measure("east,west")
	east, eastJSON := measure("east")
	file := filepath.Join(t.TempDir(), "east.json")
	if err := os.WriteFile(file, []byte(eastJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string // in the output (stdout and stderr)
	}{
		{[]string{"nats:" + both + ":east", "nats:" + east}, exitDiffSame, "unchanged"},
		{[]string{"nats:" + east, file}, exitDiffSame, "unchanged"},
		{[]string{"nats:" + both + ":east", "nats:" + both + ":west"}, exitDiffChanged, "10.1.2.2"},
		{[]string{"nats:" + both, "nats:" + east}, exitDiffError, "was run by east, west: name one (nats:" + both + ":AGENT)"},
		{[]string{"nats:" + east + ":west", file}, exitDiffError, `was not sent to agent "west"`},
		{[]string{"nats:nosuch", file}, exitDiffError, "measurement nosuch: not found"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast", "diff", "--nats", url}, tc.args...), &stdout, &stderr)
		if all := stdout.String() + stderr.String(); code != tc.code || !strings.Contains(all, tc.want) {
			t.Errorf("diff %q: exit %d, output\n%s\nwant %d and %q", tc.args, code, all, tc.code, tc.want)
		}
	}
}

// --help tells how to trace from agents and what the exit status is then.
func TestFleetHelp(t *testing.T) {
	code, out, _ := runCLI("--help")
	for _, want := range []string{"--agents NAME,...", "--nats URLS", "--split", "Exit status through\nagents", "$TRACEFLOW_NATS"} {
		if code != exitOK || !strings.Contains(out, strings.ReplaceAll(want, "\n", "\n   ")) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for _, tc := range []struct{ cmd, want string }{{"monitor", "--nats-name"}, {"diff", "nats:ID:AGENT"}, {"results", "--format"}} {
		if _, out, _ := runCLI(tc.cmd, "--help"); !strings.Contains(out, tc.want) {
			t.Errorf("%s --help lacks %q", tc.cmd, tc.want)
		}
	}
}

// --format viz through agents draws one graph, a source node per agent,
// each linked to its own first hop; a binary without the library refuses
// it, as it does locally.
func TestFleetViz(t *testing.T) {
	url := startFleet(t, eastSim, westSim)
	page := filepath.Join(t.TempDir(), "page.html")
	code, out, errs := runCLI("--agents", "east,west", "--nats", url, "--paths", "4", "--format", "viz", "--output", page, "10.99.3.1")
	if !viz.Available() {
		if code != exitError || !strings.Contains(errs, "--format viz: this binary was built without") {
			t.Errorf("without the library: exit %d, %s", code, errs)
		}
		return
	}
	if code != exitOK || out != "" {
		t.Fatalf("exit %d, stdout %q: %s", code, out, errs)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if !strings.Contains(html, `"vantages":["east","west"]`) && !strings.Contains(html, `"vantages":["west","east"]`) {
		t.Errorf("the page lacks the vantages east and west (in the order their results came)")
	}
	if !strings.Contains(html, `<title>traceflow-fast from agents east, west</title>`) && !strings.Contains(html, `<title>traceflow-fast from agents west, east</title>`) {
		t.Errorf("the page's title does not name the agents")
	}
	for _, want := range []string{
		`"id":"source:east","label":"agent east\n10.0.0.2"`, `"id":"source:west","label":"agent west\n10.0.0.2"`,
		`"from":"source:east","to":"10.0.0.1"`, `"from":"source:west","to":"10.0.0.1"`,
		`"vantage":"east"`, `"vantage":"west"`,
		`"id":"10.1.3.2"`, // a branch of east's diamond, which west's line lacks
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// With the permissions of docs/nats-server.conf, the client ops may use
// agent east only: a trace from east and west is refused for west in one
// line, saying which agent has the measurement already; wrong credentials
// are one line, without the password.
func TestFleetTracePermissions(t *testing.T) {
	for _, u := range []string{"EAST", "WEST", "OPS", "ADMIN"} {
		t.Setenv("TRACEFLOW_"+u+"_PASSWORD", strings.ToLower(u)+"-secret")
	}
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{ConfigFile: "../../docs/nats-server.conf", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	as := func(user, password string) string {
		return strings.Replace(srv.URL(), "nats://", "nats://"+user+":"+password+"@", 1)
	}
	startSimAgent(t, as("east", "east-secret"), eastSim)
	startSimAgent(t, as("west", "west-secret"), westSim)
	code, out, errs := runCLI("--agents", "east", "--nats", as("ops", "ops-secret"), "--paths", "4", "-F", "json", "10.99.3.1")
	if code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("east, allowed: exit %d, %d records: %s", code, strings.Count(out, "\n"), errs)
	}
	code, out, errs = runCLI("--agents", "east,west", "--nats", as("ops", "ops-secret"), "10.99.3.1")
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if want := "traceflow-fast: submit to west: not allowed: this user may not publish to traceflow.measure.west."; code != exitError ||
		len(lines) != 1 || !strings.HasPrefix(lines[0], want) || !strings.Contains(lines[0], "was sent to east already") || out != "" {
		t.Errorf("west, forbidden: exit %d, stderr %q, want 1 and one line %q... saying east has it", code, errs, want)
	}
	code, _, errs = runCLI("--agents", "east", "--nats", as("ops", "not-the-secret"), "10.99.3.1")
	if code != exitError || !strings.Contains(errs, "authorization refused: wrong or missing credentials") || strings.Contains(errs, "secret") {
		t.Errorf("wrong password: exit %d, %q", code, errs)
	}
}
