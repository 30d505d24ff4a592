package tracer

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis/mda"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// key names a probe by destination index (in admission order), path ID and TTL.
type key struct{ dst, path, ttl int }

// netModel answers probes like a network: flow (dst, path) reaches its
// destination at dist(dst, path); TTLs in silent never answer.
type netModel struct {
	dist   func(dst, path int) int
	silent map[int]bool // TTLs whose router never answers
	sent   map[key]int
}

func (m *netModel) reply(k key) (answers bool, reached bool) {
	if k.ttl >= m.dist(k.dst, k.path) {
		return true, true
	}
	return !m.silent[k.ttl], false
}

func testAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}) }

// drive runs a scheduler with the given window over ndst destinations on
// virtual time: every answerable probe answers after rtt, the others time
// out. It returns the order in which destinations finished.
func drive(t *testing.T, s schedule, window, ndst int, m *netModel, rtt time.Duration, more func(q *sched, slot, dst int) plan) (q *sched, elapsed time.Duration, order []int) {
	t.Helper()
	q = newSched(s, window)
	slotDst := map[int]int{}
	if more != nil {
		q.More = func(slot int) plan { return more(q, slot, slotDst[slot]) }
	}
	start := time.Unix(1000, 0)
	now := start
	type pending struct {
		at      time.Time
		k       key
		slot    int
		reached bool
	}
	var inflight []pending
	m.sent = map[key]int{}
	admitted := 0
	finish := func(slot int) { order = append(order, slotDst[slot]) }
	for step := 0; step < 1000000; step++ {
		q.Expire(now)
		for q.Resolve(finish); admitted < ndst; q.Resolve(finish) {
			slot, ok := q.Admit(testAddr(admitted))
			if !ok {
				break
			}
			slotDst[slot] = admitted
			admitted++
		}
		for _, p := range q.Ready(now, nil, 1<<30) {
			k := key{slotDst[int(p.Slot)], int(p.Path), int(p.TTL)}
			m.sent[k]++
			if ok, reached := m.reply(k); ok {
				inflight = append(inflight, pending{now.Add(rtt), k, int(p.Slot), reached})
			}
		}
		q.Resolve(finish)
		if admitted == ndst && q.Active() == 0 {
			return q, now.Sub(start), order
		}
		next := q.NextExpiry()
		// Advance to the earliest event: a reply or an expiry.
		sort.SliceStable(inflight, func(i, j int) bool { return inflight[i].at.Before(inflight[j].at) })
		switch {
		case len(inflight) > 0 && (next.IsZero() || !inflight[0].at.After(next)):
			now = inflight[0].at
			for len(inflight) > 0 && !inflight[0].at.After(now) {
				a := inflight[0]
				inflight = inflight[1:]
				if slot, ok := q.Lookup(testAddr(a.k.dst)); ok && slot == a.slot {
					q.Answer(slot, a.k.path, a.k.ttl, a.reached, false)
				}
			}
		case !next.IsZero():
			now = next
		case q.HasReady():
		default:
			t.Fatalf("scheduler not done but nothing pending (sent %d)", q.Sent())
		}
	}
	t.Fatal("scheduler did not finish")
	return nil, 0, nil
}

func TestSchedStopsAtDestination(t *testing.T) {
	s := schedule{Paths: 16, MaxTTL: 30, GapLimit: 5, Timeout: time.Second}
	m := &netModel{dist: func(int, int) int { return 4 }}
	q, elapsed, order := drive(t, s, 8, 1, m, time.Millisecond, nil)
	// Path ID 1 sends GapLimit TTLs at once and finds the distance; the
	// others then probe exactly up to it.
	for k := range m.sent {
		if k.ttl > 4 && !(k.path == 1 && k.ttl <= 5) {
			t.Errorf("probe %+v sent beyond the distance", k)
		}
	}
	for path := 1; path <= 16; path++ {
		for ttl := 1; ttl <= 4; ttl++ {
			if n := m.sent[key{0, path, ttl}]; n != 1 {
				t.Errorf("path %d ttl %d sent %d times, want 1", path, ttl, n)
			}
		}
	}
	if q.Sent() != 5+15*4 {
		t.Errorf("sent %d probes, want %d", q.Sent(), 5+15*4)
	}
	// Everything answered: no timeout was waited for; two round trips.
	if elapsed > 10*time.Millisecond {
		t.Errorf("took %v of virtual time, want a few RTTs", elapsed)
	}
	if len(order) != 1 {
		t.Errorf("finished %v", order)
	}
}

func TestSchedLongPathAdvancesWithAnswers(t *testing.T) {
	s := schedule{Paths: 2, MaxTTL: 64, GapLimit: 3, Timeout: time.Second}
	m := &netModel{dist: func(_, p int) int { return 20 + p }} // unequal lengths
	_, elapsed, _ := drive(t, s, 1, 1, m, time.Millisecond, nil)
	for path := 1; path <= 2; path++ {
		d := 20 + path
		for ttl := 1; ttl <= d; ttl++ {
			if m.sent[key{0, path, ttl}] != 1 {
				t.Errorf("path %d ttl %d not sent exactly once", path, ttl)
			}
		}
		for ttl := d + 4; ttl <= 64; ttl++ {
			if m.sent[key{0, path, ttl}] != 0 {
				t.Errorf("path %d ttl %d sent past distance %d + gap", path, ttl, d)
			}
		}
	}
	if elapsed > 40*time.Millisecond {
		t.Errorf("took %v, want about distance/gap RTTs", elapsed)
	}
}

