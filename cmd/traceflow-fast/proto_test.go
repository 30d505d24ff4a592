package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/internal/cliargs"
	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// parseArgs runs the command line args through the app's flag parsing and
// parseOptions, without tracing.
func parseArgs(t *testing.T, args ...string) (*options, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := newApp(&stdout, &stderr)
	var o *options
	var perr error
	app.Action = func(c *cli.Context) error {
		o, perr = parseOptions(c, &stdout, &stderr)
		return nil
	}
	if err := app.Run(cliargs.Permute(app, append([]string{"traceflow-fast"}, args...))); err != nil {
		return nil, err
	}
	return o, perr
}

// TestProtocolFlag checks --protocol and the destination port it implies.
func TestProtocolFlag(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		proto probe.Proto
		dport int
	}{
		{[]string{"x"}, probe.ProtoUDP, 33452},
		{[]string{"--protocol", "udp", "x"}, probe.ProtoUDP, 33452},
		{[]string{"--protocol", "udp", "--dstport", "53", "x"}, probe.ProtoUDP, 53},
		{[]string{"--protocol", "tcp", "x"}, probe.ProtoTCP, 80},
		{[]string{"x", "--protocol", "tcp", "--dstport", "443"}, probe.ProtoTCP, 443},
		{[]string{"--protocol=icmp", "x"}, probe.ProtoICMP, 0},
	} {
		o, err := parseArgs(t, tc.args...)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if c := o.cfg.WithDefaults(); c.Protocol != tc.proto || c.DstPort != tc.dport {
			t.Errorf("%q: protocol %v dstport %d, want %v %d", tc.args, c.Protocol, c.DstPort, tc.proto, tc.dport)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--protocol", "sctp", "x"}, `--protocol "sctp"`},
		{[]string{"--protocol", "UDP", "x"}, `--protocol "UDP"`},
		{[]string{"--protocol", "icmp", "--dstport", "80", "x"}, "--dstport 80"},
		{[]string{"--protocol", "icmp", "-6", "x"}, "IPv6 runs (-6) send udp probes only"},
		{[]string{"--protocol", "tcp", "--dstport", "0", "x"}, "--dstport 0"},
		{[]string{"--protocol", "tcp", "--dstport", "65536", "x"}, "--dstport 65536"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast"}, tc.args...), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, stderr.String(), exitError, tc.want)
		}
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"traceflow-fast", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"--protocol", "SYN-ACK", "RST", "echo reply", "echo identifier", "80 with tcp"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// protoTrace is the part of a JSON result TestLabProtocols checks.
type protoTrace struct {
	Flows []struct {
		PathID     int  `json:"path_id"`
		Reached    bool `json:"reached"`
		ReachedTTL int  `json:"reached_ttl"`
		Hops       []struct {
			TTL      int      `json:"ttl"`
			Addr     *string  `json:"addr"`
			RTT      *float64 `json:"rtt_ms"`
			ICMPType *int     `json:"icmp_type"`
			ICMPCode *int     `json:"icmp_code"`
		} `json:"hops"`
	} `json:"flows"`
}

// TestLabProtocols traces the 4-way diamond with 16 path IDs of each
// protocol. UDP and TCP flows are hashed on their ports by the routers' L4
// multipath hash (fib_multipath_hash_policy=1), TCP against a closed port
// (RST) and an open one (SYN-ACK); ICMP echo requests on their identifier
// (the lab's load balancers hash it with nftables, as routers hashing the
// ICMP header do; Linux's multipath hash does not read it), with two ranges
// of identifiers. Every protocol finds the destination and the 4 paths.
// ICMP is IPv4 only (-6 refuses it), so this is too.
func TestLabProtocols(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	want := expectedSet(l)

	// An open TCP port on the destination.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listener := l.Command(ctx, "dst", "/usr/bin/python3", "-c", `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(256)
print("ready", flush=True)
time.sleep(120)
`)
	stdout, err := listener.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // kills the listener
		_ = listener.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("listener in the destination: %q, %v", line, err)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"udp", []string{"--protocol", "udp"}},
		{"tcp closed port", []string{"--protocol", "tcp"}},
		{"tcp open port", []string{"--protocol", "tcp", "--dstport", "8080"}},
		{"icmp", []string{"--protocol", "icmp"}},
		{"icmp other identifiers", []string{"--protocol", "icmp", "--srcport", "50000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := traceIn(t, l, append(tc.args, "--paths", "16", "--format", "json", "--wait", waitAnswered, lab.Destination)...)
			if out.code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
			}
			if m := doneLine.FindStringSubmatch(out.stderr); m == nil || m[3] != "0" {
				t.Errorf("the filter passed packets the decoder did not match (or no summary line):\n%s", out.stderr)
			}
			rs := parseResults(t, out.stdout)
			if len(rs) != 1 {
				t.Fatalf("%d JSON lines, want 1", len(rs))
			}
			r := rs[0]
			var tr protoTrace
			if err := json.Unmarshal([]byte(strings.TrimSpace(out.stdout)), &tr); err != nil {
				t.Fatal(err)
			}
			if len(tr.Flows) != 16 {
				t.Fatalf("%d flows, want 16", len(tr.Flows))
			}
			maxRTT := rttBound(t, out.stderr)
			for _, f := range tr.Flows {
				if !f.Reached || f.ReachedTTL != len(f.Hops) || f.ReachedTTL != 4 {
					t.Errorf("path ID %d: reached=%v at %d with %d hops", f.PathID, f.Reached, f.ReachedTTL, len(f.Hops))
				}
				for _, h := range f.Hops {
					if h.Addr == nil || h.RTT == nil || *h.RTT <= 0 || *h.RTT > maxRTT {
						t.Errorf("path ID %d TTL %d: addr %v rtt %v", f.PathID, h.TTL, h.Addr, h.RTT)
					}
				}
			}
			got := pathSet(r)
			if last := tr.Flows[0].Hops[len(tr.Flows[0].Hops)-1]; last.ICMPType != nil && last.ICMPCode != nil {
				t.Logf("the destination answered with type %d code %#x", *last.ICMPType, *last.ICMPCode)
			}
			t.Logf("%d distinct paths: %q", len(got), got)
			if !slices.Equal(got, want) {
				t.Fatalf("distinct paths\n got %q\nwant %q", got, want)
			}
		})
	}
}
