package analysis

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// rlTrace builds a trace by hand: one flow per spec, path IDs from 1, each
// spec the space-separated hops from TTL 1 ("*" silent, a trailing "~"
// marks an inferred hop). A flow whose last hop is testDst reached it.
func rlTrace(specs ...string) *Trace {
	t := &Trace{Destination: testDst, Source: testSrc, Protocol: "udp", MaxTTL: testMaxTTL, Start: testStart, End: testStart}
	for i, spec := range specs {
		f := Flow{PathID: i + 1, SrcPort: uint16(testSrcBase + i + 1), DstPort: testDstPort}
		for j, s := range strings.Fields(spec) {
			h := Hop{TTL: j + 1}
			if s != "*" {
				inferred := strings.HasSuffix(s, "~")
				h.Addr = netip.MustParseAddr(strings.TrimSuffix(s, "~"))
				h.ICMPType, h.Inferred = 11, inferred
				if !inferred {
					h.RTT = time.Duration(j+1) * time.Millisecond
				}
				if h.Addr == testDst {
					h.ICMPType, h.ICMPCode = 3, 3
					f.Reached, f.ReachedTTL = true, j+1
				}
			}
			f.Hops = append(f.Hops, h)
		}
		f.ProbedTTL = len(f.Hops)
		t.Flows = append(t.Flows, f)
	}
	return t
}

// marks renders the RateLimited marks of every flow, as in "1:- 2:10.0.0.1 -"
// (one entry per hop, "-" unmarked).
func marks(t *Trace) []string {
	var out []string
	for _, f := range t.Flows {
		var hs []string
		for _, h := range f.Hops {
			if h.RateLimited.IsValid() {
				hs = append(hs, h.RateLimited.String())
			} else {
				hs = append(hs, "-")
			}
		}
		out = append(out, strings.Join(hs, " "))
	}
	return out
}

// The 2-way diamond of the lab: r1 (10.0.0.1) balances over a1 and a2,
// whose links to r3 are 10.2.1.2 and 10.2.2.2 (r3 answers from the
// interface a probe came in by).
const (
	viaA1 = "10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1"
	viaA2 = "10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1"
)

