package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// TestTopologies builds every topology at once (parallel labs must not
// clash), checks the prober reaches the destination, and traces 128 flows
// of UDP probes and 128 flows of ICMP echo requests (one identifier each,
// the sequence number and checksum varying with the TTL), over IPv4 and
// over IPv6: the distinct paths seen must be exactly ExpectedPaths
// (ExpectedPaths6), for either kind of probe.
func TestTopologies(t *testing.T) {
	RequireRoot(t)
	for topo := range shapes {
		t.Run(topo, func(t *testing.T) {
			t.Parallel()
			l := Up(t, topo)
			pingN(t, l, Destination, 3)
			for _, echo := range []bool{false, true} {
				checkPaths(t, l, Destination, l.ExpectedPaths(), echo)
				checkPaths(t, l, Destination6, l.ExpectedPaths6(), echo)
			}
		})
	}
	// A second diamond4 beside the first: same addresses, other namespaces.
	t.Run("diamond4-again", func(t *testing.T) {
		t.Parallel()
		l := Up(t, "diamond4")
		checkPaths(t, l, Destination, l.ExpectedPaths(), false)
	})
}

func TestLocalPrefix(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	l := Up(t, "nested", WithLocalPrefix("10.21.0.0/20"))
	for _, dst := range []string{Destination, "10.21.0.0", "10.21.7.77", "10.21.15.255"} {
		pingN(t, l, dst, 1)
	}
	// Same paths to another address, which answers for itself.
	var want [][]string
	for _, p := range l.ExpectedPaths() {
		want = append(want, append(p[:len(p)-1:len(p)-1], "10.21.9.1"))
	}
	checkPaths(t, l, "10.21.9.1", want, false)
	checkPaths(t, l, "10.21.9.1", want, true)
}

// pingN sends n ICMP echo requests from the prober to dst and wants every
// one answered; then it runs iputils' `ping -c1 dst` in the prober
// namespace (without ping, it says so, or fails under CI=true). The answers
// come at once: the deadlines, 30 s, only stop a hung test.
func pingN(t *testing.T, l *Lab, dst string, n int) {
	t.Helper()
	var conn net.PacketConn
	err := l.InNS("prober", func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := uint16(os.Getpid())
	for seq := range n {
		req := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, byte(seq), 'l', 'a', 'b'}
		binary.BigEndian.PutUint16(req[2:], checksum(req))
		if _, err := conn.WriteTo(req, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			t.Fatalf("echo to %s: %v", dst, err)
		}
		if err := awaitEcho(conn, dst, id, seq); err != nil {
			t.Fatalf("echo %d to %s from %s: %v", seq, dst, l.NS("prober"), err)
		}
	}
	if _, err := exec.LookPath("ping"); err != nil {
		testenv.SkipPart(t, "not pinging with ping(8), which is not in PATH (Debian package iputils-ping)")
		return
	}
	if out, _, err := l.Run("prober", "ping", "-n", "-c1", "-W30", dst); err != nil {
		t.Fatalf("ping %s: %v\n%s", dst, err, out)
	}
}

