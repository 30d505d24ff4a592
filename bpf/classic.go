package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/cilium/ebpf"
	cbpf "golang.org/x/net/bpf"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Attacher is a socket filter ready to be attached to receive sockets:
// *Filter (eBPF, SO_ATTACH_BPF) and *Classic (classic BPF,
// SO_ATTACH_FILTER). Its Attach fits capture.Config.Attach.
type Attacher interface {
	// Attach attaches the filter to the socket fd, replacing any filter it
	// had. Attach it before binding the socket to a protocol.
	Attach(fd int) error
	// Close releases the filter; sockets it is attached to keep filtering.
	Close() error
}

var (
	_ Attacher = (*Filter)(nil)
	_ Attacher = (*Classic)(nil)
)

// Filter kinds that Load returns.
const (
	KindEBPF    = "ebpf"    // *Filter, loaded with bpf(2)
	KindClassic = "classic" // *Classic
)

// Load loads the eBPF filter for m (LoadFilter) and, when the kernel will not
// load it here, builds the equivalent classic BPF filter (LoadClassic)
// instead, which any process may attach. kind tells which one it returned
// (KindEBPF or KindClassic); with KindClassic, the Attacher is a *Classic
// whose FallbackReason is the eBPF error, for the caller to log.
//
// It falls back when the eBPF error is one of:
//
//   - a permission error (errors.Is(err, os.ErrPermission): EPERM or EACCES
//     before the verifier ran): no CAP_BPF with
//     kernel.unprivileged_bpf_disabled set, a seccomp or LSM policy that
//     denies bpf(2), or a RLIMIT_MEMLOCK too low on kernels before 5.11;
//   - ENOSYS: a kernel built without bpf(2) (CONFIG_BPF_SYSCALL=n);
//   - ebpf.ErrNotSupported, EOPNOTSUPP or ENOTSUPP: a kernel that lacks a
//     feature the program needs (socket filter programs, read-only global
//     data);
//   - EINVAL with no verifier log: a kernel too old to understand the load
//     attributes;
//   - a rejection by the verifier (*ebpf.VerifierError): an older verifier
//     that cannot prove the program safe.
//
// Any other error is returned as it is: an invalid m (which LoadClassic
// would refuse too), a resource shortage (ENOMEM, EMFILE) or a broken
// embedded object.
func Load(m Match) (a Attacher, kind string, err error) {
	if err := m.validate(); err != nil {
		return nil, "", fmt.Errorf("bpf: load filter: %w", err)
	}
	f, err := LoadFilter(m)
	if err == nil {
		return f, KindEBPF, nil
	}
	if !classicSupported || !fallBack(err) {
		return nil, "", err
	}
	c, cerr := LoadClassic(m)
	if cerr != nil {
		return nil, "", errors.Join(err, cerr)
	}
	c.reason = err
	return c, KindClassic, nil
}

// enotsupp is the kernel's internal ENOTSUPP (524), which bpf(2) leaks to
// user space for some missing features.
const enotsupp = syscall.Errno(524)

// fallBack reports whether the eBPF load error err means this kernel or
// this process cannot use eBPF socket filters (see Load).
func fallBack(err error) bool {
	var ve *ebpf.VerifierError
	switch {
	case errors.Is(err, os.ErrPermission),
		errors.Is(err, syscall.ENOSYS),
		errors.Is(err, ebpf.ErrNotSupported),
		errors.Is(err, syscall.EOPNOTSUPP),
		errors.Is(err, enotsupp):
		return true
	case errors.As(err, &ve):
		// A rejection (with a log) or an EINVAL before the verifier
		// ran (without one). Other causes (ENOMEM, ...) are not about
		// what the kernel supports.
		return len(ve.Log) > 0 || errors.Is(ve.Cause, syscall.EINVAL)
	case errors.Is(err, syscall.EINVAL):
		return true
	}
	return false
}

// Classic is the classic BPF (cBPF) equivalent of the eBPF filter: the same
// packets pass, whole. Attaching it (SO_ATTACH_FILTER) needs no capability,
// so it serves when eBPF cannot be loaded; it runs a little slower, through
// the kernel's translation of classic BPF into eBPF. It is not safe for
// concurrent use.
type Classic struct {
	insns  []cbpf.Instruction
	raw    []cbpf.RawInstruction
	reason error
}

