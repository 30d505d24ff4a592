package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// monitorEvent is an event line of traceflow-fast monitor, decoded here
// independently of package monitor.
type monitorEvent struct {
	Type        string      `json:"type"`
	Destination string      `json:"destination"`
	Paths       []eventPath `json:"paths"`
	PathsBefore int         `json:"paths_before"`
	PathsAfter  int         `json:"paths_after"`
	Removed     []eventPath `json:"removed"`
	Added       []eventPath `json:"added"`
	Runs        int         `json:"runs"`
}

type eventPath struct {
	Hops []*string `json:"hops"`
}

func (p eventPath) String() string {
	s := make([]string, len(p.Hops))
	for i, h := range p.Hops {
		s[i] = "*"
		if h != nil {
			s[i] = *h
		}
	}
	return strings.Join(s, " ")
}

// isEvent matches the event lines of a type and destination that ok
// accepts.
func isEvent(typ, dst string, ok func(e monitorEvent) bool) func(string) bool {
	return func(line string) bool {
		var e monitorEvent
		return json.Unmarshal([]byte(line), &e) == nil && e.Type == typ && e.Destination == dst && ok(e)
	}
}

// startMonitor runs traceflow-fast monitor in the lab's prober namespace.
func startMonitor(t *testing.T, l *lab.Lab, args ...string) *watched {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*hung)
	t.Cleanup(cancel)
	w := startWatched(t, l.Command(ctx, "prober", bin, append([]string{"monitor"}, args...)...))
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.exited
	})
	return w
}

// nsClient is an HTTP client whose connections are made in the lab's
// prober namespace, where the monitor and Prometheus listen on 127.0.0.1.
func nsClient(l *lab.Lab) *http.Client {
	dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = l.InNS("prober", func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

func get(hc *http.Client, u string) ([]byte, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, err
}

// eventually polls check until it says done, and fails the test as hung
// after the limit hung.
func eventually(t *testing.T, what string, check func() (done bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(hung)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, last := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hung: no %s after %v (last: %s)", what, hung, last)
		}
		<-tick.C
	}
}

// scrapeMetrics scrapes the monitor's metrics, by series.
func scrapeMetrics(hc *http.Client) (map[string]float64, error) {
	b, err := get(hc, "http://127.0.0.1:9108/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && line[0] != '#' {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				return nil, fmt.Errorf("metrics line %q: %v", line, err)
			}
			out[line[:i]] = v
		}
	}
	return out, nil
}

