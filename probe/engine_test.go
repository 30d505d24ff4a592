package probe

import (
	"context"
	"net/netip"
	"sort"
	"testing"
	"time"
)

// netModel answers probes like a network: flow (dst, path) reaches its
// destination at dist(dst, path); TTLs in silent never answer.
type netModel struct {
	dist   func(dst, path int) int
	silent map[int]bool // TTLs whose router never answers
	sent   map[ProbeRef]int
}

func (m *netModel) reply(p ProbeRef) (answers bool, reached bool) {
	d := m.dist(int(p.Dst), int(p.Path))
	if int(p.TTL) >= d {
		return true, true
	}
	return !m.silent[int(p.TTL)], false
}

// drive runs an engine to completion on virtual time: every answerable probe
// answers after rtt, the others time out.
func drive(t *testing.T, s Schedule, ndst int, m *netModel, rtt time.Duration) (e *Engine, elapsed time.Duration) {
	t.Helper()
	e = NewEngine(s, ndst)
	start := time.Unix(1000, 0)
	now := start
	type pending struct {
		at      time.Time
		p       ProbeRef
		reached bool
	}
	var inflight []pending
	m.sent = map[ProbeRef]int{}
	for step := 0; step < 100000; step++ {
		e.Expire(now) // may queue retries for Ready
		for _, p := range e.Ready(now, nil, 1<<30) {
			m.sent[p]++
			if ok, reached := m.reply(p); ok {
				inflight = append(inflight, pending{now.Add(rtt), p, reached})
			}
		}
		next := e.Expire(now)
		e.Resolve()
		if e.Done() {
			return e, now.Sub(start)
		}
		// Advance to the earliest event: a reply or an expiry.
		sort.Slice(inflight, func(i, j int) bool { return inflight[i].at.Before(inflight[j].at) })
		switch {
		case len(inflight) > 0 && (next.IsZero() || !inflight[0].at.After(next)):
			now = inflight[0].at
			for len(inflight) > 0 && !inflight[0].at.After(now) {
				a := inflight[0]
				inflight = inflight[1:]
				e.Answer(int(a.p.Dst), int(a.p.Path), int(a.p.TTL), a.reached, false)
			}
			e.Resolve()
		case !next.IsZero():
			now = next
		default:
			t.Fatalf("engine not done but nothing pending (sent %d)", e.Sent())
		}
	}
	t.Fatal("engine did not finish")
	return nil, 0
}

func TestEngineStopsAtDestination(t *testing.T) {
	s := Schedule{Paths: 16, MaxTTL: 30, GapLimit: 5, Timeout: time.Second}
	m := &netModel{dist: func(int, int) int { return 4 }}
	e, elapsed := drive(t, s, 1, m, time.Millisecond)
	// GapLimit TTLs go out at once; the first replies arrive together, so at
	// most GapLimit probes per path lie above the destination.
	for p := range m.sent {
		if p.TTL > 4+5 {
			t.Errorf("probe %+v sent beyond distance+gap", p)
		}
	}
	for path := 1; path <= 16; path++ {
		for ttl := 1; ttl <= 4; ttl++ {
			if m.sent[ProbeRef{0, uint16(path), uint8(ttl)}] != 1 {
				t.Errorf("path %d ttl %d sent %d times, want 1", path, ttl, m.sent[ProbeRef{0, uint16(path), uint8(ttl)}])
			}
		}
	}
	// Everything answered: no timeout was waited for.
	if elapsed > 10*time.Millisecond {
		t.Errorf("took %v of virtual time, want a few RTTs", elapsed)
	}
	if !e.DstDone(0) {
		t.Error("destination not done")
	}
}

