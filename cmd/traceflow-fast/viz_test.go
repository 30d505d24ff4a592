package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/viz"
	"github.com/traceflow-fast/traceflow-fast/viz/viztest"
)

// TestVizFlags checks the one-line errors of --format viz, before anything
// is sent: a build without the library says how to get it, and a bad --bind
// is named.
func TestVizFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"x", "--format", "viz", "--bind", "nope"}, `--bind "nope"`},
		{[]string{"--format", "viz", "--bind", "127.0.0.1:99999", "x"}, `--bind "127.0.0.1:99999": bad port`},
	}
	if !viz.Available() {
		cases = []struct {
			args []string
			want string
		}{
			{[]string{"x", "--format", "viz"}, "--format viz: this binary was built without the vis-network library: run make build"},
			{[]string{"x", "--format", "viz", "--output", "page.html"}, "--format viz: this binary was built without"},
		}
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast"}, tc.args...), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, want exit %d and one line with %q", tc.args, code, stderr.String(), exitError, tc.want)
		}
	}
}

// vizBinary builds the command with the vis-network library (-tags
// visnetwork), beside the one binary() builds, so that TestMain removes it.
// The library must be installed in viz/node_modules (make viz-deps).
var vizBinary = sync.OnceValues(func() (string, error) {
	bin, err := binary()
	if err != nil {
		return "", err
	}
	out := filepath.Join(filepath.Dir(bin), "traceflow-fast-viz")
	if b, err := exec.Command("go", "build", "-tags", "visnetwork", "-o", out, ".").CombinedOutput(); err != nil {
		return "", errors.New(string(b))
	}
	return out, nil
})

func requireVizBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../../viz/node_modules/vis-network/standalone/umd/vis-network.min.js"); err != nil {
		testenv.Skip(t, "the vis-network library is not installed: run make viz-deps")
	}
	bin, err := vizBinary()
	if err != nil {
		t.Fatalf("build with -tags visnetwork: %v", err)
	}
	return bin
}

// pageData is the part of the data embedded in the page that the lab test
// checks, decoded here independently of the viz package.
type pageData struct {
	Destinations []struct {
		Addr    string `json:"addr"`
		Node    string `json:"node"`
		Reached bool   `json:"reached"`
		Paths   []struct {
			PathIDs []int `json:"path_ids"`
		} `json:"paths"`
	} `json:"destinations"`
	Nodes []struct {
		ID          string `json:"id"`
		Addr        string `json:"addr"`
		Level       int    `json:"level"`
		Destination bool   `json:"destination"`
		Via         []struct {
			TTL     int   `json:"ttl"`
			PathIDs []int `json:"path_ids"`
		} `json:"via"`
		RTT *struct {
			Min, Avg, Max float64
		} `json:"rtt_ms"`
	} `json:"nodes"`
	Edges []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"edges"`
}

var (
	externalScript = regexp.MustCompile(`(?i)<script[^>]*\ssrc\s*=`)
	remoteRef      = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//`)
	dataElement    = regexp.MustCompile(`(?s)<script type="application/json" id="tf-data">(.*?)</script>`)
)

// checkVizData asserts that the page's data holds the 4 middle hops of
// the diamond4 lab at TTL 2, which split the 16 path IDs between them, and
// the destination at TTL 4.
func checkVizData(t *testing.T, l *lab.Lab, raw []byte) {
	t.Helper()
	var d pageData
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("page data: %v", err)
	}
	byAddr := map[string]int{}
	for i, n := range d.Nodes {
		byAddr[n.Addr] = i
	}
	var middle []string
	for _, p := range l.ExpectedPaths() {
		middle = append(middle, p[1])
	}
	slices.Sort(middle)
	if middle = slices.Compact(middle); len(middle) != 4 {
		t.Fatalf("diamond4 has middle hops %q", middle)
	}
	var ids []int
	for _, addr := range middle {
		i, ok := byAddr[addr]
		if !ok {
			t.Errorf("middle hop %s is not in the page", addr)
			continue
		}
		n := d.Nodes[i]
		if n.ID != addr || n.Level != 2 || len(n.Via) != 1 || n.Via[0].TTL != 2 || n.RTT == nil || n.RTT.Max <= 0 {
			t.Errorf("middle hop %s: %+v", addr, n)
			continue
		}
		ids = append(ids, n.Via[0].PathIDs...)
	}
	slices.Sort(ids)
	want := make([]int, 16)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(ids, want) {
		t.Errorf("the middle hops carry path IDs %v, want each of 1..16 once", ids)
	}
	if len(d.Destinations) != 1 || d.Destinations[0].Addr != lab.Destination || !d.Destinations[0].Reached || len(d.Destinations[0].Paths) != 4 {
		t.Errorf("destinations %+v", d.Destinations)
	}
	if i, ok := byAddr[lab.Destination]; !ok || !d.Nodes[i].Destination || d.Nodes[i].Level != 4 {
		t.Errorf("destination node missing or not at TTL 4")
	}
	// source + r1 + 4 + 4 + destination.
	if len(d.Nodes) != 11 {
		t.Errorf("%d nodes, want 11", len(d.Nodes))
	}
}

