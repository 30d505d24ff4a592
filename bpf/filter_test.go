//go:build linux

package bpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

const keepAll = 0xffffffff

var (
	ourSrc  = netip.MustParseAddr("192.0.2.10")
	target  = netip.MustParseAddr("198.51.100.7")
	router  = netip.MustParseAddr("203.0.113.1")
	runSpec = probe.Spec{
		Src:         ourSrc,
		BaseSrcPort: 40000,
		DstPort:     33434,
		Paths:       16,
		Tag:         517,
		Epoch:       time.Unix(1700000000, 0),
	}
	runMatch = Match{
		Src:        runSpec.Src,
		SrcPortMin: runSpec.BaseSrcPort + 1,
		SrcPortMax: runSpec.BaseSrcPort + uint16(runSpec.Paths),
		DstPort:    runSpec.DstPort,
		Tag:        runSpec.Tag,
	}
)

// loadFilterOrSkip loads the filter for m, skipping the test without the
// privilege to do so, unless CI=true: CI must run these tests.
func loadFilterOrSkip(tb testing.TB, m Match) *Filter {
	tb.Helper()
	f, err := LoadFilter(m)
	if errors.Is(err, os.ErrPermission) {
		testenv.Skipf(tb, "loading eBPF needs root or CAP_BPF: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// encodeProbe returns the probe s sends on path pathID with TTL ttl.
func encodeProbe(s probe.Spec, pathID, ttl int) []byte {
	b := make([]byte, probe.MaxLen)
	return b[:s.Encode(b, target, pathID, ttl, s.Epoch.Add(1234*time.Microsecond))]
}

// ipv4 returns an IPv4 packet (RFC 791) with the given options (a multiple
// of 4 bytes) and a valid header checksum.
func ipv4(proto uint8, src, dst netip.Addr, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	b[0] = 4<<4 | uint8(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234) // identification
	b[8] = 63                                 // TTL
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	copy(b[hl:], payload)
	fixIPChecksum(b)
	return b
}

func fixIPChecksum(b []byte) {
	hl := int(b[0]&0x0f) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], probe.Checksum(b[:hl]))
}

// withIPOptions returns the IPv4 packet p with opts inserted as IP options.
func withIPOptions(p, opts []byte) []byte {
	hl := int(p[0]&0x0f) * 4
	b := append(append(append([]byte(nil), p[:hl]...), opts...), p[hl:]...)
	b[0] = 4<<4 | uint8((hl+len(opts))/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	fixIPChecksum(b)
	return b
}

// icmp returns an ICMP message (RFC 792) quoting quote. With ext, the quote
// is zero-padded to 128 bytes, its length goes in byte 5 and an RFC 4884
// extension structure holding ext follows.
func icmp(typ, code uint8, quote, ext []byte) []byte {
	b := make([]byte, 8, 8+128+4+len(ext))
	b[0], b[1] = typ, code
	b = append(b, quote...)
	if ext != nil {
		b = append(b, make([]byte, 128-len(quote))...)
		b[5] = 128 / 4
		eh := len(b)
		b = append(b, 2<<4, 0, 0, 0) // version 2, reserved, checksum
		b = append(b, ext...)
		binary.BigEndian.PutUint16(b[eh+2:], probe.Checksum(b[eh:]))
	}
	binary.BigEndian.PutUint16(b[2:], probe.Checksum(b))
	return b
}

// mplsObject is an RFC 4950 MPLS label stack object with one entry:
// label 16001, TC 0, bottom of stack, TTL 1.
var mplsObject = []byte{0, 8, 1, 1, 0x03, 0xe8, 0x11, 0x01}

// eth returns an Ethernet frame carrying payload, as BPF_PROG_TEST_RUN wants
// it; the program then sees offset 0 at payload, as on a SOCK_DGRAM socket.
func eth(ethertype uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], []byte{0x02, 0, 0, 0, 0, 1})  // destination
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 2}) // source
	binary.BigEndian.PutUint16(b[12:], ethertype)
	return append(b, payload...)
}

// reply returns the frame of an ICMP error from router to us.
func reply(typ, code uint8, quote []byte) []byte {
	return eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, router, ourSrc, nil, icmp(typ, code, quote, nil)))
}

