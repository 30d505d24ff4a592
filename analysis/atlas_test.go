package analysis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// checkAtlasTraceroute checks one decoded record against the RIPE Atlas
// traceroute result format (version 5000, atlas.ripe.net/docs/apis/
// measurement-result-format) and what ripe.atlas.sagan's Result and
// TracerouteResult demand: "timestamp", "msm_id", "prb_id", "fw" and
// "type" present ("This doesn't look like a RIPE Atlas measurement"
// otherwise), fw not 0, integers where the format says int, and every hop
// reply either a timeout {"x": "*"} or a reply with "from", "rtt", "size"
// and "ttl". Tool-specific fields must be under "traceflow" alone.
func checkAtlasTraceroute(rec map[string]any) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	isInt := func(v any) bool {
		f, ok := v.(float64)
		return ok && f == math.Trunc(f) && !math.IsInf(f, 0)
	}
	isAddr := func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, err := netip.ParseAddr(s)
		return err == nil
	}
	known := map[string]bool{
		"af": true, "dst_addr": true, "dst_name": true, "endtime": true, "from": true,
		"fw": true, "group_id": true, "lts": true, "msm_id": true, "msm_name": true,
		"paris_id": true, "prb_id": true, "proto": true, "result": true, "size": true,
		"src_addr": true, "timestamp": true, "type": true, "bundle": true, "ttr": true,
		"mver": true, "traceflow": true,
	}
	for k := range rec {
		if !known[k] {
			bad("field %q is not in the Atlas traceroute format (extras go under \"traceflow\")", k)
		}
	}
	for _, k := range []string{"timestamp", "msm_id", "prb_id", "fw", "type"} {
		if _, ok := rec[k]; !ok {
			bad("no %q: sagan rejects the record", k)
		}
	}
	for _, k := range []string{"af", "endtime", "fw", "lts", "msm_id", "paris_id", "prb_id", "size", "timestamp"} {
		if v, ok := rec[k]; !ok || !isInt(v) {
			bad("%q = %v, want an integer", k, v)
		}
	}
	if fw, _ := rec["fw"].(float64); fw < 5000 {
		bad("fw %v: not a result format version 5000 value", rec["fw"])
	}
	if rec["type"] != "traceroute" {
		bad("type %v, want traceroute", rec["type"])
	}
	if rec["af"] != 4.0 {
		bad("af %v, want 4", rec["af"])
	}
	if p := rec["proto"]; p != "UDP" && p != "ICMP" && p != "TCP" {
		bad("proto %v: not UDP, ICMP or TCP", p)
	}
	for _, k := range []string{"dst_addr", "src_addr", "from"} {
		if !isAddr(rec[k]) {
			bad("%q = %v, want an IP address string", k, rec[k])
		}
	}
	if s, ok := rec["dst_name"].(string); !ok || s == "" {
		bad("dst_name %v, want a string", rec["dst_name"])
	}
	if s, ok := rec["msm_name"]; ok && s != "Traceroute" {
		bad("msm_name %v", s)
	}
	if ts, te := rec["timestamp"], rec["endtime"]; isInt(ts) && isInt(te) && te.(float64) < ts.(float64) {
		bad("endtime %v before timestamp %v", te, ts)
	}
	hops, ok := rec["result"].([]any)
	if !ok {
		bad("result %v, want a list", rec["result"])
	}
	last := 0
	for i, hv := range hops {
		h, ok := hv.(map[string]any)
		if !ok {
			bad("result[%d] not an object", i)
			continue
		}
		for k := range h {
			if k != "hop" && k != "result" && k != "error" {
				bad("result[%d]: field %q", i, k)
			}
		}
		n, _ := h["hop"].(float64)
		if !isInt(h["hop"]) || int(n) <= last || n > 255 {
			bad("result[%d].hop %v: want an increasing integer 1..255", i, h["hop"])
		}
		last = int(n)
		replies, ok := h["result"].([]any)
		if !ok || len(replies) == 0 {
			bad("hop %v: result %v, want a non-empty list", h["hop"], h["result"])
		}
		for j, rv := range replies {
			r, ok := rv.(map[string]any)
			if !ok {
				bad("hop %v reply %d: not an object", h["hop"], j)
				continue
			}
			if x, ok := r["x"]; ok {
				if x != "*" || len(r) != 1 {
					bad("hop %v reply %d: timeout %v, want exactly {\"x\": \"*\"}", h["hop"], j, r)
				}
				continue
			}
			if !isAddr(r["from"]) {
				bad("hop %v reply %d: from %v", h["hop"], j, r["from"])
			}
			if rtt, ok := r["rtt"].(float64); !ok || rtt < 0 {
				bad("hop %v reply %d: rtt %v, want a non-negative number", h["hop"], j, r["rtt"])
			}
			for _, k := range []string{"size", "ttl"} {
				if v, ok := r[k]; !ok || !isInt(v) || v.(float64) < 0 {
					bad("hop %v reply %d: %s %v, want an integer", h["hop"], j, k, v)
				}
			}
			if v, ok := r["ittl"]; ok && !isInt(v) {
				bad("hop %v reply %d: ittl %v", h["hop"], j, v)
			}
			if e, ok := r["err"]; ok {
				if s, isStr := e.(string); !(isStr && strings.Contains("NHPpAh", s) && len(s) == 1) && !isInt(e) {
					bad("hop %v reply %d: err %v, want N, H, P, p, A, h or a code", h["hop"], j, e)
				}
			}
			for k := range r {
				switch k {
				case "from", "rtt", "size", "ttl", "ittl", "err", "itos", "late", "mtu", "edst", "icmpext", "flags", "dup":
				case "traceflow": // tool-specific, as on the record
					if tf, ok := r[k].(map[string]any); !ok || len(tf) == 0 {
						bad("hop %v reply %d: traceflow %v, want a non-empty object", h["hop"], j, r[k])
					}
				default:
					bad("hop %v reply %d: field %q", h["hop"], j, k)
				}
			}
		}
	}
	return errs
}

