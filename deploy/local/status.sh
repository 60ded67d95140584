#!/usr/bin/env bash
# Prints, for each server of the local AWS stack, whether this checkout's instance runs, its PID,
# whether it answers on its port, and its resident memory. Exit status: 0 when all run and
# answer, 3 otherwise.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

rss() { awk '/^VmRSS:/ { printf "%d MB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }

all=0
printf '%-14s %-8s %-8s %-10s %-9s %s\n' SERVER STATE PID PORT RSS ENDPOINT
for name in "${SERVERS[@]}"; do
	port="$(server_port "$name")"
	if pid="$(recorded_pid "$name")"; then
		port="$(recorded_port "$name")"
		if port_open "$port"; then state=running; else state=no-answer; all=3; fi
		printf '%-14s %-8s %-8s %-10s %-9s %s\n' "$name" "$state" "$pid" "$port" "$(rss "$pid")" "http://$HOST:$port"
	else
		all=3
		note=""
		if [[ -f "$(pid_file "$name")" ]]; then note="(stale PID file)"; fi
		if port_open "$port"; then note="$note port taken by $(who_listens "$port")"; fi
		printf '%-14s %-8s %-8s %-10s %-9s %s\n' "$name" stopped - "$port" - "$note"
	fi
done
echo "logs: $RUN_DIR/*.log"
exit "$all"
