package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// Per-packet load balancers of real routers: nftables marks every UDP
// probe a router forwards with a random number 1..n, and the lab's
// `ip rule fwmark K table 100+K` (there for ICMP echo requests) sends it
// by the K-th next hop only. --paths auto must name the balancer, at its
// vertex, in graph.per_packet, in at least 4 runs of 5 (on a loaded
// machine a run now and then misses it: its test is a draw, and late
// answers cut repeats short); per-flow balancers never.

// perPacketRule makes a router with n next hops balance UDP probes to the
// lab's destinations per packet.
func perPacketRule(n int) string {
	return fmt.Sprintf(`table ip perpacket {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		ip daddr 10.99.0.0/20 meta l4proto udp meta mark set numgen random mod %d offset 1
	}
}
`, n)
}

// perPacketJSON is what these tests read of a --format json line.
type perPacketJSON struct {
	Flows []struct {
		Reached bool `json:"reached"`
	} `json:"flows"`
	Graph struct {
		Nodes []struct {
			Addr      *string `json:"addr"`
			TTL       int     `json:"ttl"`
			PerPacket bool    `json:"per_packet"`
		} `json:"nodes"`
		PerPacket []struct {
			PathID int      `json:"path_id"`
			TTL    int      `json:"ttl"`
			Vertex string   `json:"vertex"`
			Addrs  []string `json:"addrs"`
		} `json:"per_packet"`
	} `json:"graph"`
	MDA *struct {
		Complete bool `json:"complete"`
	} `json:"mda"`
}

// tracePerPacket traces the lab's destination with --paths auto and
// returns what graph.per_packet and the nodes say: "VERTEX@TTL: ADDR,..."
// per entry, and the nodes marked per-packet.
func tracePerPacket(t *testing.T, l *lab.Lab) (entries, marked []string, r perPacketJSON) {
	t.Helper()
	out := traceIn(t, l, "--wait", "0.5", "--format", "json", lab.Destination)
	if out.code != exitOK {
		t.Fatalf("exit %d\n%s", out.code, out.stderr)
	}
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		t.Fatalf("bad JSON %q: %v", out.stdout, err)
	}
	for _, pp := range r.Graph.PerPacket {
		entries = append(entries, fmt.Sprintf("%s@%d: %s", pp.Vertex, pp.TTL-1, strings.Join(pp.Addrs, ",")))
	}
	for _, n := range r.Graph.Nodes {
		if n.PerPacket && n.Addr != nil {
			marked = append(marked, fmt.Sprintf("%s@%d", *n.Addr, n.TTL))
		}
	}
	if r.MDA == nil || !r.MDA.Complete {
		t.Errorf("the search did not complete: %+v", r.MDA)
	}
	for i, f := range r.Flows {
		if !f.Reached {
			t.Errorf("flow %d did not reach the destination", i)
		}
	}
	return entries, marked, r
}

func TestLabPerPacketBalancer(t *testing.T) {
	lab.RequireRoot(t)
	for _, tc := range []struct {
		topology, router string
		ways, runs       int
		vertex           string // "" for none: the balancers hash flows
		beyond           []string
	}{
		{"diamond4", "r1", 4, 20, "10.0.0.1@1", []string{"10.1.1.2", "10.1.2.2", "10.1.3.2", "10.1.4.2"}},
		{"nested", "b1", 2, 10, "10.1.1.2@2", []string{"10.2.1.2", "10.2.2.2"}},
		{"diamond4", "", 0, 10, "", nil},
		{"nested", "", 0, 10, "", nil},
	} {
		name := tc.topology + "-per-flow"
		if tc.router != "" {
			name = tc.topology + "-" + tc.router + "-per-packet"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := lab.Up(t, tc.topology)
			if tc.router != "" {
				inNS(t, l, tc.router, perPacketRule(tc.ways), "nft", "-f", "-")
			}
			missed := 0
			for run := 1; run <= tc.runs; run++ {
				entries, marked, _ := tracePerPacket(t, l)
				if tc.vertex == "" {
					if len(entries)+len(marked) != 0 {
						t.Errorf("run %d: per-packet %q, nodes %q behind per-flow balancers", run, entries, marked)
					}
					continue
				}
				if !slices.Equal(marked, []string{tc.vertex}) || len(entries) != 1 || !strings.HasPrefix(entries[0], tc.vertex+": ") {
					// The test is a draw of the balancer's packets, and
					// on a loaded machine late answers cut some repeats
					// short: a miss now and then is its odds, more is a
					// fault.
					if missed++; missed > tc.runs/5 {
						t.Errorf("run %d: per_packet %q, nodes marked %q; want %s (%d runs missed it)", run, entries, marked, tc.vertex, missed)
					} else {
						t.Logf("run %d: per_packet %q, nodes marked %q; want %s (a miss allowed)", run, entries, marked, tc.vertex)
					}
					continue
				}
				addrs := strings.Split(strings.TrimPrefix(entries[0], tc.vertex+": "), ",")
				if len(addrs) < 2 || slices.ContainsFunc(addrs, func(a string) bool { return !slices.Contains(tc.beyond, a) }) {
					t.Errorf("run %d: the flow's answers %q, want two or more of %q", run, addrs, tc.beyond)
				}
			}
		})
	}
}
