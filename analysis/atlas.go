package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"strings"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// RIPE Atlas traceroute results (atlas.ripe.net/docs/apis/measurement-result-format),
// as RIPE Atlas probes write them and as ripe.atlas.sagan and other Atlas
// parsers read them: one JSON object per line, one per destination and path
// ID. A path ID is a Paris traceroute variation (its source port is the
// "paris_id"), so every record is one flow, with one reply per hop.
//
// The fields follow result format version 5000 (any "fw" of 5000 or more
// conforms to it). Where a record comes from a traceflow-fast run rather
// than from an Atlas probe:
//
//   - "msm_id" and "prb_id" are 0 (no measurement, no probe) and "lts" is -1
//     ("the probe does not know whether it is in sync"): parsers require the
//     first two to be present;
//   - "from" and "src_addr" are the source address of the probes;
//   - "af" is 4, or 6 for an IPv6 destination;
//   - "size" is the UDP payload of a probe (2 bytes; 4 over IPv6), as Atlas
//     probes count it;
//   - what Atlas has no field for is under "traceflow".
//
// A reply is {"from", "rtt", "size", "ttl"} and, as Atlas writes them,
// "ittl" (the quoted TTL, when not 1) and "err" (an ICMP destination
// unreachable other than port unreachable, the normal end of a UDP
// traceroute: "N", "H", "P", "A" or the code as a number). "size" and "ttl" need the
// reply itself (AtlasOptions.Reply) and are left out without it. A silent
// hop is {"x": "*"}. A reply with RFC 4884 extensions (MPLS labels,
// interface information) has an "icmpext" object (see atlasICMPExt). A
// reply from an address of a known AS or IXP, or quoting a rewritten
// probe, has a "traceflow" object with its "asn" and "ixp" (each only when
// known) and "rewritten" (see atlasReplyTraceflow).
type atlasRecord struct {
	Fw        int            `json:"fw"`
	Lts       int            `json:"lts"`
	Type      string         `json:"type"`
	MsmID     int            `json:"msm_id"`
	MsmName   string         `json:"msm_name"`
	PrbID     int            `json:"prb_id"`
	Af        int            `json:"af"`
	Proto     string         `json:"proto"`
	From      string         `json:"from"`
	SrcAddr   string         `json:"src_addr"`
	DstAddr   string         `json:"dst_addr"`
	DstName   string         `json:"dst_name"`
	ParisID   int            `json:"paris_id"`
	Size      int            `json:"size"`
	Timestamp int64          `json:"timestamp"`
	Endtime   int64          `json:"endtime"`
	Result    []atlasHop     `json:"result"`
	Traceflow atlasTraceflow `json:"traceflow"`
}

type atlasHop struct {
	Hop    int          `json:"hop"`
	Result []atlasReply `json:"result"`
}

type atlasReply struct {
	X    string  `json:"x,omitempty"`
	From string  `json:"from,omitempty"`
	RTT  *millis `json:"rtt,omitempty"`
	Size *int    `json:"size,omitempty"`
	TTL  *int    `json:"ttl,omitempty"`
	ITTL int     `json:"ittl,omitempty"`
	Err  any     `json:"err,omitempty"`
	// ICMPExt holds the reply's RFC 4884 extensions as Atlas probes
	// write them; absent when it had none.
	ICMPExt *atlasICMPExt `json:"icmpext,omitempty"`
	// Traceflow is what traceflow-fast knows of the replying address
	// beyond the Atlas fields; absent when nothing is known.
	Traceflow *atlasReplyTraceflow `json:"traceflow,omitempty"`
}

// atlasReplyTraceflow is the "traceflow" object of a reply: the AS and the
// IXP of its address (--asn-db, --ixp-db), each only when known, and how
// the probe it quotes was rewritten on its way (Hop.Rewrites, with the
// quoted TOS byte when it is the TOS), when it was.
type atlasReplyTraceflow struct {
	ASN       uint32   `json:"asn,omitempty"`
	IXP       string   `json:"ixp,omitempty"`
	Rewritten []string `json:"rewritten,omitempty"`
	QuotedTOS *uint8   `json:"quoted_tos,omitempty"`
}

// atlasICMPExt is the "icmpext" object of a reply: "version" 2 (of the
// RFC 4884 extension structure), "rfc4884" 1 when the reply had the RFC
// 4884 length attribute (0 when its extensions followed 128 octets of
// quote), and an "obj" per object, with its "class" and c-"type". An RFC
// 4950 MPLS label stack (class 1, type 1) has "mpls", its entries top
// first as {"label", "exp", "s", "ttl"}, as Atlas writes them. Atlas
// defines no fields for RFC 5837 interface information (class 2, the
// c-type holding the role and which sub-objects follow): its objects have
// those of the JSON output, "role", "ifindex", "addr", "name" and "mtu",
// each when the object has it.
type atlasICMPExt struct {
	Version int           `json:"version"`
	RFC4884 int           `json:"rfc4884"`
	Obj     []atlasExtObj `json:"obj"`
}