func TestSchedGapLimitStopsSilentPath(t *testing.T) {
	// Nothing beyond TTL 3 ever answers: the destination filters everything.
	s := schedule{Paths: 1, MaxTTL: 30, GapLimit: 4, Timeout: 100 * time.Millisecond}
	m := &netModel{dist: func(int, int) int { return 99 }, silent: map[int]bool{}}
	for ttl := 4; ttl <= 30; ttl++ {
		m.silent[ttl] = true
	}
	_, elapsed, _ := drive(t, s, 1, 1, m, time.Millisecond, nil)
	maxTTL := 0
	for k := range m.sent {
		maxTTL = max(maxTTL, k.ttl)
	}
	if maxTTL != 3+4 {
		t.Errorf("highest TTL sent = %d, want 7 (last answer 3 + gap 4)", maxTTL)
	}
	// Round 1 (TTLs 1..4) waits for TTL 4 to time out; round 2 (5..7)
	// times out entirely.
	if elapsed < 200*time.Millisecond || elapsed > 250*time.Millisecond {
		t.Errorf("finished after %v, want two timeouts", elapsed)
	}
}

// A round goes no further than the destination: only the first round of
// path ID 1 overshoots it, even when the low TTLs answer first.
func TestSchedRoundsDoNotOvershoot(t *testing.T) {
	q := newSched(schedule{Paths: 4, MaxTTL: 30, GapLimit: 5, Timeout: time.Second}, 1)
	slot, _ := q.Admit(testAddr(1))
	now := time.Unix(0, 0)
	sent := map[key]bool{}
	var inflight []probeRef
	for step := 0; step < 100 && q.Active() > 0; step++ {
		for _, p := range q.Ready(now, nil, 1<<20) {
			sent[key{0, int(p.Path), int(p.TTL)}] = true
			inflight = append(inflight, p)
		}
		if len(inflight) == 0 {
			break
		}
		// Answer one probe at a time, lowest TTL first.
		sortRefs(inflight)
		p := inflight[0]
		inflight = inflight[1:]
		q.Answer(slot, int(p.Path), int(p.TTL), p.TTL >= 4, false)
		q.Resolve(func(int) {})
		now = now.Add(time.Millisecond)
	}
	for k := range sent {
		if k.ttl > 5 || (k.ttl == 5 && k.path != 1) {
			t.Errorf("probe %+v sent beyond the destination (TTL 4)", k)
		}
	}
	if len(sent) != 5+3*4 {
		t.Errorf("%d probes sent, want %d", len(sent), 5+3*4)
	}
}

func sortRefs(r []probeRef) {
	sort.Slice(r, func(i, j int) bool {
		if r[i].TTL != r[j].TTL {
			return r[i].TTL < r[j].TTL
		}
		return r[i].Path < r[j].Path
	})
}

func TestSchedRetriesThenSilent(t *testing.T) {
	s := schedule{Paths: 1, MaxTTL: 5, GapLimit: 5, Timeout: 100 * time.Millisecond, Retries: 2}
	m := &netModel{dist: func(int, int) int { return 5 }, silent: map[int]bool{2: true}}
	q, elapsed, _ := drive(t, s, 1, 1, m, time.Millisecond, nil)
	if got := m.sent[key{0, 1, 2}]; got != 3 {
		t.Errorf("silent TTL sent %d times, want 1 + 2 retries", got)
	}
	if got := m.sent[key{0, 1, 3}]; got != 1 {
		t.Errorf("answered TTL sent %d times, want 1", got)
	}
	if q.Sent() != 5+2 || q.Retries() != 2 {
		t.Errorf("Sent() = %d, Retries() = %d, want 7 and 2", q.Sent(), q.Retries())
	}
	if elapsed < 300*time.Millisecond || elapsed > 350*time.Millisecond {
		t.Errorf("finished after %v, want three timeouts", elapsed)
	}
}

// More destinations than slots: they stream through the window, each
// finishes on its own, and the slots' state is reused cleanly.
func TestSchedStreamsThroughWindow(t *testing.T) {
	s := schedule{Paths: 4, MaxTTL: 16, GapLimit: 2, Timeout: 50 * time.Millisecond, Retries: 1}
	m := &netModel{dist: func(d, _ int) int { return 2 + d%7 }, silent: map[int]bool{3: true}}
	const n = 300
	q, _, order := drive(t, s, 16, n, m, time.Millisecond, nil)
	if len(order) != n {
		t.Fatalf("%d destinations finished, want %d", len(order), n)
	}
	seen := map[int]bool{}
	for _, d := range order {
		if seen[d] {
			t.Fatalf("destination %d finished twice", d)
		}
		seen[d] = true
	}
	want := 0
	for d := range n {
		dist := 2 + d%7
		for path := 1; path <= 4; path++ {
			for ttl := 1; ttl <= dist; ttl++ {
				got := m.sent[key{d, path, ttl}]
				wantSends := 1
				if ttl == 3 && dist > 3 {
					wantSends = 2 // silent: sent again once
				}
				if got != wantSends {
					t.Fatalf("dst %d path %d ttl %d sent %d times, want %d", d, path, ttl, got, wantSends)
				}
				want += wantSends
			}
		}
	}
	if q.Free() != 16 || q.Active() != 0 {
		t.Errorf("free %d active %d after the run", q.Free(), q.Active())
	}
	// Path ID 1 may overshoot the distance by up to GapLimit-1 TTLs.
	if q.Sent() < want || q.Sent() > want+n*(2-1)*2 {
		t.Errorf("sent %d probes, want %d plus path 1's overshoot", q.Sent(), want)
	}
}

