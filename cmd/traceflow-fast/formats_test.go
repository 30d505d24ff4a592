package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// formatFlow is a flow of the JSON output, decoded independently of the
// analysis package.
type formatFlow struct {
	PathID     int  `json:"path_id"`
	SrcPort    int  `json:"src_port"`
	Reached    bool `json:"reached"`
	ReachedTTL int  `json:"reached_ttl"`
	Hops       []struct {
		TTL      int      `json:"ttl"`
		Addr     *string  `json:"addr"`
		RTT      *float64 `json:"rtt_ms"`
		ICMPType *int     `json:"icmp_type"`
		ICMPCode *int     `json:"icmp_code"`
		Inferred bool     `json:"inferred"`
	} `json:"hops"`
}

type formatTrace struct {
	Destination string       `json:"destination"`
	Source      string       `json:"source"`
	ProbesSent  int          `json:"probes_sent"`
	Replies     int          `json:"replies"`
	Flows       []formatFlow `json:"flows"`
}

// traceJSON runs a trace with --format json and decodes its one line.
func traceJSON(t *testing.T, l *lab.Lab, args ...string) (formatTrace, runOutput) {
	t.Helper()
	out := traceIn(t, l, append([]string{"--format", "json"}, args...)...)
	if out.code != exitOK {
		t.Fatalf("json: exit %d, stderr:\n%s", out.code, out.stderr)
	}
	var tr formatTrace
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.stdout)), &tr); err != nil {
		t.Fatalf("json: %v\n%s", err, out.stdout)
	}
	return tr, out
}

// hopAddrs renders a flow's hops as addresses, "*" for silent ones.
func hopAddrs(f formatFlow) []string {
	var out []string
	for _, h := range f.Hops {
		if h.Addr == nil {
			out = append(out, "*")
		} else {
			out = append(out, *h.Addr)
		}
	}
	return out
}

// checkAtlasRecord checks one record against the RIPE Atlas traceroute
// result format, version 5000 (atlas.ripe.net/docs/apis/measurement-result-format)
// and what ripe.atlas.sagan requires of a result ("timestamp", "msm_id",
// "prb_id", "fw" and "type" present; fw not 0): the fields and their JSON
// types, hops numbered upwards, each reply either a timeout {"x": "*"} or
// {"from", "rtt", "size", "ttl"} with optional "ittl" and "err", and
// nothing outside the format but the "traceflow" object.
func checkAtlasRecord(rec map[string]any) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	isInt := func(v any) bool {
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	isAddr := func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, err := netip.ParseAddr(s)
		return err == nil
	}
	format := map[string]string{ // field: JSON type
		"af": "int", "dst_addr": "addr", "dst_name": "string", "endtime": "int", "from": "addr",
		"fw": "int", "lts": "int", "msm_id": "int", "msm_name": "string", "paris_id": "int",
		"prb_id": "int", "proto": "string", "result": "list", "size": "int", "src_addr": "addr",
		"timestamp": "int", "type": "string", "traceflow": "object",
	}
	required := []string{"af", "dst_addr", "dst_name", "endtime", "from", "fw", "msm_id", "paris_id",
		"prb_id", "proto", "result", "size", "src_addr", "timestamp", "type"}
	for _, k := range required {
		if _, ok := rec[k]; !ok {
			bad("no %q", k)
		}
	}
	for k, v := range rec {
		ok := true
		switch format[k] {
		case "int":
			ok = isInt(v)
		case "addr":
			ok = isAddr(v)
		case "string":
			_, ok = v.(string)
		case "list":
			_, ok = v.([]any)
		case "object":
			_, ok = v.(map[string]any)
		default:
			bad("field %q is not in the Atlas traceroute format", k)
			continue
		}
		if !ok {
			bad("%q = %v: not a JSON %s", k, v, format[k])
		}
	}
	if rec["type"] != "traceroute" || rec["af"] != 4.0 || rec["proto"] != "UDP" {
		bad("type %v af %v proto %v, want traceroute 4 UDP", rec["type"], rec["af"], rec["proto"])
	}
	if fw, _ := rec["fw"].(float64); fw < 5000 {
		bad("fw %v below 5000", rec["fw"])
	}
	hops, _ := rec["result"].([]any)
	last := 0
	for i, hv := range hops {
		h, _ := hv.(map[string]any)
		n, _ := h["hop"].(float64)
		if !isInt(h["hop"]) || int(n) <= last || len(h) != 2 {
			bad("result[%d] = %v: want {hop, result} with increasing hops", i, hv)
		}
		last = int(n)
		replies, _ := h["result"].([]any)
		if len(replies) == 0 {
			bad("hop %v: no replies", h["hop"])
		}
		for _, rv := range replies {
			r, _ := rv.(map[string]any)
			if _, timeout := r["x"]; timeout {
				if r["x"] != "*" || len(r) != 1 {
					bad("hop %v: timeout %v, want {\"x\": \"*\"}", h["hop"], r)
				}
				continue
			}
			if !isAddr(r["from"]) || !isInt(r["size"]) || !isInt(r["ttl"]) {
				bad("hop %v: reply %v lacks from, size or ttl", h["hop"], r)
			}
			if rtt, ok := r["rtt"].(float64); !ok || rtt < 0 {
				bad("hop %v: rtt %v", h["hop"], r["rtt"])
			}
			for k, v := range r {
				switch k {
				case "from", "rtt", "size", "ttl":
				case "ittl":
					if !isInt(v) {
						bad("hop %v: ittl %v", h["hop"], v)
					}
				case "err":
					if _, s := v.(string); !s && !isInt(v) {
						bad("hop %v: err %v", h["hop"], v)
					}
				default:
					bad("hop %v: reply field %q", h["hop"], k)
				}
			}
		}
	}
	return errs
}

