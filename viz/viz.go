// Package viz renders traces as the browser view of traceflow-fast
// (--format viz): one self-contained HTML page that draws the hop graph with
// vis-network, and works offline.
//
// The page inlines the standalone UMD build of vis-network (npm package
// vis-network, pinned by viz/package.json and viz/package-lock.json) and the
// graph as JSON, so it loads nothing from the network; its
// Content-Security-Policy forbids it to. The library is embedded into the
// binary with go:embed from viz/node_modules, which `make viz-deps` fills
// with `npm ci`, and only in a build with the visnetwork tag (`make build`
// passes it). A plain `go build` needs neither npm nor node_modules: it
// compiles, and WriteHTML and NewHandler return ErrNoLibrary.
//
// For one destination the page draws Build's graph: hops are nodes, laid
// out left to right by TTL from the source to the destination, each silent
// hop a placeholder node of its own, and links coloured per distinct path.
// For several (a bulk scan) it draws BuildBulk's grouped view: the routers
// once, and a node per group of destinations that share their router paths,
// labelled with their prefixes and count, which a click opens (into blocks
// of one prefix, then into its destinations) and closes; the destinations
// are embedded apart and parsed only when a group is opened or searched, so
// that the page stays small and opens at once. Build's union graph of the
// traces is also served as /nodes.json.
package viz

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// ErrNoLibrary is returned when the binary was built without the
// vis-network library (without the visnetwork build tag).
var ErrNoLibrary = errors.New("built without the vis-network library: run make build (it installs the library with npm ci and builds with -tags visnetwork)")

// Available reports whether the vis-network library is built in, that is
// whether WriteHTML can render a page.
func Available() bool { return visNetworkJS != "" }

// LibraryVersion returns the version of the built-in vis-network library,
// or "" when there is none.
func LibraryVersion() string { return libraryVersion(visNetworkJS) }

var versionRE = regexp.MustCompile(`@version\s+(\S+)`)

func libraryVersion(lib string) string {
	if m := versionRE.FindStringSubmatch(lib[:min(len(lib), 2048)]); m != nil {
		return m[1]
	}
	return ""
}

// MaxParallel is the number of distinct paths between two nodes up to which
// each gets an edge of its own colour; more share one grey edge.
const MaxParallel = 6

// Data is what the page draws, as it is embedded in the page and served
// as /nodes.json.
type Data struct {
	Source       string        `json:"source"`
	Vantages     []string      `json:"vantages,omitempty"` // fleet agents, a source node "source:NAME" each; none for this host
	Generated    time.Time     `json:"generated"`
	Destinations []Destination `json:"destinations"`
	Nodes        []Node        `json:"nodes"`
	Edges        []Edge        `json:"edges"`
}

// Destination is one traced destination.
type Destination struct {
	Addr    string `json:"addr"`
	Name    string `json:"name"`
	Vantage string `json:"vantage,omitempty"` // the agent that traced it, if any
	Node    string `json:"node,omitempty"`    // id of its node when it answered
	Reached bool   `json:"reached"`
	Partial bool   `json:"partial,omitempty"`
	Summary string `json:"summary"`
	// Paths are the distinct paths, in the order of analysis.UniquePaths;
	// Edge.Path indexes it.
	Paths []Path `json:"paths"`
}

// Path is one distinct path to a destination.
type Path struct {
	PathIDs []int `json:"path_ids"`
	Reached bool  `json:"reached"`
}

// Node is a hop, the source, or a silent-hop placeholder.
type Node struct {
	ID     string `json:"id"`
	Label  string `json:"label"`
	Addr   string `json:"addr,omitempty"` // "" for a silent hop
	Level  int    `json:"level"`          // its TTL; 0 for the source
	Source bool   `json:"source,omitempty"`
	Silent bool   `json:"silent,omitempty"`
	// Vantage names the agent of a source node of several (Data.Vantages).
	Vantage string `json:"vantage,omitempty"`
	// Destination, Diverge and Converge are set when the node is that
	// towards at least one destination.
	Destination bool `json:"destination,omitempty"`
	Diverge     bool `json:"diverge,omitempty"`
	Converge    bool `json:"converge,omitempty"`
	// PerPacket says that the node balances per packet towards at least
	// one destination (analysis.Node.PerPacket).
	PerPacket bool `json:"per_packet,omitempty"`
	// ASN and IXP are the AS and the IXP of the address (--asn-db,
	// --ixp-db), when known.
	ASN uint32 `json:"asn,omitempty"`
	IXP string `json:"ixp,omitempty"`
	RTT *RTT   `json:"rtt_ms,omitempty"`
	Via []Via  `json:"via,omitempty"`
}

