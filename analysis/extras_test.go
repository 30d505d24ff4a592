package analysis

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// testExt is what a1 of the lab says: two labels and its incoming
// interface.
func testExt() *probe.AnswerExt {
	x := &probe.AnswerExt{NLabels: 2, NIfs: 1, Flags: probe.ExtRFC4884}
	x.Labels[0] = probe.MPLSLabel{Label: 16001, TC: 5, TTL: 1}
	x.Labels[1] = probe.MPLSLabel{Label: 16002, S: true, TTL: 1}
	x.Ifs[0] = probe.IfObject{Role: probe.IfIncoming, Has: probe.IfHasIfindex | probe.IfHasAddr | probe.IfHasName | probe.IfHasMTU,
		Ifindex: 103, MTU: 1500, Addr: netip.MustParseAddr("10.1.1.2")}
	x.Ifs[0].NameLen = uint8(copy(x.Ifs[0].Name[:], "to-r1"))
	return x
}

// extrasAnswer returns an answer to the probe (path, ttl) that quotes it
// rewritten rw, with the TOS byte tos, and has the extensions of ext (none
// when nil).
func extrasAnswer(path, ttl int, rw probe.Rewrite, tos uint8, ext *probe.AnswerExt) *probe.Answer {
	a := &probe.Answer{Path: uint16(path), TTL: uint8(ttl), Rewrites: rw, QTOS: tos}
	if ext != nil {
		a.Ext = *ext
	}
	return a
}

// extrasTrace is the 4-way diamond of 8 path IDs (labDiamond) where the
// router at 10.1.1.2 (path IDs 1 and 5, TTL 2) answers with extensions, a
// middlebox in r1 rewrites the DSCP of path IDs 2 and 6 (every hop after
// it), and the destination of path ID 8 was inferred.
func extrasTrace(t *testing.T) *Trace {
	t.Helper()
	c := NewCollector(testDst, "dest.example", testSrc, 8, testMaxTTL, testSrcBase, testDstPort)
	// Extras of an unanswered probe are dropped.
	c.Extras(extrasAnswer(1, 2, probe.RewriteTOS, 0xb8, testExt()))
	for i, s := range labDiamond(8) {
		p := i + 1
		for ttl := 1; ttl <= 5; ttl++ {
			c.Sent(p, ttl)
			from, typ, code, reached := testDst, uint8(3), uint8(3), true
			if ttl <= len(s.hops) {
				from, typ, code, reached = netip.MustParseAddr(s.hops[ttl-1]), 11, 0, false
			}
			if !c.Reply(p, ttl, from, rttFor(p, ttl), typ, code, reached) {
				t.Fatalf("path ID %d TTL %d: not first", p, ttl)
			}
			c.Details(p, ttl, uint8(65-ttl), 1, 56)
			var rw probe.Rewrite
			if (p == 2 || p == 6) && ttl >= 2 {
				rw = probe.RewriteTOS
			}
			var ext *probe.AnswerExt
			if ttl == 2 && s.hops[1] == "10.1.1.2" {
				ext = testExt()
			}
			c.Extras(extrasAnswer(p, ttl, rw, 0xb8, ext))
		}
	}
	// A second record of a probe does not replace the first; the answers
	// past the destination (TTL 5) are no hops.
	c.Extras(extrasAnswer(1, 2, 0, 0, &probe.AnswerExt{NLabels: 1}))
	c.Extras(extrasAnswer(2, 3, probe.RewriteDst, 0, nil))
	c.Extras(extrasAnswer(3, 5, probe.RewriteLength, 0, testExt()))
	tr := c.Trace(testStart, testStart.Add(time.Second), false)
	last := &tr.Flows[7].Hops[3]
	last.Inferred, last.RTT = true, 0
	return tr
}

