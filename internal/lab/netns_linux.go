package lab

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
)

// InNS runs fn on the calling goroutine's OS thread switched into the
// namespace of node ns ("prober" -> PREFIX-prober), then switches back.
//
// Sockets that fn opens belong to that namespace for their whole life and may
// be used from any goroutine afterwards: open them in fn, use them outside.
// Goroutines that fn starts do not run in the namespace.
func (l *Lab) InNS(ns string, fn func() error) error {
	return inNetns("/run/netns/"+l.NS(ns), fn)
}

func inNetns(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer target.Close()

	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: %w", err)
	}
	defer self.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := setns(self); err != nil {
		// Leave the thread locked: the runtime ends a thread still locked
		// when its goroutine exits, so no other goroutine runs in ns.
		return errors.Join(ferr, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("lab: %w", os.NewSyscallError("setns", err))
	}
	return nil
}

// sweep removes the labs, and the other namespaces of tests, that test
// processes now gone left behind.
func sweep() { netnstest.Sweep() }
