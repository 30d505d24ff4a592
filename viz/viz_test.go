package viz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

var testStart = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// flow builds the flow of one path ID from its hop addresses at TTL 1, 2,
// ...; "*" is a silent hop. It reached the destination when its last hop is
// dst.
func flow(pathID int, dst string, hops ...string) analysis.Flow {
	f := analysis.Flow{PathID: pathID, SrcPort: uint16(33452 + pathID), DstPort: 33452, ProbedTTL: len(hops)}
	for i, h := range hops {
		hop := analysis.Hop{TTL: i + 1}
		if h != "*" {
			hop.Addr = netip.MustParseAddr(h)
			hop.RTT = time.Duration(i+1)*100*time.Microsecond + time.Duration(pathID)*3*time.Microsecond
			hop.ICMPType = 11
		}
		f.Hops = append(f.Hops, hop)
	}
	if hops[len(hops)-1] == dst {
		f.Reached, f.ReachedTTL = true, len(hops)
		f.Hops[len(hops)-1].ICMPType, f.Hops[len(hops)-1].ICMPCode = 3, 3
	}
	return f
}

func trace(dst, name string, flows ...analysis.Flow) *analysis.Trace {
	t := &analysis.Trace{
		Destination: netip.MustParseAddr(dst),
		Name:        name,
		Source:      netip.MustParseAddr("10.0.0.2"),
		Protocol:    "udp",
		MaxTTL:      30,
		Flows:       flows,
		Start:       testStart,
		End:         testStart.Add(3 * time.Millisecond),
	}
	for _, f := range flows {
		t.ProbesSent += len(f.Hops)
		for _, h := range f.Hops {
			if !h.Silent() {
				t.Replies++
			}
		}
	}
	return t
}

// diamondMiddle are the four ECMP routers of the diamond4 lab, as they
// answer TTL 2; diamondThird, their links into r3 at TTL 3.
var (
	diamondMiddle = []string{"10.1.1.2", "10.1.2.2", "10.1.3.2", "10.1.4.2"}
	diamondThird  = []string{"10.2.1.2", "10.2.2.2", "10.2.3.2", "10.2.4.2"}
)

// diamondTrace is what 16 path IDs see of the diamond4 lab: path ID p takes
// the branch (p-1) mod 4.
func diamondTrace() *analysis.Trace {
	var flows []analysis.Flow
	for p := 1; p <= 16; p++ {
		b := (p - 1) % 4
		flows = append(flows, flow(p, "10.99.0.1", "10.0.0.1", diamondMiddle[b], diamondThird[b], "10.99.0.1"))
	}
	return trace("10.99.0.1", "10.99.0.1", flows...)
}

// unionTraces returns n traces of a bulk scan whose union graph has 4n+12
// nodes (n >= 10): every destination is reached through r1 (10.0.0.1), one of ten
// aggregation routers, a 2-way ECMP pair of its own and one more router of
// its own.
func unionTraces(n int) []*analysis.Trace {
	var ts []*analysis.Trace
	for i := range n {
		x, y := i/250, i%250+1
		dst := fmt.Sprintf("10.100.%d.%d", x, y)
		agg := fmt.Sprintf("10.200.%d.1", i%10)
		a := fmt.Sprintf("10.101.%d.%d", x, y)
		b := fmt.Sprintf("10.102.%d.%d", x, y)
		last := fmt.Sprintf("10.103.%d.%d", x, y)
		var flows []analysis.Flow
		for p := 1; p <= 4; p++ {
			mid := a
			if p%2 == 0 {
				mid = b
			}
			flows = append(flows, flow(p, dst, "10.0.0.1", agg, mid, last, dst))
		}
		ts = append(ts, trace(dst, fmt.Sprintf("host%d.example", i), flows...))
	}
	return ts
}

