package tracer

import (
	"math"
	"net/netip"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Routers police the ICMP their control plane sends: a few thousand
// messages a second in all, one a second to each source, or less (Linux:
// icmp_msgs_per_sec and icmp_ratelimit). A probe that expires at a router
// whose budget is spent gets no answer, and that silence is not a path,
// nor a lost packet worth sending again at once: it is a question asked
// too fast. budgets learns, per hop, how fast its routers answer, and
// paces the probes that expire there, the way congestion control paces a
// sender:
//
//   - a hop starts with a window of a few probes awaited at once, one more
//     for each answer (TCP's slow start), and no pace; a probe unanswered
//     after a round trip or two stops counting as awaited;
//   - a hop with steady traffic is judged every 100 ms on the probes it
//     was sent a round trip before: when it answered too few of them, it
//     is paced at a little more than the rate it answered at, and a paced
//     hop that answers nearly all is let go faster;
//   - a hop with too little traffic to judge that way is judged by its
//     timeouts, on the outcomes of the probes it was sent over the last
//     periods: when it answered fewer than its share (by more than chance
//     explains), it is paced at a quarter of the rate it answered at (0.7
//     of it when it answered most: loss looks so, and a deep cut would
//     slow its trial), then 0.7 times slower at each step with such
//     silences and 1.5 times faster at each step without (a step: a
//     period, or the time a few probes take at the pace, if longer);
//   - a hop judged by its timeouts whose latest outcomes hold two silences
//     a second or more apart is never paced below a little more than the
//     rate its bucket fills at, read from them (drainRate): a silence for
//     want of a token finds the bucket empty, so between two of them the
//     hop answered as many probes as it earned tokens. That is how a hop
//     answering one a second is held at one a second or more rather than
//     a third under it, where the steps above land. The steps still apply
//     above it: a lossy hop's rate between silences is what it was sent
//     less its loss, and a pace that went down to it at each cut, or only
//     followed it, would fall with every cut.
//
// Loss looks like a budget at first: probes go unanswered. The two differ
// in what a slower pace does: it raises the share a limited hop answers,
// and leaves a lossy hop's share where it was. So each cut is a trial: the
// probes sent after it are followed until each has its answer or timeout,
// and when the share answered did not rise (within two standard errors)
// while the hop answered most of them, the silences were loss. The hop's
// pace is given back, and the share it answers at becomes its base: the
// limits above are judged against that share from then on.
//
// A silence the budget explains is sent again once the hop has a token
// (see sched.Settled), instead of going down as a star.
//
// A hop is keyed by its TTL and the address that answered the TTL before
// it on the probe's flow (the source for TTL 1): the successors of one
// router. A probe sent before that address is known is "blind", paced
// with the other blind probes of its TTL. Every probe also passes the
// budget of its TTL as a whole: the routers of a TTL may be one router
// answering from the address of each link a probe came in by, with one
// budget (see scanner.gate).

// budgetKey names a hop: the TTL and the address before it.
type budgetKey struct {
	prev netip.Addr
	ttl  uint8
}

// budget is what is known of one hop's answers.
type budget struct {
	rate   float64 // probes a second; +Inf until a limit shows
	tokens float64
	last   time.Time // of the last refill

	// Probes sent, and of them those answered, in bins of budgetBin by
	// the time they were sent.
	sent, got, lost [budgetBins]int32
	head            int       // the current bin
	headStart       time.Time // when it began

	answered   bool      // the hop ever answered
	lastAnswer time.Time // when it last did
	// Answers by the time they came, in the current period and the one
	// before: the rate a hop answers at when a first pace is set.
	ansCur, ansPrev int
	ansStart        time.Time
	lastCut         time.Time
	lastExplained   time.Time // the last silence the budget explained
	explained       int       // silences the budget explained
	recovered       int       // probes answered only when sent again
	// A window on the probes awaited, as in TCP's slow start: before
	// the first answers, a hop takes a few probes at once, and one more
	// for each answer, until a cut paces it (see awaited).
	window    float64
	judged    bool // the last span had traffic enough to judge
	cut       bool // the window was cut: it grows slowly since
	lastRaise time.Time

	// base is the share of probes the hop answers when no budget is in
	// the way: 1, until a trial shows loss.
	base  float64
	trial trial
	// Outcomes and answers by the period their probes were sent in:
	// the share before a cut, counted once every probe sent then has
	// had its answer or timeout.
	hist [budgetHist]outcomes
	// The latest outcomes, by the time their probes were sent: what
	// drainRate reads a drained bucket's refill from.
	ring  [budgetRing]sentOutcome
	ringN int
}

// sentOutcome is one probe's outcome: when it was sent (Unix ns) and
// whether it was answered.
type sentOutcome struct {
	at  int64
	got bool
}

// outcomes counts the probes sent in one period that had their outcome,
// and those answered.
type outcomes struct {
	period int64 // since the Unix epoch, in periods
	n, got int32
}

// trial follows the probes sent after a cut: a limited hop answers more of
// them than before, a lossy one as many.
type trial struct {
	on      bool
	since   time.Time // the cut
	until   time.Time // the last probe it follows was sent then
	sends   int       // probes sent since the cut, up to size()
	before  float64   // the share answered before the cut...
	beforeN int       // ...of this many probes
	// For a trial the timeouts started, the outcomes of the probes sent
	// in the periods from..from+budgetBefore-1, before the cut's own.
	from      int64
	beforeGot int
	n, got    int     // outcomes of the probes it follows, and answers
	rate      float64 // the pace and window before the cut, given back
	window    float64 // if the cut did not help
	wasCut    bool
	judged    bool // the bins started it
}

// budgets holds the budget of every hop of a run. It is used from the
// scan's goroutine only.
type budgets struct {
	m map[budgetKey]*budget
	// period is how long a silence takes to show (the probes' timeout):
	// the rate is cut at most once a period on timeouts.
	period time.Duration
	// lag is how long answers take to come back (the smoothed round
	// trip): sends are compared with the answers that follow them.
	lag time.Duration
}

// Pacing constants. A hop's rate is followed two ways: from the answers
// to what was sent a round trip before, over a few bins of budgetBin
// (quick, for hops that take many probes), and from timeouts (slow, for
// hops that take a few).
const (
	budgetBin       = 100 * time.Millisecond
	budgetBins      = 8
	budgetSpan      = 4    // bins compared
	budgetSample    = 32   // probes sent over the span before it is judged
	budgetDelivered = 0.8  // answered share under which the hop is limited
	budgetFull      = 0.95 // answered share over which a paced hop may go faster
	budgetGain      = 1.1  // pace at this multiple of the rate answered at
	budgetProbe     = 1.25 // raise the pace of a hop answering everything
	budgetMinRate   = 0.5  // probes a second a hop is never paced below
	budgetMaxRate   = 1e6  // nor above: it is let go
	budgetFirst     = 0.25 // the first pace from timeouts: this share of the rate answered (or sent) at
	budgetCut       = 0.7  // a period with silences keeps this share of the pace...
	budgetRaise     = 1.5  // ...one without raises it by this factor
	budgetBurst     = 20 * time.Millisecond
	budgetWindow    = 4 // probes a hop takes at once before its first answer
	// budgetRetries is how often a probe whose silence a budget explains
	// is sent again, beyond the run's retries, once the hop has tokens.
	budgetRetries = 3
	// A trial follows the budgetTrial probes sent after its cut (or
	// those sent over budgetTrialPeriods periods, if fewer), and is
	// judged when all have had their answer or timeout: answers come
	// back sooner than silences, and judging on the first outcomes
	// would see more answers than there are. The cut helped when the
	// share rose budgetHelped times, or to near the base.
	budgetTrial        = 16
	budgetTrialMin     = 4
	budgetTrialLoss    = 12  // of budgetTrial outcomes, those a verdict of loss needs
	budgetJudgeSlow    = 8   // outcomes the timeouts need to judge a hop
	budgetFewShare     = 0.4 // under this share of its base, a hop answered few
	budgetStepProbes   = 4   // probes at the pace between two changes of it
	budgetBefore       = 6   // periods before the cut a trial compares with
	budgetTrialPeriods = 8
	budgetHist         = 16 // periods of outcomes kept: a trial's and two before
	budgetHelped       = 1.2
	budgetLossy        = 0.55
	budgetMinBase      = 0.1
	// budgetRing outcomes are kept for drainRate, which reads a rate
	// over at least budgetDrainSpan between two silences, from at least
	// budgetDrainAnswers answers.
	budgetRing         = 32
	budgetDrainSpan    = time.Second
	budgetDrainAnswers = 2
)

func newBudgets(period time.Duration) *budgets {
	return &budgets{m: map[budgetKey]*budget{}, period: period}
}

func (bs *budgets) get(k budgetKey) *budget {
	b := bs.m[k]
	if b == nil {
		b = &budget{rate: math.Inf(1), window: budgetWindow, base: 1}
		bs.m[k] = b
	}
	return b
}

// roll moves b's bins on to now, judging the hop's answers at each bin
// that ends.
func (bs *budgets) roll(b *budget, now time.Time) {
	if b.headStart.IsZero() {
		b.headStart = now
		return
	}
	for steps := 0; now.Sub(b.headStart) >= budgetBin; steps++ {
		if steps == budgetBins {
			// Idle for longer than the bins hold: start afresh.
			b.sent, b.got, b.lost = [budgetBins]int32{}, [budgetBins]int32{}, [budgetBins]int32{}
			b.headStart = now
			return
		}
		bs.judge(b, now)
		b.head = (b.head + 1) % budgetBins
		b.sent[b.head], b.got[b.head], b.lost[b.head] = 0, 0, 0
		b.headStart = b.headStart.Add(budgetBin)
	}
}

// judge looks at the probes sent over the last span of bins whose answers
// are in (a round trip back): a hop that answered too few of them is paced
// at a little more than the rate it answered at; a paced hop that answered
// nearly all of them may go faster.
func (bs *budgets) judge(b *budget, now time.Time) {
	lag := min(int((2*bs.lag+budgetBin-1)/budgetBin), budgetBins-budgetSpan)
	var sent, got int32
	busy := 0
	for i := range budgetSpan {
		k := (b.head - lag - i + 2*budgetBins) % budgetBins
		sent += b.sent[k]
		got += b.got[k]
		if b.sent[k] > 0 {
			busy++
		}
	}
	// A burst in one bin says how deep the hop's bucket is, not how
	// fast it fills: judge steady traffic only. A hop that is not judged
	// is paced by its timeouts and answers (see silent and answer).
	b.judged = sent >= budgetSample && busy >= budgetSpan-1 && b.answered
	if !b.judged {
		return
	}
	share := float64(got) / float64(sent)
	delivered := float64(got) / (budgetSpan * budgetBin.Seconds())
	switch {
	case b.trial.on && b.trial.judged:
		// Wait for the trial's verdict before cutting again.
	case share < budgetDelivered*b.base:
		b.startTrial(now, bs.period, share, int(sent), true)
		if math.IsInf(b.rate, 1) {
			b.tokens = 0
		}
		b.rate = max(budgetMinRate, delivered*budgetGain)
	case share > budgetFull*b.base && !math.IsInf(b.rate, 1):
		if b.rate *= budgetProbe; b.rate > budgetMaxRate {
			b.rate = math.Inf(1)
		}
	}
	if sd := math.Sqrt(b.base * (1 - b.base) / float64(sent)); share > b.base+2*sd {
		// Loss that eased: the span answered more than chance
		// explains. (A base that followed every span above it would
		// creep up on noise alone, and take loss for a limit again.)
		b.base = min(1, share)
	}
}

// startTrial begins the trial of a cut made at now, the hop having
// answered share of its probes before it.
// A trial the bins started (judged) holds them back until its verdict;
// one the timeouts started gives way to the bins.
func (b *budget) startTrial(now time.Time, period time.Duration, share float64, n int, judged bool) {
	t := trial{on: true, since: now, before: share, beforeN: n, rate: b.rate, window: b.window, wasCut: b.cut, judged: judged}
	if !judged {
		ks := now.UnixNano() / int64(period)
		t.from = ks - budgetBefore
		t.beforeN, t.beforeGot = b.outcomes(t.from, ks-1)
	}
	if b.trial.on {
		// A trial replacing another: give back what was before both.
		t.rate, t.window, t.wasCut = b.trial.rate, b.trial.window, b.trial.wasCut
	}
	b.trial = t
}

// count adds the outcome of a probe sent at sent to the trial, and judges
// it when it has outcomes enough: a cut after which the hop answered no
// larger share was made for loss, not a budget, and is undone.
func (bs *budgets) count(b *budget, now, sent time.Time, answered bool) {
	b.ring[b.ringN%budgetRing] = sentOutcome{at: sent.UnixNano(), got: answered}
	b.ringN++
	k := sent.UnixNano() / int64(bs.period)
	h := &b.hist[k%budgetHist]
	if h.period != k {
		*h = outcomes{period: k}
	}
	h.n++
	if answered {
		h.got++
	}
	t := &b.trial
	if !t.on {
		return
	}
	if !t.judged && k >= t.from && k < t.from+budgetBefore {
		// An outcome of a probe sent before the cut, come since.
		t.beforeN++
		if answered {
			t.beforeGot++
		}
	}
	if !sent.Before(t.since) && (t.until.IsZero() || !sent.After(t.until)) {
		t.n++
		if answered {
			t.got++
		}
	}
	if t.until.IsZero() && now.Sub(t.since) >= bs.trialSpan(b) {
		t.until = now
	}
	if t.until.IsZero() || now.Sub(t.until) < bs.period+bs.lag {
		return
	}
	t.on = false
	if !t.judged {
		// The share before the cut, from the periods before its
		// own: every probe sent then has had its outcome by now.
		if t.beforeN < budgetTrialMin {
			return // too few to say: the cut stands
		}
		t.before = float64(t.beforeGot) / float64(t.beforeN)
	}
	if t.n < t.size()*budgetTrialLoss/budgetTrial {
		return // too few to say: the cut stands
	}
	if !t.lossy(b.base) {
		return
	}
	b.base = max(budgetMinBase, min(b.base, float64(t.got+int(t.before*float64(t.beforeN)+0.5))/float64(t.n+t.beforeN)))
	b.rate, b.window, b.cut = t.rate, t.window, t.wasCut
}

// short says whether got answers of n probes are fewer than the hop's base
// share explains: under budgetDelivered of it, by more than two standard
// deviations of the answers a hop losing 1-base of its probes would give
// (none, for a hop that loses nothing).
func (b *budget) short(n, got int) bool {
	sd := math.Sqrt(float64(n) * b.base * (1 - b.base))
	return float64(got) < budgetDelivered*b.base*float64(n)-2*sd
}

// recent sums the outcomes of the probes sent over the last periods, back
// from the current one until there are budgetTrial of them or
// budgetBefore+budgetBefore periods are counted. The latest periods are not
// all in: answers come before silences, so their share is if anything too
// high, and a cut on it too late rather than too soon.
func (b *budget) recent(now time.Time, period time.Duration) (n, got int) {
	kn := now.UnixNano() / int64(period)
	for k := kn; k > kn-2*budgetBefore && n < budgetTrial; k-- {
		dn, dg := b.outcomes(k, k)
		n, got = n+dn, got+dg
	}
	return n, got
}

// outcomes sums the outcomes of the probes sent in periods from..to.
func (b *budget) outcomes(from, to int64) (n, got int) {
	for k := from; k <= to; k++ {
		if h := &b.hist[(k%budgetHist+budgetHist)%budgetHist]; h.period == k {
			n, got = n+int(h.n), got+int(h.got)
		}
	}
	return n, got
}

// lossy gives the trial's verdict: the hop answered about the share it
// answered before the cut (within two standard errors of the difference),
// and most of its probes: a limit the cut did not reach could look the
// same, but would not answer most. A share that rose, one that fell (the
// share before the cut held a burst), one near the base from well below
// it, or one under half, is a budget's: the cut stands.
func (t *trial) lossy(base float64) bool {
	after := float64(t.got) / float64(t.n)
	if after < budgetLossy*base || after >= budgetFull*base && t.before < budgetDelivered*base {
		return false
	}
	pooled := (float64(t.got) + t.before*float64(t.beforeN)) / float64(t.n+t.beforeN)
	se := math.Sqrt(pooled * (1 - pooled) * (1/float64(t.n) + 1/float64(max(1, t.beforeN))))
	return math.Abs(after-t.before) <= 2*se || after < budgetHelped*t.before && after > t.before
}

// step is how often the timeouts may change a hop's pace: once a period,
// or once in the time a few probes take at the pace, if longer: the
// outcome of a change must show before the next.
func (bs *budgets) step(b *budget) time.Duration {
	if math.IsInf(b.rate, 1) || b.rate <= 0 {
		return bs.period
	}
	return max(bs.period, min(10*time.Second, time.Duration(budgetStepProbes/b.rate*float64(time.Second))))
}

// trialSpan is how long a trial follows the probes sent after its cut, at
// most: budgetTrialPeriods periods, or the time budgetTrial probes take
// at the hop's pace if longer (up to a minute).
func (bs *budgets) trialSpan(b *budget) time.Duration {
	d := budgetTrialPeriods * bs.period
	if !math.IsInf(b.rate, 1) && b.rate > 0 {
		d = max(d, min(time.Minute, time.Duration(float64(b.trial.size())/b.rate*float64(time.Second))))
	}
	return d
}

// size is the number of probes a trial follows: budgetTrial, or twice as
// many for one the bins started: their hop is busy, the probes come fast,
// and the share before the cut was counted on many.
func (t *trial) size() int {
	if t.judged {
		return 2 * budgetTrial
	}
	return budgetTrial
}

// sending counts a probe sent at now into b's trial.
func (b *budget) sending(now time.Time) {
	if t := &b.trial; t.on && t.until.IsZero() {
		if t.sends++; t.sends == t.size() {
			t.until = now
		}
	}
}

// take spends a token of hop k, and a place in its window, if it has them.
// When it has none, wake is when it may have: a token's time, or the
// period in which an answer or a timeout frees a place.
func (bs *budgets) take(k budgetKey, now time.Time) (ok bool, wake time.Time) {
	b := bs.get(k)
	if b.live(now, bs.period) && float64(bs.awaited(b, now)) >= b.window {
		return false, now.Add(max(time.Millisecond, bs.period/16))
	}
	if !math.IsInf(b.rate, 1) {
		burst := max(1, b.rate*budgetBurst.Seconds())
		if b.last.IsZero() {
			b.tokens = burst
		} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = min(burst, b.tokens+dt*b.rate)
		}
		b.last = now
		if b.tokens < 1-1e-9 {
			// At least a microsecond on: a timer must have somewhere to go.
			return false, now.Add(max(time.Microsecond, time.Duration((1-b.tokens)/b.rate*float64(time.Second))))
		}
		b.tokens = max(b.tokens-1, 0)
	}
	bs.roll(b, now)
	b.sent[b.head]++
	b.sending(now)
	return true, time.Time{}
}

