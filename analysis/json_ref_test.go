package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// writeJSONRef is WriteJSON as encoding/json writes it, from jsonTrace and
// its parts: the reference that WriteJSON's output must equal byte for byte.
func writeJSONRef(w io.Writer, t *Trace, opts Options) error {
	_ = opts
	jt := jsonTrace{
		Destination: t.Destination,
		Name:        t.Name,
		Source:      t.Source,
		Protocol:    t.Protocol,
		MaxTTL:      t.MaxTTL,
		Start:       t.Start,
		DurationMS:  millis(t.End.Sub(t.Start)),
		Partial:     t.Partial,
		ProbesSent:  t.ProbesSent,
		Replies:     t.Replies,
		Flows:       make([]jsonFlow, len(t.Flows)),
	}
	for i, f := range t.Flows {
		jf := jsonFlow{
			PathID: f.PathID, SrcPort: f.SrcPort, DstPort: f.DstPort,
			Reached: f.Reached, ReachedTTL: f.ReachedTTL, ProbedTTL: f.ProbedTTL,
			Hops: make([]jsonHop, len(f.Hops)),
		}
		for j, h := range f.Hops {
			jh := jsonHop{TTL: h.TTL}
			if !h.Silent() {
				addr, rtt, typ, code := h.Addr, millis(h.RTT), h.ICMPType, h.ICMPCode
				jh.Addr, jh.RTTMS, jh.ICMPType, jh.ICMPCode = &addr, &rtt, &typ, &code
				jh.ASN, jh.IXP, jh.Hostname = h.ASN, h.IXP, h.Hostname
				jh.jsonHopExtras = hopExtrasJSON(&h)
				if h.Inferred {
					jh.RTTMS, jh.Inferred = nil, true
				}
			} else {
				if h.RateLimited.IsValid() {
					rl := h.RateLimited
					jh.RateLimited = &rl
				}
				jh.Unsettled = h.Unsettled
			}
			jf.Hops[j] = jh
		}
		jt.Flows[i] = jf
	}
	ups := t.UniquePaths()
	jt.UniquePaths = make([]jsonUniquePath, len(ups))
	for i, up := range ups {
		ju := jsonUniquePath{Hops: make([]*netip.Addr, len(up.Hops)), PathIDs: up.PathIDs, Reached: up.Reached}
		ju.RTTMS = rttJSON(t.PathRTT(&up))
		for j := range up.ASPath {
			var asn *uint32
			if up.ASPath[j] != 0 {
				asn = &up.ASPath[j]
			}
			ju.ASPath = append(ju.ASPath, asn)
		}
		for j := range up.Hops {
			if up.Hops[j].IsValid() {
				ju.Hops[j] = &up.Hops[j]
			}
		}
		jt.UniquePaths[i] = ju
	}
	jt.Graph = BuildGraph(t).toJSON()
	jt.Summary = PathsSummary(len(ups), len(t.Flows))
	if t.HasASN {
		asPaths := t.ASPaths()
		divergence := len(asPaths) > 1
		jt.ASPaths, jt.ASPathDivergence = &asPaths, &divergence
	}
	if t.MDA != nil {
		jt.MDA = &jsonMDA{Confidence: t.MDA.Confidence * 100, MaxPaths: t.MDA.MaxPaths, Complete: t.MDA.Complete, Incomplete: t.MDA.Incomplete}
	}
	for _, rl := range t.RateLimits {
		jr := jsonRateLimit{TTL: rl.TTL, Pace: rl.Pace, Silences: rl.Silences, Recovered: rl.Recovered}
		if rl.After.IsValid() {
			after := rl.After
			jr.After = &after
		}
		jt.RateLimits = append(jt.RateLimits, jr)
	}
	for _, r := range t.Reused {
		jt.Reused = append(jt.Reused, jsonReused(r))
	}

	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&jt); err != nil { // Encode ends the line with '\n'
		return fmt.Errorf("analysis: encode trace: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// hopExtrasJSON returns the jsonHopExtras of h.
func hopExtrasJSON(h *Hop) jsonHopExtras {
	var x jsonHopExtras
	for _, l := range h.MPLS {
		x.MPLS = append(x.MPLS, jsonMPLS(l))
	}
	for _, i := range h.Interfaces {
		ji := jsonInterface{Role: i.Role.String(), Ifindex: i.Ifindex, Name: i.Name, MTU: i.MTU}
		if i.Addr.IsValid() {
			a := i.Addr
			ji.Addr = &a
		}
		x.Interfaces = append(x.Interfaces, ji)
	}
	if len(h.MPLS) > 0 || len(h.Interfaces) > 0 {
		rfc := h.ExtFlags&probe.ExtRFC4884 != 0
		x.RFC4884 = &rfc
		x.ExtTruncated = h.ExtFlags&probe.ExtTruncated != 0
	}
	x.Rewritten = h.Rewrites.Names()
	if h.Rewrites&probe.RewriteTOS != 0 {
		tos := h.QuotedTOS
		x.QuotedTOS = &tos
	}
	return x
}

// rttJSON returns s as an "rtt_ms" object, nil when it holds no RTT.
func rttJSON(s RTTStats) *jsonRTT {
	if s.N == 0 {
		return nil
	}
	return &jsonRTT{Min: millis(s.Min), Avg: millis(s.Avg), Max: millis(s.Max)}
}
