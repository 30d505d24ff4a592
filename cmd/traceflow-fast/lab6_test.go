package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// expectedSet6 is expectedSet over IPv6.
func expectedSet6(l *lab.Lab) []string {
	var out []string
	for _, p := range l.ExpectedPaths6() {
		out = append(out, strings.Join(p, " "))
	}
	sort.Strings(out)
	return out
}

// as4 maps the hops of IPv6 paths of the lab to their IPv4 twins:
// fd00:S:B::H is 10.S.B.H, the IPv6 destination the IPv4 one.
func as4(t *testing.T, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		var hops []string
		for _, h := range strings.Fields(p) {
			switch a := netip.MustParseAddr(h); {
			case h == lab.Destination6:
				hops = append(hops, lab.Destination)
			case a.Is6():
				b := a.As16()
				hops = append(hops, fmt.Sprintf("10.%x.%x.%x", uint16(b[2])<<8|uint16(b[3]), uint16(b[4])<<8|uint16(b[5]), b[15]))
			default:
				t.Fatalf("hop %s of an IPv6 path", h)
			}
		}
		out = append(out, strings.Join(hops, " "))
	}
	sort.Strings(out)
	return out
}

// TestLabIPv6 traces the dual-stack labs over IPv6: the distinct paths are
// the ones `lab.sh describe -6` gives, and the same branches as an IPv4
// trace of the same lab finds.
func TestLabIPv6(t *testing.T) {
	lab.RequireRoot(t)
	for _, tc := range []struct {
		topo  string
		paths string
	}{
		{"diamond4", "16"},
		{"diamond4", "auto"},
		{"nested", "auto"},
	} {
		t.Run(tc.topo+"/"+tc.paths, func(t *testing.T) {
			t.Parallel()
			l := lab.Up(t, tc.topo)
			out := traceIn(t, l, "--paths", tc.paths, "--format", "json", "--wait", waitAnswered, lab.Destination6)
			if out.code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
			}
			rs := parseResults(t, out.stdout)
			if len(rs) != 1 {
				t.Fatalf("%d JSON lines, want 1", len(rs))
			}
			r := rs[0]
			want := expectedSet6(l)
			got := pathSet(r)
			if !slices.Equal(got, want) {
				t.Fatalf("distinct paths over IPv6\n got %q\nwant %q", got, want)
			}
			if tc.paths == "16" && len(r.Flows) != 16 {
				t.Errorf("%d flows, want 16", len(r.Flows))
			}
			if tc.paths == "auto" && (r.MDA == nil || !r.MDA.Complete) {
				t.Errorf("mda = %+v, want complete", r.MDA)
			}
			// Every hop, the ones the MDA search implies included, has
			// ICMPv6's type and code: time exceeded, then port
			// unreachable.
			var ft formatTrace
			if err := json.Unmarshal([]byte(strings.TrimSpace(out.stdout)), &ft); err != nil {
				t.Fatal(err)
			}
			for _, f := range ft.Flows {
				for i, h := range f.Hops {
					wantType, wantCode := 3, 0
					if i == len(f.Hops)-1 {
						wantType, wantCode = 1, 4
					}
					if h.ICMPType == nil || *h.ICMPType != wantType || *h.ICMPCode != wantCode {
						t.Errorf("path ID %d TTL %d (inferred %v): type %v code %v", f.PathID, h.TTL, h.Inferred, h.ICMPType, h.ICMPCode)
					}
				}
			}
			if m := doneLog(t, out.stderr); m["unmatched"] != "0" || m["dropped"] != "0" {
				t.Errorf("done line %v", m)
			}

			// The same branches as over IPv4.
			out4 := traceIn(t, l, "--paths", tc.paths, "--format", "json", "--wait", waitAnswered, lab.Destination)
			if out4.code != exitOK {
				t.Fatalf("IPv4: exit %d, stderr:\n%s", out4.code, out4.stderr)
			}
			if got4 := pathSet(parseResults(t, out4.stdout)[0]); !slices.Equal(as4(t, got), got4) {
				t.Errorf("IPv6 paths %q are not the IPv4 paths %q", got, got4)
			}

			// The JSON speaks IPv6: addresses, ICMPv6 types and codes.
			tr, _ := traceJSON(t, l, "--paths", "4", "--wait", waitAnswered, lab.Destination6)
			if tr.Destination != lab.Destination6 || tr.Source != lab.ProberAddr6 {
				t.Errorf("destination %q source %q", tr.Destination, tr.Source)
			}
			for _, f := range tr.Flows {
				if !f.Reached || f.ReachedTTL != len(f.Hops) {
					t.Errorf("path ID %d: reached=%v at %d with %d hops", f.PathID, f.Reached, f.ReachedTTL, len(f.Hops))
				}
				for i, h := range f.Hops {
					wantType, wantCode := 3, 0 // time exceeded
					if i == len(f.Hops)-1 {
						wantType, wantCode = 1, 4 // port unreachable
					}
					if h.Addr == nil || !netip.MustParseAddr(*h.Addr).Is6() || h.RTT == nil || *h.RTT <= 0 ||
						h.ICMPType == nil || *h.ICMPType != wantType || *h.ICMPCode != wantCode {
						t.Errorf("path ID %d TTL %d: %+v", f.PathID, h.TTL, h)
					}
				}
			}
		})
	}
}

