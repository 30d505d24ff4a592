package tracertest

import (
	"fmt"

	cbpf "golang.org/x/net/bpf"

	"github.com/traceflow-fast/traceflow-fast/bpf"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// filter runs a run's classic BPF receive filter on the replies, as the
// kernel runs it on the receive socket (Options.Filter).
type filter struct {
	vm4, vm6 *cbpf.VM // the program for IPv4 and for IPv6 packets
}

// Ethertypes: what skb->protocol holds for an IPv4 and an IPv6 packet.
const (
	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
)

// newFilter builds the filter of the run of spec, as the engine attaches
// it to its receive socket.
func newFilter(spec *probe.Spec) (*filter, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("tracertest: filter: %w", err)
	}
	m := bpf.Match{
		Proto: spec.Proto, Src: spec.Src, DstPort: spec.DstPort, Tag: spec.Tag,
		SrcPortMin: spec.BaseSrcPort + 1, SrcPortMax: spec.BaseSrcPort + uint16(spec.Paths),
	}
	c, err := bpf.LoadClassic(m)
	if err != nil {
		return nil, fmt.Errorf("tracertest: filter: %w", err)
	}
	insns := c.Instructions()
	c.Close()
	f := &filter{}
	if f.vm4, err = vmFor(insns, ethIPv4); err != nil {
		return nil, err
	}
	if f.vm6, err = vmFor(insns, ethIPv6); err != nil {
		return nil, err
	}
	return f, nil
}

// vmFor returns a VM running insns on packets whose skb->protocol is
// proto: the VM has no ExtProto, so its loads become the constant.
func vmFor(insns []cbpf.Instruction, proto uint32) (*cbpf.VM, error) {
	prog := make([]cbpf.Instruction, len(insns))
	for i, ins := range insns {
		if ext, ok := ins.(cbpf.LoadExtension); ok {
			if ext.Num != cbpf.ExtProto {
				return nil, fmt.Errorf("tracertest: filter: instruction %d: extension %v", i, ext.Num)
			}
			ins = cbpf.LoadConstant{Dst: cbpf.RegA, Val: proto}
		}
		prog[i] = ins
	}
	vm, err := cbpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("tracertest: filter: %w", err)
	}
	return vm, nil
}

// keep says whether the filter keeps pkt (a snap length above 0).
func (f *filter) keep(pkt []byte) bool {
	vm := f.vm4
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		vm = f.vm6
	}
	n, err := vm.Run(pkt)
	return err == nil && n > 0
}
