// Package fleet runs traceflow-fast from many vantage points: agents take
// measurements from NATS JetStream, trace them with package tracer and
// publish each destination's result back to JetStream, where clients read
// them.
//
// # Layout
//
// Every name is fixed, so that permissions can be written per subject:
//
//	traceflow.measure.AGENT.ID   a measurement (a JSON Request) for agent AGENT;
//	                             stream TRACEFLOW_MEASUREMENTS (limits retention,
//	                             kept 7 days), read by the agent's durable pull
//	                             consumer "agent_AGENT" (explicit acks)
//	traceflow.result.ID.AGENT    the results of measurement ID from AGENT: one
//	                             message per destination (the JSON record of
//	                             --format json with "agent" and "measurement"
//	                             added), then one final record; stream
//	                             TRACEFLOW_RESULTS (limits retention, kept 30
//	                             days, 10 minutes of de-duplication)
//	traceflow.event.MONITOR      the events of `traceflow-fast monitor --nats`
//	                             (the JSON objects of its --format json);
//	                             stream TRACEFLOW_EVENTS (kept 30 days)
//	KV traceflow_agents, key AGENT   the agent's Status (version, groups,
//	                             capabilities, limits, load), refreshed while it
//	                             runs and expiring a minute after it stops
//
// AGENT and ID are NATS subject tokens: letters, digits, '-' and '_'.
//
// # Delivery
//
// A client publishes one Request per agent, with the JetStream message id
// "ID.AGENT", so a submission sent twice is stored once. An agent fetches
// one measurement at a time, checks it against its own Limits as the
// command line checks its flags, traces it, and publishes each result with
// the message id "ID.AGENT.DESTINATION", waiting for the server's
// acknowledgement of each. When all are stored it publishes the final
// record (id "ID.AGENT.final") and only then acknowledges the measurement.
// An agent that dies before that gets the measurement again when it comes
// back (after the consumer's AckWait); it then traces only the
// destinations whose results are not in the stream yet, and the message ids
// drop any result stored twice. A request the agent refuses, or that it
// cannot run, ends with a final record holding the error, and is
// acknowledged: it is not run again.
//
// A client reads the results of a measurement from the start of the
// stream, so it may attach (or attach again) at any time, and hands on
// each destination once per agent, until every agent addressed has
// published its final record.
//
// # Sharing a target list
//
// Split deals a target set among agents in the order of its seeded
// permutation (targets.NewPermutation), as zmap deals a scan among its
// shards: each agent gets a disjoint share, and together they hold every
// address once; NewRequest builds the request of a run's tracer.Config.
package fleet
