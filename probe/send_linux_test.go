package probe_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/route"
)

// icmpOnly attaches a classic BPF filter that keeps whole ICMP packets. With
// a SOCK_DGRAM packet socket, offset 0 is the IPv4 header.
func icmpOnly(fd int) error {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 9, Size: 1}, // IPv4 protocol
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_ICMP, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffffffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return err
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}

// traceRig is a route, a sender and a capture socket opened in a namespace.
type traceRig struct {
	rt   *route.Route
	s    *probe.Sender
	c    *capture.Conn
	spec *probe.Spec
}

func newTraceRig(t *testing.T, l *lab, ns string, dst netip.Addr) *traceRig {
	t.Helper()
	r := &traceRig{}
	labIn(t, l, ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if r.rt, err = route.Lookup(ctx, dst, route.Options{}); err != nil {
			return err
		}
		if r.c, err = capture.Listen(capture.Config{Ifindex: r.rt.Ifindex, Attach: icmpOnly}); err != nil {
			return err
		}
		r.s, err = probe.NewSender(r.rt)
		return err
	})
	t.Cleanup(func() { r.s.Close(); r.c.Close() })
	r.spec = &probe.Spec{Src: r.rt.Src, BaseSrcPort: 33000, DstPort: 33434, Paths: 4, Tag: 321, Epoch: wallNow()}
	if err := r.spec.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

type hop struct{ path, ttl int }

type answer struct {
	from    netip.Addr
	typ     uint8
	reached bool
	rtt     time.Duration
}

// answerWait bounds the wait for replies that the namespaces' kernels send
// at once: it only stops a test whose replies never come.
const answerWait = 30 * time.Second

// wallNow is the time without its monotonic reading, as the kernel stamps
// packets: the send clock and the RTTs of a Spec whose Epoch and send times
// are such wall-clock times can be checked exactly against the kernel's
// receive stamps (checkRTT).
func wallNow() time.Time { return time.Now().Round(0) }

// checkRTT checks the RTT decoded from a reply against what the test knows:
// the probe was encoded at sent and the kernel stamped its reply at recv, so
// the RTT is recv-sent plus the part of a ClockUnit that the send clock in
// the probe truncated.
func checkRTT(t *testing.T, h hop, rtt time.Duration, sent, recv time.Time) {
	t.Helper()
	if d := rtt - recv.Sub(sent); d < 0 || d >= probe.ClockUnit {
		t.Errorf("path %d TTL %d: RTT %v; the probe was encoded %v before the kernel received its reply, "+
			"so want that plus less than %v", h.path, h.ttl, rtt, recv.Sub(sent), probe.ClockUnit)
	}
}