// atlasHops returns a record's hops as addresses ("*" for a timeout) and
// its replies by hop.
func atlasHops(rec map[string]any) ([]string, []map[string]any) {
	var addrs []string
	var replies []map[string]any
	hops, _ := rec["result"].([]any)
	for _, hv := range hops {
		rs, _ := hv.(map[string]any)["result"].([]any)
		r, _ := rs[0].(map[string]any)
		if from, ok := r["from"].(string); ok {
			addrs = append(addrs, from)
		} else {
			addrs = append(addrs, "*")
		}
		replies = append(replies, r)
	}
	return addrs, replies
}

// checkAtlasAgainstJSON checks the Atlas records of a run against the JSON
// output of another run of the same lab: the routers hash the same
// 5-tuples the same way, so every path ID takes the same path.
func checkAtlasAgainstJSON(t *testing.T, stdout string, tr formatTrace, paths int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != paths {
		t.Fatalf("%d Atlas records, want one per path ID (%d):\n%s", len(lines), paths, stdout)
	}
	byPath := map[int]formatFlow{}
	for _, f := range tr.Flows {
		byPath[f.PathID] = f
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		for _, e := range checkAtlasRecord(rec) {
			t.Errorf("record %d: %s\n%s", i+1, e, line)
		}
		tf, _ := rec["traceflow"].(map[string]any)
		pathID, _ := tf["path_id"].(float64)
		f, ok := byPath[int(pathID)]
		if !ok || int(pathID) != i+1 {
			t.Errorf("record %d: path ID %v", i+1, tf["path_id"])
			continue
		}
		if rec["paris_id"] != float64(f.SrcPort) || tf["reached"] != f.Reached || rec["dst_addr"] != tr.Destination ||
			rec["src_addr"] != tr.Source || rec["from"] != tr.Source {
			t.Errorf("path ID %d: record %s\ndisagrees with JSON flow %+v", f.PathID, line, f)
		}
		addrs, replies := atlasHops(rec)
		if want := hopAddrs(f); !slices.Equal(addrs, want) {
			t.Errorf("path ID %d: Atlas hops %q, JSON hops %q", f.PathID, addrs, want)
		}
		for j, r := range replies {
			if _, timeout := r["x"]; timeout {
				continue
			}
			// Linux routers quote the whole 30-byte probe, and answer with
			// TTL 64 over a way back as long as the way out.
			hop := j + 1
			if r["size"] != 30.0 || r["ttl"] != float64(65-hop) {
				t.Errorf("path ID %d hop %d: size %v ttl %v, want 30 and %d", f.PathID, hop, r["size"], r["ttl"], 65-hop)
			}
			if _, ok := r["err"]; ok {
				t.Errorf("path ID %d hop %d: err %v in a lab without unreachables", f.PathID, hop, r["err"])
			}
		}
	}
}

