package analysis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// checkJSONRoundTrip writes tr with WriteJSON, reads it back with ReadJSON
// and checks that the trace read is tr as the schema carries it
// (jsonSchemaDiff), field by field, and that DiffTraces sees no change
// between them. A trace WriteJSON refuses (checkWriteJSON compares that
// with encoding/json) is left alone. With an interface role the schema
// has no name for, ReadJSON must refuse the record instead; with a string
// that is not UTF-8 (written with U+FFFD), addresses may differ in their
// zones, so DiffTraces is not asked.
func checkJSONRoundTrip(tb testing.TB, tr *Trace) {
	tb.Helper()
	var b bytes.Buffer
	if WriteJSON(&b, tr, Options{}) != nil {
		return
	}
	badRole, badUTF8 := schemaEdges(tr)
	var back []*Trace
	for t2, err := range ReadJSON(bytes.NewReader(b.Bytes())) {
		if err != nil {
			if badRole && errors.Is(err, errIfRole) {
				return
			}
			tb.Fatalf("reading back what WriteJSON wrote: %v\n%s", err, b.Bytes())
		}
		back = append(back, t2)
	}
	if badRole {
		tb.Fatalf("ReadJSON took an interface role it has no name for\n%s", b.Bytes())
	}
	if len(back) != 1 {
		tb.Fatalf("read back %d traces, want 1\n%s", len(back), b.Bytes())
	}
	if diffs := jsonSchemaDiff(tr, back[0]); len(diffs) > 0 {
		tb.Fatalf("the trace read back differs from the one written:\n  %s\n%s", diffs, b.Bytes())
	}
	if badUTF8 {
		return
	}
	if d := DiffTraces([]*Trace{tr}, back, DiffOptions{}); d.Changed() || len(d.Destinations) != 1 {
		tb.Fatalf("DiffTraces between a trace and its JSON: %+v\n%s", d.Destinations, b.Bytes())
	}
}

// schemaEdges reports whether t holds an interface role the schema has no
// name for, and a string (zones included) that is not UTF-8.
func schemaEdges(t *Trace) (badRole, badUTF8 bool) {
	text := func(ss ...string) {
		for _, s := range ss {
			badUTF8 = badUTF8 || !utf8.ValidString(s)
		}
	}
	text(t.Name, t.Protocol, t.Destination.Zone(), t.Source.Zone())
	for _, pp := range t.PerPacket {
		for _, a := range pp.Addrs {
			text(a.Zone())
		}
	}
	for _, f := range t.Flows {
		for _, h := range f.Hops {
			if h.Silent() {
				text(h.RateLimited.Zone())
				continue
			}
			text(h.Addr.Zone(), h.IXP, h.Hostname)
			for _, in := range h.Interfaces {
				text(in.Addr.Zone(), in.Name)
				badRole = badRole || in.Role > probe.IfNextHop
			}
		}
	}
	return badRole, badUTF8
}

// jsonText is s as JSON carries it: encoding/json writes each byte that is
// not UTF-8 as U+FFFD.
func jsonText(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// jsonTime is t as JSON carries it: RFC 3339 text, whose offset from UTC
// is in whole minutes (encoding/json is the reference).
func jsonTime(t time.Time) time.Time {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err)
	}
	var out time.Time
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// jsonAddr is a as JSON carries it: its zone as text.
func jsonAddr(a netip.Addr) netip.Addr {
	if z := a.Zone(); z != "" {
		return a.WithZone(jsonText(z))
	}
	return a
}

// jsonMillis is d as "rtt_ms" and "duration_ms" carry it: milliseconds
// with three decimals.
func jsonMillis(d time.Duration) time.Duration {
	var m millis
	if err := m.UnmarshalJSON(appendMillis(nil, d)); err != nil {
		return -1 // not readable: ReadJSON must have failed first
	}
	return time.Duration(m)
}

// schemaHop is h as the schema carries it: a silent hop has its TTL, its
// rate-limited address and its unsettled mark only, an inferred one no RTT; the extension flags go
// with labels or interfaces, the quoted TOS with a TOS rewrite, and the
// reply's TTLs and size are not written.
func schemaHop(h Hop) Hop {
	if h.Silent() {
		return Hop{TTL: h.TTL, RateLimited: jsonAddr(h.RateLimited), Unsettled: h.Unsettled}
	}
	out := Hop{
		TTL: h.TTL, Addr: jsonAddr(h.Addr), ICMPType: h.ICMPType, ICMPCode: h.ICMPCode,
		ASN: h.ASN, IXP: jsonText(h.IXP), Hostname: jsonText(h.Hostname), Inferred: h.Inferred,
		MPLS:     slices.Clone(h.MPLS),
		Rewrites: h.Rewrites & (1<<len(rewriteNames) - 1),
	}
	if !h.Inferred {
		out.RTT = jsonMillis(h.RTT)
	}
	for _, in := range h.Interfaces {
		in.Addr, in.Name = jsonAddr(in.Addr), jsonText(in.Name)
		out.Interfaces = append(out.Interfaces, in)
	}
	if len(h.MPLS) > 0 || len(h.Interfaces) > 0 {
		out.ExtFlags = h.ExtFlags & (probe.ExtRFC4884 | probe.ExtTruncated)
	}
	if out.Rewrites&probe.RewriteTOS != 0 {
		out.QuotedTOS = h.QuotedTOS
	}
	return out
}

