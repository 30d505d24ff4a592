package fleetlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// The measurement: the lab's destination answers every address of
// targets; the 2 of silent do not answer, so that the agent keeps tracing
// them after it has stored the others' results.
var (
	silent  = []string{"10.99.3.1", "10.99.3.2"}
	request = fleet.Request{Targets: append([]string{targets}, silent...), Paths: 16, Wait: 0.5, GapLimit: 2}
)

// Two agents, each the real command run as root in the prober of a lab
// of its own (a 4-way diamond; 2 paths of unequal length), reach a
// 3-node cluster of nats-server processes over links of their own, with
// TLS and the users and permissions of docs/nats-server.conf, their
// passwords given in the environment. Wrong credentials, a CA not given
// and a submission to an agent the user may not use are refused. During
// the measurement, the node leading the results stream and one agent are
// killed (SIGKILL), and the agent started again: each agent still
// delivers every destination exactly once, each with the paths a one-shot
// run from its prober finds, all of them paths of its lab.
func TestLabFleet(t *testing.T) {
	lab.RequireRoot(t)
	bin, natsServer := binaries(t)
	h := newHub(t, natsServer)
	vs := []*vantage{
		{name: "east", lab: lab.Up(t, "diamond4", lab.WithLocalPrefix(targets))},
		{name: "west", lab: lab.Up(t, "unequal", lab.WithLocalPrefix(targets))},
	}
	for _, v := range vs {
		v.hubIP = h.link(t, v.lab.NS("prober"))
	}
	admin, c := setup(t, h)
	var agents []*proc // every agent process started, killed or not
	startAgent := func(v *vantage) {
		v.agent = start(t, h.agentCmd(bin, v))
		agents = append(agents, v.agent)
	}
	for _, v := range vs {
		startAgent(v)
	}
	t.Cleanup(func() {
		for i, p := range agents {
			out := p.stderr.String()
			for u, pw := range h.passwords {
				if strings.Contains(out, pw) {
					t.Errorf("agent process %d logged the password of %s", i, u)
				}
			}
			if t.Failed() {
				t.Logf("agent process %d (%s):\n%s", i, p.cmd.Args[len(p.cmd.Args)-5], tail(out, 40))
			}
		}
	})
	waitAgents(t, c, "east", "west")
	refusals(t, h, bin, vs[0])
	// One at a time in each prober: a run and an agent tracing the same
	// flows at once would see each other's replies.
	local := make([]map[string][]string, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		wg.Go(func() { local[i] = oneShot(t, bin, v) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	traces, finals := measureWithFaults(t, h, admin, c, func() { startAgent(vs[1]) }, vs)
	for i, v := range vs {
		checkAgent(t, v, traces[v.name], finals[v.name], local[i])
	}
	checkStored(t, admin.js, finals["east"].Measurement, vs)
}

// refusals checks that an agent with a wrong password, not given the CA,
// or taking another agent's name exits with one line, and that a user may
// not submit to an agent it is not allowed to use.
func refusals(t *testing.T, h *hub, bin string, v *vantage) {
	t.Helper()
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{v.name, []string{"TRACEFLOW_NATS=" + h.urls(v.name, "not-"+h.passwords[v.name], v.hubIP)}, "authorization refused: wrong or missing credentials"},
		{v.name, []string{"TRACEFLOW_NATS_CA="}, "TLS: the server's certificate is not signed by a trusted CA"},
		// v's user taking another agent's name.
		{"north", nil, "agent north: not allowed: Permissions Violation for Publish to \"$JS.API.CONSUMER.CREATE.TRACEFLOW_MEASUREMENTS.agent_north."},
	} {
		cmd := h.agentCmd(bin, v, tc.env...)
		cmd.Args[slices.Index(cmd.Args, "--name")+1] = tc.name
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) ||
			strings.Contains(stderr.String(), h.passwords[v.name]) {
			t.Errorf("agent with %s: %v, stderr %q: want exit status 1 and one line with %q, without the password", tc.env, err, stderr.String(), tc.want)
		}
	}
	ops, err := h.connect("ops")
	if err != nil {
		t.Fatal(err)
	}
	defer ops.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := fleet.NewClient(ctx, ops.js, fleet.Layout{})
	if err == nil {
		_, err = c.Submit(ctx, request, []string{"west"})
	}
	if want := "submit to west: not allowed: this user may not publish to traceflow.measure.west."; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("ops submitting to west: %v, want %q", err, want)
	}
}

// oneShot traces the request with the command in v's prober, and returns
// the distinct paths by destination; nil if it failed.
func oneShot(t *testing.T, bin string, v *vantage) map[string][]string {
	args := []string{"--format", "json", "--paths", strconv.Itoa(request.Paths), "--wait", fmt.Sprint(request.Wait),
		"--gap-limit", strconv.Itoa(request.GapLimit)}
	out, stderr, err := v.lab.Run("prober", bin, append(args, request.Targets...)...)
	// Exit status 2: some destination was not reached, as the silent ones.
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("one-shot run from %s: %v\n%s", v.name, err, stderr)
		return nil
	}
	paths := map[string][]string{}
	for tr, err := range analysis.ReadJSON(strings.NewReader(out)) {
		if err != nil {
			t.Errorf("one-shot run from %s: %v", v.name, err)
			return nil
		}
		paths[tr.Destination.String()] = pathsOf(tr)
	}
	return paths
}

