package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// NeedRoot skips the test when it cannot build namespaces, and fails it
// when CI=true, where a skip would hide that nothing was tested.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root (CAP_NET_ADMIN, CAP_NET_RAW) to build network namespaces")
	} else if _, err := exec.LookPath("ip"); err != nil {
		testenv.Skip(t, "needs iproute2's ip: "+err.Error())
	}
}

// Sweep removes the namespaces that tests made (named by [Prefix], or by
// internal/lab, which uses it) for test processes that no longer exist:
// killed by a timeout, say, before their cleanups ran. The namespaces of a
// process still running, this one or a test of another package running
// beside it, are left alone. New and lab.Up call it.
func Sweep() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if pid := Creator(e.Name()); pid != 0 && gone(pid) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

// gone says whether no process pid exists. A process of another user
// exists (EPERM) as much as one of ours.
func gone(pid int) bool {
	return pid != os.Getpid() && errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

// Set is a group of namespaces made by one call of New. Its methods call
// t.Fatal on failure, with the t given to New.
type Set struct {
	t      testing.TB
	prefix string
}

// New creates a namespace PREFIX-NAME for each name, with lo up, ICMP rate
// limits off and reverse-path filtering off, and removes them when the test
// ends, whatever its outcome. It calls NeedRoot and Sweep first. tag is one
// lowercase letter (see the package documentation).
func New(t testing.TB, tag string, names ...string) *Set {
	t.Helper()
	if !validTag(tag) {
		t.Fatalf("netnstest: tag %q is not one lowercase letter", tag)
	}
	NeedRoot(t)
	Sweep()
	s := &Set{t: t, prefix: Prefix(tag)}
	for _, n := range names {
		ns := s.NS(n)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		s.IP("netns", "add", ns)
		s.NSIP(n, "link", "set", "lo", "up")
		s.Exec(n, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000",
			"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	}
	return s
}

// Prefix returns the part of the names before "-NAME".
func (s *Set) Prefix() string { return s.prefix }

// NS returns the full name of namespace name.
func (s *Set) NS(name string) string { return s.prefix + "-" + name }

// IP runs ip with args and returns its output.
func (s *Set) IP(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NSIP runs ip inside namespace name (ip -n).
func (s *Set) NSIP(name string, args ...string) string {
	s.t.Helper()
	return s.IP(append([]string{"-n", s.NS(name)}, args...)...)
}

// Exec runs a command inside namespace name (ip netns exec).
func (s *Set) Exec(name string, cmd ...string) string {
	s.t.Helper()
	return s.IP(append([]string{"netns", "exec", s.NS(name)}, cmd...)...)
}

// Veth joins namespaces a and b with a veth pair named ifa/ifb, with the
// given MACs and addresses (CIDR), both up.
func (s *Set) Veth(a, ifa, maca, addra, b, ifb, macb, addrb string) {
	s.t.Helper()
	s.IP("link", "add", ifa, "netns", s.NS(a), "address", maca, "type", "veth",
		"peer", "name", ifb, "netns", s.NS(b), "address", macb)
	s.NSIP(a, "addr", "add", addra, "dev", ifa)
	s.NSIP(b, "addr", "add", addrb, "dev", ifb)
	s.NSIP(a, "link", "set", ifa, "up")
	s.NSIP(b, "link", "set", ifb, "up")
}

// In runs fn on a thread that has joined namespace ns (a full name, as NS
// returns) and calls t.Fatal if that fails or fn returns an error. The
// thread is never unlocked, so it exits with fn's goroutine and nothing
// else ever runs in the namespace. Sockets stay in the namespace they were
// created in: fn must create them itself, not in goroutines it starts, and
// may hand them to any goroutine afterwards.
func In(t testing.TB, ns string, fn func() error) {
	t.Helper()
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// In runs fn inside namespace name of s; see the function In.
func (s *Set) In(t testing.TB, name string, fn func() error) {
	t.Helper()
	In(t, s.NS(name), fn)
}

// WithoutCap runs fn on a new thread from whose effective set capability c
// (unix.CAP_*) has been dropped, and returns fn's error, or the error of
// dropping it. The thread is never unlocked: it dies with fn's goroutine,
// and its missing capability with it.
func WithoutCap(c int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[c/32].Effective &^= 1 << (c % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
