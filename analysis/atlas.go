package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
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
//   - "size" is the UDP payload of a probe (2 bytes), as Atlas probes count
//     it;
//   - what Atlas has no field for is under "traceflow".
//
// A reply is {"from", "rtt", "size", "ttl"} and, as Atlas writes them,
// "ittl" (the quoted TTL, when not 1) and "err" (an ICMP destination
// unreachable other than port unreachable, the normal end of a UDP
// traceroute: "N", "H", "P", "A" or the code as a number). "size" and "ttl" need the
// reply itself (AtlasOptions.Reply) and are left out without it. A silent
// hop is {"x": "*"}. A reply from an address of a known AS or IXP has a
// "traceflow" object with its "asn" and "ixp" (each only when known).
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
	// Traceflow is what traceflow-fast knows of the replying address
	// beyond the Atlas fields; absent when nothing is known.
	Traceflow *atlasReplyTraceflow `json:"traceflow,omitempty"`
}

// atlasReplyTraceflow is the "traceflow" object of a reply: the AS and the
// IXP of its address (--asn-db, --ixp-db), each only when known.
type atlasReplyTraceflow struct {
	ASN uint32 `json:"asn,omitempty"`
	IXP string `json:"ixp,omitempty"`
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
}

// AtlasFirmware is the "fw" of the records: a result format version 5000
// value, which parsers use to pick the format.
const AtlasFirmware = 5020

// atlasProbePayload is the UDP payload of a probe: Atlas's "size".
const atlasProbePayload = 2

// atlasICMPOverhead is what Atlas probes subtract from the length of a
// reply to get its "size": an IPv4 header without options and an ICMP
// header (20 + 8 bytes), leaving the quote and any extensions.
const atlasICMPOverhead = 28

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
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range t.Flows {
		f := &t.Flows[i]
		rec := atlasRecord{
			Fw: AtlasFirmware, Lts: -1, Type: "traceroute", MsmName: "Traceroute",
			Af: 4, Proto: "UDP", From: src, SrcAddr: src,
			DstAddr: atlasAddr(t.Destination), DstName: name,
			ParisID: int(f.SrcPort), Size: atlasProbePayload,
			Timestamp: t.Start.Unix(), Endtime: t.End.Unix(),
			Result: make([]atlasHop, len(f.Hops)),
			Traceflow: atlasTraceflow{
				PathID: f.PathID, SrcPort: f.SrcPort, DstPort: f.DstPort,
				Reached: f.Reached, ReachedTTL: f.ReachedTTL, ProbedTTL: f.ProbedTTL,
				Partial: t.Partial,
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
	if h.Size > 0 {
		// The size, TTL and quoted TTL of the reply, when recorded.
		size, replyTTL := max(h.Size-atlasICMPOverhead, 0), int(h.ReplyTTL)
		r.Size, r.TTL = &size, &replyTTL
		if h.QuotedTTL != 1 {
			r.ITTL = int(h.QuotedTTL)
		}
	}
	if h.ICMPType == icmpUnreachable {
		r.Err = atlasErr(h.ICMPCode)
	}
	if h.ASN != 0 || h.IXP != "" {
		r.Traceflow = &atlasReplyTraceflow{ASN: h.ASN, IXP: h.IXP}
	}
	return r
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

// atlasAddr renders an address, "" when unknown.
func atlasAddr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