// dotSVG lays the DOT source out with `dot -Tsvg`, which must accept it
// without a warning.
func dotSVG(t *testing.T, src string) string {
	t.Helper()
	dot := testenv.RequireTool(t, "dot", "graphviz")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(src)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.String(), src)
	}
	return out.String()
}

var (
	dotRank  = regexp.MustCompile(`\{ rank=same; ttl_(\d+);((?: n\d+;)+) \}`)
	dotNode  = regexp.MustCompile(`(?m)^\t(n\d+) \[label="([^"\\]*)(?:\\n[^"]*)?"`)
	dotEdgeL = regexp.MustCompile(`(?m)^\t(\w+) -> (\w+) \[label="([^"]*)"`)
)

// checkDOT checks the digraph of a trace of a diamond: per TTL, the nodes
// of the expected addresses (a "*" for every silent hop), the destination
// highlighted, and edges that carry every path ID from the source to it.
func checkDOT(t *testing.T, src string, wantPerTTL map[int][]string, paths int) {
	t.Helper()
	if n := strings.Count(src, "digraph "); n != 1 {
		t.Errorf("%d digraphs, want 1", n)
	}
	label := map[string]string{}
	for _, m := range dotNode.FindAllStringSubmatch(src, -1) {
		label[m[1]] = m[2]
	}
	got := map[int][]string{}
	for _, m := range dotRank.FindAllStringSubmatch(src, -1) {
		ttl, _ := strconv.Atoi(m[1])
		for _, id := range strings.Fields(strings.ReplaceAll(m[2], ";", " ")) {
			got[ttl] = append(got[ttl], label[id])
		}
		slices.Sort(got[ttl])
	}
	for ttl, want := range wantPerTTL {
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got[ttl], w) {
			t.Errorf("TTL %d: nodes %q, want %q", ttl, got[ttl], w)
		}
	}
	if !regexp.MustCompile(`label="` + regexp.QuoteMeta(lab.Destination) + `\\n[0-9.]+ ms", style="rounded,filled,bold"`).MatchString(src) {
		t.Errorf("destination %s not highlighted", lab.Destination)
	}
	// Flow conservation: the path IDs leaving the source all arrive at the
	// destination's node.
	var destID string
	for id, l := range label {
		if l == lab.Destination {
			destID = id
		}
	}
	in := 0
	for _, m := range dotEdgeL.FindAllStringSubmatch(src, -1) {
		if m[1] == "source" && m[3] != "1-"+strconv.Itoa(paths) {
			t.Errorf("source edge labelled %q, want 1-%d", m[3], paths)
		}
		if m[2] == destID {
			in += countIDs(m[3])
		}
	}
	if in != paths {
		t.Errorf("%d path IDs reach the destination's node, want %d", in, paths)
	}
}

// countIDs counts the path IDs of an edge label: "1,3-5" is 4, "12 path
// IDs" is 12.
func countIDs(label string) int {
	if n, ok := strings.CutSuffix(label, " path IDs"); ok {
		c, _ := strconv.Atoi(n)
		return c
	}
	c := 0
	for _, part := range strings.Split(label, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			c++
			continue
		}
		a, _ := strconv.Atoi(lo)
		b, _ := strconv.Atoi(hi)
		c += b - a + 1
	}
	return c
}

