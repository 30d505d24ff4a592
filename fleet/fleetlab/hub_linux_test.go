package fleetlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/natstest"
	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
	"github.com/traceflow-fast/traceflow-fast/internal/syncbuf"
)

// The NATS servers run in a namespace of their own, the hub, listening on
// ports 4222 to 4224 of every address it has there; their routes join them
// over its loopback. Each namespace that reaches them (the client's, the
// probers of the labs) has a link of its own to the hub: link k is
// 172.31.k.0/24, the hub being 172.31.k.1 and the other end 172.31.k.2.
const (
	nodes      = 3
	clientPort = 4222
	routePort  = 6222
)

// users of docs/nats-server.conf.
var users = []string{"east", "west", "ops", "admin"}

type hub struct {
	set       *netnstest.Set
	tls       *natstest.TLSFiles
	passwords map[string]string
	servers   map[string]*proc // by server name
	links     int
}

// proc is a process of the test, its standard error kept.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer = syncbuf.Buffer

// start starts cmd, and kills it when the test ends.
func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill ends the process as a crash would (SIGKILL) and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// newHub makes the hub and the client's namespace, certificates for the
// hub's addresses and a password per user, and starts the servers.
func newHub(t *testing.T, natsServer string) *hub {
	t.Helper()
	h := &hub{set: netnstest.New(t, "f", "hub", "client"), passwords: map[string]string{}, servers: map[string]*proc{}}
	var ips []net.IP
	for k := range 3 {
		ips = append(ips, net.IPv4(172, 31, byte(k), 1))
	}
	var err error
	if h.tls, err = natstest.NewTLS(t.TempDir(), ips...); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		var b [12]byte
		rand.Read(b[:])
		h.passwords[u] = u + "-" + hex.EncodeToString(b[:])
	}
	h.link(t, h.set.NS("client"))
	h.startServers(t, natsServer)
	return h
}

// link joins namespace ns to the hub and returns the hub's address there.
func (h *hub) link(t *testing.T, ns string) string {
	t.Helper()
	k := h.links
	h.links++
	hubIf := fmt.Sprintf("to-%d", k)
	h.set.IP("-n", h.set.NS("hub"), "link", "add", hubIf, "type", "veth", "peer", "name", "nats", "netns", ns)
	h.set.NSIP("hub", "addr", "add", fmt.Sprintf("172.31.%d.1/24", k), "dev", hubIf)
	h.set.NSIP("hub", "link", "set", hubIf, "up")
	h.set.IP("-n", ns, "addr", "add", fmt.Sprintf("172.31.%d.2/24", k), "dev", "nats")
	h.set.IP("-n", ns, "link", "set", "nats", "up")
	return fmt.Sprintf("172.31.%d.1", k)
}

// startServers starts the 3 nodes, each configured by a copy of
// docs/nats-server.conf with a store directory of its own, and flags.
func (h *hub) startServers(t *testing.T, natsServer string) {
	t.Helper()
	script, err := lab.Script()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(script)), "docs", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	const store = "store_dir: /var/lib/traceflow-fast/nats"
	if !bytes.Contains(docs, []byte(store)) {
		t.Fatalf("docs/nats-server.conf has no %q", store)
	}
	var routes []string
	for i := range nodes {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePort+i))
	}
	env := os.Environ()
	for u, pw := range h.passwords {
		env = append(env, "TRACEFLOW_"+strings.ToUpper(u)+"_PASSWORD="+pw)
	}
	for i := range nodes {
		name, dir := fmt.Sprintf("n%d", i+1), t.TempDir()
		conf := filepath.Join(dir, "nats-server.conf")
		if err := os.WriteFile(conf, bytes.Replace(docs, []byte(store), fmt.Appendf(nil, "store_dir: %q", dir), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", h.set.NS("hub"), natsServer, "-c", conf, "-n", name,
			"-a", "0.0.0.0", "-p", fmt.Sprint(clientPort+i), "-js",
			"--cluster", routes[i], "--cluster_name", "traceflow-lab", "--routes", strings.Join(routes, ","),
			"--no_advertise=true", "--tls", "--tlscert", h.tls.Cert, "--tlskey", h.tls.Key)
		cmd.Env = env
		h.servers[name] = start(t, cmd)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range h.servers {
				t.Logf("nats-server %s:\n%s", name, tail(p.stderr.String(), 30))
			}
		}
	})
}

// urls are the servers' URLs at hub address addr, for user.
func (h *hub) urls(user, password, addr string) string {
	var out []string
	for i := range nodes {
		out = append(out, fmt.Sprintf("nats://%s:%s@%s:%d", user, password, addr, clientPort+i))
	}
	return strings.Join(out, ",")
}

// connect connects user from the client's namespace.
func (h *hub) connect(user string) (*fleetConn, error) {
	nc, err := fleet.Connect(fleet.ConnOptions{
		URLs: h.urls(user, h.passwords[user], "172.31.0.1"), CA: h.tls.CA, Name: user,
		Dialer: nsDialer("/run/netns/" + h.set.NS("client")),
	})
	if err != nil {
		return nil, err
	}
	return newFleetConn(nc)
}

// nsDialer dials from a network namespace: each connection's socket is
// made by a thread that joined it (and never runs anything else).
type nsDialer string

func (ns nsDialer) Dial(network, address string) (net.Conn, error) {
	f, err := os.Open(string(ns))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
