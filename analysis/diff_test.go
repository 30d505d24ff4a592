package analysis

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// pathTrace builds a Trace towards dst whose path ID i+1 took paths[i]:
// hop addresses separated by spaces, "*" for silent; a path ending at dst
// reached it.
func pathTrace(t testing.TB, dst string, paths ...string) *Trace {
	t.Helper()
	d := netip.MustParseAddr(dst)
	tr := &Trace{Destination: d, Name: dst, Protocol: "udp", MaxTTL: 30}
	for i, p := range paths {
		f := Flow{PathID: i + 1, SrcPort: uint16(33453 + i), DstPort: 33452}
		for j, h := range strings.Fields(p) {
			hop := Hop{TTL: j + 1}
			if h != "*" {
				hop.Addr = netip.MustParseAddr(h)
				hop.ICMPType = 11
			}
			f.Hops = append(f.Hops, hop)
		}
		if n := len(f.Hops); n > 0 && f.Hops[n-1].Addr == d {
			f.Reached, f.ReachedTTL = true, n
			f.Hops[n-1].ICMPType, f.Hops[n-1].ICMPCode = 3, 3
		}
		tr.Flows = append(tr.Flows, f)
	}
	return tr
}

const (
	pA = "10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1"
	pB = "10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1"
	pC = "10.0.0.1 10.1.3.2 10.2.3.2 10.99.0.1"
	pD = "10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1"
)

func diffOf(t *testing.T, before, after []*Trace, opts DiffOptions) (*Diff, string) {
	t.Helper()
	d := DiffTraces(before, after, opts)
	var b bytes.Buffer
	if err := WriteDiff(&b, d, DiffStyle{Before: "a.jsonl", After: "b.jsonl"}); err != nil {
		t.Fatal(err)
	}
	return d, b.String()
}

func hopsOf(ps []DiffPath) []string {
	var out []string
	for _, p := range ps {
		out = append(out, FormatHops(p.Hops))
	}
	return out
}

// A reboot that reshuffles which path ID takes which path is no change.
func TestDiffReshuffledPathIDs(t *testing.T) {
	before := pathTrace(t, "10.99.0.1", pA, pB, pC, pD, pA, pB, pC, pD)
	after := pathTrace(t, "10.99.0.1", pD, pC, pC, pA, pB, pB, pA, pD)
	d, out := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{})
	if d.Changed() {
		t.Fatalf("reshuffled path IDs reported as a change:\n%s", out)
	}
	dd := d.Destinations[0]
	if dd.Status != Unchanged || dd.PathsBefore != 4 || dd.PathsAfter != 4 || len(dd.Same) != 4 {
		t.Errorf("%+v", dd)
	}
	want := "10.99.0.1: unchanged, 4 distinct paths\nno change (1 destination)\n"
	if out != want {
		t.Errorf("output\n%s\nwant\n%s", out, want)
	}
}

func TestDiffRemovedAndAdded(t *testing.T) {
	before := pathTrace(t, "10.99.0.1", pA, pB, pC, pD)
	after := pathTrace(t, "10.99.0.1", pA, pB, pC, pA)
	d, out := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{})
	dd := d.Destinations[0]
	if !d.Changed() || dd.Status != Changed {
		t.Fatalf("not changed:\n%s", out)
	}
	if got := hopsOf(dd.Removed); !slices.Equal(got, []string{pD}) {
		t.Errorf("removed %q", got)
	}
	if len(dd.Added) != 0 || len(dd.Changed) != 0 {
		t.Errorf("added %v changed %v", dd.Added, dd.Changed)
	}
	want := "10.99.0.1: changed: 4 before -> 3 after distinct paths (3 unchanged)\n" +
		"  - removed path: " + pD + " (path ID 4)\n" +
		"1 of 1 destinations changed\n"
	if out != want {
		t.Errorf("output\n%s\nwant\n%s", out, want)
	}

	// The other way round, the path is added.
	d, out = diffOf(t, []*Trace{after}, []*Trace{before}, DiffOptions{})
	if got := hopsOf(d.Destinations[0].Added); !slices.Equal(got, []string{pD}) || !strings.Contains(out, "  + added path: "+pD+" (path ID 4)\n") {
		t.Errorf("added %q\n%s", got, out)
	}

	// A path through a new branch shares only the first and last hops with
	// the one it replaces: removed and added, not changed.
	pE := "10.0.0.1 10.1.5.2 10.2.5.2 10.99.0.1"
	d, out = diffOf(t, []*Trace{before}, []*Trace{pathTrace(t, "10.99.0.1", pA, pB, pC, pE)}, DiffOptions{})
	dd = d.Destinations[0]
	if !slices.Equal(hopsOf(dd.Removed), []string{pD}) || !slices.Equal(hopsOf(dd.Added), []string{pE}) || len(dd.Changed) != 0 {
		t.Errorf("removed %q added %q changed %v\n%s", hopsOf(dd.Removed), hopsOf(dd.Added), dd.Changed, out)
	}
}

