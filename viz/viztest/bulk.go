package viztest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Bulk is what CheckBulk saw of the page of several destinations.
type Bulk struct {
	Group   string // the id of the largest group
	Count   int    // its destinations
	Opened  int    // the nodes a click on it added
	Found   string // what the search box said of the destination searched
	Tooltip string // of a link between two routers
}

type bulkState struct {
	Nodes   int                   `json:"nodes"`
	Routers []string              `json:"routers"`
	Pos     map[string][2]float64 `json:"pos"` // in the canvas, CSS pixels
	Canvas  [2]float64            `json:"canvas"`
	Group   string                `json:"group"`
	Count   int                   `json:"count"`
	Label   string                `json:"label"`
	Parsed  int                   `json:"parsed"`
}

// bulkStateJS reads the network of the page: its nodes, where the routers
// and the largest group are drawn, the group's label.
const bulkStateJS = `(() => {
  const net = window.tfNetwork, d = window.tfData, pos = {};
  let big = d.groups[0];
  d.groups.forEach(g => { if (g.count > big.count) big = g; });
  const ids = d.nodes.map(n => n.id).concat([big.id]), p = net.getPositions(ids);
  ids.forEach(id => { const c = net.canvasToDOM(p[id]); pos[id] = [c.x, c.y]; });
  const el = document.getElementById('tf-graph');
  return {
    nodes: net.body.data.nodes.length, routers: d.nodes.map(n => n.id), pos,
    canvas: [el.clientWidth, el.clientHeight], group: big.id, count: big.count,
    label: net.body.data.nodes.get(big.id).label, parsed: window.tfMembersParsed(),
  };
})()`

// CheckBulk checks the page of several destinations open in b (the
// grouped view of viz.BuildBulk), as a user sees it: at load the router
// graph and the largest group are in the window and the members are not
// parsed yet; the group's node shows its count; a click opens it and
// another closes it; the search box finds the destination search, opens
// its group down to it and selects it; hovering a link between two
// routers lists the destinations it carries.
func CheckBulk(t testing.TB, b *Browser, search string) Bulk {
	t.Helper()
	st := Eval[bulkState](t, b, bulkStateJS)
	if st.Parsed != 0 {
		t.Errorf("the members of %d groups were parsed at load", st.Parsed)
	}
	for id, p := range st.Pos {
		if p[0] < 0 || p[1] < 0 || p[0] > st.Canvas[0] || p[1] > st.Canvas[1] {
			t.Errorf("node %s at %v, outside the %v window", id, p, st.Canvas)
		}
	}
	if want := regexp.MustCompile(`\b` + thousands(st.Count) + ` destinations\b`); !want.MatchString(st.Label) {
		t.Errorf("group %s of %d destinations is labelled %q", st.Group, st.Count, st.Label)
	}
	out := Bulk{Group: st.Group, Count: st.Count}

	// A click on the group opens it, another closes it.
	xy := NodeXY(t, b, st.Group)
	b.Click(t, xy[0], xy[1])
	after := Eval[int](t, b, "tfNetwork.body.data.nodes.length")
	out.Opened = after - st.Nodes
	if !Eval[bool](t, b, fmt.Sprintf("tfIsOpen(%q)", st.Group)) || out.Opened < 2 || out.Opened > 64 {
		t.Errorf("a click on %s added %d nodes (open: %v)", st.Group, out.Opened, Eval[bool](t, b, fmt.Sprintf("tfIsOpen(%q)", st.Group)))
	}
	if label := Eval[string](t, b, fmt.Sprintf("tfNetwork.body.data.nodes.get(%q).label", st.Group)); !strings.HasPrefix(label, "\u25be ") {
		t.Errorf("open group labelled %q", label)
	}
	xy = NodeXY(t, b, st.Group)
	b.Click(t, xy[0], xy[1])
	if n := Eval[int](t, b, "tfNetwork.body.data.nodes.length"); n != st.Nodes || Eval[bool](t, b, fmt.Sprintf("tfIsOpen(%q)", st.Group)) {
		t.Errorf("a second click left %d nodes, want %d", n, st.Nodes)
	}

	out.Tooltip = HoverLink(t, b)
	out.Found = checkSearch(t, b, search)
	return out
}

