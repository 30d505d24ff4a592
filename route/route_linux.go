package route

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Lookup asks the kernel how it would send an IP packet to dst, IPv4 or
// IPv6 (RTM_GETROUTE, honouring opt), and resolves the next hop's
// link-layer address through the neighbour table, asking the kernel to
// resolve it (RTM_NEWNEIGH with NTF_USE, which sends an ARP request or an
// IPv6 neighbour solicitation) when it is not cached. It waits for the
// resolution until ctx is done, or for ResolveTimeout when ctx has no
// deadline. A source override must be of dst's family.
//
// Lookup answers for the network namespace of the calling thread.
func Lookup(ctx context.Context, dst netip.Addr, opt Options) (*Route, error) {
	dst = dst.Unmap()
	if err := checkFamily(dst, &opt); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ResolveTimeout)
		defer cancel()
	}

	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		// Bound every request; a netlink reply normally takes microseconds.
		_ = c.SetDeadline(d)
	}
	nl := rtnl{c}
	oif, err := nl.checkOptions(opt)
	if err != nil {
		return nil, err
	}
	r, err := nl.getRoute(dst, opt.Source, oif)
	if err != nil {
		return nil, routeError(dst, opt, err)
	}
	if refuse := r.refusal(); refuse != nil {
		return nil, refuse(dst)
	}
	link, err := nl.linkByIndex(r.oif)
	if err != nil {
		return nil, err
	}
	if link.flags&unix.IFF_UP == 0 {
		return nil, fmt.Errorf("interface %s is down", link.name)
	}
	src, nexthop, mtu := r.endpoints(dst, opt.Source, link)
	if !src.IsValid() {
		return nil, errNoSource(dst, link.name)
	}
	if r.typ == unix.RTN_LOCAL && dst.Is4() {
		if err := checkLocalInput(link.name, dst); err != nil {
			return nil, err
		}
	}
	hw, err := nl.linkLayer(ctx, link, nexthop)
	if err != nil {
		return nil, err
	}
	return &Route{Ifindex: link.index, IfName: link.name, Src: src, NextHop: nexthop, HWAddr: hw, MTU: mtu}, nil
}

// checkOptions checks opt as the kernel would take it: the interface must
// exist and be up, and the source must be an address the kernel delivers
// locally. It returns the interface's index, 0 when opt names none.
func (nl rtnl) checkOptions(opt Options) (oif int, err error) {
	if opt.Interface != "" {
		l, err := nl.linkByName(opt.Interface)
		if err != nil {
			return 0, err
		}
		if l.flags&unix.IFF_UP == 0 {
			return 0, fmt.Errorf("interface %s is down", l.name)
		}
		oif = l.index
	}
	if opt.Source.IsValid() {
		// The kernel accepts any address it would deliver locally as a
		// source (ip_route_output_key_hash_rcu: __ip_dev_find, which falls
		// back to the local table); ask it the same question.
		r, err := nl.getRoute(opt.Source, netip.Addr{}, 0)
		if err != nil || r.typ != unix.RTN_LOCAL {
			return 0, fmt.Errorf("source %s is not an address of this host", opt.Source)
		}
	}
	return oif, nil
}

// refusal returns, when r is a route that probes cannot take, the error
// for a destination d that the kernel routes by r; nil when they can.
func (r routeReply) refusal() func(d netip.Addr) error {
	switch r.typ {
	case unix.RTN_UNICAST, unix.RTN_LOCAL:
	case unix.RTN_BROADCAST, unix.RTN_MULTICAST, unix.RTN_ANYCAST:
		return func(d netip.Addr) error {
			return fmt.Errorf("route to %s: broadcast, multicast and anycast destinations are not supported", d)
		}
	default:
		// RTM_GETROUTE normally fails for these types; be explicit anyway.
		typ := r.typ
		return func(d netip.Addr) error { return fmt.Errorf("no route to %s (route type %d)", d, typ) }
	}
	if r.via {
		return func(d netip.Addr) error {
			return fmt.Errorf("route to %s: next hop of another address family (RTA_VIA) is not supported", d)
		}
	}
	if r.oif == 0 {
		return func(d netip.Addr) error { return fmt.Errorf("no route to %s: kernel gave no output interface", d) }
	}
	return nil
}

