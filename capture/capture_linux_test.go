package capture_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
)

// Each test runs in its own network namespace (netnstest, tag "c"), with
// only lo: traffic is UDP to closed ports of 127.0.0.1, which the
// namespace's own stack answers with ICMP port unreachable.

// newNS creates a namespace with lo up and no ICMP rate limit, removed when
// the test ends, and returns its name for netnstest.In.
func newNS(t testing.TB) string {
	t.Helper()
	return netnstest.New(t, "c", "cap").NS("cap")
}

// udpTo opens a UDP socket for sendUDP. It is not connected: a connected
// socket would fail every other send with the ECONNREFUSED that the port
// unreachable left. Call it inside netnstest.In.
func udpTo() (int, error) {
	return unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
}

// discard is 127.0.0.1:9, closed in a test namespace: every datagram sent
// there provokes an ICMP port unreachable.
var discard = &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}

func sendUDP(fd int, payload []byte) error {
	return unix.Sendto(fd, payload, 0, discard)
}

// filter attaches a one-instruction classic BPF program returning k: 0
// drops every packet, 0xffffffff keeps whole packets.
func filter(k uint32) func(fd int) error {
	return func(fd int) error {
		prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: k}}
		return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: 1, Filter: &prog[0]})
	}
}

const loIndex = 1 // lo is always ifindex 1 in a new namespace

type rig struct {
	c   *capture.Conn
	udp int
}

func newRig(t *testing.T, cfg capture.Config, setup func(udp int) error) *rig {
	t.Helper()
	ns := newNS(t)
	r := &rig{udp: -1}
	netnstest.In(t, ns, func() (err error) {
		if r.udp, err = udpTo(); err != nil {
			return err
		}
		if setup != nil {
			if err := setup(r.udp); err != nil {
				return err
			}
		}
		r.c, err = capture.Listen(cfg)
		return err
	})
	t.Cleanup(func() { r.c.Close(); unix.Close(r.udp) })
	return r
}

func (r *rig) send(t testing.TB, payload []byte) {
	t.Helper()
	if err := sendUDP(r.udp, payload); err != nil {
		t.Fatal(err)
	}
}

type pkt struct {
	b  []byte
	ts time.Time
}

