package route

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Cache answers Lookup's question for many destinations, asking
// the kernel as seldom as it can while giving the same answers.
//
// Sharing. The kernel picks a route by the longest prefix that matches the
// destination, in the tables that the first matching policy rule names.
// Among the selectors of a rule only the destination prefix (FRA_DST)
// depends on the destination; source, interface, mark, TOS and UID are the
// same for every lookup of one cache. So when no route and no rule longer
// than /24 overlaps a /24, every address of it matches the same rules and
// the same route (a prefix of /24 or shorter holds either the whole /24 or
// none of it), and the answer for one address holds for all of them,
// provided that answer does not depend on the address itself. It does when
// the route is on-link (the next hop is the destination), local, or has
// several next hops (the kernel hashes the destination to choose one); such
// /24s, and those that the dump at NewCache found overlapped by a
// longer route or rule, are looked up one address at a time. To tell,
// the first lookup of each /24 also asks which FIB entry matched
// (RTM_F_FIB_MATCH, `ip route get fibmatch`): its next hops, and its prefix
// length, which also catches a longer route added since the dump. Refusals
// (no route, prohibited, blackhole) are shared the same way.
//
// IPv6 destinations are shared the same way by /64 (no route or rule
// longer than /64 overlaps it, a FIB entry of /64 or shorter with a single
// next hop): the longer IPv6 prefixes are read from the kernel at the first
// IPv6 lookup.
//
// The cache is a snapshot: routes, rules and neighbours that change after
// an address was looked up are not seen for it, nor for its /24 (or /64).
//
// Routes are interned: lookups that give the same interface, source, next
// hop, link-layer address and MTU return the same *Route, which callers must
// not modify. Each next hop is resolved (neighbour table, ARP) once.
//
// A Cache is safe for concurrent use; lookups of one /24 (or address)
// or one next hop that run at once wait for a single kernel request. It asks
// the kernel through a netlink socket opened by NewCache, so it answers
// for the network namespace of the thread that called NewCache,
// whatever goroutine calls Lookup. Close releases the socket.
type Cache struct {
	opts Options
	oif  int
	nl   rtnl
	// long holds, sorted, the /24s (address>>8) that a route or rule
	// longer than /24 overlaps. Such a prefix lies within one /24.
	long []uint32

	mu     sync.Mutex
	closed bool
	blocks map[uint32]*routeEntry // by /24 (address>>8)
	hosts  map[uint32]*routeEntry // by address, in /24s that cannot share
	// The same for IPv6, by /64 (the upper half of the address): long6
	// is read at the first IPv6 lookup (read6 says it was; err6 is the
	// error of reading it).
	long6   []uint64
	read6   bool
	err6    error
	blocks6 map[uint64]*routeEntry
	hosts6  map[netip.Addr]*routeEntry
	routes  map[routeKey]*Route
	hops    map[hopKey]*hopEntry
	links   map[int]linkInfo

	lookups     atomic.Int64 // destinations asked of the kernel (RTM_GETROUTE)
	resolutions atomic.Int64 // next hops resolved (neighbour table)
}

// routeEntry is the verdict for a /24 or an address. Its other fields are
// set, under Cache.mu, before done is closed.
type routeEntry struct {
	done  chan struct{}
	final bool // verdict in; false while a lookup is under way
	retry bool // the lookup ended without a verdict (its context ended)
	split bool // blocks only: look each address of this /24 up alone
	rt    *Route
	fail  func(dst netip.Addr) error // the error for dst, when rt is nil
}

// closedChan is the done channel of entries created with their verdict.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

type routeKey struct {
	ifindex, mtu int
	src, nexthop netip.Addr
	hw           string
}

type hopKey struct {
	ifindex int
	addr    netip.Addr
}

type hopEntry struct {
	done  chan struct{}
	retry bool
	hw    net.HardwareAddr
	err   error
}

// NewCache checks opts (the interface must exist and be up, the source
// must be local) and reads the IPv4 routes of all tables and the IPv4
// policy rules, to learn which /24s are split by longer prefixes (the IPv6
// ones are read at the first IPv6 lookup). With a source, the cache answers
// for destinations of its family only. ctx bounds this setup only. Close
// the cache when done.
func NewCache(ctx context.Context, opts Options) (*Cache, error) {
	if opts.Source.IsValid() {
		opts.Source = opts.Source.Unmap()
		if opts.Source.Zone() != "" {
			return nil, fmt.Errorf("source %s: addresses with a zone are not supported", opts.Source)
		}
	}
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	c := &Cache{
		opts:    opts,
		nl:      rtnl{conn},
		blocks:  make(map[uint32]*routeEntry),
		hosts:   make(map[uint32]*routeEntry),
		blocks6: make(map[uint64]*routeEntry),
		hosts6:  make(map[netip.Addr]*routeEntry),
		routes:  make(map[routeKey]*Route),
		hops:    make(map[hopKey]*hopEntry),
		links:   make(map[int]linkInfo),
	}
	if err := c.setup(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	// Requests are answered while they are sent, so later ones need no
	// deadline; one that expired could leave a late reply in the socket.
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *Cache) setup(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		_ = c.nl.c.SetDeadline(d)
	}
	oif, err := c.nl.checkOptions(c.opts)
	if err != nil {
		return err
	}
	c.oif = oif
	long, err := longPrefixes(c.nl, unix.AF_INET, 24, func(a netip.Addr) uint32 { return key4(a) >> 8 })
	if err != nil {
		return err
	}
	c.long = long
	return nil
}

