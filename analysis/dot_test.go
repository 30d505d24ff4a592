package analysis

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// dotTrace is 8 path IDs through a 4-way diamond (10.1.{1..4}.1 at TTL 2)
// whose TTL 3 router (10.2.0.1) stays silent for path IDs 3 and 7; the
// destination answers at TTL 4.
func dotTrace(name string) *Trace {
	dst := netip.MustParseAddr("10.99.0.1")
	c := NewCollector(dst, name, netip.MustParseAddr("10.0.0.2"), 8, 16, 33452, 33452)
	for p := 1; p <= 8; p++ {
		hops := []string{"10.0.0.1", fmt.Sprintf("10.1.%d.1", (p-1)%4+1), "10.2.0.1", "10.99.0.1"}
		for ttl := 1; ttl <= 4; ttl++ {
			c.Sent(p, ttl)
			if ttl == 3 && (p == 3 || p == 7) {
				continue
			}
			typ, code := uint8(11), uint8(0)
			if ttl == 4 {
				typ, code = 3, 3
			}
			c.Reply(p, ttl, netip.MustParseAddr(hops[ttl-1]), time.Duration(ttl*100+p)*time.Microsecond, typ, code, ttl == 4)
		}
	}
	start := time.Unix(1700000000, 0)
	return c.Trace(start, start.Add(time.Second), false)
}

// runDot lays out src with Graphviz's dot, which must accept it. Without
// dot the test is skipped, or fails with CI=true.
func runDot(t *testing.T, src string) []byte {
	t.Helper()
	path := testenv.RequireTool(t, "dot", "graphviz")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin = strings.NewReader(src)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.String(), src)
	}
	if stderr.Len() > 0 {
		t.Errorf("dot -Tsvg warns:\n%s\ninput:\n%s", stderr.String(), src)
	}
	return out.Bytes()
}

func TestWriteDOT(t *testing.T) {
	tr := dotTrace("dest.example")
	var b bytes.Buffer
	if err := WriteDOT(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "digraph "); n != 1 {
		t.Errorf("%d digraphs, want 1", n)
	}
	if !strings.HasPrefix(out, `digraph "traceflow-fast to dest.example" {`) || !strings.HasSuffix(out, "}\n") {
		t.Errorf("not one digraph named after the destination:\n%s", out)
	}
	if !strings.Contains(out, `label="traceflow-fast to dest.example (10.99.0.1) from 10.0.0.2, 8 path IDs, max TTL 16\n4 distinct paths among 8 path IDs"`) {
		t.Errorf("no graph label with the header and summary:\n%s", out)
	}
	// One node per responding interface, one per silent hop of each flow.
	for _, a := range []string{"10.0.0.1", "10.1.1.1", "10.1.2.1", "10.1.3.1", "10.1.4.1", "10.2.0.1", "10.99.0.1"} {
		if n := strings.Count(out, `label="`+a+`\n`); n != 1 {
			t.Errorf("%d nodes for %s, want 1", n, a)
		}
	}
	if n := strings.Count(out, `label="*"`); n != 2 {
		t.Errorf("%d silent nodes, want 2 (path IDs 3 and 7 each their own)", n)
	}
	if !regexp.MustCompile(`label="10\.99\.0\.1\\n[0-9.]+ ms", style="rounded,filled,bold", fillcolor=`).MatchString(out) {
		t.Errorf("destination not highlighted:\n%s", out)
	}
	if !regexp.MustCompile(`label="10\.0\.0\.1\\n[0-9.]+ ms", style="rounded", peripheries=2`).MatchString(out) {
		t.Errorf("diverge point not marked:\n%s", out)
	}
	if strings.Contains(out, "not reached") {
		t.Errorf("reached destination drawn as not reached")
	}
	// Ranks: the TTL headings, chained, and a rank per TTL holding them.
	if !strings.Contains(out, "ttl_0 -> ttl_1 -> ttl_2 -> ttl_3 -> ttl_4 [style=invis];") {
		t.Errorf("no TTL axis:\n%s", out)
	}
	ranks := regexp.MustCompile(`\{ rank=same; ttl_(\d+);((?: n\d+;)+) \}`).FindAllStringSubmatch(out, -1)
	wantPerTTL := map[string]int{"1": 1, "2": 4, "3": 3, "4": 1}
	if len(ranks) != len(wantPerTTL) {
		t.Errorf("%d ranks, want %d:\n%s", len(ranks), len(wantPerTTL), out)
	}
	for _, r := range ranks {
		if n := strings.Count(r[2], ";"); n != wantPerTTL[r[1]] {
			t.Errorf("TTL %s: %d nodes, want %d", r[1], n, wantPerTTL[r[1]])
		}
	}
	// Edges labelled with path IDs; the source reaches TTL 1 with all.
	edge := regexp.MustCompile(`(?m)^\t(\w+) -> (\w+) \[label="([^"]*)"`)
	edges := edge.FindAllStringSubmatch(out, -1)
	labels := map[string]int{}
	for _, e := range edges {
		labels[e[3]]++
	}
	if len(edges) != 1+4+5+3 {
		t.Errorf("%d edges, want 13 (from the source, 4 into the diamond, 5 out of it, 3 to the destination)", len(edges))
	}
	if labels["1-8"] != 1 || labels["1,5"] != 2 || labels["3"] != 2 || labels["7"] != 2 || labels["1,2,4-6,8"] != 1 {
		t.Errorf("edge labels %v", labels)
	}
	if n := strings.Count(out, "style=dashed];"); n != 4 {
		t.Errorf("%d dashed edges, want 4 (to and from the silent nodes)", n)
	}

	svg := runDot(t, out)
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("10.2.0.1")) {
		t.Errorf("dot produced no SVG of the graph")
	}
}

