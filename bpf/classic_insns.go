package bpf

import (
	"slices"

	cbpf "golang.org/x/net/bpf"
)

// Instructions returns a copy of the classic program, for running it
// outside the kernel (golang.org/x/net/bpf's VM, a simulated network).
// Offset 0 is the IP header, as on the receive socket. Its first load is
// the packet's protocol (skb->protocol, ETH_P_IP or ETH_P_IPV6 in host
// byte order) through the ExtProto extension, which a VM that lacks it
// must replace with a load of the constant for the packet at hand.
func (c *Classic) Instructions() []cbpf.Instruction { return slices.Clone(c.insns) }