// give gives back what take spent.
func (bs *budgets) give(k budgetKey) {
	b := bs.get(k)
	b.sent[b.head]--
	if t := &b.trial; t.on && t.until.IsZero() && t.sends > 0 {
		t.sends--
	}
	if !math.IsInf(b.rate, 1) {
		b.tokens++
	}
}

// settle records the outcome o of a probe of hop k sent at sent: answered
// (at once, or only when sent again), or timed out. For a timeout it says
// whether the hop's budget explains it (see silent).
func (bs *budgets) settle(k budgetKey, now, sent time.Time, o outcome) (explained bool) {
	b := bs.get(k)
	answered := o != outSilent
	bs.count(b, now, sent, answered)
	if o == outAgain {
		b.recovered++
	}
	if answered {
		bs.answer(b, now, sent)
		return false
	}
	return bs.silent(b, now, sent)
}

// answer records that a probe of b's hop was answered at now.
func (bs *budgets) answer(b *budget, now, sent time.Time) {
	bs.roll(b, now)
	if k, ok := b.bin(sent); ok {
		b.got[k]++
	}
	if b.cut {
		b.window += 1 / b.window // congestion avoidance: one more a window
	} else {
		b.window++ // slow start: one more an answer
	}
	b.answered, b.lastAnswer = true, now
	switch el := now.Sub(b.ansStart); {
	case el >= 2*bs.period:
		b.ansPrev, b.ansCur, b.ansStart = 0, 0, now
	case el >= bs.period:
		b.ansPrev, b.ansCur, b.ansStart = b.ansCur, 0, b.ansStart.Add(bs.period)
	}
	b.ansCur++
	if math.IsInf(b.rate, 1) || b.judged {
		return
	}
	fill, filled := b.drainRate()
	if filled {
		// No slower than a little over the rate the bucket fills at,
		// while the latest outcomes show it.
		b.rate = max(b.rate, fill*budgetGain)
	}
	// A trial whose probes were all answered so far says the cut was
	// deep enough; it may have been too deep.
	helped := !filled && b.trial.on && b.trial.n >= budgetStepProbes && b.trial.got == b.trial.n
	if (!b.trial.on || helped) && now.Sub(b.lastCut) >= bs.step(b) && now.Sub(b.lastRaise) >= bs.step(b) {
		// A period without silences the budget explains: the pace may
		// have been set by too little traffic, not by the hop.
		if b.rate *= budgetRaise; b.rate > budgetMaxRate {
			b.rate = math.Inf(1)
		}
		b.lastRaise = now
	}
}