// markRateLimitedCases are TestMarkRateLimited's traces: their flows, the
// marks MarkRateLimited gives them (see marks) and their distinct paths.
var markRateLimitedCases = []struct {
	name  string
	flows []string
	want  []string // marks per flow, see marks
	paths int      // distinct paths after marking
}{
	{
		name:  "first hop silent: r1 answered the other flows through a1",
		flows: []string{viaA1, viaA2, "* 10.1.1.2 10.2.1.2 10.99.0.1", viaA2},
		want:  []string{"- - - -", "- - - -", "10.0.0.1 - - -", "- - - -"},
		paths: 2,
	},
	{
		name:  "middle hop silent: r3 on the a2 side",
		flows: []string{viaA1, viaA2, "10.0.0.1 10.1.2.2 * 10.99.0.1", "10.0.0.1 10.1.2.2 * 10.99.0.1"},
		want:  []string{"- - - -", "- - - -", "- - 10.2.2.2 -", "- - 10.2.2.2 -"},
		paths: 2,
	},
	{
		name:  "two silent hops in a row before the destination: both branches fit",
		flows: []string{viaA1, "10.0.0.1 * * 10.99.0.1", viaA2},
		// Both a1's and a2's flows have r1 before and the
		// destination after: they disagree, nothing is marked.
		want:  []string{"- - - -", "- - - -", "- - - -"},
		paths: 3,
	},
	{
		name:  "two silent hops in a row, one flow fits",
		flows: []string{viaA1, "* * 10.2.1.2 10.99.0.1", viaA2},
		want:  []string{"- - - -", "10.0.0.1 10.1.1.2 - -", "- - - -"},
		paths: 2,
	},
	{
		name: "a router that never answers stays silent",
		flows: []string{
			"10.0.0.1 * 10.2.1.2 10.99.0.1", viaA2,
			"10.0.0.1 * 10.2.1.2 10.99.0.1", viaA2,
		},
		want:  []string{"- - - -", "- - - -", "- - - -", "- - - -"},
		paths: 2,
	},
	{
		name: "ambiguous: r3 answers from one address, either branch could be the silent one",
		flows: []string{
			"10.0.0.1 10.1.1.2 10.2.0.1 10.99.0.1",
			"10.0.0.1 10.1.2.2 10.2.0.1 10.99.0.1",
			"10.0.0.1 * 10.2.0.1 10.99.0.1",
		},
		want:  []string{"- - - -", "- - - -", "- - - -"},
		paths: 3,
	},
	{
		name:  "silent after the last answer: nothing to compare with",
		flows: []string{viaA1, "10.0.0.1 10.1.1.2 *", viaA2},
		want:  []string{"- - - -", "- - -", "- - - -"},
		paths: 3,
	},
	{
		name: "hops implied by the MDA are no evidence",
		flows: []string{
			"10.0.0.1 10.1.1.2~ 10.2.1.2 10.99.0.1",
			"10.0.0.1 * 10.2.1.2 10.99.0.1",
		},
		want:  []string{"- - - -", "- - - -"},
		paths: 2,
	},
	{
		name: "a flow that answered part of a silent run only is no evidence",
		flows: []string{
			"* * 10.2.1.2 10.99.0.1",
			"10.0.0.1 * 10.2.1.2 10.99.0.1",
		},
		want:  []string{"- - - -", "- - - -"},
		paths: 2,
	},
	{
		name: "paths of unequal length: neighbours are compared at the same TTLs",
		flows: []string{
			"10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1",
			"10.0.0.1 10.1.2.2 10.2.2.2 10.3.2.2 10.99.0.1",
			"10.0.0.1 10.1.2.2 10.2.2.2 * 10.99.0.1",
		},
		want:  []string{"- - - -", "- - - - -", "- - - 10.3.2.2 -"},
		paths: 2,
	},
}

func TestMarkRateLimited(t *testing.T) {
	for _, tc := range markRateLimitedCases {
		t.Run(tc.name, func(t *testing.T) {
			tr := rlTrace(tc.flows...)
			MarkRateLimited(tr)
			if got := marks(tr); !slices.Equal(got, tc.want) {
				t.Errorf("marks\n got %q\nwant %q", got, tc.want)
			}
			if got := len(tr.UniquePaths()); got != tc.paths {
				t.Errorf("%d distinct paths, want %d", got, tc.paths)
			}
			// The flows' order does not matter, and marking again
			// changes nothing.
			rev := rlTrace(tc.flows...)
			slices.Reverse(rev.Flows)
			MarkRateLimited(rev)
			MarkRateLimited(rev)
			slices.Reverse(rev.Flows)
			if got := marks(rev); !slices.Equal(got, tc.want) {
				t.Errorf("marks with the flows reversed, marked twice\n got %q\nwant %q", got, tc.want)
			}
			for _, f := range tr.Flows {
				for _, h := range f.Hops {
					if h.RateLimited.IsValid() && !h.Silent() {
						t.Errorf("path ID %d TTL %d: marked but answered", f.PathID, h.TTL)
					}
				}
			}
		})
	}
}

func TestMarkRateLimitedClearsStaleMarks(t *testing.T) {
	tr := rlTrace(viaA1, "10.0.0.1 * 10.2.2.2 10.99.0.1")
	tr.Flows[1].Hops[1].RateLimited = netip.MustParseAddr("10.1.1.2") // wrong: nothing fits
	tr.Flows[0].Hops[1].RateLimited = netip.MustParseAddr("10.1.1.2") // on an answered hop
	MarkRateLimited(tr)
	if got, want := marks(tr), []string{"- - - -", "- - - -"}; !slices.Equal(got, want) {
		t.Errorf("marks %q, want %q", got, want)
	}
}

