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
// The filter is attached before the socket is bound to a protocol, so no
// packet that the filter would drop is ever queued: packet(7) sockets
// created with protocol 0 receive nothing until bind(2) names one.
package capture

// Config configures Listen.
type Config struct {
	// Ifindex is the interface to listen on; 0 means all interfaces.
	Ifindex int
	// Attach attaches the socket filter (SO_ATTACH_FILTER or
	// SO_ATTACH_BPF) to fd. Listen calls it before the socket is bound to
	// a protocol. A nil Attach receives every IPv4 (IPv6) packet.
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
