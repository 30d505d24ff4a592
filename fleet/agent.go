package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// AgentConfig configures an Agent.
type AgentConfig struct {
	// Name is the agent's name: measurements are addressed to it.
	Name string
	// Groups the agent belongs to, listed in its status (a client
	// addressing group:G sends the measurement to each of its agents).
	Groups []string
	// Version is reported in the status.
	Version string
	// Limits bound every measurement, whatever the request says.
	Limits Limits
	// Engine is the base of every run's settings: the interface, the
	// source address, the window, the logger, the network and clock.
	// A request sets the probing options over it.
	Engine tracer.Config
	// Prepare, if set, is called with each run's settings before the run
	// opens (a run closes its Network when it ends: a simulated network
	// must be made anew for each).
	Prepare func(cfg *tracer.Config) error
	// AckWait is how long a measurement stays with an agent that stopped
	// answering before it is delivered again (default 1 minute). A
	// running measurement tells the server it is in progress well within
	// it.
	AckWait time.Duration
	// Heartbeat is how often the status is refreshed (default 15 s).
	Heartbeat time.Duration
	// Logger receives the agent's logs (default: none).
	Logger *slog.Logger
	// Layout configures the streams and the bucket if the agent is the
	// first to need them (see Setup).
	Layout Layout
}

// Status is what an agent reports of itself in the agents bucket.
type Status struct {
	Name       string    `json:"name"`
	Version    string    `json:"version,omitempty"`
	Groups     []string  `json:"groups,omitempty"`
	Protocols  []string  `json:"protocols"`
	MaxRate    float64   `json:"max_rate"`
	MaxTargets uint64    `json:"max_targets"`
	Running    int64     `json:"running"` // measurements in progress
	Done       int64     `json:"done"`    // measurements finished since it started
	Started    time.Time `json:"started"`
	Updated    time.Time `json:"updated"`
}

// Agent is a vantage point: it runs the measurements addressed to it.
type Agent struct {
	cfg     AgentConfig
	js      jetstream.JetStream
	log     *slog.Logger
	started time.Time
	running atomic.Int64
	done    atomic.Int64
	ready   chan struct{}
	// afterResult, when set (tests), is called after each result is
	// stored, with the count so far in this attempt.
	afterResult func(ctx context.Context, n int)
}

// NewAgent returns an agent that takes its measurements from js.
func NewAgent(js jetstream.JetStream, cfg AgentConfig) (*Agent, error) {
	if err := ValidName("agent name", cfg.Name); err != nil {
		return nil, err
	}
	for _, g := range cfg.Groups {
		if err := ValidName("group", g); err != nil {
			return nil, err
		}
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.AckWait <= 0 {
		cfg.AckWait = time.Minute
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, js: js, log: log.With("agent", cfg.Name), ready: make(chan struct{})}, nil
}

// ConsumerName is the durable consumer of an agent's measurements.
func ConsumerName(agent string) string { return "agent_" + agent }

// Ready is closed once Run has its consumer and has put its status: the
// agent is listed, and takes the measurements addressed to it.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run takes measurements until ctx ends (it may be called once). A measurement in progress then
// is left unacknowledged: it is delivered again when the agent (or one of
// the same name) comes back. Run waits through a cluster's lost node, at
// start as between measurements; it returns an error when the server
// refuses what the agent needs (its consumer, its status: a user that
// may not act as this agent), saying which permission is missing.
func (a *Agent) Run(ctx context.Context) error {
	cons, kv, err := a.open(ctx)
	for err != nil {
		if err = permissionRefused(a.js, fmt.Sprintf("agent %s", a.cfg.Name), err); !transient(err) {
			return err
		}
		// A cluster electing its leaders, a server restarting: the agent
		// waits for them.
		a.log.Warn("starting: trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(fetchRetry):
		}
		cons, kv, err = a.open(ctx)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() { a.heartbeat(hbCtx, kv) })
	a.log.Info("agent ready", "consumer", ConsumerName(a.cfg.Name))
	close(a.ready)
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages):
			continue
		case errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConsumerDeleted):
			return fmt.Errorf("fetch measurement: %w", err)
		case err != nil:
			// A node of a cluster lost, a leader being elected: the
			// consumer answers again soon.
			a.log.Warn("fetch measurement: trying again", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(fetchRetry):
			}
			continue
		}
		a.running.Add(1)
		a.putStatus(ctx, kv)
		err = a.handle(ctx, msg)
		a.running.Add(-1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("measurement not finished: it will be delivered again", "subject", msg.Subject(), "err", err)
			continue
		}
		a.done.Add(1)
		a.putStatus(ctx, kv)
	}
}

