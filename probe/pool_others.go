//go:build !linux

package probe

import (
	"fmt"

	"github.com/traceflow-fast/traceflow-fast/route"
)

// SendPool sends batches of probes from several goroutines through
// AF_PACKET; it is not implemented on this system.
type SendPool struct{}

// NewSendPool is not implemented on this system: it returns an error that
// matches errors.Is(err, errors.ErrUnsupported).
func NewSendPool(workers int) (*SendPool, error) {
	return nil, fmt.Errorf("send pool: %w", errUnsupported)
}

// AddRoute is not implemented on this system.
func (p *SendPool) AddRoute(rt *route.Route) (int, error) {
	return 0, fmt.Errorf("send pool: %w", errUnsupported)
}

// Send is not implemented on this system.
func (p *SendPool) Send(index int, pkts [][]byte) error {
	return fmt.Errorf("send pool: %w", errUnsupported)
}

// Err returns nil: nothing was sent.
func (p *SendPool) Err() error { return nil }

// Close does nothing on this system.
func (p *SendPool) Close() error { return nil }