// collect reads until done returns true for the packets so far, or the
// deadline d passes (netnstest.Hung where only a hung test reaches it).
func (r *rig) collect(t *testing.T, d time.Duration, done func([]pkt) bool) ([]pkt, error) {
	t.Helper()
	if err := r.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	var got []pkt
	for !done(got) {
		_, err := r.c.ReadBatch(func(b []byte, ts time.Time) {
			got = append(got, pkt{append([]byte(nil), b...), ts})
		})
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// udpPayload returns the payload of an IPv4/UDP packet, or nil.
func udpPayload(b []byte) []byte {
	if len(b) < 28 || b[0] != 0x45 || b[9] != unix.IPPROTO_UDP {
		return nil
	}
	return b[28:]
}

func isICMP(b []byte) bool { return len(b) >= 20 && b[0]>>4 == 4 && b[9] == unix.IPPROTO_ICMP }

func isICMPv6(b []byte) bool { return len(b) >= 40 && b[0]>>4 == 6 && b[6] == unix.IPPROTO_ICMPV6 }

// answered is a done function for collect: true once the packets hold the
// ICMP or ICMPv6 error that answers (quotes) the datagram carrying marker.
// A datagram sent last and read back answered shows that what was sent
// before it has been through lo: packets that should not be there would
// have been read by then, without a guess at how long they could take.
func answered(marker string) func([]pkt) bool {
	return func(p []pkt) bool {
		for _, x := range p {
			if (isICMP(x.b) || isICMPv6(x.b)) && bytes.Contains(x.b, []byte(marker)) {
				return true
			}
		}
		return false
	}
}

func TestReadBatch(t *testing.T) {
	r := newRig(t, capture.Config{Ifindex: loIndex}, nil)
	start := time.Now()
	const n = 10
	for i := range n {
		r.send(t, fmt.Appendf(nil, "tfx-%d", i))
	}
	udp, icmp := 0, 0
	got, err := r.collect(t, netnstest.Hung, func(p []pkt) bool {
		udp, icmp = 0, 0
		for _, x := range p {
			if udpPayload(x.b) != nil {
				udp++
			}
			if isICMP(x.b) {
				icmp++
			}
		}
		return udp >= n && icmp >= n
	})
	if err != nil {
		t.Fatalf("after %d UDP and %d ICMP packets: %v", udp, icmp, err)
	}
	end := time.Now()
	// With PACKET_IGNORE_OUTGOING each packet on lo is seen once
	// (arriving), not twice (leaving and arriving): read on up to the
	// answer to one more datagram, so that any duplicate is read too.
	r.send(t, []byte("last"))
	more, err := r.collect(t, netnstest.Hung, answered("last"))
	if err != nil {
		t.Fatalf("the answer to the last datagram: %v", err)
	}
	if len(got)+len(more) != 2*n+2 {
		t.Errorf("got %d packets; want %d (each UDP datagram and its ICMP answer once)", len(got)+len(more), 2*n+2)
	}
	seen := map[string]bool{}
	for _, x := range got {
		if x.ts.Before(start) || x.ts.After(end) {
			t.Errorf("timestamp %v outside [%v, %v]", x.ts, start, end)
		}
		if p := udpPayload(x.b); p != nil {
			if seen[string(p)] {
				t.Errorf("datagram %q seen twice", p)
			}
			seen[string(p)] = true
		}
	}
	for i := range n {
		if !seen[fmt.Sprintf("tfx-%d", i)] {
			t.Errorf("datagram tfx-%d not captured", i)
		}
	}
	rcv, drop, err := r.c.Stats()
	if err != nil || rcv != 2*n+2 || drop != 0 {
		t.Errorf("Stats = %d, %d, %v; want %d, 0", rcv, drop, err, 2*n+2)
	}
	// Stats accumulate: the kernel resets its counters on every read.
	r.send(t, []byte("one more"))
	if _, err := r.collect(t, netnstest.Hung, answered("one more")); err != nil {
		t.Fatal(err)
	}
	if rcv, _, _ := r.c.Stats(); rcv != 2*n+4 {
		t.Errorf("Stats received %d; want %d", rcv, 2*n+4)
	}
}

// TestLargePackets checks that big packets are delivered whole (on lo, whose
// MTU is 64 KiB, the slots are that big).
func TestLargePackets(t *testing.T) {
	r := newRig(t, capture.Config{Ifindex: loIndex}, nil)
	for _, size := range []int{1500, 9000, 65000} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		r.send(t, payload)
		// Read the datagram and its ICMP answer (576 bytes at most, RFC
		// 1812), which arrives after it.
		got, err := r.collect(t, netnstest.Hung, func(p []pkt) bool {
			return slices.ContainsFunc(p, func(x pkt) bool { return isICMP(x.b) })
		})
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		udp := 0
		for _, x := range got {
			if p := udpPayload(x.b); p != nil {
				udp++
				if !bytes.Equal(p, payload) {
					t.Errorf("%d-byte datagram captured as %d bytes", size, len(p))
				}
			}
		}
		if udp != 1 || len(got) != 2 {
			t.Errorf("%d bytes: %d packets, %d of them UDP; want the datagram and its answer", size, len(got), udp)
		}
	}
}

// boundWithDropAll checks, from inside Config.Attach, that the socket is
// already bound to ETH_P_IP and that its filter is the one instruction
// "ret #0" (SO_GET_FILTER returns the classic program last attached).
func boundWithDropAll(fd int) error {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	if ll, ok := sa.(*unix.SockaddrLinklayer); !ok || ll.Protocol != htons(unix.ETH_P_IP) || ll.Ifindex != loIndex {
		return fmt.Errorf("socket bound to %#v; want ETH_P_IP on lo", sa)
	}
	var prog [4]unix.SockFilter
	n := uint32(unsafe.Sizeof(prog))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER,
		uintptr(unsafe.Pointer(&prog[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return fmt.Errorf("SO_GET_FILTER: %w", e)
	}
	// The kernel answers with the number of instructions, not bytes.
	if want := (unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K}); n != 1 || prog[0] != want {
		return fmt.Errorf("filter before Attach: %d instructions %v; want only %v", n, prog[:min(n, 4)], want)
	}
	return nil
}

// htons returns v in network byte order, as sockaddr_ll holds it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// observer is a packet socket bound to lo for IPv4, without a filter, bound
// before the Conn under test: the kernel hands a packet to the sockets
// bound to one device and protocol in the reverse order of their binding,
// so once the observer has a packet, the Conn's filter has run on it too.
type observer int

// newObserver opens an observer; call it inside netnstest.In, before
// capture.Listen.
func newObserver() (observer, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(netnstest.Hung.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: loIndex}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return observer(fd), nil
}

// await reads until the observer has seen n datagrams carrying payload and
// n ICMP errors quoting them.
func (o observer) await(payload string, n int) error {
	buf := make([]byte, 1<<16)
	udp, icmp := 0, 0
	for udp < n || icmp < n {
		m, _, err := unix.Recvfrom(int(o), buf, 0)
		if err != nil {
			return fmt.Errorf("observer, after %d datagrams %q and %d answers: %w", udp, payload, icmp, err)
		}
		switch b := buf[:m]; {
		case bytes.Equal(udpPayload(b), []byte(payload)):
			udp++
		case isICMP(b) && bytes.Contains(b, []byte(payload)):
			icmp++
		}
	}
	return nil
}

// duringAttach is an Attach for Listen that sends traffic while the
// drop-all filter is on, which must not be queued even though the filter
// it then attaches keeps everything. The observer shows when the drop-all
// filter has seen all of it.
func duringAttach(udp int, obs observer) func(fd int) error {
	return func(fd int) error {
		if err := boundWithDropAll(fd); err != nil {
			return err
		}
		for range 20 {
			if err := sendUDP(udp, []byte("before filter")); err != nil {
				return err
			}
		}
		if err := obs.await("before filter", 20); err != nil {
			return err
		}
		return filter(0xffffffff)(fd)
	}
}

// listenObserved opens, in a new namespace, the sending socket and the
// observer, then a Conn on lo with attach.
func listenObserved(t *testing.T, attach func(udp int, obs observer) func(int) error) (*capture.Conn, int, observer) {
	var c *capture.Conn
	var udp int
	var obs observer
	netnstest.In(t, newNS(t), func() (err error) {
		if udp, err = udpTo(); err != nil {
			return err
		}
		if obs, err = newObserver(); err != nil {
			return err
		}
		c, err = capture.Listen(capture.Config{Ifindex: loIndex, Attach: attach(udp, obs)})
		return err
	})
	t.Cleanup(func() { c.Close(); unix.Close(udp); unix.Close(int(obs)) })
	return c, udp, obs
}

// TestNothingQueuedBeforeFilter shows that Listen binds the socket with a
// filter that drops everything, and that the caller's filter replaces it
// with nothing queued in between: traffic that flows while Attach runs is
// never seen, even when the filter attached then keeps every packet; and
// with a filter that drops everything nothing is received at all.
func TestNothingQueuedBeforeFilter(t *testing.T) {
	t.Run("keep-all", func(t *testing.T) {
		c, udp, _ := listenObserved(t, duringAttach)
		r := &rig{c: c, udp: udp}
		r.send(t, []byte("after filter"))
		// A datagram queued before the filter would be read before
		// this answer.
		got, err := r.collect(t, netnstest.Hung, answered("after filter"))
		if err != nil {
			t.Fatal(err)
		}
		after := 0
		for _, x := range got {
			switch p := udpPayload(x.b); string(p) {
			case "before filter":
				t.Errorf("a datagram sent before the filter was attached was queued")
			case "after filter":
				after++
			}
		}
		if after != 1 || len(got) != 2 {
			t.Errorf("got %d packets, %d of them the datagram sent after Attach; want the datagram and its ICMP answer", len(got), after)
		}
	})
	t.Run("drop-all", func(t *testing.T) {
		c, udp, obs := listenObserved(t, func(udp int, obs observer) func(int) error {
			return func(fd int) error {
				if err := duringAttach(udp, obs)(fd); err != nil {
					return err
				}
				return filter(0)(fd) // replaces the keep-all filter
			}
		})
		const n = 50
		for range n {
			if err := sendUDP(udp, []byte("while reading")); err != nil {
				t.Fatal(err)
			}
		}
		if err := obs.await("while reading", n); err != nil {
			t.Fatal(err)
		}
		// All of it has been through the filter: the kernel counted
		// none as received, and nothing is queued.
		if rcv, drop, err := c.Stats(); rcv != 0 || drop != 0 || err != nil {
			t.Errorf("Stats = %d, %d, %v; want 0, 0", rcv, drop, err)
		}
		r := &rig{c: c, udp: udp}
		got, err := r.collect(t, 10*time.Millisecond, func([]pkt) bool { return false })
		if len(got) != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("drop-all filter: got %d packets, %v; want none and a deadline error", len(got), err)
		}
		t.Logf("%d datagrams and as many ICMP answers flowed; %d received", n, len(got))
	})
}

func TestAttachError(t *testing.T) {
	ns := newNS(t)
	netnstest.In(t, ns, func() error {
		c, err := capture.Listen(capture.Config{Attach: func(int) error { return errors.New("no filter today") }})
		if err == nil {
			c.Close()
			return errors.New("Listen succeeded although Attach failed")
		}
		if !strings.Contains(err.Error(), "attach filter: no filter today") {
			return fmt.Errorf("Listen: %v; want the Attach error", err)
		}
		if _, err := capture.Listen(capture.Config{Ifindex: 4242}); err == nil || !strings.Contains(err.Error(), "4242") {
			return fmt.Errorf("Listen on a missing interface: %v", err)
		}
		return nil
	})
}

func TestDeadlineAndClose(t *testing.T) {
	r := newRig(t, capture.Config{Ifindex: loIndex}, nil)
	noop := func([]byte, time.Time) {}

	// Nothing is sent: the read waits for the deadline and says so.
	if err := r.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := r.c.ReadBatch(noop); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadBatch = %d, %v; want a deadline error", n, err)
	}

	if err := r.c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := r.c.ReadBatch(noop)
		errc <- err
	}()
	// Give ReadBatch time to block (it paces the test only: a ReadBatch
	// that starts after Close returns net.ErrClosed as well).
	time.Sleep(50 * time.Millisecond)
	if err := r.c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v; want net.ErrClosed", err)
		}
	case <-time.After(netnstest.Hung):
		t.Fatal("hung: Close did not unblock ReadBatch")
	}
	if _, err := r.c.ReadBatch(noop); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch on a closed Conn: %v; want net.ErrClosed", err)
	}
}

