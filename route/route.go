// Package route tells where the probes to a destination leave this host: it
// asks the kernel for its route (rtnetlink RTM_GETROUTE: interface, source
// address, next hop, MTU) and resolves the next hop's link-layer address
// through the neighbour table, asking the kernel to resolve it (ARP, IPv6
// neighbour discovery) when it is not cached. A sender that writes its own
// packets to an AF_PACKET socket needs all of it.
//
// Lookup answers for one destination. A Cache answers for the thousands of
// destinations of a bulk run: it shares one answer among the addresses of a
// /24 (IPv6: /64) when the routing table and the policy rules allow it,
// resolves each next hop once, and interns routes, so that a destination
// costs a kernel request only when the answer may differ from its
// neighbours'.
//
// Routing is read from Linux; on other systems Lookup and NewCache return an
// error that matches errors.Is(err, errors.ErrUnsupported).
package route

import (
	"net"
	"net/netip"
	"time"
)

// Route says where the probes to one destination leave this host: the
// kernel's own choice of interface, source address and next hop, plus the
// next hop's link-layer address that an AF_PACKET sender must write itself.
type Route struct {
	Ifindex int
	IfName  string
	Src     netip.Addr // source address the kernel would use (or the override)
	NextHop netip.Addr // gateway, or the destination itself when on-link
	// HWAddr is the next hop's link-layer address: the resolved neighbour on
	// ARP links, the device's own (all-zero) address on loopback, and nil on
	// links without link-layer addresses (tun, WireGuard, ARPHRD_NONE).
	HWAddr net.HardwareAddr
	MTU    int
}

// Options override the kernel's choices (--interface, --source). The zero
// value leaves them to the kernel.
type Options struct {
	Interface string     // leave by this interface (like ping -I)
	Source    netip.Addr // use this source address; must be local
}

// ResolveTimeout bounds neighbour resolution when Lookup's context has no
// deadline. It matches the kernel's own give-up time for ARP (3 unicast or
// multicast probes, 1 s apart).
const ResolveTimeout = 3 * time.Second