func TestCollectorExtras(t *testing.T) {
	tr := extrasTrace(t)
	wantIf := []probe.InterfaceInfo{{Role: probe.IfIncoming, Ifindex: 103, Addr: netip.MustParseAddr("10.1.1.2"), Name: "to-r1", MTU: 1500}}
	for _, f := range tr.Flows {
		for _, h := range f.Hops {
			ext := h.Addr.String() == "10.1.1.2"
			if got := h.MPLS != nil; got != ext || (ext && (!slices.Equal(h.MPLS, testExt().Labels[:2]) ||
				!slices.Equal(h.Interfaces, wantIf) || h.ExtFlags != probe.ExtRFC4884)) || (!ext && h.Interfaces != nil) {
				t.Errorf("path ID %d TTL %d: MPLS %v interfaces %v flags %v", f.PathID, h.TTL, h.MPLS, h.Interfaces, h.ExtFlags)
			}
			rw := probe.Rewrite(0)
			if (f.PathID == 2 || f.PathID == 6) && h.TTL >= 2 {
				rw = probe.RewriteTOS
			}
			if h.Rewrites != rw || (rw != 0) != (h.QuotedTOS == 0xb8) {
				t.Errorf("path ID %d TTL %d: rewrites %v quoted TOS %#x", f.PathID, h.TTL, h.Rewrites.Names(), h.QuotedTOS)
			}
		}
	}

	// Reset forgets them, and keeps the memory: recording again does not
	// allocate.
	c := NewCollector(testDst, "d", testSrc, 4, 8, testSrcBase, testDstPort)
	for range 2 {
		c.Reset(testDst, "d")
		for p := 1; p <= 4; p++ {
			for ttl := 1; ttl <= 8; ttl++ {
				c.Reply(p, ttl, testDst, time.Millisecond, 11, 0, false)
				c.Extras(extrasAnswer(p, ttl, probe.RewriteTOS, 4, testExt()))
			}
		}
	}
	c.Reset(testDst, "d")
	a, none := extrasAnswer(1, 1, probe.RewriteTOS, 4, testExt()), extrasAnswer(1, 1, 0, 0, nil)
	if n := testing.AllocsPerRun(100, func() {
		c.Reply(int(a.Path), int(a.TTL), testDst, time.Millisecond, 11, 0, false)
		c.Extras(a)
		c.Extras(none) // nothing to record
		a.Path, a.TTL = a.Path%4+1, a.TTL%8+1
		none.Path, none.TTL = a.Path, a.TTL
	}); n != 0 {
		t.Errorf("Extras: %v allocations per call", n)
	}
	if tr := c.Trace(testStart, testStart, false); len(tr.Flows) != 4 || tr.Flows[0].Hops[0].MPLS == nil {
		t.Errorf("after Reset: %+v", tr.Flows)
	}
	c.Reset(testDst, "d")
	c.Reply(1, 1, testDst, time.Millisecond, 11, 0, false)
	if h := c.Trace(testStart, testStart, false).Flows[0].Hops[0]; h.MPLS != nil || h.Rewrites != 0 {
		t.Errorf("Reset kept the extras: %+v", h)
	}
}

func TestExtrasJSON(t *testing.T) {
	tr := extrasTrace(t)
	var b bytes.Buffer
	if err := WriteJSON(&b, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	js := b.String()
	for _, want := range []string{
		`{"ttl":2,"addr":"10.1.1.2","rtt_ms":2.001,"icmp_type":11,"icmp_code":0,"mpls":[{"label":16001,"tc":5,"s":false,"ttl":1},{"label":16002,"tc":0,"s":true,"ttl":1}],` +
			`"interfaces":[{"role":"incoming","ifindex":103,"addr":"10.1.1.2","name":"to-r1","mtu":1500}],"rfc4884":true}`,
		`{"ttl":3,"addr":"10.2.2.2","rtt_ms":3.002,"icmp_type":11,"icmp_code":0,"rewritten":["tos"],"quoted_tos":184}`,
		// Per path: the RTTs at the destination; the inferred one has none.
		`"path_ids":[1,5],"reached":true,"rtt_ms":{"min":4.001,"avg":4.003,"max":4.005}}`,
		`"path_ids":[4,8],"reached":true,"rtt_ms":{"min":4.004,"avg":4.004,"max":4.004}}`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON lacks %s\n%s", want, js)
		}
	}
	if n := strings.Count(js, `"mpls"`); n != 2 {
		t.Errorf("%d hops with MPLS labels, want 2", n)
	}
	// Read back, every hop is the same.
	var got *Trace
	for tr, err := range ReadJSON(&b) {
		if err != nil {
			t.Fatal(err)
		}
		got = tr
	}
	for i := range tr.Flows {
		for j := range tr.Flows[i].Hops {
			w, g := tr.Flows[i].Hops[j], got.Flows[i].Hops[j]
			w.ReplyTTL, w.QuotedTTL, w.Size = 0, 0, 0 // not in the JSON output
			if !reflect.DeepEqual(w, g) {
				t.Errorf("path ID %d TTL %d read back\n got %+v\nwant %+v", i+1, j+1, g, w)
			}
		}
	}
	for _, bad := range []string{
		`{"flows":[{"path_id":1,"hops":[{"ttl":1,"addr":"10.0.0.1","interfaces":[{"role":"sideways"}]}]}]}`,
		`{"flows":[{"path_id":1,"hops":[{"ttl":1,"addr":"10.0.0.1","rewritten":["colour"]}]}]}`,
	} {
		for _, err := range ReadJSON(strings.NewReader(bad)) {
			if err == nil {
				t.Errorf("ReadJSON accepted %s", bad)
			}
		}
	}
}

