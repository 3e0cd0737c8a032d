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
#                             listener, SASL_PLAINTEXT: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512)
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
# (for PLAIN in the broker's properties, for SCRAM in its storage).
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

# configure writes the node's properties once: free ports for the broker
# and the controller, kept across restarts so that clients find it again.
configure() {
	mkdir -p "$RUN"
	if [ ! -f "$RUN/server.properties" ] || [ ! -f "$RUN/sasl-port" ]; then
		rm -rf "$RUN/data" # a node of an older layout of this script: formatted anew
		local port cport sport password
		port=$(free_port)
		cport=$(free_port)
		sport=$(free_port)
		[ "$cport" = "$port" ] && cport=$((port + 1))
		[ "$sport" = "$port" ] || [ "$sport" = "$cport" ] && sport=$((cport + 1))
		password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
		cat >"$RUN/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kcee-emitter="$password";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
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
		(umask 077 && echo "$password" >"$RUN/sasl-password")
		echo "$KAFKA_MAX_BYTES" >"$RUN/max-bytes"
	fi
	if [ ! -f "$RUN/data/meta.properties" ]; then
		log "formatting the KRaft storage in $RUN/data"
		local pw
		pw=$(cat "$RUN/sasl-password")
		"$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool format --standalone -t "$(cluster_id)" \
			-c "$RUN/server.properties" \
			--add-scram "SCRAM-SHA-256=[name=kcee-emitter,password=$pw]" \
			--add-scram "SCRAM-SHA-512=[name=kcee-emitter,password=$pw]" >"$RUN/format.log" 2>&1 ||
			{ cat "$RUN/format.log" >&2; die "kafka-storage format failed"; }
	fi
}

# cluster_id prints a random cluster id (16 bytes, URL-safe base64 without padding).
cluster_id() { head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='; }

start() {
	if pid_alive && answers; then return 0; fi
	fetch
	pick_java
	configure
	local t0=$SECONDS
	# setsid: stop ends the whole group.
	# shellcheck disable=SC2086 # KAFKA_HEAP is a list of options
	setsid "$JAVA" $KAFKA_HEAP -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto \
		-Dlog4j2.level=WARN -cp "$LIBS/*" kafka.Kafka "$RUN/server.properties" </dev/null >"$RUN/log" 2>&1 &
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
	echo "export KCEE_TEST_KAFKA_BROKERS='127.0.0.1:$(cat "$RUN/port")'"
	echo "export KCEE_TEST_KAFKA_MAX_BYTES='$(cat "$RUN/max-bytes")'"
	echo "export KCEE_TEST_KAFKA_SASL_BROKERS='127.0.0.1:$(cat "$RUN/sasl-port")'"
	echo "export KCEE_TEST_KAFKA_SASL_USER='kcee-emitter'"
	echo "export KCEE_TEST_KAFKA_SASL_PASSWORD='$(cat "$RUN/sasl-password")'"
	;;
destroy) stop; rm -rf "$RUN"; log "Kafka's data removed" ;;
log) echo "$RUN/log" ;;
fetch) fetch ;;
-h | --help | help) usage ;;
*) usage ;;
esac