// TestLabViz traces the diamond4 lab with --format viz: into a file, and
// served on a loopback port of the prober's namespace.
func TestLabViz(t *testing.T) {
	lab.RequireRoot(t)
	bin := requireVizBinary(t)
	l := lab.Up(t, "diamond4")

	t.Run("output", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "trace.html")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := l.Command(ctx, "prober", bin, "--paths", "16", "--wait", waitAnswered, "--format", "viz", "--output", out, lab.Destination)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %s", err, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout %q, want nothing (the page goes to --output)", stdout.String())
		}
		page, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if m := externalScript.Find(page); m != nil {
			t.Errorf("the page loads a script: %s", m)
		}
		if m := remoteRef.Find(page); m != nil {
			t.Errorf("the page refers to the network: %s", m)
		}
		if !bytes.Contains(page, []byte("@version "+viz.LibraryVersion())) && viz.Available() {
			t.Errorf("the page lacks vis-network %s", viz.LibraryVersion())
		}
		if !bytes.Contains(page, []byte("vis.Network")) || len(page) < 100_000 {
			t.Errorf("the page (%d bytes) does not inline vis-network", len(page))
		}
		m := dataElement.FindSubmatch(page)
		if m == nil {
			t.Fatal("no data in the page")
		}
		checkVizData(t, l, m[1])
	})

	t.Run("serve", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := l.Command(ctx, "prober", bin, "--paths", "16", "--wait", waitAnswered, "--format", "viz", "--bind", "127.0.0.1:0", lab.Destination)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		var logs bytes.Buffer
		urlc := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				logs.WriteString(sc.Text() + "\n")
				if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
					urlc <- m[1]
				}
			}
			exited <- cmd.Wait()
		}()
		waited := false
		defer func() {
			if !waited {
				cmd.Process.Kill()
				<-exited
			}
		}()
		var url string
		select {
		case url = <-urlc:
		case err := <-exited:
			waited = true
			t.Fatalf("exited before serving: %v\n%s", err, logs.String())
		case <-time.After(hung):
			t.Fatalf("hung: no serving line on stderr after %v", hung)
		}

		// The server listens on the loopback of the prober's namespace.
		client := &http.Client{
			Timeout:   hung, // stops a hung request only
			Transport: &http.Transport{DialContext: dialInNamespace(l, "prober"), DisableKeepAlives: true},
		}
		get := func(path string) []byte {
			t.Helper()
			resp, err := client.Get(url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: %s %v", path, resp.Status, err)
			}
			return b
		}
		page := get("")
		if externalScript.Match(page) || !dataElement.Match(page) {
			t.Errorf("GET /: not the self-contained page (%d bytes)", len(page))
		}
		checkVizData(t, l, get("nodes.json"))

		// SIGINT stops the server, and the trace's exit status stands.
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			waited = true
			if err != nil {
				t.Errorf("after SIGINT: %v\n%s", err, logs.String())
			}
		case <-time.After(hung):
			t.Fatalf("hung: still serving %v after SIGINT", hung)
		}
	})
}

var servingLine = regexp.MustCompile(`serving the browser view at (http://127\.0\.0\.1:\d+/)`)

// dialInNamespace dials from inside the namespace of node of l: the
// connection's socket belongs to it for its whole life.
func dialInNamespace(l *lab.Lab, node string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.InNS(node, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// TestLabBulkBrowserView scans the lab's /20 (4,094 destinations through
// the 4-way diamond) with --format viz --output, and opens the page in
// headless Chromium: under 2 MB, the routers drawn once and the
// destinations in groups that add up to the scan, the routers and the
// largest group in the window with its count, opened and closed by a
// click, a destination found by the search box, a link's tooltip.
func TestLabBulkBrowserView(t *testing.T) {
	lab.RequireRoot(t)
	bin := requireVizBinary(t)
	viztest.Chromium(t)
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix(bulkPrefix))
	out := filepath.Join(t.TempDir(), "scan.html")
	ctx, cancel := context.WithTimeout(context.Background(), 2*hung)
	defer cancel()
	cmd := l.Command(ctx, "prober", bin, "--paths", "16", "--rate", "200000", "--format", "viz", "--output", out, bulkPrefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) >= 2_000_000 {
		t.Errorf("the page of 4,094 destinations is %d bytes, want under 2 MB", len(page))
	}
	checkBulkData(t, l, page)
	b := viztest.New(t, 1280, 800)
	b.OpenFile(t, out, hung)
	got := viztest.CheckBulk(t, b, "10.21.7.77")
	// 16 flows miss one of the 4 branches for about 4% of the
	// destinations: the others are the largest group.
	if got.Count < 4094*90/100 {
		t.Errorf("the largest group has %d destinations, want 90%% of 4,094", got.Count)
	}
	t.Logf("%d KiB page; largest group %s of %d destinations, opened into %d nodes; search: %q",
		len(page)>>10, got.Group, got.Count, got.Opened, got.Found)
}

// checkBulkData checks the data of the page of the lab's /20: the hops of
// the diamond are its routers, and its groups hold the 4,094 destinations.
func checkBulkData(t *testing.T, l *lab.Lab, page []byte) {
	t.Helper()
	m := dataElement.FindSubmatch(page)
	if m == nil {
		t.Fatal("no data in the page")
	}
	var d struct {
		Destinations int `json:"destinations"`
		Nodes        []struct {
			ID string `json:"id"`
		} `json:"nodes"`
		Groups []struct {
			Count int `json:"count"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(m[1], &d); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range l.ExpectedPaths() {
		want = append(want, p[:len(p)-1]...) // without the destination
	}
	slices.Sort(want)
	want = append([]string{"source"}, slices.Compact(want)...)
	var got []string
	for _, n := range d.Nodes {
		got = append(got, n.ID)
	}
	slices.Sort(got[1:])
	sum := 0
	for _, g := range d.Groups {
		sum += g.Count
	}
	if !slices.Equal(got, want) || d.Destinations != 4094 || sum != 4094 {
		t.Errorf("nodes %q (want %q), %d destinations in %d groups of %d in all", got, want, d.Destinations, len(d.Groups), sum)
	}
}
