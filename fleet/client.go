package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Client submits measurements to agents and reads their results.
type Client struct {
	js jetstream.JetStream
}

// NewClient returns a client over js. It makes sure the streams and the
// bucket exist (see Setup) with l's settings.
func NewClient(ctx context.Context, js jetstream.JetStream, l Layout) (*Client, error) {
	if err := Setup(ctx, js, l); err != nil {
		return nil, err
	}
	return &Client{js: js}, nil
}

// Agents returns the status of every agent in the bucket (those that
// refreshed it within StatusTTL), by name.
func (c *Client) Agents(ctx context.Context) ([]Status, error) {
	kv, err := c.js.KeyValue(ctx, AgentsBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", AgentsBucket, err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer lister.Stop()
	var out []Status
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("agent %s: %w", key, err)
		}
		var s Status
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return nil, fmt.Errorf("agent %s: bad status: %w", key, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Resolve turns the agents a user names into agent names: "all" is every
// agent listed, "group:G" every agent of group G, anything else one agent,
// which must be listed.
func (c *Client) Resolve(ctx context.Context, spec []string) ([]string, error) {
	agents, err := c.Agents(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, s := range spec {
		g, isGroup := strings.CutPrefix(s, "group:")
		if s != "all" && !isGroup {
			if err := ValidName("agent name", s); err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(agents, func(a Status) bool { return a.Name == s }) {
				return nil, fmt.Errorf("agent %q: not running (no status in %s)", s, AgentsBucket)
			}
			add(s)
			continue
		}
		matched := false
		for _, a := range agents {
			if s == "all" || slices.Contains(a.Groups, g) {
				add(a.Name)
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("agents %q: no agent running matches", s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no agent given")
	}
	return out, nil
}

// Measurement is a submitted measurement: its id and the agents it was
// sent to.
type Measurement struct {
	ID     string
	Agents []string
	js     jetstream.JetStream
}

// Submit sends req to each of agents (names, not "all" or groups: see
// Resolve). An empty req.ID gets a new unique one.
func (c *Client) Submit(ctx context.Context, req Request, agents []string) (*Measurement, error) {
	if req.ID == "" {
		req.ID = nuid.Next()
	}
	if err := ValidName("measurement id", req.ID); err != nil {
		return nil, err
	}
	if len(agents) == 0 {
		return nil, errors.New("no agent given")
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		if err := ValidName("agent name", a); err != nil {
			return nil, err
		}
		m := &nats.Msg{Subject: MeasureSubject(a, req.ID), Data: b}
		if _, err := c.js.PublishMsg(ctx, m, jetstream.WithMsgID(req.ID+"."+a), jetstream.WithExpectStream(MeasurementsStream)); err != nil {
			// A publish the server refuses is answered by nothing: its
			// reason comes apart, as the connection's last error.
			if last := c.js.Conn().LastError(); errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), m.Subject) {
				return nil, fmt.Errorf("submit to %s: not allowed: this user may not publish to %s", a, m.Subject)
			}
			return nil, fmt.Errorf("submit to %s: %w", a, err)
		}
	}
	return &Measurement{ID: req.ID, Agents: slices.Clone(agents), js: c.js}, nil
}

// Attach returns the measurement id submitted earlier, with the agents it
// was sent to, to read its results again.
func (c *Client) Attach(ctx context.Context, id string) (*Measurement, error) {
	if err := ValidName("measurement id", id); err != nil {
		return nil, err
	}
	s, err := c.js.Stream(ctx, MeasurementsStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", MeasurementsStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(MeasureSubject("*", id)))
	if err != nil {
		return nil, fmt.Errorf("measurement %s: %w", id, err)
	}
	m := &Measurement{ID: id, js: c.js}
	for subj := range info.State.Subjects {
		rest := strings.TrimPrefix(subj, measurePrefix)
		m.Agents = append(m.Agents, rest[:strings.IndexByte(rest, '.')])
	}
	if len(m.Agents) == 0 {
		return nil, fmt.Errorf("measurement %s: not found in %s", id, MeasurementsStream)
	}
	slices.Sort(m.Agents)
	return m, nil
}

// Results calls fn with each destination's result, once per agent and
// destination, and with each agent's Final, as they are stored, from the
// first; it returns when every agent has published its Final, when ctx
// ends or when fn returns an error (which it returns).
func (m *Measurement) Results(ctx context.Context, fn func(*Result) error) error {
	pending := map[string]bool{}
	for _, a := range m.Agents {
		pending[a] = true
	}
	seen := map[[2]string]bool{}
	var ferr error
	err := follow(ctx, m.js, m.ID, "*", func(r *Result) bool {
		if !pending[r.Agent] {
			return true // not addressed, or already final
		}
		if r.Final == nil {
			key := [2]string{r.Agent, r.Destination}
			if seen[key] {
				return true
			}
			seen[key] = true
		} else {
			delete(pending, r.Agent)
		}
		if ferr = fn(r); ferr != nil {
			return false
		}
		return len(pending) > 0
	}, false)
	if ferr != nil {
		return ferr
	}
	return err
}

// Collect returns the results of m by agent (see Results), and their Finals.
func (m *Measurement) Collect(ctx context.Context) (map[string][]*analysis.Trace, map[string]*Final, error) {
	traces, finals := map[string][]*analysis.Trace{}, map[string]*Final{}
	err := m.Results(ctx, func(r *Result) error {
		if r.Final != nil {
			finals[r.Agent] = r.Final
			return nil
		}
		t, err := r.Trace()
		if err != nil {
			return err
		}
		traces[r.Agent] = append(traces[r.Agent], t)
		return nil
	})
	return traces, finals, err
}

// readResults calls fn with every record of measurement id from agent
// stored now, in order, until fn returns false.
func readResults(ctx context.Context, js jetstream.JetStream, id, agent string, fn func(*Result) bool) error {
	return follow(ctx, js, id, agent, fn, true)
}

// follow reads the records of measurement id from agent ("*": all) from
// the first, calling fn with each until it returns false; with snapshot,
// it stops at the last record stored when it starts, otherwise it waits
// for more until ctx ends.
func follow(ctx context.Context, js jetstream.JetStream, id, agent string, fn func(*Result) bool, snapshot bool) error {
	cons, err := js.OrderedConsumer(ctx, ResultsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{ResultSubject(id, agent)},
	})
	if err != nil {
		return fmt.Errorf("results of %s: %w", id, err)
	}
	if snapshot && cons.CachedInfo().NumPending == 0 {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("results of %s: %w", id, err)
	}
	defer it.Stop()
	// Next may not return when ctx ends while the consumer is being
	// recreated (a stream leader lost): stopping the iterator ends it.
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("results of %s: %w", id, err)
		}
		r, err := parseResult(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			return err
		}
		if !fn(r) {
			return nil
		}
		if meta, err := msg.Metadata(); snapshot && err == nil && meta.NumPending == 0 {
			return nil
		}
	}
}
