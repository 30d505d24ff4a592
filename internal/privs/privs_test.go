//go:build linux

package privs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// privsChildEnv makes TestDropPrivileges run as the child process that
// drops its privileges and reports its threads' capability sets.
const privsChildEnv = "TRACEFLOW_FAST_PRIVS_CHILD"

// nobody is the unprivileged user the test runs the child as.
const nobody = 65534

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
	call := Drop
	if os.Getenv(privsChildEnv) == "keep" {
		call = KeepTracing
	}
	if err := call(); err != nil {
		fail(err)
	}
	// Threads started after the drop inherit it.
	lockedThread()
	ready.Wait()
	// A second call has nothing left to drop.
	if err := call(); err != nil {
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
	return runChild(t, exe, cred, "drop")
}

// runChild runs the test binary at exe as dropChild, calling Drop (call
// "drop") or KeepTracing ("keep").
func runChild(t *testing.T, exe string, cred *syscall.Credential, call string) (before threadStatus, after []threadStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestDropPrivileges$")
	cmd.Env = append(os.Environ(), privsChildEnv+"="+call)
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

// TestDropPrivileges checks, in a child process, that Drop
// leaves every thread (locked ones, and one started afterwards) with empty
// effective, permitted, inheritable and ambient sets and no_new_privs set:
// as root, and as an unprivileged user, for whom it succeeds with nothing
// to drop.
func TestDropPrivileges(t *testing.T) {
	if os.Getenv(privsChildEnv) != "" {
		dropChild()
	}
	testenv.RequireRoot(t)
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
		exe := testenv.PublicCopy(t, self)
		before, after := runDropChild(t, exe, &syscall.Credential{Uid: nobody, Gid: nobody})
		if before.eff != noCaps || before.prm != noCaps {
			t.Fatalf("child as nobody started with capabilities: %v", before)
		}
		check(t, after)
	})
}

// tracingCaps is CAP_NET_RAW (13) and CAP_BPF (39), as /proc shows a set.
const tracingCaps = "0000008000002000"

// TestKeepTracing checks, in a child process, that KeepTracing leaves
// every thread with CAP_NET_RAW and CAP_BPF alone in its effective,
// permitted and (as root) bounding sets, none inheritable or ambient, and
// no_new_privs set; and that for an unprivileged user it succeeds with
// nothing to keep.
func TestKeepTracing(t *testing.T) {
	testenv.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before, after := runChild(t, exe, nil, "keep")
	if before.eff == noCaps || before.amb == noCaps {
		t.Fatalf("child started without capabilities: %v", before)
	}
	if len(after) < 6 {
		t.Errorf("%d threads, want the main thread and at least 5 others", len(after))
	}
	for _, s := range after {
		if s.eff != tracingCaps || s.prm != tracingCaps || s.bnd != tracingCaps || s.inh != noCaps || s.amb != noCaps || s.noNewPrivs != "1" {
			t.Errorf("want CAP_NET_RAW and CAP_BPF alone (%s) effective, permitted and bounding: %v", tracingCaps, s)
		}
	}
	_, after = runChild(t, testenv.PublicCopy(t, exe), &syscall.Credential{Uid: nobody, Gid: nobody}, "keep")
	for _, s := range after {
		if s.eff != noCaps || s.prm != noCaps || s.noNewPrivs != "1" {
			t.Errorf("as nobody: %v", s)
		}
	}
}
