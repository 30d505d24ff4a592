package analysis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// The JSON Lines schema: one object per Trace, on one line. Silent hops have
// "addr" and "rtt_ms" null and no "icmp_type" or "icmp_code"; a silent
// position in a unique path is null. Durations are milliseconds with three
// decimals. "unique_paths" and "summary" are derived from "flows" and
// ignored by ReadJSON.
//
// ReadJSON decodes these types; WriteJSON writes the same object by hand
// (json_append.go), so a field added here is to be written there too.
type jsonTrace struct {
	Destination netip.Addr       `json:"destination"`
	Name        string           `json:"name"`
	Source      netip.Addr       `json:"source"`
	Protocol    string           `json:"protocol"`
	MaxTTL      int              `json:"max_ttl"`
	Start       time.Time        `json:"start"`
	DurationMS  millis           `json:"duration_ms"`
	Partial     bool             `json:"partial"`
	ProbesSent  int              `json:"probes_sent"`
	Replies     int              `json:"replies"`
	Flows       []jsonFlow       `json:"flows"`
	UniquePaths []jsonUniquePath `json:"unique_paths"`
	Graph       *jsonGraph       `json:"graph"` // see graph.go
	Summary     string           `json:"summary"`
	MDA         *jsonMDA         `json:"mda,omitempty"`

	// With an AS database (Trace.HasASN): the distinct AS-level routes
	// (Trace.ASPaths) and whether there are several.
	ASPaths          *[][]uint32 `json:"as_paths,omitempty"`
	ASPathDivergence *bool       `json:"as_path_divergence,omitempty"`

	// The hops whose routers' ICMP rate limits paced the probes.
	RateLimits []jsonRateLimit `json:"rate_limits,omitempty"`

	// The vertices whose successors came from another destination's
	// probes (the stop set).
	Reused []jsonReused `json:"reused,omitempty"`
}

type jsonReused struct {
	TTL  int        `json:"ttl"`
	Addr netip.Addr `json:"addr"`
	From netip.Addr `json:"from"`
}

type jsonRateLimit struct {
	TTL      int         `json:"ttl"`
	After    *netip.Addr `json:"after"` // null: every router of the TTL
	Pace     float64     `json:"pace_per_s"`
	Silences int         `json:"silences"`
	// Probes answered only when sent again (RateLimit.Recovered).
	Recovered int `json:"recovered,omitempty"`
}

type jsonMDA struct {
	Confidence float64 `json:"confidence"` // percent
	MaxPaths   int     `json:"max_paths"`
	Complete   bool    `json:"complete"`
	// Path IDs probed at some TTLs only, left out of the flows.
	Incomplete []int `json:"incomplete,omitempty"`
}

type jsonFlow struct {
	PathID     int       `json:"path_id"`
	SrcPort    uint16    `json:"src_port"`
	DstPort    uint16    `json:"dst_port"`
	Reached    bool      `json:"reached"`
	ReachedTTL int       `json:"reached_ttl"`
	ProbedTTL  int       `json:"probed_ttl"`
	Hops       []jsonHop `json:"hops"`
}

type jsonHop struct {
	TTL      int         `json:"ttl"`
	Addr     *netip.Addr `json:"addr"`
	RTTMS    *millis     `json:"rtt_ms"`
	ICMPType *uint8      `json:"icmp_type,omitempty"`
	ICMPCode *uint8      `json:"icmp_code,omitempty"`
	ASN      uint32      `json:"asn,omitempty"`      // origin AS; absent when unknown
	IXP      string      `json:"ixp,omitempty"`      // IXP peering LAN name
	Hostname string      `json:"hostname,omitempty"` // reverse DNS
	// Inferred: this TTL was not probed; --paths auto implies the hop
	// (no RTT).
	Inferred bool `json:"inferred,omitempty"`
	// RateLimited: a silent hop that is probably this address, which
	// limits its ICMP rate (Hop.RateLimited).
	RateLimited *netip.Addr `json:"rate_limited,omitempty"`
	// Unsettled: a silent hop whose silences the routers' ICMP budget
	// explained, not answered within the retries (Hop.Unsettled).
	Unsettled bool `json:"unsettled,omitempty"`
	// MPLS labels, interface information and rewrites (extras_json.go).
	jsonHopExtras
}

