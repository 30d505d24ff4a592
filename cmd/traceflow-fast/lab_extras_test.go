package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// extResponder builds internal/lab/extresponder once per test process,
// beside the command (which TestMain removes).
var extResponder = sync.OnceValues(func() (string, error) {
	tf, err := binary()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(filepath.Dir(tf), "extresponder")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/traceflow-fast/traceflow-fast/internal/lab/extresponder").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// nftIn loads an nftables ruleset into the namespace of a lab node.
func nftIn(t *testing.T, l *lab.Lab, node, ruleset string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := l.Command(ctx, node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\n%s", node, err, out, ruleset)
	}
}

// respondIn starts extresponder in the namespace of a lab node, listening
// on iface, and returns what it puts in its interface objects. It is
// stopped when the test ends.
func respondIn(t *testing.T, l *lab.Lab, node, iface string, labels string) extIfInfo {
	t.Helper()
	bin, err := extResponder()
	if err != nil {
		t.Fatalf("build extresponder: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, node, bin, "-iface", iface, "-labels", labels)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("extresponder stderr:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadBytes('\n')
	var info extIfInfo
	if err == nil {
		err = json.Unmarshal(line, &info)
	}
	if err != nil {
		t.Fatalf("extresponder in %s: %v (%q)\n%s", node, err, line, stderr.String())
	}
	go io.Copy(io.Discard, out)
	return info
}

type extIfInfo struct {
	Ifindex int    `json:"ifindex"`
	Addr    string `json:"addr"`
	Name    string `json:"name"`
	MTU     int    `json:"mtu"`
}

// extTrace is the part of a JSON line these tests check, decoded here
// independently of the analysis package.
type extTrace struct {
	Flows []struct {
		PathID  int  `json:"path_id"`
		Reached bool `json:"reached"`
		Hops    []struct {
			TTL  int      `json:"ttl"`
			Addr *string  `json:"addr"`
			RTT  *float64 `json:"rtt_ms"`
			MPLS []struct {
				Label int  `json:"label"`
				TC    int  `json:"tc"`
				S     bool `json:"s"`
				TTL   int  `json:"ttl"`
			} `json:"mpls"`
			Interfaces []struct {
				Role    string `json:"role"`
				Ifindex int    `json:"ifindex"`
				Addr    string `json:"addr"`
				Name    string `json:"name"`
				MTU     int    `json:"mtu"`
			} `json:"interfaces"`
			RFC4884   *bool    `json:"rfc4884"`
			Rewritten []string `json:"rewritten"`
			QuotedTOS *int     `json:"quoted_tos"`
		} `json:"hops"`
	} `json:"flows"`
	UniquePaths []struct {
		Hops    []*string  `json:"hops"`
		PathIDs []int      `json:"path_ids"`
		Reached bool       `json:"reached"`
		RTT     *rttMillis `json:"rtt_ms"`
	} `json:"unique_paths"`
	Graph struct {
		Nodes []struct {
			Addr *string    `json:"addr"`
			TTL  int        `json:"ttl"`
			RTT  *rttMillis `json:"rtt_ms"`
		} `json:"nodes"`
	} `json:"graph"`
}

type rttMillis struct{ Min, Avg, Max float64 }

// ok says whether the RTTs are in order and none is longer than maxRTT
// (rttBound).
func (r *rttMillis) ok(maxRTT float64) bool {
	return r != nil && 0 < r.Min && r.Min <= r.Avg && r.Avg <= r.Max && r.Max <= maxRTT
}

func traceExt(t *testing.T, l *lab.Lab, args ...string) (extTrace, runOutput) {
	t.Helper()
	out := traceIn(t, l, append([]string{"--format", "json"}, args...)...)
	if out.code != exitOK {
		t.Fatalf("json: exit %d, stderr:\n%s", out.code, out.stderr)
	}
	var tr extTrace
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.stdout)), &tr); err != nil {
		t.Fatalf("json: %v\n%s", err, out.stdout)
	}
	return tr, out
}

// TestLabICMPExtensions makes a1, one of the 4 branches of the diamond,
// answer like a label switching router: its expiring probes are dropped
// by nftables and answered by extresponder, with an MPLS label stack and
// its incoming interface in RFC 4884 extensions. The JSON hop of a1
// carries them, and no other; the Atlas record has them in "icmpext"; the
// tables and DOT mark them; and tshark decodes the same label from the
// --pcap capture. Latency comes along: every path and hop has its RTTs.
func TestLabICMPExtensions(t *testing.T) {
	lab.RequireRoot(t)
	tshark := testenv.RequireTool(t, "tshark", "tshark")
	l := lab.Up(t, "diamond4")
	nftIn(t, l, "a1", `table ip tfext {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip ttl 1 udp dport 33452 drop
	}
}
`)
	info := respondIn(t, l, "a1", "to-r1", "16001,16002")
	if info.Addr != "10.1.1.2" || info.Name != "to-r1" || info.MTU != 1500 || info.Ifindex <= 0 {
		t.Fatalf("extresponder answers as %+v", info)
	}
	// 32 path IDs: the chance that none takes a1 is (3/4)^32 = 1e-4.
	pcap := filepath.Join(t.TempDir(), "ext.pcap")
	args := []string{"--paths", "32", "--wait", waitAnswered, lab.Destination}
	tr, jout := traceExt(t, l, append([]string{"--pcap", pcap}, args...)...)
	maxRTT := rttBound(t, jout.stderr)

	viaA1 := 0
	for _, f := range tr.Flows {
		for _, h := range f.Hops {
			if h.Addr == nil || *h.Addr != "10.1.1.2" {
				if h.MPLS != nil || h.Interfaces != nil {
					t.Errorf("path ID %d TTL %d (%v): extensions %+v %+v", f.PathID, h.TTL, h.Addr, h.MPLS, h.Interfaces)
				}
				continue
			}
			viaA1++
			if len(h.MPLS) != 2 || h.MPLS[0].Label != 16001 || h.MPLS[0].S || h.MPLS[0].TTL != 1 ||
				h.MPLS[1].Label != 16002 || !h.MPLS[1].S || h.MPLS[1].TC != 0 {
				t.Errorf("path ID %d: a1's labels %+v", f.PathID, h.MPLS)
			}
			if len(h.Interfaces) != 1 || h.Interfaces[0].Role != "incoming" || h.Interfaces[0].Ifindex != info.Ifindex ||
				h.Interfaces[0].Addr != info.Addr || h.Interfaces[0].Name != info.Name || h.Interfaces[0].MTU != info.MTU {
				t.Errorf("path ID %d: a1's interfaces %+v, want %+v", f.PathID, h.Interfaces, info)
			}
			if h.RFC4884 == nil || !*h.RFC4884 || h.RTT == nil || *h.RTT <= 0 || *h.RTT > maxRTT {
				t.Errorf("path ID %d: rfc4884 %v rtt %v", f.PathID, h.RFC4884, h.RTT)
			}
		}
	}
	if viaA1 == 0 {
		t.Fatal("no path ID went through a1")
	}
	t.Logf("%d of %d path IDs through a1", viaA1, len(tr.Flows))
	// Latency: every distinct path has the RTTs of its destination, every
	// responding hop its own.
	if len(tr.UniquePaths) != 4 {
		t.Errorf("%d distinct paths, want 4", len(tr.UniquePaths))
	}
	for _, up := range tr.UniquePaths {
		if !up.Reached || !up.RTT.ok(maxRTT) {
			t.Errorf("path IDs %v: rtt_ms %+v", up.PathIDs, up.RTT)
		}
	}
	for _, n := range tr.Graph.Nodes {
		if n.Addr != nil && !n.RTT.ok(maxRTT) {
			t.Errorf("node %s TTL %d: rtt_ms %+v", *n.Addr, n.TTL, n.RTT)
		}
	}

	// tshark decodes the extensions of a1's replies in the capture: the
	// same labels and interface, and a good extension checksum.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, "-r", pcap, "-n", "-Y", "icmp.ext", "-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "ip.src", "-e", "icmp.mpls.label", "-e", "icmp.mpls.s", "-e", "icmp.int_info.index",
		"-e", "icmp.int_info.name", "-e", "icmp.int_info.mtu", "-e", "icmp.ext.checksum.status")
	var tout, terr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &tout, &terr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, terr.String())
	}
	lines := strings.Split(strings.TrimSpace(tout.String()), "\n")
	if len(lines) < viaA1 {
		t.Errorf("tshark: %d replies with extensions, fewer than the %d hops:\n%s", len(lines), viaA1, tout.String())
	}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		want := []string{"10.1.1.2", "16001,16002", "0,1", strconv.Itoa(info.Ifindex), info.Name, strconv.Itoa(info.MTU), "1"}
		if len(f) != len(want) || !strings.HasPrefix(f[0], want[0]+",") || !slices.Equal(f[1:], want[1:]) {
			t.Errorf("tshark: %q, want %q (1: checksum good)", f, want)
		}
	}

	// Atlas: "icmpext" on a1's replies, as Atlas probes write it.
	out := traceIn(t, l, append([]string{"--format", "atlas"}, args...)...)
	if out.code != exitOK {
		t.Fatalf("atlas: exit %d: %s", out.code, out.stderr)
	}
	withExt := 0
	for i, line := range strings.Split(strings.TrimSpace(out.stdout), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		for _, hv := range rec["result"].([]any) {
			r := hv.(map[string]any)["result"].([]any)[0].(map[string]any)
			x, ok := r["icmpext"]
			if ok != (r["from"] == "10.1.1.2") {
				t.Errorf("record %d: reply %v", i+1, r)
			}
			if !ok {
				continue
			}
			withExt++
			b, _ := json.Marshal(x)
			want := `{"obj":[{"class":1,"mpls":[{"exp":0,"label":16001,"s":0,"ttl":1},{"exp":0,"label":16002,"s":1,"ttl":1}],"type":1},` +
				`{"addr":"10.1.1.2","class":2,"ifindex":` + strconv.Itoa(info.Ifindex) + `,"mtu":1500,"name":"to-r1","role":"incoming","type":15}],"rfc4884":1,"version":2}`
			if string(b) != want {
				t.Errorf("record %d: icmpext %s\nwant %s", i+1, b, want)
			}
			delete(r, "icmpext")
		}
		// Apart from it, the record is Atlas's as ever.
		for _, e := range checkAtlasRecord(rec) {
			t.Errorf("record %d: %s", i+1, e)
		}
	}
	if withExt != viaA1 {
		t.Errorf("%d Atlas replies with icmpext, want %d", withExt, viaA1)
	}

	// The tables mark the hop; DOT labels its node.
	out = traceIn(t, l, append([]string{"--format", "vert", "--dedup"}, args...)...)
	if !strings.Contains(out.stdout, "10.1.1.2 [MPLS 16001/16002, in to-r1]") || !strings.Contains(out.stdout, "\nRTT min / avg / max:\n") ||
		!strings.Contains(out.stdout, "  Path 1 at 10.99.0.1 ") {
		t.Errorf("vert --dedup:\n%s", out.stdout)
	}
	out = traceIn(t, l, append([]string{"--format", "dot"}, args...)...)
	if !strings.Contains(out.stdout, `label="10.1.1.2\n`) || !strings.Contains(out.stdout, `\nMPLS 16001/16002\nin to-r1"`) {
		t.Errorf("dot:\n%s", out.stdout)
	}
	dotSVG(t, out.stdout)
}

