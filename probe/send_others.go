//go:build !linux

package probe

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/traceflow-fast/traceflow-fast/route"
)

// errUnsupported says that probes are sent from Linux only (AF_PACKET).
var errUnsupported = fmt.Errorf("not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// SendBatch is the number of probes a Sender hands the kernel per system call.
const SendBatch = 64

// Sender sends probes through AF_PACKET; it is not implemented on this system.
type Sender struct{}

// NewSender is not implemented on this system: it returns an error that
// matches errors.Is(err, errors.ErrUnsupported).
func NewSender(rt *route.Route) (*Sender, error) {
	return nil, fmt.Errorf("open AF_PACKET socket: %w", errUnsupported)
}

// Send is not implemented on this system.
func (s *Sender) Send(pkts [][]byte) (int, error) {
	return 0, fmt.Errorf("send: %w", errUnsupported)
}

// Close does nothing on this system.
func (s *Sender) Close() error { return nil }