// silent records that a probe of b's hop timed out at now, and says whether
// the hop's budget explains it: the hop answered within the last two
// periods, and most of its probes lately did not get an answer. Such a
// silence halves the hop's window, and paces a hop the bins do not judge
// (too little traffic): first at half the rate it answered at, then a
// little slower at each period with such silences (and faster at each
// period without; see answer).
func (bs *budgets) silent(b *budget, now, sent time.Time) (explained bool) {
	bs.roll(b, now)
	if k, ok := b.bin(sent); ok {
		b.lost[k]++
	}
	if !b.answered || now.Sub(b.lastAnswer) > 2*bs.period {
		return false
	}
	n, got := b.recent(now, bs.period)
	if n < budgetJudgeSlow || !b.short(n, got) {
		// Too few outcomes to say, or the hop answered its share of
		// them: a silence, not its budget.
		return false
	}
	b.lastExplained, b.explained = now, b.explained+1
	if now.Sub(b.lastCut) < bs.step(b) || b.trial.on {
		return true
	}
	b.lastCut = now
	if b.judged {
		return true // the bins pace it
	}
	b.startTrial(now, bs.period, 0, 0, false) // the share before is counted at the verdict
	b.cut = true
	switch {
	case math.IsInf(b.rate, 1):
		// A quarter of the rate it answered at, for a hop that
		// answered few (a router's budget for this source, as Linux's
		// one a second); 0.7 of it for one that answered most (as
		// loss would): its trial then comes sooner.
		depth := budgetFirst
		if float64(got) >= budgetFewShare*b.base*float64(n) {
			depth = budgetCut
		}
		// The rate it answered at: the rate it was sent at over the
		// bins times the share it answered lately, or else the answers
		// of the last periods.
		answered := b.sendRate() * float64(got) / float64(n)
		if answered == 0 {
			answered = bs.answerRate(b, now)
		}
		b.rate = max(budgetMinRate, answered*depth)
		b.tokens, b.last = 0, now
		if fill, ok := b.drainRate(); ok {
			b.rate = max(b.rate, fill*budgetGain)
		}
	default:
		cut := b.rate * budgetCut
		if fill, ok := b.drainRate(); ok {
			// No slower than a little over what the bucket gives.
			cut = max(cut, min(b.rate, fill*budgetGain))
		}
		b.rate = max(budgetMinRate, cut)
	}
	return true
}

