package tracer

import (
	"math"
	"net/netip"
	"time"
)

// Routers police the ICMP their control plane sends: a few thousand
// messages a second in all, one a second to each source, or less (Linux:
// icmp_msgs_per_sec and icmp_ratelimit). A probe that expires at a router
// whose budget is spent gets no answer, and that silence is not a path,
// nor a lost packet worth sending again at once: it is a question asked
// too fast. budgets learns, per hop, how fast its routers answer, and
// paces the probes that expire there to that rate, the way congestion
// control paces a sender: no pace until silences show a limit, then the
// rate the hop answered at, raised while it keeps answering and cut when
// it falls silent again.
//
// A hop is keyed by its TTL and the address that answered the TTL before
// it on the probe's flow (the source for TTL 1): the successors of one
// router. A probe sent before that address is known is "blind": it is
// paced with the other blind probes of its TTL.

// budgetKey names a hop: the TTL and the address before it.
type budgetKey struct {
	prev netip.Addr
	ttl  uint8
}

// budget is what is known of one hop's answers.
type budget struct {
	rate   float64 // probes a second; +Inf until silences show a limit
	tokens float64
	last   time.Time // of the last refill

	// Answers in the current and the previous second, for the rate
	// the hop answers at.
	binStart   time.Time
	bin, prior int
	answered   bool      // the hop ever answered
	lastAnswer time.Time // when it last did
	silence    float64   // smoothed share of probes that got no answer
	lastCut    time.Time
}

// budgets holds the budget of every hop of a run. It is used from the
// scan's goroutine only.
type budgets struct {
	m map[budgetKey]*budget
	// period is how long a silence takes to show (the probes' timeout):
	// the rate is cut at most once a period.
	period time.Duration
}

// Pacing constants.
const (
	budgetMinRate  = 0.5  // probes a second a hop is never paced below
	budgetSilent   = 0.3  // smoothed silence above which silences are the limit's
	budgetSmooth   = 0.2  // weight of a probe's outcome in the smoothed silence
	budgetCut      = 0.7  // a cut keeps this share of the rate
	budgetRaise    = 0.01 // an answer raises the rate by this share...
	budgetRaiseMin = 0.05 // ...and at least this many probes a second
	budgetBurst    = 20 * time.Millisecond
	// budgetRetries is how often a probe whose silence a budget explains
	// is sent again, beyond the run's retries, once the hop has tokens.
	budgetRetries = 3
)

func newBudgets(period time.Duration) *budgets {
	return &budgets{m: map[budgetKey]*budget{}, period: period}
}

func (bs *budgets) get(k budgetKey) *budget {
	b := bs.m[k]
	if b == nil {
		b = &budget{rate: math.Inf(1)}
		bs.m[k] = b
	}
	return b
}

// take spends a token of hop k if it has one. When it has none, wake is
// when it will.
func (bs *budgets) take(k budgetKey, now time.Time) (ok bool, wake time.Time) {
	b := bs.m[k]
	if b == nil || math.IsInf(b.rate, 1) {
		return true, time.Time{}
	}
	burst := max(1, b.rate*budgetBurst.Seconds())
	if b.last.IsZero() {
		b.tokens = burst
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*b.rate)
	}
	b.last = now
	if b.tokens >= 1-1e-9 {
		b.tokens = max(b.tokens-1, 0)
		return true, time.Time{}
	}
	// At least a microsecond on: a timer must have somewhere to go.
	return false, now.Add(max(time.Microsecond, time.Duration((1-b.tokens)/b.rate*float64(time.Second))))
}

// answer records that a probe of hop k was answered at now.
func (bs *budgets) answer(k budgetKey, now time.Time) {
	b := bs.get(k)
	b.count(now)
	b.bin++
	b.answered, b.lastAnswer = true, now
	b.silence -= budgetSmooth * b.silence
	if !math.IsInf(b.rate, 1) {
		b.rate += max(budgetRaiseMin, b.rate*budgetRaise)
	}
}

// silent records that a probe of hop k timed out at now, and says whether
// the hop's budget explains it: the hop answered within the last two
// periods, and most of its probes lately did not get an answer. Such a
// silence paces the hop (or cuts its pace, at most once a period).
func (bs *budgets) silent(k budgetKey, now time.Time) (explained bool) {
	b := bs.get(k)
	b.count(now)
	b.silence += budgetSmooth * (1 - b.silence)
	if !b.answered || now.Sub(b.lastAnswer) > 2*bs.period || b.silence < budgetSilent {
		return false
	}
	switch {
	case math.IsInf(b.rate, 1):
		// The first sign of a limit: pace at the rate the hop answered
		// at over the last second or two.
		b.rate = max(budgetMinRate, b.answerRate(now))
		b.tokens, b.last, b.lastCut = 0, now, now
	case now.Sub(b.lastCut) >= bs.period:
		b.rate = max(budgetMinRate, b.rate*budgetCut)
		b.lastCut = now
	}
	return true
}

// count moves the one-second answer bins on to now.
func (b *budget) count(now time.Time) {
	switch d := now.Sub(b.binStart); {
	case b.binStart.IsZero() || d >= 2*time.Second:
		b.binStart, b.bin, b.prior = now, 0, 0
	case d >= time.Second:
		b.binStart, b.prior, b.bin = b.binStart.Add(time.Second), b.bin, 0
	}
}

// answerRate estimates the answers a second of the last second or two.
func (b *budget) answerRate(now time.Time) float64 {
	span := 1 + min(now.Sub(b.binStart).Seconds(), 1)
	return float64(b.bin+b.prior) / span
}

// paced says whether hop k is paced (its budget showed a limit), and at
// what rate.
func (bs *budgets) paced(k budgetKey) (rate float64, ok bool) {
	b := bs.m[k]
	if b == nil || math.IsInf(b.rate, 1) {
		return 0, false
	}
	return b.rate, true
}