// A rate-limited hop counts as its router in the distinct paths, and every
// format says it was silent and what it probably is.
func TestRateLimitedOutput(t *testing.T) {
	tr := rlTrace(viaA1, viaA2, "* 10.1.1.2 10.2.1.2 10.99.0.1", "10.0.0.1 10.1.2.2 * 10.99.0.1")
	MarkRateLimited(tr)

	ups := tr.UniquePaths()
	if len(ups) != 2 || !slices.Equal(ups[0].PathIDs, []int{1, 3}) || !slices.Equal(ups[1].PathIDs, []int{2, 4}) {
		t.Fatalf("distinct paths %+v", ups)
	}
	for _, up := range ups {
		for i, a := range up.Hops {
			if !a.IsValid() {
				t.Errorf("path IDs %v: TTL %d silent in the distinct path", up.PathIDs, i+1)
			}
		}
	}
	if got, want := tr.Summary(), "2 distinct paths among 4 path IDs"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}

	var b bytes.Buffer
	if err := WriteJSON(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	js := b.String()
	for _, want := range []string{
		`{"ttl":1,"addr":null,"rtt_ms":null,"rate_limited":"10.0.0.1"}`,
		`{"ttl":3,"addr":null,"rtt_ms":null,"rate_limited":"10.2.2.2"}`,
		`"unique_paths":[{"hops":["10.0.0.1","10.1.1.2","10.2.1.2","10.99.0.1"],"path_ids":[1,3],"reached":true`,
		`"summary":"2 distinct paths among 4 path IDs"`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
	if n := strings.Count(js, "rate_limited"); n != 2 {
		t.Errorf("%d rate_limited fields, want 2:\n%s", n, js)
	}
	// Read back, the marks are kept.
	for back, err := range ReadJSON(strings.NewReader(js)) {
		if err != nil {
			t.Fatal(err)
		}
		if got, want := marks(back), marks(tr); !slices.Equal(got, want) {
			t.Errorf("marks read back %q, want %q", got, want)
		}
		var again bytes.Buffer
		if err := WriteJSON(&again, back, Options{}); err != nil {
			t.Fatal(err)
		}
		if again.String() != js {
			t.Errorf("written again:\n%s\nwant\n%s", again.String(), js)
		}
	}

	for _, w := range []struct {
		name  string
		write func(*bytes.Buffer, Options) error
	}{
		{"vert", func(b *bytes.Buffer, o Options) error { return WriteVert(b, tr, o) }},
		{"horiz", func(b *bytes.Buffer, o Options) error { return WriteHoriz(b, tr, o) }},
	} {
		var b bytes.Buffer
		if err := w.write(&b, Options{}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{"* (10.0.0.1?)", "* (10.2.2.2?)", "2 distinct paths among 4 path IDs"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", w.name, want, out)
			}
		}
		b.Reset()
		if err := w.write(&b, Options{Dedup: true}); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, "IDs 1,3") || !strings.Contains(out, "IDs 2,4") {
			t.Errorf("%s --dedup does not group the rate-limited flows:\n%s", w.name, out)
		}
	}
}

// Without MarkRateLimited, or where it marks nothing, output is as before.
func TestRateLimitedUnmarked(t *testing.T) {
	tr := rlTrace(viaA1, "* 10.1.1.2 10.2.1.2 10.99.0.1")
	var b bytes.Buffer
	if err := WriteJSON(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "rate_limited") || len(tr.UniquePaths()) != 2 {
		t.Errorf("unmarked trace: %s", b.String())
	}
}