func nodeIDs(d *Data) []string {
	var ids []string
	for _, n := range d.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func node(t *testing.T, d *Data, id string) *Node {
	t.Helper()
	for i := range d.Nodes {
		if d.Nodes[i].ID == id {
			return &d.Nodes[i]
		}
	}
	t.Fatalf("no node %q among %q", id, nodeIDs(d))
	return nil
}

// edgesBetween returns the edges from -> to.
func edgesBetween(d *Data, from, to string) []Edge {
	var out []Edge
	for _, e := range d.Edges {
		if e.From == from && e.To == to {
			out = append(out, e)
		}
	}
	return out
}

func TestBuildDiamond(t *testing.T) {
	d := Build([]*analysis.Trace{diamondTrace()})
	want := append(append(append([]string{"source", "10.0.0.1"}, diamondMiddle...), diamondThird...), "10.99.0.1")
	if got := nodeIDs(d); !slices.Equal(got, want) {
		t.Fatalf("nodes %q, want %q", got, want)
	}
	if d.Source != "10.0.0.2" || len(d.Destinations) != 1 {
		t.Fatalf("source %q, destinations %+v", d.Source, d.Destinations)
	}
	dst := d.Destinations[0]
	if dst.Node != "10.99.0.1" || !dst.Reached || len(dst.Paths) != 4 || dst.Summary != "4 distinct paths among 16 path IDs" {
		t.Errorf("destination %+v", dst)
	}
	levels := map[string]int{"source": 0, "10.0.0.1": 1, "10.1.3.2": 2, "10.2.3.2": 3, "10.99.0.1": 4}
	for id, lvl := range levels {
		if n := node(t, d, id); n.Level != lvl {
			t.Errorf("%s: level %d, want %d", id, n.Level, lvl)
		}
	}
	r1, dn := node(t, d, "10.0.0.1"), node(t, d, "10.99.0.1")
	if !r1.Diverge || r1.Converge || r1.Destination {
		t.Errorf("r1 %+v: want diverge only", r1)
	}
	if !dn.Converge || !dn.Destination || dn.Diverge {
		t.Errorf("destination node %+v: want converge and destination", dn)
	}
	if src := node(t, d, "source"); !src.Source || src.Label != "source\n10.0.0.2" {
		t.Errorf("source node %+v", src)
	}

	// A middle hop: its TTL, RTTs and path IDs, for the tooltip.
	m := node(t, d, "10.1.2.2")
	if len(m.Via) != 1 || m.Via[0].TTL != 2 || !slices.Equal(m.Via[0].PathIDs, []int{2, 6, 10, 14}) {
		t.Errorf("10.1.2.2 via %+v", m.Via)
	}
	if m.RTT == nil || m.RTT.Min != 0.206 || m.RTT.Max != 0.242 || m.RTT.Avg != 0.224 {
		t.Errorf("10.1.2.2 RTT %+v, want 0.206/0.224/0.242", m.RTT)
	}

	// An edge per link and distinct path: the 4 paths share source -> r1
	// and r3 -> destination only in name (r3 answers from 4 addresses).
	if len(d.Edges) != 16 {
		t.Errorf("%d edges, want 16", len(d.Edges))
	}
	if es := edgesBetween(d, "source", "10.0.0.1"); len(es) != 4 {
		t.Errorf("source -> r1: %d edges, want one per distinct path", len(es))
	}
	for b, mid := range diamondMiddle {
		es := edgesBetween(d, "10.0.0.1", mid)
		if len(es) != 1 || len(es[0].Paths) != 1 {
			t.Fatalf("r1 -> %s: %+v", mid, es)
		}
		p := es[0].Paths[0]
		if p.Dst != 0 || p.Path != b || !slices.Equal(p.PathIDs, []int{b + 1, b + 5, b + 9, b + 13}) {
			t.Errorf("r1 -> %s: %+v", mid, p)
		}
		if es := edgesBetween(d, diamondThird[b], "10.99.0.1"); len(es) != 1 || es[0].Paths[0].Path != b {
			t.Errorf("%s -> destination: %+v", diamondThird[b], es)
		}
	}
}

func TestBuildSilentHopsArePlaceholdersOfTheirOwn(t *testing.T) {
	tr := trace("10.99.0.1", "dst.example",
		flow(1, "10.99.0.1", "10.0.0.1", "*", "10.99.0.1"),
		flow(2, "10.99.0.1", "10.0.0.1", "*", "10.99.0.1"),
		flow(3, "10.99.0.1", "10.0.0.1", "10.1.3.2", "10.99.0.1"),
	)
	d := Build([]*analysis.Trace{tr})
	var silent []string
	for _, n := range d.Nodes {
		if n.Silent {
			silent = append(silent, n.ID)
			if n.Label != "*" || n.Addr != "" || n.RTT != nil || n.Level != 2 {
				t.Errorf("silent node %+v", n)
			}
		}
	}
	if !slices.Equal(silent, []string{"*0.1", "*0.2"}) {
		t.Fatalf("silent nodes %q, want two placeholders", silent)
	}
	for _, id := range silent {
		if len(edgesBetween(d, "10.0.0.1", id)) != 1 || len(edgesBetween(d, id, "10.99.0.1")) != 1 {
			t.Errorf("%s is not between r1 and the destination", id)
		}
	}
	if n := node(t, d, "10.99.0.1"); n.Label != "10.99.0.1\ndst.example" {
		t.Errorf("destination label %q", n.Label)
	}
}

func TestBuildUnionMergesSharedHops(t *testing.T) {
	ts := unionTraces(3)
	d := Build(ts)
	if got, want := len(d.Nodes), 2+3+3*4; got != want { // source, r1, 3 aggregation routers
		t.Fatalf("%d nodes, want %d: %q", got, want, nodeIDs(d))
	}
	r1 := node(t, d, "10.0.0.1")
	if len(r1.Via) != 3 {
		t.Fatalf("r1 via %+v, want one per destination", r1.Via)
	}
	for i, v := range r1.Via {
		if v.Dst != i || v.TTL != 1 || !slices.Equal(v.PathIDs, []int{1, 2, 3, 4}) {
			t.Errorf("r1 via %+v", v)
		}
	}
	// RTTs merge over the destinations.
	if r1.RTT == nil || r1.RTT.Min != 0.103 || r1.RTT.Max != 0.112 {
		t.Errorf("r1 RTT %+v", r1.RTT)
	}
	for i, dst := range d.Destinations {
		if dst.Node != dst.Addr || !node(t, d, dst.Addr).Destination || dst.Name != fmt.Sprintf("host%d.example", i) {
			t.Errorf("destination %d: %+v", i, dst)
		}
	}
	// 3 destinations x 2 distinct paths share source -> r1: at most
	// MaxParallel edges, so one each.
	if es := edgesBetween(d, "source", "10.0.0.1"); len(es) != 6 {
		t.Errorf("source -> r1: %d edges, want 6", len(es))
	}
	// With more, they share one grey edge.
	d = Build(unionTraces(4))
	es := edgesBetween(d, "source", "10.0.0.1")
	if len(es) != 1 || len(es[0].Paths) != 8 {
		t.Errorf("source -> r1 with 8 distinct paths: %+v", es)
	}
}

func TestBuildSameAddressAtTwoTTLs(t *testing.T) {
	// A path that meets the same router at TTL 2 and TTL 4 (a loop, or two
	// branches of unequal length that converge).
	tr := trace("10.99.0.1", "10.99.0.1",
		flow(1, "10.99.0.1", "10.0.0.1", "10.5.0.1", "10.99.0.1"),
		flow(2, "10.99.0.1", "10.0.0.1", "10.6.0.1", "10.6.0.2", "10.5.0.1", "10.99.0.1"),
	)
	d := Build([]*analysis.Trace{tr})
	for _, id := range []string{"10.5.0.1@2", "10.5.0.1@4", "10.99.0.1@3", "10.99.0.1@5", "10.6.0.2"} {
		n := node(t, d, id)
		if want := id[len(id)-1] - '0'; id[len(id)-2] == '@' && n.Level != int(want) {
			t.Errorf("%s at level %d", id, n.Level)
		}
	}
	if d.Destinations[0].Node != "10.99.0.1@3" {
		t.Errorf("destination node %q, want the nearest", d.Destinations[0].Node)
	}
}

// TestBuildASN checks that the AS and IXP of a hop (analysis.Hop.ASN and
// IXP, from --asn-db and --ixp-db) reach its node, the data, and the page
// that colours the nodes by AS.
func TestBuildASN(t *testing.T) {
	tr := diamondTrace()
	tr.HasASN = true
	for i := range tr.Flows {
		tr.Flows[i].Hops[1].ASN = uint32(64500 + i%4)
		if i%4 == 2 {
			tr.Flows[i].Hops[1].IXP = "LAB-IX"
		}
	}
	d := Build([]*analysis.Trace{tr})
	for b, mid := range diamondMiddle {
		n := node(t, d, mid)
		if n.ASN != uint32(64500+b) {
			t.Errorf("%s: AS %d, want %d", mid, n.ASN, 64500+b)
		}
		if (n.IXP == "LAB-IX") != (b == 2) {
			t.Errorf("%s: IXP %q", mid, n.IXP)
		}
	}
	if n := node(t, d, "10.0.0.1"); n.ASN != 0 || n.IXP != "" {
		t.Errorf("r1 has AS %d, IXP %q", n.ASN, n.IXP)
	}
	js, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	withAS := 0
	for _, n := range back.Nodes {
		if a, ok := n["asn"]; ok {
			withAS++
			if a.(float64) < 64500 || a.(float64) > 64503 {
				t.Errorf("node %v: asn %v", n["id"], a)
			}
		}
		if _, ok := n["ixp"]; ok && n["asn"] != 64502.0 {
			t.Errorf("node %v: ixp %v", n["id"], n["ixp"])
		}
	}
	if withAS != len(diamondMiddle) {
		t.Errorf("%d nodes with an asn, want %d:\n%s", withAS, len(diamondMiddle), js)
	}
	// The page fills the nodes by AS, lists the ASes in the legend and
	// names AS and IXP in the tooltip.
	page, err := render(d, fakeLib)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"if (n.asn && asColor(n.asn)) bg = asColor(n.asn);", "'AS' + a", "'   AS' + n.asn", "'   IXP ' + n.ixp", `"asn":64502,"ixp":"LAB-IX"`} {
		if !bytes.Contains(page, []byte(w)) {
			t.Errorf("page lacks %q", w)
		}
	}
}

