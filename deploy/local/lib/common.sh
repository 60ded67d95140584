# Shared by up.sh, down.sh, status.sh and with-stack.sh; sourced, not run.
# shellcheck shell=bash

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
RUN_DIR="$LOCAL_DIR/run"
HOST=127.0.0.1

# Ports: the environment wins over ports.env.
while IFS='=' read -r key value; do
	[[ $key =~ ^[A-Z_]+$ ]] || continue
	if [[ -z ${!key:-} ]]; then
		printf -v "$key" '%s' "$value"
	fi
	[[ ${!key} =~ ^[0-9]+$ ]] || { echo "local stack: $key=${!key} is not a port number" >&2; exit 1; }
	export "${key?}"
done <"$LOCAL_DIR/ports.env"

# The servers of the stack, in start order.
# shellcheck disable=SC2034
SERVERS=(kinesis-local kinesalite dynalite moto)

log() { printf 'local stack: %s\n' "$*" >&2; }
die() {
	printf 'local stack: ERROR: %s\n' "$*" >&2
	exit 1
}

server_port() {
	case $1 in
	kinesis-local) echo "$KINESIS_LOCAL_PORT" ;;
	kinesalite) echo "$KINESALITE_PORT" ;;
	dynalite) echo "$DYNALITE_PORT" ;;
	moto) echo "$MOTO_PORT" ;;
	*) die "unknown server $1" ;;
	esac
}

# Every server this checkout starts carries SHARDHOSE_LOCAL_STACK=<this directory> in its
# environment, so that a recycled PID, or the same emulator started by anything else (another
# checkout, a test harness), is never taken for ours.
STACK_TAG="SHARDHOSE_LOCAL_STACK=$LOCAL_DIR"

# The program each server's command line names, checked as well.
server_program() {
	case $1 in
	kinesis-local) echo "kinesis-local/main.js" ;;
	kinesalite) echo "lib/kinesalite.js" ;;
	dynalite) echo "dynalite/cli.js" ;;
	moto) echo "moto_server" ;;
	*) die "unknown server $1" ;;
	esac
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
port_file() { echo "$RUN_DIR/$1.port"; }
log_file() { echo "$RUN_DIR/$1.log"; }

# proc_alive PID: the process exists and is not a zombie.
proc_alive() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }" # fields after "pid (comm) "
	[[ ${stat:0:1} != Z ]]
}

proc_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# is_ours NAME PID: the process is this checkout's server NAME.
is_ours() {
	proc_alive "$2" || return 1
	[[ "$(proc_cmdline "$2")" == *"$(server_program "$1")"* ]] || return 1
	local environ
	environ="$(tr '\0' '\n' <"/proc/$2/environ" 2>/dev/null)" || return 1
	[[ $'\n'"$environ"$'\n' == *$'\n'"$STACK_TAG"$'\n'* ]]
}

# recorded_pid NAME: prints the PID from the server's PID file when that process is alive and
# is this checkout's server; fails otherwise.
recorded_pid() {
	local f pid
	f="$(pid_file "$1")"
	[[ -f $f ]] || return 1
	pid="$(<"$f")"
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	is_ours "$1" "$pid" || return 1
	echo "$pid"
}

# recorded_port NAME: the port the running server was started on.
recorded_port() { cat "$(port_file "$1")" 2>/dev/null || echo "?"; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# who_listens PORT: the PID and command line of the listener, when ss can tell.
who_listens() {
	local pid
	if command -v ss >/dev/null 2>&1; then
		pid="$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)"
		if [[ -n $pid ]]; then
			echo "pid $pid: $(proc_cmdline "$pid")"
			return
		fi
	fi
	echo "unknown process"
}

log_tail() {
	local f
	f="$(log_file "$1")"
	if [[ -s $f ]]; then
		echo "---- last lines of $f ----" >&2
		tail -n 30 "$f" >&2
		echo "----" >&2
	else
		echo "($f is empty)" >&2
	fi
}

# lock_stack: one up/down at a time per checkout (two `make` runs must not start servers twice).
lock_stack() {
	mkdir -p "$RUN_DIR"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$RUN_DIR/.lock"
		flock -w 120 9 || die "another up.sh or down.sh has held $RUN_DIR/.lock for 120 s"
	fi
}
