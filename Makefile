# kc-event-emitter. `make test` and `make demo` work on a fresh machine with
# Go, a JDK, Maven and make: the scripts install the rest (as root).
SHELL := /bin/bash
GO ?= go
BENCH ?= .
BENCHFLAGS ?= -benchmem
BENCH_N ?= 100000
BENCH_ARGS ?= --concurrency 1,4
GO_TEST_TIMEOUT ?= 15m
export GO_TEST_TIMEOUT
# Downloads and run state (the scripts read KCEE_CACHE too).
CACHE := $(or $(KCEE_CACHE),.cache)

.PHONY: build dist image test test-kafka test-compat test-unit generate check-generate bench demo servers clean distclean

## build: bin/kc-event-emitter and bin/kc-event-receiver, static and stamped with
## the version (scripts/version.sh; VERSION=... sets another) and the commit
build:
	GO=$(GO) bash scripts/build.sh bin

## dist: the release archives dist/kc-event-emitter-<version>-linux-{amd64,arm64}.tar.gz
## and dist/SHA256SUMS (VERSION=..., DIST_ARCHES=...; see scripts/dist.sh)
dist:
	GO=$(GO) bash scripts/dist.sh

## image: the container image kc-event-emitter:<version> from deploy/Dockerfile, the
## same stamped build (needs Docker with BuildKit; IMAGE=name:tag sets another name)
image:
	v=$${VERSION:-$$(bash scripts/version.sh)}; \
	docker build -f deploy/Dockerfile --build-arg VERSION="$$v" \
		--build-arg COMMIT="$$(git rev-parse HEAD 2>/dev/null)" -t "$${IMAGE:-kc-event-emitter:$$v}" .

## test: everything against a real PostgreSQL and a real Keycloak (started here)
test:
	bash scripts/test.sh

## test-kafka: only the Kafka and NATS tests, against a real broker (scripts/kafka.sh: a KRaft
## node from Maven Central, started here with PostgreSQL); `make test` runs them too
test-kafka:
	bash scripts/deps.sh test
	bash scripts/postgres.sh start >/dev/null
	bash scripts/kafka.sh start >/dev/null
	eval "$$(bash scripts/postgres.sh env)"; eval "$$(bash scripts/kafka.sh env)"; export KCEE_REQUIRE_SERVERS=1 KCEE_REQUIRE_KAFKA=1; \
	$(GO) test -count=1 -timeout "$(GO_TEST_TIMEOUT)" ./emitter/kafkasink ./emitter/natssink && \
	$(GO) test -count=1 -timeout "$(GO_TEST_TIMEOUT)" -run 'Kafka|NATS' ./emitter/e2e

## test-compat: the tests that touch Keycloak on each version from 21.1 to the newest, one
## Keycloak at a time (KC_VERSIONS="21.1.2 26.7.3" to choose; COMPAT_DOC=docs/compatibility.md
## writes the table there); prints a table (version, source, result, time)
test-compat:
	bash scripts/compat.sh

## test-unit: the tests that need no server (those that do are skipped)
test-unit: build
	env -u KCEE_TEST_PG_URL -u KCEE_TEST_KEYCLOAK_URL -u KCEE_TEST_KAFKA_BROKERS -u KCEE_REQUIRE_SERVERS -u KCEE_REQUIRE_KAFKA $(GO) test -count=1 ./...

## generate: go generate ./... (the fbs/ code from flatc)
generate:
	$(GO) generate ./...

## check-generate: fail when the generated code is stale
check-generate:
	bash scripts/check-generate.sh

## servers: start PostgreSQL and Keycloak; print their environment
servers:
	bash scripts/deps.sh test
	bash scripts/postgres.sh start >/dev/null
	bash scripts/keycloak.sh start >/dev/null
	@bash scripts/postgres.sh env; bash scripts/keycloak.sh env

## bench: the Go benchmarks with the servers up (BENCH=regexp, BENCHFLAGS=...), then the
## load harness cmd/kc-event-bench (about 10 min on 2 cores; BENCH_N=1000000 for the
## 1M backlog and cost growth to 1M, BENCH_ARGS=... for other flags); its report goes
## to stdout and to bench-results/
bench: servers
	bash scripts/deps.sh bench
	eval "$$(bash scripts/postgres.sh env)"; eval "$$(bash scripts/keycloak.sh env)"; \
	KCEE_REQUIRE_SERVERS=1 $(GO) test -run '^$$' -bench '$(BENCH)' $(BENCHFLAGS) ./...
	mkdir -p bench-results
	$(GO) run ./cmd/kc-event-bench --pg "$$(bash scripts/postgres.sh start bench | tail -n 1)" \
		--backlog $(BENCH_N) --sizes 10000,100000,$(BENCH_N) $(BENCH_ARGS) \
		--out bench-results/kc-event-bench-$$(date -u +%Y%m%dT%H%M%SZ).md

## demo: PostgreSQL + Keycloak, real traffic, Keycloak's event tables filling
demo:
	bash scripts/demo.sh

## clean: stop the servers, remove bin/, dist/ and the run state (downloads are kept)
clean:
	-bash scripts/keycloak.sh stop
	-bash scripts/kafka.sh destroy
	-bash scripts/postgres.sh destroy-all
	rm -rf bin dist $(CACHE)/keycloak/run $(CACHE)/keycloak/*.log $(CACHE)/seed $(CACHE)/bin

## distclean: clean, and remove the downloaded and unpacked Keycloak too
distclean: clean
	rm -rf $(CACHE)
