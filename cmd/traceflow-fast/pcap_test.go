package main

import (
	"bytes"
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// pcapRow is one packet of the capture as tshark decodes it. A reply
// carries two values of the IP fields, the outer header's then the quoted
// one's; the UDP fields are the quoted header's.
type pcapRow struct {
	time     float64 // seconds since the epoch
	src, dst []string
	id, ttl  []int
	sport    int
	dport    int
	checksum int
	icmpType int // -1 for a probe
	icmpCode int
}

var pcapFields = []string{
	"frame.time_epoch", "ip.src", "ip.dst", "ip.id", "ip.ttl",
	"udp.srcport", "udp.dstport", "udp.checksum", "icmp.type", "icmp.code",
}

// tsharkRows decodes the capture with tshark, independently of
// traceflow-fast's own decoder.
func tsharkRows(t *testing.T, file string) []pcapRow {
	t.Helper()
	tshark := testenv.RequireTool(t, "tshark", "tshark")
	args := []string{"-r", file, "-n", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range pcapFields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr // as root, tshark warns on stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	num := func(s string) int {
		n, err := strconv.ParseInt(s, 0, 64) // decimal, or 0x... for ip.id and udp.checksum
		if err != nil {
			t.Fatalf("tshark field %q: %v\n%s", s, err, out.String())
		}
		return int(n)
	}
	nums := func(s string) []int {
		var ns []int
		for _, f := range strings.Split(s, ",") {
			ns = append(ns, num(f))
		}
		return ns
	}
	var rows []pcapRow
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != len(pcapFields) {
			t.Fatalf("tshark line %q: %d fields, want %d", line, len(f), len(pcapFields))
		}
		ts, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("tshark time %q: %v", f[0], err)
		}
		r := pcapRow{
			time: ts, src: strings.Split(f[1], ","), dst: strings.Split(f[2], ","),
			id: nums(f[3]), ttl: nums(f[4]), sport: num(f[5]), dport: num(f[6]), checksum: num(f[7]),
			icmpType: -1, icmpCode: -1,
		}
		if f[8] != "" {
			r.icmpType, r.icmpCode = num(f[8]), num(f[9])
		}
		rows = append(rows, r)
	}
	return rows
}

var pcapDoneLine = regexp.MustCompile(`msg=done .*received=(\d+) `)