// atlasTrace is a diamond seen by 4 path IDs: path 2 has a silent hop at
// TTL 2, path 3 is stopped by a net unreachable from 10.1.3.1, and path 4
// saw nothing.
func atlasTrace() *Trace {
	dst := netip.MustParseAddr("10.99.0.1")
	c := NewCollector(dst, "dest.example", netip.MustParseAddr("10.0.0.2"), 4, 8, 33452, 33452)
	hop := func(p, ttl int, a string, typ, code uint8) {
		c.Sent(p, ttl)
		c.Reply(p, ttl, netip.MustParseAddr(a), time.Duration(ttl*1000+p)*time.Microsecond, typ, code, a == dst.String())
	}
	for p := 1; p <= 2; p++ {
		hop(p, 1, "10.0.0.1", 11, 0)
		if p == 1 {
			hop(p, 2, "10.1.1.1", 11, 0)
		} else {
			c.Sent(p, 2)
		}
		hop(p, 3, "10.2.0.1", 11, 0)
		hop(p, 4, "10.99.0.1", 3, 3)
	}
	hop(3, 1, "10.0.0.1", 11, 0)
	hop(3, 2, "10.1.3.1", 3, 0)
	c.Sent(4, 1)
	start := time.Unix(1700000000, 250e6)
	return c.Trace(start, start.Add(1500*time.Millisecond), false)
}

