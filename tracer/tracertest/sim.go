package tracertest

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// What a node answers.
type answerKind uint8

const (
	timeExceeded    answerKind = iota
	noRoute                    // net unreachable: a router without a route
	prohibited                 // a Reject router
	portUnreachable            // a destination, to UDP
	echoAnswer                 // a destination, to an echo request
	tcpAnswer                  // a destination, to TCP
)

// icmpError says whether the answer is an ICMP error, which rate limits
// apply to.
func (k answerKind) icmpError() bool { return k <= portUnreachable }

// maxHops bounds a packet's way, as its TTL does.
const maxHops = 255

// simulate takes one packet sent at now through the network.
func (n *Network) simulate(raw []byte, now time.Time) {
	var p packet
	if parsePacket(raw, &p) != nil {
		n.stats.Malformed++
		return
	}
	w := n.w
	cur, ttl := w.src, p.ttl
	path := n.path[:0]
	defer func() { n.path = path }()
	for len(path) < maxHops {
		l := n.pick(cur, &p)
		if l < 0 {
			if cur == w.src {
				n.stats.NoRoute++
			} else {
				n.answer(cur, path, &p, ttl, now, noRoute)
			}
			return
		}
		lk := &w.links[l]
		if lk.conf.Loss > 0 && lk.rng.Float64() < lk.conf.Loss {
			n.stats.LinkLost++
			return
		}
		path = append(path, l)
		cur = lk.to
		nd := &w.nodes[cur]
		nd.ctr.Probes++
		if nd.conf.Loss > 0 && nd.rng.Float64() < nd.conf.Loss {
			nd.ctr.Lost++
			return
		}
		if o, _ := w.owner(p.dst); o == cur {
			n.deliver(cur, path, &p, ttl, now)
			return
		}
		// A router checks the TTL before anything else it does to a
		// packet it forwards (Linux's ip_forward).
		switch {
		case ttl <= 1:
			n.answer(cur, path, &p, ttl, now, timeExceeded)
			return
		case nd.conf.Reject:
			n.answer(cur, path, &p, ttl, now, prohibited)
			return
		}
		ttl--
	}
}

// pick returns the link node i forwards p by, or -1 for none.
func (n *Network) pick(i int32, p *packet) int32 {
	ls := n.w.nextLinks(i, p.dst)
	switch nd := &n.w.nodes[i]; {
	case len(ls) == 0:
		return -1
	case len(ls) == 1:
		return ls[0]
	case nd.conf.PerPacket:
		return ls[nd.rng.IntN(len(ls))]
	default:
		return ls[flowHash(nd.seed, p)%uint64(len(ls))]
	}
}

// flowHash hashes p's flow with seed: addresses, protocol and ports (an
// ICMP echo request's identifier), and over IPv6 the flow label.
func flowHash(seed uint64, p *packet) uint64 {
	s, d := p.src.As16(), p.dst.As16()
	h := mix(seed ^ binary.BigEndian.Uint64(s[:8]))
	h = mix(h ^ binary.BigEndian.Uint64(s[8:]))
	h = mix(h ^ binary.BigEndian.Uint64(d[:8]))
	h = mix(h ^ binary.BigEndian.Uint64(d[8:]))
	return mix(h ^ uint64(p.proto)<<56 ^ uint64(p.flowLabel)<<32 ^ uint64(p.sport)<<16 ^ uint64(p.dport))
}

// deliver hands p to node i, which holds its destination.
func (n *Network) deliver(i int32, path []int32, p *packet, ttl uint8, now time.Time) {
	if !p.l4Valid() {
		n.stats.BadChecksum++
		return
	}
	switch p.proto {
	case protoUDP:
		n.answer(i, path, p, ttl, now, portUnreachable)
	case protoTCP:
		if p.tcpFlags&tcpRST == 0 { // RFC 9293: an RST is never answered
			n.answer(i, path, p, ttl, now, tcpAnswer)
		}
	default:
		n.answer(i, path, p, ttl, now, echoAnswer)
	}
}

