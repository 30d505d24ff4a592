package bpf

import (
	"os"

	cbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func init() {
	classicSupported = true
	attachClassic = attachSockFilter
}

// attachSockFilter attaches prog to fd with setsockopt SO_ATTACH_FILTER,
// which any process may do on a socket it holds. The kernel checks the
// program there (EINVAL if it is not valid).
func attachSockFilter(fd int, prog []cbpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return os.NewSyscallError("setsockopt", unix.EINVAL)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}
