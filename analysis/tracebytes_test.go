package analysis

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// traceCodec turns bytes into a Trace and back, so that a fuzzer's
// mutations of the bytes steer the trace it checks: each field is read from
// the input in turn, and the same walk (enc set) writes a trace as the bytes
// that give it back. Any input is a trace: what runs out reads as zeros,
// and counts are capped (and by the bytes left), so a short input is a small
// trace.
//
// The traces keep the invariants of a Trace as the collector and ReadJSON
// make them: flows in ascending path ID order without repeats, hop i at TTL
// i+1, ReachedTTL the flow's length when reached. Everything else is as the
// bytes say, schema edges included: strings of any bytes, zones, RTTs and
// times of any magnitude, interface roles beyond the four of RFC 5837.
type traceCodec struct {
	enc  bool
	in   []byte // decoding: what is left
	out  []byte // encoding
	seen []netip.Addr
}

// traceFromBytes returns the trace b describes.
func traceFromBytes(b []byte) *Trace {
	c := &traceCodec{in: b}
	t := new(Trace)
	c.trace(t)
	return t
}

// traceBytes returns bytes that traceFromBytes turns into t (t keeping the
// invariants above).
func traceBytes(t *Trace) []byte {
	c := &traceCodec{enc: true}
	c.trace(t)
	return c.out
}

func (c *traceCodec) take(n int) []byte {
	n = min(n, len(c.in))
	b := c.in[:n]
	c.in = c.in[n:]
	return b
}

func (c *traceCodec) u8(p *uint8) {
	if c.enc {
		c.out = append(c.out, *p)
	} else if b := c.take(1); len(b) == 1 {
		*p = b[0]
	}
}

func (c *traceCodec) flag(p *bool) {
	v := uint8(0)
	if *p {
		v = 1
	}
	c.u8(&v)
	*p = v&1 != 0
}

func (c *traceCodec) u16(p *uint16) {
	hi, lo := uint8(*p>>8), uint8(*p)
	c.u8(&hi)
	c.u8(&lo)
	*p = uint16(hi)<<8 | uint16(lo)
}

// uvarint and varint are encoding/binary's varints; a malformed one reads
// as 0.
func (c *traceCodec) uvarint(p *uint64) {
	if c.enc {
		c.out = binary.AppendUvarint(c.out, *p)
		return
	}
	v, n := binary.Uvarint(c.in)
	switch {
	case n == 0: // ran out
		v, n = 0, len(c.in)
	case n < 0: // overflow
		v, n = 0, -n
	}
	*p, c.in = v, c.in[n:]
}

func (c *traceCodec) varint(p *int64) {
	u := uint64(*p<<1) ^ uint64(*p>>63) // zigzag, as binary.AppendVarint
	c.uvarint(&u)
	*p = int64(u>>1) ^ -int64(u&1)
}

func (c *traceCodec) int(p *int) {
	v := int64(*p)
	c.varint(&v)
	*p = int(v)
}

func (c *traceCodec) u32(p *uint32) {
	v := uint64(*p)
	c.uvarint(&v)
	*p = uint32(v)
}

func (c *traceCodec) dur(p *time.Duration) {
	v := int64(*p)
	c.varint(&v)
	*p = time.Duration(v)
}

func (c *traceCodec) f64(p *float64) {
	v := math.Float64bits(*p)
	for i := 56; i >= 0; i -= 8 {
		b := uint8(v >> i)
		c.u8(&b)
		v = v&^(0xff<<i) | uint64(b)<<i
	}
	*p = math.Float64frombits(v)
}

// count walks the length of a slice of n items, at most max; decoding, it
// is also at most the bytes left, each item taking one at least.
func (c *traceCodec) count(n *int, max int) {
	v := uint64(*n)
	c.uvarint(&v)
	if !c.enc {
		v = min(v, uint64(max), uint64(len(c.in)))
	}
	*n = int(v)
}

func (c *traceCodec) str(p *string) {
	n := len(*p)
	c.count(&n, 1<<10)
	if c.enc {
		c.out = append(c.out, *p...)
		return
	}
	*p = string(c.take(n))
}

