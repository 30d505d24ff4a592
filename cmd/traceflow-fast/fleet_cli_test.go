package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/fleet"
)

// `agents` lists the agents of a NATS server; `agent` and `agents` refuse
// bad flags and wrong credentials with one line and exit status 1.
func TestFleetCommands(t *testing.T) {
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: t.TempDir(), Users: []fleet.User{{Name: "ops", Password: "ops-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	u, _ := url.Parse(srv.URL())
	u.User = url.UserPassword("ops", "ops-secret")
	good := u.String()
	u.User = url.UserPassword("ops", "wrong-secret")
	wrong := u.String()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agents"}, `Required flag "nats" not set`},
		{[]string{"agents", "--nats", wrong}, "authorization refused: wrong or missing credentials"},
		{[]string{"agents", "--nats", "embedded"}, "--nats embedded: only an agent"},
		{[]string{"agents", "--nats", good, "--nats-replicas", "7"}, "7 replicas: JetStream keeps 1 to 5"},
		{[]string{"agent", "--nats", good}, `Required flag "name" not set`},
		{[]string{"agent", "--nats", good, "--name", "a.b"}, `agent name "a.b"`},
		{[]string{"agent", "--nats", good, "--name", "a", "--protocols", "udp,sctp"}, `--protocols "udp,sctp"`},
		{[]string{"agent", "--nats", good, "--name", "a", "--max-rate", "0"}, "--max-rate 0"},
		{[]string{"agent", "--nats", wrong, "--name", "a"}, "authorization refused"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast"}, tc.args...), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || strings.Contains(stderr.String(), "secret") {
			t.Errorf("%q: exit %d, stderr %q: want 1 and one line with %q, without the password", tc.args, code, stderr.String(), tc.want)
		}
	}

	// An agent whose engine is never used: it only reports its status.
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: good})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	a, err := fleet.NewAgent(js, fleet.AgentConfig{Name: "east", Groups: []string{"eu"}, Version: "v9", Limits: fleet.Limits{MaxRate: 250}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"traceflow-fast", "agents", "--nats", good}, &stdout, &stderr); code != exitOK {
		t.Fatalf("agents: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "east v9 eu udp,tcp,icmp 250 65536 0 0 ") {
		t.Errorf("agents printed\n%s", stdout.String())
	}
}