func awaitEcho(conn net.PacketConn, dst string, id uint16, seq int) error {
	buf := make([]byte, 1500)
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		b := buf[:n]
		if n >= 8 && b[0] == 0 && binary.BigEndian.Uint16(b[4:]) == id &&
			int(binary.BigEndian.Uint16(b[6:])) == seq && from.String() == dst {
			return nil
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// Probing: flows source ports, fixed destination port, TTL 1..maxTTL. The
// 5-tuple of a flow never changes; the TTL travels in the UDP length
// (payload of TTL bytes), which routers quote back. Echo flows (ICMP or
// ICMPv6 echo requests) are identifiers firstPort, firstPort+1, ...; the
// TTL travels in the sequence number, which the echo reply carries back.
const (
	flows     = 128 // a k-way hash misses a branch with p ~ k*(1-1/k)^flows: 1e-6 for k=8
	firstPort = 40001
	dstPort   = 33434
)

// checkPaths traces flows to dst (echo: ICMP echo requests, else UDP) and
// wants exactly the distinct paths want.
func checkPaths(t *testing.T, l *Lab, dst string, want [][]string, echo bool) {
	t.Helper()
	kind := "UDP"
	if echo {
		kind = "echo"
	}
	maxTTL := 0
	for _, p := range want {
		maxTTL = max(maxTTL, len(p)+1)
	}
	got, err := traceFlows(l, dst, maxTTL, echo)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range got {
		count[strings.Join(p, " ")]++
	}
	var gotSet, wantSet []string
	for p := range count {
		gotSet = append(gotSet, p)
	}
	for _, p := range want {
		wantSet = append(wantSet, strings.Join(p, " "))
	}
	slices.Sort(gotSet)
	slices.Sort(wantSet)
	var b strings.Builder
	for _, p := range gotSet {
		fmt.Fprintf(&b, "\n  %3d flows: %s", count[p], p)
	}
	if !slices.Equal(gotSet, wantSet) {
		t.Fatalf("%s: distinct paths of %s flows to %s differ from lab.sh describe:\ngot%s\nwant\n  %s",
			l.Topology, kind, dst, b.String(), strings.Join(wantSet, "\n  "))
	}
	t.Logf("%s: %d %s flows to %s, %d distinct paths as described:%s", l.Topology, len(got), kind, dst, len(gotSet), b.String())
}

// traceFlows sends every (flow, TTL) probe from the prober, resending the
// unanswered ones until all are answered, and returns per flow the
// responders from TTL 1 up to the first that answered with port
// unreachable (echo: an echo reply), the destination.
func traceFlows(l *Lab, dst string, maxTTL int, echo bool) ([][]string, error) {
	ft := &flowTracer{dst: netip.MustParseAddr(dst), maxTTL: maxTTL, echo: echo,
		answers: map[flowKey]flowAnswer{}, more: make(chan struct{}, 1)}
	defer ft.close()
	if err := ft.open(l); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ft.read()
	}()
	// Every probe of the lab is answered (its routers answer at any rate):
	// send the unanswered ones, wait for their answers, and send again
	// those still missing after a second (lost on a loaded machine), until
	// all are answered or a minute has passed (hung).
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		sent, err := ft.sendMissing()
		if err != nil {
			return nil, err
		}
		if sent == 0 {
			break
		}
		ft.await(time.Second)
	}
	ft.icmp.Close()
	<-done
	return ft.paths()
}

type flowKey struct{ flow, ttl int }

type flowAnswer struct {
	from    string
	unreach bool
}

// flowTracer is the state of traceFlows: the prober's sockets, and the
// answers that its reading goroutine records.
type flowTracer struct {
	dst    netip.Addr
	maxTTL int
	echo   bool
	icmp   net.PacketConn
	udp    []*net.UDPConn // per flow, unless echo

	mu      sync.Mutex
	answers map[flowKey]flowAnswer
	more    chan struct{} // signalled on every answer
}

