package viz

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/viz/viztest"
)

// The browser tests open the page in headless Debian Chromium (package
// chromium) with its network off, as a user opens a file written by
// --format viz --output. Without Chromium, or without the vis-network
// library (neither built in with -tags visnetwork nor installed in
// viz/node_modules by `make viz-deps`), they skip, and with CI=true they
// fail instead.

// libPath is where `npm ci --prefix viz` puts the library that the
// visnetwork build embeds.
const libPath = "node_modules/vis-network/standalone/umd/vis-network.min.js"

// library returns the built-in library, or the one in viz/node_modules.
func library(t testing.TB) string {
	t.Helper()
	if Available() {
		return visNetworkJS
	}
	b, err := os.ReadFile(libPath)
	if err != nil {
		testenv.Skip(t, "vis-network is not built in and not installed: run make viz-deps ("+err.Error()+")")
	}
	return string(b)
}

// browser is headless Chromium with its network off (viztest).
type browser = viztest.Browser

func newBrowser(t testing.TB, width, height int) *browser { return viztest.New(t, width, height) }

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	return viztest.Eval[T](t, b, expr)
}

type drawnEdge struct {
	ID    string `json:"id"`
	From  string `json:"from"`
	To    string `json:"to"`
	Color string `json:"color"`
	Title string `json:"title"`
}

type drawn struct {
	Nodes  []string              `json:"nodes"`
	Labels map[string]string     `json:"labels"`
	Titles map[string]string     `json:"titles"`
	Edges  []drawnEdge           `json:"edges"`
	Bodies int                   `json:"bodies"` // nodes the network laid out
	Pos    map[string][2]float64 `json:"pos"`
	Canvas [2]int                `json:"canvas"`
}

// drawnJS reads what the vis Network holds.
const drawnJS = `(() => {
  const net = window.tfNetwork, nodes = net.body.data.nodes, edges = net.body.data.edges;
  const labels = {}, titles = {}, pos = {};
  nodes.forEach(n => { labels[n.id] = n.label; titles[n.id] = n.title; });
  const p = net.getPositions();
  for (const id in p) pos[id] = [p[id].x, p[id].y];
  const canvas = document.querySelector('#tf-graph canvas');
  return {
    nodes: nodes.getIds(), labels, titles, pos,
    edges: edges.get().map(e => ({id: e.id, from: e.from, to: e.to, color: e.color.color, title: e.title})),
    bodies: net.body.nodeIndices.length,
    canvas: canvas ? [canvas.width, canvas.height] : [0, 0],
  };
})()`

