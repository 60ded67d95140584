#!/usr/bin/env bash
# Runs a command with the local AWS stack up, then stops the stack whatever the command's outcome
# (also on Ctrl-C or SIGTERM), and exits with the command's status. A stack that was already
# running is reused. When several runs share one checkout's stack at once, the last to finish
# stops it. The command gets SHARDHOSE_TEST_*_ENDPOINT for the ports in use, so tests reach the
# stack even when ports.env was overridden.
#
#   deploy/local/with-stack.sh go test ./...
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

[[ $# -gt 0 ]] || die "usage: $0 COMMAND [ARG...]"

have_flock=0
command -v flock >/dev/null 2>&1 && have_flock=1

# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
	# Each run holds a shared lock on run/users.lock while it uses the stack; whoever can turn
	# it into an exclusive one is the only user left.
	if ((have_flock)) && ! flock -xn 8; then
		log "stack left running: another run in this checkout still uses it"
		return
	fi
	"$LOCAL_DIR/down.sh" || log "ERROR: stopping the stack failed; see $LOCAL_DIR/status.sh"
}

mkdir -p "$RUN_DIR"
exec 8>"$RUN_DIR/users.lock"
((have_flock)) && flock -s 8
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$LOCAL_DIR/up.sh" 8>&-

export SHARDHOSE_TEST_KINESIS_ENDPOINT="http://$HOST:$KINESIS_LOCAL_PORT"
export SHARDHOSE_TEST_KINESALITE_ENDPOINT="http://$HOST:$KINESALITE_PORT"
export SHARDHOSE_TEST_DYNAMODB_ENDPOINT="http://$HOST:$DYNALITE_PORT"
export SHARDHOSE_TEST_MOTO_ENDPOINT="http://$HOST:$MOTO_PORT"

status=0
"$@" 8>&- || status=$?
exit "$status"