// open opens the ICMP socket that sends echo requests and reads every
// answer, and, for UDP probes, one socket per flow, in the prober.
func (ft *flowTracer) open(l *Lab) error {
	icmpNet, icmpAddr, udpNet, src := "ip4:icmp", "0.0.0.0", "udp4", ProberAddr
	if ft.dst.Is6() {
		icmpNet, icmpAddr, udpNet, src = "ip6:ipv6-icmp", "::", "udp6", ProberAddr6
	}
	if !ft.echo {
		ft.udp = make([]*net.UDPConn, flows)
	}
	err := l.InNS("prober", func() error {
		var err error
		if ft.icmp, err = net.ListenPacket(icmpNet, icmpAddr); err != nil {
			return err
		}
		for i := range ft.udp {
			addr := &net.UDPAddr{IP: net.ParseIP(src), Port: firstPort + i}
			if ft.udp[i], err = net.ListenUDP(udpNet, addr); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return forceRcvBuf(ft.icmp, 8<<20)
}

func (ft *flowTracer) close() {
	if ft.icmp != nil {
		ft.icmp.Close()
	}
	for _, c := range ft.udp {
		if c != nil {
			c.Close()
		}
	}
}

// read records the answers until the ICMP socket is closed.
func (ft *flowTracer) read() {
	parse := parseReply
	if ft.dst.Is6() {
		parse = parseReply6
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := ft.icmp.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		flow, ttl, unreach, ok := parse(buf[:n], ft.dst, ft.maxTTL, ft.echo)
		if !ok {
			continue
		}
		ft.mu.Lock()
		ft.answers[flowKey{flow, ttl}] = flowAnswer{from.String(), unreach}
		ft.mu.Unlock()
		select {
		case ft.more <- struct{}{}:
		default:
		}
	}
}

func (ft *flowTracer) answered(f, ttl int) bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	_, ok := ft.answers[flowKey{f, ttl}]
	return ok
}

// sendMissing sends the probes not answered yet and returns how many.
func (ft *flowTracer) sendMissing() (int, error) {
	v6 := ft.dst.Is6()
	payload := make([]byte, ft.maxTTL)
	to := &net.UDPAddr{IP: ft.dst.AsSlice(), Port: dstPort}
	echoTo := &net.IPAddr{IP: ft.dst.AsSlice()}
	sent := 0
	for ttl := 1; ttl <= ft.maxTTL; ttl++ {
		for f := range flows {
			if ft.answered(f, ttl) {
				continue
			}
			var err error
			if ft.echo {
				if err := setTTL(ft.icmp.(syscall.Conn), ttl, v6); err != nil {
					return sent, err
				}
				_, err = ft.icmp.WriteTo(echoRequest(firstPort+f, ttl, v6), echoTo)
			} else {
				if err := setTTL(ft.udp[f], ttl, v6); err != nil {
					return sent, err
				}
				_, err = ft.udp[f].WriteToUDP(payload[:ttl], to)
			}
			if err != nil {
				return sent, fmt.Errorf("send flow %d TTL %d: %w", f, ttl, err)
			}
			sent++
		}
	}
	return sent, nil
}

// await waits until every probe is answered, or for d at the most.
func (ft *flowTracer) await(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		ft.mu.Lock()
		n := len(ft.answers)
		ft.mu.Unlock()
		if n >= flows*ft.maxTTL {
			return
		}
		select {
		case <-ft.more:
		case <-timer.C:
			return
		}
	}
}

// paths returns per flow the responders from TTL 1 up to the destination.
func (ft *flowTracer) paths() ([][]string, error) {
	dst := ft.dst.String()
	paths := make([][]string, flows)
	for f := range paths {
		for ttl := 1; ; ttl++ {
			if ttl > ft.maxTTL {
				return nil, fmt.Errorf("flow %d (port %d): no port unreachable by TTL %d: %v", f, firstPort+f, ft.maxTTL, paths[f])
			}
			a, ok := ft.answers[flowKey{f, ttl}]
			if !ok {
				return nil, fmt.Errorf("flow %d (port %d): TTL %d never answered (%d of %d probes answered)", f, firstPort+f, ttl, len(ft.answers), flows*ft.maxTTL)
			}
			paths[f] = append(paths[f], a.from)
			if a.unreach {
				if a.from != dst {
					return nil, fmt.Errorf("flow %d: destination's answer from %s, not %s", f, a.from, dst)
				}
				break
			}
		}
	}
	return paths, nil
}

// echoRequest is the echo request of an echo flow: identifier id,
// sequence number ttl, a 3-byte payload. The kernel fills in the checksum of
// an ICMPv6 raw socket's messages.
func echoRequest(id, ttl int, v6 bool) []byte {
	req := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(ttl >> 8), byte(ttl), 'l', 'a', 'b'}
	if v6 {
		req[0] = 128
	} else {
		binary.BigEndian.PutUint16(req[2:], checksum(req))
	}
	return req
}