func TestEngineLongPathAdvancesWithAnswers(t *testing.T) {
	s := Schedule{Paths: 2, MaxTTL: 64, GapLimit: 3, Timeout: time.Second}
	m := &netModel{dist: func(_, p int) int { return 20 + p }} // unequal lengths
	_, elapsed := drive(t, s, 1, m, time.Millisecond)
	for path := 1; path <= 2; path++ {
		d := 20 + path
		for ttl := 1; ttl <= d; ttl++ {
			if m.sent[ProbeRef{0, uint16(path), uint8(ttl)}] != 1 {
				t.Errorf("path %d ttl %d not sent exactly once", path, ttl)
			}
		}
		for ttl := d + 4; ttl <= 64; ttl++ {
			if m.sent[ProbeRef{0, uint16(path), uint8(ttl)}] != 0 {
				t.Errorf("path %d ttl %d sent past distance %d + gap", path, ttl, d)
			}
		}
	}
	if elapsed > 30*time.Millisecond {
		t.Errorf("took %v, want about distance/gap RTTs", elapsed)
	}
}

func TestEngineGapLimitStopsSilentPath(t *testing.T) {
	// Nothing beyond TTL 3 ever answers: the destination filters everything.
	s := Schedule{Paths: 1, MaxTTL: 30, GapLimit: 4, Timeout: 100 * time.Millisecond}
	m := &netModel{dist: func(int, int) int { return 99 }, silent: map[int]bool{}}
	for ttl := 4; ttl <= 30; ttl++ {
		m.silent[ttl] = true
	}
	_, elapsed := drive(t, s, 1, m, time.Millisecond)
	var maxTTL uint8
	for p := range m.sent {
		maxTTL = max(maxTTL, p.TTL)
	}
	if maxTTL != 3+4 {
		t.Errorf("highest TTL sent = %d, want 7 (last answer 3 + gap 4)", maxTTL)
	}
	if elapsed < 100*time.Millisecond || elapsed > 150*time.Millisecond {
		t.Errorf("finished after %v, want one timeout", elapsed)
	}
}

func TestEngineRetriesThenSilent(t *testing.T) {
	s := Schedule{Paths: 1, MaxTTL: 5, GapLimit: 5, Timeout: 100 * time.Millisecond, Retries: 2}
	m := &netModel{dist: func(int, int) int { return 5 }, silent: map[int]bool{2: true}}
	e, elapsed := drive(t, s, 1, m, time.Millisecond)
	if got := m.sent[ProbeRef{0, 1, 2}]; got != 3 {
		t.Errorf("silent TTL sent %d times, want 1 + 2 retries", got)
	}
	if got := m.sent[ProbeRef{0, 1, 3}]; got != 1 {
		t.Errorf("answered TTL sent %d times, want 1", got)
	}
	if e.Sent() != 5+2 {
		t.Errorf("Sent() = %d, want 7", e.Sent())
	}
	if elapsed < 300*time.Millisecond || elapsed > 350*time.Millisecond {
		t.Errorf("finished after %v, want three timeouts", elapsed)
	}
}

func TestEngineManyDestinationsFinishIndependently(t *testing.T) {
	s := Schedule{Paths: 4, MaxTTL: 16, GapLimit: 2, Timeout: 50 * time.Millisecond}
	m := &netModel{dist: func(d, _ int) int { return 2 + d }}
	e, _ := drive(t, s, 5, m, time.Millisecond)
	for d := 0; d < 5; d++ {
		if !e.DstDone(d) {
			t.Errorf("destination %d not done", d)
		}
		for ttl := 1; ttl <= 2+d; ttl++ {
			if m.sent[ProbeRef{int32(d), 3, uint8(ttl)}] != 1 {
				t.Errorf("dst %d ttl %d not probed", d, ttl)
			}
		}
	}
}

