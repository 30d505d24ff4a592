package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/route"
)

// SendBatch is the number of probes a Sender hands the kernel per
// sendmmsg(2) call.
const SendBatch = 64

// Sender tuning.
const (
	sendBuffer = 4 << 20 // SO_SNDBUF(FORCE), bytes
	// sendStall is how long Send keeps retrying ENOBUFS (a full device
	// queue) without any progress before it gives up.
	sendStall = 250 * time.Millisecond
)

// Sender writes complete IP packets to a Route's next hop through an
// AF_PACKET SOCK_DGRAM socket: the kernel builds the link-layer header from
// the next hop's address (or none, on links without one) and the packets
// bypass the host's routing, firewall output hooks and, when the kernel
// allows it, the qdisc. A Sender is safe for concurrent use; sends are
// serialized.
type Sender struct {
	mu   sync.Mutex
	fd   int
	to   unix.RawSockaddrLinklayer
	hdrs [SendBatch]unix.Mmsghdr
	iovs [SendBatch]unix.Iovec
	// now and sleep time the back-off on a full device queue: the
	// system's clock, or a test's.
	now   func() time.Time
	sleep func(time.Duration)
}

// NewSender opens an AF_PACKET socket that sends to rt's next hop.
//
// The socket has protocol 0, so it is never bound to a protocol and
// receives nothing (packet(7): "If protocol is set to zero, no packets are
// received"). It is a plain blocking socket, deliberately kept out of the
// Go runtime's poller: a socket registered with epoll wakes the poller
// every time the kernel frees a sent packet's buffer, a context switch
// per few packets at high rates. A full send buffer just blocks the
// sending goroutine's thread until it drains. Opening it needs
// CAP_NET_RAW; without it the error matches errors.Is(err,
// os.ErrPermission).
func NewSender(rt *route.Route) (*Sender, error) {
	to, err := linkAddr(rt)
	if err != nil {
		return nil, fmt.Errorf("new sender: %w", err)
	}
	s, err := newSender()
	if err != nil {
		return nil, err
	}
	s.to = to
	return s, nil
}

// newSender opens a sender with no destination of its own, for SendTo.
func newSender() (*Sender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		err = os.NewSyscallError("socket", err)
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("open AF_PACKET socket: need CAP_NET_RAW: %w", err)
		}
		return nil, fmt.Errorf("open AF_PACKET socket: %w", err)
	}
	// packet(7) PACKET_QDISC_BYPASS: hand packets straight to the driver.
	// Best effort: probes are not worth a failure here.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
	}
	s := &Sender{fd: fd, now: time.Now, sleep: time.Sleep}
	for i := range s.hdrs {
		h := &s.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrLinklayer
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
	}
	return s, nil
}

// linkAddr is the struct sockaddr_ll (packet(7)) that sends to rt's next
// hop: for SOCK_DGRAM "sll_addr" is the destination link-layer address the
// kernel puts in the header, and sll_protocol the EtherType: IPv6's when
// the route's next hop is IPv6, else IPv4's.
func linkAddr(rt *route.Route) (unix.RawSockaddrLinklayer, error) {
	if rt == nil || rt.Ifindex <= 0 {
		return unix.RawSockaddrLinklayer{}, errors.New("route has no interface")
	}
	if len(rt.HWAddr) > len(unix.RawSockaddrLinklayer{}.Addr) {
		return unix.RawSockaddrLinklayer{}, fmt.Errorf("link-layer address %s of %s is longer than 8 bytes", rt.HWAddr, rt.IfName)
	}
	proto := uint16(unix.ETH_P_IP)
	if rt.NextHop.Is6() && !rt.NextHop.Is4In6() {
		proto = unix.ETH_P_IPV6
	}
	to := unix.RawSockaddrLinklayer{
		Family:   unix.AF_PACKET,
		Protocol: htons(proto),
		Ifindex:  int32(rt.Ifindex),
		Halen:    uint8(len(rt.HWAddr)),
	}
	copy(to.Addr[:], rt.HWAddr)
	return to, nil
}

// htons converts a 16-bit value to network byte order in memory.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Send sends every element of pkts, each a complete IP packet of the
// route's family, to the
// route's next hop, up to SendBatch packets per system call. When the
// socket buffer is full it waits for it to drain, and when the device queue
// is full (ENOBUFS) it backs off and retries, so that probes are delayed
// rather than dropped; it gives up after 250 ms without progress. It
// returns the number of packets sent, which is len(pkts) unless err is set.
// Send does not allocate.
func (s *Sender) Send(pkts [][]byte) (int, error) {
	return s.sendTo(&s.to, pkts)
}

// sendTo is Send to the link-layer destination to. One socket sends to any
// interface and next hop this way, so no socket is opened per route (which
// would need privileges that are dropped once a run starts).
func (s *Sender) sendTo(to *unix.RawSockaddrLinklayer, pkts [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if to.Ifindex <= 0 {
		return 0, errors.New("send: no destination")
	}
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(to))
	}
	defer func() {
		for i := range s.hdrs {
			s.hdrs[i].Hdr.Name = nil
		}
	}()
	done := 0
	backoff := time.Duration(0)
	var stalled time.Time
	for done < len(pkts) {
		n := min(len(pkts)-done, SendBatch)
		for i, p := range pkts[done : done+n] {
			if len(p) == 0 {
				s.release(n)
				return done, errors.New("send: empty packet")
			}
			s.iovs[i].Base = &p[0]
			s.iovs[i].SetLen(len(p))
		}
		if s.fd < 0 {
			s.release(n)
			return done, errors.New("send: sender closed")
		}
		sent, errno := s.sendmmsg(n)
		done += sent
		switch {
		case errno == 0:
			backoff = 0
			continue
		case errno == unix.ENOBUFS:
			// The driver (or a veth peer's backlog) is full; it drains in
			// microseconds. Back off exponentially from 10 µs to 1 ms.
			if backoff == 0 {
				stalled = s.now()
			} else if s.now().Sub(stalled) > sendStall {
				s.release(n)
				return done, os.NewSyscallError("sendmmsg", errno)
			}
			backoff = min(max(2*backoff, 10*time.Microsecond), time.Millisecond)
			s.sleep(backoff)
		default:
			s.release(n)
			return done, os.NewSyscallError("sendmmsg", errno)
		}
	}
	s.release(min(len(pkts), SendBatch))
	return done, nil
}

// sendmmsg runs sendmmsg(2) on the first n prepared messages. It returns
// how many were sent, and the error of the first that was not.
func (s *Sender) sendmmsg(n int) (int, syscall.Errno) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(n), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		// sendmmsg reports an error only when it sent nothing; a short
		// count means the next packet failed and the caller retries it.
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

// release drops the references to the caller's packets.
func (s *Sender) release(n int) {
	for i := range n {
		s.iovs[i].Base = nil
	}
}

// Close closes the socket.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