// TestLabIPv6Formats checks the table and RIPE Atlas outputs of an IPv6
// trace: af 6, the IPv6 sizes of probes and replies, and the hop limits.
func TestLabIPv6Formats(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	out := traceIn(t, l, "-6", "--paths", "4", "--format", "atlas", "--wait", waitAnswered, lab.Destination6)
	if out.code != exitOK {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d Atlas records, want 4", len(lines))
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["af"] != 6.0 || rec["size"] != 4.0 || rec["dst_addr"] != lab.Destination6 || rec["src_addr"] != lab.ProberAddr6 || rec["proto"] != "UDP" {
			t.Errorf("record %s", line)
		}
		addrs, replies := atlasHops(rec)
		if len(addrs) != 4 || addrs[0] != "fd00::1" || addrs[3] != lab.Destination6 {
			t.Errorf("hops %q", addrs)
		}
		for j, r := range replies {
			// Linux quotes the whole 52-byte probe; replies start at hop
			// limit 64.
			if r["size"] != 52.0 || r["ttl"] != float64(64-j) {
				t.Errorf("hop %d: size %v ttl %v, want 52 and %d", j+1, r["size"], r["ttl"], 64-j)
			}
			if _, ok := r["err"]; ok {
				t.Errorf("hop %d: err %v", j+1, r["err"])
			}
		}
	}

	out = traceIn(t, l, "--paths", "8", "--dedup", lab.Destination6)
	if out.code != exitOK || !strings.Contains(out.stdout, "traceflow-fast to fd00:99::1 (fd00:99::1) from fd00::2") ||
		!strings.HasSuffix(strings.TrimSpace(out.stdout), "among 8 path IDs") {
		t.Errorf("table: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
}

// TestLabIPv6Errors checks what an IPv6 run refuses, in one line each.
func TestLabIPv6Errors(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "line")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{lab.Destination, "fd00:99::1", "10.99.0.2"},
			`argument "fd00:99::1": fd00:99::1 is IPv6, but argument "10.99.0.1": 10.99.0.1 is IPv4: a run traces one address family`},
		{[]string{"--protocol", "tcp", lab.Destination6}, "--protocol tcp: IPv6 destinations (fd00:99::1) are traced with udp probes only"},
		{[]string{"--protocol", "icmp", "fd00:99::/126"}, "--protocol icmp: IPv6 destinations"},
		{[]string{"-6", lab.Destination}, "10.99.0.1 is IPv4, but -6 asks for IPv6 destinations"},
		{[]string{"--source", lab.ProberAddr, lab.Destination6}, "--source 10.0.0.2: not an IPv6 address, as the destinations (fd00:99::1) are"},
		{[]string{"--source", lab.ProberAddr6, lab.Destination}, "--source fd00::2: not an IPv4 address, as the destinations (10.99.0.1) are (-6 resolves"},
		{[]string{"ff02::1"}, "ff02::1 is never routable: multicast (ff00::/8)"},
	} {
		out := traceIn(t, l, tc.args...)
		lines := strings.Split(strings.TrimSpace(out.stderr), "\n")
		if out.code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", tc.args, out.code, out.stderr, exitError, tc.want)
		}
	}
	// --source of the run's family works.
	out := traceIn(t, l, "--source", lab.ProberAddr6, "--paths", "2", "--format", "json", lab.Destination6)
	if out.code != exitOK || parseResults(t, out.stdout)[0].Destination != lab.Destination6 {
		t.Fatalf("exit %d: %s%s", out.code, out.stdout, out.stderr)
	}
}

