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

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"
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

// Sender writes complete IPv4 packets to a Route's next hop through an
// AF_PACKET SOCK_DGRAM socket: the kernel builds the link-layer header from
// the next hop's address (or none, on links without one) and the packets
// bypass the host's routing, firewall output hooks and, when the kernel
// allows it, the qdisc. A Sender is safe for concurrent use; sends are
// serialized.
type Sender struct {
	mu   sync.Mutex
	c    *socket.Conn
	rc   syscall.RawConn
	to   unix.RawSockaddrLinklayer
	hdrs [SendBatch]unix.Mmsghdr
	iovs [SendBatch]unix.Iovec

	// State of the sendmmsg call in progress, shared with writeFn so that
	// no closure is allocated per call.
	n, sent int
	errno   syscall.Errno
	writeFn func(fd uintptr) bool
}

// NewSender opens an AF_PACKET socket that sends to rt's next hop.
//
// The socket has protocol 0, so it is never bound to a protocol and
// receives nothing (packet(7): "If protocol is set to zero, no packets are
// received"). Opening it needs CAP_NET_RAW; without it the error matches
// errors.Is(err, os.ErrPermission).
func NewSender(rt *Route) (*Sender, error) {
	if rt == nil || rt.Ifindex <= 0 {
		return nil, errors.New("new sender: route has no interface")
	}
	if len(rt.HWAddr) > len(unix.RawSockaddrLinklayer{}.Addr) {
		return nil, fmt.Errorf("new sender: link-layer address %s of %s is longer than 8 bytes", rt.HWAddr, rt.IfName)
	}
	c, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "packet", nil)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("open AF_PACKET socket: need CAP_NET_RAW: %w", err)
		}
		return nil, fmt.Errorf("open AF_PACKET socket: %w", err)
	}
	// packet(7) PACKET_QDISC_BYPASS: hand packets straight to the driver.
	// Best effort: probes are not worth a failure here.
	_ = c.SetsockoptInt(unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	if err := c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer); err != nil {
		_ = c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &Sender{c: c, rc: rc}
	// struct sockaddr_ll (packet(7)); for SOCK_DGRAM "sll_addr" is the
	// destination link-layer address the kernel puts in the header, and
	// sll_protocol the EtherType.
	s.to = unix.RawSockaddrLinklayer{
		Family:   unix.AF_PACKET,
		Protocol: htons(unix.ETH_P_IP),
		Ifindex:  int32(rt.Ifindex),
		Halen:    uint8(len(rt.HWAddr)),
	}
	copy(s.to.Addr[:], rt.HWAddr)
	for i := range s.hdrs {
		h := &s.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.to))
		h.Namelen = unix.SizeofSockaddrLinklayer
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
	}
	s.writeFn = s.write
	return s, nil
}

// htons converts a 16-bit value to network byte order in memory.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Send sends every element of pkts, each a complete IPv4 packet, to the
// route's next hop, up to SendBatch packets per system call. When the
// socket buffer is full it waits for it to drain, and when the device queue
// is full (ENOBUFS) it backs off and retries, so that probes are delayed
// rather than dropped; it gives up after 250 ms without progress. It
// returns the number of packets sent, which is len(pkts) unless err is set.
// Send does not allocate.
func (s *Sender) Send(pkts [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
		s.n, s.sent, s.errno = n, 0, 0
		if err := s.rc.Write(s.writeFn); err != nil {
			s.release(n)
			return done, fmt.Errorf("send: %w", err)
		}
		done += s.sent
		switch {
		case s.errno == 0:
			backoff = 0
			continue
		case s.errno == unix.ENOBUFS:
			// The driver (or a veth peer's backlog) is full; it drains in
			// microseconds. Back off exponentially from 10 µs to 1 ms.
			if backoff == 0 {
				stalled = time.Now()
			} else if time.Since(stalled) > sendStall {
				s.release(n)
				return done, os.NewSyscallError("sendmmsg", s.errno)
			}
			backoff = min(max(2*backoff, 10*time.Microsecond), time.Millisecond)
			time.Sleep(backoff)
		default:
			s.release(n)
			return done, os.NewSyscallError("sendmmsg", s.errno)
		}
	}
	s.release(min(len(pkts), SendBatch))
	return done, nil
}

// write runs sendmmsg(2) on the prepared batch; it returns false on EAGAIN
// so that the runtime poller waits until the socket is writable.
func (s *Sender) write(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.n), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		// sendmmsg reports an error only when it sent nothing; a short
		// count means the next packet failed and the caller retries it.
		if e != 0 {
			r = 0
		}
		s.sent, s.errno = int(r), e
		return true
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
	return s.c.Close()
}
