package viz

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Traces from fleet agents are one graph with a source node per agent:
// each agent's paths start at its own, and the destinations say whose
// they are; the page draws them all (not the grouped view of a scan).
func TestBuildVantages(t *testing.T) {
	east := diamondTrace()
	east.Vantage = "east"
	west := trace("10.99.0.1", "10.99.0.1", flow(1, "10.99.0.1", "10.5.0.1", "10.6.0.1", "10.99.0.1"))
	west.Vantage, west.Source = "west", netip.MustParseAddr("10.5.0.2")
	d := Build([]*analysis.Trace{east, west})
	if !slices.Equal(d.Vantages, []string{"east", "west"}) {
		t.Fatalf("Vantages = %q", d.Vantages)
	}
	for _, v := range []struct{ id, label, first string }{
		{"source:east", "agent east\n10.0.0.2", "10.0.0.1"},
		{"source:west", "agent west\n10.5.0.2", "10.5.0.1"},
	} {
		n := node(t, d, v.id)
		if !n.Source || n.Label != v.label || n.Vantage != strings.TrimPrefix(v.id, "source:") {
			t.Errorf("source node %+v, want label %q", n, v.label)
		}
		if len(edgesBetween(d, v.id, v.first)) == 0 {
			t.Errorf("no edge %s -> %s", v.id, v.first)
		}
	}
	if slices.Contains(nodeIDs(d), sourceID) || len(edgesBetween(d, "source:west", "10.0.0.1")) != 0 {
		t.Errorf("a vantage point's paths start at another's source: nodes %q", nodeIDs(d))
	}
	if len(d.Destinations) != 2 || d.Destinations[0].Vantage != "east" || d.Destinations[1].Vantage != "west" {
		t.Errorf("destinations %+v", d.Destinations)
	}
	if title(d) != "traceflow-fast from agents east, west" {
		t.Errorf("title %q", title(d))
	}
	page, err := renderTraces([]*analysis.Trace{east, west}, "/* library */")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `"vantages":["east","west"]`) || strings.Contains(string(page), `"groups"`) {
		t.Errorf("the page does not draw the union graph of the two agents")
	}
}

// In the browser, the page of two agents draws a source node per agent,
// each left of its own first hop, titled with the agents, and the
// tooltips name the vantage point.
func TestBrowserVantages(t *testing.T) {
	lib := library(t)
	b := newBrowser(t, 1280, 800)
	east := diamondTrace()
	east.Vantage = "east"
	west := trace("10.99.0.1", "10.99.0.1", flow(1, "10.99.0.1", "10.5.0.1", "10.6.0.1", "10.99.0.1"))
	west.Vantage, west.Source = "west", netip.MustParseAddr("10.5.0.2")
	page, err := renderTraces([]*analysis.Trace{east, west}, lib)
	if err != nil {
		t.Fatal(err)
	}
	b.Open(t, page, 30*time.Second)
	got := eval[drawn](t, b, drawnJS)
	if got.Labels["source:east"] != "agent east\n10.0.0.2" || got.Labels["source:west"] != "agent west\n10.5.0.2" {
		t.Errorf("source labels %q, %q", got.Labels["source:east"], got.Labels["source:west"])
	}
	for _, p := range [][2]string{{"source:east", "10.0.0.1"}, {"source:west", "10.5.0.1"}} {
		if !(got.Pos[p[0]][0] < got.Pos[p[1]][0]) {
			t.Errorf("%s is not left of %s: %v", p[0], p[1], got.Pos)
		}
	}
	if tip := got.Titles["source:west"]; !strings.HasPrefix(tip, "agent west 10.5.0.2\n") {
		t.Errorf("tooltip of west's source %q", tip)
	}
	if title := eval[string](t, b, "document.getElementById('tf-title').textContent"); title != "traceflow-fast from agents east, west to 10.99.0.1" {
		t.Errorf("title %q", title)
	}
}