func metricsOf(t *testing.T, hc *http.Client) map[string]float64 {
	t.Helper()
	m, err := scrapeMetrics(hc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startPrometheus runs a Prometheus server in the prober namespace that
// scrapes the monitor every second and evaluates the alert rules shipped,
// and waits until it is ready.
func startPrometheus(t *testing.T, l *lab.Lab, prom, dir string, hc *http.Client) {
	t.Helper()
	rules, err := filepath.Abs("../../monitor/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: traceflow
    static_configs: [{targets: ["127.0.0.1:9108"]}]
`, rules)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, "prober", prom, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	})
	eventually(t, "Prometheus ready", func() (bool, string) {
		_, err := get(hc, "http://127.0.0.1:9090/-/ready")
		return err == nil, fmt.Sprint(err)
	})
}

// promQuery waits until Prometheus's query API gives want as the value of
// the instant query q.
func promQuery(t *testing.T, hc *http.Client, q, want string) {
	t.Helper()
	eventually(t, q+" = "+want+" in Prometheus", func() (bool, string) {
		b, err := get(hc, "http://127.0.0.1:9090/api/v1/query?query="+url.QueryEscape(q))
		if err != nil {
			return false, err.Error()
		}
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
			return false, string(b)
		}
		return len(r.Data.Result) == 1 && r.Data.Result[0].Value[1] == want, string(b)
	})
}

// routeR1 gives r1 of the 4-way diamond the next hops towards the
// destinations, as `ip route replace` does on a router in production.
func routeR1(t *testing.T, l *lab.Lab, via ...string) {
	t.Helper()
	args := []string{"route", "replace", lab.DestinationPrefix}
	for _, v := range via {
		args = append(args, "nexthop", "via", v)
	}
	if out, err := l.Command(context.Background(), "r1", "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

func rewrite(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The monitor in the lab, scraped by a real Prometheus: a branch of the
// diamond withdrawn on r1 is reported (the event names the lost hops, the
// counter rises, traceflow_paths drops, in Prometheus too, whose
// alert fires), and so is its return; SIGHUP with an edited target file
// swaps the destinations and their series; SIGTERM writes the state, and
// a restart over it reports nothing.
func TestLabMonitor(t *testing.T) {
	lab.RequireRoot(t)
	prom := testenv.RequireTool(t, "prometheus", "prometheus")
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	t.Parallel()
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix("10.97.0.0/24"))
	dir := t.TempDir()
	targets, state := filepath.Join(dir, "targets"), filepath.Join(dir, "state")
	rewrite(t, targets, lab.Destination+"\n")
	args := []string{"--paths", "16", "--interval", "1s", "--metrics", "127.0.0.1:9108", "--state", state, "-f", targets}
	m := startMonitor(t, l, args...)
	hc := nsClient(l)
	startPrometheus(t, l, prom, dir, hc)
	m.await(t, m.stdout, 1, "baseline of 4 paths", isEvent("baseline", lab.Destination, func(e monitorEvent) bool { return len(e.Paths) == 4 }))

	exposition, err := get(hc, "http://127.0.0.1:9108/metrics")
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(exposition)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// Prometheus has the paths before the change (it scrapes a new target
	// a few seconds after it starts).
	promQuery(t, hc, `traceflow_paths{destination="10.99.0.1"}`, "4")
	routeR1(t, l, "10.1.1.2", "10.1.2.2", "10.1.3.2")
	lost := "10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1"
	m.await(t, m.stdout, 1, "path change naming the branch lost", isEvent("path_change", lab.Destination, func(e monitorEvent) bool {
		return e.PathsBefore == 4 && e.PathsAfter == 3 && len(e.Removed) == 1 && e.Removed[0].String() == lost && len(e.Added) == 0 && e.Runs == 2
	}))
	mt := metricsOf(t, hc)
	if c, p := mt[`traceflow_path_changes_total{destination="10.99.0.1"}`], mt[`traceflow_paths{destination="10.99.0.1"}`]; c != 1 || p != 3 {
		t.Errorf("after the loss: %v changes, %v paths", c, p)
	}
	promQuery(t, hc, `traceflow_paths{destination="10.99.0.1"}`, "3")
	promQuery(t, hc, `count(ALERTS{alertname="TraceflowPathChanged",alertstate="firing",destination="10.99.0.1"})`, "1")

	routeR1(t, l, "10.1.1.2", "10.1.2.2", "10.1.3.2", "10.1.4.2")
	m.await(t, m.stdout, 1, "path change back", isEvent("path_change", lab.Destination, func(e monitorEvent) bool {
		return e.PathsBefore == 3 && e.PathsAfter == 4 && len(e.Added) == 1 && e.Added[0].String() == lost
	}))
	promQuery(t, hc, `traceflow_path_changes_total{destination="10.99.0.1"}`, "2")

	rewrite(t, targets, "# the destination moved\n10.97.0.5\n")
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.await(t, m.stdout, 1, "baseline of the destination added", isEvent("baseline", "10.97.0.5", func(monitorEvent) bool { return true }))
	mt = metricsOf(t, hc)
	for k := range mt {
		if strings.Contains(k, `"10.99.0.1"`) {
			t.Errorf("series %s of the destination removed is still served", k)
		}
	}
	if mt["traceflow_destinations"] != 1 || mt[`traceflow_reached{destination="10.97.0.5"}`] != 1 {
		t.Errorf("after the reload: %v destinations, 10.97.0.5 reached %v", mt["traceflow_destinations"], mt[`traceflow_reached{destination="10.97.0.5"}`])
	}
	stopMonitor(t, m)
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), `"10.97.0.5"`) || strings.Contains(string(b), `"10.99.0.1"`) {
		t.Fatalf("state file (%v):\n%s", err, b)
	}

	m = startMonitor(t, l, args...)
	eventually(t, "three runs after the restart", func() (bool, string) {
		mt, err := scrapeMetrics(hc)
		return err == nil && mt["traceflow_run_duration_seconds_count"] >= 3, fmt.Sprint(mt["traceflow_run_duration_seconds_count"], err)
	})
	if out := m.stdout.String(); out != "" {
		t.Errorf("after a restart over the same paths, events:\n%s", out)
	}
	stopMonitor(t, m)
}

// stopMonitor sends SIGTERM and checks that the monitor exits 0.
func stopMonitor(t *testing.T, m *watched) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := m.wait(t); err != nil {
		t.Fatalf("after SIGTERM: %v\nstderr:\n%s", err, m.stderr.String())
	}
}

// One reply lost (nftables drops one on r1) is not a change with
// --confirm 2: the run that lost it differs, the next does not.
func TestLabMonitorLostReply(t *testing.T) {
	lab.RequireRoot(t)
	t.Parallel()
	l := lab.Up(t, "line")
	m := startMonitor(t, l, "--paths", "1", "--retries", "0", "--interval", "1s", "--metrics", "127.0.0.1:9108", lab.Destination)
	m.await(t, m.stdout, 1, "baseline", isEvent("baseline", lab.Destination, func(e monitorEvent) bool {
		return len(e.Paths) == 1 && e.Paths[0].String() == "10.0.0.1 10.1.1.2 10.99.0.1"
	}))
	hc := nsClient(l)
	drop := exec.Command("ip", "netns", "exec", l.NS("r1"), "nft", "-f", "-")
	drop.Stdin = strings.NewReader(`table inet dropone {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip saddr 10.1.1.2 icmp type time-exceeded limit rate 1/hour burst 1 packets counter drop
	}
}
`)
	if out, err := drop.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	runs := 0.0
	eventually(t, "a run that lost the reply", func() (bool, string) {
		mt := metricsOf(t, hc)
		runs = mt["traceflow_run_duration_seconds_count"]
		return mt["traceflow_unconfirmed_changes_total"] == 1, fmt.Sprint(mt["traceflow_unconfirmed_changes_total"])
	})
	eventually(t, "two more runs", func() (bool, string) {
		mt := metricsOf(t, hc)
		return mt["traceflow_run_duration_seconds_count"] >= runs+2, fmt.Sprint(mt["traceflow_run_duration_seconds_count"])
	})
	mt := metricsOf(t, hc)
	if mt[`traceflow_path_changes_total{destination="10.99.0.1"}`] != 0 || mt["traceflow_unconfirmed_changes_total"] != 1 {
		t.Errorf("%v changes, %v unconfirmed", mt[`traceflow_path_changes_total{destination="10.99.0.1"}`], mt["traceflow_unconfirmed_changes_total"])
	}
	if lines := m.stdout.linesFrom(0); len(lines) != 1 {
		t.Errorf("events after one reply lost:\n%s", strings.Join(lines, "\n"))
	}
	out, err := exec.Command("ip", "netns", "exec", l.NS("r1"), "nft", "list", "table", "inet", "dropone").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "counter packets 1 ") {
		t.Errorf("nft dropped not exactly one reply (%v):\n%s", err, out)
	}
	stopMonitor(t, m)
}