// bin returns the bin of a probe sent at sent, if the bins still hold it.
func (b *budget) bin(sent time.Time) (int, bool) {
	if !sent.Before(b.headStart) {
		return b.head, true
	}
	back := int(b.headStart.Sub(sent)/budgetBin) + 1
	return (b.head - back + budgetBins) % budgetBins, back < budgetBins
}

// awaited counts the probes of b's hop sent lately that have had no
// outcome: those of the current bin and of the bins a round trip or two
// back. An older probe with no answer is most likely lost, and holds no
// place in the window until its timeout (a hop would otherwise stop for a
// whole timeout whenever its window filled with silences).
func (bs *budgets) awaited(b *budget, now time.Time) int32 {
	bs.roll(b, now)
	back := min(budgetBins-1, int((2*bs.lag+budgetBin-1)/budgetBin)+1)
	var n int32
	for i := range back + 1 {
		k := (b.head - i + budgetBins) % budgetBins
		n += max(0, b.sent[k]-b.got[k]-b.lost[k])
	}
	return n
}

// report says what is known of hop k's budget: the pace its probes are
// held to (0 when none), the silences the budget explained and the probes
// answered when sent again; ok is false for a hop never paced nor silenced
// by its budget.
func (bs *budgets) report(k budgetKey) (rl analysis.RateLimit, ok bool) {
	b := bs.m[k]
	if b == nil || math.IsInf(b.rate, 1) && b.explained == 0 {
		return rl, false
	}
	if !math.IsInf(b.rate, 1) {
		rl.Pace = b.rate
	}
	rl.TTL, rl.After, rl.Silences, rl.Recovered = int(k.ttl), k.prev, b.explained, b.recovered
	return rl, true
}