func TestBrowserDiamond(t *testing.T) {
	lib := library(t)
	b := newBrowser(t, 1280, 800)
	tr := diamondTrace()
	wantAS := ""
	for i := range tr.Flows {
		// The hops of branch 2 are in AS 64501 (when hops have an AS).
		if f := reflect.ValueOf(&tr.Flows[i].Hops[1]).Elem().FieldByName("ASN"); f.IsValid() && tr.Flows[i].PathID%4 == 2 {
			f.SetUint(64501)
			wantAS = "10.1.2.2   AS64501"
		}
	}
	d := Build([]*analysis.Trace{tr})
	page, err := render(d, lib)
	if err != nil {
		t.Fatal(err)
	}
	b.Open(t, page, 30*time.Second)

	got := eval[drawn](t, b, drawnJS)
	if want := nodeIDs(d); !slices.Equal(got.Nodes, want) {
		t.Fatalf("the network holds nodes %q, want %q", got.Nodes, want)
	}
	if got.Bodies != len(d.Nodes) || got.Canvas[0] < 100 || got.Canvas[1] < 100 {
		t.Errorf("%d nodes laid out on a %v canvas", got.Bodies, got.Canvas)
	}
	for _, n := range d.Nodes {
		if got.Labels[n.ID] != n.Label {
			t.Errorf("node %s: label %q, want %q", n.ID, got.Labels[n.ID], n.Label)
		}
	}
	if len(got.Edges) != 16 {
		t.Fatalf("%d edges, want 16: %+v", len(got.Edges), got.Edges)
	}
	// Each branch in its own colour, from r1 to the destination.
	colors := map[string]bool{}
	for b, mid := range diamondMiddle {
		var path []drawnEdge
		for _, e := range got.Edges {
			if (e.From == "10.0.0.1" && e.To == mid) || (e.From == mid && e.To == diamondThird[b]) || (e.From == diamondThird[b] && e.To == "10.99.0.1") {
				path = append(path, e)
			}
		}
		if len(path) != 3 || path[0].Color != path[1].Color || path[1].Color != path[2].Color {
			t.Errorf("branch %s: edges %+v, want 3 of one colour", mid, path)
			continue
		}
		colors[path[0].Color] = true
		if want := fmt.Sprintf("path %d of 4\npath IDs %d,%d,%d,%d", b+1, b+1, b+5, b+9, b+13); path[0].Title != want {
			t.Errorf("branch %s: edge title %q, want %q", mid, path[0].Title, want)
		}
	}
	if len(colors) != 4 {
		t.Errorf("the 4 branches have %d colours", len(colors))
	}
	// Left to right by TTL; the four branches one above the other.
	x := func(id string) float64 { return got.Pos[id][0] }
	order := []string{"source", "10.0.0.1", diamondMiddle[0], diamondThird[0], "10.99.0.1"}
	for i := 1; i < len(order); i++ {
		if !(x(order[i-1]) < x(order[i])) {
			t.Errorf("%s (x %v) is not left of %s (x %v)", order[i-1], x(order[i-1]), order[i], x(order[i]))
		}
	}
	ys := map[float64]bool{}
	for _, mid := range diamondMiddle {
		if x(mid) != x(diamondMiddle[0]) {
			t.Errorf("%s not at the x of TTL 2", mid)
		}
		ys[got.Pos[mid][1]] = true
	}
	if len(ys) != 4 {
		t.Errorf("the middle hops overlap: %v", got.Pos)
	}
	title := got.Titles["10.1.2.2"]
	for _, want := range []string{"10.1.2.2", "TTL 2", "RTT min/avg/max 0.206 / 0.224 / 0.242 ms", "path IDs 2,6,10,14"} {
		if !strings.Contains(title, want) {
			t.Errorf("tooltip of 10.1.2.2 %q lacks %q", title, want)
		}
	}
	if wantAS != "" && !strings.HasPrefix(title, wantAS+"\n") {
		t.Errorf("tooltip of 10.1.2.2 %q does not start with %q", title, wantAS)
	}
	if !strings.Contains(got.Titles["10.0.0.1"], "paths diverge here") || !strings.Contains(got.Titles["10.99.0.1"], "destination, paths converge here") {
		t.Errorf("tooltips of r1 %q and destination %q", got.Titles["10.0.0.1"], got.Titles["10.99.0.1"])
	}
	summary := eval[string](t, b, "document.getElementById('tf-summary').textContent")
	if summary != "4 distinct paths among 16 path IDs" {
		t.Errorf("summary %q", summary)
	}
	if hidden := eval[bool](t, b, "document.getElementById('tf-find').hidden"); !hidden {
		t.Error("search box shown for one destination")
	}

	// Hovering a hop shows its tooltip.
	tip := hover(t, b, "10.1.2.2", 0, 0)
	if !strings.Contains(tip, "10.1.2.2") || !strings.Contains(tip, "path IDs 2,6,10,14") {
		t.Errorf("tooltip shown on hover: %q", tip)
	}
}

// hover moves the mouse over a node, dx and dy pixels from its centre, and
// returns the text of the tooltip that appears.
func hover(t *testing.T, b *browser, id string, dx, dy float64) string {
	t.Helper()
	xy := viztest.NodeXY(t, b, id)
	b.Move(t, xy[0]+dx, xy[1]+dy)
	return b.Tooltip(t)
}

