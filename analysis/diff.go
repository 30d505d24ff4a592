package analysis

import (
	"cmp"
	"net/netip"
	"slices"
)

// Path-change detection compares, per destination, the *sets* of distinct
// paths of two results, never which path ID took which path: a router that
// reboots re-seeds its ECMP hash and reshuffles the source ports over the
// same paths, which is no change at all.

// DiffOptions tune Diff.
type DiffOptions struct {
	// Ignore lists known-noisy hops. At a TTL where either of two paths
	// has an address inside one of these prefixes, the paths are taken to
	// agree whatever the other holds (another address, or silence).
	Ignore []netip.Prefix
}

// Diff is what changed between two results, per destination.
type Diff struct {
	Destinations []DestDiff // in the order of the before result, then the after-only ones
}

// Changed reports whether any destination changed.
func (d *Diff) Changed() bool { return d.ChangedCount() > 0 }

// ChangedCount returns the number of destinations whose Status is not
// Unchanged.
func (d *Diff) ChangedCount() int {
	n := 0
	for i := range d.Destinations {
		if d.Destinations[i].Status != Unchanged {
			n++
		}
	}
	return n
}

// DestStatus says how one destination compares.
type DestStatus int

// Destination statuses; the zero value is invalid.
const (
	_          DestStatus = iota
	Unchanged             // the same distinct paths, reached alike
	Changed               // paths added, removed or changed, or reachability changed
	OnlyBefore            // the destination is not in the after result
	OnlyAfter             // the destination is not in the before result
)

func (s DestStatus) String() string {
	switch s {
	case Unchanged:
		return "unchanged"
	case Changed:
		return "changed"
	case OnlyBefore:
		return "only_before"
	case OnlyAfter:
		return "only_after"
	}
	return "invalid"
}

// DestDiff compares the distinct paths of one destination.
type DestDiff struct {
	Destination netip.Addr
	Name        string
	Status      DestStatus
	// ReachedBefore and ReachedAfter say whether any flow reached the
	// destination; they differ when it became unreachable or reachable.
	ReachedBefore, ReachedAfter bool
	// PathsBefore and PathsAfter count the distinct paths.
	PathsBefore, PathsAfter int
	// LengthsBefore and LengthsAfter are the distinct path lengths (hops,
	// the destination included), ascending.
	LengthsBefore, LengthsAfter []int
	// Same holds the paths of the after result that agree with a path of
	// the before result.
	Same []DiffPath
	// Removed holds the paths of the before result that agree with none of
	// the after result, Added the converse, except those paired in Changed.
	Removed, Added []DiffPath
	// Changed pairs a removed path with an added one when they share most
	// of their hops: the same path with some hops changed.
	Changed []PathChange
	// ASPathsBefore and ASPathsAfter are the distinct AS-level routes
	// (Trace.ASPaths) when both results carry AS numbers; nil otherwise.
	ASPathsBefore, ASPathsAfter [][]uint32
	// PartialBefore and PartialAfter say that a result was interrupted.
	PartialBefore, PartialAfter bool
}

// DiffPath is one distinct path of one side of a Diff.
type DiffPath struct {
	Hops    []netip.Addr // index i is TTL i+1; invalid = silent
	Reached bool
	PathIDs []int    // ascending; nil when the side lists paths without path IDs (an expected-paths file)
	ASPath  []uint32 // see UniquePath.ASPath; nil without AS numbers
}

// PathChange is a path whose hops changed at some TTLs.
type PathChange struct {
	Before, After DiffPath
	Hops          []HopChange // ascending TTL
}

// HopChange is one TTL at which a changed path differs. An address is
// invalid when that hop was silent, or when the path ends before TTL
// (TTL > len(Hops) of that side).
type HopChange struct {
	TTL           int
	Before, After netip.Addr
}

// DiffTraces compares the distinct paths of before and after (results of one or
// several destinations; several results of one destination are merged)
// destination by destination.
func DiffTraces(before, after []*Trace, opts DiffOptions) *Diff {
	bOrder, b := collectDests(before)
	aOrder, a := collectDests(after)
	d := &Diff{}
	for _, dst := range bOrder {
		d.Destinations = append(d.Destinations, diffDest(b[dst], a[dst], opts))
	}
	for _, dst := range aOrder {
		if b[dst] == nil {
			d.Destinations = append(d.Destinations, diffDest(nil, a[dst], opts))
		}
	}
	return d
}