func TestDiffChangedHops(t *testing.T) {
	// r3 of branch 3 now answers from another address, and branch 4 got one
	// hop longer.
	long := "10.0.0.1 10.1.4.2 10.2.4.2 10.3.4.2 10.99.0.1"
	c2 := "10.0.0.1 10.1.3.2 10.2.9.2 10.99.0.1"
	before := pathTrace(t, "10.99.0.1", pA, pB, pC, pD)
	after := pathTrace(t, "10.99.0.1", pA, pB, c2, long)
	d, out := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{})
	dd := d.Destinations[0]
	if len(dd.Removed) != 0 || len(dd.Added) != 0 || len(dd.Changed) != 2 {
		t.Fatalf("removed %q added %q changed %d:\n%s", hopsOf(dd.Removed), hopsOf(dd.Added), len(dd.Changed), out)
	}
	c := dd.Changed[0]
	if FormatHops(c.Before.Hops) != pC || FormatHops(c.After.Hops) != c2 {
		t.Errorf("changed %s -> %s", FormatHops(c.Before.Hops), FormatHops(c.After.Hops))
	}
	if len(c.Hops) != 1 || c.Hops[0] != (HopChange{TTL: 3, Before: netip.MustParseAddr("10.2.3.2"), After: netip.MustParseAddr("10.2.9.2")}) {
		t.Errorf("hop changes %+v", c.Hops)
	}
	for _, want := range []string{
		"10.99.0.1: changed: 4 before -> 4 after distinct paths (2 unchanged)\n",
		"  ~ changed path, 1 hop differs:\n      before: " + pC + " (path ID 3)\n      after:  " + c2 + " (path ID 3)\n      TTL 3: 10.2.3.2 -> 10.2.9.2\n",
		"      TTL 4: 10.99.0.1 -> 10.3.4.2\n      TTL 5: (none) -> 10.99.0.1\n",
		"  path lengths 4 -> 4,5\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks\n%s\nin\n%s", want, out)
		}
	}
}

func TestDiffReachability(t *testing.T) {
	before := pathTrace(t, "10.99.0.1", pA, pB)
	// r3 stops forwarding: the paths end silent after the second hop.
	after := pathTrace(t, "10.99.0.1", "10.0.0.1 10.1.1.2", "10.0.0.1 10.1.2.2")
	d, out := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{})
	dd := d.Destinations[0]
	if dd.Status != Changed || !dd.ReachedBefore || dd.ReachedAfter {
		t.Fatalf("%+v", dd)
	}
	if !strings.Contains(out, "  ! destination not reached any more (reached before)\n") {
		t.Errorf("output:\n%s", out)
	}
	d, out = diffOf(t, []*Trace{after}, []*Trace{before}, DiffOptions{})
	if dd := d.Destinations[0]; dd.ReachedBefore || !dd.ReachedAfter || !strings.Contains(out, "  ! destination reached now (not reached before)\n") {
		t.Errorf("%+v\n%s", dd, out)
	}
}

func TestDiffIgnoreHop(t *testing.T) {
	// A hop of 10.1.3.0/24 answers from varying addresses, or not at all.
	before := pathTrace(t, "10.99.0.1", pA, pC)
	after := pathTrace(t, "10.99.0.1", pA, "10.0.0.1 10.1.3.7 10.2.3.2 10.99.0.1", "10.0.0.1 * 10.2.3.2 10.99.0.1")
	if d, _ := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{}); !d.Changed() {
		t.Fatal("no change without --ignore-hop")
	}
	ignore := []netip.Prefix{netip.MustParsePrefix("10.1.3.0/24")}
	d, out := diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{Ignore: ignore})
	if d.Changed() {
		t.Errorf("changed with --ignore-hop 10.1.3.0/24:\n%s", out)
	}
	// Only the ignored TTL is forgiven.
	after = pathTrace(t, "10.99.0.1", pA, "10.0.0.1 10.1.3.7 10.2.9.2 10.99.0.1")
	d, out = diffOf(t, []*Trace{before}, []*Trace{after}, DiffOptions{Ignore: ignore})
	if dd := d.Destinations[0]; len(dd.Changed) != 1 || len(dd.Changed[0].Hops) != 1 || dd.Changed[0].Hops[0].TTL != 3 {
		t.Errorf("%+v\n%s", dd, out)
	}
	for _, tc := range []struct{ in, want string }{
		{"10.1.3.2", "10.1.3.2/32"},
		{"10.1.3.9/24", "10.1.3.0/24"},
		{"2001:db8::1", "2001:db8::1/128"},
	} {
		p, err := ParseIgnore(tc.in)
		if err != nil || p.String() != tc.want {
			t.Errorf("ParseIgnore(%q) = %v, %v", tc.in, p, err)
		}
	}
	if _, err := ParseIgnore("router1"); err == nil {
		t.Error("ParseIgnore(router1): no error")
	}
}

