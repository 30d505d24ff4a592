package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// privsChildEnv makes TestDropPrivileges run as the child process that
// drops its privileges and reports its threads' capability sets.
const privsChildEnv = "TRACEFLOW_FAST_PRIVS_CHILD"

// nobody is the unprivileged user the tests run programs as.
const nobody = 65534

// needRootOnly skips the test unless it runs as root, and fails it instead
// with CI=true.
func needRootOnly(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (euid 0) (CI=true: failing instead of skipping)")
	}
	t.Skip("needs root (euid 0)")
}

// threadStatus is the privilege state of one thread, from
// /proc/self/task/TID/status.
type threadStatus struct {
	tid                                 string
	inh, prm, eff, bnd, amb, noNewPrivs string
}

func (s threadStatus) String() string {
	return fmt.Sprintf("task %s CapInh=%s CapPrm=%s CapEff=%s CapBnd=%s CapAmb=%s NoNewPrivs=%s",
		s.tid, s.inh, s.prm, s.eff, s.bnd, s.amb, s.noNewPrivs)
}

func readThreadStatus(path string) (threadStatus, error) {
	s := threadStatus{tid: filepath.Base(filepath.Dir(path))}
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	fields := map[string]*string{
		"CapInh": &s.inh, "CapPrm": &s.prm, "CapEff": &s.eff, "CapBnd": &s.bnd,
		"CapAmb": &s.amb, "NoNewPrivs": &s.noNewPrivs,
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if p := fields[k]; ok && p != nil {
			*p = strings.TrimSpace(v)
		}
	}
	for k, p := range fields {
		if *p == "" {
			return s, fmt.Errorf("%s: no %s", path, k)
		}
	}
	return s, nil
}

// dropChild is the child of TestDropPrivileges: with several threads
// running, some locked to their goroutine, and (as root) a capability in
// each of its sets, it drops its privileges, starts
// one more thread, and prints the state of every thread. It exits.
func dropChild() {
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	hold := make(chan struct{})
	var ready sync.WaitGroup
	lockedThread := func() {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			ready.Done()
			<-hold
		}()
	}
	for range 4 {
		lockedThread()
	}
	ready.Wait()
	if os.Geteuid() == 0 {
		// Something in every set: CAP_NET_RAW inheritable and ambient.
		c := cap.GetProc()
		if err := c.SetFlag(cap.Inheritable, true, cap.NET_RAW); err != nil {
			fail(err)
		}
		if err := c.SetProc(); err != nil {
			fail(err)
		}
		if err := cap.SetAmbient(true, cap.NET_RAW); err != nil {
			fail(err)
		}
	}
	before, err := readThreadStatus("/proc/thread-self/status")
	if err != nil {
		fail(err)
	}
	fmt.Println("before", before)
	if err := dropPrivileges(); err != nil {
		fail(err)
	}
	// Threads started after the drop inherit it.
	lockedThread()
	ready.Wait()
	// A second call has nothing left to drop.
	if err := dropPrivileges(); err != nil {
		fail(fmt.Errorf("second call: %w", err))
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		fail(fmt.Errorf("no threads listed: %v", err))
	}
	for _, path := range tasks {
		s, err := readThreadStatus(path)
		if err != nil {
			fail(err)
		}
		fmt.Println(s)
	}
	close(hold)
	os.Exit(0)
}

// runDropChild runs the test binary at exe as dropChild, with cred unless
// it is nil, and returns the states it printed: before the drop, and of
// every thread after it.
func runDropChild(t *testing.T, exe string, cred *syscall.Credential) (before threadStatus, after []threadStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestDropPrivileges$")
	cmd.Env = append(os.Environ(), privsChildEnv+"=1")
	cmd.Dir = filepath.Dir(exe)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		var s threadStatus
		tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		if tag != "before" && tag != "task" {
			continue
		}
		if tag == "before" {
			_, rest, _ = strings.Cut(rest, " ") // "task"
		}
		if _, err := fmt.Sscanf(rest, "%s CapInh=%s CapPrm=%s CapEff=%s CapBnd=%s CapAmb=%s NoNewPrivs=%s",
			&s.tid, &s.inh, &s.prm, &s.eff, &s.bnd, &s.amb, &s.noNewPrivs); err != nil {
			t.Fatalf("child line %q: %v", line, err)
		}
		if tag == "before" {
			before = s
		} else {
			after = append(after, s)
		}
	}
	if before.tid == "" || len(after) == 0 {
		t.Fatalf("child printed no thread states:\n%s", out)
	}
	return before, after
}