// live says whether the window applies to the hop: it answered lately (a
// hop that never answers, or stopped, holds no budget to spare), and the
// bins do not judge it (they pace it).
func (b *budget) live(now time.Time, period time.Duration) bool {
	return !b.judged && !b.cut && b.answered && now.Sub(b.lastAnswer) <= 2*period
}

// sendRate is the rate the hop was sent probes at over the bins.
func (b *budget) sendRate() float64 {
	var n int32
	for _, v := range b.sent {
		n += v
	}
	return float64(n) / (budgetBins * budgetBin.Seconds())
}

// answerRate is the rate the hop answered at over the last period or two.
func (bs *budgets) answerRate(b *budget, now time.Time) float64 {
	el := now.Sub(b.ansStart)
	if el >= 2*bs.period {
		return 0
	}
	n := b.ansCur
	if el < bs.period {
		n += b.ansPrev
		el += bs.period
	}
	return float64(n) / el.Seconds()
}

// drainRate reads the rate a hop's bucket fills at from its latest
// outcomes: a probe unanswered for want of a token finds the bucket empty,
// so between two such silences the hop answered as many probes as it
// earned tokens, whatever the pace and however idle it was in between
// (short of filling its bucket). It is the rate the probes sent between
// the first and the last silence of the kept outcomes were answered at;
// ok is false when they span too little time or hold too few answers.
// Loss reads as the rate a lossy hop answered at, as the cuts do.
func (b *budget) drainRate() (rate float64, ok bool) {
	n := min(b.ringN, budgetRing)
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for _, o := range b.ring[:n] {
		if !o.got {
			first, last = min(first, o.at), max(last, o.at)
		}
	}
	span := time.Duration(last - first)
	if first > last || span < budgetDrainSpan {
		return 0, false
	}
	got := 0
	for _, o := range b.ring[:n] {
		if o.got && o.at > first && o.at <= last {
			got++
		}
	}
	if got < budgetDrainAnswers {
		return 0, false
	}
	return float64(got) / span.Seconds(), true
}
