package fleetlab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// targets is answered by the destination of each lab.
const targets = "10.99.2.0/28"

type fleetConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newFleetConn(nc *nats.Conn) (*fleetConn, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &fleetConn{nc, js}, nil
}

// binaries builds traceflow-fast and nats-server (from its Go module) at
// once.
func binaries(t *testing.T) (traceflow, natsServer string) {
	t.Helper()
	script, err := lab.Script()
	if err != nil {
		t.Fatal(err)
	}
	root, dir := filepath.Dir(filepath.Dir(script)), t.TempDir()
	traceflow, natsServer = filepath.Join(dir, "traceflow-fast"), filepath.Join(dir, "nats-server")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, args := range [][]string{{traceflow, "./cmd/traceflow-fast"}, {natsServer, "github.com/nats-io/nats-server/v2"}} {
		wg.Go(func() {
			cmd := exec.Command("go", "build", "-o", args[0], args[1])
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = errors.New(string(out))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("build: %v", err)
	}
	return traceflow, natsServer
}

// vantage is an agent and the lab it traces from.
type vantage struct {
	name  string
	lab   *lab.Lab
	hubIP string // the hub's address on the prober's link
	agent *proc
}

// agentCmd is `traceflow-fast agent` in v's prober, its settings in the
// environment (so that no password shows in the process list).
func (h *hub) agentCmd(bin string, v *vantage, env ...string) *exec.Cmd {
	cmd := v.lab.Command(context.Background(), "prober", bin, "agent", "--name", v.name,
		"--ack-wait", "2s", "--nats-replicas", "3")
	cmd.Env = append(os.Environ(), "TRACEFLOW_NATS="+h.urls(v.name, h.passwords[v.name], v.hubIP),
		"TRACEFLOW_NATS_CA="+h.tls.CA)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// setup creates the streams and the bucket with 3 replicas, once the
// cluster has elected its leaders, and returns the administrator's client.
func setup(t *testing.T, h *hub) (*fleetConn, *fleet.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		admin, err := h.connect("admin")
		if err == nil {
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			err = fleet.Setup(actx, admin.js, fleet.Layout{Replicas: 3})
			acancel()
			if err == nil {
				t.Cleanup(admin.nc.Close)
				c, err := fleet.NewClient(ctx, admin.js, fleet.Layout{})
				if err != nil {
					t.Fatal(err)
				}
				return admin, c
			}
			admin.nc.Close()
		}
		if ctx.Err() != nil {
			t.Fatalf("cluster not ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // the servers start, then elect their leaders
	}
}

// waitAgents waits until every agent of names is listed.
func waitAgents(t *testing.T, c *fleet.Client, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		st, err := c.Agents(ctx)
		var listed []string
		for _, s := range st {
			listed = append(listed, s.Name)
		}
		if !slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(listed, n) }) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("agents listed: %v (%v), want %v", listed, err, names)
		}
		time.Sleep(100 * time.Millisecond) // the agents connect
	}
}

// pathsOf returns the distinct paths of tr as lab.sh describes them.
func pathsOf(tr *analysis.Trace) []string {
	var out []string
	for _, up := range tr.UniquePaths() {
		var hops []string
		for _, a := range up.Hops {
			if a.IsValid() {
				hops = append(hops, a.String())
			} else {
				hops = append(hops, "*")
			}
		}
		out = append(out, strings.Join(hops, " "))
	}
	slices.Sort(out)
	return out
}

// expected returns the paths the lab has towards dst: those lab.sh
// describes, ending at dst.
func expected(l *lab.Lab, dst string) []string {
	var out []string
	for _, p := range l.ExpectedPaths() {
		p[len(p)-1] = dst
		out = append(out, strings.Join(p, " "))
	}
	slices.Sort(out)
	return out
}