func TestDiffDestinations(t *testing.T) {
	a := pathTrace(t, "10.99.0.1", pA)
	b := pathTrace(t, "10.99.0.2", "10.0.0.1 10.99.0.2")
	c := pathTrace(t, "10.99.0.3", "10.0.0.1 10.99.0.3")
	d, out := diffOf(t, []*Trace{a, b}, []*Trace{c, a}, DiffOptions{})
	var got []string
	for _, dd := range d.Destinations {
		got = append(got, dd.Destination.String()+" "+dd.Status.String())
	}
	want := []string{"10.99.0.1 unchanged", "10.99.0.2 only_before", "10.99.0.3 only_after"}
	if !slices.Equal(got, want) {
		t.Errorf("destinations %q, want %q", got, want)
	}
	for _, w := range []string{
		"10.99.0.2: only in a.jsonl (1 distinct path)\n",
		"10.99.0.3: only in b.jsonl (1 distinct path)\n",
		"2 of 3 destinations changed\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Two results of one destination in one file are merged.
	d, out = diffOf(t, []*Trace{pathTrace(t, "10.99.0.1", pA), pathTrace(t, "10.99.0.1", pB)},
		[]*Trace{pathTrace(t, "10.99.0.1", pB, pA)}, DiffOptions{})
	if d.Changed() || d.Destinations[0].PathsBefore != 2 {
		t.Errorf("merge:\n%s", out)
	}
}

func TestDiffJSON(t *testing.T) {
	before := pathTrace(t, "10.99.0.1", pA, pB, pC, pD)
	after := pathTrace(t, "10.99.0.1", pB, pA, "10.0.0.1 10.1.3.2 * 10.99.0.1")
	d := DiffTraces([]*Trace{before}, []*Trace{after}, DiffOptions{})
	var b bytes.Buffer
	if err := WriteDiffJSON(&b, d, DiffStyle{Before: "a", After: "b"}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Errorf("not one line: %q", b.String())
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "diff", top, "changed", "before", "after", "destinations", "summary")
	var dests []map[string]json.RawMessage
	mustUnmarshal(t, top["destinations"], &dests)
	checkKeys(t, "destination", dests[0], "destination", "name", "status", "reached_before", "reached_after",
		"paths_before", "paths_after", "lengths_before", "lengths_after", "unchanged", "removed", "added", "changed_paths")
	for _, w := range []string{
		`{"changed":true,"before":"a","after":"b","destinations":[{"destination":"10.99.0.1","name":"10.99.0.1","status":"changed","reached_before":true,"reached_after":true,"paths_before":4,"paths_after":3,"lengths_before":[4],"lengths_after":[4],`,
		`"removed":[{"hops":["10.0.0.1","10.1.4.2","10.2.4.2","10.99.0.1"],"reached":true,"path_ids":[4]}],"added":[],`,
		`"changed_paths":[{"before":{"hops":["10.0.0.1","10.1.3.2","10.2.3.2","10.99.0.1"],"reached":true,"path_ids":[3]},"after":{"hops":["10.0.0.1","10.1.3.2",null,"10.99.0.1"],"reached":true,"path_ids":[3]},"hops":[{"ttl":3,"before":"10.2.3.2","after":"*"}]}]}]`,
		`"summary":"1 of 1 destinations changed"}`,
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("JSON lacks\n%s\nin\n%s", w, b.String())
		}
	}
}

