package tracer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Network is what a run sends its probes through and receives the replies
// from. The default (Config.Network nil) is the host's: AF_PACKET sockets,
// an eBPF (or classic BPF) receive filter and the kernel's routing table,
// which need CAP_NET_RAW (and CAP_BPF for eBPF). Package tracertest has a
// simulated one, so that a whole run can be tested without privileges.
//
// Open calls Route, ReserveTag and Listen before any probe is sent; Send
// and Route are then called from the run's goroutines (Route from several
// at once) until Close.
type Network interface {
	// Route says how the probes to dst leave this host.
	Route(ctx context.Context, dst netip.Addr) (Route, error)
	// ReserveTag reserves a run tag (1..probe.MaxTag) that no other run on
	// this host uses, until release is called.
	ReserveTag() (tag uint16, release func(), err error)
	// Listen opens the receive side for the probes that spec describes:
	// it must hold every reply to them (it may hold more: the run ignores
	// what does not answer one of its probes) from the moment it returns.
	Listen(spec *probe.Spec) (Receiver, error)
	// Send sends complete IP packets out of the link that Route named.
	// It must not keep pkts, nor their bytes, after it returns.
	Send(link int, pkts [][]byte) error
	// Close releases what the network holds. Sends queued before it
	// that failed make it return an error.
	Close() error
}

// ErrNeedsLinux is what HostNetwork returns on systems other than Linux.
var ErrNeedsLinux = fmt.Errorf("tracing needs Linux (AF_PACKET sockets and socket filters); this is %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Route is how the probes to a destination leave this host.
type Route struct {
	// Src is the source address of the probes.
	Src netip.Addr
	// Link is what Send takes to send to this route's next hop.
	Link int
	// Iface names the interface, for logs.
	Iface string
}

// Receiver delivers the packets that may be replies to a run's probes.
type Receiver interface {
	// ReadBatch waits for packets and calls fn with each, starting at its
	// IP header, and the time it was received. pkt is only valid during
	// the call. It returns an error once the Receiver is closed.
	ReadBatch(fn func(pkt []byte, ts time.Time)) (int, error)
	// Stats returns the packets received and those dropped because the
	// run did not read them fast enough.
	Stats() (received, dropped uint64, err error)
	Close() error
}

// Clock tells the time and makes timers. The default is the system's; a
// simulated network may bring its own (tracertest's is virtual: it moves
// on when the run waits).
type Clock interface {
	Now() time.Time
	// NewTimer returns a stopped timer.
	NewTimer() Timer
}

// Timer is a reusable timer of a Clock.
type Timer interface {
	// C returns the channel the timer fires on. A run calls it each time
	// it is about to wait on the timer, and at no other time.
	C() <-chan time.Time
	// Reset makes the timer fire after d, replacing any earlier setting
	// and discarding a firing not yet received.
	Reset(d time.Duration)
	// Stop stops the timer and discards a firing not yet received.
	Stop()
}

// systemClock is the Clock of the host.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &systemTimer{t: t}
}

type systemTimer struct{ t *time.Timer }

func (s *systemTimer) C() <-chan time.Time { return s.t.C }

// Reset relies on Go 1.23 timers: Reset and Stop discard a pending firing.
func (s *systemTimer) Reset(d time.Duration) { s.t.Reset(d) }
func (s *systemTimer) Stop()                 { s.t.Stop() }
