# shardhose: build, the local AWS stack, tests, demo and benchmarks.
#
#   make build       bin/shardhose
#   make image       the container image shardhose:$(VERSION) (deploy/container/Dockerfile; docker or buildah)
#   make local-up    start the local AWS stack (deploy/local/up.sh; idempotent)
#   make local-down  stop it
#   make local-status
#   make test        all tests against the local stack, which is started first and stopped after,
#                    whatever the outcome; the exit status is go test's. A test that needs the
#                    stack fails rather than skips (SHARDHOSE_TEST_REQUIRE_STACK=1)
#   make test-race   the tests of the packages that run goroutines, under the race detector,
#                    against the local stack (RACE_PKGS); .ci/run runs it after make test
#   make test-unit   go test -short: no servers; tests that need them skip, saying why
#                    Each of the three ends with the skipped tests by reason and a closing line
#                    "N passed, N failed, N skipped" (internal/testsummary over go test -json)
#   make fuzz        each fuzz target (FUZZ_TARGETS) for FUZZTIME (default 5m), one after another;
#                    FUZZFLAGS=-parallel=1 keeps it to one core. FUZZTIME may be a count of inputs
#                    (10000x, as CI uses): with Go before 1.27 a duration can end a run with a
#                    spurious "context deadline exceeded" and no failing input (golang/go#75804)
#   make demo        build, start the stack, run deploy/local/demo.sh
#   make demo-load   build, start the stack, load-test end to end (deploy/local/demo-load.sh):
#                    the recipe's events at 1,000 records/s for 60 s through kinesalite
#   make bench       benchmarks against the local stack, written to docs/benchmarks.txt
#   make bench-e2e   the daemon against a plain GetRecords loop on kinesalite (deploy/bench/e2e),
#                    CPU and peak RSS of each process, freshness (the load tester at
#                    BENCH_FRESHNESS_RATE (500) records/s for BENCH_FRESHNESS_WINDOW (60s), 5 s S3
#                    buffer interval) and shutdown time (empty buffer, and BENCH_SHUTDOWN_RECORDS
#                    (5000) records buffered), written into docs/benchmarks.md;
#                    BENCH_RECORDS (100000), BENCH_ROUNDS (3), BENCH_ONLY (name prefixes: variants,
#                    freshness, shutdown; a name ending in $ is matched whole)
#   make bench-idle  the daemon on idle streams of BENCH_IDLE_SHARDS shards (4,64,256): CPU, RSS
#                    and DynamoDB requests per shard over BENCH_IDLE_WINDOW (60s), into
#                    docs/benchmarks.md
#   make clean       stop the stack, remove bin/, deploy/local/run/ and deploy/local/node_modules/
#
# Needs Go, Node.js with npm, and moto (moto_server); Go modules and the npm packages are
# fetched on first use.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go
LOCAL := deploy/local
# `shardhose version` prints these: the nearest tag (else a pseudo-version from the commit's time
# and hash, as Go writes them), and the commit.
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || \
	echo "v0.0.0-$$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || echo 00000000000000)-$(COMMIT)")
LDFLAGS := -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT)
TEST_TIMEOUT ?= 30m
GOTESTFLAGS ?=
# Packages whose code runs goroutines: make test-race runs their tests under the race detector.
# cmd/shardhose is left out: its tests run the daemon as separate processes. RACE_PKGS=./cmd/shardhose
# builds those with -race too and fails a test whose worker reports a race (about 6 minutes; the
# fleet tests' timing bounds, such as balancing within two lease durations, may not hold).
RACE_PKGS ?= ./checkpoint/... ./consumer/... ./dlq/... ./internal/... ./kcl/... ./loadtest/... ./pipeline/... \
	./process/... ./produce/... ./sinks/...
# go test -json, summarised: go test's own lines, then a closing "N passed, N failed, N skipped".
SUMMARY = $(GO) run ./internal/testsummary
FUZZTIME ?= 5m
FUZZFLAGS ?=
# Every fuzz target, as package:Function; `make fuzz` runs them one after another.
FUZZ_TARGETS := ./config:FuzzLoad ./sinks/s3/prefix:FuzzParse ./process/eventfilter:FuzzCompileAndMatch \
	./consumer/kpl:FuzzDeaggregate ./sinks/http:FuzzCheckResponse ./sinks/opensearch:FuzzBulkResponse \
	./dlq:FuzzParseMessage ./consumer/getrecords:FuzzSameAsSDK ./consumer/getrecords:FuzzCBOR ./process:FuzzJSONValidatorAgreesWithEncodingJSON

.PHONY: build image local-up local-down local-status test test-race test-unit fuzz demo demo-load bench bench-e2e bench-idle clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/shardhose ./cmd/shardhose

image:
	$$(command -v docker || command -v buildah) build -f deploy/container/Dockerfile \
		--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t shardhose:$(VERSION) .

local-up:
	$(LOCAL)/up.sh

local-down:
	$(LOCAL)/down.sh

local-status:
	$(LOCAL)/status.sh || true

test:
	$(GO) build -o /dev/null ./internal/testsummary
	SHARDHOSE_TEST_REQUIRE_STACK=1 $(LOCAL)/with-stack.sh bash -o pipefail -c \
		'$(GO) test -json -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./... | $(SUMMARY)'

test-race:
	$(GO) build -o /dev/null ./internal/testsummary
	SHARDHOSE_TEST_REQUIRE_STACK=1 $(LOCAL)/with-stack.sh bash -o pipefail -c \
		'$(GO) test -race -json -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) $(RACE_PKGS) | $(SUMMARY)'

test-unit:
	SHARDHOSE_TEST_REQUIRE_STACK= $(GO) test -short -json $(GOTESTFLAGS) ./... | $(SUMMARY)

fuzz:
	for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $${t##*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) "$${t%%:*}"; \
	done

demo: build local-up
	bash $(LOCAL)/demo.sh

demo-load: build local-up
	bash $(LOCAL)/demo-load.sh

bench:
	mkdir -p docs
	SHARDHOSE_TEST_REQUIRE_STACK=1 $(LOCAL)/with-stack.sh \
		$(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) ./... | tee docs/benchmarks.txt.tmp
	mv docs/benchmarks.txt.tmp docs/benchmarks.txt

BENCH_RECORDS ?= 100000
BENCH_ROUNDS ?= 3
BENCH_ONLY ?=
BENCH_FRESHNESS_WINDOW ?= 60s
BENCH_FRESHNESS_RATE ?= 500
BENCH_SHUTDOWN_RECORDS ?= 5000

bench-e2e: build
	$(GO) build -o bin/bench-floor ./deploy/bench/floor
	$(GO) build -o bin/bench-e2e ./deploy/bench/e2e
	$(LOCAL)/with-stack.sh bin/bench-e2e -records $(BENCH_RECORDS) -rounds $(BENCH_ROUNDS) -only '$(BENCH_ONLY)' \
		-freshness-window $(BENCH_FRESHNESS_WINDOW) -freshness-rate $(BENCH_FRESHNESS_RATE) \
		-shutdown-records $(BENCH_SHUTDOWN_RECORDS)

BENCH_IDLE_SHARDS ?= 4,64,256
BENCH_IDLE_WINDOW ?= 60s

bench-idle: build
	$(GO) build -o bin/bench-e2e ./deploy/bench/e2e
	$(LOCAL)/with-stack.sh bin/bench-e2e -idle $(BENCH_IDLE_SHARDS) -idle-window $(BENCH_IDLE_WINDOW)

clean:
	-$(LOCAL)/down.sh
	rm -rf bin $(LOCAL)/run $(LOCAL)/node_modules
