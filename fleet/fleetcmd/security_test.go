package fleetcmd

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/natstest"
)

// runAgents runs `traceflow-fast agents ARGS...` and returns its output
// and error.
func runAgents(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	app := &cli.App{Writer: &stdout, ErrWriter: &stderr, Commands: Commands()}
	err := app.RunContext(ctx, append([]string{"traceflow-fast", "agents"}, args...))
	return stdout.String(), err
}

// The credentials and TLS settings come from flags or from the
// environment ($TRACEFLOW_NATS with user and password, $TRACEFLOW_NATS_CREDS,
// $TRACEFLOW_NATS_CA, $TRACEFLOW_NATS_CERT and _KEY); a refusal is one line
// without a secret.
func TestCredentialsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	tf, err := natstest.NewTLS(dir, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	op, err := natstest.NewOperator(dir)
	if err != nil {
		t.Fatal(err)
	}
	creds, seed, err := op.Creds("ops", natstest.Permissions{Publish: []string{">"}})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(op.ServerConfig()+tf.ServerConfig(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	secure, err := fleet.StartEmbedded(fleet.EmbeddedConfig{ConfigFile: conf, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Shutdown()
	plain, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: t.TempDir(), Users: []fleet.User{{Name: "ops", Password: "ops-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	u, _ := url.Parse(plain.URL())
	u.User = url.UserPassword("ops", "ops-secret")
	good := u.String()
	u.User = url.UserPassword("ops", "wrong-secret")

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // in the one line of the error; "" for success
	}{
		{"password", map[string]string{"TRACEFLOW_NATS": good}, ""},
		{"wrong password", map[string]string{"TRACEFLOW_NATS": u.String()}, "authorization refused: wrong or missing credentials"},
		{"creds and TLS", map[string]string{"TRACEFLOW_NATS": secure.URL(), "TRACEFLOW_NATS_CREDS": creds, "TRACEFLOW_NATS_CA": tf.CA,
			"TRACEFLOW_NATS_CERT": tf.ClientCert, "TRACEFLOW_NATS_KEY": tf.ClientKey}, ""},
		{"CA not given", map[string]string{"TRACEFLOW_NATS": secure.URL(), "TRACEFLOW_NATS_CREDS": creds}, "the server's certificate is not signed by a trusted CA"},
		{"no client certificate", map[string]string{"TRACEFLOW_NATS": secure.URL(), "TRACEFLOW_NATS_CREDS": creds, "TRACEFLOW_NATS_CA": tf.CA}, "the server wants a client certificate"},
		{"creds not given", map[string]string{"TRACEFLOW_NATS": secure.URL(), "TRACEFLOW_NATS_CA": tf.CA,
			"TRACEFLOW_NATS_CERT": tf.ClientCert, "TRACEFLOW_NATS_KEY": tf.ClientKey}, "authorization refused"},
		{"creds unreadable", map[string]string{"TRACEFLOW_NATS": secure.URL(), "TRACEFLOW_NATS_CREDS": dir, "TRACEFLOW_NATS_CA": tf.CA}, "nats credentials " + dir + ": is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"TRACEFLOW_NATS", "TRACEFLOW_NATS_CREDS", "TRACEFLOW_NATS_CA", "TRACEFLOW_NATS_CERT", "TRACEFLOW_NATS_KEY"} {
				t.Setenv(k, tc.env[k])
			}
			out, err := runAgents(t)
			switch {
			case tc.want == "" && (err != nil || !strings.HasPrefix(out, "NAME")):
				t.Errorf("agents: %v, printed %q", err, out)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n")):
				t.Errorf("agents: %v, want one line with %q", err, tc.want)
			case err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), seed)):
				t.Errorf("agents: %v shows a secret", err)
			}
		})
	}
}
