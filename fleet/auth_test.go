package fleet

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// withUser returns the server URL u with a user and password.
func withUser(t *testing.T, u, user, password string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.User = url.UserPassword(user, password)
	return p.String()
}

// A server configured as docs/nats-server.conf: wrong or missing
// credentials are refused with one line that does not quote the password;
// agents and a client work with the permissions it gives them; a client
// may submit only to the agents it is allowed to use, and an agent may
// not publish results in another's name.
func TestCredentialsAndPermissions(t *testing.T) {
	for _, u := range []string{"EAST", "WEST", "OPS", "ADMIN"} {
		t.Setenv("TRACEFLOW_"+u+"_PASSWORD", strings.ToLower(u)+"-secret")
	}
	srv, err := StartEmbedded(EmbeddedConfig{ConfigFile: "../docs/nats-server.conf", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	for _, tc := range []struct{ name, url string }{
		{"wrong password", withUser(t, srv.URL(), "ops", "not-the-secret")},
		{"unknown user", withUser(t, srv.URL(), "mallory", "ops-secret")},
		{"no credentials", srv.URL()},
	} {
		nc, err := Connect(ConnOptions{URLs: tc.url})
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.HasSuffix(msg, ": authorization refused: wrong or missing credentials") || strings.Contains(msg, "secret") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q, want one line saying the credentials were refused, without them", tc.name, msg)
		}
	}

	diamond := func() *tracertest.Topology { return tracertest.Diamond(2) }
	for _, name := range []string{"east", "west"} {
		startAgent(t, withUser(t, srv.URL(), name, name+"-secret"), simulated(name, diamond, 5), nil)
	}
	_, eastJS := connect(t, withUser(t, srv.URL(), "east", "east-secret"))
	_, js := connect(t, withUser(t, srv.URL(), "ops", "ops-secret"))
	c := newClient(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := c.Submit(ctx, Request{Targets: []string{"10.99.3.1"}, Paths: 4}, []string{"east"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Agents(ctx); err != nil || len(st) != 2 {
		t.Errorf("Agents = %+v, %v: want east and west", st, err)
	}
	if m, err = c.Attach(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	traces, finals, err := m.Collect(ctx)
	if err != nil || finals["east"] == nil || finals["east"].Error != "" || len(traces["east"]) != 1 {
		t.Fatalf("allowed agent: %d results, final %+v, %v", len(traces["east"]), finals["east"], err)
	}
	// The server answers a forbidden publish with an error of the
	// connection and nothing else: the submission waits for its reply
	// until this deadline, then says why it had none.
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
	defer fcancel()
	_, err = c.Submit(fctx, Request{Targets: []string{"10.99.3.1"}}, []string{"west"})
	forbiddenPublish(t, eastJS, ResultSubject("m1", "west"))
	forbiddenPublish(t, eastJS, "$KV.traceflow_agents.west")
	if want := "submit to west: not allowed: this user may not publish to traceflow.measure.west."; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("forbidden agent: %v, want %q", err, want)
	}
}

// forbiddenPublish checks that the user of js may not publish to subject.
func forbiddenPublish(t *testing.T, js jetstream.JetStream, subject string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := js.Publish(ctx, subject, []byte("{}"))
	last := js.Conn().LastError()
	if err == nil || !errors.Is(last, nats.ErrPermissionViolation) || !strings.Contains(last.Error(), subject) {
		t.Errorf("publish to %s: %v (last error %v), want it refused", subject, err, last)
	}
}
