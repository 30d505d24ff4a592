package tracertest

import (
	"net"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// readBatch is the most replies one ReadBatch hands over, as a receive
// socket's batch read does.
const readBatch = 64

// receiver is what Listen returns: a queue of the replies delivered to it.
type receiver struct {
	n      *Network
	filter *filter // nil: every reply
	queue  []delivered
	head   int         // queue[head:] are waiting
	spare  []delivered // a batch's slice, for the next
	// inflight counts the ReadBatch calls calling back.
	inflight          int
	closed            bool
	received, dropped uint64
}

// delivered is a reply in a receiver's queue.
type delivered struct {
	pkt []byte
	ts  time.Time
}

// Listen opens a receiver for the replies to the probes of spec. It gets
// every reply the network delivers from then on, or with Options.Filter
// those that the run's classic BPF filter keeps.
func (n *Network) Listen(spec *probe.Spec) (tracer.Receiver, error) {
	r := &receiver{n: n}
	if n.opts.Filter {
		f, err := newFilter(spec)
		if err != nil {
			return nil, err
		}
		r.filter = f
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, net.ErrClosed
	}
	n.receivers = append(n.receivers, r)
	return r, nil
}

// ReadBatch waits until replies are due and calls fn with each (at most
// readBatch), with the time it arrived. It returns net.ErrClosed once the
// receiver or the network is closed.
func (r *receiver) ReadBatch(fn func(pkt []byte, ts time.Time)) (int, error) {
	n := r.n
	n.mu.Lock()
	for r.head == len(r.queue) && !r.closed {
		n.cond.Wait()
	}
	if r.closed {
		n.mu.Unlock()
		return 0, net.ErrClosed
	}
	k := min(len(r.queue)-r.head, readBatch)
	batch := r.spare
	r.spare = nil // another ReadBatch at once gets its own
	batch = append(batch[:0], r.queue[r.head:r.head+k]...)
	r.head += k
	if r.head == len(r.queue) {
		clear(r.queue)
		r.queue, r.head = r.queue[:0], 0
	}
	r.inflight++
	n.mu.Unlock()

	defer func() {
		n.mu.Lock()
		r.inflight--
		for _, d := range batch {
			n.release(d.pkt)
		}
		clear(batch)
		r.spare = batch
		n.gen++
		n.wake()
		n.mu.Unlock()
	}()
	for _, d := range batch {
		fn(d.pkt, d.ts)
	}
	return k, nil
}

// Stats returns the replies queued to the receiver and those dropped
// because the queue was full (Options.QueueLen).
func (r *receiver) Stats() (received, dropped uint64, err error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	return r.received, r.dropped, nil
}

// Close closes the receiver: a ReadBatch waiting returns an error.
func (r *receiver) Close() error {
	n := r.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	for _, d := range r.queue[r.head:] {
		n.release(d.pkt)
	}
	r.queue, r.head = nil, 0
	for i, x := range n.receivers {
		if x == r {
			n.receivers = append(n.receivers[:i], n.receivers[i+1:]...)
			break
		}
	}
	n.cond.Broadcast()
	n.wake()
	return nil
}

// deliverDue hands the replies due by now to the receivers.
func (n *Network) deliverDue(now time.Time) {
	any := false
	for n.pending.len() > 0 && !n.pending.min().due.After(now) {
		p := n.pending.pop()
		for _, r := range n.receivers {
			if r.filter != nil && !r.filter.keep(p.pkt) {
				n.stats.Filtered++
				continue
			}
			if n.opts.QueueLen > 0 && len(r.queue)-r.head >= n.opts.QueueLen {
				r.dropped++
				continue
			}
			b := append(n.buf()[:0], p.pkt...)
			r.queue = append(r.queue, delivered{pkt: b, ts: p.due})
			r.received++
			n.stats.Delivered++
			any = true
		}
		n.release(p.pkt)
	}
	if any {
		// The engine is not waiting any more: the replies wake it, and
		// the clock stays until it waits again (a Timer's C). Without
		// this, the clock could move on once the replies were read but
		// before the engine acted on them, whenever its goroutines took
		// longer than Options.Quiet to be scheduled: on a loaded
		// machine, a reply would meet its probe's timeout.
		n.waiting = false
		n.cond.Broadcast()
	}
}
