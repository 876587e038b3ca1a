// Package wire defines the agent <-> hub sync protocol: the MQTT topic tree, the versioned JSON
// payloads carried on it, and strict decoders for every payload that arrives from outside.
//
// The protocol is documented in docs/protocol.md. In short:
//
//	kf/v1/dev/{id}/hello     agent -> hub   QoS1  session start: outbox epoch and cursor, state version
//	kf/v1/dev/{id}/up        agent -> hub   QoS1  batch of outbox records (epoch, seq)
//	kf/v1/dev/{id}/presence  agent -> hub   QoS1  retained online marker; Last Will says offline
//	kf/v1/dev/{id}/ack       hub -> agent   QoS1  cumulative ack: every record of epoch up to seq is durable
//	kf/v1/dev/{id}/cmd       hub -> agent   QoS1  one command
//	kf/v1/dev/{id}/desired   hub -> agent   QoS1  desired state document
//	kf/v1/dev/{id}/log       agent -> hub   QoS0  lines of a log tail the hub asked for (best effort)
//
// A device may publish only to its own hello, up, presence and log topics and subscribe only to its own
// ack, cmd and desired topics; everything else is denied (see Allowed).
package wire
