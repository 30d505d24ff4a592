package viz

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/viz/viztest"
)

// BenchmarkBulkPage measures the page of a scan of 254, 4,094 and 65,534
// destinations (scanTraces: a /24, a /20 and a /16 through the diamond4
// lab) in headless Chromium, and, for comparison, the page that drew every
// destination (Build's union graph) up to 4,094. With $VIZ_BENCH_JSON
// (--format json results, space separated) it measures their pages too.
// Per page: its size, the time from navigation to the first drawing, the
// Long Tasks API's longest task and total blocking time (the time over 50
// ms of every long task) while it loads, the JavaScript heap, and the time
// to open the largest group and to search a destination.
//
//	go test -tags visnetwork -run '^$' -bench BulkPage -benchtime 3x ./viz
func BenchmarkBulkPage(b *testing.B) {
	lib := library(b)
	b.Run("one", func(b *testing.B) { benchPage(b, []*analysis.Trace{diamondTrace()}, lib, true) })
	for _, n := range []int{254, 4094, 65534} {
		ts := scanTraces(n)
		b.Run(fmt.Sprintf("grouped/%d", n), func(b *testing.B) { benchPage(b, ts, lib, false) })
		if n <= 4094 {
			b.Run(fmt.Sprintf("union/%d", n), func(b *testing.B) { benchPage(b, ts, lib, true) })
		}
	}
	for _, f := range strings.Fields(os.Getenv("VIZ_BENCH_JSON")) {
		ts := readTraces(b, f)
		b.Run(fmt.Sprintf("grouped/%s", filepath.Base(f)), func(b *testing.B) { benchPage(b, ts, lib, false) })
	}
}

func readTraces(b *testing.B, name string) []*analysis.Trace {
	f, err := os.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var ts []*analysis.Trace
	for t, err := range analysis.ReadJSON(f) {
		if err != nil {
			b.Fatal(err)
		}
		ts = append(ts, t)
	}
	return ts
}

// pageLoad is what the page measured of itself.
type pageLoad struct {
	ReadyMS   float64   `json:"ready"`
	ScriptMS  float64   `json:"script"`
	LongTasks []float64 `json:"long"`
	HeapMB    float64   `json:"heap"`
	OpenMS    float64   `json:"open"`
	SearchMS  float64   `json:"search"`
}

// pageLoadJS opens the largest group and searches the last destination,
// timing both (with the drawing that follows), after the load.
const pageLoadJS = `(() => {
  const net = window.tfNetwork, d = window.tfData, out = { ready: window.tfReadyMs, script: window.tfRenderMs, heap: performance.memory.usedJSHeapSize / 1048576 };
  out.long = window.tfLongTasks.slice();
  if (d.groups) {
    let big = d.groups[0];
    d.groups.forEach(g => { if (g.count > big.count) big = g; });
    let t = performance.now();
    window.tfOpen(big.id);
    net.redraw();
    out.open = performance.now() - t;
    const last = d.groups[d.groups.length - 1];
    t = performance.now();
    window.tfFocus(last.member ? last.member[0] : last.prefixes[0].split('/')[0]);
    net.redraw();
    out.search = performance.now() - t;
  }
  return out;
})()`

func benchPage(b *testing.B, ts []*analysis.Trace, lib string, union bool) {
	start := time.Now()
	var page []byte
	var err error
	if union {
		page, err = render(Build(ts), lib)
	} else {
		page, err = renderTraces(ts, lib)
	}
	if err != nil {
		b.Fatal(err)
	}
	build := time.Since(start)
	file := filepath.Join(b.TempDir(), "page.html")
	if err := os.WriteFile(file, page, 0o644); err != nil {
		b.Fatal(err)
	}
	var ready, longest, blocking, heap, open, search float64
	b.ResetTimer()
	for i := range b.N {
		// A browser of its own for each load: a reload would find the
		// library compiled already.
		b.StopTimer()
		br := viztest.New(b, 1280, 800)
		b.StartTimer()
		br.OpenFile(b, file, 5*time.Minute)
		l := viztest.Eval[pageLoad](b, br, pageLoadJS)
		b.StopTimer()
		br.Close()
		b.StartTimer()
		ready += l.ReadyMS
		heap += l.HeapMB
		open += l.OpenMS
		search += l.SearchMS
		top := 0.0
		for _, d := range l.LongTasks {
			top = max(top, d)
			blocking += max(0, d-50)
		}
		longest += top
		if i == 0 {
			b.Logf("%d bytes; script from %v ms, drawn %v ms later; long tasks at load (ms): %v", len(page), l.ReadyMS-l.ScriptMS, l.ScriptMS, l.LongTasks)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(len(page))/1e6, "MB")
	b.ReportMetric(float64(build.Milliseconds()), "build-ms")
	b.ReportMetric(ready/n, "ready-ms")
	b.ReportMetric(longest/n, "longest-task-ms")
	b.ReportMetric(blocking/n, "blocking-ms")
	b.ReportMetric(heap/n, "heap-MB")
	if !union {
		b.ReportMetric(open/n, "open-ms")
		b.ReportMetric(search/n, "search-ms")
	}
}
