package tracer

import (
	"net/netip"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// An Observer sees the probes and answers of a run as they happen, before
// any destination is finished: what a live view draws. Run calls it from
// the goroutine that schedules the probes, so each call must return at
// once (take a lock, count, return) and must not keep a past the call.
// Without an Observer (Config.Observer nil) the run does no work for it.
type Observer interface {
	// Sent is called for every probe sent to dst, retries included.
	Sent(dst netip.Addr, path, ttl int)
	// Answer is called for every answer to a destination in progress
	// (a.Dst); first says it is the first answer to its probe (later
	// ones repeat it: a retry's answer, or a per-packet balancer's
	// duplicate).
	Answer(a *probe.Answer, first bool)
}

// sent is the scanner's OnSent.
func (r *run) sent(p probeRef) {
	r.slots[p.Slot].col.Sent(int(p.Path), int(p.TTL))
	if o := r.t.cfg.Observer; o != nil {
		o.Sent(r.sc.q.Addr(int(p.Slot)), int(p.Path), int(p.TTL))
	}
}
