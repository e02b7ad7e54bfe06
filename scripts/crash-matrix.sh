#!/usr/bin/env bash
# The crash matrix: runs botdb's load harness with an acknowledgement log (--ack-log), SIGKILLs it at a random
# point, then checks the database against the log with `botdb-admin verify` (every acknowledged write there,
# by key and content; no duplicate; integrity); N rounds, each on a freshly seeded database. With
# --kill-server (PostgreSQL on this machine), every other round first stops the server with `-m immediate`
# (a server crash) while the harness writes, then kills the harness and starts the server again.
#
# Usage: scripts/crash-matrix.sh [-n ROUNDS] [--database-url URL] [--kill-server] [--max-run SECONDS]
#   BOTDB_BIN_DIR: where botdb-loadtest and botdb-admin are (default target/release; build them with
#   cargo build --release --bin botdb-loadtest --bin botdb-admin).
# Prints one line per round and the totals; exits 1 if a write was lost, duplicated or wrong, or a round
# failed to run.
set -uo pipefail
cd "$(dirname "$0")/.."

rounds=5 url="" kill_server=0 max_run=8
while [ $# -gt 0 ]; do
  case $1 in
    -n) rounds=$2; shift 2 ;;
    --database-url) url=$2; shift 2 ;;
    --kill-server) kill_server=1; shift ;;
    --max-run) max_run=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
bin=${BOTDB_BIN_DIR:-target/release}
for b in botdb-loadtest botdb-admin; do
  [ -x "$bin/$b" ] || { echo "$bin/$b is missing: cargo build --release --bin $b" >&2; exit 2; }
done
if [ "$kill_server" = 1 ] && [[ "$url" != postgres* ]]; then
  echo "--kill-server needs a PostgreSQL --database-url" >&2; exit 2
fi
pg_cluster() { # action [mode]
  local v; v=$(ls /etc/postgresql)
  pg_ctlcluster --skip-systemctl-redirect ${2:+-m $2} "$v" main "$1"
}

work=$(mktemp -d -t botdb-crash.XXXXXX)
trap 'rm -rf "$work"' EXIT
total_checks=0 total_verified=0 total_lost=0 total_dup=0 total_wrong=0 total_torn=0 failed=0
for r in $(seq 1 "$rounds"); do
  dir=$work/round$r
  mkdir -p "$dir"
  args=(--compare false --ceiling false --warmup 0 --duration 3600 --seed "$r" --chats 50 --users 2000
        --ack-log "$dir/acks.jsonl" --json "$dir/report.json" --work-dir "$dir")
  if [ -n "$url" ]; then
    args+=(--database-url "$url")
    db_url="${url%/*}/botdb_loadtest_botdb"
  else
    db_url="sqlite://$dir/botdb.sqlite"
  fi
  "$bin/botdb-loadtest" "${args[@]}" >"$dir/harness.out" 2>&1 &
  pid=$!
  # Wait for the first acknowledged message (after seeding), then kill at a random point of the run.
  while [ "$( { wc -l <"$dir/acks.jsonl"; } 2>/dev/null || echo 0)" -lt 2 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "round $r: the harness ended before acknowledging anything:" >&2; tail -5 "$dir/harness.out" >&2
      failed=$((failed + 1)); continue 2
    fi
    sleep 0.05
  done
  sleep "$(awk -v s="$RANDOM" -v m="$max_run" 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * (m - 0.2) }')"
  server=""
  if [ "$kill_server" = 1 ] && [ $((r % 2)) = 0 ]; then
    pg_cluster stop immediate >/dev/null 2>&1 && server=" (server stopped -m immediate)"
    sleep 0.5
  fi
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ -n "$server" ]; then
    pg_cluster start >/dev/null 2>&1
    for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -q && break; sleep 0.5; done
  fi
  "$bin/botdb-admin" --database-url "$db_url" verify --ack-log "$dir/acks.jsonl" >"$dir/verify.json" 2>"$dir/verify.err"
  rc=$?
  if ! read -r checks verified lost dup wrong torn ok < <(python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
print(v["checks"], v["verified"], v["lost"], v["duplicated"], v["mismatched"], v["torn_lines"], v["ok"])' "$dir/verify.json" 2>/dev/null); then
    echo "round $r: verify failed (exit $rc): $(head -c 300 "$dir/verify.err")" >&2
    failed=$((failed + 1)); continue
  fi
  echo "round $r$server: $checks acknowledged writes checked, $verified verified, $lost lost, $dup duplicated, $wrong wrong, $torn torn lines, ok=$ok"
  if [ "$ok" != True ]; then
    python3 -c 'import json,sys; [print("  ", p) for p in json.load(open(sys.argv[1]))["problems"]]' "$dir/verify.json"
    cp -r "$dir" "${TMPDIR:-/tmp}/botdb-crash-failed-round$r" && echo "  kept in ${TMPDIR:-/tmp}/botdb-crash-failed-round$r"
  fi
  total_checks=$((total_checks + checks)) total_verified=$((total_verified + verified))
  total_lost=$((total_lost + lost)) total_dup=$((total_dup + dup)) total_wrong=$((total_wrong + wrong))
  total_torn=$((total_torn + torn))
done
echo "crash matrix: $rounds SIGKILLs, $total_checks acknowledged writes checked, $total_verified verified," \
  "$total_lost lost, $total_dup duplicated, $total_wrong wrong, $total_torn torn log lines, $failed rounds failed"
[ "$total_lost" = 0 ] && [ "$total_dup" = 0 ] && [ "$total_wrong" = 0 ] && [ "$failed" = 0 ]
