package tui

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/asn"
	"github.com/traceflow-fast/traceflow-fast/annotate"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

func TestParseKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Key
	}{
		{"q", []Key{KeyQuit}},
		{"\x03", []Key{KeyQuit}},
		{"pd?", []Key{KeyPause, KeyToggle, KeyHelp}},
		{"\x1b[A\x1b[B\x1b[C\x1b[D", []Key{KeyUp, KeyDown, KeyRight, KeyLeft}},
		{"\x1bOA\x1bOD", []Key{KeyUp, KeyLeft}},
		{"\x1b[5~\x1b[6~\x1b[H\x1b[1~", []Key{KeyPageUp, KeyPageDown, KeyHome, KeyHome}},
		{"x\x1b[3~n", []Key{KeyNone, KeyNone, KeyNext}},
		{"\x1b", []Key{KeyNone}},
	} {
		if got := ParseKeys([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("ParseKeys(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The keys of the view change what Render draws: help, pause, the rows
// by path ID, the scroll, which stops at the ends.
func TestKeysChangeTheScreen(t *testing.T) {
	r := simulate(t, "diamond8", tracer.Config{Paths: 32})
	s := r.state.Snapshot(0)
	const w, h = 80, 24
	var v View
	first := Render(s, v, w, h)
	if !strings.HasPrefix(first[2], "TTL") || !strings.Contains(first[1], "distinct paths among 32 path IDs") {
		t.Fatalf("screen:\n%s", strings.Join(first, "\n"))
	}
	if v.Handle(KeyHelp, s, w, h) || !strings.Contains(strings.Join(Render(s, v, w, h), "\n"), "pause the screen") {
		t.Errorf("? does not show the help")
	}
	if v.Handle(KeyDown, s, w, h) || v.Help || v.Top != 0 {
		t.Errorf("a key on the help screen: help %v top %d, want it closed, nothing else", v.Help, v.Top)
	}
	v.Handle(KeyUp, s, w, h)
	if v.Top != 0 {
		t.Errorf("up at the top: top %d", v.Top)
	}
	for range 100 {
		v.Handle(KeyDown, s, w, h)
	}
	rows := len(Rows(s, false))
	shown := (h - headLines - footLines) / rowLines
	if v.Top != rows-shown {
		t.Errorf("down 100 times over %d rows, %d shown: top %d, want %d", rows, shown, v.Top, rows-shown)
	}
	last := Render(s, v, w, h)
	if want := "path " + strconv.Itoa(rows); !strings.HasPrefix(last[headLines+(shown-1)*rowLines], want) {
		t.Errorf("scrolled to the end, the last row shown is not %q:\n%s", want, strings.Join(last, "\n"))
	}
	v.Handle(KeyHome, s, w, h)
	v.Handle(KeyToggle, s, w, h)
	byID := Render(s, v, w, h)
	if !v.ByID || !strings.HasPrefix(byID[headLines], "id 1") || !strings.Contains(byID[1], "32 path IDs") {
		t.Errorf("d: rows by path ID expected:\n%s", strings.Join(byID, "\n"))
	}
	v.Handle(KeyPause, s, w, h)
	if !v.Paused || !strings.Contains(Render(s, v, w, h)[1], "PAUSED") {
		t.Errorf("p does not pause")
	}
	if !v.Handle(KeyQuit, s, w, h) {
		t.Errorf("q does not quit")
	}
}

// A screen below the smallest size says so, within its size; one of the
// smallest size still shows the first row.
func TestRenderSmallScreens(t *testing.T) {
	s := simulate(t, "diamond4", tracer.Config{Paths: 4}).state.Snapshot(0)
	tiny := Render(s, View{}, 30, 5)
	checkSize(t, tiny, 30, 5)
	if !strings.HasPrefix(tiny[0], "terminal too small") {
		t.Errorf("30x5: %q", tiny)
	}
	small := Render(s, View{}, MinWidth, MinHeight)
	checkSize(t, small, MinWidth, MinHeight)
	if !strings.HasPrefix(small[headLines], "path 1") || !strings.Contains(small[headLines], "10.0.0.1") {
		t.Errorf("%dx%d:\n%s", MinWidth, MinHeight, strings.Join(small, "\n"))
	}
}

// The diamond's first router is where its paths diverge, the
// destination where they converge; nothing else is marked.
func TestRenderMarksDivergeAndConverge(t *testing.T) {
	r := simulate(t, "diamond4", tracer.Config{Paths: 16})
	rows := readScreen(t, r.state.Snapshot(0), View{}, 120, 40)
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	for _, row := range rows {
		for ttl, h := range row.hops {
			want := strings.Trim(h, "<>")
			switch ttl {
			case 1:
				want += "<"
			case 4:
				want = ">" + want
			}
			if h != want {
				t.Errorf("%s TTL %d: %q, want %q", row.label, ttl, h, want)
			}
		}
	}
}

// What is written while the view is up comes out, in order, once it is
// released; later writes go straight through.
func TestHeldWriter(t *testing.T) {
	var out bytes.Buffer
	h := newHeld(&out)
	h.Write([]byte("zero\n"))
	h.hold()
	h.Write([]byte("time=x level=INFO msg=one\n"))
	h.Write([]byte("two\nthree"))
	if out.String() != "zero\n" || h.lastLine() != "time=x level=INFO msg=one" || trimTime(h.lastLine()) != "level=INFO msg=one" {
		t.Fatalf("held: %q written, last line %q", out.String(), h.lastLine())
	}
	if err := h.release(); err != nil {
		t.Fatal(err)
	}
	h.Write([]byte("\nfour\n"))
	if got := out.String(); got != "zero\ntime=x level=INFO msg=one\ntwo\nthree\nfour\n" {
		t.Errorf("released: %q", got)
	}
}

// Once the result is annotated, the hops show their AS (and host name):
// the view draws what annotate added, at the hops it belongs to.
func TestRenderShowsAnnotations(t *testing.T) {
	r := simulate(t, "diamond4", tracer.Config{Paths: 16})
	db, err := asn.Read(strings.NewReader("10.0.0.0\t24\t64500\n10.99.0.0\t20\t64599\n"), asn.Pfx2AS)
	if err != nil {
		t.Fatal(err)
	}
	(&annotate.Annotator{ASN: db}).Apply(context.Background(), []*analysis.Trace{r.trace})
	for _, v := range []View{{}, {ByID: true}} {
		rows := readScreen(t, r.state.Snapshot(0), v, 120, 40)
		if len(rows) == 0 {
			t.Fatal("no rows shown")
		}
		for _, row := range rows {
			for ttl := range row.hops {
				want := map[int]string{1: "AS64500", 4: "AS64599"}[ttl]
				if row.names[ttl] != want {
					t.Errorf("%s TTL %d (%s): %q after the address, want %q", row.label, ttl, row.hops[ttl], row.names[ttl], want)
				}
			}
		}
	}
}