// Consecutive probes go to different destinations.
func TestSchedInterleavesDestinations(t *testing.T) {
	q := newSched(schedule{Paths: 1, MaxTTL: 8, GapLimit: 8, Timeout: time.Second}, 64)
	for i := range 64 {
		if _, ok := q.Admit(testAddr(i)); !ok {
			t.Fatal("admit failed")
		}
	}
	refs := q.Ready(time.Unix(0, 0), nil, 1<<20)
	if len(refs) != 64*8 {
		t.Fatalf("%d probes, want %d", len(refs), 64*8)
	}
	for i := 1; i < len(refs); i++ {
		if refs[i].Slot == refs[i-1].Slot {
			t.Fatalf("probes %d and %d both go to slot %d", i-1, i, refs[i].Slot)
		}
	}
}

func TestSchedIgnoresDuplicatesAndStrangers(t *testing.T) {
	q := newSched(schedule{Paths: 1, MaxTTL: 8, GapLimit: 8, Timeout: time.Second}, 2)
	slot, _ := q.Admit(testAddr(1))
	if _, ok := q.Admit(testAddr(1)); ok {
		t.Error("a destination in progress admitted twice")
	}
	now := time.Unix(0, 0)
	if refs := q.Ready(now, nil, 100); len(refs) != 8 {
		t.Fatalf("Ready sent %d probes, want 8", len(refs))
	}
	if !q.Answer(slot, 1, 3, false, false) {
		t.Error("first answer rejected")
	}
	if q.Answer(slot, 1, 3, false, false) {
		t.Error("duplicate answer accepted")
	}
	for _, bad := range [][3]int{{1 - slot, 1, 1}, {slot, 2, 1}, {slot, 1, 9}, {slot, 0, 1}, {-1, 1, 1}, {5, 1, 1}} {
		if q.Answer(bad[0], bad[1], bad[2], false, false) {
			t.Errorf("answer %v for a probe never sent accepted", bad)
		}
	}
}

func TestSchedMorePlans(t *testing.T) {
	s := schedule{Paths: 6, MaxPaths: 20, MaxTTL: 30, GapLimit: 5, Timeout: time.Second}
	m := &netModel{dist: func(int, int) int { return 4 }}
	asked := 0
	q, _, _ := drive(t, s, 1, 1, m, time.Millisecond, func(q *sched, slot, _ int) plan {
		asked++
		switch asked {
		case 1:
			return plan{Add: 10, Horizon: 4} // 10 more path IDs, destination at 4
		case 2:
			// Explicit probes: new path IDs at TTL 2 only, one beyond
			// MaxPaths (ignored), one already probed (not sent again).
			return plan{Cells: []mda.Cell{{PathID: 17, TTL: 2}, {PathID: 18, TTL: 2}, {PathID: 21, TTL: 2}, {PathID: 3, TTL: 3}}}
		case 3:
			return plan{Add: 50, Horizon: 4} // capped at MaxPaths 20
		}
		return plan{}
	})
	if asked != 4 {
		t.Errorf("More asked %d times, want 4", asked)
	}
	for path := 1; path <= 16; path++ {
		for ttl := 1; ttl <= 4; ttl++ {
			if m.sent[key{0, path, ttl}] != 1 {
				t.Errorf("path %d TTL %d sent %d times", path, ttl, m.sent[key{0, path, ttl}])
			}
		}
		// Paths added with the horizon 4 send 1..4 at once and nothing
		// beyond the destination.
		if path > 1 && m.sent[key{0, path, 5}] != 0 {
			t.Errorf("path %d probed beyond the known distance", path)
		}
	}
	// Path IDs 17 and 18: TTL 2 explicitly, then 19 and 20 added by
	// Add (17 and 18 exist already, so only 2 fit below MaxPaths).
	for _, k := range []key{{0, 17, 2}, {0, 18, 2}} {
		if m.sent[k] != 1 {
			t.Errorf("explicit probe %+v sent %d times", k, m.sent[k])
		}
	}
	if m.sent[key{0, 17, 1}] != 0 || m.sent[key{0, 21, 2}] != 0 || m.sent[key{0, 3, 3}] != 1 {
		t.Error("explicit probes: unrequested, out-of-range or repeated probe sent")
	}
	for path := 19; path <= 20; path++ {
		if m.sent[key{0, path, 4}] != 1 {
			t.Errorf("added path %d not probed", path)
		}
	}
	if q.Sent() != 5+15*4+2+2*4 {
		t.Errorf("sent %d", q.Sent())
	}
}

