package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRunFlagsTakesAKafkaTargetWithItsSecretsFromTheEnvironmentOrAFile(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092,127.0.0.1:9093/kc.{{realm}}.{{kind}}")
	args = append(args, "--kafkaSaslMechanism", "SCRAM-SHA-512", "--kafkaUsername", "emitter", "--kafkaLinger", "20ms", "--kafkaMaxBytes", "262144", "--kafkaCompression", "zstd")
	e := map[string]string{"KC_EMITTER_DB_URL": "postgres://127.0.0.1/kc", "KC_EMITTER_KAFKA_PASSWORD": "from-env"}
	o, err := parseRunFlags(args, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	k := o.cfg.Kafka
	if k.Password != "from-env" || k.Username != "emitter" || k.Linger != 20*time.Millisecond || k.MaxBytes != 262144 || k.Compression != "zstd" {
		t.Errorf("Kafka = %+v", k)
	}
	o, err = parseRunFlags(append(args, "--kafkaPasswordFile", pwFile), env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Kafka.Password != "from-file" {
		t.Errorf("password %q, want the file's", o.cfg.Kafka.Password)
	}
}

func TestParseRunFlagsRefusesABadKafkaOrNATSTargetNamingTheFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"kafka without a broker", with(minimalArgs, "--targetUri", "kafka:///events"), "--targetUri"},
		{"kafka broker without a port", with(minimalArgs, "--targetUri", "kafka://127.0.0.1/events"), `--targetUri "127.0.0.1": a Kafka broker`},
		{"kafka without a topic", with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092"), "no topic"},
		{"kafka topic with a bad character", with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/a b"), "a topic name cannot"},
		{"kafka unknown placeholder", with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/kc.{{client}}"), "unknown placeholder {{client}}"},
		{"kafka SASL without a password", append(with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/e"), "--kafkaSaslMechanism", "PLAIN", "--kafkaUsername", "u"), "--kafkaPasswordFile"},
		{"kafka unknown SASL mechanism", append(with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/e"), "--kafkaSaslMechanism", "GSSAPI"), `--kafkaSaslMechanism "GSSAPI"`},
		{"kafka batch size zero", append(with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/e"), "--kafkaBatchSize", "0"), `--kafkaBatchSize "0"`},
		{"kafka unknown compression", append(with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/e"), "--kafkaCompression", "brotli"), `--kafkaCompression "brotli": want one of none, gzip, snappy, lz4, zstd`},
		{"kafka CA without TLS", append(with(minimalArgs, "--targetUri", "kafka://127.0.0.1:9092/e"), "--kafkaCaFile", "ca.pem"), "--kafkaTls"},
		{"nats without a subject", with(minimalArgs, "--targetUri", "nats://127.0.0.1:4222"), "no subject"},
		{"nats wildcard subject", with(minimalArgs, "--targetUri", "nats://127.0.0.1:4222/kc.>"), "wildcards"},
		{"nats ack timeout zero", append(with(minimalArgs, "--targetUri", "nats://127.0.0.1:4222/kc"), "--natsAckTimeout", "0s"), "--natsAckTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRunFlags(tt.args, env(minimalEnv), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseRunFlags() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestHelpListsTheKafkaAndNATSFlagsOnce(t *testing.T) {
	var out strings.Builder
	_, _ = parseRunFlags([]string{"--help"}, env(nil), &out)
	printed := map[string]int{}
	for _, line := range strings.Split(out.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ = strings.Cut(name, " ")
			printed[name]++
		}
	}
	for _, g := range streamFlagGroups {
		for _, n := range g.names {
			if printed[n] != 1 {
				t.Errorf("--%s printed %d times, want once", n, printed[n])
			}
		}
	}
	if strings.Contains(out.String(), "Other flags:") {
		t.Error("some flags are in no group")
	}
}
