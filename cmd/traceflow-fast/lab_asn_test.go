package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/dnstest"
	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// asnResult is the part of a JSON line the AS tests check.
type asnResult struct {
	Flows []struct {
		Hops []struct {
			Addr     *string `json:"addr"`
			ASN      uint32  `json:"asn"`
			IXP      string  `json:"ixp"`
			Hostname string  `json:"hostname"`
		} `json:"hops"`
	} `json:"flows"`
	UniquePaths []struct {
		Hops   []*string `json:"hops"`
		ASPath []*uint32 `json:"as_path"`
	} `json:"unique_paths"`
	ASPaths          [][]uint32 `json:"as_paths"`
	ASPathDivergence *bool      `json:"as_path_divergence"`
}

// TestLabASN traces diamond4 with the AS table of testdata/lab-asn.pfx2as:
// r1 (10.0.0.1) in AS64500, the branches a1, a2 and a4 in AS64501 and a3
// (10.1.3.0/24, a more specific prefix) in AS64502, r3 and the destination
// in AS64510; a4's link 10.1.4.0/24 is the peering LAN LAB-IX. The flows
// cross two AS paths: as-path-relax multipath.
func TestLabASN(t *testing.T) {
	l := lab.Up(t, "diamond4")
	out := traceIn(t, l, "--paths", "32", "--format", "json", "--wait", waitAnswered,
		"--asn-db", "testdata/lab-asn.pfx2as", "--ixp-db", "testdata/lab-ixp.txt", lab.Destination)
	if out.code != exitOK {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	var r asnResult
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		t.Fatal(err)
	}
	want := [][]uint32{{64500, 64501, 64510}, {64500, 64502, 64510}}
	got := r.ASPaths
	if len(got) == 2 && got[0][1] == 64502 {
		got[0], got[1] = got[1], got[0]
	}
	if !reflect.DeepEqual(got, want) || r.ASPathDivergence == nil || !*r.ASPathDivergence {
		t.Errorf("as_paths %v, as_path_divergence %v; want %v, true", r.ASPaths, r.ASPathDivergence, want)
	}
	wantASN := map[string]uint32{"10.0.0.1": 64500, "10.1.1.2": 64501, "10.1.2.2": 64501, "10.1.3.2": 64502, "10.1.4.2": 64501, "10.2.3.2": 64510, "10.99.0.1": 64510}
	ixp := 0
	for _, f := range r.Flows {
		for _, h := range f.Hops {
			if h.Addr == nil {
				t.Errorf("silent hop")
				continue
			}
			if w, ok := wantASN[*h.Addr]; ok && h.ASN != w {
				t.Errorf("hop %s: AS%d, want AS%d", *h.Addr, h.ASN, w)
			}
			if (h.IXP == "LAB-IX") != (*h.Addr == "10.1.4.2") {
				t.Errorf("hop %s: ixp %q", *h.Addr, h.IXP)
			}
			if h.IXP != "" {
				ixp++
			}
		}
	}
	if ixp == 0 {
		t.Error("no flow crossed LAB-IX")
	}
	for _, up := range r.UniquePaths {
		if len(up.ASPath) != 3 {
			t.Errorf("unique path %v: as_path of %d", up.Hops, len(up.ASPath))
		}
	}

	// The tables show the ASes, then the AS paths above the summary.
	out = traceIn(t, l, "--paths", "32", "--dedup", "--asn-db", "testdata/lab-asn.pfx2as", "--ixp-db", "testdata/lab-ixp.txt", lab.Destination)
	for _, w := range []string{"10.0.0.1 [AS64500]", "10.1.3.2 [AS64502]", "10.1.4.2 [AS64501, IX LAB-IX]",
		"\nAS path AS64500 AS64501 AS64510 (path IDs ", "\nAS path AS64500 AS64502 AS64510 (path IDs ",
		"\nAS path divergence: the flows cross 2 different AS paths\n4 distinct paths among 32 path IDs\n"} {
		if !strings.Contains(out.stdout, w) {
			t.Errorf("table lacks %q:\n%s", w, out.stdout)
		}
	}

	// DOT: an AS line in the labels, the IXP beside the AS of a4.
	out = traceIn(t, l, "--paths", "32", "--format", "dot", "--wait", waitAnswered,
		"--asn-db", "testdata/lab-asn.pfx2as", "--ixp-db", "testdata/lab-ixp.txt", lab.Destination)
	if out.code != exitOK {
		t.Fatalf("dot: exit %d: %s", out.code, out.stderr)
	}
	for _, w := range []string{`label="10.0.0.1\n`, `\nAS64500"`, `\nAS64501"`, `\nAS64502"`, `\nAS64510"`, `\nAS64501, IX LAB-IX"`, `fillcolor=`} {
		if !strings.Contains(out.stdout, w) {
			t.Errorf("dot lacks %q:\n%s", w, out.stdout)
		}
	}

	// Atlas: the AS under "traceflow" in each reply.
	out = traceIn(t, l, "--paths", "32", "--format", "atlas", "--wait", waitAnswered,
		"--asn-db", "testdata/lab-asn.pfx2as", "--ixp-db", "testdata/lab-ixp.txt", lab.Destination)
	if out.code != exitOK {
		t.Fatalf("atlas: exit %d: %s", out.code, out.stderr)
	}
	type atlasReply struct {
		From      string `json:"from"`
		Traceflow *struct {
			ASN uint32 `json:"asn"`
			IXP string `json:"ixp"`
		} `json:"traceflow"`
	}
	var records, replies int
	for line := range strings.SplitSeq(strings.TrimSpace(out.stdout), "\n") {
		var rec struct {
			Result []struct {
				Result []atlasReply `json:"result"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("atlas line %q: %v", line, err)
		}
		records++
		for _, h := range rec.Result {
			for _, r := range h.Result {
				if r.From == "" {
					continue
				}
				replies++
				w, ok := wantASN[r.From]
				if !ok {
					continue
				}
				if r.Traceflow == nil || r.Traceflow.ASN != w {
					t.Errorf("atlas reply from %s: traceflow %+v, want AS%d", r.From, r.Traceflow, w)
				} else if (r.Traceflow.IXP == "LAB-IX") != (r.From == "10.1.4.2") {
					t.Errorf("atlas reply from %s: ixp %q", r.From, r.Traceflow.IXP)
				}
			}
		}
	}
	if records != 32 || replies == 0 {
		t.Errorf("atlas: %d records, %d replies; want 32 records", records, replies)
	}
}

// TestLabRDNS runs a DNS server inside the prober's namespace, on its
// loopback, and traces with --rdns through it.
func TestLabRDNS(t *testing.T) {
	l := lab.Up(t, "diamond4")
	var conn net.PacketConn
	if err := l.InNS("prober", func() (err error) {
		conn, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{
		"10.0.0.1": "r1.lab.test.", "10.1.1.2": "a1.lab.test.", "10.1.2.2": "a2.lab.test.",
		"10.1.3.2": "a3.lab.test.", "10.1.4.2": "a4.lab.test.", "10.99.0.1": "dst.lab.test.",
		// r3 (10.2.*) has no PTR record.
	}
	dns := dnstest.Serve(t, conn, names)
	out := traceIn(t, l, "--paths", "16", "--format", "json", "--rdns", "--rdns-server", conn.LocalAddr().String(), lab.Destination)
	if out.code != exitOK {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	var r asnResult
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Flows {
		for _, h := range f.Hops {
			want := strings.TrimSuffix(names[*h.Addr], ".")
			if h.Hostname != want {
				t.Errorf("hop %s: hostname %q, want %q", *h.Addr, h.Hostname, want)
			}
		}
	}
	if n := dns.Count(netip.MustParseAddr("10.0.0.1")); n != 1 {
		t.Errorf("10.0.0.1 asked %d times, want once (cached)", n)
	}
	if r.ASPaths != nil || r.ASPathDivergence != nil {
		t.Error("AS keys without --asn-db")
	}
	out = traceIn(t, l, "--paths", "16", "--rdns", "--rdns-server", conn.LocalAddr().String(), lab.Destination)
	if !strings.Contains(out.stdout, "r1.lab.test (10.0.0.1)") || !strings.Contains(out.stdout, "| 10.2.") {
		t.Errorf("table:\n%s", out.stdout)
	}
}
