#!/usr/bin/env bash
# Stops the local AWS stack that up.sh started from this checkout: exactly the processes named by
# the PID files in deploy/local/run/, each only after checking that it still is that server.
# SIGTERM first, SIGKILL when it has not exited after 5 s; kinesis-local ignores SIGTERM and
# SIGINT, so it gets SIGKILL at once. Logs are kept. Exits non-zero if a server survives.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# wait_gone PID SECONDS: polls until the process has exited.
wait_gone() {
	local deadline=$((SECONDS + $2))
	while proc_alive "$1"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

stop() {
	local name=$1 pid f
	f="$(pid_file "$name")"
	[[ -f $f ]] || return 0
	if ! pid="$(recorded_pid "$name")"; then
		log "$name: not running (removing stale $f)"
		rm -f "$f" "$(port_file "$name")"
		return 0
	fi
	if [[ $name != kinesis-local ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		if wait_gone "$pid" 5; then
			rm -f "$f" "$(port_file "$name")"
			log "$name stopped (pid $pid)"
			return 0
		fi
		log "$name (pid $pid) ignored SIGTERM for 5 s; sending SIGKILL"
	fi
	kill -KILL "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" 5; then
		log "ERROR: $name (pid $pid) still runs after SIGKILL"
		return 1
	fi
	rm -f "$f" "$(port_file "$name")"
	log "$name stopped (pid $pid)"
}

lock_stack
status=0
for name in "${SERVERS[@]}"; do
	stop "$name" || status=1
done
exit "$status"
