package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// DiffStyle names the two sides of a Diff for its writers.
type DiffStyle struct {
	// Before and After name the inputs, e.g. their file names.
	Before, After string
	// Expect words the report as a check of a result (After) against
	// expected paths (Before): paths are "missing" and "unexpected" rather
	// than "removed" and "added".
	Expect bool
}

// words are the terms of one style.
type diffWords struct {
	before, after         string // the sides as adjectives: "before"/"after", "expected"/"traced"
	removed, added        string
	unchanged, changed    string
	onlyBefore, onlyAfter string
	lost, gained          string // reachability
}

func (s DiffStyle) words() diffWords {
	before, after := s.Before, s.After
	if s.Expect {
		return diffWords{
			before: "expected", after: "traced",
			removed: "missing", added: "unexpected",
			unchanged: "as expected", changed: "differs from the expected paths",
			onlyBefore: "expected, but not traced",
			onlyAfter:  "traced, but absent from the expected paths",
			lost:       "destination not reached (expected to be)",
			gained:     "destination reached (expected not to be)",
		}
	}
	if before == "" {
		before = "before"
	}
	if after == "" {
		after = "after"
	}
	return diffWords{
		before: "before", after: "after",
		removed: "removed", added: "added",
		unchanged: "unchanged", changed: "changed",
		onlyBefore: "only in " + before,
		onlyAfter:  "only in " + after,
		lost:       "destination not reached any more (reached before)",
		gained:     "destination reached now (not reached before)",
	}
}