// Via says at which TTL and for which path IDs a node was seen towards one
// destination.
type Via struct {
	Dst     int   `json:"dst"` // index into Data.Destinations
	TTL     int   `json:"ttl"`
	PathIDs []int `json:"path_ids"`
	RTT     *RTT  `json:"rtt_ms,omitempty"`
}

// RTT is a round-trip time summary in milliseconds.
type RTT struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	Max float64 `json:"max"`
}

// Edge is one drawn link. It carries one distinct path (coloured by
// Paths[0].Path) or, when more than MaxParallel distinct paths join the same
// two nodes, all of them (drawn grey).
type Edge struct {
	ID    string     `json:"id"`
	From  string     `json:"from"`
	To    string     `json:"to"`
	Paths []EdgePath `json:"paths"`
}

// EdgePath is a distinct path of one destination along an edge.
type EdgePath struct {
	Dst     int   `json:"dst"`
	Path    int   `json:"path"` // index into Destination.Paths
	PathIDs []int `json:"path_ids"`
}

const sourceID = "source"

// Build returns the union graph of traces. As in analysis.BuildGraph, a
// responding node is an (address, TTL): a router seen at the same TTL towards
// several destinations is one node, and its id is its address (or
// "address@TTL" when the address is seen at several TTLs). Each silent hop
// is a node of its own, "*D.N" (destination index D). The source is the node
// "source", linked to the first hop of every flow; traces from fleet
// agents (analysis.Trace.Vantage) have a source node per agent,
// "source:NAME", so each vantage point's paths start apart.
func Build(traces []*analysis.Trace) *Data {
	b := newBuilder(traces)
	for di, t := range traces {
		b.addTrace(di, t)
	}
	b.addSource()
	b.label()
	b.addEdges()
	return b.d
}

// pair is a link between two node ids.
type pair struct{ from, to string }

// builder holds the union graph while Build adds one trace after another.
type builder struct {
	d      *Data
	graphs []*analysis.Graph           // analysis.BuildGraph of each trace
	ttls   map[netip.Addr]map[int]bool // the TTLs each address answered at
	index  map[string]int              // node id -> index in d.Nodes
	// pairs are the linked node pairs in the order first seen, edgePaths
	// the distinct paths along each.
	pairs     []pair
	edgePaths map[pair][]EdgePath
	weights   map[string][]float64 // node id -> path IDs per Via, for the mean RTT
	// vantageAddr is the source address of each of d.Vantages.
	vantageAddr []string
}

// sourceOf is the id of the source node of the traces of vantage.
func sourceOf(vantage string) string {
	if vantage == "" {
		return sourceID
	}
	return sourceID + ":" + vantage
}

// newBuilder builds the graph of every trace and notes the TTLs at which
// each address answered, which decide the node ids.
func newBuilder(traces []*analysis.Trace) *builder {
	b := &builder{
		d:         &Data{Nodes: []Node{}, Edges: []Edge{}, Destinations: []Destination{}},
		graphs:    make([]*analysis.Graph, len(traces)),
		ttls:      map[netip.Addr]map[int]bool{},
		index:     map[string]int{},
		edgePaths: map[pair][]EdgePath{},
		weights:   map[string][]float64{},
	}
	for i, t := range traces {
		b.graphs[i] = analysis.BuildGraph(t)
		for _, gn := range b.graphs[i].Nodes {
			if !gn.Silent && gn.Addr.IsValid() {
				if b.ttls[gn.Addr] == nil {
					b.ttls[gn.Addr] = map[int]bool{}
				}
				b.ttls[gn.Addr][gn.TTL] = true
			}
		}
	}
	return b
}

func (b *builder) nodeID(a netip.Addr, ttl int) string {
	if len(b.ttls[a]) > 1 {
		return a.String() + "@" + strconv.Itoa(ttl)
	}
	return a.String()
}

