#!/usr/bin/env bash
# Runs the performance scenarios of docs/performance.md side by side for Causerie and the gorilla/websocket
# chat example, on this machine: each server pinned to CPU 0, the load tool to CPU 1. Prints one JSON line
# per run with the load tool's report plus the server's CPU seconds and memory.
#
#   bash app/bench/scenarios.sh [S1|S2|S2-overload|S3|S3-100k|S4|S5|S1-deflate ...]
#                                                           (default: S1 S2 S2-overload S3 S4)
#   BASELINE=<git revision> bash app/bench/scenarios.sh S1 S2   also runs Causerie as built at that revision
#                                                              (in S1, S2, S2-wsload, S3 and S5-spread)
#   CAUSERIE_ENV="WS_WRITE_DELAY=0" bash app/bench/scenarios.sh S2   settings for every Causerie server
#
# S2-wsload runs S2's closed loop under the second load tool, app/bench/wsload (Node.js, needs node and npm).
#
# S1-login-storm runs S1 beside a storm of wrong logins (with BASELINE, the earlier build too).
# S1-deflate runs S1 with WS_COMPRESSION=1 and clients that offer permessage-deflate, beside S1 without.
#
# Needs taskset (util-linux) and about two minutes per scenario. S5 (several nodes) also needs psql, and
# PostgreSQL and Redis at BENCH_DATABASE_URL and BENCH_REDIS_URL (default: this machine's, as in .ci/run);
# each run gets a schema and a key prefix of its own, dropped afterwards. BENCH_REDIS_URL may name a Redis
# Cluster (redis+cluster://host:port?addr=host2:port2), as docs/performance.md's cluster run did.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/causerie" main.go
if [ -n "${BASELINE:-}" ]; then
  git worktree add -q --detach "$work/baseline-src" "$BASELINE"
  (cd "$work/baseline-src" && go build -o "$work/causerie-baseline" main.go)
  git worktree remove --force "$work/baseline-src"
fi
GOBIN="$work" go install github.com/gorilla/websocket/examples/chat@v1.5.3
ulimit -n "$(ulimit -Hn)"

