package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// The monitor's events (package monitor): `traceflow-fast monitor --nats`
// publishes each event it writes, the same JSON object, to
// traceflow.event.MONITOR, in stream TRACEFLOW_EVENTS.
const (
	EventsStream = "TRACEFLOW_EVENTS"
	eventPrefix  = "traceflow.event."
	// EventsMaxAge is how long the events are kept.
	EventsMaxAge = ResultsMaxAge
)

// EventSubject is the subject of the events of the monitor named monitor
// ("*": every monitor).
func EventSubject(monitor string) string { return eventPrefix + monitor }

// SetupEvents makes sure the events stream exists, creating it with l's
// settings if it does not; one that exists is left as it is.
func SetupEvents(ctx context.Context, js jetstream.JetStream, l Layout) error {
	r := max(l.Replicas, 1)
	if r > 5 {
		return fmt.Errorf("%d replicas: JetStream keeps 1 to 5", l.Replicas)
	}
	if _, err := js.Stream(ctx, EventsStream); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: EventsStream, Subjects: []string{eventPrefix + "*"}, Retention: jetstream.LimitsPolicy,
		MaxAge: EventsMaxAge, Replicas: r, Duplicates: DuplicateWindow,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", EventsStream, err)
	}
	return nil
}