const noCaps = "0000000000000000"

// TestDropPrivileges checks, in a child process, that dropPrivileges
// leaves every thread (locked ones, and one started afterwards) with empty
// effective, permitted, inheritable and ambient sets and no_new_privs set:
// as root, and as an unprivileged user, for whom it succeeds with nothing
// to drop.
func TestDropPrivileges(t *testing.T) {
	if os.Getenv(privsChildEnv) != "" {
		dropChild()
	}
	needRootOnly(t)
	check := func(t *testing.T, after []threadStatus) {
		t.Helper()
		if len(after) < 6 {
			t.Errorf("%d threads, want the main thread and at least 5 others", len(after))
		}
		for _, s := range after {
			if s.eff != noCaps || s.prm != noCaps || s.inh != noCaps || s.amb != noCaps {
				t.Errorf("capabilities left: %v", s)
			}
			if s.noNewPrivs != "1" {
				t.Errorf("no_new_privs not set: %v", s)
			}
		}
	}

	t.Run("root", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		before, after := runDropChild(t, exe, nil)
		if before.eff == noCaps || before.prm == noCaps || before.inh == noCaps || before.amb == noCaps {
			t.Fatalf("child started without capabilities: %v", before)
		}
		check(t, after)
		for _, s := range after {
			if s.bnd != noCaps { // root holds CAP_SETPCAP
				t.Errorf("bounding set left: %v", s)
			}
		}
	})

	t.Run("nobody", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		exe := publicCopy(t, self)
		before, after := runDropChild(t, exe, &syscall.Credential{Uid: nobody, Gid: nobody})
		if before.eff != noCaps || before.prm != noCaps {
			t.Fatalf("child as nobody started with capabilities: %v", before)
		}
		check(t, after)
	})
}

// publicCopy copies the executable src into a new directory that user
// nobody can reach and on a file system that honours file capabilities
// (not mounted nosuid), and returns the copy's path. The directory is
// removed when the test ends.
func publicCopy(t *testing.T, src string) string {
	t.Helper()
	var tried []string
	for _, base := range []string{os.TempDir(), "/var/tmp"} {
		dir, err := os.MkdirTemp(base, "traceflow-fast-privs")
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		if why := unfitDir(dir); why != "" {
			os.RemoveAll(dir)
			tried = append(tried, dir+": "+why)
			continue
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		dst := filepath.Join(dir, filepath.Base(src))
		if err := copyFile(dst, src); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	t.Fatalf("no directory for a binary that user nobody runs with file capabilities: %s", strings.Join(tried, "; "))
	return ""
}

// unfitDir makes dir 0755 and tells why nobody could not run a binary with
// file capabilities from it, or "".
func unfitDir(dir string) string {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err.Error()
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err.Error()
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return d + " is not searchable by others (" + fi.Mode().String() + ")"
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err.Error()
	}
	if st.Flags&unix.ST_NOSUID != 0 {
		return "mounted nosuid: file capabilities are ignored"
	}
	return ""
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

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
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		msg := "needs setcap (Debian package libcap2-bin): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
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
			exe := publicCopy(t, bin)
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
					out := runAsNobody(t, l, exe, "--paths", "16", "--format", "json", "--wait", "0.5", lab.Destination)
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
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		msg := "needs setcap (Debian package libcap2-bin): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
	unprivBPF := false
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled"); err == nil {
		unprivBPF = strings.TrimSpace(string(b)) == "0"
	}
	bin, err := binary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	exe := publicCopy(t, bin)
	if out, err := exec.Command(setcap, "cap_net_raw+ep", exe).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	l := lab.Up(t, "nested")
	if _, stderr, err := l.Run("prober", "ip", "-6", "neigh", "flush", "dev", "to-r1"); err != nil {
		t.Fatalf("flush: %v: %s", err, stderr)
	}
	out := runAsNobody(t, l, exe, "--format", "json", "--wait", "0.5", lab.Destination6)
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