// checkSearch types addr in the search box and checks that its node is
// drawn, selected, with the routers of its paths.
func checkSearch(t testing.TB, b *Browser, addr string) string {
	t.Helper()
	b.Type(t, "tf-search", addr+"\n")
	found := Eval[string](t, b, "document.getElementById('tf-found').textContent")
	if !strings.HasPrefix(found, addr+": ") {
		t.Errorf("the search for %s says %q", addr, found)
	}
	type sel struct {
		Nodes []string `json:"nodes"`
		Label string   `json:"label"`
		In    bool     `json:"in"`
	}
	s := Eval[sel](t, b, `(() => {
	  const net = window.tfNetwork, nodes = net.getSelectedNodes(), last = nodes[nodes.length - 1];
	  const n = net.body.data.nodes.get(last), c = net.canvasToDOM(net.getPositions([last])[last]);
	  const el = document.getElementById('tf-graph');
	  return { nodes, label: n ? n.label : '', in: c.x >= 0 && c.y >= 0 && c.x <= el.clientWidth && c.y <= el.clientHeight };
	})()`)
	routers := 0
	for _, id := range s.Nodes {
		if regexp.MustCompile(`^[0-9a-f.:]+(@\d+)?$`).MatchString(id) {
			routers++
		}
	}
	if !strings.HasPrefix(s.Label, addr) || !s.In || routers == 0 {
		t.Errorf("after the search for %s: selected %q, the last labelled %q (in the window: %v)", addr, s.Nodes, s.Label, s.In)
	}
	return found
}

// HoverLink hovers the middle of a link between two routers of the page of
// several destinations, the only link between them (the lowest in the
// window, where its tooltip hides the least), and returns its tooltip,
// which must count the destinations it carries and name the first.
func HoverLink(t testing.TB, b *Browser) string {
	t.Helper()
	xy := Eval[*[2]float64](t, b, `(() => {
	  const net = window.tfNetwork, d = window.tfData, router = {};
	  d.nodes.forEach(n => { if (!n.source) router[n.id] = true; });
	  const count = {};
	  d.edges.forEach(e => { const k = e.from + '>' + e.to; count[k] = (count[k] || 0) + 1; });
	  const el = document.getElementById('tf-graph').getBoundingClientRect();
	  let best = null;
	  for (const e of d.edges) {
	    if (!router[e.from] || !router[e.to] || count[e.from + '>' + e.to] !== 1) continue;
	    const p = net.getPositions([e.from, e.to]);
	    const m = net.canvasToDOM({ x: (p[e.from].x + p[e.to].x) / 2, y: (p[e.from].y + p[e.to].y) / 2 });
	    if (net.getEdgeAt(m) === e.id && m.y < el.height && (best === null || m.y > best[1] - el.top)) best = [el.left + m.x, el.top + m.y];
	  }
	  return best;
	})()`)
	if xy == nil {
		t.Error("no link between two routers to hover")
		return ""
	}
	b.Move(t, xy[0], xy[1])
	tip := b.Tooltip(t)
	checkLinkTitle(t, tip)
	return tip
}

// checkLinkTitle checks the tooltip of a link: the destinations and path
// IDs it carries, the first 8 destinations with their path IDs, and how
// many more.
func checkLinkTitle(t testing.TB, tip string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(tip), "\n")
	m := regexp.MustCompile(`^(?:router path \d+|\d+ router paths): ([\d,]+) destinations?, [\d,]+ path IDs?$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Errorf("tooltip of a link: %q", tip)
		return
	}
	n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
	named := min(n, 8)
	want := 1 + named
	if n > named {
		want++
		if last := lines[len(lines)-1]; last != fmt.Sprintf("... and %s more destination%s", thousands(n-named), map[bool]string{true: "", false: "s"}[n-named == 1]) {
			t.Errorf("tooltip of a link ends with %q", last)
		}
	}
	if len(lines) != want {
		t.Errorf("tooltip of a link of %d destinations has %d lines, want %d: %q", n, len(lines), want, tip)
		return
	}
	for _, l := range lines[1 : 1+named] {
		if !regexp.MustCompile(`^[0-9a-f.:]+: path IDs [0-9,-]+$`).MatchString(l) {
			t.Errorf("tooltip of a link: line %q", l)
		}
	}
}

// thousands writes n with a comma every three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
