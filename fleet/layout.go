package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the streams, the bucket and the subjects (see the package
// documentation).
const (
	MeasurementsStream = "TRACEFLOW_MEASUREMENTS"
	ResultsStream      = "TRACEFLOW_RESULTS"
	AgentsBucket       = "traceflow_agents"

	measurePrefix = "traceflow.measure."
	resultPrefix  = "traceflow.result."
)

// Retention of the streams and the bucket.
const (
	MeasurementsMaxAge = 7 * 24 * time.Hour
	ResultsMaxAge      = 30 * 24 * time.Hour
	// DuplicateWindow is how long JetStream remembers the message ids of
	// results: longer than an agent takes to come back and be given a
	// measurement again.
	DuplicateWindow = 10 * time.Minute
	// StatusTTL is how long an agent's status outlives its last refresh.
	StatusTTL = time.Minute
)

// MeasureSubject is the subject of measurement id for agent.
func MeasureSubject(agent, id string) string { return measurePrefix + agent + "." + id }

// ResultSubject is the subject of the results of measurement id from agent
// ("*" for every agent).
func ResultSubject(id, agent string) string { return resultPrefix + id + "." + agent }

// ValidName reports why s is not a valid agent name, group or measurement
// id (a NATS subject token of 1 to 64 letters, digits, '-' and '_'), or nil.
func ValidName(what, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%s %q: must be 1 to 64 characters", what, s)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s %q: only letters, digits, '-' and '_' are allowed", what, s)
		}
	}
	return nil
}

// Layout configures the streams and the bucket when Setup creates them.
type Layout struct {
	// Replicas of each stream and of the bucket (default 1; 3 in a
	// 3-node cluster, so that losing a node loses nothing).
	Replicas int
}

// Setup makes sure the streams and the bucket exist, creating those that
// do not with l's settings. Ones that exist are left as they are, so a
// user allowed to use them but not to create them can call it too.
func Setup(ctx context.Context, js jetstream.JetStream, l Layout) error {
	r := max(l.Replicas, 1)
	if r > 5 {
		return fmt.Errorf("%d replicas: JetStream keeps 1 to 5", l.Replicas)
	}
	streams := []jetstream.StreamConfig{{
		Name:      MeasurementsStream,
		Subjects:  []string{measurePrefix + "*.*"},
		Retention: jetstream.LimitsPolicy,
		MaxAge:    MeasurementsMaxAge,
		Replicas:  r,
		// A submission sent again (a client retrying) is stored once.
		Duplicates: DuplicateWindow,
	}, {
		Name:       ResultsStream,
		Subjects:   []string{resultPrefix + "*.*"},
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     ResultsMaxAge,
		Replicas:   r,
		Duplicates: DuplicateWindow,
	}}
	for _, sc := range streams {
		if _, err := js.Stream(ctx, sc.Name); err == nil {
			continue
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
		if _, err := js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
	}
	_, err := js.KeyValue(ctx, AgentsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: AgentsBucket, TTL: StatusTTL, Replicas: r})
	}
	if err != nil {
		return fmt.Errorf("bucket %s: %w", AgentsBucket, err)
	}
	return nil
}