// trace sends one probe per (path, ttl) and collects the matching replies
// until every probe is answered (or answerWait passes: hung).
func (r *traceRig) trace(t *testing.T, dst netip.Addr, paths, maxTTL int) map[hop]answer {
	t.Helper()
	var pkts [][]byte
	sent := map[hop]time.Time{}
	for p := 1; p <= paths; p++ {
		for ttl := 1; ttl <= maxTTL; ttl++ {
			b := make([]byte, probe.Len)
			sent[hop{p, ttl}] = wallNow()
			r.spec.Encode(b, dst, p, ttl, sent[hop{p, ttl}])
			pkts = append(pkts, b)
		}
	}
	if n, err := r.s.Send(pkts); n != len(pkts) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", n, err, len(pkts))
	}
	got := map[hop]answer{}
	var rep probe.Reply
	if err := r.c.SetReadDeadline(time.Now().Add(answerWait)); err != nil {
		t.Fatal(err)
	}
	for len(got) < len(pkts) {
		_, err := r.c.ReadBatch(func(pkt []byte, ts time.Time) {
			if probe.ParseReply(pkt, &rep) != nil {
				return
			}
			p, ttl, ok := r.spec.Match(&rep)
			if !ok {
				return
			}
			h := hop{p, ttl}
			if _, dup := got[h]; dup {
				t.Errorf("duplicate reply for path %d TTL %d", p, ttl)
			}
			got[h] = answer{rep.From, rep.Type, rep.Reached(), r.spec.RTT(rep.QChecksum, ts)}
			checkRTT(t, h, got[h].rtt, sent[h], ts)
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("hung: %d of %d probes answered after %v: %v", len(got), len(pkts), answerWait, got)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestTraceThroughRouter sends probes from a through router r to b and
// decodes the routers' answers: TTL 1 expires at r, TTL 2 and 3 reach b,
// which answers port unreachable.
func TestTraceThroughRouter(t *testing.T) {
	l := newLineLab(t)
	l.nsip("a", "neigh", "flush", "dev", "va")
	r := newTraceRig(t, l, "a", addrB)
	if r.rt.NextHop != addrRA || r.rt.HWAddr.String() != macRA {
		t.Fatalf("route %+v; want next hop %s at %s", *r.rt, addrRA, macRA)
	}
	got := r.trace(t, addrB, 4, 3)
	for h, a := range got {
		want := answer{from: addrB, typ: probe.ICMPUnreachable, reached: true}
		if h.ttl == 1 {
			want = answer{from: addrRA, typ: probe.ICMPTimeExceeded}
		}
		if a.from != want.from || a.typ != want.typ || a.reached != want.reached {
			t.Errorf("path %d TTL %d: from %s type %d reached %v; want from %s type %d reached %v",
				h.path, h.ttl, a.from, a.typ, a.reached, want.from, want.typ, want.reached)
		}
	}
	for h, a := range got {
		t.Logf("path %d TTL %d: from %s type %d RTT %v", h.path, h.ttl, a.from, a.typ, a.rtt)
	}
	if rcv, drop, err := r.c.Stats(); err != nil || rcv < 12 || drop != 0 {
		t.Errorf("Stats = %d, %d, %v; want >= 12 received, 0 dropped", rcv, drop, err)
	}
}

// TestTraceLoopback traces a local address through lo, a link whose
// "link-layer address" is all zeros and which needs no neighbour: the local
// stack answers every probe with port unreachable.
func TestTraceLoopback(t *testing.T) {
	l := newLab(t, "l")
	// Packets injected on lo go through the input route lookup, which
	// drops packets from a local source unless accept_local is on.
	l.exec("l", "sysctl", "-qw", "net.ipv4.conf.lo.accept_local=1")
	l.nsip("l", "addr", "add", "10.77.7.1/32", "dev", "lo")
	dst := netip.MustParseAddr("10.77.7.1")
	r := newTraceRig(t, l, "l", dst)
	if r.rt.IfName != "lo" || r.rt.HWAddr.String() != "00:00:00:00:00:00" || r.rt.NextHop != dst || r.rt.Src != dst {
		t.Fatalf("route %+v; want lo, zero MAC, next hop and source %s", *r.rt, dst)
	}
	got := r.trace(t, dst, 2, 2)
	for h, a := range got {
		if a.from != dst || !a.reached {
			t.Errorf("path %d TTL %d: from %s reached %v; want port unreachable from %s", h.path, h.ttl, a.from, a.reached, dst)
		}
	}
}

// TestTraceLocalnet traces 127.0.0.5 through lo, which also needs
// route_localnet to accept 127/8 destinations on input.
func TestTraceLocalnet(t *testing.T) {
	l := newLab(t, "l")
	l.exec("l", "sysctl", "-qw", "net.ipv4.conf.lo.accept_local=1", "net.ipv4.conf.lo.route_localnet=1")
	dst := netip.MustParseAddr("127.0.0.5")
	r := newTraceRig(t, l, "l", dst)
	if r.rt.IfName != "lo" || r.rt.Src != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("route %+v; want lo from 127.0.0.1", *r.rt)
	}
	for h, a := range r.trace(t, dst, 2, 2) {
		if a.from != dst || !a.reached {
			t.Errorf("path %d TTL %d: from %s reached %v; want port unreachable from %s", h.path, h.ttl, a.from, a.reached, dst)
		}
	}
}

// TestTun sends through a tun device (ARPHRD_NONE, no link-layer header):
// the probes must come out of the tun file descriptor byte for byte, and an
// answer written into it must be captured from its IPv4 header on.
func TestTun(t *testing.T) {
	l := newLab(t, "t")
	var tun *os.File
	labIn(t, l, "t", func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("tfxtun")
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return err
		}
		tun = os.NewFile(uintptr(fd), "tun")
		return nil
	})
	t.Cleanup(func() { tun.Close() })
	l.nsip("t", "addr", "add", "10.77.5.1/24", "dev", "tfxtun")
	l.nsip("t", "link", "set", "tfxtun", "up")
	dst := netip.MustParseAddr("10.77.5.2")
	r := newTraceRig(t, l, "t", dst)
	if r.rt.IfName != "tfxtun" || r.rt.HWAddr != nil || r.rt.NextHop != dst || r.rt.Src != netip.MustParseAddr("10.77.5.1") {
		t.Fatalf("route %+v; want tfxtun, no link-layer address, next hop %s", *r.rt, dst)
	}

	pkt := make([]byte, probe.Len)
	r.spec.Encode(pkt, dst, 3, 7, time.Now())
	if n, err := r.s.Send([][]byte{pkt}); n != 1 || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	buf := make([]byte, 2048)
	if err := tun.SetReadDeadline(time.Now().Add(answerWait)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := tun.Read(buf)
		if err != nil {
			t.Fatalf("read tun: %v", err)
		}
		if bytes.Equal(buf[:n], pkt) {
			break
		}
		t.Logf("tun: skipping %d bytes %x", n, buf[:min(n, 20)])
	}

	// The destination's answer: ICMP port unreachable quoting the probe.
	reply := icmpUnreachable(dst, r.rt.Src, pkt)
	if _, err := tun.Write(reply); err != nil {
		t.Fatal(err)
	}
	if err := r.c.SetReadDeadline(time.Now().Add(answerWait)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	var rep probe.Reply
	for got == nil {
		if _, err := r.c.ReadBatch(func(p []byte, ts time.Time) { got = append([]byte(nil), p...) }); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, reply) {
		t.Fatalf("captured %x\nwant     %x", got, reply)
	}
	if err := probe.ParseReply(got, &rep); err != nil {
		t.Fatal(err)
	}
	if p, ttl, ok := r.spec.Match(&rep); !ok || p != 3 || ttl != 7 || !rep.Reached() {
		t.Fatalf("Match = %d, %d, %v (reached %v); want path 3, TTL 7, reached", p, ttl, ok, rep.Reached())
	}
}

// icmpUnreachable builds an IPv4 ICMP port unreachable from -> to quoting q.
func icmpUnreachable(from, to netip.Addr, q []byte) []byte {
	b := make([]byte, 20+8+len(q))
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_ICMP
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	f, d := from.As4(), to.As4()
	copy(b[12:], f[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], probe.Checksum(b[:20]))
	icmp := b[20:]
	icmp[0], icmp[1] = probe.ICMPUnreachable, probe.CodePortUnreachable
	copy(icmp[8:], q)
	binary.BigEndian.PutUint16(icmp[2:], probe.Checksum(icmp))
	return b
}

// TestNeedCapNetRaw drops CAP_NET_RAW from one thread and checks that the
// sender reports a permission error the CLI can recognise.
func TestNeedCapNetRaw(t *testing.T) {
	labNeedRoot(t)
	err := netnstest.WithoutCap(unix.CAP_NET_RAW, func() error {
		s, err := probe.NewSender(&route.Route{Ifindex: 1, IfName: "lo"})
		if s != nil {
			s.Close()
			err = errors.New("NewSender succeeded without CAP_NET_RAW")
		}
		return err
	})
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "need CAP_NET_RAW") {
		t.Fatalf("NewSender without CAP_NET_RAW: %v; want a permission error naming CAP_NET_RAW", err)
	}
	t.Logf("%v", err)
}

