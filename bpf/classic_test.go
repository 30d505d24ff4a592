//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	cbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// filterCase is a frame as BPF_PROG_TEST_RUN takes it (Ethernet header
// first) and whether the filter for runMatch keeps it.
type filterCase struct {
	name string
	pkt  []byte
	keep bool
}

// corpus returns the crafted frames both filters are tested on: replies
// to this run's probes that must be kept and near misses that must be
// dropped, including cases at the edges of the classic program's loads.
func corpus() []filterCase {
	other := func(f func(s *probe.Spec)) probe.Spec {
		s := runSpec
		f(&s)
		return s
	}
	q := encodeProbe(runSpec, 3, 7)
	timeExceeded := reply(probe.ICMPTimeExceeded, probe.CodeTTLExceeded, q)
	ipv6 := make([]byte, 40+8+len(q))
	ipv6[0], ipv6[6], ipv6[7] = 6<<4, 58, 64
	ipv6[40] = 3
	copy(ipv6[48:], q)
	outerOpts := func(opts []byte, quote []byte) []byte {
		return eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, router, ourSrc, opts, icmp(probe.ICMPTimeExceeded, 0, quote, nil)))
	}
	quoted6 := withIPOptions(q, []byte{0x94, 4, 0, 0})
	quoted15 := withIPOptions(q, make([]byte, 40))

	return []filterCase{
		{"time exceeded", timeExceeded, true},
		{"port unreachable from the target", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, target, ourSrc, nil,
			icmp(probe.ICMPUnreachable, probe.CodePortUnreachable, q, nil))), true},
		{"host unreachable", reply(probe.ICMPUnreachable, 1, q), true},
		{"first path, TTL 1", reply(probe.ICMPTimeExceeded, 0, encodeProbe(runSpec, 1, 1)), true},
		{"last path, TTL 64", reply(probe.ICMPTimeExceeded, 0, encodeProbe(runSpec, 16, 64)), true},
		{"RFC 792 quote of 28 bytes", reply(probe.ICMPTimeExceeded, 0, q[:28]), true},
		{"quoted IHL 6 (router alert option)", reply(probe.ICMPTimeExceeded, 0, quoted6), true},
		{"quoted IHL 15 (40 bytes of options)", reply(probe.ICMPTimeExceeded, 0, quoted15), true},
		{"outer IHL 6", outerOpts([]byte{1, 1, 1, 0}, q), true},
		{"RFC 4884 MPLS extension", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, router, ourSrc, nil,
			icmp(probe.ICMPTimeExceeded, 0, q, mplsObject))), true},
		{"first fragment", edit(timeExceeded, func(b []byte) { b[14+6] = 0x20; fixIPChecksum(b[14:]) }), true},

		{"wrong tag (next run)", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.Tag++ }), 3, 7)), false},
		{"wrong tag (previous run)", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.Tag-- }), 3, 7)), false},
		{"other source", reply(11, 0, encodeProbe(other(func(s *probe.Spec) {
			s.Src = netip.MustParseAddr("192.0.2.11")
		}), 3, 7)), false},
		{"source port below range", reply(11, 0, encodeProbe(runSpec, 0, 7)), false},
		{"source port above range", reply(11, 0, encodeProbe(runSpec, 17, 7)), false},
		{"wrong destination port", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.DstPort++ }), 3, 7)), false},
		{"quoted TCP", reply(11, 0, edit(q, func(b []byte) { b[9] = unix.IPPROTO_TCP; fixIPChecksum(b) })), false},
		{"quoted IPv6 version", reply(11, 0, edit(q, func(b []byte) { b[0] = 6<<4 | 5 })), false},
		{"quoted IHL 4", reply(11, 0, edit(q, func(b []byte) { b[0] = 4<<4 | 4; fixIPChecksum(b) })), false},
		{"ICMP echo reply", reply(probe.ICMPEchoReply, 0, q), false},
		{"ICMP redirect", reply(5, 1, q), false},
		{"UDP packet carrying the quote", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_UDP, router, ourSrc, nil,
			append([]byte{0x82, 0x9a, 0x82, 0x9a, 0, 8 + probe.Len, 0, 0}, q...))), false},
		{"our own outgoing probe", eth(unix.ETH_P_IP, q), false},
		{"truncated in the quoted UDP ports", timeExceeded[:14+20+8+20+3], false},
		{"truncated in the quoted IP header", timeExceeded[:14+20+8+19], false},
		{"truncated in the ICMP header", timeExceeded[:14+20+4], false},
		{"IP header only", timeExceeded[:14+20], false},
		{"truncated in the IP header", timeExceeded[:14+19], false},
		{"Ethernet header only", timeExceeded[:14], false},
		{"quoted IHL 6, ports cut off", reply(11, 0, quoted6[:24+3]), false},
		{"IPv6 ethertype, IPv4 bytes", eth(unix.ETH_P_IPV6, timeExceeded[14:]), false},
		{"ICMPv6 time exceeded", eth(unix.ETH_P_IPV6, ipv6), false},
		{"ARP ethertype", eth(unix.ETH_P_ARP, timeExceeded[14:]), false},
		{"outer IHL 4", edit(timeExceeded, func(b []byte) { b[14] = 4<<4 | 4; fixIPChecksum(b[14:]) }), false},
		{"later fragment", edit(timeExceeded, func(b []byte) { b[14+7] = 1; fixIPChecksum(b[14:]) }), false},

		// The edges of the classic program's loads and tests.
		{"ports exactly at the end", timeExceeded[:14+20+8+20+4], true},
		{"outer IHL 15", outerOpts(make([]byte, 40), q), true},
		{"outer IHL 15, ports cut off", outerOpts(make([]byte, 40), q)[:14+60+8+20+3], false},
		{"quoted IHL 15, ports exactly at the end", reply(11, 0, quoted15[:60+4]), true},
		{"quoted IHL 15, ports cut off", reply(11, 0, quoted15[:60+3]), false},
		{"quoted IHL 6, short ICMP region", reply(11, 0, quoted6[:19]), false},
		{"later fragment, high offset bits", edit(timeExceeded, func(b []byte) { b[14+6] = 0x01; fixIPChecksum(b[14:]) }), false},
		{"don't fragment", edit(timeExceeded, func(b []byte) { b[14+6] = 0x40; fixIPChecksum(b[14:]) }), true},
		{"outer version 6, IPv4 ethertype", edit(timeExceeded, func(b []byte) { b[14] = 6<<4 | 5 }), false},
		{"tag low bits set (TTL)", reply(11, 0, edit(q, func(b []byte) { b[5] |= 0x3f; fixIPChecksum(b) })), true},
		{"ICMP type 3 code 13", reply(probe.ICMPUnreachable, 13, q), true},
		{"ICMP type 12", reply(12, 0, q), false},
		{"VLAN ethertype", eth(0x8100, timeExceeded[14:]), false},
	}
}