// A reply to the first send of a probe whose retry is queued counts, and
// the retry is then not sent.
func TestSchedLateReplyCancelsQueuedRetry(t *testing.T) {
	q := newSched(schedule{Paths: 1, MaxTTL: 1, GapLimit: 1, Timeout: 10 * time.Millisecond, Retries: 1}, 1)
	slot, _ := q.Admit(testAddr(0))
	t0 := time.Unix(0, 0)
	if refs := q.Ready(t0, nil, 10); len(refs) != 1 {
		t.Fatalf("sent %d probes, want 1", len(refs))
	}
	q.Expire(t0.Add(20 * time.Millisecond)) // times out: retry queued
	if !q.Answer(slot, 1, 1, true, false) {
		t.Fatal("late reply to the first send rejected")
	}
	if refs := q.Ready(t0.Add(21*time.Millisecond), nil, 10); len(refs) != 0 {
		t.Errorf("retry sent after the probe was answered: %v", refs)
	}
	done := 0
	q.Resolve(func(int) { done++ })
	if done != 1 || q.Active() != 0 {
		t.Error("destination not done after its only probe was answered")
	}
	if !q.NextExpiry().IsZero() || q.InFlight() {
		t.Error("an expiry remains with nothing in flight")
	}
}

// The scheduler's hot path does not allocate once its queues have grown.
func TestSchedAllocs(t *testing.T) {
	q := newSched(schedule{Paths: 4, MaxTTL: 8, GapLimit: 8, Timeout: time.Millisecond, Retries: 1}, 256)
	out := make([]probeRef, 0, 64)
	now := time.Unix(0, 0)
	n := 0
	round := func() {
		q.Resolve(func(int) {})
		for q.Free() > 0 {
			q.Admit(testAddr(n % 60000))
			n++
		}
		out = q.Ready(now, out[:0], 64)
		for i, p := range out {
			if i%3 != 0 {
				q.Answer(int(p.Slot), int(p.Path), int(p.TTL), p.TTL == 4, false)
			}
		}
		now = now.Add(300 * time.Microsecond)
		q.Expire(now)
	}
	for range 5000 {
		round()
	}
	if a := testing.AllocsPerRun(2000, round); a != 0 {
		t.Errorf("%v allocations per round", a)
	}
}

func BenchmarkSchedReady(b *testing.B) {
	q := newSched(schedule{Paths: 16, MaxTTL: 30, GapLimit: 5, Timeout: time.Millisecond}, 4096)
	out := make([]probeRef, 0, 64)
	now := time.Unix(0, 0)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		q.Resolve(func(int) {})
		for q.Free() > 0 {
			q.Admit(testAddr(n % 60000))
			n++
		}
		out = q.Ready(now, out[:0], 64)
		for _, p := range out {
			q.Answer(int(p.Slot), int(p.Path), int(p.TTL), p.TTL == 4, false)
		}
		now = now.Add(10 * time.Microsecond)
		q.Expire(now)
	}
	b.ReportMetric(float64(q.Sent())/b.Elapsed().Seconds(), "probes/s")
}