// The sink lab: a -- s, where s drops every packet at its ingress hook, so
// that a sender's rate is measured without replies.
var addrSink = netip.MustParseAddr("10.77.3.2")

func newSinkRig(tb testing.TB) (*probe.Sender, [][]byte) {
	tb.Helper()
	_, s, pkts := newSinkLab(tb)
	return s, pkts
}

func newSinkLab(tb testing.TB) (*lab, *probe.Sender, [][]byte) {
	tb.Helper()
	l := newLab(tb, "a", "s")
	l.veth("a", "va", macA, "10.77.3.1/24", "s", "vs", macRA, "10.77.3.2/24")
	l.exec("s", "nft", "add table netdev sink")
	l.exec("s", "nft", "add chain netdev sink in { type filter hook ingress device vs priority 0; policy drop; }")
	// The sink answers nothing, not even ARP: give a a permanent neighbour.
	l.nsip("a", "neigh", "replace", addrSink.String(), "lladdr", macRA, "nud", "permanent", "dev", "va")
	var s *probe.Sender
	var rt *route.Route
	labIn(tb, l, "a", func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if rt, err = route.Lookup(ctx, addrSink, route.Options{}); err != nil {
			return err
		}
		s, err = probe.NewSender(rt)
		return err
	})
	tb.Cleanup(func() { s.Close() })
	spec := &probe.Spec{Src: rt.Src, BaseSrcPort: 33000, DstPort: 33434, Paths: 64, Tag: 5, Epoch: time.Now()}
	pkts := make([][]byte, probe.SendBatch)
	for i := range pkts {
		pkts[i] = make([]byte, probe.Len)
		spec.Encode(pkts[i], addrSink, i%64+1, i%32+1, time.Now())
	}
	return l, s, pkts
}

