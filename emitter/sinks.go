package emitter

import (
	"log/slog"
	"time"
)

// streamTarget is the settings of a target that is not HTTP: a Kafka or
// NATS target named by the scheme of --targetUri (kafka://, nats://).
type streamTarget interface {
	Validate() error
}

// streamTargetOf returns the stream target c names, or nil for an HTTP
// target.
func (c Config) streamTargetOf() streamTarget {
	if k, ok := c.kafkaConfig(); ok {
		return k
	}
	if n, ok := c.natsConfig(); ok {
		return n
	}
	return nil
}

// newSink returns the sink of c's target: a Kafka producer, a NATS
// JetStream publisher or the HTTP sender.
func newSink(c Config, log *slog.Logger) (sink, error) {
	if k, ok := c.kafkaConfig(); ok {
		return newKafkaSink(k, log)
	}
	if n, ok := c.natsConfig(); ok {
		return newNATSSink(n, log)
	}
	return newSender(c, log)
}

// batchOptions returns the batch size and linger of c's target (zero for
// a target that takes one event at a time).
func batchOptions(c Config) (size int, linger time.Duration) {
	if k, ok := c.kafkaConfig(); ok {
		return k.BatchSize, k.Linger
	}
	if n, ok := c.natsConfig(); ok {
		return n.BatchSize, n.Linger
	}
	if isMailTarget(c.TargetURI) {
		// A burst of registrations trickles in over seconds: wait that
		// long for the rest of it, so that it becomes one digest.
		return mailBatchSize, mailLinger
	}
	return 0, 0
}

// The batches of a mail target: well under the 30 s after which /readyz
// calls a target that takes nothing stalled.
const (
	mailBatchSize = 500
	mailLinger    = 5 * time.Second
)

// closeSink releases what s holds (a Kafka or NATS client).
func closeSink(s sink) {
	if c, ok := s.(interface{ Close() }); ok {
		c.Close()
	}
}
