package analysis

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestWriteGroupDOT(t *testing.T) {
	var b bytes.Buffer
	if err := WriteGroupDOT(&b, bulkTraces()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "digraph "); n != 1 || !strings.HasPrefix(out, `digraph "traceflow-fast to 15 destinations" {`) {
		t.Errorf("%d digraphs, first line %q", n, strings.SplitN(out, "\n", 2)[0])
	}
	if !strings.Contains(out, `label="traceflow-fast from 10.0.0.2 to 15 destinations\n14 reached, 4 groups of destinations with the same router paths";`) {
		t.Errorf("no graph label:\n%s", out)
	}
	// One node per group, with where its destinations are and how many.
	for i, want := range []string{
		`g0 [label="10.21.0.0/29, 10.21.0.8/31, 10.21.0.10 - 10 destinations\n10 reached", style="rounded,filled,bold"`,
		`g1 [label="10.21.0.11, 10.21.0.12 - 2 destinations\n2 reached", style="rounded,filled,bold"`,
		`g2 [label="10.21.0.13, 10.21.0.14 - 2 destinations\n1 reached, 1 not", style="rounded,filled,bold"`,
		`g3 [label="10.21.0.15", style="rounded,filled,bold"`,
	} {
		if !strings.Contains(out, "\t"+want) {
			t.Errorf("group %d: no %s in\n%s", i, want, out)
		}
	}
	if !strings.Contains(out, `tooltip="10 destinations, 10 reached, in 3 prefixes: 10.21.0.0/29, 10.21.0.8/31, 10.21.0.10; 4 router paths of 5"`) {
		t.Errorf("group 0 tooltip missing:\n%s", out)
	}
	// The routers, each once; the groups in the rank of TTL 4 with r3.
	for _, a := range []string{"10.0.0.1", "10.1.1.2", "10.1.4.2", "10.2.1.2", "10.2.4.2"} {
		if n := strings.Count(out, `[label="`+a+`\n`); n != 1 {
			t.Errorf("%d nodes for %s", n, a)
		}
	}
	if !regexp.MustCompile(`r0 \[label="10\.0\.0\.1\\n[0-9.]+ ms\\n15 dst", style="rounded", peripheries=2`).MatchString(out) {
		t.Errorf("r1 not drawn with its destinations and as a diverge point:\n%s", out)
	}
	if !strings.Contains(out, "{ rank=same; ttl_4; g0; g1; g2; g3; }") || !strings.Contains(out, "{ rank=same; ttl_2; r1; r2; r3; r4; r5; }") {
		t.Errorf("ranks:\n%s", out)
	}
	edges := regexp.MustCompile(`(?m)^\t(\w+) -> (\w+) \[label="([^"]*)"`).FindAllStringSubmatch(out, -1)
	got := map[string]string{}
	for _, e := range edges {
		got[e[1]+">"+e[2]] = e[3]
	}
	if len(edges) != 21 || got["source>r0"] != "15" || got["r0>r4"] != "10" || got["r6>g0"] != "10" || got["r6>g3"] != "1" || got["r5>r6"] != "1" {
		t.Errorf("%d edges %v", len(edges), got)
	}
	if n := strings.Count(out, "style=dashed];"); n != 2 {
		t.Errorf("%d dashed edges, want 2 (around the silent hop)", n)
	}
	svg := runDot(t, out)
	if !bytes.Contains(svg, []byte("10.21.0.0/29, 10.21.0.8/31, 10.21.0.10 &#45; 10 destinations")) {
		t.Errorf("the SVG lacks the group's label")
	}
}

// TestWriteGroupDOTBulk draws the 4,094 destinations of a /20 behind a
// diamond: a handful of group nodes, each with its count, that dot lays out.
func TestWriteGroupDOTBulk(t *testing.T) {
	var ts []*Trace
	for i := range 4094 {
		dst := fmt.Sprintf("10.21.%d.%d", (i+1)/256, (i+1)%256)
		flows := [][]string{branch(1, dst), branch(2, dst), branch(3, dst), branch(4, dst)}
		if i%500 == 7 { // a few see only 3 branches
			flows = flows[:3]
		}
		ts = append(ts, hopsTrace(dst, flows...))
	}
	var b bytes.Buffer
	if err := WriteGroupDOT(&b, ts); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "\n\tg"); n != 2 {
		t.Errorf("%d group nodes, want 2", n)
	}
	if !strings.Contains(out, `g0 [label="within 10.21.0.0/20 - 4,085 destinations\n4,085 reached"`) ||
		!strings.Contains(out, `g1 [label="within 10.21.0.0/20 - 9 destinations\n9 reached"`) {
		t.Errorf("group labels:\n%s", out)
	}
	if len(out) > 16<<10 {
		t.Errorf("%d bytes of DOT for 4,094 destinations in 2 groups", len(out))
	}
	runDot(t, out)
}
