#!/usr/bin/env bash
# Starts the local AWS stack on 127.0.0.1 and creates the demo resources:
#
#   kinesis-local  :14567 (TLS :14568)  Kinesis, the engine LocalStack runs (behaviour tests, demo)
#   kinesalite     :14569               Kinesis, fast (throughput tests)
#   dynalite       :14570               DynamoDB (leases and checkpoints)
#   moto           :14571               S3, SQS, SNS, Firehose
#
# then, on kinesis-local, stream shardhose-demo (4 shards, ACTIVE) and, on moto, bucket
# shardhose-demo and queue shardhose-demo-dlq. The lease table is left to the daemon.
#
# Idempotent: servers of this checkout that already run and answer are left alone, and the
# emulators are installed (npm ci) only when node_modules does not match package-lock.json.
# PIDs and logs go to deploy/local/run/. Stop everything with down.sh.
#
# Environment: the ports of ports.env can be overridden (KINESIS_LOCAL_PORT=...);
# SHARDHOSE_LOCAL_START_TIMEOUT (seconds, default 30) bounds each server's start;
# SHARDHOSE_MOTO_SERVER names the moto_server executable; SHARDHOSE_LOCAL_SKIP_INIT=1 skips
# creating the demo resources.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

START_TIMEOUT="${SHARDHOSE_LOCAL_START_TIMEOUT:-30}"
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "SHARDHOSE_LOCAL_START_TIMEOUT=$START_TIMEOUT is not a number of seconds"

# kinesis-local keeps every record in memory until its stream is deleted (about 850 MB after
# 45,000 records of 1 KiB). This caps its heap so a runaway test ends in an out-of-memory crash,
# visible in run/kinesis-local.log, rather than in a machine that swaps.
KINESIS_LOCAL_MAX_HEAP_MB="${KINESIS_LOCAL_MAX_HEAP_MB:-4096}"

# Stream and table state changes (CREATING, UPDATING, DELETING) last this long on kinesis-local
# and dynalite instead of 500 ms: short, but long enough that code which must wait for ACTIVE
# does see the intermediate state.
STATE_CHANGE_MS=100

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (needed to $2)"
}

install_emulators() {
	need node "run kinesis-local, kinesalite and dynalite"
	need npm "install kinesis-local, kinesalite and dynalite"
	local stamp="$LOCAL_DIR/node_modules/.shardhose-lock-stamp" want
	want="$(sha256sum "$LOCAL_DIR/package-lock.json" | cut -d' ' -f1) node $(node --version)"
	if [[ -f $stamp && "$(<"$stamp")" == "$want" ]]; then
		return
	fi
	log "installing emulators: npm ci in $LOCAL_DIR (log: $RUN_DIR/npm.log)"
	# Install scripts are not needed: leveldown and classic-level ship prebuilt binaries.
	if ! (cd "$LOCAL_DIR" && npm ci --ignore-scripts --no-audit --no-fund) >"$RUN_DIR/npm.log" 2>&1; then
		tail -n 30 "$RUN_DIR/npm.log" >&2
		die "npm ci failed in $LOCAL_DIR; full log: $RUN_DIR/npm.log"
	fi
	echo "$want" >"$stamp"
}

find_moto() {
	local m="${SHARDHOSE_MOTO_SERVER:-}" c
	if [[ -n $m ]]; then
		[[ -x $m ]] || die "SHARDHOSE_MOTO_SERVER=$m is not an executable file"
		echo "$m"
		return
	fi
	# A pip install under pyenv is run directly, not through pyenv's shim (which depends on the
	# directory's Python version); the last in name order wins.
	for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/moto_server; do
		[[ -x $c ]] && m=$c
	done
	if [[ -z $m ]] && ! m="$(command -v moto_server 2>/dev/null)"; then
		die "moto_server not found under \$PYENV_ROOT/versions/*/bin or on PATH; install moto[server] (pip install 'moto[server]') or set SHARDHOSE_MOTO_SERVER"
	fi
	echo "$m"
}

# wait_ready NAME PID PORT: polls until the server accepts connections, failing with its log
# when it exits or the deadline passes.
wait_ready() {
	local name=$1 pid=$2 port=$3 deadline=$((SECONDS + START_TIMEOUT))
	until port_open "$port"; do
		if ! proc_alive "$pid"; then
			log_tail "$name"
			rm -f "$(pid_file "$name")" "$(port_file "$name")"
			die "$name (pid $pid) exited before it answered on $HOST:$port"
		fi
		if ((SECONDS >= deadline)); then
			log_tail "$name"
			kill -9 "$pid" 2>/dev/null || true
			rm -f "$(pid_file "$name")" "$(port_file "$name")"
			die "$name (pid $pid) did not answer on $HOST:$port within ${START_TIMEOUT}s; stopped it"
		fi
		sleep 0.1
	done
}