// LoadClassic validates m and builds the classic BPF filter for it. It makes
// no system call: the kernel checks the program when it is attached.
func LoadClassic(m Match) (*Classic, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("bpf: load classic filter: %w", err)
	}
	insns, err := classicProgram(m)
	if err != nil {
		return nil, fmt.Errorf("bpf: load classic filter: %w", err)
	}
	raw, err := cbpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("bpf: load classic filter: %w", err)
	}
	return &Classic{insns: insns, raw: raw}, nil
}

// FallbackReason returns the eBPF error that made Load return c, or nil when
// c comes from LoadClassic.
func (c *Classic) FallbackReason() error { return c.reason }

// Attach attaches the filter to the socket fd (setsockopt SO_ATTACH_FILTER),
// replacing any filter it had. Attach it before binding the socket to a
// protocol, or in place of a filter that dropped everything since then (as
// capture.Listen does): otherwise packets queued in between are not filtered.
func (c *Classic) Attach(fd int) error {
	if c == nil || c.raw == nil {
		return fmt.Errorf("bpf: attach classic filter: %w", os.ErrClosed)
	}
	if err := attachClassic(fd, c.raw); err != nil {
		return fmt.Errorf("bpf: attach classic filter: %w", err)
	}
	return nil
}

// Close forgets the program: the kernel holds its own copy in every socket
// it is attached to. Close is idempotent.
func (c *Classic) Close() error {
	if c != nil {
		c.insns, c.raw = nil, nil
	}
	return nil
}