// addTrace adds the destination of trace di, its nodes and its links.
func (b *builder) addTrace(di int, t *analysis.Trace) {
	d := b.d
	if d.Source == "" && t.Source.IsValid() {
		d.Source = t.Source.String()
	}
	if t.Vantage != "" && !slices.Contains(d.Vantages, t.Vantage) {
		d.Vantages = append(d.Vantages, t.Vantage)
		b.vantageAddr = append(b.vantageAddr, addrString(t.Source))
	}
	if d.Generated.IsZero() || t.End.After(d.Generated) {
		d.Generated = t.End
	}
	dst, pathOf := newDestination(t)
	g := b.graphs[di]
	ids := make([]string, len(g.Nodes))
	silent := 0
	for gi, gn := range g.Nodes {
		if gn.Silent || !gn.Addr.IsValid() {
			silent++
			ids[gi] = "*" + strconv.Itoa(di) + "." + strconv.Itoa(silent)
		} else {
			ids[gi] = b.nodeID(gn.Addr, gn.TTL)
		}
		b.addNode(di, gn, ids[gi], &dst)
	}
	b.linkSource(di, t, g, ids, pathOf)
	for _, l := range g.Links {
		b.link(di, pathOf, ids[l.From], ids[l.To], l.PathIDs)
	}
	d.Destinations = append(d.Destinations, dst)
}

// newDestination returns the destination of t without its node, and the
// index of the distinct path of each path ID.
func newDestination(t *analysis.Trace) (Destination, map[int]int) {
	dst := Destination{
		Addr:    addrString(t.Destination),
		Name:    t.Name,
		Vantage: t.Vantage,
		Partial: t.Partial,
		Summary: t.Summary(),
		Paths:   []Path{},
	}
	pathOf := map[int]int{} // path ID -> distinct path index
	for k, up := range t.UniquePaths() {
		dst.Paths = append(dst.Paths, Path{PathIDs: up.PathIDs, Reached: up.Reached})
		dst.Reached = dst.Reached || up.Reached
		for _, id := range up.PathIDs {
			pathOf[id] = k
		}
	}
	return dst, pathOf
}

// addNode merges the graph node gn of destination di into the node id,
// adding it if it is new, and records a Via for it.
func (b *builder) addNode(di int, gn analysis.Node, id string, dst *Destination) {
	d := b.d
	i, ok := b.index[id]
	if !ok {
		i = len(d.Nodes)
		b.index[id] = i
		d.Nodes = append(d.Nodes, Node{ID: id, Addr: addrString(gn.Addr), Level: gn.TTL, Silent: id[0] == '*'})
	}
	n := &d.Nodes[i]
	n.Destination = n.Destination || gn.Destination
	n.Diverge = n.Diverge || gn.Diverge
	n.Converge = n.Converge || gn.Converge
	n.PerPacket = n.PerPacket || gn.PerPacket
	if !n.Silent && n.ASN == 0 {
		n.ASN = gn.ASN
	}
	if !n.Silent && n.IXP == "" {
		n.IXP = gn.IXP
	}
	v := Via{Dst: di, TTL: gn.TTL, PathIDs: slices.Clone(gn.PathIDs)}
	if !n.Silent && gn.RTTMax > 0 {
		v.RTT = &RTT{Min: ms(gn.RTTMin), Avg: ms(gn.RTTAvg), Max: ms(gn.RTTMax)}
	}
	n.Via = append(n.Via, v)
	b.weights[id] = append(b.weights[id], float64(max(1, len(gn.PathIDs))))
	if gn.Destination && dst.Node == "" {
		dst.Node = id
	}
}

// linkSource links the source to the first hop of every flow of trace di:
// the source is implicit in the graph.
func (b *builder) linkSource(di int, t *analysis.Trace, g *analysis.Graph, ids []string, pathOf map[int]int) {
	first := map[int]int{} // path ID -> TTL of its first hop
	for _, f := range t.Flows {
		if len(f.Hops) > 0 {
			first[f.PathID] = f.Hops[0].TTL
			if first[f.PathID] == 0 {
				first[f.PathID] = 1
			}
		}
	}
	for gi, gn := range g.Nodes {
		var from []int
		for _, id := range gn.PathIDs {
			if first[id] == gn.TTL {
				from = append(from, id)
			}
		}
		if len(from) > 0 {
			b.link(di, pathOf, sourceOf(t.Vantage), ids[gi], from)
		}
	}
}