// WriteDiff writes d for people: per destination a status line, then one
// line per removed (-), added (+) and changed (~) path, the TTLs at which a
// changed path differs ("TTL 2: 10.1.3.2 -> 10.1.2.2"), reachability (!)
// and AS-path changes; then a last line that counts the destinations that
// changed.
func WriteDiff(w io.Writer, d *Diff, style DiffStyle) error {
	wd := style.words()
	var b strings.Builder
	for i := range d.Destinations {
		writeDestDiff(&b, &d.Destinations[i], wd)
	}
	b.WriteString(diffSummary(d, style))
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDestDiff writes one destination of a Diff as WriteDiff does, without
// the last line that counts the destinations.
func WriteDestDiff(w io.Writer, dd *DestDiff, style DiffStyle) error {
	var b strings.Builder
	writeDestDiff(&b, dd, style.words())
	_, err := io.WriteString(w, b.String())
	return err
}

func destLabel(dd *DestDiff) string {
	a := addrText(dd.Destination)
	if dd.Name == "" || dd.Name == a {
		return a
	}
	return dd.Name + " (" + a + ")"
}

func writeDestDiff(b *strings.Builder, dd *DestDiff, wd diffWords) {
	label := destLabel(dd)
	paths := func(n int) string { return plural(n, "distinct path", "distinct paths") }
	switch dd.Status {
	case OnlyBefore:
		fmt.Fprintf(b, "%s: %s (%s)\n", label, wd.onlyBefore, paths(dd.PathsBefore))
	case OnlyAfter:
		fmt.Fprintf(b, "%s: %s (%s)\n", label, wd.onlyAfter, paths(dd.PathsAfter))
	case Unchanged:
		fmt.Fprintf(b, "%s: %s, %s\n", label, wd.unchanged, paths(dd.PathsAfter))
	case Changed:
		fmt.Fprintf(b, "%s: %s: %d %s -> %d %s distinct paths (%d %s)\n", label, wd.changed,
			dd.PathsBefore, wd.before, dd.PathsAfter, wd.after, len(dd.Same), wd.unchanged)
	}
	if dd.Status == OnlyBefore || dd.Status == OnlyAfter {
		return
	}
	for _, p := range dd.Removed {
		fmt.Fprintf(b, "  - %s path: %s%s\n", wd.removed, FormatHops(p.Hops), idsNote(p.PathIDs))
	}
	for _, p := range dd.Added {
		fmt.Fprintf(b, "  + %s path: %s%s\n", wd.added, FormatHops(p.Hops), idsNote(p.PathIDs))
	}
	width := max(len(wd.before), len(wd.after)) + 1
	for _, c := range dd.Changed {
		fmt.Fprintf(b, "  ~ changed path, %s:\n", plural(len(c.Hops), "hop differs", "hops differ"))
		fmt.Fprintf(b, "      %-*s %s%s\n", width, wd.before+":", FormatHops(c.Before.Hops), idsNote(c.Before.PathIDs))
		fmt.Fprintf(b, "      %-*s %s%s\n", width, wd.after+":", FormatHops(c.After.Hops), idsNote(c.After.PathIDs))
		for _, h := range c.Hops {
			fmt.Fprintf(b, "      TTL %d: %s -> %s\n", h.TTL,
				hopChangeText(h.Before, h.TTL, len(c.Before.Hops)), hopChangeText(h.After, h.TTL, len(c.After.Hops)))
		}
	}
	switch {
	case dd.ReachedBefore && !dd.ReachedAfter:
		fmt.Fprintf(b, "  ! %s\n", wd.lost)
	case !dd.ReachedBefore && dd.ReachedAfter:
		fmt.Fprintf(b, "  ! %s\n", wd.gained)
	}
	if dd.Status == Changed && !slices.Equal(dd.LengthsBefore, dd.LengthsAfter) {
		fmt.Fprintf(b, "  path lengths %s -> %s\n", intsText(dd.LengthsBefore), intsText(dd.LengthsAfter))
	}
	for _, ap := range dd.ASPathsBefore {
		if !slices.ContainsFunc(dd.ASPathsAfter, func(x []uint32) bool { return slices.Equal(x, ap) }) {
			fmt.Fprintf(b, "  - AS path %s: %s\n", wd.removed, FormatASPath(ap))
		}
	}
	for _, ap := range dd.ASPathsAfter {
		if !slices.ContainsFunc(dd.ASPathsBefore, func(x []uint32) bool { return slices.Equal(x, ap) }) {
			fmt.Fprintf(b, "  + AS path %s: %s\n", wd.added, FormatASPath(ap))
		}
	}
	if dd.PartialBefore || dd.PartialAfter {
		var sides []string
		if dd.PartialBefore {
			sides = append(sides, wd.before)
		}
		if dd.PartialAfter {
			sides = append(sides, wd.after)
		}
		fmt.Fprintf(b, "  note: the %s result was interrupted (partial)\n", strings.Join(sides, " and "))
	}
}

// hopChangeText renders one side of a HopChange: the address, "*" when
// silent, "(none)" past the end of the path.
func hopChangeText(a netip.Addr, ttl, pathLen int) string {
	switch {
	case ttl > pathLen:
		return "(none)"
	case !a.IsValid():
		return "*"
	}
	return a.String()
}

func idsNote(ids []int) string {
	switch len(ids) {
	case 0:
		return ""
	case 1:
		return " (path ID " + strconv.Itoa(ids[0]) + ")"
	}
	return " (path IDs " + IDRanges(ids) + ")"
}

func intsText(ns []int) string {
	if len(ns) == 0 {
		return "none"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// The JSON form of a Diff: one object on one line.
type jsonDiff struct {
	Changed      bool           `json:"changed"`
	Before       string         `json:"before"`
	After        string         `json:"after"`
	Destinations []jsonDestDiff `json:"destinations"`
	Summary      string         `json:"summary"`
}

type jsonDestDiff struct {
	Destination   netip.Addr       `json:"destination"`
	Name          string           `json:"name"`
	Status        string           `json:"status"`
	ReachedBefore bool             `json:"reached_before"`
	ReachedAfter  bool             `json:"reached_after"`
	PathsBefore   int              `json:"paths_before"`
	PathsAfter    int              `json:"paths_after"`
	LengthsBefore []int            `json:"lengths_before"`
	LengthsAfter  []int            `json:"lengths_after"`
	Unchanged     []jsonDiffPath   `json:"unchanged"`
	Removed       []jsonDiffPath   `json:"removed"`
	Added         []jsonDiffPath   `json:"added"`
	Changed       []jsonPathChange `json:"changed_paths"`
	ASPathsBefore [][]uint32       `json:"as_paths_before,omitempty"`
	ASPathsAfter  [][]uint32       `json:"as_paths_after,omitempty"`
	PartialBefore bool             `json:"partial_before,omitempty"`
	PartialAfter  bool             `json:"partial_after,omitempty"`
}

type jsonDiffPath struct {
	Hops    []*netip.Addr `json:"hops"` // null: silent
	Reached bool          `json:"reached"`
	PathIDs []int         `json:"path_ids,omitempty"`
	ASPath  []*uint32     `json:"as_path,omitempty"` // null: unknown AS
}

type jsonPathChange struct {
	Before jsonDiffPath    `json:"before"`
	After  jsonDiffPath    `json:"after"`
	Hops   []jsonHopChange `json:"hops"`
}

// jsonHopChange sides are an address, "*" when silent, null past the end of
// the path.
type jsonHopChange struct {
	TTL    int     `json:"ttl"`
	Before *string `json:"before"`
	After  *string `json:"after"`
}

// WriteDiffJSON writes d as one line of JSON: "changed", the input names,
// per destination its "status" (unchanged, changed, only_before,
// only_after), reachability, path counts and lengths, and the "unchanged",
// "removed", "added" and "changed_paths" paths (a changed path lists the
// TTLs that differ, each side an address, "*" when silent or null past the
// end of the path), and a "summary" line as WriteDiff ends with.
func WriteDiffJSON(w io.Writer, d *Diff, style DiffStyle) error {
	jd := jsonDiff{
		Changed:      d.Changed(),
		Before:       style.Before,
		After:        style.After,
		Destinations: make([]jsonDestDiff, len(d.Destinations)),
	}
	for i := range d.Destinations {
		jd.Destinations[i] = jsonDestDiffOf(&d.Destinations[i])
	}
	jd.Summary = diffSummary(d, style)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&jd); err != nil {
		return fmt.Errorf("analysis: encode diff: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// jsonDestDiffOf is the JSON form of one destination of a Diff.
func jsonDestDiffOf(dd *DestDiff) jsonDestDiff {
	jd := jsonDestDiff{
		Destination:   dd.Destination,
		Name:          dd.Name,
		Status:        dd.Status.String(),
		ReachedBefore: dd.ReachedBefore,
		ReachedAfter:  dd.ReachedAfter,
		PathsBefore:   dd.PathsBefore,
		PathsAfter:    dd.PathsAfter,
		LengthsBefore: nonNil(dd.LengthsBefore),
		LengthsAfter:  nonNil(dd.LengthsAfter),
		Unchanged:     jsonDiffPaths(dd.Same),
		Removed:       jsonDiffPaths(dd.Removed),
		Added:         jsonDiffPaths(dd.Added),
		Changed:       make([]jsonPathChange, len(dd.Changed)),
		ASPathsBefore: dd.ASPathsBefore,
		ASPathsAfter:  dd.ASPathsAfter,
		PartialBefore: dd.PartialBefore,
		PartialAfter:  dd.PartialAfter,
	}
	for j, c := range dd.Changed {
		jc := jsonPathChange{Before: jsonDiffPathOf(c.Before), After: jsonDiffPathOf(c.After), Hops: make([]jsonHopChange, len(c.Hops))}
		for k, h := range c.Hops {
			jc.Hops[k] = jsonHopChange{TTL: h.TTL,
				Before: hopChangeJSON(h.Before, h.TTL, len(c.Before.Hops)),
				After:  hopChangeJSON(h.After, h.TTL, len(c.After.Hops))}
		}
		jd.Changed[j] = jc
	}
	return jd
}

// MarshalJSON gives dd as one destination of WriteDiffJSON's
// "destinations": a program that reports one destination's changes (a
// monitor's events) writes them as `traceflow-fast diff --format json`
// does.
func (dd DestDiff) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(jsonDestDiffOf(&dd))
}

// MarshalJSON gives p as a path of WriteDiffJSON: "hops" (null for a
// silent hop), "reached", "path_ids" and "as_path" when known.
func (p DiffPath) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(jsonDiffPathOf(p))
}

// marshalNoEscape is json.Marshal without escaping <, > and &, as the
// writers encode.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// diffSummary is the last line of WriteDiff.
func diffSummary(d *Diff, style DiffStyle) string {
	n, total := d.ChangedCount(), len(d.Destinations)
	of := strconv.Itoa(n) + " of " + strconv.Itoa(total) + " destinations"
	switch {
	case style.Expect && n == 0:
		return plural(total, "destination", "destinations") + " as expected"
	case style.Expect:
		return of + " differ from the expected paths"
	case n == 0:
		return "no change (" + plural(total, "destination", "destinations") + ")"
	}
	return of + " changed"
}

func nonNil(ns []int) []int {
	if ns == nil {
		return []int{}
	}
	return ns
}

func jsonDiffPaths(ps []DiffPath) []jsonDiffPath {
	out := make([]jsonDiffPath, len(ps))
	for i, p := range ps {
		out[i] = jsonDiffPathOf(p)
	}
	return out
}

func jsonDiffPathOf(p DiffPath) jsonDiffPath {
	jp := jsonDiffPath{Hops: make([]*netip.Addr, len(p.Hops)), Reached: p.Reached, PathIDs: p.PathIDs}
	for i := range p.Hops {
		if p.Hops[i].IsValid() {
			jp.Hops[i] = &p.Hops[i]
		}
	}
	for i := range p.ASPath {
		var asn *uint32
		if p.ASPath[i] != 0 {
			asn = &p.ASPath[i]
		}
		jp.ASPath = append(jp.ASPath, asn)
	}
	return jp
}

func hopChangeJSON(a netip.Addr, ttl, pathLen int) *string {
	if ttl > pathLen {
		return nil
	}
	s := hopChangeText(a, ttl, pathLen)
	return &s
}
