#!/usr/bin/env bash
# The demo: run shardhose against the local stack (started by `make demo` before this script),
# send it the Firehose recipe's sample events plus generated ones and one record that is not
# JSON, wait until the good ones are in S3 and the bad one is in the dead-letter queue, stop the
# daemon cleanly and show what landed where, the dead letter and each shard's checkpoint.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# shellcheck source=lib/common.sh
source "$here/lib/common.sh" # the ports in use: ports.env, or the environment's overrides

BIN="$root/bin/shardhose"
CFG="${SHARDHOSE_DEMO_CONFIG:-configs/local.yaml}"
SAMPLES="configs/samples/recipe-events.jsonl"
GENERATED="${SHARDHOSE_DEMO_GENERATED:-3000}"
RUN="$here/run"
LOG="$RUN/demo-daemon.log"
mkdir -p "$RUN"

[ -x "$BIN" ] || { echo "demo: $BIN is missing; run 'make demo' (it builds first)" >&2; exit 1; }

# configs/local.yaml names ports.env's ports; when they are overridden, point it at the others.
if [ -z "${SHARDHOSE_DEMO_CONFIG:-}" ]; then
  export SHARDHOSE_AWS__ENDPOINTS__KINESIS="http://$HOST:$KINESIS_LOCAL_PORT"
  export SHARDHOSE_AWS__ENDPOINTS__DYNAMODB="http://$HOST:$DYNALITE_PORT"
  export SHARDHOSE_AWS__ENDPOINTS__S3="http://$HOST:$MOTO_PORT"
  export SHARDHOSE_AWS__ENDPOINTS__SQS="http://$HOST:$MOTO_PORT"
  export SHARDHOSE_DEAD_LETTER__SQS__QUEUE_URL="http://$HOST:$MOTO_PORT/123456789012/shardhose-demo-dlq"
fi

echo "== checking $CFG"
"$BIN" validate -c "$CFG"

report() { go run ./deploy/local/demoreport -c "$CFG" "$@"; }
before=$(report -count)
dead_before=$(report -dead-letters)
samples=$(grep -c . "$SAMPLES")
expect=$((before + samples + GENERATED))

echo "== starting shardhose (log: $LOG)"
"$BIN" run -c "$CFG" >"$LOG" 2>&1 &
pid=$!
stop_daemon() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap stop_daemon EXIT

echo "== sending the recipe's $samples sample events, keyed by user_id"
"$BIN" produce -c "$CFG" --file "$SAMPLES" --partition-key-field user_id
echo "== sending $GENERATED generated events"
"$BIN" produce -c "$CFG" --count "$GENERATED" --seed "$(date +%s)"
echo "== sending one poison record (not JSON): the json handler refuses it, bisect isolates it"
report -put-poison

echo "== waiting until S3 holds the good ones ($expect records in all, $before from earlier runs) and the queue the poison one"
if ! report -wait "$expect" -wait-dead-letters "$((dead_before + 1))" -timeout 120s >"$RUN/demo-report.txt"; then
  echo "demo: records did not arrive; daemon log tail:" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi

echo "== stopping shardhose with SIGTERM (it drains, checkpoints and releases its leases)"
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
trap - EXIT
if [ "$code" -ne 0 ]; then
  echo "demo: shardhose exited $code; log tail:" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi

echo
echo "== what landed where"
cat "$RUN/demo-report.txt"
echo
echo "== the dead-letter queue (shardhose dlq inspect -c $CFG)"
"$BIN" dlq inspect -c "$CFG" --max 3
echo
echo "== checkpoint per shard (lease table)"
"$BIN" leases -c "$CFG"
echo
echo "Done. The daemon's log is $LOG. Stop the local stack with 'make local-down'."
