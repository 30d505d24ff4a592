package analysis

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Collector records the probes of one run and their first answers while the
// prober runs, and builds the Trace at the end. Its methods are safe for
// concurrent use (a sender and a receiver goroutine may feed it), and Sent
// and Reply do not allocate.
type Collector struct {
	dst, src         netip.Addr
	name             string
	paths, maxTTL    int
	srcBase, dstPort uint16
	proto            string // see SetProtocol

	mu sync.Mutex
	// cells[(pathID-1)*maxTTL + ttl-1] is the probe (pathID, ttl); it
	// grows with the path IDs used as probes are sent (see grow), so an
	// adaptive run that may use many path IDs costs about those it used.
	cells   []Probe
	probed  []int // highest TTL sent, per path ID - 1
	sent    int
	replies int
	others  []otherReply // later answers from another address (see Observe)
	// What answers said beyond their hops, for the few that said
	// anything (see Extras).
	rewrites []cellRewrite
	exts     []cellExt
}

// Probe is what a Collector knows of one probe, a path ID at a TTL:
// whether it was sent, and the first answer to it. Rows hands them out.
type Probe struct {
	addr      netip.Addr
	rtt       time.Duration
	size      uint16 // bytes of the reply's IP packet
	replyTTL  uint8  // TTL of the reply on arrival
	quotedTTL uint8  // TTL of the probe when it reached the replying node
	typ, code uint8
	flags     uint8 // probeSent, probeAnswered, probeReached, probeOther; echoes
	// again counts, in its low nibble, the sends of the probe after its
	// first answer (repeats, for the per-packet test), and in its high
	// nibble the answers that came after the first; each saturates at 15.
	again uint8
}

// The flags of a Probe: one byte, and again another, so that a Probe
// stays 40 bytes.
const (
	probeSent uint8 = 1 << iota
	probeAnswered
	probeReached
	probeOther // a later answer came from another address than the first

	// The high nibble of the flags counts the later answers from the
	// first answer's address (at most 15).
	echoShift = 4
	echoOne   = 1 << echoShift
)

// maxAgain is the most that either nibble of Probe.again counts.
const maxAgain = 15

// Sent says that the probe was sent, once at least.
func (p *Probe) Sent() bool { return p.flags&probeSent != 0 }

// Answered says that an answer to the probe came.
func (p *Probe) Answered() bool { return p.flags&probeAnswered != 0 }

// From returns the source of the first answer, invalid when none came.
func (p *Probe) From() netip.Addr { return p.addr }

// Reached says that the first answer came from the destination.
func (p *Probe) Reached() bool { return p.flags&probeReached != 0 }

// Repeats returns how many times the probe was sent again after its
// first answer (at most 15): the same flow at the same TTL, to tell a
// per-packet load balancer from a per-flow one.
func (p *Probe) Repeats() int { return int(p.again & maxAgain) }

// Later returns how many answers came after the first (at most 15), to
// repeats or duplicates, from any address.
func (p *Probe) Later() int { return int(p.again >> 4) }

// Echoes returns how many of the later answers (at most 15) came from the
// first answer's address.
func (p *Probe) Echoes() int { return int(p.flags >> echoShift) }

// Differs says that a later answer came from another address than the
// first: the packets of one flow took two ways.
func (p *Probe) Differs() bool { return p.flags&probeOther != 0 }

// Stops says that the first answer ends the flow without reaching the
// destination: an ICMP destination unreachable from a router.
func (p *Probe) Stops() bool {
	return p.flags&(probeAnswered|probeReached) == probeAnswered && unreachable(p.typ, p.addr)
}

// NewCollector returns a Collector for a run towards dst (name as the user
// gave it) from src, with path IDs 1..paths, TTLs 1..maxTTL, path ID p using
// UDP source port srcPortBase+p and every probe dstPort.
func NewCollector(dst netip.Addr, name string, src netip.Addr, paths, maxTTL int, srcPortBase, dstPort uint16) *Collector {
	paths, maxTTL = max(paths, 0), max(maxTTL, 0)
	return &Collector{
		dst: dst, src: src, name: name,
		paths: paths, maxTTL: maxTTL,
		srcBase: srcPortBase, dstPort: dstPort,
	}
}