server_pid=""
start_causerie() { # extra environment as arguments; BIN picks another build
  mkdir -p "$work/data"; rm -rf "$work/data"/*
  env HOST= PORT=18181 DATA_DIR="$work/data" LOG_LEVEL=error JWT_SECRET=benchmark-secret-of-at-least-32-bytes \
    MAX_CONNS_PER_USER=0 MAX_CONNS_PER_IP=0 REGISTRATIONS_PER_IP=0 ROOMS_PER_HOUR=0 ${CAUSERIE_ENV:-} "$@" \
    taskset -c 0 "${BIN:-$work/causerie}" >"$work/server.log" 2>&1 &
  server_pid=$!
  url=http://127.0.0.1:18181
  wait_port 18181
}
start_gorilla() {
  (cd "$work" && taskset -c 0 ./chat -addr 127.0.0.1:18080 >"$work/server.log" 2>&1) &
  sleep 0.5
  server_pid=$(pgrep -f "chat -addr 127.0.0.1:18080" | head -1)
  url=http://127.0.0.1:18080
  wait_port 18080
}
wait_port() { for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; sleep 0.5; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }

# Several nodes of one deployment, all on CPU 0 like the single server of the other scenarios.
db_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
node_pids=()
node_urls=()
schema=""
start_nodes() { # N
  schema="bench_$$_$1"
  psql -q "$db_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
  node_pids=(); node_urls=()
  local sep='?'; [[ $db_url == *\?* ]] && sep='&'
  for i in $(seq "$1"); do
    local port=$((18180 + i))
    env HOST= PORT=$port DATA_DIR="$work/data" LOG_LEVEL=error JWT_SECRET=benchmark-secret-of-at-least-32-bytes \
      RATE_LIMIT=0 MAX_CONNS_PER_USER=0 MAX_CONNS_PER_IP=0 REGISTRATIONS_PER_IP=0 ROOMS_PER_HOUR=0 NODE_ID="node-$i" REDIS_URL="$redis_url" REDIS_PREFIX="$schema:" \
      DATABASE_URL="$db_url${sep}search_path=$schema" taskset -c 0 "${BIN:-$work/causerie}" >"$work/node-$i.log" 2>&1 &
    node_pids+=($!)
    node_urls+=(-url "http://127.0.0.1:$port")
    wait_port $port
  done
}
stop_nodes() {
  kill "${node_pids[@]}" 2>/dev/null || true; wait "${node_pids[@]}" 2>/dev/null || true
  psql -q "$db_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
  sleep 0.5
}
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }

# measure_nodes NAME LOAD-ARGS...: the load tool over every node; the nodes' CPU seconds in all, and the
# room events they decoded for rooms they have no connection in (causerie_bus_unserved_events_total).
measure_nodes() {
  local name=$1; shift
  local t0 t1 load unserved
  t0=$(cpu_ticks "${node_pids[@]}")
  load=$(taskset -c 1 "$work/causerie" bench "${node_urls[@]}" -json "$@" || true)
  t1=$(cpu_ticks "${node_pids[@]}")
  unserved=$(for ((k = 1; k < ${#node_urls[@]}; k += 2)); do curl -s "${node_urls[$k]}/metrics"; done |
    awk '$1 == "causerie_bus_unserved_events_total" {s += $2} END {printf "%d", s}')
  echo "{\"scenario\":\"$name\",\"nodes_cpu_s\":$(echo "($t1 - $t0) / $(getconf CLK_TCK)" | bc -l | xargs printf '%.2f'),\"unserved_events\":$unserved,\"load\":$load}"
}

# measure NAME LOAD-ARGS...: runs the load tool against $url; it reports the server's CPU time while
# sending and its memory at the end.
measure() {
  local name=$1; shift
  echo "{\"scenario\":\"$name\",\"load\":$(taskset -c 1 "$work/causerie" bench -url "$url" -json -server-pid "$server_pid" "$@" || true)}"
}

# measure_idle NAME CONNS LOAD-ARGS...: RSS per connection while CONNS idle connections are open.
measure_idle() {
  local name=$1 conns=$2; shift 2
  local rss0 rss1
  rss0=$(rss_kib)
  taskset -c 1 "$work/causerie" bench -url "$url" -json -conns "$conns" -senders 0 -duration 20s "$@" >"$work/idle.json" &
  local load=$!
  sleep 15
  rss1=$(rss_kib)
  wait $load || true
  echo "{\"scenario\":\"$name\",\"conns\":$conns,\"server_rss_kib_before\":$rss0,\"server_rss_kib_during\":$rss1,\"kib_per_conn\":$(echo "($rss1 - $rss0) / $conns" | bc -l | xargs printf '%.2f'),\"load\":$(cat "$work/idle.json")}"
}

for s in "${@:-S1 S2 S2-overload S3 S4}"; do
  for scenario in $s; do
    case $scenario in
    S1) # fan-out: 1000 connections in one room, one sender at 100 messages/s
      start_gorilla; measure S1-gorilla -proto gorilla -conns 1000 -senders 1 -rate 100 -duration 15s -ramp 2s; stop_server
      start_causerie RATE_LIMIT=0; measure S1-causerie -conns 1000 -senders 1 -rate 100 -duration 15s -ramp 2s; stop_server
      if [ -n "${BASELINE:-}" ]; then
        BIN="$work/causerie-baseline" start_causerie RATE_LIMIT=0
        measure S1-causerie-baseline -conns 1000 -senders 1 -rate 100 -duration 15s -ramp 2s; stop_server
      fi ;;
    S2) # saturation, closed loop: 10 senders, 3 messages each not yet delivered everywhere
      start_gorilla; measure S2-gorilla -proto gorilla -conns 1000 -senders 10 -inflight 3 -duration 15s -ramp 2s; stop_server
      start_causerie RATE_LIMIT=0; measure S2-causerie -conns 1000 -senders 10 -inflight 3 -duration 15s -ramp 2s; stop_server
      if [ -n "${BASELINE:-}" ]; then
        BIN="$work/causerie-baseline" start_causerie RATE_LIMIT=0
        measure S2-causerie-baseline -conns 1000 -senders 10 -inflight 3 -duration 15s -ramp 2s; stop_server
      fi ;;
    S2-wsload) # S2's closed loop under app/bench/wsload
      [ -d app/bench/wsload/node_modules ] || (cd app/bench/wsload && npm ci --silent --no-audit --no-fund)
      wsload() { echo "{\"scenario\":\"$1\",\"load\":$(taskset -c 1 node app/bench/wsload/load.js --url "$url" --server-pid "$server_pid" --proto "$2" || true)}"; }
      start_gorilla; wsload S2-wsload-gorilla gorilla; stop_server
      start_causerie RATE_LIMIT=0; wsload S2-wsload-causerie causerie; stop_server
      if [ -n "${BASELINE:-}" ]; then
        BIN="$work/causerie-baseline" start_causerie RATE_LIMIT=0; wsload S2-wsload-causerie-baseline causerie; stop_server
      fi ;;
    S1-login-storm) # S1 while 16 goroutines post wrong logins, GET /api/me timed every 50 ms: with the login
      # limits, with the bcrypt slots alone (LOGIN_FAILURES=0), without the storm, and the BASELINE build
      s1="-conns 1000 -senders 1 -rate 100 -duration 15s -ramp 2s"
      start_causerie RATE_LIMIT=0; measure S1-no-storm $s1 -login-storm 0; stop_server
      start_causerie RATE_LIMIT=0; measure S1-login-storm $s1 -login-storm 16; stop_server
      start_causerie RATE_LIMIT=0 LOGIN_FAILURES=0; measure S1-login-storm-slots-only $s1 -login-storm 16; stop_server
      if [ -n "${BASELINE:-}" ]; then
        BIN="$work/causerie-baseline" start_causerie RATE_LIMIT=0
        measure S1-login-storm-baseline $s1 -login-storm 16; stop_server
      fi ;;
    S1-deflate) # S1 with permessage-deflate negotiated on every connection, beside S1 without; with S1's
      # 100-byte texts (frames under the 256 bytes the server compresses) and with 1000-byte texts
      for size in 100 1000; do
        start_causerie RATE_LIMIT=0
        measure "S1-causerie-size-$size" -size $size -conns 1000 -senders 1 -rate 100 -duration 15s -ramp 2s; stop_server
        start_causerie RATE_LIMIT=0 WS_COMPRESSION=1
        measure "S1-causerie-deflate-size-$size" -compress -size $size -conns 1000 -senders 1 -rate 100 -duration 15s -ramp 2s; stop_server
      done ;;
    S2-overload) # open loop far past the machine, with the default rate limit
      start_gorilla; measure S2-overload-gorilla -proto gorilla -conns 1000 -senders 10 -rate 2000 -duration 15s -ramp 2s; stop_server
      start_causerie; measure S2-overload-causerie -conns 1000 -senders 10 -rate 2000 -duration 15s -ramp 2s; stop_server
      # the same, leaving out the first 3 s: the burst of RATE_BURST messages per sender that the limiter allows at once
      start_causerie; measure S2-overload-causerie-steady -conns 1000 -senders 10 -rate 2000 -duration 15s -ramp 2s -warmup 3s; stop_server ;;
    S3) # memory: 10,000 idle connections
      start_gorilla; measure_idle S3-gorilla 10000 -proto gorilla -ramp 5s; stop_server
      start_causerie; measure_idle S3-causerie 10000 -ramp 5s -users 10; stop_server
      if [ -n "${BASELINE:-}" ]; then
        BIN="$work/causerie-baseline" start_causerie; measure_idle S3-causerie-baseline 10000 -ramp 5s -users 10; stop_server
      fi ;;
    S3-100k) # 100,000 connections (CONNS to change it) over four loopback addresses: see docs/performance.md
      # for the limits this needs
      start_causerie; measure_idle S3-100k-causerie "${CONNS:-100000}" -ramp 60s -dialers 500 \
        -url http://127.0.0.2:18181 -url http://127.0.0.3:18181 -url http://127.0.0.4:18181; stop_server ;;
    S4) # history: 10,000 messages/s into SQLite, 50 senders at 200/s, each in its own room with one reader
      start_causerie RATE_LIMIT=0; measure S4-causerie -conns 100 -rooms 50 -senders 50 -rate 200 -duration 15s; stop_server ;;
    S5) # several nodes over PostgreSQL and Redis: S2's load spread over NODES (default "1 2 3") nodes
      for n in ${NODES:-1 2 3}; do
        start_nodes "$n"; measure_nodes "S5-$n-nodes" -conns 1000 -senders 10 -inflight 3 -duration 15s -ramp 2s; stop_nodes
      done ;;
    S5-spread) # S5 with 6 rooms, each served by one node (connection i goes to node i mod N and room i mod 6)
      for n in ${NODES:-1 2 3}; do
        start_nodes "$n"; measure_nodes "S5-spread-$n-nodes" -conns 1002 -senders 12 -rooms 6 -inflight 3 -duration 15s -ramp 2s; stop_nodes
        if [ -n "${BASELINE:-}" ]; then
          BIN="$work/causerie-baseline" start_nodes "$n"
          measure_nodes "S5-spread-$n-nodes-baseline" -conns 1002 -senders 12 -rooms 6 -inflight 3 -duration 15s -ramp 2s; stop_nodes
        fi
      done ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
done