// forVM rewrites a classic program for x/net/bpf's VM run on an Ethernet
// frame: every load moves 14 bytes on and the ethertype stands in for
// skb->protocol, which the VM does not implement. The kernel runs the
// program as it is (TestClassicKernel).
func forVM(tb testing.TB, insns []cbpf.Instruction) *cbpf.VM {
	tb.Helper()
	const ethLen = 14
	out := make([]cbpf.Instruction, len(insns))
	for i, ins := range insns {
		switch ins := ins.(type) {
		case cbpf.LoadAbsolute:
			ins.Off += ethLen
			out[i] = ins
		case cbpf.LoadIndirect:
			ins.Off += ethLen
			out[i] = ins
		case cbpf.LoadMemShift:
			ins.Off += ethLen
			out[i] = ins
		case cbpf.LoadExtension:
			if ins.Num != cbpf.ExtProto {
				tb.Fatalf("instruction %d: cannot run extension %v in the VM", i, ins.Num)
			}
			out[i] = cbpf.LoadAbsolute{Off: 12, Size: 2}
		default:
			out[i] = ins
		}
	}
	vm, err := cbpf.NewVM(out)
	if err != nil {
		tb.Fatal(err)
	}
	return vm
}

// loadFilterIfAllowed is loadFilterOrSkip, but returns nil instead of
// skipping: the classic half of a test needs no privileges. It says in
// the log that the eBPF half is left out (testenv.SkipPart: under CI=true
// the test fails instead).
func loadFilterIfAllowed(tb testing.TB, m Match) *Filter {
	tb.Helper()
	f, err := LoadFilter(m)
	if errors.Is(err, os.ErrPermission) {
		testenv.SkipPart(tb, "not comparing with eBPF, which needs root or CAP_BPF: "+err.Error())
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

func loadClassic(tb testing.TB, m Match) *Classic {
	tb.Helper()
	c, err := LoadClassic(m)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// runVM returns the verdict of vm for an Ethernet frame.
func runVM(tb testing.TB, vm *cbpf.VM, frame []byte) uint32 {
	tb.Helper()
	n, err := vm.Run(frame)
	if err != nil {
		tb.Fatal(err)
	}
	return uint32(n)
}

// runEBPF returns the verdict of the eBPF filter f for an Ethernet frame,
// or ok=false if the kernel refused to run it: it does for frames too short
// to hold the header their ethertype announces, which the filter would drop.
func runEBPF(tb testing.TB, f *Filter, frame []byte) (ret uint32, ok bool) {
	tb.Helper()
	ret, _, err := f.prog.Test(frame)
	if err != nil && len(frame) < 14+40 && errors.Is(err, unix.EINVAL) {
		return 0, false
	}
	if err != nil {
		tb.Fatalf("test run of %d bytes: %v", len(frame), err)
	}
	return ret, true
}

// TestClassicCorpus runs the classic program in x/net/bpf's VM and the eBPF
// program in the kernel (BPF_PROG_TEST_RUN, with the privilege to load it)
// on every case: both must give the expected verdict, 0xffffffff (the
// whole packet) or 0.
//
// It does so for the filter of each protocol on its corpus: the UDP
// run's, then the TCP and ICMP runs' replies, direct ones included, and
// their near misses.
func TestClassicCorpus(t *testing.T) {
	if n := len(corpus()); n < 36 {
		t.Fatalf("%d cases, want TestFilter's 36 and more", n)
	}
	for _, pc := range corpora() {
		t.Run(pc.name, func(t *testing.T) {
			c := loadClassic(t, pc.m)
			vm := forVM(t, c.insns)
			f := loadFilterIfAllowed(t, pc.m)
			kept, ran, runnable := 0, 0, 0
			for _, tc := range pc.cases {
				want := uint32(0)
				if tc.keep {
					want = keepAll
					kept++
				}
				if got := runVM(t, vm, tc.pkt); got != want {
					t.Errorf("%s: classic returned %#x, want %#x", tc.name, got, want)
				}
				if f == nil {
					continue
				}
				if len(tc.pkt) >= 14+40 {
					runnable++ // the kernel test-runs any frame this long
				}
				got, ok := runEBPF(t, f, tc.pkt)
				if !ok {
					continue
				}
				ran++
				if got != want {
					t.Errorf("%s: eBPF returned %#x, want %#x", tc.name, got, want)
				}
			}
			if kept < 10 || len(pc.cases)-kept < 15 {
				t.Errorf("%d cases kept and %d dropped: too few", kept, len(pc.cases)-kept)
			}
			if f != nil && (ran < runnable || ran < len(pc.cases)/2) {
				t.Errorf("the kernel ran the eBPF program on %d of %d cases (%d of them long enough to run)", ran, len(pc.cases), runnable)
			}
		})
	}
}

// TestClassicMatch checks that other Match keys, at the ends of their
// ranges, reach the classic program as they reach the eBPF one.
func TestClassicMatch(t *testing.T) {
	for _, tc := range []struct {
		spec probe.Spec
		m    Match
	}{
		{
			probe.Spec{Src: netip.MustParseAddr("10.255.0.1"), BaseSrcPort: 65000, DstPort: 53, Paths: 535, Tag: probe.MaxTag},
			Match{Src: netip.MustParseAddr("::ffff:10.255.0.1"), SrcPortMin: 65001, SrcPortMax: 65535, DstPort: 53, Tag: probe.MaxTag},
		},
		{
			probe.Spec{Src: netip.MustParseAddr("255.255.255.254"), BaseSrcPort: 0, DstPort: 65535, Paths: 1, Tag: 1},
			Match{Src: netip.MustParseAddr("255.255.255.254"), SrcPortMin: 1, SrcPortMax: 1, DstPort: 65535, Tag: 1},
		},
	} {
		t.Run(tc.m.Src.String(), func(t *testing.T) {
			vm := forVM(t, loadClassic(t, tc.m).insns)
			f := loadFilterIfAllowed(t, tc.m)
			for _, p := range []struct {
				pathID, ttl int
				keep        bool
			}{{1, 1, true}, {tc.spec.Paths, 64, true}, {0, 1, false}, {tc.spec.Paths + 1, 1, false}} {
				if tc.spec.BaseSrcPort+uint16(p.pathID) == 0 && p.pathID != 0 {
					continue // wrapped around past 65535
				}
				s := tc.spec
				s.Epoch = runSpec.Epoch
				frame := reply(probe.ICMPTimeExceeded, 0, encodeProbe(s, p.pathID, p.ttl))
				got := runVM(t, vm, frame)
				if (got == keepAll) != p.keep || (got != keepAll && got != 0) {
					t.Errorf("path %d TTL %d: classic returned %#x, want keep=%v", p.pathID, p.ttl, got, p.keep)
				}
				if f == nil {
					continue
				}
				if e, _ := runEBPF(t, f, frame); e != got {
					t.Errorf("path %d TTL %d: eBPF returned %#x, classic %#x", p.pathID, p.ttl, e, got)
				}
			}
		})
	}
}

func TestLoadClassicInvalidMatch(t *testing.T) {
	for _, edit := range []func(m *Match){
		func(m *Match) { m.Src = netip.Addr{} },
		func(m *Match) { m.Src = netip.IPv6Unspecified() },
		func(m *Match) { m.SrcPortMax = m.SrcPortMin - 1 },
		func(m *Match) { m.Tag = probe.MaxTag + 1 },
	} {
		m := runMatch
		edit(&m)
		if c, err := LoadClassic(m); err == nil || !strings.HasPrefix(err.Error(), "bpf: load classic filter: invalid Match.") {
			t.Errorf("LoadClassic(%+v) = %v, %v; want an invalid Match error", m, c, err)
		}
		if a, kind, err := Load(m); err == nil || !strings.HasPrefix(err.Error(), "bpf: load filter: invalid Match.") {
			t.Errorf("Load(%+v) = %v, %q, %v; want an invalid Match error", m, a, kind, err)
		}
	}
}

func TestClassicAttach(t *testing.T) {
	c := loadClassic(t, runMatch)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := c.Attach(fd); err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("Attach(-1) = %v, want EBADF", err)
	}
	if c.FallbackReason() != nil {
		t.Errorf("FallbackReason() = %v for LoadClassic", c.FallbackReason())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Attach(fd); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Attach after Close = %v, want os.ErrClosed", err)
	}
}

func TestFallBack(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("bpf: load filter: %w", &ebpf.VerifierError{Cause: unix.EPERM}), true},
		{fmt.Errorf("bpf: load filter: %w", unix.EACCES), true},
		{fmt.Errorf("bpf: load filter: %w", unix.ENOSYS), true},
		{fmt.Errorf("bpf: load filter: %w", ebpf.ErrNotSupported), true},
		{fmt.Errorf("bpf: load filter: %w", unix.EOPNOTSUPP), true},
		{fmt.Errorf("bpf: load filter: %w", syscall.Errno(524)), true},
		{fmt.Errorf("bpf: load filter: %w", &ebpf.VerifierError{Cause: unix.EINVAL}), true},
		{loadError(&ebpf.VerifierError{Cause: unix.EACCES, Log: []string{"0: invalid"}}), true},
		{fmt.Errorf("bpf: load filter: %w", &ebpf.VerifierError{Cause: unix.ENOMEM}), false},
		{fmt.Errorf("bpf: load filter: %w", unix.EMFILE), false},
		{errors.New("bpf: load filter: invalid Match.Tag 0: want 1..1023"), false},
	} {
		if got := fallBack(tc.err); got != tc.want {
			t.Errorf("fallBack(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestLoad checks that Load prefers eBPF and falls back to the classic
// filter without the privilege to load eBPF: in this process when it lacks
// it, else on a thread without CAP_BPF and CAP_SYS_ADMIN.
func TestLoad(t *testing.T) {
	f, err := LoadFilter(runMatch)
	if errors.Is(err, os.ErrPermission) {
		testenv.SkipPart(t, "not checking that Load prefers eBPF, which needs root or CAP_BPF: "+err.Error())
		checkFallback(t, loadAndAttach())
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	a, kind, err := Load(runMatch)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, ok := a.(*Filter); !ok || kind != KindEBPF {
		t.Fatalf("Load with privileges = %T, %q; want *Filter, %q", a, kind, KindEBPF)
	}

	b, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled")
	if err != nil || strings.TrimSpace(string(b)) == "0" {
		testenv.SkipPart(t, "not checking the fallback: kernel.unprivileged_bpf_disabled=0 (or unknown), eBPF loads without privileges")
		return
	}
	done := make(chan loadResult)
	go func() {
		// The thread exits with this goroutine, its capabilities lost.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- loadResult{err: err}
			return
		}
		for _, c := range []int{unix.CAP_BPF, unix.CAP_SYS_ADMIN} {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- loadResult{err: err}
			return
		}
		done <- loadAndAttach()
	}()
	checkFallback(t, <-done)
}

type loadResult struct {
	a         Attacher
	kind      string
	err       error
	attachErr error
}

// loadAndAttach calls Load and attaches what it returns to a new socket.
func loadAndAttach() (r loadResult) {
	r.a, r.kind, r.err = Load(runMatch)
	if r.err != nil {
		return r
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		r.attachErr = err
		return r
	}
	r.attachErr = r.a.Attach(fd)
	unix.Close(fd)
	return r
}

// checkFallback checks that r is the classic filter, attached, with the
// eBPF permission error as the reason.
func checkFallback(t *testing.T, r loadResult) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.a.Close()
	c, ok := r.a.(*Classic)
	if !ok || r.kind != KindClassic {
		t.Fatalf("Load without CAP_BPF = %T, %q; want *Classic, %q", r.a, r.kind, KindClassic)
	}
	if !errors.Is(c.FallbackReason(), os.ErrPermission) {
		t.Errorf("FallbackReason() = %v, want a permission error", c.FallbackReason())
	}
	if r.attachErr != nil {
		t.Errorf("Attach without CAP_BPF: %v", r.attachErr)
	}
	t.Logf("fell back to %s: %v", r.kind, c.FallbackReason())
}

// vethLab is a network namespace of its own (netnstest, tag "b") holding
// a veth pair, cbtx and cbrx. Frames written on cbtx arrive on cbrx;
// nothing else is in the namespace.
type vethLab struct {
	ns     string
	tx, rx int // ifindexes
}

func newVethLab(t *testing.T) *vethLab {
	t.Helper()
	s := netnstest.New(t, "b", "bpf")
	l := &vethLab{ns: s.NS("bpf")}
	// No IPv6 (no router solicitations or MLD reports on the veth).
	_ = exec.Command("ip", "netns", "exec", l.ns, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").Run()
	s.NSIP("bpf", "link", "add", "cbtx", "type", "veth", "peer", "name", "cbrx")
	// cbrx has the corpus frames' destination address (eth()): they
	// arrive as PACKET_HOST.
	s.NSIP("bpf", "link", "set", "cbrx", "address", "02:00:00:00:00:01")
	s.NSIP("bpf", "link", "set", "cbtx", "address", "02:00:00:00:00:02")
	s.NSIP("bpf", "link", "set", "cbtx", "up")
	s.NSIP("bpf", "link", "set", "cbrx", "up")
	l.in(t, func() error {
		for _, x := range []struct {
			name  string
			index *int
		}{{"cbtx", &l.tx}, {"cbrx", &l.rx}} {
			ifi, err := net.InterfaceByName(x.name)
			if err != nil {
				return err
			}
			*x.index = ifi.Index
		}
		return nil
	})
	return l
}

// in runs fn on a thread in the namespace; the thread exits afterwards.
// Sockets fn opens stay in the namespace.
func (l *vethLab) in(t *testing.T, fn func() error) {
	t.Helper()
	netnstest.In(t, l.ns, fn)
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// TestClassicKernel has the kernel run the filters on real packets: the
// corpus frames are written on one end of a veth pair, and a receive
// socket as traceflow-fast opens it (AF_PACKET, SOCK_DGRAM, filter
// attached before bind) listens on the other end. It is bound to every
// protocol (ETH_P_ALL), so the filter's own protocol test decides about
// the IPv6 and ARP frames too. After each frame, a marker frame that the
// filter keeps shows whether the frame came through.
//
// It does so for the filter of each protocol on its corpus.
func TestClassicKernel(t *testing.T) {
	l := newVethLab(t)
	for _, pc := range corpora() {
		for _, kind := range []string{KindClassic, KindEBPF} {
			t.Run(pc.name+"/"+kind, func(t *testing.T) { kernelCorpus(t, l, kind, pc) })
		}
	}
}

// kernelCorpus has the kernel run the filter of kind for pc.m on pc's
// cases (TestClassicKernel).
func kernelCorpus(t *testing.T, l *vethLab, kind string, pc protoCorpus) {
	cases := pc.cases
	var a Attacher
	if kind == KindClassic {
		a = loadClassic(t, pc.m)
	} else {
		a = loadFilterOrSkip(t, pc.m)
	}
	var tx, rx int
	l.in(t, func() (err error) {
		if tx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if rx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := a.Attach(rx); err != nil {
			return err
		}
		// A packet sent over the veth pair arrives at once; the
		// timeout only ends a hang. 2 s ran out once while the whole
		// suite and other builds loaded the machine.
		if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
			return err
		}
		return unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.rx})
	})
	defer unix.Close(tx)
	defer unix.Close(rx)

	send := func(frame []byte) {
		t.Helper()
		to := &unix.SockaddrLinklayer{Ifindex: l.tx, Protocol: htons(binary.BigEndian.Uint16(frame[12:]))}
		if err := unix.Sendto(tx, frame, 0, to); err != nil {
			t.Fatalf("send %d bytes: %v", len(frame), err)
		}
	}
	buf := make([]byte, 1<<16)
	recv := func() []byte {
		t.Helper()
		n, _, err := unix.Recvfrom(rx, buf, 0)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		return buf[:n]
	}
	base := cases[0].pkt // time exceeded: kept
	if !cases[0].keep {
		t.Fatalf("the first case, %s, is not kept: it cannot be the marker", cases[0].name)
	}
	for i, tc := range cases {
		marker := edit(base, func(b []byte) {
			if binary.BigEndian.Uint16(b[12:]) == unix.ETH_P_IPV6 {
				// The low 16 bits of the flow label, which the
				// filter does not look at.
				binary.BigEndian.PutUint16(b[14+2:], 0xbe00+uint16(i))
				return
			}
			binary.BigEndian.PutUint16(b[14+4:], 0xbe00+uint16(i))
			fixIPChecksum(b[14:])
		})
		send(tc.pkt)
		send(marker)
		got := recv()
		kept := false
		if bytes.Equal(got, tc.pkt[14:]) && !bytes.Equal(got, marker[14:]) {
			kept = true
			got = recv()
		}
		if !bytes.Equal(got, marker[14:]) {
			t.Fatalf("%s: received % x, want the frame or the marker", tc.name, got)
		}
		if kept != tc.keep {
			t.Errorf("%s: kept=%v, want %v", tc.name, kept, tc.keep)
		}
	}
	// Nothing else came through.
	if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}); err != nil {
		t.Fatal(err)
	}
	if n, _, err := unix.Recvfrom(rx, buf, 0); err == nil {
		t.Errorf("unexpected packet after the corpus: % x", buf[:n])
	}
}