// addr walks an address: invalid, IPv4, IPv6 with a zone (empty for none),
// or, decoding only, one seen before (so that mutations make flows meet).
func (c *traceCodec) addr(p *netip.Addr) {
	var kind uint8
	switch {
	case !c.enc:
	case p.Is4():
		kind = 1
	case p.Is6():
		kind = 2
	}
	c.u8(&kind)
	switch kind % 4 {
	case 1:
		var a [4]byte
		if c.enc {
			a = p.As4()
		}
		for i := range a {
			c.u8(&a[i])
		}
		*p = netip.AddrFrom4(a)
	case 2:
		var a [16]byte
		var zone string
		if c.enc {
			a, zone = p.As16(), p.Zone()
		}
		for i := range a {
			c.u8(&a[i])
		}
		c.str(&zone)
		*p = netip.AddrFrom16(a).WithZone(zone)
	case 3:
		var i uint8
		c.u8(&i)
		if len(c.seen) > 0 {
			*p = c.seen[int(i)%len(c.seen)]
		}
	}
	if !c.enc && p.IsValid() && len(c.seen) < 256 {
		c.seen = append(c.seen, *p)
	}
}

// Caps on the counts, which keep a trace small enough to fuzz fast.
const (
	maxGenFlows  = 64
	maxGenHops   = 40
	maxGenLabels = 8
	maxGenIfs    = 6
	maxGenPP     = 8
)

func (c *traceCodec) trace(t *Trace) {
	var fl uint8
	if c.enc {
		fl = bit(t.Partial, 1) | bit(t.HasASN, 2) | bit(t.MDA != nil, 4)
	}
	c.u8(&fl)
	t.Partial, t.HasASN = fl&1 != 0, fl&2 != 0
	c.addr(&t.Destination)
	c.str(&t.Name)
	c.addr(&t.Source)
	c.str(&t.Protocol)
	c.int(&t.MaxTTL)
	c.int(&t.ProbesSent)
	c.int(&t.Replies)
	c.times(t)
	n := len(t.Flows)
	c.count(&n, maxGenFlows)
	if !c.enc {
		t.Flows = make([]Flow, n)
	}
	prev := 0
	for i := range n {
		c.flow(&t.Flows[i], prev)
		prev = t.Flows[i].PathID
	}
	c.perPacket(t)
	if fl&4 != 0 {
		if !c.enc {
			t.MDA = new(MDA)
		}
		c.mda(t.MDA)
	}
	c.rateLimits(t)
	c.reused(t)
	c.recovered(t)
}

func bit(b bool, v uint8) uint8 {
	if b {
		return v
	}
	return 0
}

// times walks the start (an instant and a zone: UTC, a fixed offset or
// the local zone) and the duration.
func (c *traceCodec) times(t *Trace) {
	sec, nsec := t.Start.Unix(), int64(t.Start.Nanosecond())
	var zone uint8
	_, off := t.Start.Zone()
	switch t.Start.Location() {
	case time.UTC:
	case time.Local:
		zone = 2
	default:
		zone = 1
	}
	offset := int64(off)
	d := t.End.Sub(t.Start)
	c.varint(&sec)
	c.varint(&nsec)
	c.u8(&zone)
	if zone%3 == 1 {
		c.varint(&offset)
	}
	c.dur(&d)
	if c.enc {
		return
	}
	t.Start = time.Unix(sec, nsec).UTC()
	switch zone % 3 {
	case 1:
		t.Start = t.Start.In(time.FixedZone("", int(offset)))
	case 2:
		t.Start = t.Start.Local()
	}
	t.End = t.Start.Add(d)
}

func (c *traceCodec) flow(f *Flow, prev int) {
	delta := uint64(f.PathID - prev - 1)
	c.uvarint(&delta)
	f.PathID = prev + 1 + int(delta%(1<<20))
	c.u16(&f.SrcPort)
	c.u16(&f.DstPort)
	c.int(&f.ProbedTTL)
	c.flag(&f.Reached)
	n := len(f.Hops)
	c.count(&n, maxGenHops)
	if !c.enc {
		f.Hops = make([]Hop, n)
	}
	for i := range n {
		f.Hops[i].TTL = i + 1
		c.hop(&f.Hops[i])
	}
	if f.Reached {
		f.ReachedTTL = len(f.Hops)
	}
}

// The parts of a hop, each walked when its bit of the hop's kind is set.
const (
	hopAnswered = 1 << iota
	hopInferred
	hopNames // ASN, IXP, host name
	hopExt   // extension flags, MPLS labels, interfaces
	hopRewrites
	hopRateLimited
	hopUnsettled
)

