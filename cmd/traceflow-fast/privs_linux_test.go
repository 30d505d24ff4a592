package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// nobody is the unprivileged user the tests run programs as.
const nobody = 65534

// nocgoBinary builds the command as the Makefile does (CGO_ENABLED=0, where
// capability changes reach every thread through the Go runtime's
// syscall.AllThreadsSyscall rather than libpsx), beside binary()'s, so
// that TestMain removes it.
var nocgoBinary = sync.OnceValues(func() (string, error) {
	bin, err := binary()
	if err != nil {
		return "", err
	}
	out := filepath.Join(filepath.Dir(bin), "traceflow-fast-nocgo")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New(string(b))
	}
	return out, nil
})

// runAsNobody runs exe with args as user nobody in the lab's prober
// namespace and returns what it printed and its exit code.
func runAsNobody(t *testing.T, l *lab.Lab, exe string, args ...string) runOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = filepath.Dir(exe)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The child is forked from a thread in the namespace, so it starts
	// there: `ip netns exec` would need privileges nobody lacks.
	if err := l.InNS("prober", cmd.Start); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", exe, args, err)
	}
	return runOutput{stdout.String(), stderr.String(), code}
}

// TestUnprivilegedWithFileCaps runs the command the way a user would
// after `setcap cap_net_raw,cap_bpf+ep`: as user nobody, with only file
// capabilities, in the prober namespace of the diamond4 lab. It must find
// the 4 paths with the eBPF filter; with cap_net_raw alone it must fall
// back to the classic filter (saying so on standard error) and find them
// too; without capabilities it must fail, naming CAP_NET_RAW. Both builds
// are run: the test build and one as the Makefile builds it (CGO_ENABLED=0).
func TestUnprivilegedWithFileCaps(t *testing.T) {
	lab.RequireRoot(t)
	setcap := testenv.RequireTool(t, "setcap", "libcap2-bin")
	// Whether eBPF socket filters load without CAP_BPF here: then the
	// cap_net_raw run needs no fallback.
	unprivBPF := false
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled"); err == nil {
		unprivBPF = strings.TrimSpace(string(b)) == "0"
	}

	builds := []struct {
		name  string
		build func() (string, error)
	}{{"test-build", binary}, {"cgo-disabled", nocgoBinary}}
	l := lab.Up(t, "diamond4")
	want := expectedSet(l)
	if len(want) != 4 {
		t.Fatalf("diamond4 has %d distinct paths, want 4: %q", len(want), want)
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			bin, err := b.build()
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			exe := testenv.PublicCopy(t, bin)
			for _, tc := range []struct {
				caps    string // "" removes them
				classic bool
			}{
				{"cap_net_raw,cap_bpf+ep", false},
				{"cap_net_raw+ep", !unprivBPF},
				{"", false},
			} {
				name := tc.caps
				if name == "" {
					name = "none"
				}
				t.Run(name, func(t *testing.T) {
					args := []string{tc.caps, exe}
					if tc.caps == "" {
						args = []string{"-r", exe}
					}
					if out, err := exec.Command(setcap, args...).CombinedOutput(); err != nil && tc.caps != "" {
						t.Fatalf("setcap %s: %v: %s", strings.Join(args, " "), err, out)
					}
					out := runAsNobody(t, l, exe, "--paths", "16", "--format", "json", "--wait", waitAnswered, lab.Destination)
					if tc.caps == "" {
						if out.code != exitError || !strings.Contains(out.stderr, "CAP_NET_RAW") {
							t.Fatalf("without capabilities: exit %d, want %d and a word on CAP_NET_RAW; stderr:\n%s",
								out.code, exitError, out.stderr)
						}
						return
					}
					if out.code != exitOK {
						t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
					}
					rs := parseResults(t, out.stdout)
					if len(rs) != 1 {
						t.Fatalf("%d JSON lines, want 1", len(rs))
					}
					if got := pathSet(rs[0]); !slices.Equal(got, want) {
						t.Errorf("distinct paths\n got %q\nwant %q", got, want)
					}
					if len(rs[0].Flows) != 16 {
						t.Errorf("%d flows, want 16", len(rs[0].Flows))
					}
					if said := mentionsClassic(out.stderr); said != tc.classic {
						t.Errorf("classic BPF fallback reported on stderr: %v, want %v; stderr:\n%s", said, tc.classic, out.stderr)
					}
				})
			}
		})
	}
}

// mentionsClassic reports whether a line of stderr mentions the classic
// BPF filter.
func mentionsClassic(stderr string) bool {
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		if strings.Contains(strings.ToLower(sc.Text()), "classic") {
			return true
		}
	}
	return false
}

// TestLabIPv6Unprivileged traces over IPv6 as user nobody with only
// cap_net_raw (the classic BPF filter's IPv6 program then filters, unless
// this kernel loads eBPF without privileges), the prober's neighbour cache
// flushed first: r1 is found by neighbour discovery started without
// CAP_NET_ADMIN.
func TestLabIPv6Unprivileged(t *testing.T) {
	lab.RequireRoot(t)
	setcap := testenv.RequireTool(t, "setcap", "libcap2-bin")
	unprivBPF := false
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled"); err == nil {
		unprivBPF = strings.TrimSpace(string(b)) == "0"
	}
	bin, err := binary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	exe := testenv.PublicCopy(t, bin)
	if out, err := exec.Command(setcap, "cap_net_raw+ep", exe).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	l := lab.Up(t, "nested")
	if _, stderr, err := l.Run("prober", "ip", "-6", "neigh", "flush", "dev", "to-r1"); err != nil {
		t.Fatalf("flush: %v: %s", err, stderr)
	}
	out := runAsNobody(t, l, exe, "--format", "json", "--wait", waitAnswered, lab.Destination6)
	if out.code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
	}
	if got, want := pathSet(parseResults(t, out.stdout)[0]), expectedSet6(l); !slices.Equal(got, want) {
		t.Errorf("distinct paths\n got %q\nwant %q", got, want)
	}
	if said := mentionsClassic(out.stderr); said == unprivBPF {
		t.Errorf("classic BPF fallback reported: %v, want %v; stderr:\n%s", said, !unprivBPF, out.stderr)
	}
	if m := doneLog(t, out.stderr); m["unmatched"] != "0" {
		t.Errorf("done line %v", m)
	}
}
