package fleetcmd

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/internal/syncbuf"
	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

type lockedBuffer = syncbuf.Buffer

// `monitor --nats URLS --nats-name NAME` stores each event it writes, the
// same JSON line, in the events stream under traceflow.event.NAME: here a
// monitor of two destinations of a simulated diamond, whose baselines are
// its events.
func TestMonitorEvents(t *testing.T) {
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), &tracertest.Options{Seed: 1, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	var written lockedBuffer
	dsts := []tracer.Target{{Addr: netip.MustParseAddr("10.99.3.1")}, {Addr: netip.MustParseAddr("10.99.3.2")}}
	mc := monitor.Config{Interval: time.Minute, Events: &written, Clock: n.Clock(), Seed: 1,
		Load: func(context.Context) ([]tracer.Target, error) { return dsts, nil }}
	var stop func()
	app := &cli.App{Flags: MonitorFlags(), Action: func(c *cli.Context) (err error) {
		stop, err = PublishEvents(c, &mc)
		return err
	}}
	if err := app.Run([]string{"monitor", "--nats", srv.URL(), "--nats-name", "lab1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := monitor.New(ctx, mc)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracer.Open(ctx, tracer.Config{Paths: 4, Network: n, Clock: n.Clock()}, m.Targets())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, tr, nil) }()
	for deadline := time.Now().Add(time.Minute); strings.Count(written.String(), "\n") < len(dsts) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the monitor's first runs
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stop() // every event queued is stored
	lines := strings.SplitAfter(written.String(), "\n")
	lines = lines[:len(lines)-1] // after the last newline
	if len(lines) != len(dsts) || !strings.Contains(lines[0], `"type":"baseline"`) {
		t.Fatalf("events written:\n%s\nwant a baseline for each of %d destinations", written.String(), len(dsts))
	}
	stored := readEvents(t, srv.URL(), "lab1")
	if !slices.Equal(stored, lines) {
		t.Errorf("events stored:\n%s\nwant those written:\n%s", strings.Join(stored, ""), written.String())
	}
}

// readEvents returns the events stored under the subject of name.
func readEvents(t *testing.T, url, name string) []string {
	t.Helper()
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, fleet.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{fleet.EventSubject(name)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for pending := cons.CachedInfo().NumPending; uint64(len(out)) < pending; {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(msg.Data()))
	}
	return out
}

// The flags of monitor --nats are checked before anything starts.
func TestMonitorEventFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-name", "x"}, "--nats-name needs --nats"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--nats-name", "a.b"}, `--nats-name "a.b": only letters`},
		{[]string{"--nats", "embedded"}, "--nats embedded: only an agent"},
		{[]string{"--nats", "nats://127.0.0.1:1"}, "no server reachable"},
	} {
		var mc monitor.Config
		app := &cli.App{Flags: MonitorFlags(), Action: func(c *cli.Context) error {
			_, err := PublishEvents(c, &mc)
			return err
		}}
		if err := app.Run(append([]string{"monitor"}, tc.args...)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// With the permissions of docs/nats-server.conf, agent east's user may
// publish the events of a monitor named east, and not of one named west;
// the client ops reads them.
func TestMonitorEventsPermissions(t *testing.T) {
	for _, u := range []string{"EAST", "WEST", "OPS", "ADMIN"} {
		t.Setenv("TRACEFLOW_"+u+"_PASSWORD", strings.ToLower(u)+"-secret")
	}
	srv, err := fleet.StartEmbedded(fleet.EmbeddedConfig{ConfigFile: "../../docs/nats-server.conf", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer func(w time.Duration) { eventWait = w }(eventWait)
	eventWait = 2 * time.Second // how long a refused event waits
	as := func(user string) string {
		return strings.Replace(srv.URL(), "nats://", "nats://"+user+":"+user+"-secret@", 1)
	}
	ev := &monitor.Event{Type: monitor.Baseline, Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Target: tracer.Target{Addr: netip.MustParseAddr("192.0.2.1")}, Reached: true}
	for _, name := range []string{"east", "west"} {
		var logs lockedBuffer
		mc := monitor.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		app := &cli.App{Flags: MonitorFlags(), Action: func(c *cli.Context) error {
			stop, err := PublishEvents(c, &mc)
			if err == nil {
				mc.OnRound(monitor.Round{Event: ev})
				stop()
			}
			return err
		}}
		if err := app.Run([]string{"monitor", "--nats", as("east"), "--nats-name", name}); err != nil {
			t.Fatal(err)
		}
		stored := readEvents(t, as("ops"), name)
		refused := strings.Contains(logs.String(), "event not stored in NATS")
		if name == "east" && (len(stored) != 1 || !strings.HasPrefix(stored[0], `{"type":"baseline","time":"2026-12-01T00:00:00.000Z","destination":"192.0.2.1"`) || refused) {
			t.Errorf("east's own events: stored %q, logs %s", stored, logs.String())
		}
		if name == "west" && (len(stored) != 0 || !refused) {
			t.Errorf("events as west: stored %q, logs %s; want them refused", stored, logs.String())
		}
	}
}
