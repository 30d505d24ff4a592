// Package monitor traces a list of destinations again and again, each once
// per interval, through one run of the engine (package tracer), and reports
// when their paths change: events (JSON lines or text), Prometheus metrics,
// and a state file that carries what it knows across restarts.
//
// A change is what `traceflow-fast diff` calls one (analysis.DiffTraces):
// the set of distinct paths differs, or the destination became unreachable
// or reachable; path IDs reshuffled over the same paths are no change, and
// hops that Config.Ignore names agree with anything. It is reported once
// Config.Confirm runs in a row have shown the same new paths, so that one
// lost reply does not raise an alarm.
//
//	m, err := monitor.New(ctx, monitor.Config{Interval: time.Minute, Load: load, Events: os.Stdout})
//	ln, err := monitor.Listen("127.0.0.1:9108")         // metrics
//	t, err := tracer.Open(ctx, cfg, m.Targets())       // needs privileges
//	// privileges may be dropped here
//	err = m.Run(ctx, t, ln)                            // until ctx is done
package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/annotate"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Config says what a Monitor watches and how it reports. Zero values are
// defaults.
type Config struct {
	// Load reads the destinations to monitor: once by New, again by
	// Reload. They are all IPv4 or all IPv6, as the engine's run is.
	Load func(ctx context.Context) ([]tracer.Target, error)
	// Interval is the time between two runs of a destination (default
	// DefaultInterval).
	Interval time.Duration
	// Confirm is how many runs in a row must show a change before it is
	// reported (default 2; 1 reports at once).
	Confirm int
	// Ignore lists known-noisy hops: at a TTL where either path has an
	// address inside one of these, the paths agree.
	Ignore []netip.Prefix
	// Events receives the events (default: none); Text writes them for
	// people instead of as JSON lines.
	Events io.Writer
	Text   bool
	// State is the state file ("": none).
	State string
	// HopSeries bounds the hop RTT series of each destination (default
	// DefaultHopSeries; NoHopSeries for none).
	HopSeries int
	// Seed seeds the order and the jitter of the schedule.
	Seed uint64
	// Annotate, when set, adds AS numbers, IXP names and host names to
	// every run's hops.
	Annotate *annotate.Annotator
	// Logger receives the monitor's logs (default: none).
	Logger *slog.Logger
	// Clock is the schedule's time: the engine's (tracer.Config.Clock),
	// default the system's.
	Clock tracer.Clock
	// OnRound, when set, is told of every run of a destination once it
	// is over, in the order they end. It is called from the engine's
	// goroutine while the monitor holds its lock: it must return quickly
	// and not call the Monitor's methods.
	OnRound func(Round)
}

// A Round is one run of a destination, as Config.OnRound is told of it.
type Round struct {
	Target tracer.Target
	End    time.Time
	// Trace is the run's result, nil when the destination could not be
	// traced (Err says why).
	Trace *analysis.Trace
	Err   string
	// Event is what the run reported (a baseline or a change), nil for
	// none: its Time is End.
	Event *Event
}

// Defaults of Config.
const (
	DefaultInterval  = time.Minute
	DefaultConfirm   = 2
	DefaultHopSeries = 32
	NoHopSeries      = -1
	// SaveEvery is how often the state file is written while something
	// changed in it; Run writes it again when it returns.
	SaveEvery = 10 * time.Second
)

// A Monitor traces its destinations on a schedule and reports their
// changes. New prepares it, Run runs it; Reload re-reads the destinations.
type Monitor struct {
	cfg     Config
	log     *slog.Logger
	clock   tracer.Clock
	timer   tracer.Timer // of Next
	metrics *metrics
	events  *eventWriter
	engine  atomic.Pointer[tracer.Tracer]
	detect  detectOptions
	ctx     context.Context // of Run, for the annotations

	mu      sync.Mutex
	dests   map[netip.Addr]*dest
	queue   queue
	opening bool // tracer.Open is looking for the first route
	wake    chan struct{}
	rng     *rand.Rand
	is6     bool
	stored  map[netip.Addr]stateDest // from the state file, not applied yet
	dirty   bool                     // the state changed since it was written
	scratch map[hopKey][]time.Duration
}

