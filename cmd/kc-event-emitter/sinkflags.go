package main

import (
	"flag"
	"strings"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/kafkasink"
)

// The secrets of the Kafka and NATS targets, from the environment unless
// their --...File flag names a file.
const (
	envKafkaPassword    = "KC_EMITTER_KAFKA_PASSWORD"
	envKafkaOAuthSecret = "KC_EMITTER_KAFKA_OAUTH_CLIENT_SECRET"
	envNATSPassword     = "KC_EMITTER_NATS_PASSWORD"
	envNATSToken        = "KC_EMITTER_NATS_TOKEN"
	kafkaFlagGroupTitle = "Kafka target (--targetUri kafka://host:port[,host:port]/topic; the topic may hold {{realm}} and {{kind}})"
	natsFlagGroupTitle  = "NATS JetStream target (--targetUri nats://host:port[,host:port]/subject; the subject may hold {{realm}} and {{kind}})"
)

// streamFlagGroups are the groups of --help of the Kafka and NATS flags.
var streamFlagGroups = []flagGroup{
	{kafkaFlagGroupTitle, []string{"kafkaBatchSize", "kafkaLinger", "kafkaMaxBytes", "kafkaCompression", "kafkaDeliveryTimeout", "kafkaSaslMechanism",
		"kafkaUsername", "kafkaPasswordFile", "kafkaOAuthTokenUrl", "kafkaOAuthClientId", "kafkaOAuthClientSecretFile",
		"kafkaTls", "kafkaCaFile", "kafkaClientCertFile", "kafkaClientKeyFile"}},
	{natsFlagGroupTitle, []string{"natsBatchSize", "natsLinger", "natsAckTimeout", "natsUsername", "natsPasswordFile",
		"natsTokenFile", "natsCredsFile", "natsCaFile", "natsClientCertFile", "natsClientKeyFile"}},
}

// streamFlags are the Kafka and NATS flags that need more than their value.
type streamFlags struct {
	kafkaMaxBytes                           int64
	kafkaPasswordFile, kafkaOAuthSecretFile string
	natsPasswordFile, natsTokenFile         string
}

// addStreamFlags defines the flags of the Kafka and NATS targets on fs,
// writing into c; def holds the defaults.
func addStreamFlags(fs *flag.FlagSet, c *emitter.Config, def emitter.Config) *streamFlags {
	s := &streamFlags{}
	k, dk := &c.Kafka, def.Kafka
	fs.IntVar(&k.BatchSize, "kafkaBatchSize", dk.BatchSize, "most events handed to the producer at once")
	fs.DurationVar(&k.Linger, "kafkaLinger", dk.Linger, "how long a batch that is not full waits for more events")
	envflag.BytesVar(fs, &s.kafkaMaxBytes, "kafkaMaxBytes", int64(dk.MaxBytes), "largest record batch in `bytes`, before compression: at most the broker's message.max.bytes;\na larger record is dead-lettered")
	fs.StringVar(&k.Compression, "kafkaCompression", dk.Compression, "`codec` of record batches: "+strings.Join(kafkasink.Compressions, ", "))
	fs.DurationVar(&k.DeliveryTimeout, "kafkaDeliveryTimeout", dk.DeliveryTimeout, "how long the producer tries a record (broker down) before the delivery backs off and tries again")
	fs.StringVar(&k.SASLMechanism, "kafkaSaslMechanism", "", "SASL `mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (client credentials); empty: none")
	fs.StringVar(&k.Username, "kafkaUsername", "", "SASL user `name` (PLAIN, SCRAM)")
	fs.StringVar(&s.kafkaPasswordFile, "kafkaPasswordFile", "", "`file` holding the SASL password (else "+envKafkaPassword+")")
	fs.StringVar(&k.OAuthTokenURL, "kafkaOAuthTokenUrl", "", "token endpoint `URL` of OAUTHBEARER")
	fs.StringVar(&k.OAuthClientID, "kafkaOAuthClientId", "", "client `id` of OAUTHBEARER")
	fs.StringVar(&s.kafkaOAuthSecretFile, "kafkaOAuthClientSecretFile", "", "`file` holding the OAUTHBEARER client secret (else "+envKafkaOAuthSecret+")")
	fs.BoolVar(&k.TLS, "kafkaTls", false, "connect to the brokers with TLS")
	fs.StringVar(&k.CAFile, "kafkaCaFile", "", "PEM `file` of CA certificates trusted for the brokers (else the system's)")
	fs.StringVar(&k.ClientCertFile, "kafkaClientCertFile", "", "PEM `file` of a client certificate for mTLS")
	fs.StringVar(&k.ClientKeyFile, "kafkaClientKeyFile", "", "PEM `file` of the client certificate's key")

	n, dn := &c.NATS, def.NATS
	fs.IntVar(&n.BatchSize, "natsBatchSize", dn.BatchSize, "most events published at once")
	fs.DurationVar(&n.Linger, "natsLinger", dn.Linger, "how long a batch that is not full waits for more events")
	fs.DurationVar(&n.AckTimeout, "natsAckTimeout", dn.AckTimeout, "how long a message waits for JetStream's acknowledgement before the delivery backs off and tries again")
	fs.StringVar(&n.Username, "natsUsername", "", "user `name`")
	fs.StringVar(&s.natsPasswordFile, "natsPasswordFile", "", "`file` holding the password (else "+envNATSPassword+")")
	fs.StringVar(&s.natsTokenFile, "natsTokenFile", "", "`file` holding a token (else "+envNATSToken+")")
	fs.StringVar(&n.CredsFile, "natsCredsFile", "", "`file` of NATS credentials (JWT and NKey seed)")
	fs.StringVar(&n.CAFile, "natsCaFile", "", "PEM `file` of CA certificates trusted for the servers")
	fs.StringVar(&n.ClientCertFile, "natsClientCertFile", "", "PEM `file` of a client certificate for mTLS")
	fs.StringVar(&n.ClientKeyFile, "natsClientKeyFile", "", "PEM `file` of the client certificate's key")
	return s
}

// apply reads the secrets and the values that need a conversion.
func (s *streamFlags) apply(c *emitter.Config, getenv func(string) string) error {
	c.Kafka.MaxBytes = int32(min(s.kafkaMaxBytes, 1<<30))
	var err error
	if c.Kafka.Password, err = envflag.Secret(getenv, s.kafkaPasswordFile, "kafkaPasswordFile", envKafkaPassword); err != nil {
		return err
	}
	if c.Kafka.OAuthClientSecret, err = envflag.Secret(getenv, s.kafkaOAuthSecretFile, "kafkaOAuthClientSecretFile", envKafkaOAuthSecret); err != nil {
		return err
	}
	if c.NATS.Password, err = envflag.Secret(getenv, s.natsPasswordFile, "natsPasswordFile", envNATSPassword); err != nil {
		return err
	}
	if c.NATS.Token, err = envflag.Secret(getenv, s.natsTokenFile, "natsTokenFile", envNATSToken); err != nil {
		return err
	}
	return nil
}
