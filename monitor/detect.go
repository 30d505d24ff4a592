package monitor

import (
	"net/netip"
	"slices"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// A snapshot is what the change detection keeps of one run of a
// destination: its distinct paths, without RTTs or replies, small enough to
// keep two per destination of a large list.
type snapshot struct {
	Reached bool           `json:"reached"`
	ASN     bool           `json:"asn,omitempty"` // the hops carry AS numbers (--asn-db)
	Error   string         `json:"error,omitempty"`
	Paths   []snapshotPath `json:"paths"`
	// PerPacket are the per-packet load balancers of the run: the
	// branches behind them are compared as sets.
	PerPacket []analysis.PerPacketVertex `json:"per_packet,omitempty"`
}

// snapshotPath is one distinct path: the address at each TTL (invalid,
// written "", for a silent hop), and the origin AS of each with ASN.
type snapshotPath struct {
	Hops    []netip.Addr `json:"hops"`
	Reached bool         `json:"reached"`
	PathIDs []int        `json:"path_ids,omitempty"`
	ASNs    []uint32     `json:"asns,omitempty"`
}

// snapshotOf keeps the distinct paths of t.
func snapshotOf(t *analysis.Trace) *snapshot {
	s := &snapshot{ASN: t.HasASN, PerPacket: t.PerPacketVertices()}
	for _, up := range t.UniquePaths() {
		p := snapshotPath{Hops: up.Hops, Reached: up.Reached, PathIDs: up.PathIDs}
		s.Reached = s.Reached || up.Reached
		if t.HasASN && len(up.PathIDs) > 0 {
			i := slices.IndexFunc(t.Flows, func(f analysis.Flow) bool { return f.PathID == up.PathIDs[0] })
			p.ASNs = make([]uint32, len(up.Hops))
			for j := range min(len(p.ASNs), len(t.Flows[i].Hops)) {
				p.ASNs[j] = t.Flows[i].Hops[j].ASN
			}
		}
		s.Paths = append(s.Paths, p)
	}
	return s
}

// longest returns the hops of the longest path.
func (s *snapshot) longest() int {
	n := 0
	for _, p := range s.Paths {
		n = max(n, len(p.Hops))
	}
	return n
}

// samePaths says whether s and o hold the same distinct paths, whatever
// their path IDs, and reach the destination alike: then diff finds no
// change, and is not needed (the common case, by far).
func (s *snapshot) samePaths(o *snapshot) bool {
	if s.Reached != o.Reached || len(s.Paths) != len(o.Paths) {
		return false
	}
	for _, p := range s.Paths {
		if !slices.ContainsFunc(o.Paths, func(q snapshotPath) bool { return q.Reached == p.Reached && slices.Equal(q.Hops, p.Hops) }) {
			return false
		}
	}
	return true
}

// trace rebuilds a Trace of the snapshot's paths, one flow per path ID,
// for analysis.DiffTraces: it finds in it the distinct paths, reachability
// and AS paths of the run the snapshot was taken of.
func (s *snapshot) trace(t tracer.Target) *analysis.Trace {
	tr := &analysis.Trace{Destination: t.Addr, Name: targetName(t), HasASN: s.ASN}
	for _, v := range s.PerPacket {
		tr.PerPacket = append(tr.PerPacket, analysis.PerPacketHop{TTL: v.TTL + 1, Vertex: v.Addr})
	}
	for _, p := range s.Paths {
		ids := p.PathIDs
		if len(ids) == 0 {
			ids = []int{0}
		}
		for _, id := range ids {
			f := analysis.Flow{PathID: id, Hops: make([]analysis.Hop, len(p.Hops)), Reached: p.Reached}
			for j, a := range p.Hops {
				f.Hops[j] = analysis.Hop{TTL: j + 1, Addr: a}
				if j < len(p.ASNs) {
					f.Hops[j].ASN = p.ASNs[j]
				}
			}
			if p.Reached {
				f.ReachedTTL = len(p.Hops)
			}
			tr.Flows = append(tr.Flows, f)
		}
	}
	slices.SortStableFunc(tr.Flows, func(a, b analysis.Flow) int { return a.PathID - b.PathID })
	return tr
}

func targetName(t tracer.Target) string {
	if t.Name != "" {
		return t.Name
	}
	return t.Addr.String()
}

// detector holds what the change detection knows of one destination: the
// paths last confirmed, and a change seen but not confirmed yet.
type detector struct {
	known     *snapshot // nil until the first run: its paths are the baseline
	candidate *snapshot // differs from known; seen runs in a row
	seen      int
}

// A verdict is what one run of a destination means.
type verdict int

const (
	same        verdict = iota // no change, or a change not confirmed yet
	unconfirmed                // differs from the paths known, not for Confirm runs yet
	baseline                   // the first paths known of the destination
	changed                    // a change confirmed: Diff says what
)

func (v verdict) String() string {
	return [...]string{"same", "unconfirmed", "baseline", "changed"}[v]
}

// observe takes the snapshot of a new run: it returns what the run means
// and, for a change, the diff from the paths known before to these and the
// runs in a row that showed it.
func (d *detector) observe(s *snapshot, t tracer.Target, opts *detectOptions) (verdict, *analysis.DestDiff, int) {
	if d.known == nil {
		d.known = s
		return baseline, nil, 1
	}
	if s.samePaths(d.known) {
		d.candidate, d.seen = nil, 0
		return same, nil, 0
	}
	dd := diff(d.known, s, t, opts.ignore)
	if dd.Status == analysis.Unchanged {
		d.candidate, d.seen = nil, 0
		return same, nil, 0
	}
	if d.candidate != nil && (s.samePaths(d.candidate) || diff(d.candidate, s, t, opts.ignore).Status == analysis.Unchanged) {
		d.seen++
	} else {
		d.candidate, d.seen = s, 1
	}
	if d.seen < opts.confirm {
		return unconfirmed, nil, d.seen
	}
	runs := d.seen
	d.known, d.candidate, d.seen = s, nil, 0
	return changed, dd, runs
}

// detectOptions are the settings of the change detection.
type detectOptions struct {
	confirm int
	ignore  []netip.Prefix
}

// diff compares two snapshots of t as traceflow-fast diff compares two
// results.
func diff(before, after *snapshot, t tracer.Target, ignore []netip.Prefix) *analysis.DestDiff {
	d := analysis.DiffTraces([]*analysis.Trace{before.trace(t)}, []*analysis.Trace{after.trace(t)}, analysis.DiffOptions{Ignore: ignore})
	return &d.Destinations[0]
}

// paths returns the snapshot's distinct paths as a diff lists them.
func (s *snapshot) paths(t tracer.Target) []analysis.DiffPath {
	d := analysis.DiffTraces(nil, []*analysis.Trace{s.trace(t)}, analysis.DiffOptions{})
	return d.Destinations[0].Added
}

// eventOf turns a verdict into the event to report, nil for none.
func eventOf(v verdict, dd *analysis.DestDiff, s *snapshot, t tracer.Target, runs int, at time.Time) *Event {
	switch v {
	case baseline:
		return &Event{Type: Baseline, Time: at, Target: t, Reached: s.Reached, Paths: s.paths(t), Err: s.Error}
	case changed:
		typ := PathChange
		switch {
		case dd.ReachedBefore && !dd.ReachedAfter:
			typ = Unreachable
		case !dd.ReachedBefore && dd.ReachedAfter:
			typ = Reachable
		}
		return &Event{Type: typ, Time: at, Target: t, Reached: dd.ReachedAfter, Diff: dd, Runs: runs, Err: s.Error}
	}
	return nil
}