// New reads the state file (Config.State) and the destinations
// (Config.Load), and returns a Monitor ready to run.
func New(ctx context.Context, cfg Config) (*Monitor, error) {
	if cfg.Load == nil {
		return nil, errors.New("monitor: Config.Load is not set")
	}
	cfg.Interval = cmpOr(cfg.Interval, DefaultInterval)
	cfg.Confirm = cmpOr(cfg.Confirm, DefaultConfirm)
	cfg.HopSeries = cmpOr(cfg.HopSeries, DefaultHopSeries)
	switch {
	case cfg.Interval < 0:
		return nil, fmt.Errorf("monitor: Config.Interval %v: must be positive", cfg.Interval)
	case cfg.Confirm < 1:
		return nil, fmt.Errorf("monitor: Config.Confirm %d: must be 1 or more", cfg.Confirm)
	}
	m := &Monitor{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock,
		events:  &eventWriter{w: cfg.Events, text: cfg.Text},
		detect:  detectOptions{confirm: cfg.Confirm, ignore: cfg.Ignore},
		ctx:     context.WithoutCancel(ctx),
		dests:   map[netip.Addr]*dest{},
		opening: true,
		wake:    make(chan struct{}, 1),
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6e69746f72)),
		stored:  map[netip.Addr]stateDest{},
		scratch: map[hopKey][]time.Duration{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.clock == nil {
		m.clock = systemClock{}
	}
	m.timer = m.clock.NewTimer()
	m.metrics = newMetrics(max(cfg.HopSeries, 0), m.stats)
	if cfg.State != "" {
		st, err := loadState(cfg.State)
		if err == nil {
			err = checkWritable(cfg.State)
		}
		if err != nil {
			return nil, err
		}
		m.stored = st
	}
	ts, err := cfg.Load(ctx)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, errors.New("no destination to monitor")
	}
	m.is6 = ts[0].Addr.Is6()
	if err := m.checkFamily(ts); err != nil {
		return nil, err
	}
	m.setTargets(ts, m.clock.Now())
	return m, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkFamily refuses destinations of the family the run does not trace.
func (m *Monitor) checkFamily(ts []tracer.Target) error {
	for _, t := range ts {
		if t.Addr.Is6() != m.is6 {
			fam := "IPv4"
			if m.is6 {
				fam = "IPv6"
			}
			return fmt.Errorf("%s: not an %s address, as the destinations monitored are: a run traces one family", targetName(t), fam)
		}
	}
	return nil
}

// Targets returns the destinations as the engine takes them, each when it
// is due: hand it to tracer.Open.
func (m *Monitor) Targets() tracer.Targets { return dueTargets{m} }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Monitor) Handler() http.Handler {
	return promhttp.HandlerFor(m.metrics.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelError)})
}

func (m *Monitor) stats() tracer.Stats {
	if t := m.engine.Load(); t != nil {
		return t.Stats()
	}
	return tracer.Stats{}
}

// Run traces the destinations with t, which tracer.Open opened over
// m.Targets(), until ctx is done, serving the metrics on ln (when not nil)
// at /metrics. It writes the state file as it goes and when it returns. A
// run stopped by ctx returns nil.
func (m *Monitor) Run(ctx context.Context, t *tracer.Tracer, ln net.Listener) error {
	m.engine.Store(t)
	m.mu.Lock()
	m.opening = false
	n := len(m.dests)
	m.mu.Unlock()
	m.signal()
	var srv *http.Server
	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		m.log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	m.log.Info("monitoring", "destinations", n, "interval", m.cfg.Interval, "confirm", m.cfg.Confirm)
	stopSaving := m.saveEvery(SaveEvery)
	_, err := t.Run(ctx, sink{m})
	stopSaving()
	if ctx.Err() != nil {
		err = nil // stopped, as asked
	}
	if serr := m.save(); serr != nil {
		err = errors.Join(err, fmt.Errorf("writing the state: %w", serr))
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		srv.Shutdown(sctx)
		cancel()
		srv.Close()
	}
	return err
}

// Reload reads the destinations again (Config.Load): those added start,
// spread over the next interval, those gone stop and their metrics go
// away. On an error the destinations stay as they were.
func (m *Monitor) Reload(ctx context.Context) error {
	ts, err := m.cfg.Load(ctx)
	if err != nil {
		return err
	}
	if err := m.checkFamily(ts); err != nil {
		return err
	}
	m.mu.Lock()
	added, removed := m.setTargets(ts, m.clock.Now())
	m.dirty = true
	n := len(m.dests)
	m.mu.Unlock()
	m.log.Info("reloaded", "destinations", n, "added", added, "removed", removed)
	return nil
}

// sink is the Monitor as the engine's tracer.SkipSink.
type sink struct{ m *Monitor }

// Result takes the result of a destination's run.
func (s sink) Result(tr *analysis.Trace) error {
	m := s.m
	if tr.Partial {
		return nil // the run stopped: nothing was measured in full
	}
	m.cfg.Annotate.Apply(m.ctx, []*analysis.Trace{tr})
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dests[tr.Destination]
	if d == nil || !d.inFlight || !m.done(d, tr.End) {
		return nil
	}
	m.observe(d, tr, snapshotOf(tr), tr.End)
	return nil
}

