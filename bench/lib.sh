# bench/lib.sh — shell functions shared by bench/e2e and bench/peers.
# Sourced after tools/setup.sh (set -euo pipefail, ROOT, dispatchd_install).
# The caller sets BENCH_NAME (the prefix of messages), TMP (its temporary
# directory) and KEEP (1: leave TMP behind), and calls bench_traps once.
# The server under test is SERVER_PID (one at a time), the running
# loadgen LG_PID; both are killed on any exit, by their own PID only.

SERVER_PID=
LG_PID=

bench_die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

# bench_build DIR TARGET...: configure DIR once (Release), build TARGETs;
# a failure leaves its log in /tmp and returns 1.
bench_build() {
    local dir=$1 t log
    shift
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    for t in "$@"; do
        log=/tmp/$BENCH_NAME-build-$t.$$.log
        if ! cmake --build "$dir" --target "$t" -j "$(nproc)" >"$log" 2>&1; then
            echo "$BENCH_NAME: building $t failed: see $log" >&2
            return 1
        fi
        rm -f "$log"
    done
}

bench_cleanup() {
    if [ -n "$LG_PID" ]; then
        kill "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" 2>/dev/null || true
        LG_PID=
    fi
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
    if [ "${KEEP:-0}" -eq 1 ]; then
        echo "$BENCH_NAME: kept $TMP" >&2
    elif [ -n "${TMP:-}" ]; then
        rm -rf "$TMP"
    fi
}

bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# bench_spawn LOG CMD...: start the server in the background, its output
# in LOG; SERVER_PID is its PID (CMD may be "taskset -c 0 ...": taskset
# execs the server, so the PID stays the server's).
bench_spawn() {
    local log=$1
    shift
    "$@" >>"$log" 2>&1 &
    SERVER_PID=$!
}

# bench_wait_port LABEL LOG PORT: wait until PORT accepts connections
# (10 s at most); 1 with the log's tail when the server died or did not.
bench_wait_port() {
    local label=$1 log=$2 port=$3 i
    for i in $(seq 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=
            echo "$BENCH_NAME: $label exited at start:" >&2
            tail -5 "$log" >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$BENCH_NAME: $label did not open port $port in 10 s" >&2
    return 1
}

# bench_launch LABEL LOG PORT CMD...: spawn and wait for the port.
bench_launch() {
    local label=$1 log=$2 port=$3
    shift 3
    bench_spawn "$log" "$@"
    bench_wait_port "$label" "$log" "$port"
}

# bench_stop [SIGNAL [SECONDS]]: stop SERVER_PID (TERM by default), and
# KILL it when it is still there after SECONDS (5).
bench_stop() {
    local sig=${1:-TERM} secs=${2:-5} i
    [ -n "$SERVER_PID" ] || return 0
    # (bash's "Killed" notice of the reaped job goes to /dev/null too)
    {
        kill "-$sig" "$SERVER_PID" || true
        for i in $(seq $((secs * 10))); do
            kill -0 "$SERVER_PID" || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" || true
        wait "$SERVER_PID" || true
    } 2>/dev/null
    SERVER_PID=
}

# What a 128-byte write + fsync costs now in DIR, in microseconds.
bench_fsync_us() {
    python3 - "$1/fsync-probe" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
t = time.monotonic()
for _ in range(200):
    os.write(fd, b"x" * 128)
    os.fsync(fd)
print("%.0f" % ((time.monotonic() - t) / 200 * 1e6))
os.close(fd)
os.unlink(sys.argv[1])
EOF
}