const fakeLib = `/**
 * vis-network
 * @version 0.0.0-test
 */
window.vis = {}; var s = "</script><!--";`

func TestRenderIsSelfContainedAndEscaped(t *testing.T) {
	tr := diamondTrace()
	tr.Name = `</script><script>alert("x")</script>`
	page, err := render(Build([]*analysis.Trace{tr}), fakeLib)
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, bad := range []string{"/*TF:", "<!--TF:", `<script>alert`, `</script><!--`, "<script src", "http://", "https://"} {
		if strings.Contains(s, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.Contains(s, `var s = "<\/script><\!--"`) {
		t.Error("the library's </script> was not escaped")
	}
	if !strings.Contains(s, "<title>traceflow-fast to &lt;/script&gt;") {
		t.Errorf("title not escaped: %s", s[strings.Index(s, "<title>"):][:120])
	}
	// The data round-trips out of its script element.
	_, rest, _ := strings.Cut(s, `<script type="application/json" id="tf-data">`)
	raw, _, ok := strings.Cut(rest, "</script>")
	if !ok {
		t.Fatal("no data element")
	}
	var d Data
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("embedded data: %v", err)
	}
	if len(d.Nodes) != 11 || d.Destinations[0].Name != tr.Name {
		t.Errorf("embedded data: %d nodes, name %q", len(d.Nodes), d.Destinations[0].Name)
	}
	if got := libraryVersion(fakeLib); got != "0.0.0-test" {
		t.Errorf("libraryVersion = %q", got)
	}
}

func TestWriteHTML(t *testing.T) {
	var b bytes.Buffer
	err := WriteHTML(&b, []*analysis.Trace{diamondTrace()})
	if !Available() {
		if !errors.Is(err, ErrNoLibrary) || b.Len() != 0 || LibraryVersion() != "" {
			t.Fatalf("without the library: err %v, %d bytes", err, b.Len())
		}
		if !strings.Contains(err.Error(), "make build") {
			t.Errorf("error %q does not say how to get the library", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if v := LibraryVersion(); v == "" || !strings.Contains(b.String(), "@version "+v) {
		t.Errorf("library version %q not in the page", v)
	}
	if strings.Contains(b.String(), "<script src") {
		t.Error("the page loads a script")
	}
}

func TestServe(t *testing.T) {
	d := Build([]*analysis.Trace{diamondTrace()})
	page, err := render(d, fakeLib)
	if err != nil {
		t.Fatal(err)
	}
	data, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, newHandler(page, func() ([]byte, error) { return data, nil })) }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 30 * time.Second} // stops a hung request only
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	resp, body := get("/")
	if resp.StatusCode != 200 || !bytes.Equal(body, page) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("GET /: policy %q", resp.Header.Get("Content-Security-Policy"))
	}
	resp, body = get("/nodes.json")
	var got Data
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /nodes.json: %s %v", resp.Status, err)
	}
	if len(got.Nodes) != len(d.Nodes) || len(got.Edges) != len(d.Edges) {
		t.Errorf("nodes.json: %d nodes %d edges, want %d %d", len(got.Nodes), len(got.Edges), len(d.Nodes), len(d.Edges))
	}
	if resp, _ := get("/other"); resp.StatusCode != 404 {
		t.Errorf("GET /other: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hung: Serve did not return after its context ended")
	}
	if _, err := client.Get(base + "/"); err == nil {
		t.Error("still serving after Serve returned")
	}
}

func TestNewHandlerWithoutLibrary(t *testing.T) {
	h, err := NewHandler([]*analysis.Trace{diamondTrace()})
	if Available() != (err == nil) || Available() != (h != nil) {
		t.Fatalf("Available %v: NewHandler %v, %v", Available(), h, err)
	}
}
