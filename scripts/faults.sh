#!/usr/bin/env bash
# Faults under load: botdb's load harness (botdb only, open loop) runs while a fault is injected for a few
# seconds, and again without it; prints per fault the errors, lost acknowledged writes, read and ack p99 and
# the seconds until the message rate recovered, beside the fault-free run.
#
# Usage: scripts/faults.sh [FAULT ...]   (default: all)
#   sqlite-lock   another process holds SQLite's write lock (BEGIN IMMEDIATE)
#   redis-freeze  the Redis server is stopped with SIGSTOP, then continued   (needs the machine's Redis)
#   redis-kill    the Redis server is shut down, then started again             (needs the machine's Redis)
#   pg-restart    PostgreSQL is stopped with -m immediate, then started again    (needs the machine's PostgreSQL)
#   disk-full     the SQLite files live on a 256 MiB tmpfs that a filler file fills, then is removed (needs root)
# Environment: RATE (messages/s, default 100), DURATION (s, default 12), FAULT_AT (s, default 4),
# FAULT_FOR (s, default 3), BOTDB_BIN_DIR (default target/release).
# The machine's services are assumed at their usual loopback addresses; this script restarts what it stops.
set -uo pipefail
cd "$(dirname "$0")/.."
rate=${RATE:-100} duration=${DURATION:-12} at=${FAULT_AT:-4} for=${FAULT_FOR:-3}
bin=${BOTDB_BIN_DIR:-target/release}
redis=redis://127.0.0.1:6379 pg=postgres://postgres@127.0.0.1:5432/test
[ -x "$bin/botdb-loadtest" ] || { echo "$bin/botdb-loadtest is missing (cargo build --release --bin botdb-loadtest)" >&2; exit 2; }
faults=("$@")
[ ${#faults[@]} -gt 0 ] || faults=(sqlite-lock redis-freeze redis-kill pg-restart disk-full)
work=$(mktemp -d -t botdb-faults.XXXXXX)
trap 'kill -CONT $(pidof redis-server) 2>/dev/null; umount "$work"/*/db 2>/dev/null; rm -rf "$work"' EXIT

redis_start() {
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis \
    --logfile /var/log/redis/ci.log >/dev/null
}
pg_cluster() { pg_ctlcluster --skip-systemctl-redirect ${2:+-m $2} "$(ls /etc/postgresql)" main "$1" >/dev/null 2>&1; }

inject() { # fault dir: runs the fault for $for seconds
  case $1 in
    sqlite-lock) python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None); c.execute("BEGIN IMMEDIATE"); time.sleep(float(sys.argv[2])); c.execute("ROLLBACK")' \
      "$2/botdb.sqlite" "$for" ;;
    redis-freeze) kill -STOP "$(pidof redis-server)"; sleep "$for"; kill -CONT "$(pidof redis-server)" ;;
    redis-kill) redis-cli -h 127.0.0.1 shutdown nosave >/dev/null 2>&1; sleep "$for"; redis_start ;;
    pg-restart) pg_cluster stop immediate; sleep "$for"; pg_cluster start ;;
    # Fills the database's file system (dd stops at ENOSPC); the ack log and the report live outside it.
    disk-full) dd if=/dev/zero of="$2/db/filler" bs=1M >/dev/null 2>&1; sleep "$for"; rm -f "$2/db/filler" ;;
  esac
}

run() { # fault with_fault(0/1) -> prints a summary line
  local fault=$1 inject_it=$2 dir=$work/$1-$2 args wd
  mkdir -p "$dir"
  wd=$dir
  if [ "$fault" = disk-full ]; then
    if [ "$(id -u)" != 0 ]; then echo "disk-full: needs root (mounts a tmpfs); skipped"; return; fi
    wd=$dir/db
    mkdir -p "$wd" && mount -t tmpfs -o size=256m tmpfs "$wd" || { echo "disk-full: cannot mount a tmpfs; skipped"; return; }
  fi
  args=(--compare false --ceiling false --rate "$rate" --duration "$duration" --warmup 1 --chats 100 --users 4000
        --json "$dir/report.json" --work-dir "$wd" --ack-log "$dir/acks.jsonl")
  case $fault in
    redis-*) args+=(--redis-url "$redis") ;;
    pg-restart) args+=(--database-url "$pg") ;;
  esac
  "$bin/botdb-loadtest" "${args[@]}" >"$dir/out" 2>&1 &
  local pid=$!
  if [ "$inject_it" = 1 ]; then
    # botdb's run starts (after seeding) when its ack log appears; the measured phase after a 1 s warm-up.
    while [ ! -e "$dir/acks.jsonl" ]; do sleep 0.05; done
    sleep $((at + 1))
    inject "$fault" "$dir"
  fi
  wait "$pid"
  local rc=$?
  [ "$wd" = "$dir" ] || umount "$wd"
  python3 - "$dir/report.json" "$fault" "$inject_it" "$rc" "$at" "$for" "$rate" <<'PY'
import json, sys
path, fault, injected, rc, at, dur, rate = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{fault:13} {'fault' if injected == '1' else 'no fault':8}: no report (exit {rc}): {e}")
    sys.exit(0)
s = r["systems"]["botdb"]
per_s = s["series"]["messages_per_second"]
end = int(at) + int(dur)
recovered = next((i - end for i, n in enumerate(per_s) if i >= end and n >= 0.9 * float(rate)), None)
print(f"{fault:13} {'fault' if injected == '1' else 'no fault':8}: exit {rc}, {s['messages_per_s']:.0f} messages/s, "
      f"errors {s['errors']}, lost {s['lost_writes']}, integrity {s['integrity_ok']}, "
      f"read p99 {s['read_latency_us']['p99'] / 1e3:.1f} ms, ack p99 {s['write_ack_latency_us']['p99'] / 1e3:.1f} ms, "
      + (f"rate back to 90 % {recovered} s after the fault" if injected == '1' else "")
      + (f", first error: {s.get('first_error')}" if s.get('first_error') else ""))
PY
}

for f in "${faults[@]}"; do
  run "$f" 0
  run "$f" 1
done