func TestExtrasTables(t *testing.T) {
	tr := extrasTrace(t)
	vert, horiz, _ := render(t, tr, Options{})
	if got := row(t, vert, "Path ID 1"); !slices.Equal(got, []string{"10.0.0.1", "10.1.1.2 [MPLS 16001/16002, in to-r1]", "10.2.1.2", "10.99.0.1"}) {
		t.Errorf("row 1 %q\n%s", got, vert)
	}
	if got := row(t, vert, "Path ID 2"); !slices.Equal(got, []string{"10.0.0.1", "10.1.2.2 [tos rewritten]", "10.2.2.2 [tos rewritten]", "10.99.0.1 [tos rewritten]"}) {
		t.Errorf("row 2 %q\n%s", got, vert)
	}
	if got := row(t, horiz, "2"); got[0] != "10.1.1.2 [MPLS 16001/16002, in to-r1]" || got[1] != "10.1.2.2 [tos rewritten]" {
		t.Errorf("horiz TTL 2 %q\n%s", got, horiz)
	}
	for _, out := range []string{vert, horiz} {
		if !strings.Contains(out, "\n"+rewriteLegend+"\n") {
			t.Errorf("no legend of the rewrites:\n%s", out)
		}
	}

	// Deduplicated: the marks stay, and the RTTs follow, per hop and per
	// path at the destination, without the inferred one.
	vert, _, _ = render(t, tr, Options{Dedup: true})
	if got := row(t, vert, "Path 1 (IDs 1,5)"); !slices.Equal(got, []string{"10.0.0.1 <", "10.1.1.2 [MPLS 16001/16002, in to-r1]", "10.2.1.2", "> 10.99.0.1"}) {
		t.Errorf("dedup row 1 %q\n%s", got, vert)
	}
	for _, want := range []string{
		"\nRTT min / avg / max:\n",
		"\n  TTL 2  10.1.1.2      2.001 / 2.003 / 2.005 ms\n",
		"\n  TTL 4  10.99.0.1     4.001 / 4.004 / 4.007 ms\n", // 7 answers: path ID 8's is inferred
		"\n  Path 1 at 10.99.0.1  4.001 / 4.003 / 4.005 ms\n",
		"\n  Path 4 at 10.99.0.1  4.004 / 4.004 / 4.004 ms\n",
	} {
		if !strings.Contains(vert, want) {
			t.Errorf("dedup lacks %q:\n%s", want, vert)
		}
	}

	// A path that did not reach the destination has no RTT; one whose
	// only answer was inferred none either.
	tr = collect(t, []flowSpec{{hops: []string{"10.0.0.1", "10.1.1.1"}}, {hops: []string{"10.0.0.1"}, reached: true}})
	h := &tr.Flows[1].Hops[1]
	h.Inferred, h.RTT = true, 0
	vert, _, js := render(t, tr, Options{Dedup: true})
	for _, want := range []string{"\n  Path 1               not reached\n", "\n  Path 2 at 10.99.0.1  no RTT (inferred)\n"} {
		if !strings.Contains(vert, want) {
			t.Errorf("lacks %q:\n%s", want, vert)
		}
	}
	if strings.Contains(vert, "TTL 2  10.99.0.1") {
		t.Errorf("an inferred hop has an RTT line:\n%s", vert)
	}
	if !strings.Contains(js, `"path_ids":[1],"reached":false,"rtt_ms":null}`) || !strings.Contains(js, `"path_ids":[2],"reached":true,"rtt_ms":null}`) ||
		!strings.Contains(js, `"addr":"10.99.0.1","ttl":2,"silent":false,"path_ids":[2],"destination":true,"diverge":false,"converge":false,"rtt_ms":null}`) {
		t.Errorf("JSON RTTs of unreached or inferred:\n%s", js)
	}
}