// Skipped takes a destination the engine could not trace: it is not
// reached, and has no path.
func (s sink) Skipped(t tracer.Target, err error) {
	m := s.m
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dests[t.Addr]
	if d == nil || !d.inFlight || !m.done(d, now) {
		return
	}
	m.observe(d, nil, &snapshot{Error: err.Error()}, now)
}

// observe detects a change in the run of d whose distinct paths are s (tr
// is the run's result, nil when it could not be traced), and reports it.
func (m *Monitor) observe(d *dest, tr *analysis.Trace, s *snapshot, end time.Time) {
	v, dd, runs := d.det.observe(s, d.t, &m.detect)
	dst := d.t.Addr.String()
	m.log.Debug("run", "dst", dst, "paths", len(s.Paths), "reached", s.Reached, "verdict", v)
	d.hops = m.metrics.record(dst, tr, s, end, d.hops, m.scratch)
	if v != same {
		m.dirty = true
	}
	if v == unconfirmed {
		m.metrics.unconfirmed.Inc()
	}
	ev := eventOf(v, dd, s, d.t, runs, end)
	if m.cfg.OnRound != nil {
		// Once the event is written.
		defer m.cfg.OnRound(Round{Target: d.t, End: end, Trace: tr, Err: s.Error, Event: ev})
	}
	if ev == nil {
		return
	}
	if ev.Type != Baseline {
		m.metrics.changes.WithLabelValues(dst).Inc()
	}
	m.metrics.events.WithLabelValues(ev.Type).Inc()
	if m.cfg.Events != nil {
		if err := m.events.write(ev); err != nil {
			m.log.Error("writing an event", "err", err)
		}
	}
}

// ReloadOn reloads the destinations (Reload) whenever the process receives
// one of sigs (SIGHUP, say), logging a reload refused, until the function
// it returns is called.
func (m *Monitor) ReloadOn(ctx context.Context, sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
			if err := m.Reload(ctx); err != nil {
				m.log.Error("reload refused: the destinations stay as they were", "err", err)
			}
		}
	}()
	return func() { signal.Stop(ch); close(ch); <-done }
}

// Listen opens the metrics' listening socket on addr, which must be an IP
// address and a port: exactly where told (0.0.0.0:PORT for every IPv4
// address, [::]:PORT for every IPv6 one), never a host name that may
// resolve to several addresses, nor a port picked at random.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q: want ADDRESS:PORT, such as 127.0.0.1:9108", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("%q: %q is not an IP address (give 127.0.0.1:%s for this host only, 0.0.0.0:%s or [::]:%s for every interface)", addr, host, port, port, port)
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p == 0 || fmt.Sprint(p) != port {
		return nil, fmt.Errorf("%q: the port must be a number 1..65535", addr)
	}
	network := "tcp4"
	if ip.Is6() && !ip.Is4In6() {
		network = "tcp6" // only IPv6, even for [::]
	}
	return net.Listen(network, addr)
}

// saveEvery writes the state file every period while it changed, until
// the function it returns is called.
func (m *Monitor) saveEvery(period time.Duration) (stop func()) {
	if m.cfg.State == "" {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if err := m.save(); err != nil {
					m.log.Error("writing the state", "file", m.cfg.State, "err", err)
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// save writes the state file if it changed.
func (m *Monitor) save() error {
	if m.cfg.State == "" {
		return nil
	}
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	sf := &stateFile{Format: stateFormat, Version: stateVersion, Saved: m.clock.Now().UTC()}
	for a, d := range m.dests {
		if d.removed || d.det.known == nil {
			continue
		}
		sd := stateDest{Destination: a, Known: d.det.known, Candidate: d.det.candidate, Seen: d.det.seen}
		if d.t.Name != a.String() {
			sd.Name = d.t.Name
		}
		sf.Destinations = append(sf.Destinations, sd)
	}
	m.dirty = false
	m.mu.Unlock()
	slices.SortFunc(sf.Destinations, func(a, b stateDest) int { return a.Destination.Compare(b.Destination) })
	if err := saveState(m.cfg.State, sf); err != nil {
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
		return err
	}
	return nil
}

// systemClock is the host's clock, for a Monitor without Config.Clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer() tracer.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return sysTimer{t}
}

type sysTimer struct{ t *time.Timer }

func (s sysTimer) C() <-chan time.Time   { return s.t.C }
func (s sysTimer) Reset(d time.Duration) { s.t.Reset(d) }
func (s sysTimer) Stop()                 { s.t.Stop() }

// List returns the destinations of set, named as it names them: a
// Config.Load reading target files returns it.
func List(set *targets.Set) []tracer.Target {
	ts := make([]tracer.Target, set.Len())
	for i := range ts {
		a := set.At(uint64(i))
		ts[i] = tracer.Target{Addr: a, Name: set.Name(a)}
	}
	return ts
}
