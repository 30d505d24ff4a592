package netnstest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Hung is how long the helpers of this file wait for what should take
// microseconds before they fail the test as hung: long enough that only a
// test that would never finish reaches it, on a machine however loaded.
const Hung = 60 * time.Second

// InWithin is In for a call that might block: it fails the test as hung
// when fn has not returned after limit. fn's thread is then left behind,
// still in the namespace, until the test binary exits.
func InWithin(t testing.TB, ns string, limit time.Duration, fn func() error) {
	t.Helper()
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		defer f.Close()
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-timer.C:
		t.Fatalf("hung: still running in %s after %v", ns, limit)
	}
}

// AddAddr6 adds the IPv6 address cidr to dev in namespace name without
// duplicate address detection, and waits until the kernel has made it
// local. The kernel adds the address and its prefix route at once, but its
// local route (what delivers packets to the address) only when the
// address's DAD work has run on a workqueue, skipped or not: on a loaded
// machine, packets sent to the address before then are not delivered.
func (s *Set) AddAddr6(name, dev, cidr string) {
	s.t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is6() {
		s.t.Fatalf("netnstest: %q is not an IPv6 address with a prefix length", cidr)
	}
	s.NSIP(name, "addr", "add", cidr, "dev", dev, "nodad")
	s.WaitLocal6(name, p.Addr())
}

// WaitLocal6 waits until namespace name has its local route to the IPv6
// address a (see AddAddr6), polling the route table; it fails the test as
// hung after the limit Hung.
func (s *Set) WaitLocal6(name string, a netip.Addr) {
	s.t.Helper()
	ns := s.NS(name)
	for deadline := time.Now().Add(Hung); ; {
		out, err := exec.Command("ip", "-n", ns, "-6", "route", "show", "table", "local", a.String()).CombinedOutput()
		if err != nil {
			s.t.Fatalf("ip route show table local in %s: %v: %s", ns, err, out)
		}
		if strings.HasPrefix(string(out), "local ") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("hung: %s has no local route to %s after %v", ns, a, Hung)
		}
		time.Sleep(10 * time.Millisecond) // paces the polling only
	}
}