// open makes the streams if need be, the agent's consumer, and puts its
// first status.
func (a *Agent) open(ctx context.Context) (jetstream.Consumer, jetstream.KeyValue, error) {
	if err := Setup(ctx, a.js, a.cfg.Layout); err != nil {
		return nil, nil, err
	}
	cons, err := a.js.CreateOrUpdateConsumer(ctx, MeasurementsStream, jetstream.ConsumerConfig{
		Durable:       ConsumerName(a.cfg.Name),
		FilterSubject: MeasureSubject(a.cfg.Name, "*"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       a.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %s: %w", ConsumerName(a.cfg.Name), err)
	}
	kv, err := a.js.KeyValue(ctx, AgentsBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", AgentsBucket, err)
	}
	a.started = time.Now().UTC()
	return cons, kv, a.putStatus(ctx, kv)
}

// permissionRefused explains err, the failure of what, by the permission the server
// refused, if it refused one: the server answers a forbidden publish with
// an error of the connection, and the call that made it only times out.
func permissionRefused(js jetstream.JetStream, what string, err error) error {
	if last := js.Conn().LastError(); errors.Is(last, nats.ErrPermissionViolation) {
		return fmt.Errorf("%s: not allowed: %s", what, strings.TrimPrefix(last.Error(), "nats: permissions violation: "))
	}
	return err
}

// transient says whether err, a call to JetStream that failed, may
// succeed when tried again: it timed out, or nothing answered it.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

// heartbeat refreshes the status until ctx ends.
func (a *Agent) heartbeat(ctx context.Context, kv jetstream.KeyValue) {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.putStatus(ctx, kv); err != nil && ctx.Err() == nil {
				a.log.Warn("status not refreshed", "err", err)
			}
		}
	}
}

// Status returns the agent's status now.
func (a *Agent) Status() Status {
	l := a.cfg.Limits
	protos := make([]string, len(l.Protocols))
	for i, p := range l.Protocols {
		protos[i] = p.String()
	}
	return Status{
		Name: a.cfg.Name, Version: a.cfg.Version, Groups: a.cfg.Groups, Protocols: protos,
		MaxRate: l.MaxRate, MaxTargets: l.MaxTargets, Running: a.running.Load(), Done: a.done.Load(),
		Started: a.started, Updated: time.Now().UTC(),
	}
}

func (a *Agent) putStatus(ctx context.Context, kv jetstream.KeyValue) error {
	b, err := json.Marshal(a.Status())
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, a.cfg.Name, b); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// handle runs one measurement and acknowledges it once its final record is
// stored; it returns an error, leaving the measurement to be delivered
// again, when that could not be done.
func (a *Agent) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	id := msg.Subject()[strings.LastIndexByte(msg.Subject(), '.')+1:]
	fin := &Final{Agent: a.cfg.Name, Measurement: id, Attempt: int(meta.NumDelivered)}
	log := a.log.With("measurement", id, "attempt", fin.Attempt)
	stored := map[string]bool{}
	if fin.Attempt > 1 {
		var done bool
		if stored, fin.Reached, done, err = a.stored(ctx, id); err != nil {
			return err
		} else if done {
			log.Info("measurement already finished")
			return msg.DoubleAck(ctx)
		}
	}
	fin.Destinations = len(stored)
	if err := a.measure(ctx, msg, id, stored, fin); err != nil {
		if ctx.Err() != nil || errors.Is(err, errNotStored) {
			return err
		}
		fin.Error = err.Error()
		log.Warn("measurement refused", "err", err)
	}
	if err := a.publish(ctx, finalMsg, fin, msgID(id, a.cfg.Name, "final")); err != nil {
		return err
	}
	log.Info("measurement finished", "destinations", fin.Destinations, "reached", fin.Reached)
	return msg.DoubleAck(ctx)
}

