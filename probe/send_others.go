//go:build !linux

package probe

import (
	"fmt"
	"runtime"
)

// SendBatch is the number of probes a Sender hands the kernel per system call.
const SendBatch = 64

// Sender sends probes through AF_PACKET; it is not implemented on this system.
type Sender struct{}

// NewSender is not implemented on this system.
func NewSender(rt *Route) (*Sender, error) {
	return nil, fmt.Errorf("open AF_PACKET socket: not implemented on %s", runtime.GOOS)
}

// Send is not implemented on this system.
func (s *Sender) Send(pkts [][]byte) (int, error) {
	return 0, fmt.Errorf("send: not implemented on %s", runtime.GOOS)
}

// Close does nothing.
func (s *Sender) Close() error { return nil }
