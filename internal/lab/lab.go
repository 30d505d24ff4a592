// Package lab builds multipath labs of real Linux routers in network
// namespaces for integration tests, using scripts/lab.sh.
//
// A lab is a set of namespaces named PREFIX-prober, PREFIX-r1, ...,
// PREFIX-dst joined by veth pairs. In every topology the prober is
// [ProberAddr] on its link to r1 (10.0.0.1), the destination namespace holds
// [Destination], and every router routes 10.99.0.0/20 towards it. Routers
// hash flows on the UDP 5-tuple (fib_multipath_hash_policy=1) with a distinct
// seed each, do not rate-limit ICMP, and answer TTL-exceeded from the address
// of the interface the probe came in by (icmp_errors_use_inbound_ifaddr=1),
// so the hop addresses of every path are known in advance:
// [Lab.ExpectedPaths]. `scripts/lab.sh list` names the topologies.
//
// That hash reads no ICMP echo identifier, so load balancers (routers with
// more than one next hop) also balance ICMP and ICMPv6 echo requests per
// flow, as routers hashing the ICMP header do: nftables marks each with a
// hash of its addresses and identifier, seeded per router, and the mark
// picks the next hop (ip rule fwmark). Echo requests of one identifier take
// one path, and the identifiers spread over the same paths as UDP flows.
//
// Every lab is dual-stack: each link has an IPv6 /64 mirroring its IPv4 /24
// (10.S.B.0/24 is fd00:S:B::/64, with the same host numbers), the prober is
// [ProberAddr6], the destination also holds [Destination6], and routers
// forward IPv6 with the same L4 multipath hash (the IPv4 hash seed seeds it
// too), no ICMPv6 rate limit, and DAD off. Linux routers answer ICMPv6 errors
// from an address of the interface the probe came in by, as they answer
// over IPv4: [Lab.ExpectedPaths6] are the same paths in IPv6.
//
//	func TestTrace(t *testing.T) {
//		l := lab.Up(t, "diamond4")
//		out, _, err := l.Run("prober", "traceflow-fast", lab.Destination)
//		...
//	}
package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// Destination is the address of the destination namespace in every topology.
const Destination = "10.99.0.1"

// ProberAddr is the prober's address on its link to r1 (r1 is 10.0.0.1).
const ProberAddr = "10.0.0.2"

// DestinationPrefix is routed towards the destination by every router.
const DestinationPrefix = "10.99.0.0/20"

// Destination6 is the IPv6 address of the destination namespace in every
// topology.
const Destination6 = "fd00:99::1"

// ProberAddr6 is the prober's IPv6 address on its link to r1 (r1 is
// fd00::1).
const ProberAddr6 = "fd00::2"

// DestinationPrefix6 is routed towards the destination by every router.
const DestinationPrefix6 = "fd00:99::/64"

// upTimeout bounds one `lab.sh up` (it takes about 0.1 s for diamond4).
const upTimeout = 60 * time.Second

// Lab is one running lab. Up builds it and removes it when the test ends.
type Lab struct {
	Prefix   string // namespace names are Prefix + "-" + node
	Topology string
	// LocalPrefix is the CIDR the destination answers on every address of
	// (WithLocalPrefix), or "".
	LocalPrefix string

	script string
	paths  [][]string
	paths6 [][]string
}

// Option configures Up.
type Option func(*config)

type config struct {
	localPrefix string
	newPrefix   func() string // the prefixes to try, in turn
}

// WithLocalPrefix makes the destination answer every address of cidr
// (`ip route add local CIDR dev lo` in PREFIX-dst) and makes the prober and
// every router route cidr towards it, for tests with many destinations.
// 10.99.0.0/20 (which holds Destination) is always routed. cidr may be IPv6:
// the destination then answers for its addresses from fd00:98::2, its
// address on the link the probes come in by (Linux answers ICMPv6 errors
// about an address it has only through a local route from there).
func WithLocalPrefix(cidr string) Option {
	return func(c *config) { c.localPrefix = cidr }
}

// RequireRoot skips the test unless it runs as root on a machine with ip
// (iproute2) and nft (nftables). With CI=true in the environment it fails the
// test instead (testenv.Skip): a lab test that always skips in CI tests
// nothing.
func RequireRoot(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (euid 0)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" in PATH")
		}
	}
	if len(missing) > 0 {
		testenv.Skip(t, "network lab needs "+strings.Join(missing, ", "))
	}
}