func TestEngineIgnoresDuplicatesAndStrangers(t *testing.T) {
	e := NewEngine(Schedule{Paths: 2, MaxTTL: 8, GapLimit: 8, Timeout: time.Second}, 1)
	now := time.Unix(0, 0)
	refs := e.Ready(now, nil, 100)
	if len(refs) != 16 {
		t.Fatalf("Ready sent %d probes, want 16", len(refs))
	}
	if !e.Answer(0, 1, 3, false, false) {
		t.Error("first answer rejected")
	}
	if e.Answer(0, 1, 3, false, false) {
		t.Error("duplicate answer accepted")
	}
	for _, bad := range [][3]int{{1, 1, 1}, {0, 3, 1}, {0, 1, 9}, {0, 0, 1}, {-1, 1, 1}} {
		if e.Answer(bad[0], bad[1], bad[2], false, false) {
			t.Errorf("answer %v for a probe never sent accepted", bad)
		}
	}
}

func TestRunnerEndToEndInMemory(t *testing.T) {
	spec := &Spec{
		Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452,
		Paths: 8, Tag: 77, Epoch: time.Now(),
	}
	dsts := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")}
	answers := make(chan Answer, 1024)
	m := NewMatcher(spec, dsts)
	var r Reply
	sent, got := 0, 0
	done := map[int]bool{}
	run := &Runner{
		Spec:     spec,
		Schedule: Schedule{Paths: 8, MaxTTL: 30, GapLimit: 4, Timeout: time.Second},
		Dsts:     dsts,
		Answers:  answers,
		Send: func(dst int, pkts [][]byte) error {
			for _, p := range pkts {
				sent++
				// The "network": hop h answers from 203.0.113.h, the
				// destination is 3 hops away for dst 0 and 5 for dst 1.
				ttl := int(p[8])
				d := 3 + 2*dst
				from := netip.AddrFrom4([4]byte{203, 0, 113, byte(ttl)})
				typ, code := uint8(ICMPTimeExceeded), uint8(0)
				if ttl >= d {
					from, typ, code = dsts[dst], ICMPUnreachable, CodePortUnreachable
				}
				pkt := icmpError(from, spec.Src, typ, code, p)
				var a Answer
				if m.Match(pkt, time.Now(), &r, &a) {
					answers <- a
				}
			}
			return nil
		},
		OnAnswer: func(Answer) { got++ },
		OnDone:   func(d int) { done[d] = true },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !done[0] || !done[1] {
		t.Errorf("destinations done = %v", done)
	}
	if got < 8*3+8*5 {
		t.Errorf("answers = %d, want at least %d", got, 8*3+8*5)
	}
	if sent > 8*(3+4)+8*(5+4) {
		t.Errorf("sent %d probes, more than distance + gap per path", sent)
	}
}

// icmpError wraps quote in an IPv4 ICMP error from -> to.
func icmpError(from, to netip.Addr, typ, code uint8, quote []byte) []byte {
	b := make([]byte, 20+8+len(quote))
	b[0] = 0x45
	b[2], b[3] = byte(len(b)>>8), byte(len(b))
	b[8] = 64
	b[9] = protoICMP
	f, d := from.As4(), to.As4()
	copy(b[12:], f[:])
	copy(b[16:], d[:])
	c := Checksum(b[:20])
	b[10], b[11] = byte(c>>8), byte(c)
	b[20], b[21] = typ, code
	copy(b[28:], quote)
	c = Checksum(b[20:])
	b[22], b[23] = byte(c>>8), byte(c)
	return b
}

func TestEngineMoreAddsPathIDs(t *testing.T) {
	s := Schedule{Paths: 6, MaxPaths: 20, MaxTTL: 30, GapLimit: 5, Timeout: time.Second}
	m := &netModel{dist: func(int, int) int { return 4 }}
	asked := 0
	e := NewEngine(s, 1)
	e.More = func(dst int) (int, int) {
		asked++
		switch asked {
		case 1:
			return 10, 4 // a first round of 10 more, destination at 4
		case 2:
			return 50, 4 // more than MaxPaths allows: capped at 20 in all
		}
		return 0, 0
	}
	// drive with the engine above: reuse the loop by hand.
	now := time.Unix(0, 0)
	m.sent = map[ProbeRef]int{}
	for step := 0; step < 1000 && !e.Done(); step++ {
		e.Expire(now)
		e.Resolve()
		for _, p := range e.Ready(now, nil, 1<<30) {
			m.sent[p]++
			_, reached := m.reply(p)
			e.Answer(int(p.Dst), int(p.Path), int(p.TTL), reached, false)
		}
		e.Resolve()
		now = now.Add(time.Millisecond)
	}
	if !e.Done() {
		t.Fatal("engine not done")
	}
	if asked != 3 {
		t.Errorf("More asked %d times, want 3", asked)
	}
	if e.Active(0) != 20 {
		t.Errorf("Active = %d, want MaxPaths 20", e.Active(0))
	}
	for path := 1; path <= 20; path++ {
		for ttl := 1; ttl <= 4; ttl++ {
			if m.sent[ProbeRef{0, uint16(path), uint8(ttl)}] != 1 {
				t.Errorf("path %d TTL %d sent %d times", path, ttl, m.sent[ProbeRef{0, uint16(path), uint8(ttl)}])
			}
		}
		// Paths added with the horizon 4 send 1..4 at once and nothing
		// beyond the destination.
		if path > 6 && m.sent[ProbeRef{0, uint16(path), 5}] != 0 {
			t.Errorf("added path %d probed beyond the known distance", path)
		}
	}
	if m.sent[ProbeRef{0, 21, 1}] != 0 {
		t.Error("path beyond MaxPaths probed")
	}
}

// A reply to the first send of a probe whose retry is queued counts, and
// the retry is then not sent.
func TestEngineLateReplyCancelsQueuedRetry(t *testing.T) {
	e := NewEngine(Schedule{Paths: 1, MaxTTL: 1, GapLimit: 1, Timeout: 10 * time.Millisecond, Retries: 1}, 1)
	t0 := time.Unix(0, 0)
	if refs := e.Ready(t0, nil, 10); len(refs) != 1 {
		t.Fatalf("sent %d probes, want 1", len(refs))
	}
	e.Expire(t0.Add(20 * time.Millisecond)) // times out: retry queued
	if !e.Answer(0, 1, 1, true, false) {
		t.Fatal("late reply to the first send rejected")
	}
	if refs := e.Ready(t0.Add(21*time.Millisecond), nil, 10); len(refs) != 0 {
		t.Errorf("retry sent after the probe was answered: %v", refs)
	}
	e.Resolve()
	if !e.Done() {
		t.Error("engine not done after the only probe was answered")
	}
	if e.NextExpiry() != (time.Time{}) {
		t.Error("an expiry remains with nothing in flight")
	}
}

// The runner must not stall when probes time out while it is busy: a clock
// that advances on every call makes every window race with its expiry.
func TestRunnerAdvancingClockNeverStalls(t *testing.T) {
	spec := &Spec{Src: netip.MustParseAddr("192.0.2.1"), BaseSrcPort: 33452, DstPort: 33452, Paths: 16, Tag: 5}
	var clock time.Time = time.Unix(100, 0)
	spec.Epoch = clock
	sent := 0
	run := &Runner{
		Spec:     spec,
		Schedule: Schedule{Paths: 16, MaxTTL: 30, GapLimit: 5, Timeout: 2 * time.Millisecond, Retries: 1},
		Dsts:     []netip.Addr{netip.MustParseAddr("198.51.100.1")},
		Answers:  make(chan Answer), // nothing ever answers
		Send:     func(int, [][]byte) error { return nil },
		OnSent:   func(ProbeRef) { sent++ },
		Now: func() time.Time {
			clock = clock.Add(50 * time.Microsecond)
			return clock
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run.Run(ctx); err != nil {
		t.Fatalf("run did not finish: %v", err)
	}
	// Every path sends GapLimit TTLs, each once more after its timeout.
	if sent != 16*5*2 || run.Sent() != sent {
		t.Errorf("sent %d probes (engine %d), want %d", sent, run.Sent(), 16*5*2)
	}
}
