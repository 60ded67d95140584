# shardhose: build, the local AWS stack, tests, demo and benchmarks.
#
#   make build       bin/shardhose
#   make image       the container image shardhose:$(VERSION) (deploy/container/Dockerfile; docker or buildah)
#   make local-up    start the local AWS stack (deploy/local/up.sh; idempotent)
#   make local-down  stop it
#   make local-status
#   make test        all tests against the local stack, which is started first and stopped after,
#                    whatever the outcome; the exit status is go test's
#   make test-unit   go test -short, no stack
#   make demo        build, start the stack, run deploy/local/demo.sh
#   make demo-load   build, start the stack, load-test end to end (deploy/local/demo-load.sh):
#                    the recipe's events at 1,000 records/s for 60 s through kinesalite
#   make bench       benchmarks against the local stack, written to docs/benchmarks.txt
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
FUZZTIME ?= 5m
FUZZFLAGS ?=
# Every fuzz target, as package:Function; `make fuzz` runs them one after another.
FUZZ_TARGETS := ./config:FuzzLoad ./sinks/s3/prefix:FuzzParse ./process/eventfilter:FuzzCompileAndMatch \
	./consumer/kpl:FuzzDeaggregate ./sinks/http:FuzzCheckResponse ./sinks/opensearch:FuzzBulkResponse \
	./dlq:FuzzParseMessage

.PHONY: build image local-up local-down local-status test test-unit fuzz demo demo-load bench clean

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
	SHARDHOSE_TEST_REQUIRE_STACK=1 $(LOCAL)/with-stack.sh \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./...

test-unit:
	$(GO) test -short $(GOTESTFLAGS) ./...

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

clean:
	-$(LOCAL)/down.sh
	rm -rf bin $(LOCAL)/run $(LOCAL)/node_modules
