package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/natstest"
)

// A trace from agents through a server that verifies its clients: without
// --nats-cert and --nats-key it is refused in one line; with them it gets
// as far as the agents (none runs here).
func TestFleetMutualTLS(t *testing.T) {
	dir := t.TempDir()
	f, err := natstest.NewTLS(dir, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(f.ServerConfig(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{ConfigFile: conf, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	base := []string{"traceflow-fast", "--agents", "all", "--nats", srv.URL(), "--nats-ca", f.CA}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "TLS: the server wants a client certificate it trusts"},
		{[]string{"--nats-cert", f.ClientCert, "--nats-key", f.ClientKey}, `agents "all": no agent running matches`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append(append(base, tc.args...), "10.99.3.1"), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: exit %d, stderr %q: want 1 and one line with %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