// destPaths is one side's distinct paths of one destination.
type destPaths struct {
	dst     netip.Addr
	name    string
	paths   []DiffPath
	reached bool
	partial bool
	hasASN  bool
	asPaths [][]uint32
	pp      []PerPacketVertex
}

func collectDests(traces []*Trace) ([]netip.Addr, map[netip.Addr]*destPaths) {
	var order []netip.Addr
	m := map[netip.Addr]*destPaths{}
	for _, t := range traces {
		dp := m[t.Destination]
		if dp == nil {
			dp = &destPaths{dst: t.Destination, name: t.Name, hasASN: true}
			m[t.Destination] = dp
			order = append(order, t.Destination)
		}
		dp.partial = dp.partial || t.Partial
		dp.hasASN = dp.hasASN && t.HasASN
		for _, v := range t.PerPacketVertices() {
			if !slices.Contains(dp.pp, v) {
				dp.pp = append(dp.pp, v)
			}
		}
		for _, f := range t.Flows {
			dp.reached = dp.reached || f.Reached
		}
		for _, up := range t.UniquePaths() {
			ids := slices.DeleteFunc(slices.Clone(up.PathIDs), func(id int) bool { return id == 0 })
			if len(ids) == 0 {
				ids = nil
			}
			i := slices.IndexFunc(dp.paths, func(p DiffPath) bool { return slices.Equal(p.Hops, up.Hops) })
			if i < 0 {
				dp.paths = append(dp.paths, DiffPath{Hops: up.Hops, Reached: up.Reached, PathIDs: ids, ASPath: up.ASPath})
				continue
			}
			p := &dp.paths[i]
			p.Reached = p.Reached || up.Reached
			for _, id := range ids {
				if !slices.Contains(p.PathIDs, id) {
					p.PathIDs = append(p.PathIDs, id)
				}
			}
			slices.Sort(p.PathIDs)
		}
		for _, ap := range t.ASPaths() {
			if !slices.ContainsFunc(dp.asPaths, func(x []uint32) bool { return slices.Equal(x, ap) }) {
				dp.asPaths = append(dp.asPaths, ap)
			}
		}
	}
	return order, m
}

func diffDest(b, a *destPaths, opts DiffOptions) DestDiff {
	var dd DestDiff
	switch {
	case a == nil:
		dd = DestDiff{Destination: b.dst, Name: b.name, Status: OnlyBefore, Removed: b.paths}
		dd.fill(b, &destPaths{})
		return dd
	case b == nil:
		dd = DestDiff{Destination: a.dst, Name: a.name, Status: OnlyAfter, Added: a.paths}
		dd.fill(&destPaths{}, a)
		return dd
	}
	dd = DestDiff{Destination: a.dst, Name: a.name}
	if dd.Name == "" || dd.Name == dd.Destination.String() {
		dd.Name = cmp.Or(b.name, a.name)
	}
	dd.fill(b, a)
	pp := slices.Concat(b.pp, a.pp)
	for _, q := range a.paths {
		if pathIn(q, b.paths, pp, opts.Ignore) {
			dd.Same = append(dd.Same, q)
		} else {
			dd.Added = append(dd.Added, q)
		}
	}
	for _, p := range b.paths {
		if !pathIn(p, a.paths, pp, opts.Ignore) {
			dd.Removed = append(dd.Removed, p)
		}
	}
	dd.pairChanges(opts.Ignore)
	dd.Status = Unchanged
	if len(dd.Removed)+len(dd.Added)+len(dd.Changed) > 0 || dd.ReachedBefore != dd.ReachedAfter {
		dd.Status = Changed
	}
	return dd
}

func (dd *DestDiff) fill(b, a *destPaths) {
	dd.ReachedBefore, dd.ReachedAfter = b.reached, a.reached
	dd.PathsBefore, dd.PathsAfter = len(b.paths), len(a.paths)
	dd.LengthsBefore, dd.LengthsAfter = pathLengths(b.paths), pathLengths(a.paths)
	dd.PartialBefore, dd.PartialAfter = b.partial, a.partial
	if b.hasASN && a.hasASN {
		dd.ASPathsBefore, dd.ASPathsAfter = b.asPaths, a.asPaths
	}
}

func pathLengths(paths []DiffPath) []int {
	var out []int
	for _, p := range paths {
		if !slices.Contains(out, len(p.Hops)) {
			out = append(out, len(p.Hops))
		}
	}
	slices.Sort(out)
	return out
}