// endpoints returns the source address, the next hop and the MTU of the
// probes to dst along r out of link: the source override src, or the
// kernel's preferred source (invalid when the interface has none); the
// gateway, or dst itself on-link; the route's MTU, or the link's.
func (r routeReply) endpoints(dst, src netip.Addr, link linkInfo) (source, nexthop netip.Addr, mtu int) {
	source, nexthop, mtu = r.prefsrc, dst, link.mtu
	if src.IsValid() {
		source = src
	}
	if r.gateway.IsValid() {
		nexthop = r.gateway
	}
	if r.mtu > 0 {
		mtu = r.mtu
	}
	return source, nexthop, mtu
}

// errNoSource says that the route to dst out of dev has no source address.
func errNoSource(dst netip.Addr, dev string) error {
	return fmt.Errorf("route to %s via %s: no source address (the interface has no %s address; use a source override)", dst, dev, family(dst))
}

// checkFamily checks that dst is an address Lookup can look up, and
// that opt's source, unmapped in place, is of its family.
func checkFamily(dst netip.Addr, opt *Options) error {
	switch {
	case !dst.IsValid():
		return errors.New("route: no destination address")
	case dst.Zone() != "":
		return fmt.Errorf("route to %s: addresses with a zone are not supported", dst)
	}
	if opt.Source.IsValid() {
		opt.Source = opt.Source.Unmap()
		if opt.Source.Is4() != dst.Is4() {
			return fmt.Errorf("source %s is not an %s address, as the destination %s is", opt.Source, family(dst), dst)
		}
	}
	return nil
}

// family names dst's address family: IPv4 or IPv6.
func family(dst netip.Addr) string {
	if dst.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkLocalInput reports whether probes to dst, a local address, can be
// injected on dev (loopback). The kernel's input route lookup, which such a
// packet goes through (a locally sent one skips it), drops as martians
// packets from a local source unless accept_local is on
// (fib_validate_source), and packets to 127/8 unless route_localnet is on
// (ip_route_input_slow); both count nowhere, so say so up front.
func checkLocalInput(dev string, dst netip.Addr) error {
	need := []string{"accept_local"}
	if dst.IsLoopback() {
		need = append(need, "route_localnet")
	}
	for _, name := range need {
		// The kernel ORs conf/all and conf/DEV for both settings.
		if sysctlOn("all", name) || sysctlOn(dev, name) {
			continue
		}
		return fmt.Errorf("route to %s: tracing a local address through %s needs sysctl net.ipv4.conf.%s.%s=1 "+
			"(the kernel drops injected packets from a local source as martians otherwise)", dst, dev, dev, name)
	}
	return nil
}

// sysctlOn reads net.ipv4.conf.DEV.NAME; an unreadable one counts as on,
// so that a missing /proc never blocks a trace.
func sysctlOn(dev, name string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + dev + "/" + name)
	if err != nil {
		return true
	}
	return strings.TrimSpace(string(b)) != "0"
}

// routeError names the bad input behind a failed RTM_GETROUTE.
func routeError(dst netip.Addr, opt Options, err error) error {
	via := ""
	if opt.Interface != "" {
		via += " via " + opt.Interface
	}
	if opt.Source.IsValid() {
		via += " from " + opt.Source.String()
	}
	switch {
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ESRCH):
		return fmt.Errorf("no route to %s%s", dst, via)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("route to %s%s is prohibited", dst, via)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("no route to %s%s (blackhole or invalid request): %w", dst, via, err)
	}
	return fmt.Errorf("route to %s%s: %w", dst, via, err)
}

// rtnl is a route netlink connection with the few requests Lookup needs.
// Messages are built by hand: rtnetlink/v2 encodes RTA_PREFSRC where a route
// query needs RTA_SRC, and always sends NDA_LLADDR, which NTF_USE must omit.
type rtnl struct{ c *netlink.Conn }

func (nl rtnl) do(typ netlink.HeaderType, flags netlink.HeaderFlags, data []byte) ([]netlink.Message, error) {
	return nl.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | flags},
		Data:   data,
	})
}

