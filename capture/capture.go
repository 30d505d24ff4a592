// Package capture owns traceflow-fast's receive socket: an AF_PACKET
// SOCK_DGRAM socket that sees every IPv4 (or, for an IPv6 run, every IPv6)
// packet arriving on one interface (or all of them), filtered in the kernel
// by a socket filter the caller attaches, read in batches with the kernel's
// receive timestamps.
//
// Packets start at the IP header, whatever the link layer (Ethernet,
// loopback, tun): with SOCK_DGRAM the kernel strips the link-layer header,
// and a socket filter sees offset 0 at the IP header too.
//
// The socket is opened by github.com/mdlayher/packet with a classic filter
// that drops everything already attached when bind(2) names the protocol;
// the caller's filter then replaces it. So no packet that the caller's
// filter would drop is ever queued: before bind the socket (created with
// protocol 0) receives nothing (packet(7)), and from bind until the
// caller's filter is in place, the drop-all filter discards every packet.
package capture

// Config configures Listen.
type Config struct {
	// Ifindex is the interface to listen on; 0 means all interfaces.
	Ifindex int
	// Attach attaches the socket filter (SO_ATTACH_FILTER or
	// SO_ATTACH_BPF) to fd, replacing the drop-all filter that Listen
	// attached before bind(2). Listen calls it last, once the socket is
	// bound and its options are set. A nil Attach receives every IPv4
	// (IPv6) packet.
	Attach func(fd int) error
	// IPv6 binds the socket to IPv6 packets (ETH_P_IPV6) instead of IPv4
	// ones (ETH_P_IP).
	IPv6 bool
	// RecvBuf is the socket receive buffer in bytes (SO_RCVBUFFORCE when
	// permitted, else SO_RCVBUF); 0 means DefaultRecvBuf.
	RecvBuf int
}

// Batch is the most packets one ReadBatch delivers (one recvmmsg(2) call).
const Batch = 64

// DefaultRecvBuf is the receive buffer used when Config.RecvBuf is 0.
const DefaultRecvBuf = 64 << 20

// MinSlot is the smallest per-packet buffer. Packets are never truncated:
// a slot holds the largest packet the interface's MTU allows (the largest
// MTU of all interfaces when listening on all of them), and at least
// MinSlot bytes, more than an Ethernet MTU and well above the 576 bytes
// RFC 1812 (section 4.3.2.3) allows an ICMP error, extensions included.
const MinSlot = 2048