func TestScannerEndToEndInMemory(t *testing.T) {
	spec := &probe.Spec{
		Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452,
		Paths: 8, Tag: 77, Epoch: time.Now(),
	}
	const ndst = 50
	answers := make(chan probe.Answer, 1<<16)
	m := probe.NewMatcher(spec)
	var r probe.Reply
	sent, got, next := 0, 0, 0
	done := map[netip.Addr]bool{}
	var run *scanner
	run = &scanner{
		Spec:     spec,
		Schedule: schedule{Paths: 8, MaxTTL: 30, GapLimit: 4, Timeout: time.Second},
		Window:   7,
		Next: func() (Target, bool) {
			if next == ndst {
				return Target{}, false
			}
			next++
			return Target{Addr: testAddr(next - 1)}, true
		},
		Start: func(_ int, tg Target) (int, error) {
			dst := tg.Addr
			if dst == testAddr(13) {
				return 0, errors.New("no route")
			}
			return int(dst.As4()[3] % 2), nil
		},
		Answers: answers,
		Send: func(route int, pkts [][]byte) error {
			for _, p := range pkts {
				sent++
				dst := netip.AddrFrom4([4]byte(p[16:20]))
				if int(dst.As4()[3]%2) != route {
					t.Errorf("probe to %v sent by route %d", dst, route)
				}
				// The "network": hop h answers from 203.0.113.h, the
				// destination is 3 + i%4 hops away.
				ttl := int(p[8])
				d := 3 + int(dst.As4()[3])%4
				from := netip.AddrFrom4([4]byte{203, 0, 113, byte(ttl)})
				typ, code := uint8(probe.ICMPTimeExceeded), uint8(0)
				// Each router on the way decrements the TTL the
				// answer quotes.
				quote := append([]byte(nil), p...)
				quote[8] = 1
				if ttl >= d {
					from, typ, code = dst, probe.ICMPUnreachable, probe.CodePortUnreachable
					quote[8] = byte(ttl - d + 1)
				}
				var a probe.Answer
				if m.Match(icmpError(from, spec.Src, typ, code, quote), time.Now(), &r, &a) {
					answers <- a
				}
			}
			return nil
		},
		OnAnswer: func(slot int, a *probe.Answer, first bool) {
			if run.Sched().Addr(slot) != a.Dst {
				t.Errorf("answer for %v handed to slot of %v", a.Dst, run.Sched().Addr(slot))
			}
			if first {
				got++
			}
		},
		OnSkip: func(tg Target, err error) {
			if dst := tg.Addr; dst != testAddr(13) {
				t.Errorf("skipped %v: %v", dst, err)
			}
		},
		OnDone: func(slot int, partial bool) {
			if partial {
				t.Errorf("%v partial", run.Sched().Addr(slot))
			}
			done[run.Sched().Addr(slot)] = true
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := range ndst {
		if i == 13 {
			continue
		}
		if !done[testAddr(i)] {
			t.Errorf("destination %d not done", i)
		}
		want += 8 * (3 + i%4)
	}
	if len(done) != ndst-1 {
		t.Errorf("%d destinations done, want %d", len(done), ndst-1)
	}
	// Path ID 1's first probes may overshoot the distance by up to
	// GapLimit-1 TTLs, and the destination answers those too.
	if got < want || got > want+ndst*3 {
		t.Errorf("answers = %d, want %d plus path 1's overshoot", got, want)
	}
	if sent > want+ndst*4 || int64(sent) != run.Sent() {
		t.Errorf("sent %d probes (Sent %d), want at most %d", sent, run.Sent(), want+ndst*4)
	}
}

// icmpError wraps quote in an IPv4 ICMP error from -> to.
func icmpError(from, to netip.Addr, typ, code uint8, quote []byte) []byte {
	b := make([]byte, 20+8+len(quote))
	b[0] = 0x45
	b[2], b[3] = byte(len(b)>>8), byte(len(b))
	b[8] = 64
	b[9] = 1 // ICMP
	f, d := from.As4(), to.As4()
	copy(b[12:], f[:])
	copy(b[16:], d[:])
	c := probe.Checksum(b[:20])
	b[10], b[11] = byte(c>>8), byte(c)
	b[20], b[21] = typ, code
	copy(b[28:], quote)
	c = probe.Checksum(b[20:])
	b[22], b[23] = byte(c>>8), byte(c)
	return b
}

// The scanner must not stall when probes time out while it is busy: a clock
// that advances on every call makes every window race with its expiry.
func TestScannerAdvancingClockNeverStalls(t *testing.T) {
	spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 16, Tag: 5}
	var clock = time.Unix(100, 0)
	spec.Epoch = clock
	sent := 0
	one := true
	run := &scanner{
		Spec:     spec,
		Schedule: schedule{Paths: 16, MaxTTL: 30, GapLimit: 5, Timeout: 2 * time.Millisecond, Retries: 1},
		Next: func() (Target, bool) {
			ok := one
			one = false
			return Target{Addr: netip.MustParseAddr("198.51.100.1")}, ok
		},
		Answers: make(chan probe.Answer), // nothing ever answers
		Send:    func(int, [][]byte) error { return nil },
		OnSent:  func(probeRef) { sent++ },
		Clock: funcClock(func() time.Time {
			clock = clock.Add(50 * time.Microsecond)
			return clock
		}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run.Run(ctx); err != nil {
		t.Fatalf("run did not finish: %v", err)
	}
	// Path 1 sends GapLimit TTLs, each once more after its timeout; the
	// others then go up to where it gave up (TTL 5) the same way.
	if sent != 16*5*2 || run.Sent() != int64(sent) || run.Retries() != 16*5 {
		t.Errorf("sent %d probes (scanner %d, retries %d), want %d", sent, run.Sent(), run.Retries(), 16*5*2)
	}
}

// Rate paces sending: a token bucket, a batch at most saved up.
func TestScannerRate(t *testing.T) {
	spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 1, Tag: 5, Epoch: time.Now()}
	next := 0
	var times []time.Time
	clock := newVirtualClock()
	run := &scanner{
		Spec:     spec,
		Schedule: schedule{Paths: 1, MaxTTL: 1, GapLimit: 1, Timeout: 20 * time.Millisecond},
		Rate:     2000,
		Batch:    10,
		Clock:    clock,
		Next: func() (Target, bool) {
			next++
			return Target{Addr: testAddr(next)}, next <= 400
		},
		Answers: make(chan probe.Answer),
		Send: func(_ int, pkts [][]byte) error {
			for range pkts {
				times = append(times, clock.Now())
			}
			return nil
		},
	}
	start := clock.Now()
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(times) != 400 {
		t.Fatalf("sent %d, want 400", len(times))
	}
	// 400 probes at 2000/s, the first batch free: 195 ms at least, and
	// no more than a batch's worth later (the clock only moves when the
	// scanner waits, for what it waits for).
	if el := times[len(times)-1].Sub(start); el < 195*time.Millisecond || el > 200*time.Millisecond {
		t.Errorf("400 probes at 2000/s went out in %v, want 195..200 ms", el)
	}
	// Never more than a batch plus the rate's share at once.
	for i := 20; i < len(times); i++ {
		if d := times[i].Sub(times[i-20]); d < 4*time.Millisecond {
			t.Errorf("probes %d..%d went out within %v: faster than 2000/s", i-20, i, d)
			break
		}
	}
}

// An interrupted run waits briefly for replies in flight, then reports the
// unfinished destinations as partial.
func TestScannerInterrupted(t *testing.T) {
	spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 1, Tag: 5, Epoch: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	next := 0
	partial, complete := 0, 0
	clock := newVirtualClock()
	run := &scanner{
		Spec:     spec,
		Schedule: schedule{Paths: 2, MaxTTL: 4, GapLimit: 4, Timeout: 10 * time.Second},
		Window:   3,
		Linger:   20 * time.Millisecond,
		Clock:    clock,
		Next: func() (Target, bool) {
			next++
			return Target{Addr: testAddr(next)}, next <= 10
		},
		Answers: make(chan probe.Answer),
		Send: func(int, [][]byte) error {
			cancel()
			return nil
		},
		OnDone: func(_ int, p bool) {
			if p {
				partial++
			} else {
				complete++
			}
		},
	}
	start := clock.Now()
	err := run.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	// It lingered for the replies in flight, not for their timeout.
	if el := clock.Now().Sub(start); el != 20*time.Millisecond {
		t.Errorf("interrupted run took %v of the clock, want the 20 ms linger", el)
	}
	if partial != 3 || complete != 0 {
		t.Errorf("partial %d complete %d, want the 3 in progress partial", partial, complete)
	}
}

// BenchmarkScannerNoSend measures the scanner's own cost per probe: the
// scheduler, encoding and checksumming, with a Send that drops the batch.
// No destination answers; every probe times out after 1 ms.
func BenchmarkScannerNoSend(b *testing.B) {
	spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 1, Tag: 5, Epoch: time.Now()}
	var n uint32
	probes := b.N
	run := &scanner{
		Spec:     spec,
		Schedule: schedule{Paths: 1, MaxTTL: 4, GapLimit: 5, Timeout: time.Millisecond},
		Window:   1 << 16,
		Next: func() (Target, bool) {
			n++
			return Target{Addr: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})}, int(n)*4 <= probes
		},
		Answers: make(chan probe.Answer),
		Send:    func(int, [][]byte) error { return nil },
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := run.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(run.Sent())/b.Elapsed().Seconds(), "probes/s")
}

