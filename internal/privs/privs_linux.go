// Package privs gives up a process's privileges once what needs them is
// open: the sockets of a run, the files it writes.
package privs

import (
	"fmt"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Drop gives up every capability for the rest of the run. Call it
// once the sockets are open and their filter is attached: they keep working,
// but nothing else the process does afterwards (decoding replies, writing
// results, serving the browser view) runs with privileges.
//
// On every thread of the process (capabilities and no_new_privs are
// per-thread on Linux; libcap's psx mirrors each change on all of them) it
//
//   - sets no_new_privs, so that no program executed later gains privileges
//     from set-user-ID bits or file capabilities (always permitted);
//   - drops the whole bounding set too when the process holds CAP_SETPCAP
//     (root does; a binary granted cap_net_raw,cap_bpf does not and keeps
//     its bounding set, which no_new_privs makes moot);
//   - clears the ambient, inheritable, permitted and effective sets.
//
// A process without capabilities (an unprivileged user, or a run with
// --help) has none to drop: then it only sets no_new_privs and returns nil.
// The user ID does not change: root stays uid 0, without capabilities.
func Drop() error {
	return keep(cap.NewSet(), "drop privileges")
}

// KeepTracing gives up every capability but the two a run needs to open
// its sockets and attach their filter, CAP_NET_RAW and CAP_BPF, for a
// process that opens them again and again (an agent taking measurement
// after measurement). It is Drop, keeping those two in the permitted and
// effective sets and, for a process holding CAP_SETPCAP, in the bounding
// set. A process holding neither keeps nothing.
func KeepTracing() error {
	held, err := cap.GetPID(0)
	if err != nil {
		return fmt.Errorf("keep the capabilities of tracing: %w", err)
	}
	want := cap.NewSet()
	for _, c := range []cap.Value{cap.NET_RAW, cap.BPF} {
		if on, _ := held.GetFlag(cap.Permitted, c); on {
			if err := want.SetFlag(cap.Permitted, true, c); err != nil {
				return err
			}
			if err := want.SetFlag(cap.Effective, true, c); err != nil {
				return err
			}
		}
	}
	return keep(want, "keep the capabilities of tracing")
}

// keep gives up every capability but those of want (see Drop), and sets
// no_new_privs; what is the start of its errors.
func keep(want *cap.Set, what string) error {
	if _, err := cap.Prctlw(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("%s: set no_new_privs: %w", what, err)
	}
	held, err := cap.GetPID(0)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d, err := held.Cf(want); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if d == 0 && !anyAmbient() {
		return nil // nothing held beyond want
	}

	if ok, _ := held.GetFlag(cap.Permitted, cap.SETPCAP); ok {
		if err := dropBoundingSet(held, want); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := cap.ResetAmbient(); err != nil {
		return fmt.Errorf("%s: clear the ambient set: %w", what, err)
	}
	if err := want.SetProc(); err != nil {
		return fmt.Errorf("%s: set the capability sets: %w", what, err)
	}
	// Check: a capset that the kernel took only in part would be a bug.
	left, err := cap.GetPID(0)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d, err := left.Cf(want); err != nil || d != 0 || anyAmbient() {
		return fmt.Errorf("%s: capabilities left: %v", what, left)
	}
	return nil
}

// dropBoundingSet empties the bounding set but for the permitted
// capabilities of want, which needs CAP_SETPCAP in the effective set (held
// has it permitted).
func dropBoundingSet(held, want *cap.Set) error {
	w, err := held.Dup()
	if err != nil {
		return err
	}
	if err := w.SetFlag(cap.Effective, true, cap.SETPCAP); err != nil {
		return err
	}
	if err := w.SetProc(); err != nil {
		return fmt.Errorf("raise CAP_SETPCAP: %w", err)
	}
	for c := cap.Value(0); c < cap.MaxBits(); c++ {
		if ok, err := cap.GetBound(c); err != nil || !ok {
			continue
		}
		if kept, _ := want.GetFlag(cap.Permitted, c); kept {
			continue
		}
		if err := cap.DropBound(c); err != nil {
			return fmt.Errorf("drop %v from the bounding set: %w", c, err)
		}
	}
	return nil
}

// anyAmbient reports whether the ambient set holds a capability.
func anyAmbient() bool {
	for c := cap.Value(0); c < cap.MaxBits(); c++ {
		if on, err := cap.GetAmbient(c); err == nil && on {
			return true
		}
	}
	return false
}