// flowOf returns the flow and TTL of a probe from its first 8 bytes of UDP
// (source port, destination port, length) or, echo, of ICMP (type, code,
// checksum, identifier, sequence number).
func flowOf(l4 []byte, maxTTL int, echo bool) (flow, ttl int, ok bool) {
	if echo {
		flow = int(binary.BigEndian.Uint16(l4[4:])) - firstPort
		ttl = int(binary.BigEndian.Uint16(l4[6:]))
	} else {
		if int(binary.BigEndian.Uint16(l4[2:])) != dstPort {
			return
		}
		flow = int(binary.BigEndian.Uint16(l4)) - firstPort
		ttl = int(binary.BigEndian.Uint16(l4[4:])) - 8
	}
	return flow, ttl, flow >= 0 && flow < flows && ttl >= 1 && ttl <= maxTTL
}

// parseReply decodes an ICMP time exceeded or port unreachable quoting one
// of our probes to dst: RFC 792, type, code, checksum, 4 unused bytes, then
// the probe's IP header and at least 8 bytes of its UDP header. With echo,
// the probes are echo requests, and an echo reply (type 0) is the
// destination's answer.
func parseReply(b []byte, dst netip.Addr, maxTTL int, echo bool) (flow, ttl int, reached, ok bool) {
	if echo && len(b) >= 8 && b[0] == 0 && b[1] == 0 {
		flow, ttl, ok = flowOf(b, maxTTL, true)
		return flow, ttl, true, ok
	}
	if len(b) < 8+20+8 {
		return
	}
	switch {
	case b[0] == 11 && b[1] == 0:
	case !echo && b[0] == 3 && b[1] == 3:
		reached = true
	default:
		return
	}
	q := b[8:]
	ihl := int(q[0]&0x0f) * 4
	proto := byte(unix.IPPROTO_UDP)
	if echo {
		proto = unix.IPPROTO_ICMP
	}
	if q[0]>>4 != 4 || q[9] != proto || len(q) < ihl+8 {
		return
	}
	if netip.AddrFrom4([4]byte(q[16:20])) != dst {
		return
	}
	if echo && (q[ihl] != 8 || q[ihl+1] != 0) {
		return
	}
	flow, ttl, ok = flowOf(q[ihl:], maxTTL, echo)
	return flow, ttl, reached, ok
}

// parseReply6 is parseReply for ICMPv6 (RFC 4443): a time exceeded (type
// 3, code 0) or port unreachable (type 1, code 4) quoting the probe's IPv6
// header (40 bytes) and at least 8 bytes of UDP; with echo, of an echo
// request (type 128), and an echo reply (type 129) from the destination.
func parseReply6(b []byte, dst netip.Addr, maxTTL int, echo bool) (flow, ttl int, reached, ok bool) {
	if echo && len(b) >= 8 && b[0] == 129 && b[1] == 0 {
		flow, ttl, ok = flowOf(b, maxTTL, true)
		return flow, ttl, true, ok
	}
	if len(b) < 8+40+8 {
		return
	}
	switch {
	case b[0] == 3 && b[1] == 0:
	case !echo && b[0] == 1 && b[1] == 4:
		reached = true
	default:
		return
	}
	q := b[8:]
	next := byte(unix.IPPROTO_UDP)
	if echo {
		next = unix.IPPROTO_ICMPV6
	}
	if q[0]>>4 != 6 || q[6] != next || netip.AddrFrom16([16]byte(q[24:40])) != dst {
		return
	}
	if echo && (q[40] != 128 || q[41] != 0) {
		return
	}
	flow, ttl, ok = flowOf(q[40:], maxTTL, echo)
	return flow, ttl, reached, ok
}

func setTTL(c syscall.Conn, ttl int, v6 bool) error {
	return control(c, func(fd int) error {
		if v6 {
			return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
	})
}

// forceRcvBuf raises the receive buffer past net.core.rmem_max (root only):
// a burst of hundreds of ICMP errors overflows the default.
func forceRcvBuf(c net.PacketConn, n int) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no file descriptor", c)
	}
	return control(sc, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	})
}

func control(c syscall.Conn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