func TestPathFileText(t *testing.T) {
	in := `# diamond4
10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1   # a1
10.0.0.1 10.1.2.2 * 10.99.0.1

10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1
10.0.0.1 10.1.3.2
`
	pf, err := ReadPathFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !pf.NeedsDestination() || len(pf.Destinations()) != 0 {
		t.Fatalf("needs destination %v, destinations %v", pf.NeedsDestination(), pf.Destinations())
	}
	if _, err := pf.Traces(netip.Addr{}); err == nil {
		t.Error("Traces without a destination: no error")
	}
	ts, err := pf.Traces(netip.MustParseAddr("10.99.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || len(ts[0].Flows) != 3 {
		t.Fatalf("%d traces, %d flows (duplicates are dropped)", len(ts), len(ts[0].Flows))
	}
	var got []string
	for _, up := range ts[0].UniquePaths() {
		got = append(got, FormatHops(up.Hops)+" reached="+map[bool]string{true: "yes", false: "no"}[up.Reached])
	}
	want := []string{
		"10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1 reached=yes",
		"10.0.0.1 10.1.2.2 * 10.99.0.1 reached=yes",
		"10.0.0.1 10.1.3.2 reached=no",
	}
	if !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
	// Compared with a trace, the text side has no path IDs.
	d := DiffTraces(ts, []*Trace{pathTrace(t, "10.99.0.1", pA)}, DiffOptions{})
	var b bytes.Buffer
	WriteDiff(&b, d, DiffStyle{Before: "expect.txt", After: "trace", Expect: true})
	wantOut := "10.99.0.1: differs from the expected paths: 3 expected -> 1 traced distinct paths (1 as expected)\n" +
		"  - missing path: 10.0.0.1 10.1.2.2 * 10.99.0.1\n" +
		"  - missing path: 10.0.0.1 10.1.3.2\n" +
		"  path lengths 2,4 -> 4\n" +
		"1 of 1 destinations differ from the expected paths\n"
	if b.String() != wantOut {
		t.Errorf("output\n%s\nwant\n%s", b.String(), wantOut)
	}
}

func TestPathFileGroups(t *testing.T) {
	in := "destination 10.99.0.1\n" + pA + "\n" + pB + "\n\ndestination 10.99.0.2\n10.0.0.1 10.99.0.2\n"
	pf, err := ReadPathFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if pf.NeedsDestination() {
		t.Error("needs a destination")
	}
	if got := pf.Destinations(); len(got) != 2 || got[1] != netip.MustParseAddr("10.99.0.2") {
		t.Errorf("destinations %v", got)
	}
	ts, err := pf.Traces(netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	after := []*Trace{pathTrace(t, "10.99.0.1", pB, pA, pA), pathTrace(t, "10.99.0.2", "10.0.0.1 10.99.0.2")}
	if d := DiffTraces(ts, after, DiffOptions{}); d.Changed() {
		var b bytes.Buffer
		WriteDiff(&b, d, DiffStyle{Expect: true})
		t.Errorf("changed:\n%s", b.String())
	}
}

func TestPathFileJSON(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("\n")
	for _, tr := range []*Trace{pathTrace(t, "10.99.0.1", pA, pB), pathTrace(t, "10.99.0.2", "10.0.0.1 10.99.0.2")} {
		if err := WriteJSON(&b, tr, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := ReadPathFile(&b)
	if err != nil {
		t.Fatal(err)
	}
	if pf.NeedsDestination() || len(pf.Destinations()) != 2 {
		t.Fatalf("destinations %v", pf.Destinations())
	}
	ts, err := pf.Traces(netip.Addr{})
	if err != nil || len(ts) != 2 || len(ts[0].Flows) != 2 || ts[0].Flows[1].PathID != 2 {
		t.Fatalf("%v %v", ts, err)
	}
}

func TestPathFileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "no paths"},
		{"# only a comment\n", "no paths"},
		{"10.0.0.1 router1\n", `line 1: hop 2 "router1"`},
		{"destination\n", "line 1: want \"destination ADDRESS\""},
		{"destination host.example\n10.0.0.1\n", "line 1: destination \"host.example\""},
		{"10.0.0.1\ndestination 10.99.0.1\n10.0.0.1\n", "line 2: paths before the first destination line"},
		{"destination 10.99.0.1\n10.0.0.1\ndestination 10.99.0.1\n", "line 3: destination 10.99.0.1 listed twice"},
		{"destination 10.99.0.1\n", "destination 10.99.0.1 has no paths"},
		{"{\"destination\":\"10.0.0\"}\n", "line 1"},
	} {
		_, err := ReadPathFile(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}