// TestLabFormats traces the 4-way diamond with 16 path IDs in the dot and
// atlas formats and checks them against the JSON output; then silences the
// router after the diamond (r3 drops its time-exceeded messages) and checks
// the silent hops of both.
func TestLabFormats(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	const paths = 16
	args := []string{"--paths", strconv.Itoa(paths), "--wait", waitAnswered, lab.Destination}
	expected := l.ExpectedPaths()
	perTTL := func(silentTTL int) map[int][]string {
		m := map[int][]string{}
		seen := map[string]bool{}
		for _, p := range expected {
			for i, a := range p {
				if i+1 == silentTTL || seen[a+"@"+strconv.Itoa(i)] {
					continue
				}
				seen[a+"@"+strconv.Itoa(i)] = true
				m[i+1] = append(m[i+1], a)
			}
		}
		if silentTTL > 0 { // a node of its own per path ID
			for range paths {
				m[silentTTL] = append(m[silentTTL], "*")
			}
		}
		return m
	}

	tr, _ := traceJSON(t, l, args...)
	if len(tr.Flows) != paths {
		t.Fatalf("%d flows in the JSON output, want %d", len(tr.Flows), paths)
	}

	t.Run("dot", func(t *testing.T) {
		out := traceIn(t, l, append([]string{"--format", "dot"}, args...)...)
		if out.code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
		}
		svg := dotSVG(t, out.stdout)
		want := perTTL(0)
		checkDOT(t, out.stdout, want, paths)
		// The 4 middle hops of each TTL of the diamond, in the drawing.
		for _, ttl := range []int{2, 3} {
			if len(want[ttl]) != 4 {
				t.Fatalf("lab describes %d hops at TTL %d, want 4", len(want[ttl]), ttl)
			}
			for _, a := range want[ttl] {
				if !strings.Contains(svg, ">"+a+"</text>") {
					t.Errorf("SVG lacks hop %s", a)
				}
			}
		}
	})

	t.Run("atlas", func(t *testing.T) {
		out := traceIn(t, l, append([]string{"--format", "atlas"}, args...)...)
		if out.code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
		}
		checkAtlasAgainstJSON(t, out.stdout, tr, paths)
	})

	t.Run("silent", func(t *testing.T) { checkSilentHop(t, l, paths, perTTL(3)) })
}

// checkSilentHop makes r3, which answers TTL 3, drop the time exceeded it
// sends, and traces the diamond in the json, atlas and dot formats at once
// (each run tells its replies from the others' by its run tag, see
// TestFaultNoise): TTL 3 is silent, every other hop answers, and the
// atlas and dot outputs agree with the JSON one.
func checkSilentHop(t *testing.T, l *lab.Lab, paths int, wantDOT map[int][]string) {
	t.Helper()
	for _, cmd := range [][]string{
		{"add", "table", "ip", "tfsilent"},
		{"add", "chain", "ip", "tfsilent", "out", "{ type filter hook output priority 0 ; }"},
		{"add", "rule", "ip", "tfsilent", "out", "icmp", "type", "time-exceeded", "drop"},
	} {
		if _, stderr, err := l.Run("r3", "nft", cmd...); err != nil {
			t.Fatalf("nft %v: %v\n%s", cmd, err, stderr)
		}
	}
	// The other hops' replies have until TTL 3 times out (with --retries
	// 0, a later one is lost): 1 s was not always enough on a loaded
	// machine. A run lasts two --waits, path ID 1's then the others'.
	sargs := []string{"--paths", strconv.Itoa(paths), "--wait", "3", "--retries", "0", lab.Destination}
	formats := []string{"json", "atlas", "dot"}
	outs := make([]runOutput, len(formats))
	var wg sync.WaitGroup
	for i, format := range formats {
		wg.Go(func() { outs[i] = traceIn(t, l, append([]string{"--format", format}, sargs...)...) })
	}
	wg.Wait()
	for i, out := range outs {
		if out.code != exitOK {
			t.Fatalf("%s: exit %d, stderr:\n%s", formats[i], out.code, out.stderr)
		}
	}
	var str formatTrace
	if err := json.Unmarshal([]byte(strings.TrimSpace(outs[0].stdout)), &str); err != nil {
		t.Fatalf("json: %v\n%s", err, outs[0].stdout)
	}
	for _, f := range str.Flows {
		if got := hopAddrs(f); len(got) != 4 || got[2] != "*" || !f.Reached {
			t.Fatalf("path ID %d: hops %q reached %v, want TTL 3 silent and the destination at 4", f.PathID, got, f.Reached)
		}
	}
	checkAtlasAgainstJSON(t, outs[1].stdout, str, paths)
	if n := strings.Count(outs[1].stdout, `{"hop":3,"result":[{"x":"*"}]}`); n != paths {
		t.Errorf(`%d records with {"x":"*"} at hop 3, want %d`, n, paths)
	}
	dotSVG(t, outs[2].stdout)
	checkDOT(t, outs[2].stdout, wantDOT, paths)
}
