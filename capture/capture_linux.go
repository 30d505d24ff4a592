package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"
)

// ctrlLen is the control buffer per packet: room for SCM_TIMESTAMPNS
// (CMSG_SPACE(sizeof(struct timespec)) = 32 bytes on 64-bit) and more.
const ctrlLen = 64

// Conn is a receive socket. Its ReadBatch must not be called concurrently;
// SetReadDeadline, Stats and Close may be called from any goroutine.
type Conn struct {
	c    *socket.Conn
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

// Listen opens the receive socket: socket(AF_PACKET, SOCK_DGRAM, 0), then
// cfg.Attach, then PACKET_IGNORE_OUTGOING (so the host's own probes are not
// seen) and SO_TIMESTAMPNS, and only then bind(2) to ETH_P_IP (ETH_P_IPV6
// with cfg.IPv6) on cfg.Ifindex. It needs CAP_NET_RAW; without it the error matches
// errors.Is(err, os.ErrPermission).
func Listen(cfg Config) (*Conn, error) {
	slot, err := slotSize(cfg.Ifindex)
	if err != nil {
		return nil, err
	}
	// Protocol 0: "no packets are received" until bind names a protocol
	// (packet(7)), so nothing is queued before the filter is in place.
	c, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "packet", nil)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("open AF_PACKET socket: need CAP_NET_RAW: %w", err)
		}
		return nil, fmt.Errorf("open AF_PACKET socket: %w", err)
	}
	conn, err := setup(c, cfg, slot)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

func setup(c *socket.Conn, cfg Config, slot int) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	if cfg.Attach != nil {
		var aerr error
		if err := rc.Control(func(fd uintptr) { aerr = cfg.Attach(int(fd)) }); err != nil {
			return nil, fmt.Errorf("attach filter: %w", err)
		}
		if aerr != nil {
			return nil, fmt.Errorf("attach filter: %w", aerr)
		}
	}
	// PACKET_IGNORE_OUTGOING (Linux 4.20): skip packets this host sends.
	if err := c.SetsockoptInt(unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return nil, fmt.Errorf("set PACKET_IGNORE_OUTGOING: %w", err)
	}
	if err := c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return nil, fmt.Errorf("set SO_TIMESTAMPNS: %w", err)
	}
	rcvbuf := cfg.RecvBuf
	if rcvbuf <= 0 {
		rcvbuf = DefaultRecvBuf
	}
	if err := c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		if err := c.SetsockoptInt(unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			return nil, fmt.Errorf("set SO_RCVBUF: %w", err)
		}
	}
	proto := uint16(unix.ETH_P_IP)
	if cfg.IPv6 {
		proto = unix.ETH_P_IPV6
	}
	if err := c.Bind(&unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: cfg.Ifindex}); err != nil {
		if cfg.Ifindex != 0 {
			return nil, fmt.Errorf("bind to interface index %d: %w", cfg.Ifindex, err)
		}
		return nil, fmt.Errorf("bind: %w", err)
	}

	conn := &Conn{
		c:    c,
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

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
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
		return 0, err
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
	return c.c.SetReadDeadline(t)
}

// Stats returns the packets that passed the filter (including those the
// kernel then dropped, as libpcap counts them) and the packets dropped
// because the receive buffer was full (plus any too long for a slot),
// both since Listen (PACKET_STATISTICS, which the kernel resets on every
// read, accumulated here).
func (c *Conn) Stats() (received, dropped uint64, err error) {
	st, err := c.c.GetsockoptTpacketStats(unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, 0, fmt.Errorf("get PACKET_STATISTICS: %w", err)
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
	return c.c.Close()
}