func TestBrowserUnionOf5000Nodes(t *testing.T) {
	lib := library(t)
	b := newBrowser(t, 1280, 800)
	ts := unionTraces(1247) // 4*1247 + 12 = 5000 nodes
	d := Build(ts)
	if len(d.Nodes) != 5000 {
		t.Fatalf("synthetic graph of %d nodes", len(d.Nodes))
	}
	page, err := render(d, lib)
	if err != nil {
		t.Fatal(err)
	}
	// Generous: it takes a few seconds; the point is that it finishes.
	b.Open(t, page, 90*time.Second)

	counts := eval[[3]int](t, b, `[tfNetwork.body.data.nodes.length, tfNetwork.body.data.edges.length, tfNetwork.body.nodeIndices.length]`)
	if counts != [3]int{5000, len(d.Edges), 5000} {
		t.Fatalf("the network holds %v nodes, edges, laid-out nodes; want 5000, %d, 5000", counts, len(d.Edges))
	}
	if n := eval[int](t, b, `document.querySelectorAll('#tf-dests option').length`); n != len(ts) {
		t.Errorf("%d destinations to search, want %d", n, len(ts))
	}
	if eval[bool](t, b, "document.getElementById('tf-find').hidden") {
		t.Error("no search box")
	}

	// The search box focuses a destination and selects its nodes.
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("tf-search"), "host1000.example\n")); err != nil {
		t.Fatal(err)
	}
	found, err := chromedp.Run(ctx, chromedp.Poll[string](`document.getElementById('tf-found').textContent || null`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "host1000.example (10.100.4.1): 2 distinct paths among 4 path IDs"; found != want {
		t.Errorf("search shows %q, want %q", found, want)
	}
	sel := eval[[]string](t, b, `tfNetwork.getSelectedNodes().sort()`)
	want := []string{"10.0.0.1", "10.100.4.1", "10.101.4.1", "10.102.4.1", "10.103.4.1", "10.200.0.1"}
	if !slices.Equal(sel, want) {
		t.Errorf("selected %q, want %q", sel, want)
	}
	t.Logf("search answered in %v", time.Since(start).Round(time.Millisecond))
	type focus struct {
		Dst   int     `json:"dst"`
		Node  *string `json:"node"`
		Nodes int     `json:"nodes"`
		Edges int     `json:"edges"`
	}
	f := eval[focus](t, b, `tfFocus('10.100.2.7')`)
	if f.Dst != 506 || f.Node == nil || *f.Node != "10.100.2.7" || f.Nodes != 6 || f.Edges != 8 {
		t.Errorf("tfFocus: %+v", f)
	}
	if f := eval[*focus](t, b, `tfFocus('10.1.1.1')`); f != nil {
		t.Errorf("tfFocus of an unknown destination: %+v", f)
	}
	// Still responsive.
	if n := eval[int](t, b, `tfNetwork.getSelectedNodes().length`); n != 0 {
		t.Errorf("%d nodes still selected after a search that found nothing", n)
	}
}

// TestScreenshot screenshots the page of the diamond, with a tooltip shown
// (on the page of several destinations, its largest group opened), into a
// temporary PNG. With $VIZ_SCREENSHOT_HTML and $VIZ_SCREENSHOT_PNG
// set (make viz-screenshot) it screenshots that page into that file.
func TestScreenshot(t *testing.T) {
	in, out := os.Getenv("VIZ_SCREENSHOT_HTML"), os.Getenv("VIZ_SCREENSHOT_PNG")
	var page []byte
	var err error
	if in != "" && out != "" {
		page, err = os.ReadFile(in)
	} else {
		out = filepath.Join(t.TempDir(), "diamond.png")
		page, err = render(Build([]*analysis.Trace{diamondTrace()}), library(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	width, height := 1100, 640
	if bytes.Contains(page, []byte(`,"groups":[`)) {
		height = 760 // the groups of a bulk scan, one above the other
	}
	b := newBrowser(t, width, height)
	b.Open(t, page, 30*time.Second)
	// In a small graph, show the tooltip of the highest hop of the second
	// TTL, where there is room above it; vis-network draws it above and
	// right of the pointer, so point at the node's upper right, to leave its
	// label in sight.
	id := eval[*string](t, b, `(() => {
	  const pos = tfNetwork.getPositions();
	  let best = null;
	  if (tfData.nodes.length > 100) return null;
	  tfData.nodes.forEach(n => { if (n.level === 2 && !n.silent && (best === null || pos[n.id].y < pos[best].y)) best = n.id; });
	  return best;
	})()`)
	switch {
	case eval[bool](t, b, "!!tfData.groups"):
		// Several destinations: the largest group opened by a click.
		g := eval[string](t, b, "tfData.groups.reduce((a, g) => g.count > a.count ? g : a).id")
		xy := viztest.NodeXY(t, b, g)
		b.Click(t, xy[0], xy[1])
	case id != nil:
		hover(t, b, *id, 28, -7)
	}
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width != width || cfg.Height < height/2 {
		t.Fatalf("screenshot: %+v, %v", cfg, err)
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%dx%d, %d KiB)", out, cfg.Width, cfg.Height, len(shot)>>10)
}