func TestReadBatchNoAlloc(t *testing.T) {
	r := newRig(t, capture.Config{Ifindex: loIndex}, nil)
	if err := r.c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	payload := []byte("alloc")
	total := 0
	fn := func(b []byte, ts time.Time) {
		if len(b) > 0 && !ts.IsZero() {
			total++
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := sendUDP(r.udp, payload); err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.ReadBatch(fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadBatch: %v allocations per call; want 0", allocs)
	}
	if total < 201 {
		t.Errorf("%d packets delivered in 201 calls", total)
	}
}

func TestListenNeedsCapNetRaw(t *testing.T) {
	netnstest.NeedRoot(t)
	err := netnstest.WithoutCap(unix.CAP_NET_RAW, func() error {
		c, err := capture.Listen(capture.Config{})
		if c != nil {
			c.Close()
			err = errors.New("Listen succeeded without CAP_NET_RAW")
		}
		return err
	})
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "need CAP_NET_RAW") {
		t.Fatalf("Listen without CAP_NET_RAW: %v; want a permission error naming CAP_NET_RAW", err)
	}
}

// TestReadBatchIPv6 listens for IPv6 (Config.IPv6): UDP datagrams to
// [::1]:9 and their ICMPv6 port unreachables are read, from their IPv6
// header on, and the IPv4 datagrams and ICMP errors sent beside them are
// not.
func TestReadBatchIPv6(t *testing.T) {
	var udp6 int
	r := newRig(t, capture.Config{Ifindex: loIndex, IPv6: true}, func(int) (err error) {
		udp6, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	defer unix.Close(udp6)
	const n = 5
	for i := range n {
		r.send(t, fmt.Appendf(nil, "v4-%d", i))
		if err := unix.Sendto(udp6, fmt.Appendf(nil, "v6-%d", i), 0, &unix.SockaddrInet6{Port: 9, Addr: [16]byte{15: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	// The answer to a last IPv6 datagram comes after everything sent
	// before it.
	if err := unix.Sendto(udp6, []byte("v6-last"), 0, &unix.SockaddrInet6{Port: 9, Addr: [16]byte{15: 1}}); err != nil {
		t.Fatal(err)
	}
	got, err := r.collect(t, netnstest.Hung, answered("v6-last"))
	if err != nil {
		t.Fatalf("after %d packets: %v", len(got), err)
	}
	udp, icmp := 0, 0
	for _, x := range got {
		b := x.b
		switch {
		case len(b) < 48 || b[0]>>4 != 6:
			t.Errorf("not an IPv6 packet: % x", b)
		case b[6] == unix.IPPROTO_UDP && bytes.HasPrefix(b[48:], []byte("v6-")):
			udp++
		case b[6] == unix.IPPROTO_ICMPV6 && b[40] == 1 && b[41] == 4:
			icmp++
		default:
			t.Errorf("unexpected packet % x", b)
		}
	}
	if udp != n+1 || icmp != n+1 {
		t.Errorf("%d UDP datagrams and %d port unreachables; want %d of each", udp, icmp, n+1)
	}
}

// TestEBPFReplacesDropAll attaches an eBPF socket filter (SO_ATTACH_BPF)
// that keeps only ICMP: it replaces the classic drop-all filter, so the
// port unreachables are read and the UDP datagrams that caused them are not.
func TestEBPFReplacesDropAll(t *testing.T) {
	netnstest.NeedRoot(t)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SocketFilter,
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),    // LD_ABS reads the packet of the context in R6
			asm.LoadAbs(9, asm.Byte),       // IPv4 protocol
			asm.JNE.Imm(asm.R0, 1, "drop"), // not ICMP
			asm.Mov.Imm32(asm.R0, -1),      // keep the whole packet
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"),
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		t.Fatalf("load eBPF socket filter: %v", err)
	}
	defer prog.Close()
	attach := func(fd int) error {
		if err := boundWithDropAll(fd); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog.FD())
	}
	r := newRig(t, capture.Config{Ifindex: loIndex, Attach: attach}, nil)
	const n = 5
	for i := range n {
		r.send(t, fmt.Appendf(nil, "ebpf-%d", i))
	}
	// The answer to a last datagram comes after everything sent before it.
	r.send(t, []byte("ebpf-last"))
	got, err := r.collect(t, netnstest.Hung, answered("ebpf-last"))
	if err != nil {
		t.Fatalf("after %d packets: %v", len(got), err)
	}
	for _, x := range got {
		if !isICMP(x.b) {
			t.Errorf("the eBPF filter let a non-ICMP packet through: % x", x.b)
		}
	}
	if len(got) != n+1 {
		t.Errorf("%d packets; want the %d port unreachables", len(got), n+1)
	}
}

// BenchmarkReadBatch measures the receive path alone: each round queues
// 512 UDP datagrams and their 512 port unreachables on lo, then the timer
// runs while ReadBatch reads the 1,024 packets, 64 per recvmmsg(2) call.
func BenchmarkReadBatch(b *testing.B) {
	netnstest.NeedRoot(b)
	ns := newNS(b)
	var c *capture.Conn
	var udp int
	netnstest.In(b, ns, func() (err error) {
		if udp, err = udpTo(); err != nil {
			return err
		}
		c, err = capture.Listen(capture.Config{Ifindex: loIndex})
		return err
	})
	b.Cleanup(func() { c.Close(); unix.Close(udp) })
	const sends = 512
	payload := make([]byte, 64)
	got := 0
	fn := func([]byte, time.Time) { got++ }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range sends {
			if err := sendUDP(udp, payload); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			b.Fatal(err)
		}
		got = 0
		b.StartTimer()
		for got < 2*sends {
			if _, err := c.ReadBatch(fn); err != nil {
				b.Fatalf("after %d packets: %v", got, err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*sends*b.N), "ns/packet")
	if _, dropped, err := c.Stats(); err != nil || dropped != 0 {
		b.Errorf("Stats: %d dropped, %v", dropped, err)
	}
}
