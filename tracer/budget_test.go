package tracer

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// limiter is a router's ICMP budget, as Linux keeps it: a token bucket of
// rate answers a second holding burst.
type limiter struct {
	rate, burst, tokens float64
	last                time.Time
}

func (l *limiter) allow(now time.Time) bool {
	if l.last.IsZero() {
		l.tokens = l.burst
	} else {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	return false
}

// hopRun drives one hop's budget with a prober that wants to send every
// interval, for d, answering through answer (nil: always) within rtt, and
// timing out after timeout. It returns the probes sent and answered over
// the last quarter of the run.
func hopRun(t *testing.T, interval, d, rtt, timeout time.Duration, answer func(time.Time) bool) (sent, got int, bs *budgets) {
	t.Helper()
	bs = newBudgets(timeout)
	bs.lag = rtt
	k := budgetKey{ttl: 3}
	type probe struct {
		at       time.Time
		answered bool
	}
	var flight []probe
	start := time.Unix(1000, 0)
	for now := start; now.Before(start.Add(d)); now = now.Add(interval / 4) {
		// Settle what is due: answers after rtt, silences after timeout.
		kept := flight[:0]
		for _, p := range flight {
			switch {
			case p.answered && !now.Before(p.at.Add(rtt)):
				bs.settle(k, now, p.at, outAnswered)
				if now.After(start.Add(d * 3 / 4)) {
					got++
				}
			case !p.answered && !now.Before(p.at.Add(timeout)):
				bs.settle(k, now, p.at, outSilent)
			default:
				kept = append(kept, p)
			}
		}
		flight = kept
		if (now.Sub(start)/(interval/4))%4 != 0 {
			continue
		}
		if ok, _ := bs.take(k, now); ok {
			flight = append(flight, probe{at: now, answered: answer == nil || answer(now)})
			if now.After(start.Add(d * 3 / 4)) {
				sent++
			}
		}
	}
	return sent, got, bs
}

// A hop answering 100 a second, probed 1000 times a second, is soon paced
// near its rate: most of what is sent is answered, and nearly all it can
// answer is asked.
func TestBudgetFollowsAFastLimit(t *testing.T) {
	l := &limiter{rate: 100, burst: 5}
	sent, got, _ := hopRun(t, time.Millisecond, 20*time.Second, 2*time.Millisecond, time.Second, l.allow)
	// The last 5 s: about 500 answers can come.
	if got < 400 || got > 510 {
		t.Errorf("%d answers in the last 5 s from a hop answering 100/s, want 400..510", got)
	}
	if share := float64(got) / float64(sent); share < 0.75 {
		t.Errorf("%d of %d probes answered (%.0f%%): the pace overshoots the hop's rate", got, sent, 100*share)
	}
}

// A hop with Linux's per-source limit (a burst of 6, then one a second)
// probed 10 times a second is paced near one a second.
func TestBudgetFollowsASlowLimit(t *testing.T) {
	l := &limiter{rate: 1, burst: 6}
	sent, got, _ := hopRun(t, 100*time.Millisecond, 60*time.Second, 2*time.Millisecond, time.Second, l.allow)
	// The last 15 s: about 15 answers can come.
	if got < 10 || got > 16 {
		t.Errorf("%d answers in the last 15 s from a hop answering 1/s, want 10..16", got)
	}
	if sent > 3*got {
		t.Errorf("%d probes for %d answers: the pace overshoots the hop's rate", sent, got)
	}
}

// A search asks a hop with Linux's per-source limit for a probe every 100
// or 500 ms: between two silences for want of a token, the hop answered
// as many probes as its bucket earned, so its pace never drops below a
// little over one a second (drainRate), where the steps alone leave it at
// two thirds of that for as long as a trial lasts (28 answers when asked
// every 500 ms): the hop answers nearly every token of 30 s (6 saved, then
// 30). Asked every 100 ms, the pace still rises a step at a time and is
// cut by 0.7 at the next silences, so the hop is sent about 2.5 probes an
// answer: more than it answers, never an answer lost.
func TestBudgetKeepsUpWithASlowLimit(t *testing.T) {
	for _, every := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond} {
		l := &limiter{rate: 1, burst: 6}
		sent, got := 0, 0
		answer := func(now time.Time) bool {
			ok := l.allow(now)
			sent++
			if ok {
				got++
			}
			return ok
		}
		_, _, bs := hopRun(t, every, 30*time.Second, 2*time.Millisecond, time.Second, answer)
		t.Logf("a probe asked every %v: %d sent, %d answered of 36, pace %.2f/s", every, sent, got, bs.m[budgetKey{ttl: 3}].rate)
		if got < 33 {
			t.Errorf("a probe asked every %v: %d answers in 30 s of the 36 a hop answering 1/s after 6 gives", every, got)
		}
		if sent > 3*got {
			t.Errorf("a probe asked every %v: %d probes for %d answers: the pace overshoots the hop's rate", every, sent, got)
		}
	}
}