// edit returns a copy of b changed by f.
func edit(b []byte, f func(b []byte)) []byte {
	b = append([]byte(nil), b...)
	f(b)
	return b
}

func TestFilter(t *testing.T) {
	f := loadFilterOrSkip(t, runMatch)
	tests := corpus() // shared with the classic filter's tests
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ret, _, err := f.prog.Test(tt.pkt)
			if err != nil && len(tt.pkt) < 14+20 && errors.Is(err, unix.EINVAL) {
				// Linux 6.x refuses to test-run an IPv4 frame
				// shorter than an IPv4 header; older kernels run
				// the program, which must drop it.
				t.Logf("kernel refused the run: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.keep {
				// A socket filter returns a snap length: anything below
				// the packet length would cut off ICMP extensions.
				if ret != keepAll || int(ret) < len(tt.pkt)-14 {
					t.Errorf("returned %#x, want %#x (keep the whole packet)", ret, uint32(keepAll))
				}
			} else if ret != 0 {
				t.Errorf("returned %#x, want 0 (drop)", ret)
			}
		})
	}
}

// TestFilterMatch checks that the load-time keys reach the program.
func TestFilterMatch(t *testing.T) {
	s := probe.Spec{
		Src:         netip.MustParseAddr("10.255.0.1"),
		BaseSrcPort: 65000,
		DstPort:     53,
		Paths:       535,
		Tag:         probe.MaxTag,
		Epoch:       runSpec.Epoch,
	}
	m := Match{
		Src:        netip.MustParseAddr("::ffff:10.255.0.1"), // 4in6 is unmapped
		SrcPortMin: 65001, SrcPortMax: 65535, DstPort: 53, Tag: probe.MaxTag,
	}
	f := loadFilterOrSkip(t, m)
	for _, tc := range []struct {
		pathID, ttl int
		keep        bool
	}{{1, 1, true}, {535, 64, true}, {0, 1, false}} {
		pkt := reply(probe.ICMPTimeExceeded, 0, encodeProbe(s, tc.pathID, tc.ttl))
		ret, _, err := f.prog.Test(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if got := ret == keepAll; got != tc.keep {
			t.Errorf("path %d TTL %d: returned %#x, want keep=%v", tc.pathID, tc.ttl, ret, tc.keep)
		}
	}
}

func TestLoadFilterInvalidMatch(t *testing.T) {
	tests := []struct {
		field string
		edit  func(m *Match)
	}{
		{"Match.Src", func(m *Match) { m.Src = netip.Addr{} }},
		{"Match.Src", func(m *Match) { m.Src = netip.IPv6Unspecified() }},
		{"Match.Proto", func(m *Match) { m.Src, m.Proto = netip.MustParseAddr("2001:db8::1"), probe.ProtoTCP }},
		{"Match.Src", func(m *Match) { m.Src = netip.IPv4Unspecified() }},
		{"Match.SrcPortMin", func(m *Match) { m.SrcPortMin = 0 }},
		{"Match.SrcPortMax", func(m *Match) { m.SrcPortMax = m.SrcPortMin - 1 }},
		{"Match.DstPort", func(m *Match) { m.DstPort = 0 }},
		{"Match.DstPort", func(m *Match) { m.Proto, m.DstPort = probe.ProtoTCP, 0 }},
		{"Match.Proto", func(m *Match) { m.Proto = probe.ProtoICMP + 1 }},
		{"Match.Tag", func(m *Match) { m.Tag = 0 }},
		{"Match.Tag", func(m *Match) { m.Tag = probe.MaxTag + 1 }},
	}
	for _, tt := range tests {
		m := runMatch
		tt.edit(&m)
		f, err := LoadFilter(m)
		if err == nil {
			f.Close()
			t.Errorf("LoadFilter(%+v) succeeded, want an error naming %s", m, tt.field)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "bpf: load filter: invalid "+tt.field+" ") {
			t.Errorf("LoadFilter(%+v) = %q, want it to name %s", m, msg, tt.field)
		}
	}
}

// TestSpecConstants checks that the match keys are read-only globals, which
// the verifier treats as known values (and prunes branches on).
func TestSpecConstants(t *testing.T) {
	spec, err := loadFilter()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{filterVarPROTO, filterVarSRC, filterVarSRC6, filterVarTAG, filterVarTAG_SHIFT,
		filterVarSPORT_MIN, filterVarSPORT_MAX, filterVarDPORT} {
		v, ok := spec.Variables[name]
		if !ok {
			t.Errorf("no variable %s", name)
			continue
		}
		if !v.Constant() {
			t.Errorf("variable %s is in %s, not a read-only section", name, v.SectionName)
		}
	}
	for _, name := range []string{filterProgTraceflowIcmp, filterProgTraceflowIcmp6} {
		if p := spec.Programs[name]; p == nil || p.Type != ebpf.SocketFilter {
			t.Errorf("program %s: want a socket filter, got %v", name, p)
		}
	}
}

// TestLoadFilterPermission checks that loading without CAP_BPF gives an
// error that callers can recognise with errors.Is(err, os.ErrPermission).
func TestLoadFilterPermission(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled")
	if err != nil {
		testenv.Skipf(t, "cannot tell whether unprivileged eBPF is allowed: %v", err)
	}
	if strings.TrimSpace(string(b)) == "0" {
		testenv.Skip(t, "kernel.unprivileged_bpf_disabled=0: socket filters load without privileges, no permission error to check")
	}
	// Let the library probe kernel features with privileges (if we have
	// them) first: a probe denied below must not be cached.
	if f, err := LoadFilter(runMatch); err == nil {
		f.Close()
	}

	done := make(chan error)
	go func() {
		// Capabilities are per thread. This goroutine never unlocks its
		// thread, so the thread exits with it and its dropped
		// capabilities never serve another goroutine.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		for _, c := range []int{unix.CAP_BPF, unix.CAP_SYS_ADMIN} {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		f, err := LoadFilter(runMatch)
		if err == nil {
			f.Close()
			err = errors.New("LoadFilter succeeded without CAP_BPF and CAP_SYS_ADMIN")
		}
		done <- err
	}()
	err = <-done
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("got %v, want an error satisfying errors.Is(err, os.ErrPermission)", err)
	}
	if !strings.HasPrefix(err.Error(), "bpf: load filter: ") {
		t.Errorf("error %q lacks the bpf: load filter: prefix", err)
	}
	t.Logf("without CAP_BPF: %v", err)
}

