#!/usr/bin/env bash
# The load test demo (`make demo-load`, which builds and starts the local stack first): creates
# stream shardhose-load (4 shards) on kinesalite and bucket shardhose-load on moto, then runs
# `shardhose loadtest --start` with the Firehose recipe's e-commerce templates at 1,000 records/s
# for 60 s. The load test starts the daemon, waits until it holds every shard, sends, finds every
# record in S3 through the id it stamped into each, stops the daemon and prints the report.
#
# Environment: SHARDHOSE_LOAD_RATE (default 1000), SHARDHOSE_LOAD_DURATION (default 60s),
# SHARDHOSE_LOAD_CONFIG (default configs/loadtest.yaml), SHARDHOSE_DEMO_METRICS_PORT (default
# 14580: the daemon serves its Prometheus metrics there, and the load test reads the iterator age
# from them), SHARDHOSE_METRICS_URL (another metrics endpoint to read instead); the ports of
# deploy/local/ports.env can be overridden as for the stack. Extra arguments go to `shardhose loadtest` (e.g. --output json).
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

BIN="$REPO_ROOT/bin/shardhose"
CFG="${SHARDHOSE_LOAD_CONFIG:-configs/loadtest.yaml}"
RATE="${SHARDHOSE_LOAD_RATE:-1000}"
DURATION="${SHARDHOSE_LOAD_DURATION:-60s}"
mkdir -p "$RUN_DIR"

[ -x "$BIN" ] || die "$BIN is missing; run 'make demo-load' (it builds first)"

# The config names the default ports; these follow the ones in use.
export SHARDHOSE_AWS__ENDPOINTS__KINESIS="http://$HOST:$KINESALITE_PORT"
export SHARDHOSE_AWS__ENDPOINTS__DYNAMODB="http://$HOST:$DYNALITE_PORT"
export SHARDHOSE_AWS__ENDPOINTS__S3="http://$HOST:$MOTO_PORT"
export SHARDHOSE_AWS__ENDPOINTS__SQS="http://$HOST:$MOTO_PORT"
# The daemon's metrics (metrics.listen), read back by the load test for the iterator age.
METRICS_ADDR="$HOST:${SHARDHOSE_DEMO_METRICS_PORT:-14580}"
export SHARDHOSE_METRICS__LISTEN="${SHARDHOSE_METRICS__LISTEN:-$METRICS_ADDR}"
export SHARDHOSE_METRICS_URL="${SHARDHOSE_METRICS_URL:-http://$METRICS_ADDR/metrics}"

echo "== creating stream shardhose-load on kinesalite ($HOST:$KINESALITE_PORT) and bucket shardhose-load"
go run ./deploy/local/localinit -kinesis "http://$HOST:$KINESALITE_PORT" -moto "http://$HOST:$MOTO_PORT" \
	-stream shardhose-load -shards 4 -bucket shardhose-load -queue shardhose-load-dlq

echo "== load test: the recipe's events at $RATE records/s for $DURATION"
"$BIN" loadtest -c "$CFG" --start --daemon-log "$RUN_DIR/demo-load-daemon.log" \
	--template configs/templates/recipe-event.tmpl --template configs/templates/recipe-purchase.tmpl \
	--template-weight 88,12 --rate "$RATE" --duration "$DURATION" "$@"