// answer makes node i, which p reached by path with TTL arrTTL, send the
// answer of kind k, and schedules its arrival.
func (n *Network) answer(i int32, path []int32, p *packet, arrTTL uint8, now time.Time, k answerKind) {
	nd := &n.w.nodes[i]
	if nd.conf.Silent {
		return
	}
	if k.icmpError() && !nd.limit.allow(p.src, now, nd.rng) {
		nd.ctr.RateLimited++
		return
	}
	nd.ipid++
	r := reply{
		from: n.replyAddr(i, path, p, k), to: p.src,
		// Each router on the way back decrements the TTL.
		ttl: uint8(linuxTTL - (len(path) - 1)), ipid: nd.ipid,
		arrTTL: arrTTL, quoteMax: nd.conf.QuoteLen, mpls: nd.conf.MPLS,
	}
	b := n.buf()
	var out []byte
	switch k {
	case echoAnswer:
		out = echoReply(b, p, &r)
	case tcpAnswer:
		open := slices.Contains(nd.conf.OpenTCP, p.dport)
		out = tcpReply(b, p, &r, open, uint32(flowHash(nd.seed, p)))
	default:
		typ, code := errorType(k, p.v6)
		out = icmpError(b, p, &r, typ, code)
	}
	nd.ctr.Replies++
	rtt, ok := n.wayBack(nd, path)
	if !ok {
		nd.ctr.RepliesLost++
		n.release(b)
		return
	}
	n.seq++
	n.pending.push(pendingReply{due: now.Add(rtt), seq: n.seq, pkt: out})
}

// wayBack returns the round trip time of a reply of node nd over path,
// or false when the reply is lost on its way back.
func (n *Network) wayBack(nd *simNode, path []int32) (time.Duration, bool) {
	if nd.conf.ReplyLoss > 0 && nd.rng.Float64() < nd.conf.ReplyLoss {
		return 0, false
	}
	var rtt time.Duration
	for j := len(path) - 1; j >= 0; j-- {
		lk := &n.w.links[path[j]]
		if lk.conf.Loss > 0 && lk.rng.Float64() < lk.conf.Loss {
			return 0, false
		}
		rtt += 2 * lk.conf.Delay
	}
	return rtt, true
}

// errorType returns the ICMP (v6: ICMPv6) type and code of an error.
func errorType(k answerKind, v6 bool) (typ, code uint8) {
	switch {
	case k == timeExceeded && v6:
		return icmp6TimeExceeded, 0
	case k == timeExceeded:
		return icmpTimeExceeded, 0
	case k == noRoute && v6:
		return icmp6Unreachable, code6NoRoute
	case k == noRoute:
		return icmpUnreachable, codeNetUnreachable
	case k == prohibited && v6:
		return icmp6Unreachable, code6AdminProhibited
	case k == prohibited:
		return icmpUnreachable, codeAdminProhibited
	case v6:
		return icmp6Unreachable, code6PortUnreachable
	}
	return icmpUnreachable, codePortUnreachable
}

// replyAddr returns the address node i answers p from. A destination
// answers from the address probed, but for an ICMPv6 error about an
// address it holds only through a Local prefix: Linux's icmp6_send then
// lets the route back pick the source, the address of the link towards
// the Source (the project's lab shows it). A router answers from its
// address, or with InboundAddr from the address of the link p came in by.
func (n *Network) replyAddr(i int32, path []int32, p *packet, k answerKind) netip.Addr {
	inbound := n.w.nodes[i].conf.InboundAddr
	if k >= portUnreachable {
		_, configured := n.w.owner(p.dst)
		if !p.v6 || k != portUnreachable || configured {
			return p.dst
		}
		inbound = true
	}
	nd := &n.w.nodes[i]
	if inbound && len(path) > 0 {
		lk := &n.w.links[path[len(path)-1]]
		if a := lk.to4; !p.v6 && a.IsValid() {
			return a
		}
		if a := lk.to6; p.v6 && a.IsValid() {
			return a
		}
	}
	if p.v6 {
		return nd.addr6
	}
	return nd.addr4
}