// TestLabIPv6Bulk traces every address of an IPv6 prefix that the
// destination answers for (a local route): each is reached through the
// diamond's branches, and each is traced once.
func TestLabIPv6Bulk(t *testing.T) {
	lab.RequireRoot(t)
	const prefix = "fd00:21::/120"
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix(prefix))
	targets := writeFile(t, "targets6.txt", "# a /120 and some of it again\n"+prefix+"\nfd00:21::7\nfd00:21::80/121\n")
	exclude := writeFile(t, "exclude6.txt", "fd00:21::f0/124\n")
	out := traceIn(t, l, "-f", targets, "--exclude", exclude, "--paths", "8", "--rate", "0", "--format", "json", "--wait", waitAnswered)
	if out.code != exitOK {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	rs := parseResults(t, out.stdout)
	// 255 addresses without fd00:21:: (anycast), minus the 16 excluded.
	if len(rs) != 255-16 {
		t.Fatalf("%d results, want %d", len(rs), 255-16)
	}
	// A Linux host answers for an address it has only through a local
	// route from the address of the interface the probe came in by.
	var branches []string
	for _, p := range l.ExpectedPaths6() {
		branches = append(branches, strings.Join(append(p[:len(p)-1:len(p)-1], "fd00:98::2"), " "))
	}
	seen := map[string]bool{}
	for _, r := range rs {
		a := netip.MustParseAddr(r.Destination)
		if seen[r.Destination] || !netip.MustParsePrefix(prefix).Contains(a) || netip.MustParsePrefix("fd00:21::f0/124").Contains(a) {
			t.Errorf("destination %s", r.Destination)
		}
		seen[r.Destination] = true
		for _, p := range pathSet(r) {
			if !slices.Contains(branches, p) {
				t.Errorf("%s: path %q is not one of %q", r.Destination, p, branches)
			}
		}
		for _, f := range r.Flows {
			if !f.Reached {
				t.Errorf("%s: path ID %d not reached", r.Destination, f.PathID)
			}
		}
	}
	if m := doneLog(t, out.stderr); m["reached"] != fmt.Sprint(255-16) || m["unmatched"] != "0" {
		t.Errorf("done line %v", m)
	}
}

// TestLabIPv6Rewrites makes r1 a middlebox over IPv6: it rewrites the
// traffic class of the probes, then their destination (fixing the UDP
// checksum as a NAT does). The hops after it report the rewrite, and the
// RTTs undo the NAT's checksum fix.
func TestLabIPv6Rewrites(t *testing.T) {
	lab.RequireRoot(t)
	t.Run("traffic class", func(t *testing.T) {
		t.Parallel()
		l := lab.Up(t, "diamond4")
		nftIn(t, l, "r1", `table ip6 tfdscp {
	chain rewrite {
		type filter hook forward priority 0; policy accept;
		udp dport 33452 ip6 dscp set cs5
	}
}
`)
		tr, _ := traceExt(t, l, "--paths", "8", "--wait", waitAnswered, lab.Destination6)
		for _, f := range tr.Flows {
			if !f.Reached || len(f.Hops) != 4 {
				t.Errorf("path ID %d: reached %v with %d hops", f.PathID, f.Reached, len(f.Hops))
			}
			for _, h := range f.Hops {
				var want []string
				if h.TTL > 1 {
					want = []string{"tos"}
				}
				if !slices.Equal(h.Rewritten, want) || (want != nil) != (h.QuotedTOS != nil && *h.QuotedTOS == 0xa0) {
					t.Errorf("path ID %d TTL %d: rewritten %q quoted TOS %v, want %q", f.PathID, h.TTL, h.Rewritten, h.QuotedTOS, want)
				}
			}
		}
	})
	t.Run("dst", func(t *testing.T) {
		t.Parallel()
		// The destination answers every address of fd00:99::/120 (from
		// fd00:98::2, see lab.WithLocalPrefix); r1 sends the probes to
		// fd00:99::2 instead and translates nothing back.
		l := lab.Up(t, "diamond4", lab.WithLocalPrefix("fd00:99::/120"))
		nftIn(t, l, "r1", `table ip6 tfnat {
	chain pre {
		type filter hook prerouting priority -150; policy accept;
		ip6 daddr fd00:99::1 udp dport 33452 ip6 daddr set fd00:99::2
	}
}
`)
		out := traceIn(t, l, "--format", "json", "--paths", "8", "--wait", waitAnswered, lab.Destination6)
		if out.code != exitOK || !strings.Contains(out.stderr, " late=0 ") {
			t.Fatalf("exit %d:\n%s", out.code, out.stderr)
		}
		var tr extTrace
		if err := json.Unmarshal([]byte(out.stdout), &tr); err != nil {
			t.Fatal(err)
		}
		maxRTT := rttBound(t, out.stderr)
		for _, f := range tr.Flows {
			if !f.Reached || len(f.Hops) != 4 || f.Hops[3].Addr == nil || *f.Hops[3].Addr != "fd00:98::2" {
				t.Errorf("path ID %d: reached %v, hops %d", f.PathID, f.Reached, len(f.Hops))
				continue
			}
			for _, h := range f.Hops {
				if !slices.Equal(h.Rewritten, []string{"dst"}) || h.RTT == nil || *h.RTT <= 0 || *h.RTT > maxRTT {
					t.Errorf("path ID %d TTL %d: rewritten %q rtt %v ms", f.PathID, h.TTL, h.Rewritten, h.RTT)
				}
			}
		}
	})
}