// A destination nearer than --first-ttl (its answer's quoted TTL says so)
// must not leave the other path IDs with nothing they may send.
func TestSchedDestinationNearerThanFirstTTL(t *testing.T) {
	q := newSched(schedule{Paths: 4, FirstTTL: 3, MaxTTL: 10, GapLimit: 5, Timeout: time.Second}, 1)
	slot, _ := q.Admit(testAddr(1))
	now := time.Unix(0, 0)
	done := false
	for step := 0; step < 20 && !done; step++ {
		for _, p := range q.Ready(now, nil, 100) {
			if int(p.TTL) < 3 {
				t.Fatalf("probe %+v below the first TTL", p)
			}
			q.Answer(slot, int(p.Path), int(p.TTL), true, true)
			q.Reached(slot, int(p.Path), 2) // the destination is 2 hops away
		}
		q.Resolve(func(int) { done = true })
		now = now.Add(time.Millisecond)
	}
	if !done {
		t.Fatalf("destination not finished; sent %d", q.Sent())
	}
	if q.Sent() != 5+3 {
		t.Errorf("sent %d probes, want path ID 1's first round (TTLs 3..7) and TTL 3 of the others", q.Sent())
	}
}

// Retries beyond what a cell can count are capped, not wrapped around.
func TestSchedRetriesCapped(t *testing.T) {
	s := schedule{Paths: 1, MaxTTL: 1, GapLimit: 1, Timeout: time.Millisecond, Retries: 40}
	m := &netModel{dist: func(int, int) int { return 5 }, silent: map[int]bool{1: true}}
	q, _, order := drive(t, s, 1, 1, m, time.Millisecond, nil)
	// A cell counts its sends in 4 bits, budgetRetries of them kept for
	// the hops' budgets.
	if want := maxSends - budgetRetries; len(order) != 1 || q.Sent() != want {
		t.Errorf("finished %v after %d sends, want 1 + %d retries", order, q.Sent(), want-1)
	}
}