func hopKind(h *Hop) uint8 {
	return bit(!h.Silent(), hopAnswered) | bit(h.Inferred, hopInferred) |
		bit(h.ASN != 0 || h.IXP != "" || h.Hostname != "", hopNames) |
		bit(h.ExtFlags != 0 || len(h.MPLS) > 0 || len(h.Interfaces) > 0, hopExt) |
		bit(h.Rewrites != 0 || h.QuotedTOS != 0, hopRewrites) | bit(h.RateLimited.IsValid(), hopRateLimited) |
		bit(h.Unsettled, hopUnsettled)
}

func (c *traceCodec) hop(h *Hop) {
	var k uint8
	if c.enc {
		k = hopKind(h)
	}
	c.u8(&k)
	h.Inferred = k&hopInferred != 0
	h.Unsettled = k&hopUnsettled != 0
	if k&hopAnswered != 0 {
		c.addr(&h.Addr)
		c.dur(&h.RTT)
		c.u8(&h.ICMPType)
		c.u8(&h.ICMPCode)
	}
	if k&hopNames != 0 {
		c.u32(&h.ASN)
		c.str(&h.IXP)
		c.str(&h.Hostname)
	}
	if k&hopExt != 0 {
		c.ext(h)
	}
	if k&hopRewrites != 0 {
		c.u8((*uint8)(&h.Rewrites))
		c.u8(&h.QuotedTOS)
	}
	if k&hopRateLimited != 0 {
		c.addr(&h.RateLimited)
	}
}

// ext walks the extension flags, the MPLS label stack and the interfaces.
func (c *traceCodec) ext(h *Hop) {
	c.u8((*uint8)(&h.ExtFlags))
	walkList(c, &h.MPLS, maxGenLabels, func(l *probe.MPLSLabel) {
		c.u32(&l.Label)
		c.u8(&l.TC)
		c.flag(&l.S)
		c.u8(&l.TTL)
	})
	walkList(c, &h.Interfaces, maxGenIfs, func(in *probe.InterfaceInfo) {
		c.u8((*uint8)(&in.Role))
		c.u32(&in.Ifindex)
		c.addr(&in.Addr)
		c.str(&in.Name)
		c.u32(&in.MTU)
	})
}

// walkList walks the count of *s (at most most when decoding, nil for none)
// and then each of its elements with each.
func walkList[T any](c *traceCodec, s *[]T, most int, each func(*T)) {
	n := len(*s)
	c.count(&n, most)
	if !c.enc && n > 0 {
		*s = make([]T, n)
	}
	for i := range n {
		each(&(*s)[i])
	}
}

// perPacket walks t.PerPacket; a count of addresses is one more than
// their number, 0 standing for nil.
func (c *traceCodec) perPacket(t *Trace) {
	walkList(c, &t.PerPacket, maxGenPP, func(pp *PerPacketHop) {
		c.int(&pp.PathID)
		c.int(&pp.TTL)
		m := uint64(len(pp.Addrs))
		if pp.Addrs != nil {
			m++
		}
		c.uvarint(&m)
		if !c.enc && m > 0 {
			pp.Addrs = make([]netip.Addr, min(m-1, maxGenPP, uint64(len(c.in))))
		}
		for j := range pp.Addrs {
			c.addr(&pp.Addrs[j])
		}
	})
}

// rateLimits walks t.RateLimits (last, so that the inputs written before
// it was read the same).
func (c *traceCodec) rateLimits(t *Trace) {
	walkList(c, &t.RateLimits, maxGenPP, func(rl *RateLimit) {
		c.int(&rl.TTL)
		c.addr(&rl.After)
		c.f64(&rl.Pace)
		c.int(&rl.Silences)
	})
}

// recovered walks the Recovered counts of t.RateLimits (after reused, for
// the same reason).
func (c *traceCodec) recovered(t *Trace) {
	for i := range t.RateLimits {
		c.int(&t.RateLimits[i].Recovered)
	}
}

// reused walks t.Reused (after rateLimits, for the same reason).
func (c *traceCodec) reused(t *Trace) {
	walkList(c, &t.Reused, maxGenPP, func(r *ReusedVertex) {
		c.int(&r.TTL)
		c.addr(&r.Addr)
		c.addr(&r.From)
	})
}

func (c *traceCodec) mda(m *MDA) {
	c.f64(&m.Confidence)
	c.int(&m.MaxPaths)
	c.flag(&m.Complete)
	walkList(c, &m.Incomplete, maxGenPP, c.int)
}