// fetchRetry is the pause before fetching again after a failed fetch.
const fetchRetry = 500 * time.Millisecond

// errNotStored marks a result JetStream did not store.
var errNotStored = errors.New("result not stored")

// publish stores the message make builds from v, under the message id.
func (a *Agent) publish(ctx context.Context, mk func(*Final) (*nats.Msg, error), f *Final, id string) error {
	m, err := mk(f)
	if err != nil {
		return err
	}
	if _, err := a.js.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(ResultsStream)); err != nil {
		return fmt.Errorf("%w: %w", errNotStored, err)
	}
	return nil
}

// stored returns the destinations whose results an earlier attempt stored,
// how many of them were reached, and whether the final record is stored
// too.
func (a *Agent) stored(ctx context.Context, id string) (dsts map[string]bool, nReached int, final bool, err error) {
	dsts = map[string]bool{}
	err = readResults(ctx, a.js, id, a.cfg.Name, func(r *Result) bool {
		switch {
		case r.Final != nil:
			final = true
		case !dsts[r.Destination]:
			dsts[r.Destination] = true
			if t, err := r.Trace(); err == nil && reached(t) {
				nReached++
			}
		}
		return true
	})
	return dsts, nReached, final, err
}

// measure checks the request of msg, runs it and stores each result not
// in stored, counting them in fin.
func (a *Agent) measure(ctx context.Context, msg jetstream.Msg, id string, stored map[string]bool, fin *Final) error {
	req, err := decodeRequest(msg.Data())
	if err != nil {
		return err
	}
	if req.ID != id {
		return fmt.Errorf("bad request: id %q, but it was sent as measurement %q", req.ID, id)
	}
	p, err := a.cfg.Limits.check(ctx, req, a.cfg.Engine)
	if err != nil {
		return err
	}
	fin.Excluded, fin.Rate, fin.Seed = p.set.Stats().Excluded, p.cfg.Rate, p.seed
	if a.cfg.Prepare != nil {
		if err := a.cfg.Prepare(&p.cfg); err != nil {
			return err
		}
	}
	dsts := &skipStored{Targets: tracer.Shuffle(p.set, p.seed), stored: stored}
	if dsts.Len() == 0 {
		return nil // an earlier attempt stored every result
	}
	t, err := tracer.Open(ctx, p.cfg, dsts)
	if err != nil {
		return err
	}
	stop := a.keepInProgress(msg)
	defer stop()
	n := 0
	_, err = t.Run(ctx, tracer.SinkFunc(func(tr *analysis.Trace) error {
		if ctx.Err() != nil {
			return ctx.Err() // partial results of an agent stopping are not published
		}
		if err := a.publish(ctx, func(*Final) (*nats.Msg, error) { return resultMsg(a.cfg.Name, id, tr) }, nil,
			msgID(id, a.cfg.Name, tr.Destination.String())); err != nil {
			return err
		}
		fin.Destinations++
		if reached(tr) {
			fin.Reached++
		}
		n++
		if a.afterResult != nil {
			a.afterResult(ctx, n)
		}
		return nil
	}))
	return err
}

// keepInProgress tells the server the measurement of msg is being worked on
// every third of AckWait, until the returned function is called.
func (a *Agent) keepInProgress(msg jetstream.Msg) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(a.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				msg.InProgress()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// skipStored yields the destinations of Targets whose results are not
// stored yet.
type skipStored struct {
	tracer.Targets
	stored map[string]bool
}

func (s *skipStored) Len() int64 {
	if n := s.Targets.Len(); n >= 0 {
		return max(n-int64(len(s.stored)), 0)
	}
	return -1
}

func (s *skipStored) Next(ctx context.Context) (tracer.Target, bool) {
	for {
		t, ok := s.Targets.Next(ctx)
		if !ok || !s.stored[t.Addr.String()] {
			return t, ok
		}
	}
}

// reached says whether a flow of t reached its destination.
func reached(t *analysis.Trace) bool {
	return slices.ContainsFunc(t.Flows, func(f analysis.Flow) bool { return f.Reached })
}
