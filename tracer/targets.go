package tracer

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/traceflow-fast/traceflow-fast/targets"
)

// Target is a destination: its address, and the name it was given by (a
// host name, or the address itself).
type Target struct {
	Addr netip.Addr
	Name string
}

func (t Target) name() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Addr.String()
}

// Targets is where a run takes its destinations from: a list, a set read
// from target files, or a stream. A run traces each destination it yields
// once (one yielded again while it is still in progress is skipped).
type Targets interface {
	// Next returns the next destination, or false when there are no more.
	// It may wait for one (a stream); it returns false when ctx is done.
	Next(ctx context.Context) (Target, bool)
	// Len returns how many destinations Next yields in all, or -1 when
	// that is not known in advance.
	Len() int64
}

// Addrs returns the destinations addrs, in their order.
func Addrs(addrs ...netip.Addr) Targets {
	ts := make([]Target, len(addrs))
	for i, a := range addrs {
		ts[i] = Target{Addr: a}
	}
	return &list{ts: ts}
}

// List returns the destinations ts, in their order.
func List(ts ...Target) Targets { return &list{ts: ts} }

type list struct {
	ts []Target
	i  int
}

func (l *list) Len() int64 { return int64(len(l.ts)) }

func (l *list) Next(context.Context) (Target, bool) {
	if l.i == len(l.ts) {
		return Target{}, false
	}
	l.i++
	return l.ts[l.i-1], true
}

// Shuffle returns the destinations of set in a pseudo-random order given by
// seed, named as the set names them. Probing them in that order spreads the
// load of a scan over the networks it crosses.
func Shuffle(set *targets.Set, seed uint64) Targets {
	return &shuffled{set: set, perm: targets.NewPermutation(set.Len(), seed), seed: seed}
}

type shuffled struct {
	set  *targets.Set
	perm *targets.Permutation
	seed uint64
}

func (s *shuffled) Len() int64 { return int64(s.set.Len()) }

// LogValue gives the seed of the order in the run's logs, so that an
// order can be repeated.
func (s *shuffled) LogValue() slog.Value { return slog.GroupValue(slog.Uint64("seed", s.seed)) }

func (s *shuffled) Next(context.Context) (Target, bool) {
	i, ok := s.perm.Next()
	if !ok {
		return Target{}, false
	}
	a := s.set.At(i)
	return Target{Addr: a, Name: s.set.Name(a)}, true
}

// Stream returns the destinations received from ch, until it is closed.
func Stream(ch <-chan Target) Targets { return stream(ch) }

type stream <-chan Target

func (s stream) Len() int64 { return -1 }

func (s stream) Next(ctx context.Context) (Target, bool) {
	select {
	case t, ok := <-s:
		return t, ok
	case <-ctx.Done():
		return Target{}, false
	}
}

// peeked yields the targets Open looked at first, then the rest.
type peeked struct {
	first []Target
	rest  Targets
}

func (p *peeked) Len() int64 { return p.rest.Len() }

// LogValue logs what the targets log of themselves, if anything.
func (p *peeked) LogValue() slog.Value {
	if v, ok := p.rest.(slog.LogValuer); ok {
		return v.LogValue()
	}
	return slog.GroupValue()
}

func (p *peeked) Next(ctx context.Context) (Target, bool) {
	if len(p.first) > 0 {
		t := p.first[0]
		p.first = p.first[1:]
		return t, true
	}
	return p.rest.Next(ctx)
}