func TestWriteDOTLongLabelsAndUnreached(t *testing.T) {
	dst := netip.MustParseAddr("10.99.0.1")
	c := NewCollector(dst, `we"ird\name`, netip.MustParseAddr("10.0.0.2"), 40, 8, 33452, 33452)
	for p := 1; p <= 40; p += 2 { // odd path IDs: a list too long for an edge
		c.Sent(p, 1)
		c.Reply(p, 1, netip.MustParseAddr("10.0.0.1"), time.Millisecond, 11, 0, false)
		c.Sent(p, 2)
	}
	start := time.Unix(1700000000, 0)
	tr := c.Trace(start, start.Add(time.Second), true)
	var b bytes.Buffer
	if err := WriteDOT(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, `digraph "traceflow-fast to we\"ird\\name" {`) {
		t.Errorf("name not quoted: %s", strings.SplitN(out, "\n", 2)[0])
	}
	if !strings.Contains(out, `source -> n0 [label="20 path IDs", tooltip="20 path IDs: 1,3,5,`) {
		t.Errorf("long path ID list not replaced by a count:\n%s", out)
	}
	if !strings.Contains(out, `destination [label="10.99.0.1\nnot reached"`) {
		t.Errorf("unreached destination not drawn:\n%s", out)
	}
	runDot(t, out)

	// Several destinations: one digraph each, in one input to dot.
	var two bytes.Buffer
	WriteDOT(&two, tr, Options{})
	WriteDOT(&two, dotTrace("second"), Options{})
	if n := strings.Count(two.String(), "digraph "); n != 2 {
		t.Errorf("%d digraphs, want 2", n)
	}
	if n := bytes.Count(runDot(t, two.String()), []byte("<svg")); n != 2 {
		t.Errorf("dot drew %d graphs, want 2", n)
	}
}

func TestWriteDOTEmpty(t *testing.T) {
	dst := netip.MustParseAddr("10.99.0.1")
	c := NewCollector(dst, "", netip.Addr{}, 2, 8, 33452, 33452)
	tr := c.Trace(time.Unix(0, 0), time.Unix(1, 0), false)
	var b bytes.Buffer
	if err := WriteDOT(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	runDot(t, b.String())
}

func TestDotQuote(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":        `"10.0.0.1"`,
		"a\nb":            `"a\nb"`,
		`say "hi" \ bye`:  `"say \"hi\" \\ bye"`,
		"tab\there\x7f":   `"tab here "`,
		"unicode: façade": `"unicode: façade"`,
	} {
		if got := dotQuote(in); got != want {
			t.Errorf("dotQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestWriteDOTASN checks the AS line of the labels and the AS fill colours.
func TestWriteDOTASN(t *testing.T) {
	tr := dotTrace("dest.example")
	tr.HasASN = true
	asn := map[string]uint32{"10.0.0.1": 64500, "10.1.1.1": 64501, "10.1.2.1": 64501, "10.1.3.1": 64502, "10.99.0.1": 64510}
	for i := range tr.Flows {
		for j := range tr.Flows[i].Hops {
			h := &tr.Flows[i].Hops[j]
			h.ASN = asn[h.Addr.String()]
			if h.Addr.String() == "10.1.2.1" {
				h.IXP = "LAB-IX"
			}
		}
	}
	var b bytes.Buffer
	if err := WriteDOT(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	node := regexp.MustCompile(`label="([0-9.]+)\\n[0-9.]+ ms(?:\\n([^"]*))?", style="([^"]*)"(?:, fillcolor="([^"]*)")?`)
	fill := map[string]string{} // address -> fill colour
	for _, m := range node.FindAllStringSubmatch(out, -1) {
		addr, line, style, colour := m[1], m[2], m[3], m[4]
		want := ""
		if a := asn[addr]; a != 0 {
			want = fmt.Sprintf("AS%d", a)
		}
		if addr == "10.1.2.1" {
			want += ", IX LAB-IX"
		}
		if line != want {
			t.Errorf("%s: AS line %q, want %q", addr, line, want)
		}
		if (asn[addr] != 0) != strings.Contains(style, "filled") {
			t.Errorf("%s: style %q", addr, style)
		}
		fill[addr] = colour
	}
	if len(fill) != 7 {
		t.Fatalf("%d responding nodes found, want 7:\n%s", len(fill), out)
	}
	if fill["10.1.1.1"] == "" || fill["10.1.1.1"] != fill["10.1.2.1"] {
		t.Errorf("AS64501 nodes filled %q and %q, want one colour", fill["10.1.1.1"], fill["10.1.2.1"])
	}
	colours := map[string]bool{}
	for _, a := range []string{"10.0.0.1", "10.1.1.1", "10.1.3.1", "10.99.0.1"} {
		colours[fill[a]] = true
	}
	if len(colours) != 4 || colours[""] {
		t.Errorf("ASes share fill colours: %v", fill)
	}
	if fill["10.1.4.1"] != "" || fill["10.2.0.1"] != "" {
		t.Errorf("nodes without an AS filled: %v", fill)
	}
	if !strings.Contains(out, `, AS64501, IX LAB-IX, paths`) && !strings.Contains(out, `, AS64501, IX LAB-IX"`) {
		t.Errorf("no AS in the tooltip of 10.1.2.1:\n%s", out)
	}
	runDot(t, out)
}
