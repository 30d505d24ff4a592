package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// LoadFilter validates m and loads the socket filter for it into the kernel.
// That needs CAP_BPF (or root) on kernels with
// kernel.unprivileged_bpf_disabled set; without it the error satisfies
// errors.Is(err, os.ErrPermission). A rejection by the kernel's verifier is
// reported as an *ebpf.VerifierError (errors.As) and never as a permission
// error, although the kernel returns EACCES for most rejections.
func LoadFilter(m Match) (*Filter, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("bpf: load filter: %w", err)
	}
	spec, err := loadFilter()
	if err != nil {
		return nil, fmt.Errorf("bpf: load filter: %w", err)
	}
	// The program compares the quoted source address as raw bytes, so SRC
	// (SRC6) holds it in network byte order; the other keys are numbers.
	src := m.Src.Unmap()
	var srcVar string
	var srcValue any
	if src.Is6() {
		srcVar, srcValue = filterVarSRC6, src.As16()
	} else {
		srcVar, srcValue = filterVarSRC, src.As4()
	}
	vars := []struct {
		name  string
		value any
	}{
		{filterVarPROTO, m.Proto.IPProto()},
		{srcVar, srcValue},
		{filterVarTAG, m.Tag},
		{filterVarTAG_SHIFT, uint16(probe.TagShift)},
		{filterVarSPORT_MIN, m.SrcPortMin},
		{filterVarSPORT_MAX, m.SrcPortMax},
		{filterVarDPORT, m.DstPort},
	}
	for _, v := range vars {
		vs, ok := spec.Variables[v.name]
		if !ok {
			return nil, fmt.Errorf("bpf: load filter: object has no variable %s", v.name)
		}
		if err := vs.Set(v.value); err != nil {
			return nil, fmt.Errorf("bpf: load filter: %w", err)
		}
	}
	// LoadAndAssign loads only what it assigns: the program of the run's
	// family.
	var prog *ebpf.Program
	if src.Is6() {
		var objs struct {
			Prog *ebpf.Program `ebpf:"traceflow_icmp6"`
		}
		err = spec.LoadAndAssign(&objs, nil)
		prog = objs.Prog
	} else {
		var objs struct {
			Prog *ebpf.Program `ebpf:"traceflow_icmp"`
		}
		err = spec.LoadAndAssign(&objs, nil)
		prog = objs.Prog
	}
	if err != nil {
		return nil, loadError(err)
	}
	return &Filter{prog: prog}, nil
}

// loadError wraps an error from loading the program.
func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && len(ve.Log) > 0 {
		// The verifier ran (a privilege error comes before it, with no
		// log) and said no, most likely with EACCES, which errors.Is would
		// take for os.ErrPermission: do not unwrap to the errno.
		return &rejectedError{ve}
	}
	return fmt.Errorf("bpf: load filter: %w", err)
}

// rejectedError is a verifier rejection. errors.As finds the
// *ebpf.VerifierError (whose %+v prints the whole verifier log) but errors.Is
// does not see its errno.
type rejectedError struct{ ve *ebpf.VerifierError }

func (e *rejectedError) Error() string {
	return "bpf: load filter: rejected by the verifier: " + e.ve.Error()
}

func (e *rejectedError) As(target any) bool {
	p, ok := target.(**ebpf.VerifierError)
	if ok {
		*p = e.ve
	}
	return ok
}

// Attach attaches the filter to the socket fd (setsockopt SO_ATTACH_BPF),
// replacing any filter it had. Attach it before binding the socket to a
// protocol, or in place of a filter that dropped everything since then (as
// capture.Listen does): otherwise packets queued in between are not filtered.
func (f *Filter) Attach(fd int) error {
	if f == nil || f.prog == nil {
		return fmt.Errorf("bpf: attach filter: %w", os.ErrClosed)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, f.prog.FD()); err != nil {
		return fmt.Errorf("bpf: attach filter: %w", os.NewSyscallError("setsockopt", err))
	}
	return nil
}