// A silent hop is rate-limited, not settled, when the budget of its hop
// (after the flow's hop before it, else its TTL as a whole) explained
// silences and got answers to probes sent again; and when something
// answered after it. Such a flow joins the first distinct path it matches
// at its other hops, and only one that matches none is a path of its own.
func TestMarkUnsettled(t *testing.T) {
	const r1, a1, a2, r3 = "10.0.0.1", "10.1.1.2", "10.1.2.2", "10.2.0.1"
	dst := testDst.String()
	tr := func() *Trace {
		return rlTrace(
			r1+" "+a1+" "+r3+" "+dst,
			r1+" * "+r3+" "+dst, // fits a1 and a2: MarkRateLimited leaves it
			r1+" "+a2+" "+r3+" "+dst,
			r1+" * * "+dst,        // two silent hops in a row: TTL 3's after no address
			r1+" "+a2+" "+r3+" *", // nothing answered after its silence
			r1+" * 10.9.9.9 "+dst, // matches no path at its other hops
		)
	}
	unsettled := func(t *Trace) []string {
		var out []string
		for _, f := range t.Flows {
			var hs []string
			for _, h := range f.Hops {
				hs = append(hs, map[bool]string{true: "U", false: "-"}[h.Unsettled])
			}
			out = append(out, strings.Join(hs, ""))
		}
		return out
	}
	r1a := netip.MustParseAddr(r1)
	for _, c := range []struct {
		name  string
		rls   []RateLimit
		marks []string
		paths string
	}{
		{"no limit", nil, []string{"----", "----", "----", "----", "----", "----"}, "6 distinct paths among 6 path IDs"},
		{"explained, none answered again (an anonymous router)",
			[]RateLimit{{TTL: 2, After: r1a, Silences: 5}},
			[]string{"----", "----", "----", "----", "----", "----"}, "6 distinct paths among 6 path IDs"},
		{"the hop's own budget",
			[]RateLimit{{TTL: 2, After: r1a, Silences: 5, Recovered: 2}},
			[]string{"----", "-U--", "----", "-U--", "----", "-U--"}, "5 distinct paths among 6 path IDs"},
		{"the TTL as a whole",
			[]RateLimit{{TTL: 2, Pace: 3, Silences: 5, Recovered: 1}, {TTL: 3, Pace: 3, Silences: 1, Recovered: 1}},
			[]string{"----", "-U--", "----", "-UU-", "----", "-U--"}, "4 distinct paths among 6 path IDs"},
		{"the hop's entry decides over its TTL's",
			[]RateLimit{{TTL: 2, Silences: 5, Recovered: 1}, {TTL: 2, After: r1a, Silences: 5}},
			[]string{"----", "----", "----", "----", "----", "----"}, "6 distinct paths among 6 path IDs"},
	} {
		trace := tr()
		trace.RateLimits = c.rls
		MarkRateLimited(trace)
		MarkUnsettled(trace)
		if got := unsettled(trace); !slices.Equal(got, c.marks) {
			t.Errorf("%s: marks %v, want %v", c.name, got, c.marks)
		}
		if got := trace.Summary(); got != c.paths {
			t.Errorf("%s: %s, want %s", c.name, got, c.paths)
		}
		MarkUnsettled(trace) // again: nothing changes
		if got := unsettled(trace); !slices.Equal(got, c.marks) {
			t.Errorf("%s: marked again: %v, want %v", c.name, got, c.marks)
		}
	}
	// The paths in order of their smallest path ID, each listed by a
	// settled flow; path ID 2 is with 1, 4 with 1 (its TTL 3 fits r3).
	trace := tr()
	trace.RateLimits = []RateLimit{{TTL: 2, Pace: 3, Silences: 5, Recovered: 1}, {TTL: 3, Pace: 3, Silences: 1, Recovered: 1}}
	MarkUnsettled(trace)
	var got []string
	for _, up := range trace.UniquePaths() {
		got = append(got, fmt.Sprint(up.PathIDs, up.Hops))
	}
	want := []string{
		"[1 2 4] [10.0.0.1 10.1.1.2 10.2.0.1 " + dst + "]",
		"[3] [10.0.0.1 10.1.2.2 10.2.0.1 " + dst + "]",
		"[5] [10.0.0.1 10.1.2.2 10.2.0.1 invalid IP]",
		"[6] [10.0.0.1 invalid IP 10.9.9.9 " + dst + "]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("distinct paths\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