// FuzzFilterEquivalence checks that the classic program (in x/net/bpf's
// VM) and the eBPF program (in the kernel) give the same verdict on any
// frame, for the filter of each protocol: mutations of the corpora, whose
// valid replies the filters keep.
func FuzzFilterEquivalence(f *testing.F) {
	type pair struct {
		name string
		vm   *cbpf.VM
		prog *Filter
	}
	var pairs []pair
	for _, pc := range corpora() {
		for _, tc := range pc.cases {
			f.Add(tc.pkt)
		}
		pairs = append(pairs, pair{pc.name, forVM(f, loadClassic(f, pc.m).insns), loadFilterOrSkip(f, pc.m)})
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 1500 {
			// BPF_PROG_TEST_RUN takes at most a page; an Ethernet
			// MTU is plenty for an ICMP error.
			frame = frame[:1500]
		}
		for _, p := range pairs {
			c := runVM(t, p.vm, frame)
			if c != 0 && c != keepAll {
				t.Fatalf("%s: classic returned %#x: want 0 or %#x", p.name, c, uint32(keepAll))
			}
			e, ok := runEBPF(t, p.prog, frame)
			if !ok {
				// The kernel would not run a frame this short;
				// the classic program must drop it.
				if c != 0 {
					t.Fatalf("%s: classic kept a %d-byte frame the kernel would not test-run: % x", p.name, len(frame), frame)
				}
				continue
			}
			if c != e {
				t.Fatalf("%s: classic returned %#x, eBPF %#x for\n% x", p.name, c, e, frame)
			}
		}
	})
}