type jsonUniquePath struct {
	Hops    []*netip.Addr `json:"hops"`
	PathIDs []int         `json:"path_ids"`
	Reached bool          `json:"reached"`
	ASPath  []*uint32     `json:"as_path,omitempty"` // a gap (unknown AS) is null
	// RTTMS: the RTTs of the destination's answers to the path IDs of the
	// path (Trace.PathRTT); null when it was not reached.
	RTTMS *jsonRTT `json:"rtt_ms"`
}

// millis is a duration written as milliseconds with three decimals.
type millis time.Duration

func (m millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(m)/float64(time.Millisecond), 'f', 3, 64), nil
}

// maxMillis is the longest Duration in milliseconds, as the float64 that
// its text, 9223372036854.775, reads as.
const maxMillis = float64(math.MaxInt64) / float64(time.Millisecond)

func (m *millis) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxMillis {
		return fmt.Errorf("bad milliseconds %s", b)
	}
	// At the ends of the range, f in nanoseconds rounds to ±2^63: the
	// longest durations WriteJSON writes read back as the longest.
	switch ns := math.Round(f * float64(time.Millisecond)); {
	case ns >= math.MaxInt64:
		*m = math.MaxInt64
	case ns <= math.MinInt64:
		*m = math.MinInt64
	default:
		*m = millis(ns)
	}
	return nil
}

// WriteJSON writes t as one line of JSON (JSON Lines). The object is the
// same with and without opts.Dedup: it always holds both "flows" and
// "unique_paths". The line goes to w in one Write, and nothing does when t
// cannot be encoded.
func WriteJSON(w io.Writer, t *Trace, opts Options) error {
	_ = opts
	bp := jsonBufs.Get().(*[]byte)
	b, err := appendTraceJSON((*bp)[:0], t)
	if err != nil {
		err = fmt.Errorf("analysis: encode trace: %w", err)
	} else {
		_, err = w.Write(b)
	}
	if cap(b) <= maxPooledJSON {
		*bp = b
		jsonBufs.Put(bp)
	}
	return err
}

// ReadJSON returns an iterator over the Traces written by WriteJSON to r,
// one per line; blank lines are skipped. It stops after the first error,
// which it yields with a nil Trace. It reads r as it goes, so it can be
// ranged over once.
func ReadJSON(r io.Reader) iter.Seq2[*Trace, error] {
	return func(yield func(*Trace, error) bool) {
		br := bufio.NewReader(r)
		for line := 1; ; line++ {
			b, err := readLine(br, maxJSONLine)
			if errors.Is(err, errLineTooLong) {
				yield(nil, fmt.Errorf("analysis: line %d: %w", line, err))
				return
			}
			if len(bytes.TrimSpace(b)) > 0 {
				t, derr := decodeTrace(b)
				if derr != nil {
					yield(nil, fmt.Errorf("analysis: line %d: %w", line, derr))
					return
				}
				if !yield(t, nil) {
					return
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, fmt.Errorf("analysis: read traces: %w", err))
				return
			}
		}
	}
}

// maxJSONLine bounds the length of one line (one Trace), so that a file
// without line breaks is refused instead of read into memory whole. The
// longest line WriteJSON writes, 4096 path IDs of 64 hops with AS numbers,
// IXP names and long host names, is about 110 MiB.
var maxJSONLine = 256 << 20

var errLineTooLong = errors.New("line too long")