// Replies already queued count even when the loop was held up past their
// probes' timeout (a slow send, a slow result writer).
func TestScannerQueuedRepliesBeatTimeouts(t *testing.T) {
	spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 1, Tag: 5, Epoch: time.Now()}
	answers := make(chan probe.Answer, 1024)
	m := probe.NewMatcher(spec)
	var r probe.Reply
	next, silent := 0, 0
	clock := newVirtualClock()
	var run *scanner
	run = &scanner{
		Spec:     spec,
		Schedule: schedule{Paths: 1, MaxTTL: 2, GapLimit: 2, Timeout: 20 * time.Millisecond},
		Window:   2,
		Clock:    clock,
		Next: func() (Target, bool) {
			next++
			return Target{Addr: testAddr(next)}, next <= 6
		},
		Answers: answers,
		Send: func(_ int, pkts [][]byte) error {
			for _, p := range pkts {
				quote := append([]byte(nil), p...)
				quote[8] = 1
				var a probe.Answer
				from := netip.AddrFrom4([4]byte{203, 0, 113, p[8]})
				if m.Match(icmpError(from, spec.Src, probe.ICMPTimeExceeded, 0, quote), clock.Now(), &r, &a) {
					answers <- a
				}
			}
			clock.Advance(60 * time.Millisecond) // held up past the timeout
			return nil
		},
		OnDone: func(slot int, _ bool) {
			for ttl := 1; ttl <= 2; ttl++ {
				if _, _, s := run.Sched().Probed(slot, 1, ttl); s {
					silent++
				}
			}
		},
	}
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if silent != 0 {
		t.Errorf("%d answered probes given up as silent", silent)
	}
}

// New destinations start only while the sender lacks work: where answers
// come back at once, a few batches' worth are in progress however large
// the window; where nothing answers, the window fills.
func TestScannerAdmitsOnDemand(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		answer                  bool
		window, ndst            int
		rate                    float64
		rtt                     time.Duration // the round trip answers report
		wantAtMost, wantAtLeast int
	}{
		{name: "answered", answer: true, window: 4096, ndst: 2000, wantAtMost: 4 * 64},
		{name: "silent", answer: false, window: 300, ndst: 2000, wantAtLeast: 300},
		// Paced: as many ready as the rate serves in two round trips
		// (2 x 20,000/s x 15 ms = 600), so that a destination's next
		// probe waits for the answer to its last.
		{name: "paced", answer: true, window: 4096, ndst: 800, rate: 20000, rtt: 15 * time.Millisecond, wantAtLeast: 500, wantAtMost: 700},
		{name: "paced-fast", answer: true, window: 4096, ndst: 800, rate: 20000, wantAtMost: 4 * 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 4, Tag: 9, Epoch: time.Now()}
			ndst := tc.ndst
			answers := make(chan probe.Answer, 1<<16)
			next, active, most, done := 0, 0, 0, 0
			run := &scanner{
				Spec:     spec,
				Schedule: schedule{Paths: 4, MaxTTL: 8, GapLimit: 2, Timeout: 20 * time.Millisecond},
				Window:   tc.window,
				Rate:     tc.rate,
				Next: func() (Target, bool) {
					if next == ndst {
						return Target{}, false
					}
					next++
					return Target{Addr: testAddr(next)}, true
				},
				Start: func(int, Target) (int, error) {
					active++
					most = max(most, active)
					return 0, nil
				},
				OnDone:  func(int, bool) { active--; done++ },
				Answers: answers,
				Send:    func(int, [][]byte) error { return nil },
			}
			if tc.answer {
				run.Send = instantNetwork(spec, answers, 3, tc.rtt)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := run.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if done != ndst {
				t.Errorf("%d destinations done, want %d", done, ndst)
			}
			if tc.wantAtMost > 0 && most > tc.wantAtMost {
				t.Errorf("%d destinations in progress at once, want at most %d (window %d)", most, tc.wantAtMost, tc.window)
			}
			t.Logf("%d destinations in progress at most", most)
			if most < tc.wantAtLeast {
				t.Errorf("%d destinations in progress at once, want the window's %d", most, tc.wantAtLeast)
			}
		})
	}
}

// A plan may name a probe twice: when the first has been answered by the
// time the second is handed out (a slow rate sends one at a time), skipping
// it settles the destination, which must then finish at once rather than
// wait for a timeout that nothing is left to set.
func TestScannerPlanOfSentProbesFinishes(t *testing.T) {
	for _, rate := range []float64{0, 200} {
		spec := &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 1, Tag: 9, Epoch: time.Now()}
		answers := make(chan probe.Answer, 1<<10)
		one, planned, finished := true, false, false
		run := &scanner{
			Spec:     spec,
			Schedule: schedule{Paths: 1, MaxTTL: 10, GapLimit: 2, Timeout: time.Second},
			Rate:     rate,
			Next: func() (Target, bool) {
				ok := one
				one = false
				return Target{Addr: testAddr(1)}, ok
			},
			More: func(int) plan {
				if planned {
					return plan{}
				}
				planned = true
				return plan{Cells: []mda.Cell{{PathID: 1, TTL: 5}, {PathID: 1, TTL: 5}}}
			},
			OnDone:  func(int, bool) { finished = true },
			Answers: answers,
			Send:    instantNetwork(spec, answers, 3, 0),
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := run.Run(ctx)
		cancel()
		if err != nil || !planned || !finished {
			t.Errorf("rate %v: Run = %v, planned %v, finished %v; want it done", rate, err, planned, finished)
		}
	}
}

