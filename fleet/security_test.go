package fleet

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/natstest"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// startConfigured starts an embedded server with the configuration text
// conf.
func startConfigured(t *testing.T, conf string) *Embedded {
	t.Helper()
	file := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := StartEmbedded(EmbeddedConfig{ConfigFile: file, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// refused checks that Connect with o fails with one line holding want and
// none of secrets.
func refused(t *testing.T, what string, o ConnOptions, want string, secrets ...string) {
	t.Helper()
	nc, err := Connect(o)
	if err == nil {
		nc.Close()
		t.Errorf("%s: connected", what)
		return
	}
	msg := err.Error()
	t.Logf("%s: %s", what, msg)
	if !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("%s: %q, want one line with %q", what, msg, want)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("%s: %q shows a secret", what, msg)
		}
	}
}

// measureOnce submits a measurement of prefix to agent through js and
// checks its results against a local run on topo.
func measureOnce(t *testing.T, c *Client, agent, prefix string, topo *tracertest.Topology, seed uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := c.Submit(ctx, Request{Targets: []string{prefix}, Paths: 4}, []string{agent})
	if err != nil {
		t.Fatal(err)
	}
	traces, finals, err := m.Collect(ctx)
	if err != nil || finals[agent] == nil || finals[agent].Error != "" {
		t.Fatalf("%s: final %+v, %v", agent, finals[agent], err)
	}
	checkResults(t, agent, traces[agent], localPaths(t, topo, seed, tracer.Config{Paths: 4}, hosts(prefix)))
}

// TLS to the servers: a client trusts the servers' CA (ConnOptions.CA)
// or is refused in one line; a server that verifies its clients wants
// their certificate (ConnOptions.Cert, Key). An agent and a client work
// through TLS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	f, err := natstest.NewTLS(dir, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other-ca.pem")
	if err := natstest.NewCA(other); err != nil {
		t.Fatal(err)
	}
	garbled := filepath.Join(dir, "garbled.pem")
	if err := os.WriteFile(garbled, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startConfigured(t, f.ServerConfig(false))
	mutual := startConfigured(t, f.ServerConfig(true))

	notTrusted := "TLS: the server's certificate is not signed by a trusted CA"
	refused(t, "system CAs", ConnOptions{URLs: srv.URL()}, notTrusted)
	refused(t, "another CA", ConnOptions{URLs: srv.URL(), CA: other}, notTrusted)
	refused(t, "no CA file", ConnOptions{URLs: srv.URL(), CA: filepath.Join(dir, "none.pem")}, "nats CA file "+dir+"/none.pem: no such file or directory")
	refused(t, "garbled CA file", ConnOptions{URLs: srv.URL(), CA: garbled}, "nats CA file "+garbled+": no PEM certificate in it")
	refused(t, "no client certificate", ConnOptions{URLs: mutual.URL(), CA: f.CA}, "TLS: the server wants a client certificate it trusts")
	refused(t, "certificate without key", ConnOptions{URLs: mutual.URL(), CA: f.CA, Cert: f.ClientCert}, "give both the certificate and its key")
	refused(t, "key in place of certificate", ConnOptions{URLs: mutual.URL(), CA: f.CA, Cert: f.ClientKey, Key: f.ClientKey}, "nats client certificate "+f.ClientKey)

	diamond := func() *tracertest.Topology { return tracertest.Diamond(2) }
	for _, tc := range []struct {
		name string
		o    ConnOptions
	}{
		{"TLS", ConnOptions{URLs: srv.URL(), CA: f.CA}},
		{"mutual TLS", ConnOptions{URLs: mutual.URL(), CA: f.CA, Cert: f.ClientCert, Key: f.ClientKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			startAgentWith(t, tc.o, simulated("east", diamond, 3), nil)
			nc, js := connectWith(t, tc.o)
			if !nc.TLSRequired() {
				t.Error("the connection is not over TLS")
			}
			if _, err := nc.TLSConnectionState(); err != nil {
				t.Error(err)
			}
			measureOnce(t, newClient(t, js), "east", "10.99.3.0/29", diamond(), 3)
		})
	}
}

// NATS credentials files in operator mode (a memory resolver): good ones
// work; a user may not publish to another agent's subjects; wrong, unknown
// or garbled credentials are refused in one line naming the file; no seed
// shows in an error or a log.
func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	op, err := natstest.NewOperator(dir)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	creds := func(name string, deny ...string) string {
		path, seed, err := op.Creds(name, natstest.Permissions{Publish: []string{">"}, DenyPublish: deny})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, seed)
		return path
	}
	east := creds("east", "traceflow.result.*.west", "$KV.traceflow_agents.west")
	west := creds("west", "traceflow.result.*.east", "$KV.traceflow_agents.east")
	ops := creds("ops", "traceflow.measure.west.*")
	stranger, seed, err := op.StrangerCreds("mallory")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, seed)
	srv := startConfigured(t, op.ServerConfig())

	refused(t, "no credentials", ConnOptions{URLs: srv.URL()}, "authorization refused: wrong or missing credentials")
	refused(t, "unknown account", ConnOptions{URLs: srv.URL(), Creds: stranger}, "authorization refused: wrong or missing credentials", secrets...)
	refused(t, "no file", ConnOptions{URLs: srv.URL(), Creds: dir + "/none.creds"}, "nats credentials "+dir+"/none.creds: no such file or directory")
	refused(t, "unreadable", ConnOptions{URLs: srv.URL(), Creds: dir}, "nats credentials "+dir+": is a directory")
	badCredentials(t, srv.URL(), dir, east, west, secrets)

	var logs bytes.Buffer
	diamond := func() *tracertest.Topology { return tracertest.Diamond(2) }
	for name, path := range map[string]string{"east": east, "west": west} {
		cfg := simulated(name, diamond, 4)
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		startAgentWith(t, ConnOptions{URLs: srv.URL(), Creds: path}, cfg, nil)
	}
	_, js := connectWith(t, ConnOptions{URLs: srv.URL(), Creds: ops})
	c := newClient(t, js)
	measureOnce(t, c, "east", "10.99.3.0/29", diamond(), 4)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Submit(ctx, Request{Targets: []string{"10.99.3.1"}}, []string{"west"})
	if want := "submit to west: not allowed: this user may not publish to traceflow.measure.west."; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("forbidden agent: %v, want %q", err, want)
	}
	_, eastJS := connectWith(t, ConnOptions{URLs: srv.URL(), Creds: east})
	forbiddenPublish(t, eastJS, ResultSubject("m1", "west"))
	forbiddenPublish(t, eastJS, "$KV.traceflow_agents.west")
	// An agent may not take another's name: east's user is denied west's
	// status.
	a, err := NewAgent(eastJS, AgentConfig{Name: "west"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	err = a.Run(rctx)
	if want := `agent west: not allowed: Permissions Violation for Publish to "$KV.traceflow_agents.west"`; err == nil || err.Error() != want {
		t.Errorf("agent west with the credentials of east: %v, want %q", err, want)
	}
	if logs.Len() == 0 {
		t.Error("the agents logged nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) || strings.Contains(logs.String(), s[:20]) {
			t.Error("a seed shows in the agents' logs")
		}
	}
}

// badCredentials checks that credentials files made wrong from those of
// east and west are refused, each in one line naming the file.
func badCredentials(t *testing.T, url, dir, east, west string, secrets []string) {
	t.Helper()
	eastCreds, westCreds := readFile(t, east), readFile(t, west)
	for _, tc := range []struct{ name, content, why string }{
		{"garbled", "-----BEGIN NATS USER JWT-----\nnot.a.jwt\n------END NATS USER JWT------\n" + secrets[0] + "\n", "no user JWT in it"},
		{"no-seed", strings.Split(eastCreds, "************************* IMPORTANT")[0], "no user NKey seed in it"},
		{"mismatch", strings.Split(eastCreds, "-----BEGIN USER NKEY SEED")[0] + "-----BEGIN USER NKEY SEED" +
			strings.Split(westCreds, "-----BEGIN USER NKEY SEED")[1], "its NKey seed is not the key of its JWT's user"},
	} {
		path := filepath.Join(dir, tc.name+".creds")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, tc.name, ConnOptions{URLs: url, Creds: path}, "nats credentials "+path+": "+tc.why, secrets...)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
