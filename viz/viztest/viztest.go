// Package viztest drives the browser view of traceflow-fast in headless
// Chromium (Debian package chromium, through chromedp) for tests: it starts
// the browser with its network off, opens a page by its file:// URL as a
// user opens a file written by --format viz --output, evaluates JavaScript
// in it, and moves and clicks the mouse.
//
// Without Chromium the tests that use it skip, and with CI=true they fail
// instead (internal/testenv).
package viztest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// Chromium returns the browser's path: $CHROMIUM, or Debian's.
func Chromium(t testing.TB) string {
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

// Browser is one headless Chromium with its network off.
type Browser struct {
	Ctx context.Context
	mu  sync.Mutex
	// requests are the URLs the tab asked for, file:// ones included.
	requests []string
	close    func()
}

// Close stops the browser before the test ends.
func (b *Browser) Close() { b.close() }

// New starts Chromium in a fresh profile, with the flags that keep it from
// reaching out on its own (background networking, component updates,
// sync), and turns the network of its tab off. The browser is stopped when
// the test ends.
func New(t testing.TB, width, height int) *Browser {
	t.Helper()
	path := Chromium(t)
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
		chromedp.Flag("enable-precise-memory-info", true), // performance.memory, for the benchmarks
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{Ctx: ctx}
	b.close = sync.OnceFunc(func() {
		// Close the browser gracefully, so that it stops its helpers.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		acancel()
	})
	t.Cleanup(b.close)
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
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

// Open writes page to a file and opens it with OpenFile.
func (b *Browser) Open(t testing.TB, page []byte, timeout time.Duration) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "trace.html")
	if err := os.WriteFile(file, page, 0o644); err != nil {
		t.Fatal(err)
	}
	b.OpenFile(t, file, timeout)
}

// OpenFile opens the page in file by its file:// URL and waits at most
// timeout for the graph to be drawn. It fails the test when the page
// recorded an error or asked for anything but its own file.
func (b *Browser) OpenFile(t testing.TB, file string, timeout time.Duration) {
	t.Helper()
	url := "file://" + file
	start := time.Now()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("window.tfReady === true", chromedp.WithPollingTimeout(timeout))); err != nil {
		errs, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[[]string]("window.tfErrors || []"))
		t.Fatalf("the graph was not drawn within %v: %v (page errors %q)", timeout, err, errs)
	}
	if online, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool]("navigator.onLine")); err != nil || online {
		t.Errorf("the page is online (%v): its network should be off", err)
	}
	renderMS, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[int]("window.tfRenderMs"))
	size := int64(0)
	if fi, err := os.Stat(file); err == nil {
		size = fi.Size()
	}
	t.Logf("%d KiB page drawn in %v (script: %d ms)", size>>10, time.Since(start).Round(time.Millisecond), renderMS)
	errs, err := chromedp.Run(b.Ctx, chromedp.Evaluate[[]string]("window.tfErrors"))
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

// Eval evaluates a JavaScript expression and decodes its value into T.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// NodeXY returns where the node id of the page's network is in the
// window, in CSS pixels.
func NodeXY(t testing.TB, b *Browser, id string) [2]float64 {
	t.Helper()
	return Eval[[2]float64](t, b, fmt.Sprintf(`(() => {
	  const net = window.tfNetwork, p = net.canvasToDOM(net.getPositions([%q])[%[1]q]);
	  const r = document.getElementById('tf-graph').getBoundingClientRect();
	  return [r.left + p.x, r.top + p.y];
	})()`, id))
}

// Move moves the mouse to x, y, from a few pixels to its left.
func (b *Browser) Move(t testing.TB, x, y float64) {
	t.Helper()
	// The limit only stops a hung browser; a loaded machine may be slow.
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	for _, step := range []float64{-3, 0} {
		if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x+step, y)); err != nil {
			t.Fatal(err)
		}
	}
}

// Click clicks the left button at x, y.
func (b *Browser) Click(t testing.TB, x, y float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(x, y)); err != nil {
		t.Fatal(err)
	}
}

// Tooltip waits for the network's tooltip to show and returns its text.
func (b *Browser) Tooltip(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	tip, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
	  const el = document.querySelector('div.vis-tooltip');
	  return el && el.style.visibility !== 'hidden' && el.innerText.length > 0 ? el.innerText : null;
	})()`, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("no tooltip: %v", err)
	}
	return tip
}

// Type types text into the element with the id.
func (b *Browser) Type(t testing.TB, id, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID(id), text)); err != nil {
		t.Fatal(err)
	}
}

// Screenshot returns a PNG of the window.
func (b *Browser) Screenshot(t testing.TB) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	return shot
}