// instantNetwork is a Send whose network answers every probe at once: hop h
// from 203.0.113.h, the destination (dist hops away) with a port
// unreachable quoting the TTL the probe had left. The answers report rtt.
func instantNetwork(spec *probe.Spec, answers chan<- probe.Answer, dist int, rtt time.Duration) func(int, [][]byte) error {
	m := probe.NewMatcher(spec)
	var r probe.Reply
	return func(_ int, pkts [][]byte) error {
		for _, p := range pkts {
			dst := netip.AddrFrom4([4]byte(p[16:20]))
			ttl := int(p[8])
			from, typ, code := netip.AddrFrom4([4]byte{203, 0, 113, byte(ttl)}), uint8(probe.ICMPTimeExceeded), uint8(0)
			quote := append([]byte(nil), p...)
			quote[8] = 1
			if ttl >= dist {
				from, typ, code = dst, probe.ICMPUnreachable, probe.CodePortUnreachable
				quote[8] = byte(ttl - dist + 1)
			}
			var a probe.Answer
			if m.Match(icmpError(from, spec.Src, typ, code, quote), time.Now(), &r, &a) {
				a.RTT = rtt
				answers <- a
			}
		}
		return nil
	}
}

// funcClock is a Clock whose time is the function's, with the system's
// timers.
type funcClock func() time.Time

func (f funcClock) Now() time.Time  { return f() }
func (f funcClock) NewTimer() Timer { return systemClock{}.NewTimer() }

// virtualClock is a Clock for tests whose events all happen in the
// scanner's own goroutine (answers delivered by Send, or none): its time
// moves only by Advance, or when the scanner is about to wait on a timer,
// which then fires at once, its deadline becoming the time.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newVirtualClock() *virtualClock { return &virtualClock{now: time.Unix(1000, 0)} }

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *virtualClock) NewTimer() Timer { return &virtualTimer{c: c, ch: make(chan time.Time, 1)} }

type virtualTimer struct {
	c     *virtualClock
	ch    chan time.Time
	at    time.Time
	armed bool
}

func (t *virtualTimer) C() <-chan time.Time {
	if t.armed {
		t.armed = false
		t.c.mu.Lock()
		if t.at.After(t.c.now) {
			t.c.now = t.at
		}
		t.c.mu.Unlock()
		t.ch <- t.at
	}
	return t.ch
}

func (t *virtualTimer) Reset(d time.Duration) {
	t.Stop()
	t.at, t.armed = t.c.Now().Add(d), true
}

func (t *virtualTimer) Stop() {
	t.armed = false
	select {
	case <-t.ch:
	default:
	}
}

// Recording an answer allocates nothing: the answers received from the
// channel do not escape to the heap on their way to OnAnswer.
func TestScannerAnswersDoNotAllocate(t *testing.T) {
	answers := make(chan probe.Answer, 1)
	dst := testAddr(1)
	var seen int
	r := &scanner{
		Spec:     &probe.Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 4, Tag: 5, Epoch: time.Now()},
		Schedule: schedule{Paths: 4, MaxTTL: 8, GapLimit: 2, Timeout: time.Second},
		Answers:  answers,
		OnAnswer: func(_ int, a *probe.Answer, _ bool) { seen += int(a.TTL) },
		Prev:     func(int, int, int) (netip.Addr, bool) { return netip.Addr{}, false },
	}
	r.init()
	if _, ok := r.q.Admit(dst); !ok {
		t.Fatal("admit")
	}
	a := probe.Answer{Dst: dst, Path: 1, TTL: 1, From: netip.MustParseAddr("203.0.113.1"), RTT: time.Millisecond}
	allocs := testing.AllocsPerRun(1000, func() {
		answers <- a
		r.drain()
	})
	if allocs != 0 || seen == 0 {
		t.Errorf("%v allocations per answer recorded (%d seen), want 0", allocs, seen)
	}
}

// Repeats send again probes that were answered, once each, as explicit
// probes the destination waits for; a probe not answered, not sent, or
// of a path ID still probing TTL by TTL is not repeated.
func TestSchedRepeats(t *testing.T) {
	s := schedule{Paths: 2, MaxPaths: 8, MaxTTL: 30, GapLimit: 3, Timeout: time.Second}
	m := &netModel{dist: func(int, int) int { return 4 }, silent: map[int]bool{2: true}}
	asked := 0
	drive(t, s, 1, 1, m, time.Millisecond, func(q *sched, slot, _ int) plan {
		asked++
		switch asked {
		case 1:
			return plan{Repeats: []mda.Cell{{PathID: 1, TTL: 1}, {PathID: 2, TTL: 3}, {PathID: 2, TTL: 3},
				{PathID: 1, TTL: 2}, {PathID: 1, TTL: 9}, {PathID: 5, TTL: 1}, {PathID: 1, TTL: 0}}}
		case 2:
			if sent, answered, _ := q.Probed(slot, 1, 1); !sent || !answered {
				t.Errorf("the repeat of path 1 TTL 1: sent %v answered %v", sent, answered)
			}
			return plan{Repeats: []mda.Cell{{PathID: 1, TTL: 1}}}
		}
		return plan{}
	})
	if asked != 3 {
		t.Errorf("More asked %d times, want 3", asked)
	}
	for k, want := range map[key]int{{0, 1, 1}: 3, {0, 2, 3}: 2, {0, 1, 2}: 1, {0, 1, 9}: 0, {0, 5, 1}: 0} {
		if m.sent[k] != want {
			t.Errorf("path %d TTL %d sent %d times, want %d", k.path, k.ttl, m.sent[k], want)
		}
	}
}