// classicSupported and attachClassic are replaced on Linux
// (classic_linux.go), the only system with SO_ATTACH_FILTER.
var (
	classicSupported = false
	attachClassic    = func(fd int, prog []cbpf.RawInstruction) error {
		return fmt.Errorf("not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	}
)

// Classic filter programs are written with forward jumps to labels, which
// assemble resolves into skip counts.
type (
	label  string
	jumpTo struct {
		cond   cbpf.JumpTest
		val    uint32
		target label // taken when cond holds; otherwise fall through
	}
)

// assemble lays out items (cbpf.Instruction, label or jumpTo) as a program.
func assemble(items ...any) ([]cbpf.Instruction, error) {
	at := map[label]int{}
	n := 0
	for _, it := range items {
		switch it := it.(type) {
		case label:
			at[it] = n
		case jumpTo, cbpf.Instruction:
			n++
		default:
			return nil, fmt.Errorf("assemble: unexpected %T", it)
		}
	}
	out := make([]cbpf.Instruction, 0, n)
	for _, it := range items {
		switch it := it.(type) {
		case jumpTo:
			to, ok := at[it.target]
			if !ok {
				return nil, fmt.Errorf("assemble: no label %q", it.target)
			}
			skip := to - len(out) - 1
			if skip < 0 || skip > 255 {
				return nil, fmt.Errorf("assemble: jump to %q: cannot skip %d instructions", it.target, skip)
			}
			out = append(out, cbpf.JumpIf{Cond: it.cond, Val: it.val, SkipTrue: uint8(skip)})
		case cbpf.Instruction:
			out = append(out, it)
		}
	}
	return out, nil
}

// classicProgram returns the classic BPF program for m. It makes the same
// tests as filter.c; offset 0 is the IPv4 header. A verdict has no side
// effects, so the order of the tests does not change it. As the verifier
// prunes the eBPF program's branches for other protocols, the program holds
// only those of m.Proto.
//
// Where filter.c copies a whole region with bpf_skb_load_bytes, which fails
// (DROP) when the packet ends before the region does, the program loads the
// region's last byte: a classic load past the end of the packet ends the
// program with 0 (DROP) too.
func classicProgram(m Match) ([]cbpf.Instruction, error) {
	if m.Src.Unmap().Is6() {
		return classicProgram6(m)
	}
	p := prog4{m: m, src: binary.BigEndian.Uint32(m.Src.Unmap().AsSlice())}
	prog := p.outer()
	prog = append(prog, p.quote()...)
	if m.Proto == probe.ProtoICMP {
		prog = append(prog, p.echo()...)
	} else {
		prog = append(prog, p.quotedPorts()...)
	}
	if m.Proto == probe.ProtoTCP {
		prog = append(prog, p.tcpReply()...)
	}
	prog = append(prog, dropLabel, cbpf.RetConstant{Val: 0})
	return assemble(prog...)
}

// dropLabel is where the IPv4 program ends with 0 (DROP).
const dropLabel = label("drop")

// keepWhole keeps the whole packet: ICMP extensions follow the quote.
var keepWhole = cbpf.RetConstant{Val: 0xffffffff}

// Loads of 1, 2 or 4 bytes at off (ld*) or at X+off (ld*X), and an ALU
// operation with a constant.
func ldB(off uint32) cbpf.Instruction  { return cbpf.LoadAbsolute{Off: off, Size: 1} }
func ldH(off uint32) cbpf.Instruction  { return cbpf.LoadAbsolute{Off: off, Size: 2} }
func ldW(off uint32) cbpf.Instruction  { return cbpf.LoadAbsolute{Off: off, Size: 4} }
func ldBX(off uint32) cbpf.Instruction { return cbpf.LoadIndirect{Off: off, Size: 1} }
func ldHX(off uint32) cbpf.Instruction { return cbpf.LoadIndirect{Off: off, Size: 2} }
func ldWX(off uint32) cbpf.Instruction { return cbpf.LoadIndirect{Off: off, Size: 4} }
func aluK(op cbpf.ALUOp, v uint32) cbpf.Instruction {
	return cbpf.ALUOpConstant{Op: op, Val: v}
}
func andK(v uint32) cbpf.Instruction { return aluK(cbpf.ALUOpAnd, v) }

// unless drops the packet unless A cond v: it jumps to dropLabel on the
// opposite test.
func unless(cond cbpf.JumpTest, v uint32) jumpTo {
	switch cond {
	case cbpf.JumpEqual:
		cond = cbpf.JumpNotEqual
	case cbpf.JumpGreaterOrEqual:
		cond = cbpf.JumpLessThan
	case cbpf.JumpLessOrEqual:
		cond = cbpf.JumpGreaterThan
	default:
		panic(fmt.Sprintf("classicProgram: no opposite for jump test %v", cond))
	}
	return jumpTo{cond: cond, val: v, target: dropLabel}
}

// prog4 builds the parts of the IPv4 program for m; src is m.Src as a
// big-endian word.
type prog4 struct {
	m   Match
	src uint32
}

// ourPort drops the packet unless A is in the run's port range.
func (p prog4) ourPort() []any {
	return []any{
		unless(cbpf.JumpGreaterOrEqual, uint32(p.m.SrcPortMin)),
		unless(cbpf.JumpLessOrEqual, uint32(p.m.SrcPortMax)),
	}
}

// ourTag drops the packet unless the 16 bits in A carry the run tag.
func (p prog4) ourTag() []any {
	return []any{
		aluK(cbpf.ALUOpShiftRight, probe.TagShift),
		unless(cbpf.JumpEqual, uint32(p.m.Tag)),
	}
}

// toUs drops a direct reply unless it goes to our source address.
func (p prog4) toUs() []any { return []any{ldW(16), unless(cbpf.JumpEqual, p.src)} }

// outer checks the outer IPv4 header and the ICMP header, leaving X at the
// ICMP header; a TCP reply jumps to "tcp", an echo reply to "echo", and an
// ICMP error falls through to "quote".
func (p prog4) outer() []any {
	prog := []any{
		// skb->protocol (host byte order) is the ethertype.
		cbpf.LoadExtension{Num: cbpf.ExtProto},
		unless(cbpf.JumpEqual, 0x0800), // ETH_P_IP

		// The outer IPv4 header (RFC 791): whole (20 bytes), version
		// 4, not a later fragment, IHL >= 5, protocol ICMP (or TCP).
		ldB(19),
		ldB(0), andK(0xf0),
		unless(cbpf.JumpEqual, 4<<4),
		ldH(6),
		jumpTo{cond: cbpf.JumpBitsSet, val: 0x1fff, target: dropLabel}, // fragment offset
		// X = IHL*4, where the ICMP (or TCP) header starts.
		cbpf.LoadMemShift{Off: 0},
		cbpf.TXA{},
		unless(cbpf.JumpGreaterOrEqual, 20),
		ldB(9),
	}
	if p.m.Proto == probe.ProtoTCP {
		prog = append(prog, jumpTo{cond: cbpf.JumpEqual, val: 6, target: "tcp"})
	}
	prog = append(prog,
		unless(cbpf.JumpEqual, 1), // IPPROTO_ICMP

		// The ICMP header (8 bytes from X): all there.
		ldBX(8-1),
		ldBX(0),
	)
	if p.m.Proto == probe.ProtoICMP {
		prog = append(prog, jumpTo{cond: cbpf.JumpEqual, val: probe.ICMPEchoReply, target: "echo"})
	}
	return append(prog,
		// RFC 792: time exceeded or destination unreachable.
		jumpTo{cond: cbpf.JumpEqual, val: probe.ICMPTimeExceeded, target: "quote"},
		unless(cbpf.JumpEqual, probe.ICMPUnreachable),
	)
}

// quote checks the quoted IPv4 header of an ICMP error and leaves X at the
// quoted transport header minus 8.
func (p prog4) quote() []any {
	prog := []any{
		label("quote"),

		// The quoted IPv4 header without options (20 bytes from X+8):
		// all there, version 4, the run's protocol, IHL >= 5, our
		// source address, our run tag.
		ldBX(8 + 20 - 1),
		ldBX(8 + 0), andK(0xf0),
		unless(cbpf.JumpEqual, 4<<4),
		ldBX(8 + 9),
		unless(cbpf.JumpEqual, uint32(p.m.Proto.IPProto())),
		ldBX(8 + 0), andK(0x0f),
		aluK(cbpf.ALUOpShiftLeft, 2),
		unless(cbpf.JumpGreaterOrEqual, 20),
		ldWX(8 + 12),
		unless(cbpf.JumpEqual, p.src),
		ldHX(8 + 4),
	}
	prog = append(prog, p.ourTag()...)
	return append(prog,
		// The quoted transport header, after the quoted IP options:
		// X = IHL*4 + quoted IHL*4, the header at X+8.
		ldBX(8+0), andK(0x0f),
		aluK(cbpf.ALUOpShiftLeft, 2),
		cbpf.ALUOpX{Op: cbpf.ALUOpAdd},
		cbpf.TAX{},
	)
}

// echo checks the quoted echo request of an ICMP error, and then, at
// "echo", an echo reply.
func (p prog4) echo() []any {
	// RFC 792: an echo request (byte 0) with our identifier (bytes 4-5).
	prog := []any{ldHX(8 + 4)}
	prog = append(prog, p.ourPort()...)
	prog = append(prog,
		ldBX(8+0),
		unless(cbpf.JumpEqual, probe.ICMPEcho),
		keepWhole,

		// An echo reply to us: our identifier (bytes 4-5 of the ICMP
		// header at X), our tag in the sequence number (6-7).
		label("echo"),
	)
	prog = append(prog, p.toUs()...)
	prog = append(prog, ldHX(4))
	prog = append(prog, p.ourPort()...)
	prog = append(prog, ldHX(6))
	prog = append(prog, p.ourTag()...)
	return append(prog, keepWhole)
}

// quotedPorts checks the quoted UDP or TCP header of an ICMP error.
func (p prog4) quotedPorts() []any {
	// UDP (RFC 768) and TCP: the source port (bytes 0-1) in the range,
	// the destination port (2-3).
	prog := []any{ldHX(8 + 0)} // source port
	prog = append(prog, p.ourPort()...)
	return append(prog,
		ldHX(8+2), // destination port
		unless(cbpf.JumpEqual, uint32(p.m.DstPort)),
		keepWhole,
	)
}

// tcpReply checks, at "tcp", a direct TCP reply.
func (p prog4) tcpReply() []any {
	// A SYN-ACK or RST-ACK to us (RFC 9293 section 3.1, the TCP header at
	// X, 20 bytes without options): from the run's destination port
	// (bytes 0-1) to one of our source ports (2-3), acknowledging (8-11)
	// a sequence number whose low half holds our tag; ACK and SYN or RST
	// set in the flags (13).
	prog := []any{label("tcp")}
	prog = append(prog, p.toUs()...)
	prog = append(prog,
		ldBX(20-1),
		ldHX(0),
		unless(cbpf.JumpEqual, uint32(p.m.DstPort)),
		ldHX(2),
	)
	prog = append(prog, p.ourPort()...)
	prog = append(prog,
		ldBX(13),
		jumpTo{cond: cbpf.JumpBitsNotSet, val: probe.TCPFlagACK, target: dropLabel},
		jumpTo{cond: cbpf.JumpBitsNotSet, val: probe.TCPFlagSYN | probe.TCPFlagRST, target: dropLabel},
		ldWX(8),
		aluK(cbpf.ALUOpSub, 1),
		andK(0xffff),
	)
	prog = append(prog, p.ourTag()...)
	return append(prog, keepWhole)
}

// classicProgram6 returns the classic BPF program for m, an IPv6 run: the
// tests of filter.c's traceflow_icmp6, offset 0 at the IPv6 header. Every
// offset is fixed (no extension headers are followed), so the program needs
// no index register; loading the last byte of each region drops a packet
// that ends before it, as bpf_skb_load_bytes does.
func classicProgram6(m Match) ([]cbpf.Instruction, error) {
	const drop = label("drop")
	src := m.Src.As16()
	b := func(off uint32) cbpf.Instruction { return cbpf.LoadAbsolute{Off: off, Size: 1} }
	h := func(off uint32) cbpf.Instruction { return cbpf.LoadAbsolute{Off: off, Size: 2} }
	w := func(off uint32) cbpf.Instruction { return cbpf.LoadAbsolute{Off: off, Size: 4} }
	and := func(v uint32) cbpf.Instruction { return cbpf.ALUOpConstant{Op: cbpf.ALUOpAnd, Val: v} }
	ne := func(v uint32) jumpTo { return jumpTo{cond: cbpf.JumpNotEqual, val: v, target: drop} }
	const (
		icmp  = 40          // the ICMPv6 header
		quote = icmp + 8    // the quoted IPv6 header
		udp   = quote + 40  // the quoted UDP header
		tag   = udp + 8     // the payload's tag word
		end   = tag + 2 - 1 // the last byte the program needs
	)
	prog := []any{
		// skb->protocol (host byte order) is the ethertype.
		cbpf.LoadExtension{Num: cbpf.ExtProto},
		ne(0x86dd), // ETH_P_IPV6

		// Everything up to the tag word is there (the loads below
		// would drop a shorter packet anyway, in another order).
		b(end),
		// The outer IPv6 header (RFC 8200): version 6, next header
		// ICMPv6 (58).
		b(0), and(0xf0),
		ne(6 << 4),
		b(6),
		ne(58),
		// RFC 4443: time exceeded (3) or destination unreachable (1).
		b(icmp),
		jumpTo{cond: cbpf.JumpEqual, val: probe.ICMPv6TimeExceeded, target: "quote"},
		ne(probe.ICMPv6Unreachable),
		label("quote"),
		// The quoted IPv6 header: version 6, next header UDP, our
		// source address (bytes 8-23).
		b(quote), and(0xf0),
		ne(6 << 4),
		b(quote + 6),
		ne(17),
	}
	for i := uint32(0); i < 4; i++ {
		prog = append(prog, w(quote+8+4*i), ne(binary.BigEndian.Uint32(src[4*i:])))
	}
	prog = append(prog,
		// The quoted UDP header (RFC 768): the source port in the
		// range, the destination port; then the run tag.
		h(udp),
		jumpTo{cond: cbpf.JumpLessThan, val: uint32(m.SrcPortMin), target: drop},
		jumpTo{cond: cbpf.JumpGreaterThan, val: uint32(m.SrcPortMax), target: drop},
		h(udp+2),
		ne(uint32(m.DstPort)),
		h(tag),
		cbpf.ALUOpConstant{Op: cbpf.ALUOpShiftRight, Val: probe.TagShift},
		ne(uint32(m.Tag)),
		cbpf.RetConstant{Val: 0xffffffff},
		drop, cbpf.RetConstant{Val: 0},
	)
	return assemble(prog...)
}
