package emitter

import (
	"time"
)

// flagSink returns the sink of a flags-only run: chosen by the scheme of
// --targetUri (smtp:// and smtps:// mail, kafka://, nats://, else HTTP).
func (c Config) flagSink() SinkConfig {
	if isMailTarget(c.TargetURI) {
		m := c.mail()
		return SinkConfig{Mail: &m}
	}
	if k, ok := c.kafkaConfig(); ok {
		return SinkConfig{Kafka: &k}
	}
	if n, ok := c.natsConfig(); ok {
		return SinkConfig{NATS: &n}
	}
	return SinkConfig{HTTP: &HTTPSink{
		URL: c.TargetURI, ConnectTimeout: c.ConnectTimeout, ConnectionRequestTimeout: c.ConnectionRequestTimeout,
		SocketTimeout: c.SocketTimeout, RequestTimeout: c.RequestTimeout,
		DeadLetterStatuses: c.DeadLetterStatuses, HoldStatuses: c.HoldStatuses,
		Username: c.Username, Password: c.Password, OAuth2: c.OAuth2, SigningSecrets: c.SigningSecrets,
		CAFile: c.CAFile, ClientCertFile: c.ClientCertFile, ClientKeyFile: c.ClientKeyFile,
	}}
}

// batchOptions returns the batch size and linger of the sink (zero for a
// sink that takes one event at a time).
func (s SinkConfig) batchOptions() (size int, linger time.Duration) {
	switch {
	case s.Kafka != nil:
		return s.Kafka.BatchSize, s.Kafka.Linger
	case s.NATS != nil:
		return s.NATS.BatchSize, s.NATS.Linger
	case s.Mail != nil:
		// A burst of registrations trickles in over seconds: wait that
		// long for the rest of it, so that it becomes one digest.
		return mailBatchSize, mailLinger
	}
	return 0, 0
}

// The batches of a mail sink: the linger well under the 30 s after which
// /readyz calls a target that takes nothing stalled.
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
