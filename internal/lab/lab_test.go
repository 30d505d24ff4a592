package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
)

// Numbers of paths and the TTL of the destination, per topology: a check of
// `lab.sh describe` that needs no root.
var shapes = map[string]struct{ paths, lengths []int }{
	"line":     {paths: []int{1}, lengths: []int{3}},
	"diamond4": {paths: []int{4}, lengths: []int{4}},
	"unequal":  {paths: []int{2}, lengths: []int{4, 5}},
	"nested":   {paths: []int{4}, lengths: []int{5}},
	"diamond8": {paths: []int{8}, lengths: []int{4}},
}

func TestDescribe(t *testing.T) {
	names, err := Topologies()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"line", "diamond4", "unequal", "nested", "diamond8"}
	if !slices.Equal(names, want) {
		t.Fatalf("lab.sh list: topologies %v, want %v", names, want)
	}
	for _, topo := range names {
		paths, err := Describe(topo)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != shapes[topo].paths[0] {
			t.Errorf("%s: %d paths, want %d: %v", topo, len(paths), shapes[topo].paths[0], paths)
		}
		seen := map[string]bool{}
		var lengths []int
		for _, p := range paths {
			key := strings.Join(p, " ")
			if seen[key] {
				t.Errorf("%s: path %q twice", topo, key)
			}
			seen[key] = true
			if p[0] != "10.0.0.1" || p[len(p)-1] != Destination {
				t.Errorf("%s: path %q does not run from r1 (10.0.0.1) to %s", topo, key, Destination)
			}
			for _, a := range p {
				if _, err := netip.ParseAddr(a); err != nil {
					t.Errorf("%s: path %q: %v", topo, key, err)
				}
			}
			if !slices.Contains(lengths, len(p)) {
				lengths = append(lengths, len(p))
			}
		}
		slices.Sort(lengths)
		if !slices.Equal(lengths, shapes[topo].lengths) {
			t.Errorf("%s: path lengths %v, want %v", topo, lengths, shapes[topo].lengths)
		}
	}
	if _, err := Describe("nosuch"); err == nil {
		t.Error("describe of an unknown topology did not fail")
	}
}

// TestDescribe6 checks that `lab.sh describe -6` gives the paths of
// `describe` in IPv6: 10.S.B.H is fd00:S:B::H, the destination Destination6.
func TestDescribe6(t *testing.T) {
	for topo := range shapes {
		v4, err := Describe(topo)
		if err != nil {
			t.Fatal(err)
		}
		v6, err := Describe6(topo)
		if err != nil {
			t.Fatal(err)
		}
		if len(v6) != len(v4) {
			t.Fatalf("%s: %d IPv6 paths, %d IPv4 paths", topo, len(v6), len(v4))
		}
		for i, p := range v4 {
			var want []string
			for _, a := range p {
				if a == Destination {
					want = append(want, Destination6)
					continue
				}
				var s, b, h int
				if _, err := fmt.Sscanf(a, "10.%d.%d.%d", &s, &b, &h); err != nil {
					t.Fatalf("%s: hop %s: %v", topo, a, err)
				}
				want = append(want, netip.MustParseAddr(fmt.Sprintf("fd00:%d:%d::%d", s, b, h)).String())
			}
			if !slices.Equal(v6[i], want) {
				t.Errorf("%s: IPv6 path %q, want %q", topo, v6[i], want)
			}
		}
	}
}

func TestDown(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	l := Up(t, "line")
	for i := range 2 { // idempotent
		if err := l.Down(); err != nil {
			t.Fatalf("down #%d: %v", i+1, err)
		}
	}
	if left, err := namespaces(l.Prefix); err != nil || len(left) > 0 {
		t.Fatalf("after down: namespaces %v (%v)", left, err)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), l.Prefix) {
		t.Fatalf("ip netns list still names %s:\n%s", l.Prefix, out)
	}
}