type atlasExtObj struct {
	Class   int         `json:"class"`
	Type    int         `json:"type"`
	MPLS    []atlasMPLS `json:"mpls,omitempty"`
	Role    string      `json:"role,omitempty"`
	Ifindex uint32      `json:"ifindex,omitempty"`
	Addr    string      `json:"addr,omitempty"`
	Name    string      `json:"name,omitempty"`
	MTU     uint32      `json:"mtu,omitempty"`
}

type atlasMPLS struct {
	Label uint32 `json:"label"`
	Exp   uint8  `json:"exp"`
	S     int    `json:"s"`
	TTL   uint8  `json:"ttl"`
}

// atlasExt returns the "icmpext" object of a hop, nil when its reply had
// no extensions.
func atlasExt(h *Hop) *atlasICMPExt {
	if len(h.MPLS) == 0 && len(h.Interfaces) == 0 {
		return nil
	}
	x := &atlasICMPExt{Version: 2}
	if h.ExtFlags&probe.ExtRFC4884 != 0 {
		x.RFC4884 = 1
	}
	if len(h.MPLS) > 0 {
		o := atlasExtObj{Class: 1, Type: 1}
		for _, l := range h.MPLS {
			m := atlasMPLS{Label: l.Label, Exp: l.TC, TTL: l.TTL}
			if l.S {
				m.S = 1
			}
			o.MPLS = append(o.MPLS, m)
		}
		x.Obj = append(x.Obj, o)
	}
	for _, i := range h.Interfaces {
		// RFC 5837 section 4.1: the role in the two high bits of the
		// c-type, then a bit per sub-object: ifIndex 0x08, IP address
		// 0x04, name 0x02, MTU 0x01.
		o := atlasExtObj{Class: 2, Type: int(i.Role&3) << 6, Role: i.Role.String(), Ifindex: i.Ifindex, Name: i.Name, MTU: i.MTU}
		if i.Ifindex != 0 {
			o.Type |= 0x08
		}
		if i.Addr.IsValid() {
			o.Type |= 0x04
			o.Addr = i.Addr.String()
		}
		if i.Name != "" {
			o.Type |= 0x02
		}
		if i.MTU != 0 {
			o.Type |= 0x01
		}
		x.Obj = append(x.Obj, o)
	}
	return x
}

// atlasTraceflow holds what traceflow-fast knows beyond the Atlas fields.
type atlasTraceflow struct {
	PathID     int    `json:"path_id"`
	SrcPort    uint16 `json:"src_port"`
	DstPort    uint16 `json:"dst_port"`
	Reached    bool   `json:"reached"`
	ReachedTTL int    `json:"reached_ttl"`
	ProbedTTL  int    `json:"probed_ttl"`
	Partial    bool   `json:"partial"`
	// Agent is the fleet agent that traced it (Trace.Vantage).
	Agent string `json:"agent,omitempty"`
}

// AtlasFirmware is the "fw" of the records: a result format version 5000
// value, which parsers use to pick the format.
const AtlasFirmware = 5020

// atlasProbePayload is the UDP payload of a probe: Atlas's "size"
// (atlasProbePayload6 over IPv6).
const (
	atlasProbePayload  = 2
	atlasProbePayload6 = 4
)

// atlasICMPOverhead is what Atlas probes subtract from the length of a
// reply to get its "size": an IPv4 header without options and an ICMP
// header (20 + 8 bytes), leaving the quote and any extensions.
const atlasICMPOverhead = 28

// atlasICMPOverhead6 is the same for ICMPv6: an IPv6 header and an ICMPv6
// header (40 + 8 bytes).
const atlasICMPOverhead6 = 48

// AtlasProbeID is the "prb_id" of the records of a trace from the fleet
// agent named vantage: a number (Atlas parsers want one) that the name
// alone gives, the FNV-1a hash of the name in 31 bits, never 0; 0 for a
// run of this host. The name itself is in "traceflow": {"agent": ...}.
func AtlasProbeID(vantage string) int {
	if vantage == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(vantage))
	return int(max(h.Sum32()&0x7fffffff, 1))
}

// AtlasOptions select what WriteAtlas adds to the records (none yet).
type AtlasOptions struct{}