// TestLabRewrites makes r1 a middlebox that rewrites what it forwards: the
// DSCP of the probes, then their destination. The hops after it report
// the rewrite; r1 itself, which answers the probes that expire in it
// before it forwards them, does not see the DSCP rewrite.
func TestLabRewrites(t *testing.T) {
	lab.RequireRoot(t)
	t.Run("dscp", func(t *testing.T) {
		t.Parallel()
		l := lab.Up(t, "diamond4")
		nftIn(t, l, "r1", `table ip tfdscp {
	chain rewrite {
		type filter hook forward priority 0; policy accept;
		udp dport 33452 ip dscp set cs5
	}
}
`)
		args := []string{"--paths", "8", "--wait", waitAnswered, lab.Destination}
		tr, _ := traceExt(t, l, args...)
		for _, f := range tr.Flows {
			if !f.Reached || len(f.Hops) != 4 {
				t.Errorf("path ID %d: reached %v with %d hops", f.PathID, f.Reached, len(f.Hops))
			}
			for _, h := range f.Hops {
				var want []string
				if h.TTL > 1 {
					want = []string{"tos"}
				}
				// DSCP CS5 is 40: TOS 0xa0.
				if !slices.Equal(h.Rewritten, want) || (want != nil) != (h.QuotedTOS != nil && *h.QuotedTOS == 0xa0) {
					t.Errorf("path ID %d TTL %d: rewritten %q quoted TOS %v, want %q", f.PathID, h.TTL, h.Rewritten, h.QuotedTOS, want)
				}
			}
		}
		out := traceIn(t, l, append([]string{"--format", "vert"}, args...)...)
		if strings.Contains(out.stdout, "10.0.0.1 [") || !strings.Contains(out.stdout, "10.99.0.1 [tos rewritten]") ||
			!strings.Contains(out.stdout, "\nrewritten: ") {
			t.Errorf("vert:\n%s", out.stdout)
		}
	})
	t.Run("dst", func(t *testing.T) {
		t.Parallel()
		// The destination answers every address of 10.99.0.0/20; r1
		// sends the probes to 10.99.0.2 instead, fixing the checksums as
		// a NAT does, and translates nothing back.
		l := lab.Up(t, "diamond4", lab.WithLocalPrefix("10.99.0.0/20"))
		nftIn(t, l, "r1", `table ip tfnat {
	chain pre {
		type filter hook prerouting priority -150; policy accept;
		ip daddr 10.99.0.1 udp dport 33452 ip daddr set 10.99.0.2
	}
}
`)
		out := traceIn(t, l, "--format", "json", "--paths", "8", "--wait", waitAnswered, lab.Destination)
		if out.code != exitOK {
			t.Fatalf("exit %d:\n%s", out.code, out.stderr)
		}
		if !strings.Contains(out.stderr, " late=0 ") {
			t.Errorf("replies taken as late:\n%s", out.stderr)
		}
		var tr extTrace
		if err := json.Unmarshal([]byte(out.stdout), &tr); err != nil {
			t.Fatal(err)
		}
		maxRTT := rttBound(t, out.stderr)
		for _, f := range tr.Flows {
			if !f.Reached || len(f.Hops) != 4 || f.Hops[3].Addr == nil || *f.Hops[3].Addr != "10.99.0.2" {
				t.Errorf("path ID %d: reached %v, hops %d", f.PathID, f.Reached, len(f.Hops))
				continue
			}
			for _, h := range f.Hops {
				// r1 rewrites before routing: its own answers quote
				// the new destination too. The checksum is right:
				// nftables fixed it, and the RTT undoes the fix.
				if !slices.Equal(h.Rewritten, []string{"dst"}) || h.RTT == nil || *h.RTT <= 0 || *h.RTT > maxRTT {
					t.Errorf("path ID %d TTL %d: rewritten %q rtt %v ms", f.PathID, h.TTL, h.Rewritten, h.RTT)
				}
			}
		}
	})
}