// SetProtocol names the probes' protocol in the traces ("udp" unless set):
// "udp", "tcp" or "icmp". Reset keeps it.
func (c *Collector) SetProtocol(name string) {
	c.mu.Lock()
	c.proto = name
	c.mu.Unlock()
}

func (c *Collector) protocol() string {
	if c.proto == "" {
		return "udp"
	}
	return c.proto
}

// Reset makes c record a new run towards dst (name as the user gave it),
// with the same source, path IDs, TTLs and ports, keeping its memory.
func (c *Collector) Reset(dst netip.Addr, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dst, c.name = dst, name
	c.cells = c.cells[:0]
	c.probed = c.probed[:0]
	c.sent, c.replies = 0, 0
	c.others = c.others[:0]
	c.rewrites, c.exts = c.rewrites[:0], c.exts[:0]
}

// index returns the cell of probe (pathID, ttl), growing the cells to hold
// pathID; false when out of range.
func (c *Collector) index(pathID, ttl int) (int, bool) {
	if pathID < 1 || pathID > c.paths || ttl < 1 || ttl > c.maxTTL {
		return 0, false
	}
	if len(c.probed) < pathID {
		c.grow(pathID)
	}
	return (pathID-1)*c.maxTTL + ttl - 1, true
}

// collectorFirstPaths is how many path IDs a Collector makes room for at
// first (all of them when it has fewer): a run of fixed paths uses every
// one, an adaptive run 20 to 60 for a diamond.
const collectorFirstPaths = 32

// grow makes the cells hold path IDs 1..paths, the new ones cleared. It
// makes room for collectorFirstPaths path IDs at first, then for twice as
// many as in use: path IDs come one at a time, and each copy of the cells
// costs them all.
func (c *Collector) grow(paths int) {
	n := len(c.probed)
	if cap(c.probed) < paths || cap(c.cells) < paths*c.maxTTL {
		room := max(paths, min(c.paths, max(2*n, collectorFirstPaths)))
		c.probed = slices.Grow(c.probed, room-n)
		c.cells = slices.Grow(c.cells, room*c.maxTTL-len(c.cells))
	}
	c.probed = c.probed[:paths]
	clear(c.probed[n:])
	c.cells = c.cells[:paths*c.maxTTL]
	clear(c.cells[n*c.maxTTL:])
}

// used returns the number of path IDs with a probe sent or answered.
func (c *Collector) used() int { return len(c.probed) }

// Sent records that the probe (pathID, ttl) was sent. Every call counts
// towards ProbesSent, retransmissions included; out-of-range path IDs and
// TTLs are counted but otherwise ignored.
func (c *Collector) Sent(pathID, ttl int) {
	c.mu.Lock()
	c.sent++
	if i, ok := c.index(pathID, ttl); ok {
		p := &c.cells[i]
		if p.Answered() && p.again&maxAgain < maxAgain {
			p.again++ // a repeat
		}
		p.flags |= probeSent
		c.probed[pathID-1] = max(c.probed[pathID-1], ttl)
	}
	c.mu.Unlock()
}

// Reply records an answer to the probe (pathID, ttl): from sent an ICMP
// message of type icmpType and code icmpCode, rtt after the probe; reached
// says that it came from the destination (probe.Reply.Reached). It returns
// true for the first answer to that probe; later answers (to repeats, or
// duplicates) are counted (Probe.Later, Probe.Differs) and return false;
// answers to path IDs or TTLs out of range are ignored and return false.
func (c *Collector) Reply(pathID, ttl int, from netip.Addr, rtt time.Duration, icmpType, icmpCode uint8, reached bool) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index(pathID, ttl)
	if !ok {
		return false
	}
	if p := &c.cells[i]; p.Answered() {
		if p.again>>4 < maxAgain {
			p.again += 1 << 4
		}
		switch {
		case from == p.addr && p.flags>>echoShift < maxAgain:
			p.flags += echoOne
		case from.IsValid() && from != p.addr:
			p.flags |= probeOther
		}
		return false
	}
	flags := c.cells[i].flags | probeAnswered
	if reached {
		flags |= probeReached
	}
	c.cells[i] = Probe{addr: from, rtt: rtt, typ: icmpType, code: icmpCode, flags: flags, again: c.cells[i].again}
	c.replies++
	return true
}