func TestWriteAtlas(t *testing.T) {
	tr := atlasTrace()
	setDetails(tr, func(p, ttl int) (uint8, uint8, int) {
		if p == 1 && ttl == 4 {
			return 61, 2, 58
		}
		return uint8(65 - ttl), 1, 58
	})
	var b bytes.Buffer
	err := WriteAtlas(&b, tr, AtlasOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want one per path ID (4):\n%s", len(lines), b.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for _, e := range checkAtlasTraceroute(rec) {
			t.Errorf("line %d: %s", i+1, e)
		}
	}

	want := []string{
		`{"fw":5020,"lts":-1,"type":"traceroute","msm_id":0,"msm_name":"Traceroute","prb_id":0,"af":4,"proto":"UDP",` +
			`"from":"10.0.0.2","src_addr":"10.0.0.2","dst_addr":"10.99.0.1","dst_name":"dest.example","paris_id":33453,"size":2,` +
			`"timestamp":1700000000,"endtime":1700000001,"result":[` +
			`{"hop":1,"result":[{"from":"10.0.0.1","rtt":1.001,"size":30,"ttl":64}]},` +
			`{"hop":2,"result":[{"from":"10.1.1.1","rtt":2.001,"size":30,"ttl":63}]},` +
			`{"hop":3,"result":[{"from":"10.2.0.1","rtt":3.001,"size":30,"ttl":62}]},` +
			`{"hop":4,"result":[{"from":"10.99.0.1","rtt":4.001,"size":30,"ttl":61,"ittl":2}]}],` +
			`"traceflow":{"path_id":1,"src_port":33453,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":4,"partial":false}}`,
		`"result":[{"hop":1,"result":[{"from":"10.0.0.1","rtt":1.002,"size":30,"ttl":64}]},` +
			`{"hop":2,"result":[{"x":"*"}]},`,
		`"paris_id":33455,` +
			`"size":2,"timestamp":1700000000,"endtime":1700000001,"result":[` +
			`{"hop":1,"result":[{"from":"10.0.0.1","rtt":1.003,"size":30,"ttl":64}]},` +
			`{"hop":2,"result":[{"from":"10.1.3.1","rtt":2.003,"size":30,"ttl":63,"err":"N"}]}],` +
			`"traceflow":{"path_id":3,"src_port":33455,"dst_port":33452,"reached":false,"reached_ttl":0,"probed_ttl":2,"partial":false}}`,
		`"paris_id":33456,"size":2,"timestamp":1700000000,"endtime":1700000001,"result":[],` +
			`"traceflow":{"path_id":4,"src_port":33456,"dst_port":33452,"reached":false,"reached_ttl":0,"probed_ttl":1,"partial":false}}`,
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d:\n%s\nlacks\n%s", i+1, lines[i], w)
		}
	}
}