// routeReply is the part of an RTM_NEWROUTE reply that Lookup uses.
type routeReply struct {
	typ     uint8
	oif     int
	prefsrc netip.Addr
	gateway netip.Addr
	via     bool
	mtu     int
}

// getRoute sends RTM_GETROUTE for dst, like `ip route get DST [from SRC] [oif DEV]`.
func (nl rtnl) getRoute(dst, src netip.Addr, oif int) (routeReply, error) {
	attrs, err := routeQuery(dst, src, oif, 0)
	if err != nil {
		return routeReply{}, err
	}
	msgs, err := nl.do(unix.RTM_GETROUTE, 0, attrs)
	if err != nil {
		return routeReply{}, err
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		var r routeReply
		r.typ = m.Data[7]
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofRtMsg:])
		if err != nil {
			return routeReply{}, err
		}
		for ad.Next() {
			switch ad.Type() {
			case unix.RTA_OIF:
				r.oif = int(ad.Uint32())
			case unix.RTA_PREFSRC:
				r.prefsrc = addrOf(ad.Bytes())
			case unix.RTA_GATEWAY:
				r.gateway = addrOf(ad.Bytes())
			case unix.RTA_VIA:
				r.via = true
			case unix.RTA_METRICS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						if nad.Type() == unix.RTAX_MTU {
							r.mtu = int(nad.Uint32())
						}
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return routeReply{}, fmt.Errorf("decode route: %w", err)
		}
		return r, nil
	}
	return routeReply{}, errors.New("rtnetlink: no route in reply")
}

// routeQuery builds the struct rtmsg (rtnetlink(7): family, dst_len,
// src_len, tos, table, protocol, scope, type, flags (u32)) and attributes
// of an RTM_GETROUTE request for dst (from src, out of oif, when given),
// in dst's family.
func routeQuery(dst, src netip.Addr, oif int, flags uint32) ([]byte, error) {
	b := make([]byte, unix.SizeofRtMsg)
	bits := uint8(dst.BitLen())
	b[0], b[1] = afOf(dst), bits
	binary.NativeEndian.PutUint32(b[8:], flags)
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, dst.AsSlice())
	if src.IsValid() {
		b[2] = bits
		ae.Bytes(unix.RTA_SRC, src.AsSlice())
	}
	if oif != 0 {
		ae.Uint32(unix.RTA_OIF, uint32(oif))
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(b, attrs...), nil
}

// afOf returns the address family of a: AF_INET6 or AF_INET.
func afOf(a netip.Addr) uint8 {
	if a.Is6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// linkInfo is the part of an RTM_NEWLINK reply that Lookup uses.
type linkInfo struct {
	index     int
	name      string
	typ       uint16 // ARPHRD_*
	flags     uint32 // IFF_*
	mtu       int
	addr      net.HardwareAddr // the device's own address; nil when addr_len is 0
	broadcast net.HardwareAddr
}

func (nl rtnl) linkByName(name string) (linkInfo, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return linkInfo{}, err
	}
	l, err := nl.getLink(0, attrs)
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return linkInfo{}, fmt.Errorf("interface %s not found", name)
	}
	if err != nil {
		return linkInfo{}, fmt.Errorf("interface %s: %w", name, err)
	}
	return l, nil
}

func (nl rtnl) linkByIndex(index int) (linkInfo, error) {
	l, err := nl.getLink(index, nil)
	if err != nil {
		return linkInfo{}, fmt.Errorf("interface index %d: %w", index, err)
	}
	return l, nil
}