// Rows appends to dst the probes of each path ID used so far, 1 up: row
// p-1 holds path ID p's, TTL t at index t-1, up to the highest TTL sent
// with it (none for a path ID used by answers only). The rows are the
// Collector's own memory, not copies: valid until it records anything
// more or is Reset, and to be read while no other goroutine feeds it.
// They are not to be changed.
func (c *Collector) Rows(dst [][]Probe) [][]Probe {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, n := range c.probed {
		off := p * c.maxTTL
		dst = append(dst, c.cells[off:off+n:off+n])
	}
	return dst
}

// From returns the address of the first answer to probe (pathID, ttl);
// false while it has none.
func (c *Collector) From(pathID, ttl int) (netip.Addr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pathID < 1 || pathID > len(c.probed) || ttl < 1 || ttl > c.maxTTL {
		return netip.Addr{}, false
	}
	p := &c.cells[(pathID-1)*c.maxTTL+ttl-1]
	return p.addr, p.Answered()
}

// Details records what the first answer to the probe (pathID, ttl) said
// beyond its Hop: the reply's TTL on arrival, the probe's TTL as quoted,
// and the reply's size in bytes. Call it after Reply returned true.
func (c *Collector) Details(pathID, ttl int, replyTTL, quotedTTL uint8, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index(pathID, ttl); ok && c.cells[i].Answered() {
		c.cells[i].replyTTL, c.cells[i].quotedTTL = replyTTL, quotedTTL
		c.cells[i].size = uint16(min(max(size, 0), 0xffff))
	}
}

// Trace returns the run's result with flows of their true length (see the
// package documentation). The Collector stays usable: Trace may be called
// again, e.g. for a partial result when the run is interrupted.
func (c *Collector) Trace(start, end time.Time, partial bool) *Trace {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &Trace{
		Destination: c.dst,
		Name:        c.name,
		Source:      c.src,
		Protocol:    c.protocol(),
		MaxTTL:      c.maxTTL,
		Flows:       make([]Flow, 0, c.used()),
		ProbesSent:  c.sent,
		Replies:     c.replies,
		Start:       start,
		End:         end,
		Partial:     partial,
	}
	var moved map[int]int // path ID -> TTL of the answer shown at the destination's distance
	// The hops of every flow, in one block.
	total := 0
	for p := 1; p <= c.used(); p++ {
		n, _, _ := c.rowEnd(p)
		total += n
	}
	hops := make([]Hop, total)
	for p := 1; p <= c.used(); p++ {
		row := c.cells[(p-1)*c.maxTTL : p*c.maxTTL]
		f := Flow{
			PathID:    p,
			SrcPort:   c.srcBase + uint16(p),
			DstPort:   c.dstPort,
			ProbedTTL: c.probed[p-1],
		}
		n, movedAt, reached := c.rowEnd(p)
		if reached {
			f.Reached, f.ReachedTTL = true, n
		}
		if n == 0 && c.probed[p-1] == 0 {
			continue // a path ID never used (an adaptive run stops early)
		}
		f.Hops, hops = hops[:n:n], hops[n:]
		for i := range f.Hops {
			a := &row[i]
			if i == n-1 && movedAt >= 0 {
				a = &row[movedAt] // the destination's answer to a higher TTL
			}
			f.Hops[i].TTL = i + 1
			if a.Answered() {
				f.Hops[i].Addr, f.Hops[i].RTT = a.addr, a.rtt
				f.Hops[i].ICMPType, f.Hops[i].ICMPCode = a.typ, a.code
				f.Hops[i].ReplyTTL, f.Hops[i].QuotedTTL, f.Hops[i].Size = a.replyTTL, a.quotedTTL, int(a.size)
			}
		}
		if movedAt >= 0 {
			if moved == nil {
				moved = map[int]int{}
			}
			moved[p] = movedAt + 1
		}
		t.Flows = append(t.Flows, f)
	}
	c.addExtras(t.Flows, moved)
	t.PerPacket = c.perPacket(t.Flows)
	return t
}

