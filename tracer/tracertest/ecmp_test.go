package tracertest_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// sendFlows sends the probe of TTL ttl of path IDs 1..flows at once and
// returns the replies that match.
func (r *rig) sendFlows(dst netip.Addr, flows, ttl int) []got {
	r.t.Helper()
	now := r.clock.Now()
	pkts := make([][]byte, flows)
	for i := range pkts {
		b := make([]byte, probe.MaxProbeLen)
		pkts[i] = b[:r.spec.Encode(b, dst, i+1, ttl, now)]
	}
	if err := r.net.Send(0, pkts); err != nil {
		r.t.Fatal(err)
	}
	var out []got
	for _, g := range r.wait(time.Second) {
		if g.matched {
			out = append(out, g)
		}
	}
	return out
}

// A per-flow balancer spreads flows evenly over its next hops, for every
// probe protocol, and keeps each flow on one of them, the one the ground
// truth names.
func TestECMPSpread(t *testing.T) {
	const flows = 2000
	for _, c := range []struct {
		proto probe.Proto
		dst   netip.Addr
	}{
		{probe.ProtoUDP, tracertest.DstAddr},
		{probe.ProtoTCP, tracertest.DstAddr},
		{probe.ProtoICMP, tracertest.DstAddr},
		{probe.ProtoUDP, tracertest.DstAddr6},
	} {
		t.Run(fmt.Sprintf("%v-v6=%v", c.proto, c.dst.Is6()), func(t *testing.T) {
			r := newRig(t, tracertest.Diamond(4), &tracertest.Options{Seed: 7}, c.proto, c.dst)
			for round := 0; round < 2; round++ {
				got := r.sendFlows(c.dst, flows, 2)
				if len(got) != flows {
					t.Fatalf("%d replies to %d probes", len(got), flows)
				}
				for _, g := range got {
					truth, err := r.net.PathsOf(r.spec, c.dst, int(g.a.Path))
					if err != nil || len(truth) != 1 || truth[0].Hops[1] != g.a.From {
						t.Fatalf("path ID %d: TTL 2 from %v, truth %v (%v)", g.a.Path, g.a.From, truth, err)
					}
				}
			}
			// Binomial(2000 twice, 1/4): 1000, sd 27. Allow 5 sd.
			for k := 1; k <= 4; k++ {
				if n := r.net.Counters(fmt.Sprintf("a%d", k)).Probes; n < 865 || n > 1135 {
					t.Errorf("a%d got %d of %d probes", k, n, 2*flows)
				}
			}
		})
	}
}

// Nested balancers hash with seeds of their own and do not polarize;
// given one seed, they do: the second level repeats the first's choice.
func TestNestedPolarization(t *testing.T) {
	for _, same := range []bool{false, true} {
		topo := tracertest.Nested()
		if same {
			for _, name := range []string{"r1", "b1", "b2"} {
				topo.Node(name).HashSeed = 42
			}
		}
		r := newRig(t, topo, nil, probe.ProtoUDP, tracertest.DstAddr)
		if got := r.sendFlows(tracertest.DstAddr, 2000, 3); len(got) != 2000 {
			t.Fatalf("%d replies", len(got))
		}
		var counts []uint64
		for k := 1; k <= 4; k++ {
			counts = append(counts, r.net.Counters(fmt.Sprintf("c%d", k)).Probes)
		}
		paths, err := r.net.Paths(r.spec, tracertest.DstAddr)
		if err != nil {
			t.Fatal(err)
		}
		if same {
			// Left at r1 is left at b1; right at r1, right at b2.
			if counts[1] != 0 || counts[2] != 0 || len(paths) != 2 {
				t.Errorf("one seed: probes at c1..c4 %v, %d paths, want c2 and c3 never reached", counts, len(paths))
			}
			continue
		}
		for k, n := range counts {
			if n < 400 || n > 600 {
				t.Errorf("c%d got %d of 2000 probes (all %v)", k+1, n, counts)
			}
		}
		if len(paths) != 4 {
			t.Errorf("%d paths, want 4: %v", len(paths), paths)
		}
	}
}

// A per-packet balancer sends the probes of one flow either way.
func TestPerPacket(t *testing.T) {
	topo, _ := tracertest.ByName("per-packet")
	r := newRig(t, topo, nil, probe.ProtoUDP, tracertest.DstAddr)
	for i := 0; i < 400; i++ {
		r.send(tracertest.DstAddr, 1, 2)
	}
	if got := r.wait(time.Second); len(got) != 400 {
		t.Fatalf("%d replies", len(got))
	}
	a1, a2 := r.net.Counters("a1").Probes, r.net.Counters("a2").Probes
	if a1 < 150 || a2 < 150 || a1+a2 != 400 {
		t.Errorf("one flow: %d probes by a1, %d by a2", a1, a2)
	}
	if ps, _ := r.net.PathsOf(r.spec, tracertest.DstAddr, 1); len(ps) != 2 {
		t.Errorf("truth of a flow through a per-packet balancer: %v, want both branches", ps)
	}
}

