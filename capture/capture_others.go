//go:build !linux

package capture

import (
	"fmt"
	"runtime"
	"time"
)

// Conn is a receive socket; it is not implemented on this system.
type Conn struct{}

// Listen is not implemented on this system.
func Listen(cfg Config) (*Conn, error) {
	return nil, fmt.Errorf("open AF_PACKET socket: not implemented on %s", runtime.GOOS)
}

// ReadBatch is not implemented on this system.
func (c *Conn) ReadBatch(fn func(pkt []byte, ts time.Time)) (int, error) {
	return 0, fmt.Errorf("read: not implemented on %s", runtime.GOOS)
}

// SetReadDeadline is not implemented on this system.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return fmt.Errorf("set deadline: not implemented on %s", runtime.GOOS)
}

// Stats is not implemented on this system.
func (c *Conn) Stats() (received, dropped uint64, err error) {
	return 0, 0, fmt.Errorf("stats: not implemented on %s", runtime.GOOS)
}

// Close does nothing.
func (c *Conn) Close() error { return nil }