// readLine reads up to and including the next '\n', or to the end of r, but
// at most max bytes: a longer line is errLineTooLong.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, max)
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// decodeTrace decodes one line of WriteJSON's output, b.
func decodeTrace(b []byte) (*Trace, error) {
	var jt jsonTrace
	if err := json.Unmarshal(b, &jt); err != nil {
		return nil, err
	}
	t := &Trace{
		Destination: jt.Destination,
		Name:        jt.Name,
		Source:      jt.Source,
		Protocol:    jt.Protocol,
		MaxTTL:      jt.MaxTTL,
		Flows:       make([]Flow, len(jt.Flows)),
		ProbesSent:  jt.ProbesSent,
		Replies:     jt.Replies,
		Start:       jt.Start,
		End:         jt.Start.Add(time.Duration(jt.DurationMS)),
		Partial:     jt.Partial,
	}
	t.PerPacket = perPacketFromJSON(jt.Graph)
	for _, rl := range jt.RateLimits {
		r := RateLimit{TTL: rl.TTL, Pace: rl.Pace, Silences: rl.Silences, Recovered: rl.Recovered}
		if rl.After != nil {
			r.After = *rl.After
		}
		t.RateLimits = append(t.RateLimits, r)
	}
	for _, r := range jt.Reused {
		t.Reused = append(t.Reused, ReusedVertex(r))
	}
	t.HasASN = jt.ASPaths != nil || jt.ASPathDivergence != nil
	if jt.MDA != nil {
		t.MDA = &MDA{Confidence: jt.MDA.Confidence / 100, MaxPaths: jt.MDA.MaxPaths, Complete: jt.MDA.Complete, Incomplete: jt.MDA.Incomplete}
	}
	hops := 0
	for i := range jt.Flows {
		f, err := decodeFlow(&jt.Flows[i], &hops, len(b))
		if err != nil {
			return nil, err
		}
		t.Flows[i] = f
	}
	slices.SortStableFunc(t.Flows, func(a, b Flow) int { return a.PathID - b.PathID })
	for i := 1; i < len(t.Flows); i++ {
		if t.Flows[i].PathID == t.Flows[i-1].PathID {
			return nil, errors.New("duplicate path ID " + strconv.Itoa(t.Flows[i].PathID))
		}
	}
	return t, nil
}

// decodeFlow decodes one flow of a line of lineLen bytes; hops counts the
// hops of the line's flows so far.
func decodeFlow(jf *jsonFlow, hops *int, lineLen int) (Flow, error) {
	f := Flow{
		PathID: jf.PathID, SrcPort: jf.SrcPort, DstPort: jf.DstPort,
		Reached: jf.Reached, ReachedTTL: jf.ReachedTTL, ProbedTTL: jf.ProbedTTL,
	}
	// Hops are written for every TTL up to the flow's length; accept
	// them sparse too (missing TTLs are silent), but in order.
	n := 0
	for _, jh := range jf.Hops {
		if jh.TTL <= n || jh.TTL > 255 {
			return Flow{}, fmt.Errorf("path ID %d: hop TTL %d out of order or range", jf.PathID, jh.TTL)
		}
		n = jh.TTL
	}
	// Gaps in sparse hops are silent hops that take no bytes: bound
	// them all by the length of the line, which the hops WriteJSON
	// writes (one per TTL, 10 bytes or more each) never come near,
	// so that a few bytes cannot claim 255 hops per flow.
	if *hops += n; *hops > lineLen {
		return Flow{}, fmt.Errorf("path ID %d: %d hops in all, more than the %d bytes of the line", jf.PathID, *hops, lineLen)
	}
	f.Hops = make([]Hop, n)
	for j := range f.Hops {
		f.Hops[j].TTL = j + 1
	}
	for k := range jf.Hops {
		jh := &jf.Hops[k]
		if err := decodeHop(&f.Hops[jh.TTL-1], jh); err != nil {
			return Flow{}, fmt.Errorf("path ID %d TTL %d: %w", jf.PathID, jh.TTL, err)
		}
	}
	if f.Reached && f.ReachedTTL != len(f.Hops) {
		return Flow{}, fmt.Errorf("path ID %d: reached_ttl %d but %d hops", f.PathID, f.ReachedTTL, len(f.Hops))
	}
	return f, nil
}

// decodeHop fills h, which has its TTL, from jh.
func decodeHop(h *Hop, jh *jsonHop) error {
	if jh.Addr == nil || !jh.Addr.IsValid() {
		if jh.RateLimited != nil && jh.RateLimited.IsValid() {
			h.RateLimited = *jh.RateLimited
		}
		h.Unsettled = jh.Unsettled
		return nil
	}
	h.Addr = *jh.Addr
	if jh.RTTMS != nil {
		h.RTT = time.Duration(*jh.RTTMS)
	}
	if jh.ICMPType != nil {
		h.ICMPType = *jh.ICMPType
	}
	if jh.ICMPCode != nil {
		h.ICMPCode = *jh.ICMPCode
	}
	h.ASN, h.IXP, h.Hostname = jh.ASN, jh.IXP, jh.Hostname
	h.Inferred = jh.Inferred
	return jh.jsonHopExtras.hop(h)
}