# start NAME CMD...: starts the server unless this checkout's instance already runs.
start() {
	local name=$1 port pid
	shift
	port="$(server_port "$name")"
	if pid="$(recorded_pid "$name")"; then
		if [[ "$(recorded_port "$name")" != "$port" ]]; then
			die "$name of this checkout already runs (pid $pid) on port $(recorded_port "$name"), not $port; run $LOCAL_DIR/down.sh first to change ports"
		fi
		wait_ready "$name" "$pid" "$port"
		log "$name already running (pid $pid) on $HOST:$port"
		return
	fi
	rm -f "$(pid_file "$name")" "$(port_file "$name")"
	if port_open "$port"; then
		die "$name: port $HOST:$port is already in use by $(who_listens "$port"), which this checkout's stack did not start. Stop that process, or choose other ports (see $LOCAL_DIR/ports.env)"
	fi
	if [[ $name == kinesis-local ]] && port_open "$KINESIS_LOCAL_TLS_PORT"; then
		# kinesis-local keeps running, half-started, after EADDRINUSE on either port.
		die "kinesis-local: TLS port $HOST:$KINESIS_LOCAL_TLS_PORT is already in use by $(who_listens "$KINESIS_LOCAL_TLS_PORT")"
	fi
	# setsid: the server leaves the terminal's process group, so Ctrl-C in a later command does
	# not reach it; without job control, setsid does not fork and $! stays the server's PID.
	# 9>&-: the server must not inherit the lock on run/.lock.
	local launcher=()
	command -v setsid >/dev/null 2>&1 && launcher=(setsid)
	(cd "$RUN_DIR" && exec "${launcher[@]}" env "$STACK_TAG" "$@") </dev/null >"$(log_file "$name")" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$(pid_file "$name")"
	echo "$port" >"$(port_file "$name")"
	wait_ready "$name" "$pid" "$port"
	if ! is_ours "$name" "$pid"; then
		die "$name: process $pid answers on $HOST:$port but is not the server started ($(proc_cmdline "$pid"))"
	fi
	log "$name started (pid $pid) on $HOST:$port"
}

main() {
	lock_stack
	local t0=$SECONDS
	install_emulators
	local moto node_modules="$LOCAL_DIR/node_modules" preload="$LOCAL_DIR/lib/loopback.js"
	moto="$(find_moto)"

	start kinesis-local env \
		KINESIS_MOCK_CERT_PATH="$node_modules/kinesis-local/server.json" \
		KINESIS_MOCK_PLAIN_PORT="$KINESIS_LOCAL_PORT" \
		KINESIS_MOCK_TLS_PORT="$KINESIS_LOCAL_TLS_PORT" \
		AWS_REGION=us-east-1 \
		SHARD_LIMIT=10000 \
		ON_DEMAND_STREAM_COUNT_LIMIT=1000 \
		CREATE_STREAM_DURATION="${STATE_CHANGE_MS}ms" \
		DELETE_STREAM_DURATION="${STATE_CHANGE_MS}ms" \
		MERGE_SHARDS_DURATION="${STATE_CHANGE_MS}ms" \
		SPLIT_SHARD_DURATION="${STATE_CHANGE_MS}ms" \
		UPDATE_SHARD_COUNT_DURATION="${STATE_CHANGE_MS}ms" \
		UPDATE_STREAM_MODE_DURATION="${STATE_CHANGE_MS}ms" \
		REGISTER_STREAM_CONSUMER_DURATION="${STATE_CHANGE_MS}ms" \
		DEREGISTER_STREAM_CONSUMER_DURATION="${STATE_CHANGE_MS}ms" \
		START_STREAM_ENCRYPTION_DURATION="${STATE_CHANGE_MS}ms" \
		STOP_STREAM_ENCRYPTION_DURATION="${STATE_CHANGE_MS}ms" \
		SHOULD_PERSIST_DATA=false \
		LOG_LEVEL=WARN \
		node --max-old-space-size="$KINESIS_LOCAL_MAX_HEAP_MB" --require "$preload" \
		"$node_modules/kinesis-local/main.js"

	start kinesalite env KINESALITE_PORT="$KINESALITE_PORT" \
		node --require "$preload" "$LOCAL_DIR/lib/kinesalite.js"

	start dynalite node --require "$LOCAL_DIR/lib/abort-guard.js" "$node_modules/dynalite/cli.js" --host "$HOST" --port "$DYNALITE_PORT" \
		--createTableMs "$STATE_CHANGE_MS" --deleteTableMs "$STATE_CHANGE_MS" --updateTableMs "$STATE_CHANGE_MS"

	start moto "$moto" -H "$HOST" -p "$MOTO_PORT"

	if [[ ${SHARDHOSE_LOCAL_SKIP_INIT:-} != 1 ]]; then
		need go "build deploy/local/localinit, which creates the demo resources"
		log "creating demo resources (stream, bucket, queue)"
		(cd "$REPO_ROOT" && go build -o "$RUN_DIR/localinit" ./deploy/local/localinit) ||
			die "building deploy/local/localinit failed (see the compiler output above)"
		"$RUN_DIR/localinit" \
			-kinesis "http://$HOST:$KINESIS_LOCAL_PORT" \
			-moto "http://$HOST:$MOTO_PORT" ||
			die "creating the demo resources failed (see above); server logs are in $RUN_DIR"
	fi
	log "up in $((SECONDS - t0))s: kinesis-local http://$HOST:$KINESIS_LOCAL_PORT, kinesalite http://$HOST:$KINESALITE_PORT, dynalite http://$HOST:$DYNALITE_PORT, moto http://$HOST:$MOTO_PORT"
}

main "$@"
