package viz

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
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

// chromium returns the browser's path: $CHROMIUM, or Debian's.
func chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		testenv.Skip(t, "the browser tests need Chromium (Debian package chromium): "+err.Error())
	}
	return path
}

// browser is one headless Chromium with its network off.
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	// requests are the URLs the tab asked for, file:// ones included.
	requests []string
}

// newBrowser starts Chromium in a fresh profile, with the flags that keep it
// from reaching out on its own (background networking, component updates,
// sync), and turns the network of its tab off. The browser is stopped when
// the test ends.
func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser gracefully, so that it stops its helpers.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		acancel()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	b := &browser{ctx: ctx}
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.requests = append(b.requests, ev.Request.URL)
			b.mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	offline := []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: offline}); err != nil {
		t.Fatalf("network off: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatalf("network off: %v", err)
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	return b
}

// open writes page to a file, opens it by its file:// URL and waits at most
// timeout for the graph to be drawn. It fails the test when the page
// recorded an error or asked for anything but its own file.
func (b *browser) open(t *testing.T, page []byte, timeout time.Duration) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "trace.html")
	if err := os.WriteFile(file, page, 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + file
	start := time.Now()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("window.tfReady === true", chromedp.WithPollingTimeout(timeout))); err != nil {
		errs, _ := chromedp.Run(b.ctx, chromedp.Evaluate[[]string]("window.tfErrors || []"))
		t.Fatalf("the graph was not drawn within %v: %v (page errors %q)", timeout, err, errs)
	}
	if online, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("navigator.onLine")); err != nil || online {
		t.Errorf("the page is online (%v): its network should be off", err)
	}
	renderMS, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int]("window.tfRenderMs"))
	t.Logf("%d KiB page drawn in %v (script: %d ms)", len(page)>>10, time.Since(start).Round(time.Millisecond), renderMS)
	errs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string]("window.tfErrors"))
	if err != nil || len(errs) > 0 {
		t.Errorf("page errors %q (%v)", errs, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Contains(b.requests, url) {
		t.Errorf("the request monitor missed the page itself: %q", b.requests)
	}
	for _, u := range b.requests {
		if u != url && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page asked for %s", u)
		}
	}
	b.requests = nil
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
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
	b.open(t, page, 30*time.Second)

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
	xy := eval[[2]float64](t, b, fmt.Sprintf(`(() => {
	  const net = window.tfNetwork, p = net.canvasToDOM(net.getPositions([%q])[%[1]q]);
	  const r = document.getElementById('tf-graph').getBoundingClientRect();
	  return [r.left + p.x, r.top + p.y];
	})()`, id))
	xy[0], xy[1] = xy[0]+dx, xy[1]+dy
	// The limits only stop a hung browser; a loaded machine may be slow.
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	for _, step := range []float64{-3, 0} { // a move onto the node, from beside it
		if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, xy[0]+step, xy[1])); err != nil {
			t.Fatal(err)
		}
	}
	tip, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
	  const el = document.querySelector('div.vis-tooltip');
	  return el && el.style.visibility !== 'hidden' && el.innerText.length > 0 ? el.innerText : null;
	})()`, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("no tooltip on hovering %s at %v: %v", id, xy, err)
	}
	return tip
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
	b.open(t, page, 90*time.Second)

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
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
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

// TestScreenshot screenshots the page of the diamond, with a tooltip shown,
// into a temporary PNG. With $VIZ_SCREENSHOT_HTML and $VIZ_SCREENSHOT_PNG
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
	const width, height = 1100, 640
	b := newBrowser(t, width, height)
	b.open(t, page, 30*time.Second)
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
	if id != nil {
		hover(t, b, *id, 28, -7)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
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
