package fleet

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

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

// A server with users: wrong or missing credentials are refused with one
// line that does not quote the password; a client may submit only to the
// agents its permissions allow.
func TestCredentialsAndPermissions(t *testing.T) {
	srv := startServer(t,
		User{Name: "agent", Password: "agent-secret"},
		User{
			Name: "client", Password: "client-secret",
			// What a client needs, for agent east only (docs/nats-server.conf).
			Publish:   []string{"$JS.API.>", "traceflow.measure.east.*"},
			Subscribe: []string{"_INBOX.>"},
		},
	)
	for _, tc := range []struct{ name, url string }{
		{"wrong password", withUser(t, srv.URL(), "client", "not-the-secret")},
		{"unknown user", withUser(t, srv.URL(), "mallory", "client-secret")},
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
		startAgent(t, withUser(t, srv.URL(), "agent", "agent-secret"), simulated(name, diamond, 5), nil)
	}
	_, js := connect(t, withUser(t, srv.URL(), "client", "client-secret"))
	c := newClient(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := c.Submit(ctx, Request{Targets: []string{"10.99.3.1"}, Paths: 4}, []string{"east"})
	if err != nil {
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
	if want := "submit to west: not allowed: this user may not publish to traceflow.measure.west."; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("forbidden agent: %v, want %q", err, want)
	}
}
