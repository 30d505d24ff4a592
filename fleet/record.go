package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// Headers of the messages of the results stream.
const (
	// HeaderRecord is "result" (a destination's record) or "final" (the
	// agent's last record of a measurement).
	HeaderRecord = "Traceflow-Record"
	// HeaderDestination is the destination of a result.
	HeaderDestination = "Traceflow-Destination"
)

// Final is an agent's last record of a measurement: its results are all
// stored, or Error says why it ran none (or not all).
type Final struct {
	Agent       string `json:"agent"`
	Measurement string `json:"measurement"`
	Final       bool   `json:"final"` // always true: tells it from a result
	// Error is why the agent refused the measurement, or could not run it.
	Error string `json:"error,omitempty"`
	// Destinations is how many results the agent stored, over all its
	// attempts; Reached, how many of them reached their destination.
	Destinations int `json:"destinations"`
	Reached      int `json:"reached"`
	// Excluded counts the addresses of the request the agent's exclude
	// list removed.
	Excluded uint64 `json:"excluded,omitempty"`
	// Rate is the probes per second the agent allowed.
	Rate float64 `json:"rate,omitempty"`
	// Seed of the destinations' random order (of the last attempt).
	Seed uint64 `json:"seed,omitempty"`
	// Attempt is the delivery of the measurement that finished it (2 or
	// more: the agent was given it again).
	Attempt int `json:"attempt"`
}

// Result is a record read back from the results stream: a destination's
// result, or an agent's Final.
type Result struct {
	Agent       string
	Measurement string
	// Destination and Record are a result's: its destination and its
	// JSON record (one line, with its newline).
	Destination string
	Record      []byte
	// Final is set on an agent's last record of the measurement.
	Final *Final
}

// Trace decodes the record of a result.
func (r *Result) Trace() (*analysis.Trace, error) {
	for t, err := range analysis.ReadJSON(bytes.NewReader(r.Record)) {
		return t, err
	}
	return nil, fmt.Errorf("result of %s from %s: empty record", r.Destination, r.Agent)
}

// resultMsg returns the message of t's result: the JSON record of
// --format json, with "agent" and "measurement" first.
func resultMsg(agent, id string, t *analysis.Trace) (*nats.Msg, error) {
	var buf bytes.Buffer
	if err := analysis.WriteJSON(&buf, t, analysis.Options{}); err != nil {
		return nil, err
	}
	line := buf.Bytes()
	if len(line) < 2 || line[0] != '{' {
		return nil, fmt.Errorf("result of %s: not a JSON object", t.Destination)
	}
	b := make([]byte, 0, len(line)+64+len(agent)+len(id))
	b = append(b, `{"agent":`...)
	b = appendJSONString(b, agent)
	b = append(b, `,"measurement":`...)
	b = appendJSONString(b, id)
	b = append(b, ',')
	b = append(b, line[1:]...)
	m := nats.NewMsg(ResultSubject(id, agent))
	m.Data = b
	m.Header.Set(HeaderRecord, "result")
	m.Header.Set(HeaderDestination, t.Destination.String())
	return m, nil
}

// finalMsg returns the message of f.
func finalMsg(f *Final) (*nats.Msg, error) {
	f.Final = true
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(ResultSubject(f.Measurement, f.Agent))
	m.Data = append(b, '\n')
	m.Header.Set(HeaderRecord, "final")
	return m, nil
}

// parseResult reads a message of the results stream.
func parseResult(subject string, h nats.Header, data []byte) (*Result, error) {
	id, agent, ok := splitResultSubject(subject)
	if !ok {
		return nil, fmt.Errorf("unexpected subject %q", subject)
	}
	r := &Result{Agent: agent, Measurement: id}
	switch h.Get(HeaderRecord) {
	case "result":
		r.Destination, r.Record = h.Get(HeaderDestination), data
		if r.Destination == "" {
			return nil, fmt.Errorf("%s: result without %s", subject, HeaderDestination)
		}
	case "final":
		r.Final = new(Final)
		if err := json.Unmarshal(data, r.Final); err != nil {
			return nil, fmt.Errorf("%s: final record: %w", subject, err)
		}
	default:
		return nil, fmt.Errorf("%s: unknown record %q", subject, h.Get(HeaderRecord))
	}
	return r, nil
}

// splitResultSubject returns the measurement and agent of a result
// subject.
func splitResultSubject(s string) (id, agent string, ok bool) {
	rest, ok := bytes.CutPrefix([]byte(s), []byte(resultPrefix))
	if !ok {
		return "", "", false
	}
	i := bytes.IndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 || bytes.IndexByte(rest[i+1:], '.') >= 0 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// msgID is the JetStream message id of a record: "ID.AGENT.DESTINATION",
// or "ID.AGENT.final".
func msgID(id, agent, what string) string { return id + "." + agent + "." + what }