// link adds the distinct paths of destination di that pathIDs belong to
// (pathOf maps a path ID to its distinct path) to the link from -> to.
func (b *builder) link(di int, pathOf map[int]int, from, to string, pathIDs []int) {
	byPath := map[int][]int{}
	var order []int
	for _, id := range pathIDs {
		k, ok := pathOf[id]
		if !ok {
			continue
		}
		if _, seen := byPath[k]; !seen {
			order = append(order, k)
		}
		byPath[k] = append(byPath[k], id)
	}
	slices.Sort(order)
	p := pair{from, to}
	if _, seen := b.edgePaths[p]; !seen {
		b.pairs = append(b.pairs, p)
	}
	for _, k := range order {
		ids := byPath[k]
		slices.Sort(ids)
		b.edgePaths[p] = append(b.edgePaths[p], EdgePath{Dst: di, Path: k, PathIDs: ids})
	}
}

// addSource puts the source node first, at level 0; or the source node of
// each vantage point, in the order they came.
func (b *builder) addSource() {
	d := b.d
	if len(d.Vantages) > 0 {
		srcs := make([]Node, len(d.Vantages))
		for i, v := range d.Vantages {
			srcs[i] = Node{ID: sourceOf(v), Label: "agent " + v, Addr: b.vantageAddr[i], Source: true, Vantage: v}
			if srcs[i].Addr != "" {
				srcs[i].Label += "\n" + srcs[i].Addr
			}
		}
		d.Nodes = append(srcs, d.Nodes...)
		return
	}
	src := Node{ID: sourceID, Label: "source", Addr: d.Source, Source: true}
	if d.Source != "" {
		src.Label = "source\n" + d.Source
	}
	d.Nodes = append([]Node{src}, d.Nodes...)
}

// label sets each node's label and merged RTT.
func (b *builder) label() {
	d := b.d
	for i := range d.Nodes {
		n := &d.Nodes[i]
		if n.Source {
			continue
		}
		n.RTT = mergeRTT(n.Via, b.weights[n.ID])
		if n.Silent {
			n.Label = "*"
			continue
		}
		n.Label = n.Addr
		if n.Destination {
			for _, dst := range d.Destinations {
				if dst.Node == n.ID && dst.Name != "" && dst.Name != dst.Addr {
					n.Label += "\n" + dst.Name
					break
				}
			}
		}
	}
}

// addEdges draws the links: an edge per distinct path, or one grey edge
// for all of them when more than MaxParallel join the same two nodes.
func (b *builder) addEdges() {
	d := b.d
	for _, p := range b.pairs {
		eps := b.edgePaths[p]
		if len(eps) == 0 {
			continue
		}
		if len(eps) > MaxParallel {
			d.Edges = append(d.Edges, Edge{ID: "e" + strconv.Itoa(len(d.Edges)), From: p.from, To: p.to, Paths: eps})
			continue
		}
		for _, ep := range eps {
			d.Edges = append(d.Edges, Edge{ID: "e" + strconv.Itoa(len(d.Edges)), From: p.from, To: p.to, Paths: []EdgePath{ep}})
		}
	}
}

