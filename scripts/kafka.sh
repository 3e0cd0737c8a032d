#!/usr/bin/env bash
# scripts/kafka.sh: a real Apache Kafka broker for the tests and the
# benchmarks: one node in KRaft mode (broker and controller in one JVM) on
# 127.0.0.1, from org.apache.kafka:kafka_2.13 and its runtime dependencies on
# Maven Central, run with the machine's JDK 17 (or newer).
#
#   scripts/kafka.sh start    fetch (once), format (once) and start it; waits until it answers
#   scripts/kafka.sh stop     stop it (its data and ports stay for the next start)
#   scripts/kafka.sh restart  stop and start it on the same ports
#   scripts/kafka.sh status   exit 0 when it answers
#   scripts/kafka.sh env      print `export KCEE_TEST_KAFKA_BROKERS='127.0.0.1:port'`,
#                             KCEE_TEST_KAFKA_MAX_BYTES (the broker's message.max.bytes) and
#                             KCEE_TEST_KAFKA_SASL_BROKERS, _SASL_USER, _SASL_PASSWORD (a second
#                             listener, SASL_PLAINTEXT: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512),
#                             KCEE_TEST_KAFKA_TLS_BROKERS (SSL), _MTLS_BROKERS (SSL that requires
#                             a client certificate), _CA_FILE (the CA of the broker's and the
#                             client's certificates), _CLIENT_CERT_FILE, _CLIENT_KEY_FILE, and
#                             _OAUTH_BROKERS (SASL_PLAINTEXT: OAUTHBEARER), _OAUTH_KEY_FILE (the
#                             RSA key whose RS256 JWTs the broker takes), _OAUTH_ISSUER, _OAUTH_AUDIENCE
#   scripts/kafka.sh destroy  stop it and remove its data
#   scripts/kafka.sh log      print the path of its log
#   scripts/kafka.sh fetch    fetch the jars only
#
# Settings from the environment:
#   KAFKA_VERSION        org.apache.kafka:kafka_2.13's version [4.4.0]
#   KAFKA_MAX_BYTES      the broker's message.max.bytes, small so that a test can pass it [262144]
#   KAFKA_HEAP           the JVM heap options [-Xms128m -Xmx512m]
#   KAFKA_START_TIMEOUT  seconds to wait for it to answer [120]
#
# The jars are fetched with `mvn dependency:copy-dependencies` (a generated
# pom naming kafka_2.13) into .cache/kafka/<version>/libs, kept by `make
# clean`. The node's data, ports and log are under .cache/kafka/run. Topics
# are not created on first use (auto.create.topics.enable=false): a test
# creates the topics it needs, and a record for any other topic is refused
# as the operator's broker would refuse it. The SASL listener knows one
# user, kcee-emitter, with a throwaway password made at the first start
# (for PLAIN in the broker's properties, for SCRAM in its storage). The
# SSL listeners present a certificate for 127.0.0.1 signed by a CA made at
# the first start (openssl, PEM files under .cache/kafka/run/tls, the
# broker's keystore and truststore in Kafka's PEM format); the MTLS
# listener requires a client certificate of that CA (client.pem). The OAUTH
# listener validates a JWT with Kafka's OAuthBearerValidatorCallbackHandler:
# signed RS256 by the key oauth/jwt.key (made at the first start), against
# the JWKS file oauth/jwks.json, with the issuer and audience below; a test
# serves the token endpoint that signs such tokens.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_MAX_BYTES=${KAFKA_MAX_BYTES:-262144}
KAFKA_HEAP=${KAFKA_HEAP:--Xms128m -Xmx512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KDIR=$CACHE/kafka
LIBS=$KDIR/$KAFKA_VERSION/libs
RUN=$KDIR/run

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# fetch copies kafka_2.13 and its runtime dependencies into $LIBS unless
# they are there.
fetch() {
	[ -f "$LIBS/.complete" ] && return 0
	need_cmd mvn maven
	local work=$KDIR/$KAFKA_VERSION/fetch
	rm -rf "$work" "$LIBS.tmp" && mkdir -p "$work"
	cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kc-event-emitter</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
EOF
	log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its dependencies from Maven Central"
	(cd "$work" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$LIBS.tmp") \
		>"$work/fetch.log" 2>&1 ||
		{ cat "$work/fetch.log" >&2; die "mvn dependency:copy-dependencies of kafka_2.13 $KAFKA_VERSION failed"; }
	ls "$LIBS.tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "mvn did not write kafka_2.13-$KAFKA_VERSION.jar"
	rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS" && touch "$LIBS/.complete"
}

# pick_java sets JAVA to a java of version 17 or newer, installing Debian's
# openjdk-17-jdk-headless when there is none.
pick_java() {
	JAVA=$(command -v java || true)
	if [ -z "$JAVA" ]; then
		apt_install openjdk-17-jdk-headless
		JAVA=$(command -v java) || die "openjdk-17-jdk-headless installed no java"
	fi
	local major
	major=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
	[ "${major:-0}" -ge 17 ] || die "$JAVA is Java ${major:-?}: Kafka $KAFKA_VERSION needs 17 or newer"
}

pid_alive() { [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }
answers() { [ -f "$RUN/port" ] && port_in_use "$(cat "$RUN/port")"; }

OAUTH_ISSUER=kcee-test-issuer
OAUTH_AUDIENCE=kcee-kafka

# distinct_ports prints $1 free loopback ports, no two the same.
distinct_ports() {
	local n=$1 got=() p q dup
	while [ ${#got[@]} -lt "$n" ]; do
		p=$(free_port) dup=
		for q in "${got[@]}"; do [ "$q" = "$p" ] && dup=1; done
		[ -z "$dup" ] && got+=("$p")
	done
	echo "${got[@]}"
}

# make_tls writes, under $RUN/tls, a CA (ca.pem), the broker's key and
# certificate for 127.0.0.1 and localhost in one PEM file (broker.pem, its
# keystore) and a client certificate and key of the CA (client.pem,
# client.key), all P-256 keys in PKCS#8.
make_tls() {
	need_cmd openssl openssl
	local d=$RUN/tls
	rm -rf "$d" && mkdir -p "$d"
	(
		umask 077
		cd "$d"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
			-days 3650 -subj /CN=kcee-test-kafka-ca \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
		for who in broker client; do
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$who.key" -out "$who.csr" \
				-subj "/CN=kcee-test-$who"
		done
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		for who in broker client; do
			openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
				-extfile "$who.ext" -out "$who.crt"
		done
		cat broker.key broker.crt >broker.pem
		mv client.crt client.pem
		rm -f ./*.csr ./*.ext ca.srl broker.crt
		chmod 644 ca.pem client.pem
	) >"$RUN/tls.log" 2>&1 || { cat "$RUN/tls.log" >&2; die "openssl could not make the test certificates"; }
}

# make_oauth writes, under $RUN/oauth, the RSA key that signs the test's
# JWTs (jwt.key, PKCS#8) and its public half as a JWKS (jwks.json, kid
# kcee-test) for the broker.
make_oauth() {
	need_cmd openssl openssl
	local d=$RUN/oauth hex n
	rm -rf "$d" && mkdir -p "$d"
	(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/jwt.key") 2>"$RUN/oauth.log" ||
		{ cat "$RUN/oauth.log" >&2; die "openssl could not make the JWT key"; }
	# The modulus in base64url: openssl prints it in hex.
	hex=$(openssl rsa -in "$d/jwt.key" -noout -modulus 2>/dev/null | sed 's/^Modulus=//')
	[ -n "$hex" ] || die "openssl printed no modulus of $d/jwt.key"
	n=$(printf '%b' "$(printf '%s' "$hex" | sed 's/../\\x&/g')" | base64 -w0 | tr '+/' '-_' | tr -d '=')
	printf '{"keys":[{"kty":"RSA","kid":"kcee-test","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}]}\n' "$n" >"$d/jwks.json"
}

# configure writes the node's properties once: free ports for the broker's
# listeners and the controller, kept across restarts so that clients find
# it again, and the certificates and keys of the TLS and OAUTH listeners.
configure() {
	mkdir -p "$RUN"
	if [ ! -f "$RUN/server.properties" ] || [ ! -f "$RUN/oauth-port" ]; then
		rm -rf "$RUN/data" # a node of an older layout of this script: formatted anew
		local port cport sport tport mport oport password
		read -r port cport sport tport mport oport <<<"$(distinct_ports 6)"
		password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
		make_tls
		make_oauth
		cat >"$RUN/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport,MTLS://127.0.0.1:$mport,OAUTH://127.0.0.1:$oport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport,MTLS://127.0.0.1:$mport,OAUTH://127.0.0.1:$oport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,OAUTH:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kcee-emitter="$password";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$RUN/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$RUN/tls/ca.pem
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
sasl.oauthbearer.jwks.endpoint.url=file://$RUN/oauth/jwks.json
sasl.oauthbearer.expected.issuer=$OAUTH_ISSUER
sasl.oauthbearer.expected.audience=$OAUTH_AUDIENCE
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/data
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
auto.create.topics.enable=false
message.max.bytes=$KAFKA_MAX_BYTES
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
		echo "$port" >"$RUN/port"
		echo "$sport" >"$RUN/sasl-port"
		echo "$tport" >"$RUN/tls-port"
		echo "$mport" >"$RUN/mtls-port"
		echo "$oport" >"$RUN/oauth-port"
		(umask 077 && echo "$password" >"$RUN/sasl-password")
		echo "$KAFKA_MAX_BYTES" >"$RUN/max-bytes"
	fi
	if [ ! -f "$RUN/data/meta.properties" ]; then
		log "formatting the KRaft storage in $RUN/data"
		local pw
		pw=$(cat "$RUN/sasl-password")
		"$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool format --standalone --cluster-id="$(cluster_id)" \
			-c "$RUN/server.properties" \
			--add-scram "SCRAM-SHA-256=[name=kcee-emitter,password=$pw]" \
			--add-scram "SCRAM-SHA-512=[name=kcee-emitter,password=$pw]" >"$RUN/format.log" 2>&1 ||
			{ cat "$RUN/format.log" >&2; die "kafka-storage format failed"; }
	fi
}

# cluster_id prints a random cluster id (16 bytes, URL-safe base64 without padding). One that
# starts with "-" (1 in 64) was taken for an option by the tool's parser: it is given as
# --cluster-id=ID, and drawn again.
cluster_id() {
	local id=-
	while [ "${id#-}" != "$id" ]; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	printf '%s\n' "$id"
}

start() {
	if pid_alive && answers; then
		[ -f "$RUN/oauth-port" ] && return 0
		log "the running broker has no TLS and OAUTH listeners (an older layout of this script): restarting it with them"
		stop
	fi
	fetch
	pick_java
	configure
	local t0=$SECONDS
	# setsid: stop ends the whole group.
	# shellcheck disable=SC2086 # KAFKA_HEAP is a list of options
	setsid "$JAVA" $KAFKA_HEAP -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto \
		-Dlog4j2.level=WARN "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=file://$RUN/oauth/jwks.json" -cp "$LIBS/*" kafka.Kafka "$RUN/server.properties" </dev/null >"$RUN/log" 2>&1 &
	echo $! >"$RUN/pid"
	local i
	for ((i = 0; i < KAFKA_START_TIMEOUT * 10; i++)); do
		if ! pid_alive; then
			tail -n 40 "$RUN/log" >&2
			rm -f "$RUN/pid"
			die "Kafka exited while starting (log: $RUN/log)"
		fi
		answers && { log "Kafka $KAFKA_VERSION answers on 127.0.0.1:$(cat "$RUN/port") after $((SECONDS - t0))s"; return 0; }
		sleep 0.1
	done
	die "Kafka did not answer within ${KAFKA_START_TIMEOUT}s (log: $RUN/log)"
}

stop() {
	pid_alive || { rm -f "$RUN/pid"; return 0; }
	local pid i
	pid=$(cat "$RUN/pid")
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "Kafka did not stop in 30s: killing it"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
	fi
	rm -f "$RUN/pid"
}

case ${1:-} in
start) start; cat "$RUN/port" | sed 's/^/127.0.0.1:/' ;;
stop) stop ;;
restart) stop; start ;;
status) pid_alive && answers ;;
env)
	[ -f "$RUN/port" ] || die "Kafka was never started: run $0 start"
	[ -f "$RUN/oauth-port" ] || die "the broker has no TLS and OAUTH listeners (an older layout of this script): run $0 start"
	echo "export KCEE_TEST_KAFKA_BROKERS='127.0.0.1:$(cat "$RUN/port")'"
	echo "export KCEE_TEST_KAFKA_MAX_BYTES='$(cat "$RUN/max-bytes")'"
	echo "export KCEE_TEST_KAFKA_SASL_BROKERS='127.0.0.1:$(cat "$RUN/sasl-port")'"
	echo "export KCEE_TEST_KAFKA_SASL_USER='kcee-emitter'"
	echo "export KCEE_TEST_KAFKA_SASL_PASSWORD='$(cat "$RUN/sasl-password")'"
	echo "export KCEE_TEST_KAFKA_TLS_BROKERS='127.0.0.1:$(cat "$RUN/tls-port")'"
	echo "export KCEE_TEST_KAFKA_MTLS_BROKERS='127.0.0.1:$(cat "$RUN/mtls-port")'"
	echo "export KCEE_TEST_KAFKA_CA_FILE='$RUN/tls/ca.pem'"
	echo "export KCEE_TEST_KAFKA_CLIENT_CERT_FILE='$RUN/tls/client.pem'"
	echo "export KCEE_TEST_KAFKA_CLIENT_KEY_FILE='$RUN/tls/client.key'"
	echo "export KCEE_TEST_KAFKA_OAUTH_BROKERS='127.0.0.1:$(cat "$RUN/oauth-port")'"
	echo "export KCEE_TEST_KAFKA_OAUTH_KEY_FILE='$RUN/oauth/jwt.key'"
	echo "export KCEE_TEST_KAFKA_OAUTH_ISSUER='$OAUTH_ISSUER'"
	echo "export KCEE_TEST_KAFKA_OAUTH_AUDIENCE='$OAUTH_AUDIENCE'"
	;;
destroy) stop; rm -rf "$RUN"; log "Kafka's data removed" ;;
log) echo "$RUN/log" ;;
fetch) fetch ;;
-h | --help | help) usage ;;
*) usage ;;
esac