// TestTraceBytes checks that traceBytes and traceFromBytes carry every
// field WriteJSON writes: the traces of TestWriteJSONReference, which set
// each of them, come back from their bytes writing the same JSON (or
// failing alike), with no byte left over. So the fuzzer's input space
// holds them, and the seeds of FuzzWriteJSON are what they say.
func TestTraceBytes(t *testing.T) {
	checked := 0
	for name, tr := range referenceTraces(t) {
		if !withinGenCaps(tr) {
			continue
		}
		checked++
		b := traceBytes(tr)
		c := &traceCodec{in: b}
		back := new(Trace)
		c.trace(back)
		if len(c.in) != 0 {
			t.Errorf("%s: %d of %d bytes left over", name, len(c.in), len(b))
		}
		var want, got bytes.Buffer
		werr := WriteJSON(&want, tr, Options{})
		gerr := WriteJSON(&got, back, Options{})
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Errorf("%s: from its %d bytes, error %v, want %v", name, len(b), gerr, werr)
		}
		if g, w := got.Bytes(), want.Bytes(); !bytes.Equal(g, w) {
			i := 0
			for i < min(len(g), len(w)) && g[i] == w[i] {
				i++
			}
			from := max(i-120, 0)
			t.Errorf("%s: from its %d bytes, JSON differs at byte %d:\ngot  …%s\nwant …%s",
				name, len(b), i, g[from:min(i+40, len(g))], w[from:min(i+40, len(w))])
		}
	}
	if checked < 500 {
		t.Errorf("only %d traces within the caps", checked)
	}
}

// withinGenCaps reports whether t has no more flows, hops, labels,
// interfaces and per-packet hops than traceFromBytes makes.
func withinGenCaps(t *Trace) bool {
	if len(t.Flows) > maxGenFlows || len(t.PerPacket) > maxGenPP || len(t.RateLimits) > maxGenPP || t.MDA != nil && len(t.MDA.Incomplete) > maxGenPP {
		return false
	}
	for _, pp := range t.PerPacket {
		if len(pp.Addrs) > maxGenPP {
			return false
		}
	}
	for _, f := range t.Flows {
		if len(f.Hops) > maxGenHops {
			return false
		}
		for _, h := range f.Hops {
			if len(h.MPLS) > maxGenLabels || len(h.Interfaces) > maxGenIfs {
				return false
			}
		}
	}
	return true
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the named seeds of testdata/fuzz/FuzzWriteJSON")

// writeJSONSeeds names the traces of TestWriteJSONReference whose bytes
// are the seeds of FuzzWriteJSON, each at an edge of the schema.
var writeJSONSeeds = map[string]string{
	"diamond":                 "seed 0",
	"partial-sparse-mda":      "seed 1",
	"ipv6-odd-name":           "seed 2",
	"asn-ixp-hostname":        "seed 3",
	"per-packet":              "seed 4",
	"lab-diamond-asn":         "lab diamond ASN 8",
	"uneven-split":            "uneven split",
	"rate-limited":            "rate limited",
	"mpls-interfaces":         "extras",
	"ipv6":                    "ipv6",
	"full-hop-html-escapes":   "odd string 2",
	"full-hop-bad-utf8-role9": "odd string 6",
	"full-hop-control-chars":  "odd string 4",
	"zones-4in6":              "addresses",
	"duration-max":            "duration 8",
	"duration-min":            "duration 9",
	"duration-tie":            "duration 3",
	"confidence-exponent":     "confidence 5",
	"confidence-nan":          "confidence 16",
	"start-offset-seconds":    "start 5 no MDA",
	"start-year-10000":        "start 7 no MDA",
	"start-negative-year":     "start 8 no MDA",
}

// TestWriteJSONSeedFiles checks that the named seeds of FuzzWriteJSON in
// testdata/fuzz are the bytes of their traces (with -update-fuzz-seeds,
// writes them), so that they stay what their names say.
func TestWriteJSONSeedFiles(t *testing.T) {
	traces := referenceTraces(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzWriteJSON")
	for file, name := range writeJSONSeeds {
		tr := traces[name]
		if tr == nil || !withinGenCaps(tr) {
			t.Fatalf("%s: no trace %q within the caps", file, name)
		}
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", traceBytes(tr))
		path := filepath.Join(dir, file)
		if *updateFuzzSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s: not the bytes of trace %q (go test -run TestWriteJSONSeedFiles -update-fuzz-seeds): %v", path, name, err)
		}
	}
}
