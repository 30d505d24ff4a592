package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ctrlLen is the control buffer per packet: room for SCM_TIMESTAMPNS
// (CMSG_SPACE(sizeof(struct timespec)) = 32 bytes on 64-bit) and more.
const ctrlLen = 64

// Conn is a receive socket. Its ReadBatch must not be called concurrently;
// SetReadDeadline, Stats and Close may be called from any goroutine.
type Conn struct {
	pc   *packet.Conn
	rc   syscall.RawConn
	slot int
	bufs []byte // Batch slots of slot bytes
	ctrl []byte // Batch control buffers of ctrlLen bytes
	hdrs [Batch]unix.Mmsghdr
	iovs [Batch]unix.Iovec

	// State of the recvmmsg call in progress, shared with readFn so that
	// no closure is allocated per call.
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool

	closed    atomic.Bool
	truncated atomic.Uint64

	statsMu           sync.Mutex
	received, dropped uint64
}

// dropAll is the classic filter "ret #0": it keeps no byte of any packet.
// It is attached before bind(2) and stays until Config.Attach replaces it,
// so the socket queues nothing unfiltered in between.
var dropAll = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0}}

// Listen opens the receive socket: an AF_PACKET SOCK_DGRAM socket
// (packet.Listen) bound to ETH_P_IP (ETH_P_IPV6 with cfg.IPv6) on
// cfg.Ifindex with the drop-all filter in place; then PACKET_IGNORE_OUTGOING
// (so the host's own probes are not seen), SO_TIMESTAMPNS and the receive
// buffer; and only then cfg.Attach, whose filter replaces the drop-all one
// (with no Attach, the drop-all filter is removed). It needs CAP_NET_RAW;
// without it the error matches errors.Is(err, os.ErrPermission).
func Listen(cfg Config) (*Conn, error) {
	slot, err := slotSize(cfg.Ifindex)
	if err != nil {
		return nil, err
	}
	proto := unix.ETH_P_IP
	if cfg.IPv6 {
		proto = unix.ETH_P_IPV6
	}
	// packet.Listen opens the socket with protocol 0, which receives
	// nothing (packet(7)), sets Filter, then binds to proto.
	pc, err := packet.Listen(&net.Interface{Index: cfg.Ifindex}, packet.Datagram, proto,
		&packet.Config{Filter: dropAll})
	if err != nil {
		return nil, listenError(bare(err), cfg.Ifindex)
	}
	conn, err := setup(pc, cfg, slot)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return conn, nil
}

// listenError names the step of packet.Listen that failed.
func listenError(err error, ifindex int) error {
	var se *os.SyscallError
	errors.As(err, &se)
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("open AF_PACKET socket: need CAP_NET_RAW: %w", err)
	case se != nil && se.Syscall == "bind" && ifindex != 0:
		return fmt.Errorf("bind to interface index %d: %w", ifindex, err)
	case se != nil && se.Syscall == "bind":
		return fmt.Errorf("bind: %w", err)
	}
	return fmt.Errorf("open AF_PACKET socket: %w", err)
}

// bare returns the error inside the *net.OpError that package packet
// wraps every error in; the callers' messages say what failed.
func bare(err error) error {
	if oe, ok := err.(*net.OpError); ok {
		return oe.Err
	}
	return err
}

func setup(pc *packet.Conn, cfg Config, slot int) (*Conn, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, bare(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setOptions(int(fd), cfg.RecvBuf) }); err != nil {
		return nil, bare(err)
	}
	if serr != nil {
		return nil, serr
	}
	if err := attach(rc, cfg.Attach); err != nil {
		return nil, err
	}
	conn := &Conn{
		pc:   pc,
		rc:   rc,
		slot: slot,
		bufs: make([]byte, Batch*slot),
		ctrl: make([]byte, Batch*ctrlLen),
	}
	for i := range conn.hdrs {
		conn.iovs[i].Base = &conn.bufs[i*slot]
		conn.iovs[i].SetLen(slot)
		h := &conn.hdrs[i].Hdr
		h.Iov = &conn.iovs[i]
		h.SetIovlen(1)
		h.Control = &conn.ctrl[i*ctrlLen]
	}
	conn.readFn = conn.read
	return conn, nil
}

// setOptions sets the socket options, while the drop-all filter holds.
func setOptions(fd, rcvbuf int) error {
	// PACKET_IGNORE_OUTGOING (Linux 4.20): skip packets this host sends.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fmt.Errorf("set PACKET_IGNORE_OUTGOING: %w", os.NewSyscallError("setsockopt", err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("set SO_TIMESTAMPNS: %w", os.NewSyscallError("setsockopt", err))
	}
	if rcvbuf <= 0 {
		rcvbuf = DefaultRecvBuf
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			return fmt.Errorf("set SO_RCVBUF: %w", os.NewSyscallError("setsockopt", err))
		}
	}
	return nil
}