// TestLabPcap traces the 4-way diamond with --pcap and checks the capture,
// decoded by tshark, against what traceflow-fast decoded itself (its JSON
// output): every probe sent is in it, and every reply, whose ICMP type,
// source, quoted IP.ID (run tag and TTL) and quoted ports give the hop that
// the JSON output reports, with kernel timestamps that give its RTT.
func TestLabPcap(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	const paths, srcPort, dstPort = 16, 33452, 33452
	file := filepath.Join(t.TempDir(), "trace.pcap")
	tr, out := traceJSON(t, l, "--paths", strconv.Itoa(paths), "--wait", waitAnswered, "--pcap", file, lab.Destination)
	m := pcapDoneLine.FindStringSubmatch(out.stderr)
	if m == nil {
		t.Fatalf("no summary log line in:\n%s", out.stderr)
	}
	received, _ := strconv.Atoi(m[1])
	rows := tsharkRows(t, file)

	type key struct{ path, ttl int }
	type send struct {
		key
		checksum int
	}
	sent := map[send]float64{} // the time of each probe as sent
	var stamps []float64       // the distinct times probes were sent at, in order
	ahead := map[float64]float64{}
	tag := -1
	var probes, replies int
	firstReply := map[key]pcapRow{}
	for i, r := range rows {
		if r.icmpType < 0 { // a probe
			probes++
			if len(r.id) != 1 || r.src[0] != tr.Source || r.dst[0] != lab.Destination || r.dport != dstPort {
				t.Errorf("packet %d: not a probe of the run: %+v", i+1, r)
				continue
			}
			if tag < 0 {
				tag = r.id[0] >> 6
			}
			if r.id[0]>>6 != tag || r.ttl[0] != r.id[0]&63+1 || r.sport <= srcPort || r.sport > srcPort+paths {
				t.Errorf("packet %d: probe with IP.ID %#x (tag %d, want %d), TTL %d, source port %d", i+1, r.id[0], r.id[0]>>6, tag, r.ttl[0], r.sport)
			}
			sent[send{key{r.sport - srcPort, r.id[0]&63 + 1}, r.checksum}] = r.time
			if len(stamps) == 0 || r.time > stamps[len(stamps)-1] {
				stamps = append(stamps, r.time)
			}
			continue
		}
		replies++
		if len(r.id) != 2 || len(r.src) != 2 || r.dst[0] != tr.Source || r.src[1] != tr.Source || r.dst[1] != lab.Destination || r.dport != dstPort {
			t.Errorf("packet %d: reply that does not quote a probe of the run: %+v", i+1, r)
			continue
		}
		if r.id[1]>>6 != tag {
			t.Errorf("packet %d: quoted IP.ID %#x has tag %d, want %d", i+1, r.id[1], r.id[1]>>6, tag)
		}
		k := key{r.sport - srcPort, r.id[1]&63 + 1}
		if _, ok := firstReply[k]; !ok {
			firstReply[k] = r
		}
	}
	if probes != tr.ProbesSent {
		t.Errorf("%d probes in the capture, probes_sent %d", probes, tr.ProbesSent)
	}
	if replies != received {
		t.Errorf("%d replies in the capture, %d passed the filter", replies, received)
	}

	// Every hop of the JSON output is the first reply to its probe, and
	// every first reply is a hop or an answer from the destination to a
	// probe in flight beyond its distance.
	hops := 0
	for _, f := range tr.Flows {
		for _, h := range f.Hops {
			r, ok := firstReply[key{f.PathID, h.TTL}]
			if h.Addr == nil {
				if ok {
					t.Errorf("path ID %d TTL %d: silent in the output, answered by %s in the capture", f.PathID, h.TTL, r.src[0])
				}
				continue
			}
			hops++
			if !ok {
				t.Errorf("path ID %d TTL %d: hop %s not in the capture", f.PathID, h.TTL, *h.Addr)
				continue
			}
			if r.src[0] != *h.Addr || h.ICMPType == nil || h.ICMPCode == nil || r.icmpType != *h.ICMPType || r.icmpCode != *h.ICMPCode {
				t.Errorf("path ID %d TTL %d: capture %s type %d code %d, output %s type %v code %v",
					f.PathID, h.TTL, r.src[0], r.icmpType, r.icmpCode, *h.Addr, h.ICMPType, h.ICMPCode)
			}
			at, ok := sent[send{key{f.PathID, h.TTL}, r.checksum}]
			if !ok {
				t.Errorf("path ID %d TTL %d: reply quotes checksum %#x of no probe in the capture", f.PathID, h.TTL, r.checksum)
				continue
			}
			checkPcapRTT(t, f.PathID, h.TTL, *h.RTT, r.time, at, stamps, ahead)
		}
	}
	byPath := map[int]formatFlow{}
	for _, f := range tr.Flows {
		byPath[f.PathID] = f
	}
	for k, r := range firstReply {
		if f, ok := byPath[k.path]; ok && k.ttl > len(f.Hops) && (r.src[0] != lab.Destination || r.icmpType != 3) {
			t.Errorf("path ID %d TTL %d: reply from %s type %d beyond the flow's %d hops", k.path, k.ttl, r.src[0], r.icmpType, len(f.Hops))
		}
	}
	// Replies reports the probes answered (hops, and the destination's
	// answers beyond its distance); the capture may hold a few more, read
	// as the run ended.
	if hops == 0 || len(firstReply) < tr.Replies {
		t.Errorf("%d probes answered in the capture, %d in the output (%d hops)", len(firstReply), tr.Replies, hops)
	}
	t.Logf("capture: %d probes (probes_sent %d), %d replies (%d passed the filter), %d hops matched the output",
		probes, tr.ProbesSent, replies, received, hops)

	// A capture file that cannot be created stops the run before any probe.
	bad := filepath.Join(t.TempDir(), "no", "such", "dir", "x.pcap")
	out = traceIn(t, l, "--paths", "2", "--pcap", bad, lab.Destination)
	if lines := strings.Split(strings.TrimSpace(out.stderr), "\n"); out.code != exitError || len(lines) != 1 ||
		!strings.Contains(lines[0], "--pcap: open "+bad) {
		t.Errorf("--pcap %s: exit %d, stderr %q; want exit %d and one line naming the file", bad, out.code, out.stderr, exitError)
	}
}

// checkPcapRTT checks the RTT (ms) that the output gives a hop against the
// capture, where its probe was stamped at (s) and its reply at recv (s).
// The output's RTT runs from the send clock in the probe (100 µs units,
// truncated), the capture's from a stamp taken when the batch was handed to
// the network, after it was encoded. So the output's is the larger, by the
// same amount for every probe of a batch (they share both times, recorded in
// ahead), and by less than a clock unit plus the time from encoding to the
// stamp: less than the time since the batch before was stamped (stamps,
// in order), as a batch is encoded after the one before it is sent. No
// bound holds for the first batch but the same amount for all its probes.
// The capture's times are in microseconds: 2 µs of rounding are allowed.
func checkPcapRTT(t *testing.T, path, ttl int, rtt, recv, at float64, stamps []float64, ahead map[float64]float64) {
	t.Helper()
	const round = 0.002 // ms
	pcapRTT := (recv - at) * 1000
	d := rtt - pcapRTT
	limit := math.Inf(1)
	if i := sort.SearchFloat64s(stamps, at); i > 0 && i < len(stamps) && stamps[i] == at {
		limit = float64(probe.ClockUnit)/float64(time.Millisecond) + (at-stamps[i-1])*1000
	}
	first, seen := ahead[at]
	if !seen {
		ahead[at] = d
	}
	if d < -round || d > limit+round || math.IsNaN(d) || seen && math.Abs(d-first) > 2*round {
		t.Errorf("path ID %d TTL %d: RTT %.3f ms in the output, %.3f ms in the capture: %.3f ms more, want 0 to %.3f "+
			"(and as much more as the batch's other probes, %.3f ms)", path, ttl, rtt, pcapRTT, d, limit, first)
	}
}