// longPrefixes dumps the routes of family af (AF_INET, AF_INET6) of all
// tables (rtm_table 0 without strict checking) and its rules, and returns
// the sorted keys of the blocks (/24s, /64s: prefixes of length share)
// that their destination prefixes longer than share lie in, key giving a
// block's key from one of its addresses. struct rtmsg and struct
// fib_rule_hdr both hold the family at byte 0 and the destination length
// at byte 1, and RTA_DST and FRA_DST are both attribute 1.
func longPrefixes[K cmp.Ordered](nl rtnl, af uint8, share uint8, key func(netip.Addr) K) ([]K, error) {
	var long []K
	name := "IPv4"
	if af == unix.AF_INET6 {
		name = "IPv6"
	}
	for _, d := range []struct {
		what       string
		req, reply netlink.HeaderType
	}{
		{"routes", unix.RTM_GETROUTE, unix.RTM_NEWROUTE},
		{"rules", unix.RTM_GETRULE, unix.RTM_NEWRULE},
	} {
		hdr := make([]byte, 12) // sizeof(struct rtmsg) == sizeof(struct fib_rule_hdr)
		hdr[0] = af
		msgs, err := nl.do(d.req, netlink.Dump, hdr)
		if err != nil {
			return nil, fmt.Errorf("dump %s %s: %w", name, d.what, err)
		}
		for _, m := range msgs {
			if m.Header.Type != d.reply || len(m.Data) < 12 || m.Data[0] != af || m.Data[1] <= share {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[12:])
			if err != nil {
				return nil, fmt.Errorf("dump %s %s: %w", name, d.what, err)
			}
			for ad.Next() {
				if ad.Type() == unix.RTA_DST { // == unix.FRA_DST
					if a := addrOf(ad.Bytes()); a.IsValid() && afOf(a) == af {
						long = append(long, key(a))
					}
				}
			}
		}
	}
	slices.Sort(long)
	return slices.Compact(long), nil
}

// key64 is the /64 of an IPv6 address: its upper 64 bits.
func key64(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}

func key4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// Lookup returns the route to dst as the function [Lookup](ctx, dst, opts)
// would, from the cache when it can. Resolving a next hop takes until ctx is done
// or ResolveTimeout at the most; a lookup cut short by ctx is not cached,
// a resolution that timed out by itself is. A cached route costs no
// allocation (a cached error builds its message).
func (c *Cache) Lookup(ctx context.Context, dst netip.Addr) (*Route, error) {
	dst = dst.Unmap()
	opts := c.opts
	if err := checkFamily(dst, &opts); err != nil {
		return nil, err
	}
	if dst.Is6() {
		return c.lookup6(ctx, dst)
	}
	a := key4(dst)
	if _, found := slices.BinarySearch(c.long, a>>8); !found {
		e, err := entry(c, ctx, c.blocks, a>>8, dst, true)
		if err != nil {
			return nil, err
		}
		if !e.split {
			return e.verdict(dst)
		}
	}
	e, err := entry(c, ctx, c.hosts, a, dst, false)
	if err != nil {
		return nil, err
	}
	return e.verdict(dst)
}

// lookup6 is Lookup for an IPv6 destination: shared by /64.
func (c *Cache) lookup6(ctx context.Context, dst netip.Addr) (*Route, error) {
	long, err := c.longPrefixes6()
	if err != nil {
		return nil, fmt.Errorf("route to %s: %w", dst, err)
	}
	block := key64(dst)
	if _, found := slices.BinarySearch(long, block); !found {
		e, err := entry(c, ctx, c.blocks6, block, dst, true)
		if err != nil {
			return nil, err
		}
		if !e.split {
			return e.verdict(dst)
		}
	}
	e, err := entry(c, ctx, c.hosts6, dst, dst, false)
	if err != nil {
		return nil, err
	}
	return e.verdict(dst)
}