// rowEnd returns the length of the flow of path ID p: it ends at the first
// answer from the destination (reached), or at the first unreachable from
// a router, or else at the last answer. movedAt is the index in the row of
// the destination's answer when it is shown at a lower TTL, -1 if not.
func (c *Collector) rowEnd(p int) (n, movedAt int, reached bool) {
	row := c.cells[(p-1)*c.maxTTL : p*c.maxTTL]
	movedAt = -1
	for i := range row {
		a := &row[i]
		if !a.Answered() {
			continue
		}
		n = i + 1
		if a.Reached() {
			// The destination quotes the TTL the probe had left: a
			// probe sent with TTL n that arrived with q went through
			// n-q routers, so the destination is at n-q+1 even when
			// the answer to that TTL itself was lost.
			if q := int(a.quotedTTL); q > 1 && q <= n {
				n, movedAt = n-q+1, i
			}
			return n, movedAt, true
		}
		if a.Stops() {
			break
		}
	}
	return n, movedAt, false
}

// otherReply is an answer to the probe at cells[i] from an address other
// than the first answer's.
type otherReply struct {
	i    int32
	addr netip.Addr
}

// maxOtherReplies bounds the other addresses recorded per probe.
const maxOtherReplies = 8

// Observe records a later answer (to a retry, or a duplicate) to the probe
// (pathID, ttl) when it comes from another address than the first answer:
// a per-packet load balancer, which the Trace reports in PerPacket instead
// of turning it into paths. Answers from the first answer's address, to
// unanswered probes (Reply records those), without an address or out of
// range are ignored, and cost no allocation. The receiver calls it for
// every answer that Reply did not take:
//
//	if !c.Reply(path, ttl, from, rtt, typ, code, reached) {
//		c.Observe(path, ttl, from)
//	}
func (c *Collector) Observe(pathID, ttl int, from netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index(pathID, ttl)
	if !ok || !c.cells[i].Answered() || c.cells[i].addr == from || !from.IsValid() {
		return
	}
	n := 0
	for _, o := range c.others {
		if int(o.i) == i {
			if o.addr == from {
				return
			}
			n++
		}
	}
	if n < maxOtherReplies {
		c.others = append(c.others, otherReply{i: int32(i), addr: from})
	}
}

// OtherAnswer is a later answer to the probe (PathID, TTL) from another
// address than its first (see Observe).
type OtherAnswer struct {
	PathID, TTL int
	Addr        netip.Addr
}

// AppendOthers appends to dst the later answers that Observe recorded from
// other addresses than the first, in the order they came.
func (c *Collector) AppendOthers(dst []OtherAnswer) []OtherAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.others {
		dst = append(dst, OtherAnswer{PathID: int(o.i)/c.maxTTL + 1, TTL: int(o.i)%c.maxTTL + 1, Addr: o.addr})
	}
	return dst
}

// perPacket returns the probes that Observe saw answered from several
// addresses, ordered by path ID and TTL, for the hops of flows (answers to
// probes past a flow's end are not hops); nil when there are none.
func (c *Collector) perPacket(flows []Flow) []PerPacketHop {
	var out []PerPacketHop
	for _, o := range c.others {
		p, ttl := int(o.i)/c.maxTTL+1, int(o.i)%c.maxTTL+1
		k, ok := slices.BinarySearchFunc(flows, p, func(f Flow, p int) int { return f.PathID - p })
		if !ok || ttl > len(flows[k].Hops) {
			continue
		}
		j := slices.IndexFunc(out, func(h PerPacketHop) bool { return h.PathID == p && h.TTL == ttl })
		if j < 0 {
			j = len(out)
			out = append(out, PerPacketHop{PathID: p, TTL: ttl, Addrs: []netip.Addr{c.cells[o.i].addr}})
		}
		out[j].Addrs = append(out[j].Addrs, o.addr)
	}
	slices.SortFunc(out, func(a, b PerPacketHop) int {
		if a.PathID != b.PathID {
			return a.PathID - b.PathID
		}
		return a.TTL - b.TTL
	})
	return out
}
