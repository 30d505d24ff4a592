package tui

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Row is a line of the view: a distinct path (the path IDs that took it)
// or one path ID, with its hops by TTL.
type Row struct {
	PathIDs []int
	Hops    []HopStats // index i is TTL i+1; an invalid Addr is silent
	Reached bool
	// Diverge and Converge mark, by TTL index, the hops where rows that
	// share this hop go on to different next hops, and where rows from
	// different hops join.
	Diverge, Converge []bool
	// Changed is when a monitor reported this path changed (added, or
	// hops changed); zero when it did not.
	Changed time.Time
}

// Rows returns the rows of s: one per distinct path, or with byID one
// per path ID. While the destination is in progress, a path ID's path is
// the addresses that answered it so far, up to the destination; once it
// is finished, the result's distinct paths make the rows (with the hops
// the routers' rate limits silenced, and those the MDA search implies).
func Rows(s *Snapshot, byID bool) []Row {
	var rows []Row
	if s.Final != nil {
		rows = finalRows(s, byID)
	} else {
		rows = liveRows(s, byID)
	}
	mark(rows)
	if len(s.Marks) > 0 {
		addrs := make([]netip.Addr, 0, 32)
		for i := range rows {
			addrs = addrs[:0]
			for _, h := range rows[i].Hops {
				addrs = append(addrs, h.Addr)
			}
			rows[i].Changed = s.Marks[addrKey(addrs, rows[i].Reached)]
		}
	}
	return rows
}

// flowPath is the hops of path ID f as far as they go: up to the first
// that the destination answered, without the silent ones after the last
// answer.
func flowPath(f *Flow) (hops []HopStats, reached bool) {
	end := 0
	for i := range f.Hops {
		if f.Hops[i].Addr.IsValid() {
			end = i + 1
		}
		if f.Hops[i].Reached {
			return f.Hops[:i+1], true
		}
	}
	return f.Hops[:end], false
}

func liveRows(s *Snapshot, byID bool) []Row {
	var rows []Row
	index := make(map[string]int)
	for i := range s.Flows {
		f := &s.Flows[i]
		hops, reached := flowPath(f)
		if len(hops) == 0 {
			continue
		}
		key := pathKey(hops, reached)
		if j, ok := index[key]; ok && !byID {
			rows[j].PathIDs = append(rows[j].PathIDs, f.PathID)
			for t := range hops {
				rows[j].Hops[t].add(&hops[t])
			}
			continue
		}
		index[key] = len(rows)
		rows = append(rows, Row{PathIDs: []int{f.PathID}, Hops: slices.Clone(hops), Reached: reached})
	}
	return rows
}

func pathKey(hops []HopStats, reached bool) string {
	var b strings.Builder
	for i := range hops {
		b.WriteString(hops[i].Addr.String())
		b.WriteByte(' ')
	}
	if reached {
		b.WriteByte('!')
	}
	return b.String()
}

// finalRows takes the rows from the finished result, with the live
// counts of their path IDs.
func finalRows(s *Snapshot, byID bool) []Row {
	live := make(map[int]*Flow, len(s.Flows))
	for i := range s.Flows {
		live[s.Flows[i].PathID] = &s.Flows[i]
	}
	names := hopNames(s.Final)
	var rows []Row
	add := func(ids []int, addrs []netip.Addr, reached bool) {
		r := Row{PathIDs: ids, Hops: make([]HopStats, len(addrs)), Reached: reached}
		for _, id := range ids {
			f := live[id]
			for t := range r.Hops {
				if f != nil && t < len(f.Hops) {
					h := f.Hops[t]
					h.Addr = netip.Addr{}
					r.Hops[t].add(&h)
				}
			}
		}
		for t, a := range addrs {
			r.Hops[t].Addr, r.Hops[t].Name = a, names[a]
		}
		rows = append(rows, r)
	}
	if byID {
		for _, f := range s.Final.Flows {
			addrs := make([]netip.Addr, len(f.Hops))
			for t, h := range f.Hops {
				addrs[t] = h.Addr
			}
			add([]int{f.PathID}, addrs, f.Reached)
		}
	} else {
		for _, up := range s.Final.UniquePaths() {
			add(up.PathIDs, up.Hops, up.Reached)
		}
	}
	markInferred(s.Final, rows)
	return rows
}

// markInferred marks the hops of rows that the MDA search implied for
// every path ID of the row.
func markInferred(t *analysis.Trace, rows []Row) {
	flows := make(map[int]*analysis.Flow, len(t.Flows))
	for i := range t.Flows {
		flows[t.Flows[i].PathID] = &t.Flows[i]
	}
	for i := range rows {
		r := &rows[i]
		for h := range r.Hops {
			r.Hops[h].Inferred = len(r.PathIDs) > 0
			for _, id := range r.PathIDs {
				if f := flows[id]; f == nil || h >= len(f.Hops) || !f.Hops[h].Inferred {
					r.Hops[h].Inferred = false
				}
			}
		}
	}
}

// mark sets the rows' Diverge and Converge marks: a hop diverges when
// another row passes it too and goes on to another next hop, and
// converges when another row reaches it from another hop before.
func mark(rows []Row) {
	for i := range rows {
		rows[i].Diverge = make([]bool, len(rows[i].Hops))
		rows[i].Converge = make([]bool, len(rows[i].Hops))
	}
	addr := func(r *Row, t int) netip.Addr {
		if t < 0 || t >= len(r.Hops) {
			return netip.Addr{}
		}
		return r.Hops[t].Addr
	}
	for i := range rows {
		a := &rows[i]
		for j := i + 1; j < len(rows); j++ {
			b := &rows[j]
			for t := range min(len(a.Hops), len(b.Hops)) {
				at := addr(a, t)
				if !at.IsValid() || at != addr(b, t) {
					continue
				}
				na, nb := addr(a, t+1), addr(b, t+1)
				if na.IsValid() && nb.IsValid() && na != nb {
					a.Diverge[t], b.Diverge[t] = true, true
				}
				pa, pb := addr(a, t-1), addr(b, t-1)
				if pa.IsValid() && pb.IsValid() && pa != pb {
					a.Converge[t], b.Converge[t] = true, true
				}
			}
		}
	}
}

// hopNames returns what the annotations of t say of each address: its
// host name, origin AS and IXP, as far as known.
func hopNames(t *analysis.Trace) map[netip.Addr]string {
	names := make(map[netip.Addr]string)
	for _, f := range t.Flows {
		for _, h := range f.Hops {
			if !h.Addr.IsValid() || names[h.Addr] != "" {
				continue
			}
			var parts []string
			if h.Hostname != "" {
				parts = append(parts, h.Hostname)
			}
			if h.ASN != 0 {
				parts = append(parts, "AS"+strconv.FormatUint(uint64(h.ASN), 10))
			}
			if h.IXP != "" {
				parts = append(parts, h.IXP)
			}
			names[h.Addr] = strings.Join(parts, " ")
		}
	}
	return names
}