// Up builds the named topology with scripts/lab.sh under a prefix of its
// own, netnstest.Prefix("l"): "tfx" + the test process's PID + "l" + 6
// random hex digits, and returns once the prober reaches Destination.
// lab.sh claims a prefix by creating its first namespace, which fails if
// the name exists: should the prefix be taken after all (a PID reused
// since a killed run left its labs), Up tries a fresh one. Labs that test
// processes now gone left behind are removed first (netnstest.Sweep). The
// lab is removed when the test and its subtests end, pass or fail; on
// failure the routes and addresses of every namespace are logged first.
func Up(t testing.TB, topology string, opts ...Option) *Lab {
	t.Helper()
	RequireRoot(t)
	cfg := config{newPrefix: func() string { return netnstest.Prefix("l") }}
	for _, o := range opts {
		o(&cfg)
	}
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	paths, err := describe(script, topology)
	if err != nil {
		t.Fatal(err)
	}
	paths6, err := describe(script, "-6", topology)
	if err != nil {
		t.Fatal(err)
	}
	sweep()
	l := &Lab{Topology: topology, LocalPrefix: cfg.localPrefix, script: script, paths: paths, paths6: paths6}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		l.Prefix = cfg.newPrefix()
		taken, err := l.up()
		if taken && attempt < maxAttempts {
			t.Logf("lab prefix %s is taken: trying another", l.Prefix)
			continue
		}
		if !taken {
			// Even a half-built lab goes away (lab.sh removes it unless it
			// was killed).
			t.Cleanup(func() {
				if t.Failed() {
					l.dump(t)
				}
				if err := l.Down(); err != nil {
					t.Errorf("lab %s: %v", l.Prefix, err)
				}
			})
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	t.Logf("lab %s (%s) up in %v", l.Prefix, topology, time.Since(start).Round(time.Millisecond))
	return l
}

// maxAttempts bounds the prefixes Up tries.
const maxAttempts = 3

// exitTaken is the exit status of `lab.sh up` and `lab.sh sink` when
// namespaces of the prefix exist already: they then built and removed
// nothing.
const exitTaken = 17

// up runs `lab.sh up` for l. taken says that the prefix was taken: nothing
// was built.
func (l *Lab) up() (taken bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", l.script, "up", l.Topology, l.Prefix)
	// Set it even when empty: an inherited LAB_LOCAL_PREFIX must not leak in.
	cmd.Env = append(os.Environ(), "LAB_LOCAL_PREFIX="+l.LocalPrefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		taken = errors.As(err, &ee) && ee.ExitCode() == exitTaken
		return taken, fmt.Errorf("lab.sh up %s %s: %w\n%s", l.Topology, l.Prefix, err, stderr.String())
	}
	return false, nil
}

// Down removes every namespace of the lab. It is idempotent; Up's cleanup
// calls it, tests need not.
func (l *Lab) Down() error {
	out, err := exec.Command("bash", l.script, "down", l.Prefix).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab.sh down %s: %w\n%s", l.Prefix, err, out)
	}
	left, err := namespaces(l.Prefix)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("lab.sh down %s left namespaces %v", l.Prefix, left)
	}
	return nil
}

// NS returns the namespace name of a node: "prober" -> PREFIX-prober.
// A name that already carries the prefix is returned as it is.
func (l *Lab) NS(name string) string {
	if strings.HasPrefix(name, l.Prefix+"-") {
		return name
	}
	return l.Prefix + "-" + name
}

// Command returns `ip netns exec PREFIX-ns name args...`.
func (l *Lab) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(ns), name}, args...)...)
}

// Run runs name in namespace ns (a node name such as "prober") and returns
// its output.
func (l *Lab) Run(ns, name string, args ...string) (stdout, stderr string, err error) {
	cmd := l.Command(context.Background(), ns, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), e.String(), fmt.Errorf("%s in %s: %w", name, l.NS(ns), err)
	}
	return o.String(), e.String(), nil
}

// ExpectedPaths returns the distinct paths of the topology as `lab.sh
// describe` prints them: per path, the addresses that answer TTL 1, 2, ...
// up to and including Destination.
func (l *Lab) ExpectedPaths() [][]string { return clonePaths(l.paths) }

// ExpectedPaths6 returns the distinct paths of the topology over IPv6 as
// `lab.sh describe -6` prints them: per path, the IPv6 addresses that answer
// hop limit 1, 2, ... up to and including Destination6.
func (l *Lab) ExpectedPaths6() [][]string { return clonePaths(l.paths6) }

func clonePaths(paths [][]string) [][]string {
	out := make([][]string, len(paths))
	for i, p := range paths {
		out[i] = append([]string(nil), p...)
	}
	return out
}

// Describe returns the expected distinct paths of a topology (see
// Lab.ExpectedPaths). It needs no privileges.
func Describe(topology string) ([][]string, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	return describe(script, topology)
}

// Describe6 returns the expected distinct paths of a topology over IPv6 (see
// Lab.ExpectedPaths6). It needs no privileges.
func Describe6(topology string) ([][]string, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	return describe(script, "-6", topology)
}

// Topologies returns the names `lab.sh list` prints.
func Topologies() ([]string, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("bash", script, "list").Output()
	if err != nil {
		return nil, fmt.Errorf("lab.sh list: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Script returns the path of scripts/lab.sh in the module that contains the
// working directory (go test runs in the package directory).
func Script() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			script := filepath.Join(dir, "scripts", "lab.sh")
			if _, err := os.Stat(script); err != nil {
				return "", fmt.Errorf("lab: %w", err)
			}
			return script, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lab: no go.mod above the working directory")
		}
		dir = parent
	}
}

// describe runs `lab.sh describe ARGS...` (ARGS: [-6] TOPOLOGY).
func describe(script string, args ...string) ([][]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("bash", append([]string{script, "describe"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	what := strings.Join(args, " ")
	if err != nil {
		return nil, fmt.Errorf("lab.sh describe %s: %w\n%s", what, err, stderr.String())
	}
	var paths [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			paths = append(paths, f)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("lab.sh describe %s: no paths", what)
	}
	return paths, nil
}

// namespaces lists the namespaces named prefix-*.
func namespaces(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// dump logs the addresses and routes of every namespace of the lab.
func (l *Lab) dump(t testing.TB) {
	names, err := namespaces(l.Prefix)
	if err != nil {
		t.Log(err)
		return
	}
	var b strings.Builder
	for _, ns := range names {
		fmt.Fprintf(&b, "== %s\n", ns)
		for _, args := range [][]string{{"-br", "address"}, {"route"}, {"-6", "route"}} {
			out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
			b.Write(out)
			if err != nil {
				fmt.Fprintf(&b, "(ip %s: %v)\n", strings.Join(args, " "), err)
			}
		}
	}
	t.Logf("lab %s (%s) at failure:\n%s", l.Prefix, l.Topology, b.String())
}