// WriteAtlas writes t as RIPE Atlas traceroute results, one JSON line per
// path ID in path ID order. Each record's "result" holds the flow's hops,
// TTL 1 to its true length, exactly as the flow has them (a flow from
// which nothing answered has an empty "result").
func WriteAtlas(w io.Writer, t *Trace, opts AtlasOptions) error {
	src := atlasAddr(t.Source)
	name := t.Name
	if name == "" {
		name = atlasAddr(t.Destination)
	}
	af, size := 4, atlasProbePayload
	if t.Destination.Is6() && !t.Destination.Is4In6() {
		af, size = 6, atlasProbePayload6
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range t.Flows {
		f := &t.Flows[i]
		rec := atlasRecord{
			Fw: AtlasFirmware, Lts: -1, Type: "traceroute", MsmName: "Traceroute",
			Af: af, Proto: atlasProto(t.Protocol), From: src, SrcAddr: src,
			DstAddr: atlasAddr(t.Destination), DstName: name,
			ParisID: int(f.SrcPort), Size: size, PrbID: AtlasProbeID(t.Vantage),
			Timestamp: t.Start.Unix(), Endtime: t.End.Unix(),
			Result: make([]atlasHop, len(f.Hops)),
			Traceflow: atlasTraceflow{
				PathID: f.PathID, SrcPort: f.SrcPort, DstPort: f.DstPort,
				Reached: f.Reached, ReachedTTL: f.ReachedTTL, ProbedTTL: f.ProbedTTL,
				Partial: t.Partial, Agent: t.Vantage,
			},
		}
		for j := range f.Hops {
			h := &f.Hops[j]
			ttl := h.TTL
			if ttl == 0 { // a hand-built hop: TTL j+1 is at index j
				ttl = j + 1
			}
			rec.Result[j] = atlasHop{Hop: ttl, Result: []atlasReply{atlasReplyOf(f, h, ttl, opts)}}
		}
		if err := enc.Encode(&rec); err != nil {
			return fmt.Errorf("analysis: encode Atlas record: %w", err)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func atlasReplyOf(f *Flow, h *Hop, ttl int, opts AtlasOptions) atlasReply {
	if h.Silent() {
		return atlasReply{X: "*"}
	}
	rtt := millis(h.RTT)
	r := atlasReply{From: h.Addr.String(), RTT: &rtt}
	v6 := h.Addr.Is6() && !h.Addr.Is4In6()
	if h.Size > 0 {
		// The size, TTL and quoted TTL of the reply, when recorded.
		overhead := atlasICMPOverhead
		if v6 {
			overhead = atlasICMPOverhead6
		}
		size, replyTTL := max(h.Size-overhead, 0), int(h.ReplyTTL)
		r.Size, r.TTL = &size, &replyTTL
		if h.QuotedTTL != 1 {
			r.ITTL = int(h.QuotedTTL)
		}
	}
	switch {
	case v6 && h.ICMPType == icmp6Unreachable:
		r.Err = atlasErr6(h.ICMPCode)
	case !v6 && h.ICMPType == icmpUnreachable:
		r.Err = atlasErr(h.ICMPCode)
	}
	r.ICMPExt = atlasExt(h)
	if h.ASN != 0 || h.IXP != "" || h.Rewrites != 0 {
		r.Traceflow = &atlasReplyTraceflow{ASN: h.ASN, IXP: h.IXP, Rewritten: h.Rewrites.Names()}
		if h.Rewrites&probe.RewriteTOS != 0 {
			tos := h.QuotedTOS
			r.Traceflow.QuotedTOS = &tos
		}
	}
	return r
}

// atlasProto is the "proto" of a record: UDP, TCP or ICMP, as Atlas writes
// them (UDP when the trace does not say).
func atlasProto(p string) string {
	if p == "" {
		return "UDP"
	}
	return strings.ToUpper(p)
}

// atlasErr is the "err" of a destination unreachable with code c, as Atlas
// probes write it for UDP traceroutes (RFC 792 and RFC 1812 codes): 0 net
// "N", 1 host "H", 2 protocol "P", 13 communication administratively
// prohibited "A", 3 port (the normal end of a UDP traceroute) none, any
// other code as a number.
func atlasErr(c uint8) any {
	switch c {
	case 0:
		return "N"
	case 1:
		return "H"
	case 2:
		return "P"
	case codePortUnreachable:
		return nil
	case 13:
		return "A"
	}
	return int(c)
}

// atlasErr6 is atlasErr for an ICMPv6 destination unreachable (RFC 4443
// codes): 0 no route "N", 1 administratively prohibited "A", 3 address
// unreachable "H", 4 port (the normal end) none, any other code as a
// number.
func atlasErr6(c uint8) any {
	switch c {
	case 0:
		return "N"
	case 1:
		return "A"
	case 3:
		return "H"
	case code6PortUnreachable:
		return nil
	}
	return int(c)
}

// atlasAddr renders an address, "" when unknown.
func atlasAddr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