func TestWriteAtlasWithoutReplyDetails(t *testing.T) {
	tr := atlasTrace()
	var b bytes.Buffer
	if err := WriteAtlas(&b, tr, AtlasOptions{}); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(b.String(), "\n")
	if !strings.Contains(first, `{"hop":1,"result":[{"from":"10.0.0.1","rtt":1.001}]}`) {
		t.Errorf("without reply details a reply is from and rtt alone:\n%s", first)
	}
	// A trace read back from JSON Lines has no reply details either.
	var j bytes.Buffer
	if err := WriteJSON(&j, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	for back, err := range ReadJSON(&j) {
		if err != nil {
			t.Fatal(err)
		}
		var b2 bytes.Buffer
		if err := WriteAtlas(&b2, back, AtlasOptions{}); err != nil {
			t.Fatal(err)
		}
		if b2.String() != b.String() {
			t.Errorf("from JSON:\n%s\ndirect:\n%s", b2.String(), b.String())
		}
	}
}

// TestWriteAtlasASN checks the "traceflow" object of the replies: the AS
// and the IXP of the replying address, only when known.
func TestWriteAtlasASN(t *testing.T) {
	tr := atlasTrace()
	tr.HasASN = true
	for i := range tr.Flows {
		for j := range tr.Flows[i].Hops {
			h := &tr.Flows[i].Hops[j]
			switch h.Addr.String() {
			case "10.0.0.1":
				h.ASN = 64500
			case "10.1.1.1":
				h.ASN, h.IXP = 64501, "LAB-IX"
			case "10.2.0.1":
				h.IXP = "ONLY-IX"
			}
		}
	}
	var b bytes.Buffer
	setDetails(tr, func(p, ttl int) (uint8, uint8, int) { return uint8(65 - ttl), 1, 58 })
	if err := WriteAtlas(&b, tr, AtlasOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for _, e := range checkAtlasTraceroute(rec) {
			t.Errorf("line %d: %s", i+1, e)
		}
	}
	w := `"result":[{"hop":1,"result":[{"from":"10.0.0.1","rtt":1.001,"size":30,"ttl":64,"traceflow":{"asn":64500}}]},` +
		`{"hop":2,"result":[{"from":"10.1.1.1","rtt":2.001,"size":30,"ttl":63,"traceflow":{"asn":64501,"ixp":"LAB-IX"}}]},` +
		`{"hop":3,"result":[{"from":"10.2.0.1","rtt":3.001,"size":30,"ttl":62,"traceflow":{"ixp":"ONLY-IX"}}]},` +
		`{"hop":4,"result":[{"from":"10.99.0.1","rtt":4.001,"size":30,"ttl":61}]}]`
	if !strings.Contains(lines[0], w) {
		t.Errorf("line 1:\n%s\nlacks\n%s", lines[0], w)
	}
	if !strings.Contains(lines[1], `{"hop":2,"result":[{"x":"*"}]}`) {
		t.Errorf("silent hop with an AS object:\n%s", lines[1])
	}
	// The checker rejects an empty or non-object "traceflow" on a reply.
	for _, bad := range []string{`{}`, `64500`} {
		var rec map[string]any
		mustUnmarshal(t, []byte(strings.Replace(lines[0], `{"asn":64500}`, bad, 1)), &rec)
		if len(checkAtlasTraceroute(rec)) == 0 {
			t.Errorf("checker accepts a reply traceflow of %s", bad)
		}
	}
}

func TestAtlasErr(t *testing.T) {
	for code, want := range map[uint8]any{0: "N", 1: "H", 2: "P", 3: nil, 13: "A", 10: 10} {
		if got := atlasErr(code); got != want {
			t.Errorf("code %d: %v, want %v", code, got, want)
		}
	}
}

// setDetails gives every answered hop of tr the reply TTL, quoted TTL and
// size that f returns for it, as Collector.Details records them.
func setDetails(tr *Trace, f func(path, ttl int) (replyTTL, quotedTTL uint8, size int)) {
	for i := range tr.Flows {
		fl := &tr.Flows[i]
		for j := range fl.Hops {
			if h := &fl.Hops[j]; !h.Silent() {
				h.ReplyTTL, h.QuotedTTL, h.Size = f(fl.PathID, h.TTL)
			}
		}
	}
}

func TestCollectorDetails(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	c := NewCollector(dst, "", src, 4, 8, 33452, 33452)
	c.Sent(2, 3)
	c.Details(2, 3, 60, 1, 70) // before the reply: ignored
	if !c.Reply(2, 3, netip.MustParseAddr("10.0.0.3"), time.Millisecond, 11, 0, false) {
		t.Fatal("reply rejected")
	}
	c.Details(2, 3, 61, 2, 58)
	c.Details(9, 3, 61, 2, 58) // out of range: ignored
	tr := c.Trace(time.Unix(0, 0), time.Unix(1, 0), false)
	if len(tr.Flows) != 1 || tr.Flows[0].PathID != 2 || len(tr.Flows[0].Hops) != 3 {
		t.Fatalf("flows %+v (path ID 1 was never probed)", tr.Flows)
	}
	if h := tr.Flows[0].Hops[2]; h.ReplyTTL != 61 || h.QuotedTTL != 2 || h.Size != 58 {
		t.Errorf("hop %+v", h)
	}
	// Reset starts over with the same memory.
	c.Reset(src, "again")
	if tr := c.Trace(time.Unix(0, 0), time.Unix(1, 0), false); len(tr.Flows) != 0 || tr.Name != "again" || tr.Destination != src || tr.ProbesSent != 0 {
		t.Errorf("after Reset: %+v", tr)
	}
}

// TestAtlasCheckerCatchesMistakes makes sure the schema check fails the
// records it should.
func TestAtlasCheckerCatchesMistakes(t *testing.T) {
	var b bytes.Buffer
	tr := atlasTrace()
	setDetails(tr, func(int, int) (uint8, uint8, int) { return 64, 0, 58 })
	if err := WriteAtlas(&b, tr, AtlasOptions{}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&b)
	sc.Scan()
	good := sc.Text()
	for _, tc := range []struct{ from, to string }{
		{`"msm_id":0,`, ``},
		{`"fw":5020`, `"fw":"5020"`},
		{`"type":"traceroute"`, `"type":"ping"`},
		{`"paris_id":33453`, `"paris_id":33453.5`},
		{`"timestamp":1700000000`, `"timestamp":"2023-11-14"`},
		{`{"from":"10.1.1.1","rtt":2.001,"size":30,"ttl":64}`, `{"x":"*","from":"10.1.1.1"}`},
		{`{"from":"10.1.1.1","rtt":2.001,"size":30,"ttl":64}`, `{"from":"10.1.1.1","rtt":2.001}`},
		{`"traceflow":{`, `"path_id":1,"traceflow":{`},
		{`{"hop":2,`, `{"hop":1,`},
	} {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if bad == good {
			t.Fatalf("%q not in %s", tc.from, good)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(bad), &rec); err != nil {
			t.Fatal(err)
		}
		if errs := checkAtlasTraceroute(rec); len(errs) == 0 {
			t.Errorf("%q -> %q passed the check", tc.from, tc.to)
		}
	}
}