func TestSendNoAlloc(t *testing.T) {
	s, pkts := newSinkRig(t)
	for _, n := range []int{1, 17, probe.SendBatch, 3*probe.SendBatch + 5} {
		batch := pkts
		for len(batch) < n {
			batch = append(batch, pkts...)
		}
		batch = batch[:n]
		allocs := testing.AllocsPerRun(200, func() {
			if got, err := s.Send(batch); got != n || err != nil {
				t.Fatalf("Send = %d, %v; want %d", got, err, n)
			}
		})
		if allocs != 0 {
			t.Errorf("Send of %d packets: %v allocations per call; want 0", n, allocs)
		}
	}
	if n, err := s.Send([][]byte{pkts[0], nil}); n != 0 || err == nil {
		t.Errorf("Send with an empty packet = %d, %v; want 0 (the batch is checked first) and an error", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(pkts); err == nil {
		t.Error("Send after Close succeeded")
	}
}

// TestSendStalled takes the sink's end of the veth down: the driver then
// refuses every packet (ENOBUFS). Send backs off, 10 µs doubling up to
// 1 ms, retries, and gives up with that error once the stall has lasted
// SendStall; it sends again once the link is back. The back-off runs on a
// virtual clock that only the Sender's naps move, so what is checked is
// how long Send waited, not how long the machine took.
func TestSendStalled(t *testing.T) {
	l, s, pkts := newSinkLab(t)
	now := time.Unix(1, 0)
	var naps []time.Duration
	probe.SetSendClock(s, func() time.Time { return now }, func(d time.Duration) {
		naps = append(naps, d)
		now = now.Add(d)
	})
	l.nsip("s", "link", "set", "vs", "down")
	if n, err := s.Send(pkts); n != 0 || !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("Send on a link without carrier = %d, %v; want 0, ENOBUFS", n, err)
	} else {
		t.Logf("%v after %d retries", err, len(naps))
	}
	var waited time.Duration
	for i, d := range naps {
		want := 10 * time.Microsecond
		if i > 0 {
			want = min(2*naps[i-1], time.Millisecond)
		}
		if d != want {
			t.Fatalf("back-off %d: %v; want %v (naps %v)", i, d, want, naps)
		}
		waited += d
	}
	// It gives up at the first retry after SendStall: not before, and
	// not a nap later.
	if waited <= probe.SendStall || waited-naps[len(naps)-1] > probe.SendStall {
		t.Errorf("Send gave up after %v of back-off (last nap %v); want the first retry past %v",
			waited, naps[len(naps)-1], probe.SendStall)
	}

	probe.SetSendClock(s, time.Now, time.Sleep)
	l.nsip("s", "link", "set", "vs", "up")
	// The carrier comes back asynchronously: poll, pacing the tries, and
	// give up only if the link never carries again.
	for deadline := time.Now().Add(answerWait); ; {
		n, err := s.Send(pkts)
		if err == nil && n == len(pkts) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hung: Send after the link came back = %d, %v after %v", n, err, answerWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkSend sends probes into a veth whose peer drops everything at its
// ingress hook, SendBatch (one sendmmsg call) or 1 at a time; one op is one
// probe. The sink's receive path (veth -> netif_rx -> nftables drop) runs
// in softirq on the sending CPU, so it is part of the measured cost.
func BenchmarkSend(b *testing.B) {
	s, pkts := newSinkRig(b) // one lab for all sub-benchmarks
	for _, batch := range []int{probe.SendBatch, 1} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			sent := 0
			for sent < b.N {
				n, err := s.Send(pkts[:min(batch, b.N-sent)])
				if err != nil {
					b.Fatal(err)
				}
				sent += n
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "probes/s")
		})
	}
}