func (nl rtnl) getLink(index int, attrs []byte) (linkInfo, error) {
	// struct ifinfomsg: family (u8), pad, type (u16), index (s32),
	// flags (u32), change (u32).
	b := make([]byte, unix.SizeofIfInfomsg, unix.SizeofIfInfomsg+len(attrs))
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	msgs, err := nl.do(unix.RTM_GETLINK, 0, append(b, attrs...))
	if err != nil {
		return linkInfo{}, err
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		l := linkInfo{
			typ:   binary.NativeEndian.Uint16(m.Data[2:]),
			index: int(int32(binary.NativeEndian.Uint32(m.Data[4:]))),
			flags: binary.NativeEndian.Uint32(m.Data[8:]),
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
		if err != nil {
			return linkInfo{}, err
		}
		for ad.Next() {
			switch ad.Type() {
			case unix.IFLA_IFNAME:
				l.name = ad.String()
			case unix.IFLA_MTU:
				l.mtu = int(ad.Uint32())
			case unix.IFLA_ADDRESS:
				if b := ad.Bytes(); len(b) > 0 {
					l.addr = net.HardwareAddr(append([]byte(nil), b...))
				}
			case unix.IFLA_BROADCAST:
				if b := ad.Bytes(); len(b) > 0 {
					l.broadcast = net.HardwareAddr(append([]byte(nil), b...))
				}
			}
		}
		if err := ad.Err(); err != nil {
			return linkInfo{}, fmt.Errorf("decode link: %w", err)
		}
		return l, nil
	}
	return linkInfo{}, errors.New("rtnetlink: no link in reply")
}

// linkLayer returns the link-layer address to put in frames to nexthop on
// link, following the kernel's arp_constructor: no address on links without
// one, the device's own address on loopback and NOARP links, the broadcast
// address on point-to-point links, and the resolved neighbour otherwise.
// A neighbour entry the administrator (or the kernel) already has wins.
func (nl rtnl) linkLayer(ctx context.Context, link linkInfo, nexthop netip.Addr) (net.HardwareAddr, error) {
	if len(link.addr) == 0 {
		return nil, nil // tun, WireGuard, ARPHRD_NONE: no link-layer header
	}
	if link.flags&(unix.IFF_LOOPBACK|unix.IFF_NOARP|unix.IFF_POINTOPOINT) != 0 {
		if n, err := nl.getNeigh(link.index, nexthop); err == nil && n.valid() && len(n.lladdr) > 0 {
			return n.lladdr, nil
		}
		if link.flags&(unix.IFF_LOOPBACK|unix.IFF_NOARP) == 0 && len(link.broadcast) > 0 {
			return link.broadcast, nil
		}
		return link.addr, nil
	}
	return nl.resolve(ctx, link, nexthop)
}

// resolve polls the neighbour table for nexthop on link, asking the kernel
// to resolve the entry whenever it is missing or has failed.
func (nl rtnl) resolve(ctx context.Context, link linkInfo, nexthop netip.Addr) (net.HardwareAddr, error) {
	wait := time.Millisecond
	state := uint16(unix.NUD_NONE)
	var lastErr error
	for {
		n, err := nl.getNeigh(link.index, nexthop)
		switch {
		case err == nil && n.valid() && len(n.lladdr) > 0:
			return n.lladdr, nil
		case err == nil:
			state = n.state
		case errors.Is(err, unix.ENOENT):
			state = unix.NUD_NONE
		case ctx.Err() == nil:
			lastErr = err
		}
		// An entry being resolved (INCOMPLETE, or PROBE for a stale one)
		// needs no new request; a missing, NONE or FAILED one does.
		if state&(unix.NUD_INCOMPLETE|unix.NUD_PROBE) == 0 {
			err := nl.useNeigh(link.index, nexthop)
			if errors.Is(err, unix.EPERM) {
				// RTM_NEWNEIGH needs CAP_NET_ADMIN, which a run
				// without privileges (or past dropping them) lacks:
				// a datagram to the next hop makes the kernel
				// resolve it all the same.
				err = kickNeigh(nexthop, link.name)
			}
			if err != nil && ctx.Err() == nil {
				return nil, fmt.Errorf("resolve %s on %s: %w", nexthop, link.name, err)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			why := "neighbour state " + nudString(state)
			if lastErr != nil {
				why = lastErr.Error()
			}
			return nil, fmt.Errorf("no link-layer address for %s on %s (%s)", nexthop, link.name, why)
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// neighbour is the part of an RTM_NEWNEIGH reply that Lookup uses.
type neighbour struct {
	state  uint16
	lladdr net.HardwareAddr
}

// valid reports whether the entry holds a usable address (NUD_VALID in
// <net/neighbour.h>: PERMANENT, NOARP, REACHABLE, PROBE, STALE, DELAY).
func (n neighbour) valid() bool {
	return n.state&(unix.NUD_PERMANENT|unix.NUD_NOARP|unix.NUD_REACHABLE|unix.NUD_PROBE|unix.NUD_STALE|unix.NUD_DELAY) != 0
}

// ndmsg builds struct ndmsg: family (u8), pad (u8, u16), ifindex (s32),
// state (u16), flags (u8), type (u8); then NDA_DST, in dst's family.
func ndmsg(ifindex int, state uint16, flags uint8, dst netip.Addr) []byte {
	b := make([]byte, unix.SizeofNdMsg, unix.SizeofNdMsg+20)
	b[0] = afOf(dst)
	binary.NativeEndian.PutUint32(b[4:], uint32(ifindex))
	binary.NativeEndian.PutUint16(b[8:], state)
	b[10] = flags
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.NDA_DST, dst.AsSlice())
	attrs, _ := ae.Encode() // cannot fail: one fixed-size attribute
	return append(b, attrs...)
}

// getNeigh reads one neighbour entry (RTM_GETNEIGH without NLM_F_DUMP:
// neigh_get, Linux 5.2+, which takes only NDA_DST and the ifindex).
func (nl rtnl) getNeigh(ifindex int, addr netip.Addr) (neighbour, error) {
	msgs, err := nl.do(unix.RTM_GETNEIGH, 0, ndmsg(ifindex, 0, 0, addr))
	if err != nil {
		return neighbour{}, err
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEIGH || len(m.Data) < unix.SizeofNdMsg {
			continue
		}
		n := neighbour{state: binary.NativeEndian.Uint16(m.Data[8:])}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofNdMsg:])
		if err != nil {
			return neighbour{}, err
		}
		for ad.Next() {
			if ad.Type() == unix.NDA_LLADDR {
				if b := ad.Bytes(); len(b) > 0 {
					n.lladdr = net.HardwareAddr(append([]byte(nil), b...))
				}
			}
		}
		return n, ad.Err()
	}
	return neighbour{}, unix.ENOENT
}

// useNeigh asks the kernel to resolve addr on ifindex, like
// `ip neigh replace ADDR dev DEV use`: RTM_NEWNEIGH with NTF_USE creates
// the entry if needed (NLM_F_CREATE) and calls neigh_event_send on it,
// which starts ARP (or IPv6 neighbour discovery); the state in the request
// is ignored with NTF_USE.
func (nl rtnl) useNeigh(ifindex int, addr netip.Addr) error {
	_, err := nl.do(unix.RTM_NEWNEIGH, netlink.Create|netlink.Replace|netlink.Acknowledge,
		ndmsg(ifindex, unix.NUD_NONE, unix.NTF_USE, addr))
	return err
}

// kickNeigh sends an empty UDP datagram to the discard port of addr, a
// neighbour on interface dev, which needs no privilege and makes the kernel
// resolve addr's link-layer address (ARP, or IPv6 neighbour discovery) on
// the way. An IPv6 link-local next hop is reached through dev (its zone).
func kickNeigh(addr netip.Addr, dev string) error {
	network := "udp4"
	if addr.Is6() {
		network = "udp6"
		if addr.IsLinkLocalUnicast() && addr.Zone() == "" {
			addr = addr.WithZone(dev)
		}
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 9)))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(nil)
	return err
}

func nudString(s uint16) string {
	names := []struct {
		bit  uint16
		name string
	}{
		{unix.NUD_INCOMPLETE, "INCOMPLETE"}, {unix.NUD_REACHABLE, "REACHABLE"},
		{unix.NUD_STALE, "STALE"}, {unix.NUD_DELAY, "DELAY"}, {unix.NUD_PROBE, "PROBE"},
		{unix.NUD_FAILED, "FAILED"}, {unix.NUD_NOARP, "NOARP"}, {unix.NUD_PERMANENT, "PERMANENT"},
	}
	for _, n := range names {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return "NONE"
}

func addr4(b []byte) netip.Addr {
	if len(b) != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(b))
}

// addrOf returns the IPv4 (4 bytes) or IPv6 (16 bytes) address in b.
func addrOf(b []byte) netip.Addr {
	if len(b) == 16 {
		return netip.AddrFrom16([16]byte(b))
	}
	return addr4(b)
}