func TestPathRTT(t *testing.T) {
	tr := collect(t, diamond(8))
	ups := tr.UniquePaths()
	if len(ups) != 4 {
		t.Fatalf("%d paths", len(ups))
	}
	// Path IDs 2 and 6: the destination answered TTL 4 after 4.002 and
	// 4.006 ms.
	if got := tr.PathRTT(&ups[1]); got != (RTTStats{Min: rttFor(2, 4), Avg: (rttFor(2, 4) + rttFor(6, 4)) / 2, Max: rttFor(6, 4), N: 2}) {
		t.Errorf("path 2: %+v", got)
	}
	// Out of order flows (hand-built) are found all the same.
	slices.Reverse(tr.Flows)
	if got := tr.PathRTT(&ups[1]); got.N != 2 || got.Max != rttFor(6, 4) {
		t.Errorf("reversed flows: %+v", got)
	}
	if got := tr.PathRTT(&UniquePath{PathIDs: []int{1}}); got != (RTTStats{}) {
		t.Errorf("not reached: %+v", got)
	}
}

func TestExtrasDOT(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDOT(&b, extrasTrace(t), Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`label="10.1.1.2\n2.003 ms\nMPLS 16001/16002\nin to-r1", style="rounded", tooltip="10.1.1.2, TTL 2, path IDs 1,5, RTT 2.001 ms / 2.003 ms / 2.005 ms (min / avg / max), ` +
			`MPLS label 16001 TC 5 TTL 1 / label 16002 TC 0 TTL 1 S, interface incoming to-r1, ifindex 103, 10.1.1.2, MTU 1500"`,
		`label="10.2.2.2\n3.004 ms\ntos rewritten"`,
		`probe rewritten: tos, quoted TOS 184`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("DOT lacks %s\n%s", want, out)
		}
	}
	// Nodes that said nothing more are as before.
	if !strings.Contains(out, `label="10.1.3.2\n2.005 ms", style="rounded", tooltip=`) {
		t.Errorf("plain node changed:\n%s", out)
	}
	runDot(t, out)
}

func TestExtrasAtlas(t *testing.T) {
	var b bytes.Buffer
	if err := WriteAtlas(&b, extrasTrace(t), AtlasOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d records", len(lines))
	}
	want := `{"hop":2,"result":[{"from":"10.1.1.2","rtt":2.001,"size":28,"ttl":63,"icmpext":{"version":2,"rfc4884":1,"obj":[` +
		`{"class":1,"type":1,"mpls":[{"label":16001,"exp":5,"s":0,"ttl":1},{"label":16002,"exp":0,"s":1,"ttl":1}]},` +
		`{"class":2,"type":15,"role":"incoming","ifindex":103,"addr":"10.1.1.2","name":"to-r1","mtu":1500}]}}]}`
	if !strings.Contains(lines[0], want) {
		t.Errorf("record 1 lacks %s\n%s", want, lines[0])
	}
	if strings.Contains(lines[2], "icmpext") || !strings.Contains(lines[1], `{"hop":3,"result":[{"from":"10.2.2.2","rtt":3.002,"size":28,"ttl":62,"traceflow":{"rewritten":["tos"],"quoted_tos":184}}]}`) {
		t.Errorf("records 2 and 3:\n%s\n%s", lines[1], lines[2])
	}
	// The object is Atlas's: a parser that knows only its fields reads it.
	var rec struct {
		Result []struct {
			Result []struct {
				ICMPExt *struct {
					Version int `json:"version"`
					RFC4884 int `json:"rfc4884"`
					Obj     []struct {
						Class int `json:"class"`
						Type  int `json:"type"`
						MPLS  []struct {
							Label, Exp, S, TTL int
						} `json:"mpls"`
					} `json:"obj"`
				} `json:"icmpext"`
			} `json:"result"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(lines[4]), &rec); err != nil {
		t.Fatal(err)
	}
	x := rec.Result[1].Result[0].ICMPExt
	if x == nil || x.Version != 2 || x.RFC4884 != 1 || len(x.Obj) != 2 || x.Obj[0].MPLS[1].Label != 16002 || x.Obj[0].MPLS[1].S != 1 || x.Obj[1].Class != 2 {
		t.Errorf("path ID 5, hop 2: %+v", x)
	}
}