// measureWithFaults submits the measurement to every agent and reads its
// results. Once west has stored 3, west and the node leading the results
// stream are killed, and west is started again. A client whose reads went
// with the lost node attaches again, as a user would.
func measureWithFaults(t *testing.T, h *hub, admin *fleetConn, c *fleet.Client, restartWest func(), vs []*vantage) (map[string][]*analysis.Trace, map[string]*fleet.Final) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	m, err := c.Submit(ctx, request, []string{"east", "west"})
	if err != nil {
		t.Fatal(err)
	}
	// Both faults once west has stored 3 results: the client reads them
	// before losing a node (its reads may stall until it attaches again),
	// and west has more to publish, through the cluster left.
	west, killed := 0, false
	first, fcancel := context.WithTimeout(ctx, 15*time.Second)
	traces, finals, err := collect(first, m, func(r *fleet.Result) {
		if r.Agent == "west" {
			west++
		}
		if west == 3 && !killed {
			killed = true
			t.Logf("killing agent west after its 3rd result")
			vs[1].agent.kill()
			killLeader(t, h, admin.js)
			restartWest()
		}
	})
	fcancel()
	if len(finals) < len(vs) {
		t.Logf("attaching again after %v", err)
		if m, err = c.Attach(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		traces, finals, err = collect(ctx, m, func(*fleet.Result) {})
	}
	if err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatal("the measurement ended before west stored 3 results")
	}
	return traces, finals
}

// collect reads the results of m, calling hook with each destination's.
func collect(ctx context.Context, m *fleet.Measurement, hook func(*fleet.Result)) (map[string][]*analysis.Trace, map[string]*fleet.Final, error) {
	traces, finals := map[string][]*analysis.Trace{}, map[string]*fleet.Final{}
	err := m.Results(ctx, func(r *fleet.Result) error {
		if r.Final != nil {
			finals[r.Agent] = r.Final
			return nil
		}
		hook(r)
		tr, err := r.Trace()
		traces[r.Agent] = append(traces[r.Agent], tr)
		return err
	})
	return traces, finals, err
}

// killLeader kills the node leading the results stream (SIGKILL).
func killLeader(t *testing.T, h *hub, js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, fleet.ResultsStream)
	if err != nil {
		t.Errorf("results stream: %v", err)
		return
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || h.servers[info.Cluster.Leader] == nil {
		t.Errorf("results stream's leader: %+v, %v", info, err)
		return
	}
	t.Logf("killing %s, the results stream's leader", info.Cluster.Leader)
	h.servers[info.Cluster.Leader].kill()
}

// checkAgent checks that v traced every destination once, with the paths
// of the one-shot run, all of them paths of its lab (up to the silent
// destinations' last hop), and that the agent killed finished on a later
// attempt.
func checkAgent(t *testing.T, v *vantage, got []*analysis.Trace, fin *fleet.Final, local map[string][]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, tr := range got {
		d := tr.Destination.String()
		if seen[d] {
			t.Errorf("%s: %s given twice", v.name, d)
		}
		seen[d] = true
		want := expected(v.lab, d)
		if slices.Contains(silent, d) {
			want = expectedSilent(v.lab)
		}
		paths := pathsOf(tr)
		if w, ok := local[d]; !ok || !slices.Equal(paths, w) {
			t.Errorf("%s: %s: paths %q, the one-shot run found %q", v.name, d, paths, w)
		}
		for _, p := range paths {
			if !slices.Contains(want, p) {
				t.Errorf("%s: %s: path %q is not one of the lab's %q", v.name, d, p, want)
			}
		}
	}
	if len(seen) != len(local) || len(local) != 14+len(silent) {
		t.Errorf("%s: %d destinations, the one-shot run %d, want %d", v.name, len(seen), len(local), 14+len(silent))
	}
	switch {
	case fin == nil || fin.Error != "" || fin.Destinations != len(local) || fin.Reached != 14:
		t.Errorf("%s: final %+v", v.name, fin)
	case v.name == "west" && fin.Attempt < 2:
		t.Errorf("west finished on attempt %d: it was not killed in the middle of the measurement", fin.Attempt)
	default:
		t.Logf("%s: %d destinations, %d reached, attempt %d", v.name, fin.Destinations, fin.Reached, fin.Attempt)
	}
}

// expectedSilent returns the lab's paths without their destination: what
// a destination that does not answer shows.
func expectedSilent(l *lab.Lab) []string {
	var out []string
	for _, p := range l.ExpectedPaths() {
		out = append(out, strings.Join(p[:len(p)-1], " "))
	}
	return out
}

// checkStored checks that the results stream holds one result per
// destination and one final record from each agent: none stored twice.
func checkStored(t *testing.T, js jetstream.JetStream, id string, vs []*vantage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, fleet.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(fleet.ResultSubject(id, "*")))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if n := info.State.Subjects[fleet.ResultSubject(id, v.name)]; n != 14+uint64(len(silent))+1 {
			t.Errorf("%s: %d records stored, want %d", v.name, n, 14+len(silent)+1)
		}
	}
}