// mergeRTT summarises the RTTs of a node over the destinations it was seen
// towards: the smallest minimum, the largest maximum, and the mean of the
// averages weighted by their number of path IDs.
func mergeRTT(via []Via, weights []float64) *RTT {
	var out *RTT
	var sum, n float64
	for i, v := range via {
		if v.RTT == nil {
			continue
		}
		w := weights[i]
		if out == nil {
			out = &RTT{Min: v.RTT.Min, Max: v.RTT.Max}
		}
		out.Min = min(out.Min, v.RTT.Min)
		out.Max = max(out.Max, v.RTT.Max)
		sum += v.RTT.Avg * w
		n += w
	}
	if out != nil {
		out.Avg = round3(sum / n)
	}
	return out
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

//go:embed page.html
var pageTemplate string

// The scripts of the two views: common.js, then union.js (the union graph
// of Data) or bulk.js (the groups of Bulk).
var (
	//go:embed common.js
	commonJS string
	//go:embed union.js
	unionJS string
	//go:embed bulk.js
	bulkJS string
)

// The markers in page.html that the library, the data and the view
// replace.
const (
	markTitle   = "<!--TF:TITLE-->"
	markLibrary = "/*TF:VIS-NETWORK*/"
	markData    = "/*TF:DATA*/"
	markMembers = "<!--TF:MEMBERS-->"
	markView    = "/*TF:VIEW*/"
)

// JSON returns d as the page embeds it and /nodes.json serves it: <, > and &
// are escaped, so it can stand inside a script element.
func (d *Data) JSON() ([]byte, error) { return scriptJSON(d) }

// scriptJSON encodes v with <, > and & escaped.
func scriptJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// WriteHTML writes the page that draws traces to w: for one destination its
// graph; for several the grouped view of BuildBulk, with a search box.
func WriteHTML(w io.Writer, traces []*analysis.Trace) error {
	if !Available() {
		return ErrNoLibrary
	}
	page, err := renderTraces(traces, visNetworkJS)
	if err != nil {
		return err
	}
	_, err = w.Write(page)
	return err
}

// renderTraces renders the page of traces: Build's graph for one, the
// grouped view for several.
func renderTraces(traces []*analysis.Trace, lib string) ([]byte, error) {
	// Traces from fleet agents are drawn in one graph, a source per agent.
	fromAgents := slices.ContainsFunc(traces, func(t *analysis.Trace) bool { return t.Vantage != "" })
	if len(traces) > 1 && !fromAgents {
		return renderBulk(BuildBulk(traces), lib)
	}
	return render(Build(traces), lib)
}

// render fills the page template with the library and the union graph d.
func render(d *Data, lib string) ([]byte, error) {
	data, err := d.JSON()
	if err != nil {
		return nil, err
	}
	return fill(title(d), lib, data, nil, unionJS)
}

// renderBulk fills the page template with the library and the grouped
// view bk, the members of each group apart.
func renderBulk(bk *Bulk, lib string) ([]byte, error) {
	data, err := scriptJSON(bk)
	if err != nil {
		return nil, err
	}
	// The members of each group in an element of their own: opening a
	// group parses its members only.
	var members []byte
	for gi, ms := range bk.Members {
		if ms == nil {
			continue
		}
		js, err := scriptJSON(ms)
		if err != nil {
			return nil, err
		}
		members = fmt.Appendf(members, `<script type="application/json" id="tf-members-%d">`, gi)
		members = append(append(members, js...), "</script>\n"...)
	}
	return fill(fmt.Sprintf("traceflow-fast to %d destinations", bk.Destinations), lib, data, members, bulkJS)
}

// fill puts the title, the library, the data, the members and the view
// script in the page template.
func fill(title, lib string, data, members []byte, view string) ([]byte, error) {
	// Nothing in the inlined script may end its script element.
	lib = strings.ReplaceAll(lib, "</script", `<\/script`)
	lib = strings.ReplaceAll(lib, "<!--", `<\!--`)
	parts := make([]string, 0, 6)
	rest := pageTemplate
	for _, mark := range []string{markTitle, markLibrary, markData, markMembers, markView} {
		before, after, ok := strings.Cut(rest, mark)
		if !ok {
			return nil, errors.New("viz: page template lacks a marker")
		}
		parts, rest = append(parts, before), after
	}
	var b bytes.Buffer
	b.Grow(len(pageTemplate) + len(lib) + len(data) + len(members) + len(commonJS) + len(view) + 256)
	b.WriteString(parts[0])
	b.WriteString(htmlEscape(title))
	b.WriteString(parts[1])
	b.WriteString(lib)
	b.WriteString(parts[2])
	b.Write(data)
	b.WriteString(parts[3])
	b.Write(members)
	b.WriteString(parts[4])
	b.WriteString(commonJS)
	b.WriteString(view)
	b.WriteString(rest)
	return b.Bytes(), nil
}

func title(d *Data) string {
	if len(d.Vantages) > 0 {
		return "traceflow-fast from " + plural(len(d.Vantages), "agent ", "agents ") + strings.Join(d.Vantages, ", ")
	}
	switch len(d.Destinations) {
	case 0:
		return "traceflow-fast"
	case 1:
		dst := d.Destinations[0]
		name := dst.Addr
		if dst.Name != "" && dst.Name != dst.Addr {
			name = dst.Name + " (" + dst.Addr + ")"
		}
		return "traceflow-fast to " + name
	}
	return fmt.Sprintf("traceflow-fast to %d destinations", len(d.Destinations))
}

var htmlReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

func htmlEscape(s string) string { return htmlReplacer.Replace(s) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