func TestLoadErrorVerifierRejection(t *testing.T) {
	rejected := loadError(&ebpf.VerifierError{Cause: unix.EACCES, Log: []string{
		"0: (61) r2 = *(u32 *)(r1 +160)", "invalid bpf_context access off=160 size=4",
	}})
	if errors.Is(rejected, os.ErrPermission) {
		t.Errorf("verifier rejection %q reads as a permission error", rejected)
	}
	var ve *ebpf.VerifierError
	if !errors.As(rejected, &ve) || len(ve.Log) != 2 {
		t.Errorf("errors.As(%q, *ebpf.VerifierError) = %v, want the verifier log", rejected, ve)
	}
	if !strings.HasPrefix(rejected.Error(), "bpf: load filter: ") {
		t.Errorf("error %q lacks the bpf: load filter: prefix", rejected)
	}

	// A privilege error comes before the verifier: no log.
	denied := loadError(&ebpf.VerifierError{Cause: unix.EPERM})
	if !errors.Is(denied, os.ErrPermission) {
		t.Errorf("EPERM before the verifier: %q is not a permission error", denied)
	}
}

func TestAttach(t *testing.T) {
	f := loadFilterOrSkip(t, runMatch)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := f.Attach(fd); err != nil {
		t.Fatal(err)
	}
	if err := f.Attach(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("Attach(-1) = %v, want EBADF", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.Attach(fd); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Attach after Close = %v, want os.ErrClosed", err)
	}
}

func BenchmarkFilter(b *testing.B) {
	f := loadFilterOrSkip(b, runMatch)
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"keep", reply(probe.ICMPTimeExceeded, 0, encodeProbe(runSpec, 3, 7))},
		{"drop-tag", reply(probe.ICMPTimeExceeded, 0, encodeProbe(probe.Spec{
			Src: ourSrc, BaseSrcPort: 40000, DstPort: 33434, Paths: 1, Tag: 1}, 1, 7))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, d, err := f.prog.Benchmark(bc.pkt, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/packet")
		})
	}
}
