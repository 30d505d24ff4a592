package tracertest

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// RateLimit is a node's budget of ICMP errors (time exceeded, destination
// unreachable), modelled on Linux's (net/ipv4/icmp.c, net/ipv4/inetpeer.c):
// a message must pass a per-destination limit and then a global one.
// Echo replies and TCP segments are not limited, as on Linux (the default
// icmp_ratemask covers errors only). The zero value limits nothing, as in
// the project's lab.
type RateLimit struct {
	// PerSec and Burst are the global token bucket (icmp_msgs_per_sec,
	// icmp_msgs_burst): credits come back at PerSec a second, in steps
	// of at least 20 ms, up to Burst. PerSec 0 disables it.
	PerSec, Burst int
	// RandomCost makes a message cost 0, 1 or 2 credits at random (1 on
	// average), as Linux 6.x does; else it costs 1.
	RandomCost bool
	// Interval is the per-destination limit (icmp_ratelimit; IPv6's
	// icmp/ratelimit): to each address the node sends errors to (the
	// prober), one message per Interval, with up to PeerBurst saved up.
	// 0 disables it.
	Interval time.Duration
	// PeerBurst is how many intervals the per-destination bucket holds
	// (Linux's XRLIM_BURST_FACTOR); 0 means 6.
	PeerBurst int
}

// LinuxRateLimit is Linux's default budget: 1000 errors a second with a
// burst of 50 in all, and one a second with a burst of 6 to each
// destination.
var LinuxRateLimit = RateLimit{PerSec: 1000, Burst: 50, Interval: time.Second}

// globalRefill is the least time between two refills of the global
// bucket (Linux: HZ/50).
const globalRefill = 20 * time.Millisecond

// limiter is the state of a node's RateLimit.
type limiter struct {
	conf    RateLimit
	credit  int
	stamp   time.Time // of the last refill of the global bucket
	started bool
	peers   map[netip.Addr]*peerBucket
}

// peerBucket is the per-destination state (inet_peer's rate_tokens and
// rate_last): tokens are time, one message costs Interval.
type peerBucket struct {
	tokens time.Duration
	last   time.Time
}

// allow says whether the node may send an error to dst at now, and takes
// what it costs.
func (l *limiter) allow(dst netip.Addr, now time.Time, rng *rand.Rand) bool {
	if l.conf.Interval > 0 && !l.allowPeer(dst, now) {
		return false
	}
	return l.conf.PerSec <= 0 || l.allowGlobal(now, rng)
}

// allowPeer is inet_peer_xrlim_allow: a new peer starts with a full
// bucket (Linux sets its rate_last 60 s in the past).
func (l *limiter) allowPeer(dst netip.Addr, now time.Time) bool {
	if l.peers == nil {
		l.peers = map[netip.Addr]*peerBucket{}
	}
	burst := l.conf.PeerBurst
	if burst <= 0 {
		burst = 6
	}
	full := time.Duration(burst) * l.conf.Interval
	b, ok := l.peers[dst]
	if !ok {
		b = &peerBucket{tokens: full, last: now}
		l.peers[dst] = b
	}
	tokens := min(b.tokens+now.Sub(b.last), full)
	b.last = now
	ok = tokens >= l.conf.Interval
	if ok {
		tokens -= l.conf.Interval
	}
	b.tokens = tokens
	return ok
}

// allowGlobal is icmp_global_allow. The bucket starts full, as Linux's
// does (its first refill counts a whole second).
func (l *limiter) allowGlobal(now time.Time, rng *rand.Rand) bool {
	if !l.started {
		l.credit, l.stamp, l.started = l.conf.Burst, now, true
	}
	if d := min(now.Sub(l.stamp), time.Second); d >= globalRefill {
		if incr := int(int64(l.conf.PerSec) * int64(d) / int64(time.Second)); incr > 0 {
			l.credit = min(l.credit+incr, l.conf.Burst)
			l.stamp = now
		}
	}
	if l.credit <= 0 {
		return false
	}
	cost := 1
	if l.conf.RandomCost {
		cost = rng.IntN(3)
	}
	l.credit = max(l.credit-cost, 0)
	return true
}
