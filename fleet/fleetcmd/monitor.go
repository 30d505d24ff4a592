package fleetcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/monitor"
)

// MonitorFlags are the flags with which `monitor` publishes its events to
// NATS JetStream as well.
func MonitorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats", Usage: "publish each event to NATS JetStream as well (stream " + fleet.EventsStream + ", subject traceflow.event.NAME): the server `URLS`, comma-separated, user:password@ in them"},
		&cli.StringFlag{Name: "nats-name", Usage: "with --nats: the `NAME` in the events' subject (letters, digits, - and _)", DefaultText: "the host name"},
		&cli.StringFlag{Name: "nats-creds", Usage: "with --nats: NATS credentials `FILE` (JWT and NKey seed)"},
		&cli.StringFlag{Name: "nats-ca", Usage: "with --nats: PEM `FILE` of the CAs trusted for TLS to the servers"},
		certFlags("--nats")[0], certFlags("--nats")[1],
		&cli.IntFlag{Name: "nats-replicas", Value: 1, Usage: "with --nats: replicas of the events stream, if this creates it (3 in a 3-node cluster)"},
	}
}

// eventQueue is how many events wait for NATS at most; more are dropped
// (and counted), so that a slow server never holds the monitor up.
const eventQueue = 4096

// eventWait is how long an event waits for the server to store it. A
// publish the server refuses (permissions) is answered by nothing: it
// waits this long.
var eventWait = 30 * time.Second

// PublishEvents, when --nats is given, connects to NATS and makes the
// monitor of mc publish each event it reports (the JSON object its
// --format json writes, on one line) to traceflow.event.NAME, with the
// message id NAME.DESTINATION.TIME. stop waits until the events queued
// are stored, then closes the connection.
func PublishEvents(c *cli.Context, mc *monitor.Config) (stop func(), err error) {
	stop = func() {}
	if !c.IsSet("nats") {
		for _, f := range []string{"nats-name", "nats-creds", "nats-ca", "nats-cert", "nats-key", "nats-replicas"} {
			if c.IsSet(f) {
				return stop, fmt.Errorf("--%s needs --nats", f)
			}
		}
		return stop, nil
	}
	if c.String("nats") == Embedded {
		return stop, fmt.Errorf("--nats embedded: only an agent runs the embedded server; point --nats at it (nats://127.0.0.1:4222)")
	}
	name := c.String("nats-name")
	if name == "" {
		name = hostToken()
	}
	if err := fleet.ValidName("--nats-name", name); err != nil {
		return stop, err
	}
	js, done, err := dial(fleet.ConnOptions{URLs: c.String("nats"), Creds: c.String("nats-creds"), CA: c.String("nats-ca"),
		Cert: c.String("nats-cert"), Key: c.String("nats-key"), Name: "traceflow-fast monitor " + name})
	if err != nil {
		return stop, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	if err := fleet.SetupEvents(ctx, js, layout(c)); err != nil {
		done()
		return stop, natsErr(js, err)
	}
	p := newEventPublisher(js, name, mc.Logger)
	next := mc.OnRound
	mc.OnRound = func(r monitor.Round) {
		p.add(r.Event)
		if next != nil {
			next(r)
		}
	}
	return func() { p.close(); done() }, nil
}

// hostToken is the host name as a subject token: its first label, any
// character not allowed replaced by '-'.
func hostToken() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "monitor"
	}
	return string(b[:min(len(b), 64)])
}

// eventPublisher stores events in JetStream from a goroutine of its own:
// the monitor hands them on without waiting.
type eventPublisher struct {
	js      jetstream.JetStream
	name    string
	log     *slog.Logger
	queue   chan *nats.Msg
	dropped atomic.Int64
	wg      sync.WaitGroup
}

func newEventPublisher(js jetstream.JetStream, name string, log *slog.Logger) *eventPublisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &eventPublisher{js: js, name: name, log: log, queue: make(chan *nats.Msg, eventQueue)}
	p.wg.Go(p.run)
	return p
}

// add queues ev (nil: nothing to publish).
func (p *eventPublisher) add(ev *monitor.Event) {
	if ev == nil {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		p.log.Error("event not published to NATS", "err", err)
		return
	}
	m := nats.NewMsg(fleet.EventSubject(p.name))
	m.Data = append(b, '\n')
	m.Header.Set(jetstream.MsgIDHeader, p.name+"."+ev.Target.Addr.String()+"."+strconv.FormatInt(ev.Time.UnixNano(), 10))
	select {
	case p.queue <- m:
	default:
		p.dropped.Add(1)
	}
}

func (p *eventPublisher) run() {
	for m := range p.queue {
		ctx, cancel := context.WithTimeout(context.Background(), eventWait)
		_, err := p.js.PublishMsg(ctx, m, jetstream.WithExpectStream(fleet.EventsStream))
		cancel()
		if err != nil {
			p.log.Warn("event not stored in NATS", "subject", m.Subject, "err", err)
		}
	}
}

// close waits until the events queued are published.
func (p *eventPublisher) close() {
	close(p.queue)
	p.wg.Wait()
	if n := p.dropped.Load(); n > 0 {
		p.log.Warn("events not published to NATS: the server was too slow", "dropped", n)
	}
}