// longPrefixes6 reads, once, the /64s that IPv6 routes and rules longer
// than /64 overlap. Such a prefix lies within one /64.
func (c *Cache) longPrefixes6() ([]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.read6 && !c.closed {
		c.read6 = true
		c.long6, c.err6 = longPrefixes(c.nl, unix.AF_INET6, 64, key64)
	}
	return c.long6, c.err6
}

// hostEntry records, for dst alone, the verdict found for it when its
// block turned out not to share one. Called with c.mu held.
func (c *Cache) hostEntry(dst netip.Addr, rt *Route, fail func(netip.Addr) error) {
	e := &routeEntry{done: closedChan, final: true, rt: rt, fail: fail}
	if dst.Is6() {
		if c.hosts6[dst] == nil {
			c.hosts6[dst] = e
		}
	} else if a := key4(dst); c.hosts[a] == nil {
		c.hosts[a] = e
	}
}

func (e *routeEntry) verdict(dst netip.Addr) (*Route, error) {
	if e.fail != nil {
		return nil, e.fail(dst)
	}
	return e.rt, nil
}

// entry returns the verdict of m[key], looking dst up when there is none
// and waiting for a lookup under way.
func entry[K comparable](c *Cache, ctx context.Context, m map[K]*routeEntry, key K, dst netip.Addr, block bool) (*routeEntry, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("route to %s: route cache closed", dst)
		}
		e := m[key]
		if e != nil && e.final {
			c.mu.Unlock()
			return e, nil
		}
		if e == nil {
			e = &routeEntry{done: make(chan struct{})}
			m[key] = e
			c.mu.Unlock()
			if err := fill(c, ctx, m, key, e, dst, block); err != nil {
				return nil, err
			}
			return e, nil
		}
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("route to %s: %w", dst, ctx.Err())
		}
		if !e.retry {
			return e, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("route to %s: %w", dst, err)
		}
	}
}

// fill looks dst up for e, the entry of key in m, and publishes the
// verdict; without one it removes e, so that the next caller asks again,
// and returns the error.
func fill[K comparable](c *Cache, ctx context.Context, m map[K]*routeEntry, key K, e *routeEntry, dst netip.Addr, block bool) error {
	rt, fail, share, err := c.query(ctx, dst, block)
	c.mu.Lock()
	switch {
	case err != nil:
		e.retry = true
		delete(m, key)
	case block && !share:
		e.split = true
		c.hostEntry(dst, rt, fail)
	default:
		e.rt, e.fail = rt, fail
	}
	e.final = !e.retry
	c.mu.Unlock()
	close(e.done)
	return err
}

// query asks the kernel for the route to dst, like Lookup. It returns
// the route or the error (as a function of the destination, so that a
// shared refusal names each destination asked about), whether the verdict
// holds for dst's whole /24 or /64 (only asked when block), and an error
// when there is no verdict: ctx ended, or the socket failed.
func (c *Cache) query(ctx context.Context, dst netip.Addr, block bool) (*Route, func(netip.Addr) error, bool, error) {
	c.lookups.Add(1)
	r, err := c.nl.getRoute(dst, c.opts.Source, c.oif)
	if err != nil {
		if transient(err) {
			return nil, nil, false, routeError(dst, c.opts, err)
		}
		return nil, func(d netip.Addr) error { return routeError(d, c.opts, err) }, true, nil
	}
	// On-link and local routes lead to the destination itself: nothing to
	// share. Otherwise ask which FIB entry matched.
	share := block && r.gateway.IsValid() && c.fibShared(dst)
	if refuse := r.refusal(); refuse != nil {
		return nil, refuse, share, nil
	}
	rt, refuse, err := c.follow(ctx, dst, r)
	return rt, refuse, share, err
}

// follow completes the route r to dst that the kernel gave query: the
// interface, the source and the next hop's link-layer address. It returns
// the route, or the refusal, or an error when there is no verdict.
func (c *Cache) follow(ctx context.Context, dst netip.Addr, r routeReply) (*Route, func(netip.Addr) error, error) {
	link, err := c.link(r.oif)
	if err != nil {
		if transient(err) {
			return nil, nil, fmt.Errorf("route to %s: %w", dst, err)
		}
		return nil, func(d netip.Addr) error { return fmt.Errorf("route to %s: %w", d, err) }, nil
	}
	if link.flags&unix.IFF_UP == 0 {
		return nil, func(d netip.Addr) error { return fmt.Errorf("route to %s: interface %s is down", d, link.name) }, nil
	}
	src, nexthop, mtu := r.endpoints(dst, c.opts.Source, link)
	if !src.IsValid() {
		return nil, func(d netip.Addr) error { return errNoSource(d, link.name) }, nil
	}
	if r.typ == unix.RTN_LOCAL && dst.Is4() {
		// Never shared (no gateway): the verdict is for dst alone.
		if err := checkLocalInput(link.name, dst); err != nil {
			return nil, func(netip.Addr) error { return err }, nil
		}
	}
	hw, err := c.linkLayer(ctx, link, nexthop)
	if err != nil {
		if ctx.Err() != nil || transient(err) {
			return nil, nil, fmt.Errorf("route to %s: %w", dst, err)
		}
		return nil, func(d netip.Addr) error { return fmt.Errorf("route to %s: %w", d, err) }, nil
	}
	return c.intern(link, src, nexthop, hw, mtu), nil, nil
}