// attach replaces the drop-all filter with the caller's (SO_ATTACH_FILTER
// and SO_ATTACH_BPF both swap the socket's one filter), or removes it when
// there is none. Packets the drop-all filter saw were dropped, not queued.
func attach(rc syscall.RawConn, fn func(fd int) error) error {
	var aerr error
	err := rc.Control(func(fd uintptr) {
		if fn != nil {
			aerr = fn(int(fd))
			return
		}
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
			aerr = os.NewSyscallError("setsockopt", err)
		}
	})
	if err != nil {
		return fmt.Errorf("attach filter: %w", bare(err))
	}
	if aerr != nil {
		return fmt.Errorf("attach filter: %w", aerr)
	}
	return nil
}

// slotSize returns the per-packet buffer size for an interface (0: all).
func slotSize(ifindex int) (int, error) {
	mtu := 0
	if ifindex != 0 {
		ifi, err := net.InterfaceByIndex(ifindex)
		if err != nil {
			return 0, fmt.Errorf("interface index %d: %w", ifindex, err)
		}
		mtu = ifi.MTU
	} else if ifs, err := net.Interfaces(); err == nil {
		for _, ifi := range ifs {
			mtu = max(mtu, ifi.MTU)
		}
	}
	// An IPv4 packet is at most 65535 bytes, whatever the MTU (an IPv6
	// one without jumbogram option too, plus its 40-byte header, which a
	// slot of an MTU-sized packet holds anyway).
	s := min(max(MinSlot, mtu), 1<<16)
	return (s + 63) &^ 63, nil
}

// ReadBatch waits until at least one packet has arrived (or the read
// deadline passes, or the Conn is closed), then reads up to Batch packets
// with one recvmmsg(2) call and calls fn for each, with the packet from its
// IP header on and the kernel's receive time (SO_TIMESTAMPNS). pkt is
// only valid during fn. It returns the number of packets passed to fn.
//
// After Close it returns an error matching errors.Is(err, net.ErrClosed);
// after the deadline, one matching os.ErrDeadlineExceeded. It does not
// allocate.
func (c *Conn) ReadBatch(fn func(pkt []byte, ts time.Time)) (int, error) {
	for i := range c.hdrs {
		c.hdrs[i].Hdr.SetControllen(ctrlLen)
		c.hdrs[i].Hdr.Flags = 0
		c.hdrs[i].Len = 0
	}
	c.n, c.errno = 0, 0
	if err := c.rc.Read(c.readFn); err != nil {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		return 0, bare(err)
	}
	if c.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", c.errno)
	}
	delivered := 0
	for i := range c.n {
		h := &c.hdrs[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			// Longer than the interface MTU (a GRO aggregate): never an
			// ICMP error; counted as dropped rather than cut short.
			c.truncated.Add(1)
			continue
		}
		off := i * c.slot
		fn(c.bufs[off:off+int(h.Len):off+int(h.Len)], c.stamp(i))
		delivered++
	}
	return delivered, nil
}

// read runs recvmmsg(2); it returns false on EAGAIN so that the runtime
// poller waits for the socket to become readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&c.hdrs[0])), Batch, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			c.n = int(r)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.errno = e
		return true
	}
}

// stamp returns the SCM_TIMESTAMPNS time of packet i, or the current time
// if the kernel attached none.
func (c *Conn) stamp(i int) time.Time {
	b := c.ctrl[i*ctrlLen : i*ctrlLen+min(int(c.hdrs[i].Hdr.Controllen), ctrlLen)]
	hlen := unix.CmsgLen(0)
	for len(b) >= hlen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < hlen || l > len(b) {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&b[hlen]))
			return time.Unix(ts.Unix())
		}
		next := unix.CmsgSpace(l - hlen)
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return time.Now()
}

// SetReadDeadline sets the time after which a waiting ReadBatch returns
// os.ErrDeadlineExceeded; the zero time means no deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return bare(c.pc.SetReadDeadline(t))
}

// Stats returns the packets that passed the filter (including those the
// kernel then dropped, as libpcap counts them) and the packets dropped
// because the receive buffer was full (plus any too long for a slot),
// both since Listen (PACKET_STATISTICS, which the kernel resets on every
// read, accumulated here).
func (c *Conn) Stats() (received, dropped uint64, err error) {
	st, err := c.pc.Stats()
	if err != nil {
		return 0, 0, fmt.Errorf("get PACKET_STATISTICS: %w", bare(err))
	}
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	// packet_getsockopt: tp_packets already includes tp_drops.
	c.received += uint64(st.Packets)
	c.dropped += uint64(st.Drops)
	return c.received, c.dropped + c.truncated.Load(), nil
}

// Close closes the socket; a ReadBatch waiting on it returns net.ErrClosed.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return bare(c.pc.Close())
}
