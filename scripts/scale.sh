#!/usr/bin/env bash
# Measures what N idle topics cost on one host (issue 13), as a new user would see it: a private shmbusd (own
# socket and shm prefix), `shmbus create s1 .. sN` with the default geometry, then per topic the objects and the
# /dev/shm committed (st_blocks), the daemon's RSS and descriptors, the create rate, how long `shmbus topics` and
# `shmbus stats --json` take, the daemon's idle CPU, and how long a restarted daemon takes to adopt them all.
#
#   scripts/scale.sh [N ...]            (default: 200 1000)
#   BIN=target/release scripts/scale.sh 200 1000 10000
#   BATCH=1 scripts/scale.sh 10000      (create through one `shmbus create` per 500 names: the daemon's rate,
#                                        not the CLI's start-up; needs a CLI that takes several names)
#
# Prints one table row per N. Everything it created is removed at the end, even on failure.
set -euo pipefail

BIN=${BIN:-target/debug}
BATCH=${BATCH:-0}
IDLE_SECS=${IDLE_SECS:-5}
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(200 1000)
for b in shmbusd shmbus; do
    [ -x "$BIN/$b" ] || { echo "scale.sh: $BIN/$b is not built (cargo build -p bus-daemon -p shmbus-cli)" >&2; exit 2; }
done

DIR=$(mktemp -d /tmp/shmbus-scale.XXXXXX)
chmod 700 "$DIR"
PREFIX="scale$$"
SOCK="$DIR/control.sock"
PID=""
# The default shm_budget (2 GiB of reserved footprint) would stop the default geometry at ~480 topics.
printf '[daemon]\nshm_budget = %d\n' $((1 << 40)) >"$DIR/shmbus.toml"

cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    find /dev/shm -maxdepth 1 -name "$PREFIX.*" -delete 2>/dev/null || true
    rm -f "/dev/shm/.$PREFIX.lock" "/dev/shm/.$PREFIX.leases" "/dev/shm/.$PREFIX.topics" "/dev/shm/.$PREFIX.key"
    find /dev/shm -maxdepth 1 -name ".$PREFIX.*" -delete 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

# Two descriptors per topic: as root, give the daemon the unit's LimitNOFILE (the shell's may be lower).
WRAP=""
prlimit --nofile=65536:65536 true 2>/dev/null && WRAP="prlimit --nofile=65536:65536"

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

start_daemon() { # $1: extra args
    rm -f "$SOCK"
    # shellcheck disable=SC2086
    $WRAP "$BIN/shmbusd" --config "$DIR/shmbus.toml" --socket "$SOCK" --shm-prefix "$PREFIX" $1 >>"$DIR/shmbusd.log" 2>&1 &
    PID=$!
    until "$BIN/shmbus" --socket "$SOCK" topics >/dev/null 2>&1; do
        kill -0 "$PID" 2>/dev/null || { echo "shmbusd exited; log:" >&2; tail -20 "$DIR/shmbusd.log" >&2; exit 1; }
        sleep 0.01
    done
}

stop_daemon() {
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
objects() { find /dev/shm -maxdepth 1 -name "$PREFIX.*" | wc -l; }
committed_kib() { # st_blocks are 512-byte units
    find /dev/shm -maxdepth 1 -name "$PREFIX.*" -printf '%b\n' | awk '{s += $1} END {printf "%d\n", s / 2}'
}

printf '| N | objects/topic | /dev/shm committed (per topic) | shmbusd RSS (+per topic) | descriptors | create rate | topics | stats --json | idle CPU | restart adopts |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for N in "${SIZES[@]}"; do
    start_daemon "-q"
    rss0=$(rss_kib)
    t0=$(now)
    if [ "$BATCH" = 1 ]; then
        seq 1 "$N" | sed 's/^/s/' | xargs -n 500 "$BIN/shmbus" --socket "$SOCK" -q create 2>"$DIR/create.err" ||
            { tail -3 "$DIR/create.err" >&2; exit 1; }
    else
        for i in $(seq 1 "$N"); do
            "$BIN/shmbus" --socket "$SOCK" -q create "s$i" 2>"$DIR/create.err" || { cat "$DIR/create.err" >&2; exit 1; }
        done
    fi
    tc=$(elapsed "$t0")
    rate=$(echo "$N / $tc" | bc)
    obj=$(objects)
    kib=$(committed_kib)
    rss1=$(rss_kib)
    fd=$(fds)
    t0=$(now)
    listed=$("$BIN/shmbus" --socket "$SOCK" topics | tail -n +2 | wc -l)
    tt=$(elapsed "$t0")
    t0=$(now)
    "$BIN/shmbus" --socket "$SOCK" stats --json >"$DIR/stats.json" || echo "stats failed" >&2
    ts=$(elapsed "$t0")
    stats_n=$(grep -c '"generation"' "$DIR/stats.json" || true)
    c0=$(cpu_ticks)
    sleep "$IDLE_SECS"
    c1=$(cpu_ticks)
    hz=$(getconf CLK_TCK)
    idle=$(echo "scale=1; ($c1 - $c0) * 100 / $hz / $IDLE_SECS" | bc)
    rss2=$(rss_kib)
    stop_daemon
    t0=$(now)
    start_daemon "-q --cleanup-on-exit"
    tr=$(elapsed "$t0")
    relisted=$("$BIN/shmbus" --socket "$SOCK" topics | tail -n +2 | wc -l)
    stop_daemon
    printf '| %d | %s | %s MiB (%s KiB) | %s MiB (+%s KiB; %s KiB after stats) | %s | %d in %.2f s (%d/s) | %.2f s (%d listed) | %.2f s (%d topics) | %s%% | %.2f s (%d listed) |\n' \
        "$N" "$(echo "scale=1; $obj / $N" | bc)" "$((kib / 1024))" "$((kib / N))" \
        "$((rss1 / 1024))" "$(((rss1 - rss0) / N))" "$(((rss2 - rss0) / N))" "$fd" \
        "$N" "$tc" "$rate" "$tt" "$listed" "$ts" "$stats_n" "$idle" "$tr" "$relisted"
    [ "$(objects)" -eq 0 ] || echo "scale.sh: objects left under $PREFIX" >&2
done