// transient reports whether err says nothing about the route: the socket
// failed or was closed, or the kernel was short of memory.
func transient(err error) bool {
	for _, t := range []error{net.ErrClosed, os.ErrDeadlineExceeded, context.Canceled, context.DeadlineExceeded,
		unix.ENOBUFS, unix.ENOMEM, unix.EINTR, unix.EAGAIN, unix.EBADF} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// fibShared reports whether the FIB entry that the kernel matches for dst
// (RTM_F_FIB_MATCH) gives the same answer for all of dst's /24 (IPv6:
// /64): a prefix of /24 (/64) or shorter with a single next hop. A
// multipath entry (RTA_MULTIPATH, or a nexthop object shown without its
// members when net.ipv4.nexthop_compat_mode is 0) does not: the kernel
// hashes the destination to pick a path.
func (c *Cache) fibShared(dst netip.Addr) bool {
	const rtaNHID = 30 // RTA_NH_ID (Linux 5.3), not in x/sys/unix
	share := uint8(24)
	if dst.Is6() {
		share = 64
	}
	req, err := routeQuery(dst, c.opts.Source, c.oif, unix.RTM_F_FIB_MATCH)
	if err != nil {
		return false
	}
	msgs, err := c.nl.do(unix.RTM_GETROUTE, 0, req)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofRtMsg:])
		if err != nil {
			return false
		}
		var oif, nhid, multipath bool
		for ad.Next() {
			switch ad.Type() {
			case unix.RTA_OIF:
				oif = true
			case rtaNHID:
				nhid = true
			case unix.RTA_MULTIPATH:
				multipath = true
			}
		}
		return ad.Err() == nil && m.Data[1] <= share && !multipath && (oif || !nhid)
	}
	return false
}

func (c *Cache) link(index int) (linkInfo, error) {
	c.mu.Lock()
	l, ok := c.links[index]
	c.mu.Unlock()
	if ok {
		return l, nil
	}
	l, err := c.nl.linkByIndex(index)
	if err != nil {
		return linkInfo{}, err
	}
	c.mu.Lock()
	c.links[index] = l
	c.mu.Unlock()
	return l, nil
}

// linkLayer resolves nexthop on link once for the cache, as [Lookup]
// does for each lookup; callers asking while it is under way wait for it.
// A resolution cut short by ctx is not kept.
func (c *Cache) linkLayer(ctx context.Context, link linkInfo, nexthop netip.Addr) (net.HardwareAddr, error) {
	k := hopKey{link.index, nexthop}
	for {
		c.mu.Lock()
		h := c.hops[k]
		if h == nil {
			h = &hopEntry{done: make(chan struct{})}
			c.hops[k] = h
			c.mu.Unlock()
			return c.resolveHop(ctx, k, h, link)
		}
		c.mu.Unlock()
		select {
		case <-h.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !h.retry {
			return h.hw, h.err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func (c *Cache) resolveHop(ctx context.Context, k hopKey, h *hopEntry, link linkInfo) (net.HardwareAddr, error) {
	c.resolutions.Add(1)
	// Unlike Lookup, never wait longer than ResolveTimeout, the
	// kernel's own give-up time, even if ctx allows it: a failure within ctx
	// is then a verdict to keep, not the caller's impatience.
	rctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	hw, err := c.nl.linkLayer(rctx, link, k.addr)
	c.mu.Lock()
	if err != nil && (ctx.Err() != nil || transient(err)) {
		h.retry = true
		delete(c.hops, k)
	} else {
		h.hw, h.err = hw, err
	}
	c.mu.Unlock()
	close(h.done)
	return hw, err
}

func (c *Cache) intern(link linkInfo, src, nexthop netip.Addr, hw net.HardwareAddr, mtu int) *Route {
	k := routeKey{ifindex: link.index, mtu: mtu, src: src, nexthop: nexthop, hw: string(hw)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt := c.routes[k]; rt != nil {
		return rt
	}
	rt := &Route{Ifindex: link.index, IfName: link.name, Src: src, NextHop: nexthop, HWAddr: hw, MTU: mtu}
	c.routes[k] = rt
	return rt
}

// Close releases the netlink socket; later lookups fail.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.nl.c.Close()
}