// Where nothing is random, every probe of a flow gets the answer that the
// ground truth says it gets at its TTL, on every ready-made topology:
// the truth and the simulation agree.
func TestTruthMatchesSimulation(t *testing.T) {
	for _, name := range tracertest.Names() {
		if name == "lossy" || name == "per-packet" || name == "rate-limited" {
			continue
		}
		for _, dst := range []netip.Addr{netip.MustParseAddr("10.99.1.7"), tracertest.DstAddr6} {
			topo, _ := tracertest.ByName(name)
			r := newRig(t, topo, nil, probe.ProtoUDP, dst)
			byTTL := map[int][]got{}
			for ttl := 1; ttl <= 8; ttl++ {
				byTTL[ttl] = r.sendFlows(dst, 16, ttl)
			}
			for id := 1; id <= 16; id++ {
				ps, err := r.net.PathsOf(r.spec, dst, id)
				if err != nil || len(ps) != 1 {
					t.Fatalf("%s %v path ID %d: truth %v, %v", name, dst, id, ps, err)
				}
				checkFlow(t, name, id, ps[0], byTTL)
			}
		}
	}
}

// checkFlow compares the answers to path ID id with the truth p.
func checkFlow(t *testing.T, name string, id int, p tracertest.Path, byTTL map[int][]got) {
	t.Helper()
	var stop bool // an unreachable ends the path: answered at every TTL beyond
	for ttl := 1; ttl <= 8; ttl++ {
		var from netip.Addr
		for _, g := range byTTL[ttl] {
			if int(g.a.Path) == id {
				from = g.a.From
				stop = stop || g.a.Stops()
			}
		}
		want := netip.Addr{}
		switch {
		case ttl <= len(p.Hops):
			want = p.Hops[ttl-1]
		case stop:
			want = p.Hops[len(p.Hops)-1]
		}
		if from != want {
			t.Errorf("%s path ID %d TTL %d: answer from %v, truth %v", name, id, ttl, from, p)
		}
	}
}

// The ground truth of the lab topologies is what scripts/lab.sh describe
// says of the lab, over IPv4 and IPv6.
func TestAllPathsAsLab(t *testing.T) {
	testenv.RequireTool(t, "bash", "bash")
	for _, name := range []string{"line", "diamond4", "diamond8", "unequal", "nested"} {
		for _, six := range []bool{false, true} {
			args := []string{"../../scripts/lab.sh", "describe", name}
			dst := tracertest.DstAddr
			if six {
				args = []string{"../../scripts/lab.sh", "describe", "-6", name}
				dst = tracertest.DstAddr6
			}
			out, err := exec.Command("bash", args...).Output()
			if err != nil {
				t.Fatalf("lab.sh describe: %v", err)
			}
			want := strings.Split(strings.TrimSpace(string(out)), "\n")
			for i := range want {
				want[i] = strings.TrimSpace(want[i])
			}
			slices.Sort(want)
			topo, _ := tracertest.ByName(name)
			n, err := tracertest.NewNetwork(topo, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range n.AllPaths(dst) {
				if !p.Reached {
					t.Errorf("%s: path %v does not reach", name, p)
				}
				got = append(got, p.String())
			}
			n.Close()
			if !slices.Equal(got, want) {
				t.Errorf("%s (IPv6 %v): paths\n%s\nlab.sh describe:\n%s", name, six, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
}

// The truth of the other topologies, by the names of their nodes.
func TestAllPathsNamed(t *testing.T) {
	for name, want := range map[string][]string{
		"silent-branch":   {"r1 a1 r3 dst", "r1 * r3 dst", "r1 a3 r3 dst", "r1 a4 r3 dst"},
		"filtered-branch": {"r1 a1 r3 dst", "r1 a2 a2 !"},
		"dst-silent":      {"r1 a1 r3 !", "r1 a2 r3 !"},
		"meshed":          {"r1 a1 b1 r3 dst", "r1 a1 b2 r3 dst", "r1 a2 b2 r3 dst", "r1 a2 b3 r3 dst"},
		"two-diamonds":    {"r1 a1 r2 b1 r3 dst", "r1 a1 r2 b2 r3 dst", "r1 a1 r2 b3 r3 dst", "r1 a2 r2 b1 r3 dst", "r1 a2 r2 b2 r3 dst", "r1 a2 r2 b3 r3 dst"},
	} {
		topo, _ := tracertest.ByName(name)
		n, err := tracertest.NewNetwork(topo, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range n.AllPaths(tracertest.DstAddr) {
			var names []string
			for _, h := range p.Hops {
				if h.IsValid() {
					names = append(names, n.Name(h))
				} else {
					names = append(names, "*")
				}
			}
			if !p.Reached {
				names = append(names, "!")
			}
			got = append(got, strings.Join(names, " "))
		}
		n.Close()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