// pathIn reports whether p is among paths: one of them agrees with it
// hop by hop, or p goes through a per-packet load balancer of pp, whose
// flows' hops beyond it are draws: the branches behind it are then a set,
// and p is among paths when paths took its hops up to the balancer, and
// each hop beyond at its TTL behind it, and ended alike.
func pathIn(p DiffPath, paths []DiffPath, pp []PerPacketVertex, ignore []netip.Prefix) bool {
	if slices.ContainsFunc(paths, func(q DiffPath) bool { return hopsAgree(q.Hops, p.Hops, ignore) }) {
		return true
	}
	v := -1
	for i, a := range p.Hops {
		if slices.Contains(pp, PerPacketVertex{TTL: i + 1, Addr: a}) {
			v = i
			break
		}
	}
	if v < 0 {
		return false
	}
	behind := func(q DiffPath) bool { return len(q.Hops) > v && hopsAgree(q.Hops[:v+1], p.Hops[:v+1], ignore) }
	if !slices.ContainsFunc(paths, func(q DiffPath) bool { return behind(q) && len(q.Hops) == len(p.Hops) && q.Reached == p.Reached }) {
		return false
	}
	for i := v + 1; i < len(p.Hops); i++ {
		if !slices.ContainsFunc(paths, func(q DiffPath) bool { return behind(q) && len(q.Hops) > i && hopAgrees(q.Hops[i], p.Hops[i], ignore) }) {
			return false
		}
	}
	return true
}

// hopsAgree reports whether two hop sequences are the same path: equal
// length and, at every TTL, the same address (or both silent), or an
// ignored address on either side.
func hopsAgree(x, y []netip.Addr, ignore []netip.Prefix) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !hopAgrees(x[i], y[i], ignore) {
			return false
		}
	}
	return true
}

func hopAgrees(x, y netip.Addr, ignore []netip.Prefix) bool {
	return x == y || ignored(x, ignore) || ignored(y, ignore)
}

func ignored(a netip.Addr, ignore []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ignore {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// pairChanges moves pairs of a removed and an added path that share more
// than half of their hops (at the same TTLs) into Changed, the most similar
// pairs first.
func (dd *DestDiff) pairChanges(ignore []netip.Prefix) {
	type pair struct{ r, a, shared int }
	var pairs []pair
	for ri, r := range dd.Removed {
		for ai, a := range dd.Added {
			shared := 0
			for i := range min(len(r.Hops), len(a.Hops)) {
				if r.Hops[i].IsValid() && hopAgrees(r.Hops[i], a.Hops[i], ignore) {
					shared++
				}
			}
			if 2*shared > max(len(r.Hops), len(a.Hops)) {
				pairs = append(pairs, pair{ri, ai, shared})
			}
		}
	}
	slices.SortStableFunc(pairs, func(x, y pair) int { return y.shared - x.shared })
	usedR := make([]bool, len(dd.Removed))
	usedA := make([]bool, len(dd.Added))
	var changes []PathChange
	for _, p := range pairs {
		if usedR[p.r] || usedA[p.a] {
			continue
		}
		usedR[p.r], usedA[p.a] = true, true
		c := PathChange{Before: dd.Removed[p.r], After: dd.Added[p.a]}
		for i := range max(len(c.Before.Hops), len(c.After.Hops)) {
			var x, y netip.Addr
			if i < len(c.Before.Hops) {
				x = c.Before.Hops[i]
			}
			if i < len(c.After.Hops) {
				y = c.After.Hops[i]
			}
			past := i >= len(c.Before.Hops) || i >= len(c.After.Hops)
			if past || !hopAgrees(x, y, ignore) {
				c.Hops = append(c.Hops, HopChange{TTL: i + 1, Before: x, After: y})
			}
		}
		changes = append(changes, c)
	}
	// Keep the order of the before result.
	slices.SortStableFunc(changes, func(x, y PathChange) int {
		return slices.IndexFunc(dd.Removed, func(p DiffPath) bool { return slices.Equal(p.Hops, x.Before.Hops) }) -
			slices.IndexFunc(dd.Removed, func(p DiffPath) bool { return slices.Equal(p.Hops, y.Before.Hops) })
	})
	dd.Changed = changes
	var removed, added []DiffPath
	for i, r := range dd.Removed {
		if !usedR[i] {
			removed = append(removed, r)
		}
	}
	for i, a := range dd.Added {
		if !usedA[i] {
			added = append(added, a)
		}
	}
	dd.Removed, dd.Added = removed, added
}