// jsonSchemaDiff compares got, read back from the JSON of want, with want
// as the schema carries it, and lists the fields that differ.
func jsonSchemaDiff(want, got *Trace) []string {
	var diffs []string
	check := func(field string, w, g any) {
		if !reflect.DeepEqual(w, g) {
			diffs = append(diffs, fmt.Sprintf("%s: %#v, want %#v", field, g, w))
		}
	}
	check("destination", jsonAddr(want.Destination), got.Destination)
	check("name", jsonText(want.Name), got.Name)
	check("source", jsonAddr(want.Source), got.Source)
	check("protocol", jsonText(want.Protocol), got.Protocol)
	check("counts", []int{want.MaxTTL, want.ProbesSent, want.Replies}, []int{got.MaxTTL, got.ProbesSent, got.Replies})
	check("partial, has ASN", [2]bool{want.Partial, want.HasASN}, [2]bool{got.Partial, got.HasASN})
	start := jsonTime(want.Start)
	_, wo := start.Zone()
	_, gto := got.Start.Zone()
	if !got.Start.Equal(start) || wo != gto {
		diffs = append(diffs, fmt.Sprintf("start: %v, want %v", got.Start, start))
	}
	check("duration", jsonMillis(want.End.Sub(want.Start)), got.End.Sub(got.Start))
	check("mda", schemaMDA(want.MDA, true), schemaMDA(got.MDA, false))
	check("per-packet hops", len(want.PerPacket), len(got.PerPacket))
	for i := range min(len(want.PerPacket), len(got.PerPacket)) {
		w := want.PerPacket[i]
		w.Addrs = slices.Clone(w.Addrs)
		for j, a := range w.Addrs {
			w.Addrs[j] = jsonAddr(a)
		}
		check(fmt.Sprint("per-packet hop ", i), w, got.PerPacket[i])
	}
	check("flows", len(want.Flows), len(got.Flows))
	for i := range min(len(want.Flows), len(got.Flows)) {
		w, g := want.Flows[i], got.Flows[i]
		where := fmt.Sprint("path ID ", w.PathID)
		check(where, []int{w.PathID, int(w.SrcPort), int(w.DstPort), w.ReachedTTL, w.ProbedTTL, len(w.Hops)},
			[]int{g.PathID, int(g.SrcPort), int(g.DstPort), g.ReachedTTL, g.ProbedTTL, len(g.Hops)})
		check(where+" reached", w.Reached, g.Reached)
		for j := range min(len(w.Hops), len(g.Hops)) {
			check(fmt.Sprintf("%s TTL %d", where, j+1), schemaHop(w.Hops[j]), g.Hops[j])
		}
	}
	return diffs
}

// schemaMDA is m as the schema carries it: no list of incomplete path IDs
// for an empty one, and with written, the confidence through the
// percentage JSON holds.
func schemaMDA(m *MDA, written bool) *MDA {
	if m == nil {
		return nil
	}
	out := *m
	if written {
		out.Confidence = m.Confidence * 100 / 100
	}
	if len(out.Incomplete) == 0 {
		out.Incomplete = nil
	}
	return &out
}

// TestJSONRoundTripReference checks that the traces of
// TestWriteJSONReference come back from their JSON as they went
// (checkJSONRoundTrip).
func TestJSONRoundTripReference(t *testing.T) {
	for name, tr := range referenceTraces(t) {
		t.Run(name, func(t *testing.T) { checkJSONRoundTrip(t, tr) })
	}
}

// TestMillisEnds checks that the longest durations WriteJSON writes read
// back as the longest a Duration holds, and that longer ones are errors.
func TestMillisEnds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"9223372036854.775":  math.MaxInt64,
		"-9223372036854.775": math.MinInt64,
		"0.0005":             500,
	} {
		var m millis
		if err := m.UnmarshalJSON([]byte(in)); err != nil || time.Duration(m) != want {
			t.Errorf("%s ms: %d ns, %v; want %d ns", in, int64(m), err, int64(want))
		}
	}
	for _, d := range []time.Duration{math.MaxInt64, math.MinInt64} {
		if got := jsonMillis(d); got != d {
			t.Errorf("%d ns: written %s, read back as %d ns", int64(d), appendMillis(nil, d), int64(got))
		}
	}
	for _, in := range []string{"9223372036854.777", "-9223372036854.777", "1e300", "NaN", `"1"`} {
		var m millis
		if err := m.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s ms: read as %d ns, want an error", in, int64(m))
		}
	}
}