// A failure half-way through `up` (here: a local prefix that collides with
// the prober's own route) removes what was built.
func TestUpFailureCleansUp(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	prefix := netnstest.Prefix("l")
	t.Cleanup(func() { _ = exec.Command("bash", script, "down", prefix).Run() })
	for _, c := range []struct{ topo, local string }{
		{"diamond4", "10.0.0.0/8"}, // fails after the namespaces exist
		{"nosuch", ""},
		{"line", "not-a-cidr"},
	} {
		cmd := exec.Command("bash", script, "up", c.topo, prefix)
		cmd.Env = append(os.Environ(), "LAB_LOCAL_PREFIX="+c.local)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("up %s with LAB_LOCAL_PREFIX=%q succeeded", c.topo, c.local)
		}
		if left, _ := namespaces(prefix); len(left) > 0 {
			t.Errorf("up %s with LAB_LOCAL_PREFIX=%q failed but left %v:\n%s", c.topo, c.local, left, out)
		}
	}
}

// Two `lab.sh up` of one prefix at once: one builds the lab, the other
// exits 17 and leaves that lab whole; so does a `lab.sh sink` after them.
func TestUpSamePrefix(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	prefix := netnstest.Prefix("l")
	t.Cleanup(func() { _ = exec.Command("bash", script, "down", prefix).Run() })
	codes := make([]int, 2)
	outs := make([][]byte, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			outs[i], codes[i] = runScript(t, script, "up", "line", prefix)
		})
	}
	wg.Wait()
	slices.Sort(codes)
	if !slices.Equal(codes, []int{0, exitTaken}) {
		t.Fatalf("exit statuses %v, want 0 and %d:\n%s\n%s", codes, exitTaken, outs[0], outs[1])
	}
	out, code := runScript(t, script, "sink", prefix)
	if code != exitTaken {
		t.Errorf("sink on a taken prefix: exit %d, want %d:\n%s", code, exitTaken, out)
	}
	want := []string{prefix + "-dst", prefix + "-prober", prefix + "-r1", prefix + "-r2"}
	if got, err := namespaces(prefix); err != nil || !slices.Equal(sorted(got), want) {
		t.Errorf("namespaces %v (%v), want the lab whole: %v", got, err, want)
	}
	if out, err := exec.Command("ip", "-n", prefix+"-prober", "-br", "addr", "show", "to-r1").CombinedOutput(); err != nil || !strings.Contains(string(out), ProberAddr+"/24") {
		t.Errorf("the prober after the second up: %v\n%s", err, out)
	}
}

// runScript runs lab.sh and returns its output and exit status.
func runScript(t *testing.T, script string, args ...string) ([]byte, int) {
	out, err := exec.Command("bash", append([]string{script}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Errorf("lab.sh %v: %v", args, err)
	return out, -1
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Up given a prefix that is taken builds its lab under another and leaves
// the namespace that took it alone.
func TestUpTakenPrefix(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	taken := netnstest.Prefix("l")
	if out, err := exec.Command("ip", "netns", "add", taken+"-prober").CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", taken+"-prober").Run() })
	var tried []string
	l := Up(t, "line", func(c *config) {
		c.newPrefix = func() string {
			p := taken
			if len(tried) > 0 {
				p = netnstest.Prefix("l")
			}
			tried = append(tried, p)
			return p
		}
	})
	if len(tried) != 2 || l.Prefix != tried[1] {
		t.Fatalf("prefixes tried %v, lab under %s: want the taken one, then a fresh one", tried, l.Prefix)
	}
	if _, _, err := l.Run("prober", "ip", "-br", "addr"); err != nil {
		t.Error(err)
	}
	if got, err := namespaces(taken); err != nil || !slices.Equal(got, []string{taken + "-prober"}) {
		t.Errorf("namespaces of the taken prefix: %v (%v), want its prober alone, untouched", got, err)
	}
}
