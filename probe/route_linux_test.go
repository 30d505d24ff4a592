package probe_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// The lab: network namespaces named PREFIX-x, PREFIX unique to this test
// process ("tfx" + pid + "r" + random hex), removed by t.Cleanup. Packets
// are only ever sent inside them: socket-creating code runs on a thread
// that setns'd into a lab namespace (labIn), and sockets stay in the
// namespace they were created in.

// labNeedRoot skips the test when it cannot build namespaces, and fails it
// when CI=true, where a skip would hide that nothing was tested.
func labNeedRoot(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (CAP_NET_ADMIN, CAP_NET_RAW) to build network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2's ip: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

type lab struct {
	t      testing.TB
	prefix string
}

// labStale matches the namespaces of these tests and of capture's.
var labStale = regexp.MustCompile(`^tfx([0-9]+)[rc][0-9a-f]+-`)

// newLab creates one namespace per name, with lo up and ICMP rate limits
// off, and removes them when the test ends, whatever its outcome.
func newLab(t testing.TB, names ...string) *lab {
	t.Helper()
	labNeedRoot(t)
	labSweep(t)
	var r [3]byte
	_, _ = rand.Read(r[:])
	l := &lab{t: t, prefix: fmt.Sprintf("tfx%dr%s", os.Getpid(), hex.EncodeToString(r[:]))}
	for _, n := range names {
		ns := l.ns(n)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		l.ip("netns", "add", ns)
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.exec(n, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000",
			"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	}
	return l
}

// labSweep removes namespaces left by test processes that no longer exist
// (killed by a timeout before their cleanups ran).
func labSweep(t testing.TB) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		m := labStale.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() || unix.Kill(pid, 0) == nil {
			continue
		}
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

func (l *lab) ns(name string) string { return l.prefix + "-" + name }

func (l *lab) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsip runs ip inside namespace name.
func (l *lab) nsip(name string, args ...string) string {
	l.t.Helper()
	return l.ip(append([]string{"-n", l.ns(name)}, args...)...)
}

func (l *lab) exec(name string, cmd ...string) string {
	l.t.Helper()
	return l.ip(append([]string{"netns", "exec", l.ns(name)}, cmd...)...)
}

// veth joins namespaces a and b with a veth pair named ifa/ifb, with the
// given MACs and addresses (CIDR), both up.
func (l *lab) veth(a, ifa, maca, addra, b, ifb, macb, addrb string) {
	l.t.Helper()
	l.ip("link", "add", ifa, "netns", l.ns(a), "address", maca, "type", "veth",
		"peer", "name", ifb, "netns", l.ns(b), "address", macb)
	l.nsip(a, "addr", "add", addra, "dev", ifa)
	l.nsip(b, "addr", "add", addrb, "dev", ifb)
	l.nsip(a, "link", "set", ifa, "up")
	l.nsip(b, "link", "set", ifb, "up")
}

// labIn runs fn on a thread that has joined namespace name. The thread is
// never unlocked, so it exits with fn's goroutine and nothing else ever runs
// in the namespace; fn must create its sockets itself, not in goroutines.
func labIn(t testing.TB, l *lab, name string, fn func() error) {
	t.Helper()
	f, err := os.Open("/run/netns/" + l.ns(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", l.ns(name), err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// The line lab: a (prober) -- r (router) -- b (destination).
const (
	macA  = "02:74:66:00:01:01"
	macRA = "02:74:66:00:01:02"
	macRB = "02:74:66:00:02:01"
	macB  = "02:74:66:00:02:02"
)

var (
	addrA  = netip.MustParseAddr("10.77.1.1")
	addrRA = netip.MustParseAddr("10.77.1.2")
	addrRB = netip.MustParseAddr("10.77.2.1")
	addrB  = netip.MustParseAddr("10.77.2.2")
)

func newLineLab(t testing.TB) *lab {
	l := newLab(t, "a", "r", "b")
	l.veth("a", "va", macA, "10.77.1.1/24", "r", "ra", macRA, "10.77.1.2/24")
	l.veth("r", "rb", macRB, "10.77.2.1/24", "b", "vb", macB, "10.77.2.2/24")
	l.nsip("a", "route", "add", "default", "via", "10.77.1.2")
	l.nsip("b", "route", "add", "default", "via", "10.77.2.1")
	l.exec("r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return l
}

// neigh returns `ip neigh show ADDR dev DEV` in namespace name.
func (l *lab) neigh(name string, addr netip.Addr, dev string) string {
	l.t.Helper()
	return strings.TrimSpace(l.nsip(name, "neigh", "show", addr.String(), "dev", dev))
}

func TestLookupRoute(t *testing.T) {
	l := newLineLab(t)
	ifindex := func(name, dev string) int {
		var idx int
		labIn(t, l, name, func() error {
			ifi, err := net.InterfaceByName(dev)
			if err == nil {
				idx = ifi.Index
			}
			return err
		})
		return idx
	}
	va := ifindex("a", "va")
	lo := ifindex("a", "lo")
	l.nsip("a", "addr", "add", "10.77.9.1/32", "dev", "lo")
	l.exec("a", "sysctl", "-qw", "net.ipv4.conf.lo.accept_local=1")

	tests := []struct {
		name string
		dst  netip.Addr
		opt  probe.RouteOptions
		want probe.Route
	}{
		{"on-link", addrRA, probe.RouteOptions{},
			probe.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"via gateway", addrB, probe.RouteOptions{},
			probe.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"interface override", addrB, probe.RouteOptions{Interface: "va"},
			probe.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"source override", addrB, probe.RouteOptions{Source: netip.MustParseAddr("10.77.9.1")},
			probe.Route{Ifindex: va, IfName: "va", Src: netip.MustParseAddr("10.77.9.1"), NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"IPv4-mapped destination", netip.MustParseAddr("::ffff:10.77.2.2"), probe.RouteOptions{},
			probe.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"local address goes through lo", addrA, probe.RouteOptions{},
			probe.Route{Ifindex: lo, IfName: "lo", Src: addrA, NextHop: addrA, HWAddr: mac("00:00:00:00:00:00"), MTU: 65536}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The neighbour must not be cached: LookupRoute resolves it.
			l.nsip("a", "neigh", "flush", "dev", "va")
			if n := l.neigh("a", addrRA, "va"); n != "" && !strings.Contains(n, "FAILED") {
				t.Fatalf("neighbour cached before the lookup: %q", n)
			}
			var rt *probe.Route
			labIn(t, l, "a", func() (err error) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				rt, err = probe.LookupRoute(ctx, tt.dst, tt.opt)
				return err
			})
			if rt.Ifindex != tt.want.Ifindex || rt.IfName != tt.want.IfName || rt.Src != tt.want.Src ||
				rt.NextHop != tt.want.NextHop || rt.HWAddr.String() != tt.want.HWAddr.String() || rt.MTU != tt.want.MTU {
				t.Errorf("LookupRoute(%s, %+v)\n got %+v\nwant %+v", tt.dst, tt.opt, *rt, tt.want)
			}
			if tt.want.IfName == "va" {
				n := l.neigh("a", addrRA, "va")
				if !strings.Contains(n, macRA) || !regexp.MustCompile(`REACHABLE|STALE|DELAY|PROBE`).MatchString(n) {
					t.Errorf("neighbour after the lookup: %q; want %s resolved", n, macRA)
				}
			}
		})
	}
}

func mac(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func TestLookupRouteErrors(t *testing.T) {
	l := newLineLab(t)
	tests := []struct {
		name    string
		ns      string
		dst     string
		opt     probe.RouteOptions
		timeout time.Duration
		want    string
	}{
		{"no route", "r", "10.99.0.1", probe.RouteOptions{}, time.Second, "no route to 10.99.0.1"},
		{"unknown interface", "a", "10.77.2.2", probe.RouteOptions{Interface: "eth9"}, time.Second, "interface eth9 not found"},
		{"foreign source", "a", "10.77.2.2", probe.RouteOptions{Source: netip.MustParseAddr("1.2.3.4")}, time.Second,
			"source 1.2.3.4 is not an address of this host"},
		{"IPv6 destination", "a", "2001:db8::1", probe.RouteOptions{}, time.Second, "only IPv4"},
		{"silent neighbour", "a", "10.77.1.77", probe.RouteOptions{}, 300 * time.Millisecond,
			"no link-layer address for 10.77.1.77 on va"},
		{"interface down", "a", "10.77.1.5", probe.RouteOptions{Interface: "d0"}, time.Second, "interface d0 is down"},
		{"local without accept_local", "b", "10.77.2.2", probe.RouteOptions{}, time.Second,
			"needs sysctl net.ipv4.conf.lo.accept_local=1"},
		{"127/8 without route_localnet", "r", "127.0.0.9", probe.RouteOptions{}, time.Second,
			"needs sysctl net.ipv4.conf.lo.route_localnet=1"},
	}
	l.nsip("a", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	l.exec("r", "sysctl", "-qw", "net.ipv4.conf.lo.accept_local=1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			start := time.Now()
			labIn(t, l, tt.ns, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
				defer cancel()
				_, err = probe.LookupRoute(ctx, netip.MustParseAddr(tt.dst), tt.opt)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LookupRoute(%s, %+v) = %v; want an error containing %q", tt.dst, tt.opt, err, tt.want)
			}
			if d := time.Since(start); d > tt.timeout+time.Second {
				t.Errorf("took %v with a %v deadline", d, tt.timeout)
			}
			t.Logf("%v", err)
		})
	}
}

// TestLookupRouteNoDeadline checks that an unresolvable next hop does not
// block forever when the context has no deadline.
func TestLookupRouteNoDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for probe.ResolveTimeout")
	}
	l := newLineLab(t)
	var err error
	start := time.Now()
	labIn(t, l, "a", func() error {
		_, err = probe.LookupRoute(context.Background(), netip.MustParseAddr("10.77.1.78"), probe.RouteOptions{})
		return nil
	})
	if d := time.Since(start); err == nil || d < probe.ResolveTimeout || d > probe.ResolveTimeout+time.Second {
		t.Fatalf("LookupRoute = %v after %v; want a resolution error after %v", err, d, probe.ResolveTimeout)
	}
	if n := l.neigh("a", netip.MustParseAddr("10.77.1.78"), "va"); !strings.Contains(n, "FAILED") && !strings.Contains(n, "INCOMPLETE") {
		t.Errorf("neighbour %q; want the kernel to have tried (INCOMPLETE/FAILED)", n)
	}
}

// TestNeedCapNetRaw drops CAP_NET_RAW from one thread and checks that the
// sender reports a permission error the CLI can recognise.
func TestNeedCapNetRaw(t *testing.T) {
	labNeedRoot(t)
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its capabilities
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err = unix.Capget(&hdr, &data[0]); err != nil {
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_RAW
		if err = unix.Capset(&hdr, &data[0]); err != nil {
			return
		}
		var s *probe.Sender
		s, err = probe.NewSender(&probe.Route{Ifindex: 1, IfName: "lo"})
		if s != nil {
			s.Close()
			err = errors.New("NewSender succeeded without CAP_NET_RAW")
		}
	}()
	<-done
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "need CAP_NET_RAW") {
		t.Fatalf("NewSender without CAP_NET_RAW: %v; want a permission error naming CAP_NET_RAW", err)
	}
	t.Logf("%v", err)
}