// A hop that answers everything is never paced; one that never answers, or
// loses a few probes at random, is not paced either: its silences are not
// a budget's.
func TestBudgetLeavesUnlimitedHops(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		answer func(time.Time) bool
	}{
		{"answers all", nil},
		{"never answers", func(time.Time) bool { return false }},
		{"loses 5%", func(time.Time) bool { return rng.Float64() >= 0.05 }},
	} {
		sent, _, bs := hopRun(t, time.Millisecond, 10*time.Second, 2*time.Millisecond, time.Second, tc.answer)
		b := bs.m[budgetKey{ttl: 3}]
		if !math.IsInf(b.rate, 1) || sent < 2400 {
			t.Errorf("%s: paced at %v, %d probes in the last 2.5 s (want all 2500)", tc.name, b.rate, sent)
		}
	}
}

// A silence is the budget's only after answers, with outcomes enough to
// judge (8), when fewer of them were answered than the hop's share; and a
// hop whose share is known to be lower (loss) needs fewer answers still.
func TestBudgetExplainsSilences(t *testing.T) {
	bs := newBudgets(time.Second)
	k := budgetKey{ttl: 2}
	now := time.Unix(1000, 0)
	if bs.settle(k, now, now, outSilent) {
		t.Error("a hop that never answered: its silence explained")
	}
	for range 5 {
		bs.settle(k, now, now, outAnswered)
	}
	if bs.settle(k, now, now, outSilent) {
		t.Error("one silence after answers explained")
	}
	explained := false
	for range 3 {
		explained = bs.settle(k, now, now, outSilent)
	}
	if !explained {
		t.Error("silences in a row after answers not explained")
	}
	if bs.settle(k, now.Add(3*time.Second), now, outSilent) {
		t.Error("a silence two periods after the last answer explained")
	}
	lossy := budgetKey{ttl: 3}
	bs.get(lossy).base = 0.6
	for range 5 {
		bs.settle(lossy, now, now, outAnswered)
	}
	for range 4 {
		if bs.settle(lossy, now, now, outSilent) {
			t.Error("5 answers of 9 explained as a limit in a hop answering 60% of its probes")
		}
	}
}

// A hop that loses a third of its probes and their answers at random (20%
// each way) is not a limited one: a cut of its pace does not raise the
// share it answers, so the cut is undone, and the hop is sent nearly all
// that is asked of it, however fast. Between two silences such a hop
// answers what it was sent less its loss, not what a bucket earned: a pace
// that only followed that rate (drainRate) would spiral down with every
// cut, as a hop asked 10 times a second with 200 ms timeouts showed (49 of
// 150 sent), so the pace is still let go faster a step at a time.
func TestBudgetTellsLossFromALimit(t *testing.T) {
	for i, tc := range []struct {
		name     string
		interval time.Duration
		d        time.Duration
		timeout  time.Duration
		want     int // probes asked over the last quarter
		share    int // percent of them that must be sent
	}{
		{"1000/s", time.Millisecond, 20 * time.Second, 200 * time.Millisecond, 5000, 80},
		{"100/s", 10 * time.Millisecond, 20 * time.Second, 200 * time.Millisecond, 500, 80},
		{"10/s", 100 * time.Millisecond, 60 * time.Second, 200 * time.Millisecond, 150, 80},
		{"10/s, 1 s timeouts", 100 * time.Millisecond, 60 * time.Second, time.Second, 150, 80},
	} {
		rng := rand.New(rand.NewPCG(3, uint64(4+i)))
		lossy := func(time.Time) bool { return rng.Float64() >= 0.36 }
		sent, got, bs := hopRun(t, tc.interval, tc.d, 2*time.Millisecond, tc.timeout, lossy)
		b := bs.m[budgetKey{ttl: 3}]
		t.Logf("%s: %d of %d asked sent, %d answered; pace %.1f, base %.2f", tc.name, sent, tc.want, got, b.rate, b.base)
		if sent < tc.want*tc.share/100 {
			t.Errorf("%s: %d probes sent in the last quarter of %d asked: loss taken for a limit", tc.name, sent, tc.want)
		}
	}
}
