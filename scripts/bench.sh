#!/usr/bin/env bash
# make bench: the benchmark suite. Go benchmarks of the hot paths, then fleet-scale load with
# fleetsim against a real fleet-hub on loopback, a Mosquitto reference run, and the agent's idle
# footprint. Prints each figure with its target; raw output and JSON land in var/bench/RUN/.
# Speed is never asserted in make test; this is where it is measured. Record results in
# docs/benchmarks.md. Knobs: BENCH_AGENTS_MAX (default 20000), BENCH_SECONDS (default 20),
# BENCH_SKIP (space-separated scenario names to skip: go shell ingest latency churn drain drain1000 scale mosquitto idle
# cluster bundles). The cluster scenarios run fleet-hub replicas on a PostgreSQL of their own (Debian's,
# in var/bench/pg, fsync on, as the postgres user when run as root), after the SQLite ones, in the
# same run, so their ratio to the SQLite hub is like for like. BENCH_BUNDLE_AGENTS (default 1000)
# and BENCH_BUNDLE_MB (default 5) size the bundle rollout.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
RUN=var/bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
SECS=${BENCH_SECONDS:-20}
MAXAG=${BENCH_AGENTS_MAX:-20000}
SKIP=" ${BENCH_SKIP:-} "
skip() { [[ "$SKIP" == *" $1 "* ]]; }
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true
# Each connected agent costs the hub one descriptor (and fleetsim one): stay under the limit.
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$MAXAG" -gt $((NOFILE - 1000)) ]; then
  echo "open-file limit is $NOFILE (cannot be raised here): scale scenario uses $((NOFILE - 1000)) agents instead of $MAXAG"
  MAXAG=$((NOFILE - 1000))
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
HTTP=127.0.0.1:$(free_port); MQTT=127.0.0.1:$(free_port)
HUBDIR=var/bench/hub           # kept between runs, with var/bench/sim*: identities are enrolled once
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
json() { sed -n "s/.*\"$2\": *\([-0-9.e+]*\).*/\1/p" "$1" | head -1; }

HUBPID=
start_hub() {
  "$BIN/fleet-hub" --data "$HUBDIR" --http-addr "$HTTP" --mqtt-addr "$MQTT" --log-level warn >>"$RUN/hub.out" 2>>"$RUN/hub.log" &
  HUBPID=$!
  for _ in $(seq 1 200); do curl -fsS --cacert "$HUBDIR/ca/ca.crt" "https://$HTTP/healthz" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "hub did not start" >&2; cat "$RUN/hub.log" >&2; exit 1
}
stop_hub() { [ -n "$HUBPID" ] && kill "$HUBPID" 2>/dev/null && wait "$HUBPID" 2>/dev/null || true; HUBPID=; }
MOSQ=
cleanup() {
  stop_hub; stop_replicas; [ -n "$MOSQ" ] && kill "$MOSQ" 2>/dev/null || true
  [ -n "${PGPID:-}" ] && kill -INT "$PGPID" 2>/dev/null && wait "$PGPID" 2>/dev/null || true
  jobs -p | xargs -r kill 2>/dev/null || true
}
trap cleanup EXIT

# Hub replicas on PostgreSQL (the cluster scenarios).
RPIDS=()
stop_replicas() { for p in "${RPIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done; RPIDS=(); }
# start_replicas N: replicas r0..rN-1 on the bench database, each healthy before it returns.
start_replicas() {
  local i
  for ((i = 0; i < $1; i++)); do
    "$BIN/fleet-hub" --data "$CLDIR" --store "$PGURL" --replica "r$i" --http-addr "${RHTTP[$i]}" --mqtt-addr "${RMQTT[$i]}" \
      --public-url "http://${RHTTP[0]}" --log-level warn >>"$RUN/r$i.out" 2>>"$RUN/r$i.log" &
    RPIDS+=($!)
  done
  for ((i = 0; i < $1; i++)); do
    for _ in $(seq 1 200); do curl -fsS "http://${RHTTP[$i]}/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
    curl -fsS "http://${RHTTP[$i]}/healthz" >/dev/null || { echo "replica r$i did not start" >&2; cat "$RUN/r$i.log" >&2; exit 1; }
  done
}
# pg_ticks: CPU ticks of PostgreSQL, its postmaster and every backend.
pg_ticks() { local t=0 p; for p in $PGPID $(ps -o pid= --ppid "$PGPID"); do t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
replica_ticks() { local t=0 p; for p in "${RPIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
us_per() { awk -v t="$1" -v n="$2" 'BEGIN{ if (n > 0) printf "%.1f us", t*10000/n; else print "n/a"}'; }

rows=()
row() { rows+=("$(printf '%-62s | %-26s | %s' "$1" "$2" "$3")"); echo "  -> $1: $3 (target $2)"; }

{
  echo "date:    $(date -u +%FT%TZ)"
  echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} | tee "$RUN/machine.txt"

if ! skip go; then
  echo "== Go benchmarks"
  go test -run '^$' -benchtime 1s -benchmem \
    -bench 'BenchmarkDecodeBatch|BenchmarkCheck|BenchmarkCommitBatches|BenchmarkAppend|BenchmarkPendingAck|BenchmarkSplit|BenchmarkDecodeText|BenchmarkReadCardPty|BenchmarkIngest|BenchmarkRefreshGrant|BenchmarkUserinfo|BenchmarkDiscoveryJWKS|BenchmarkPasswordLogin|BenchmarkPasskeyLogin|BenchmarkPhoneCodeVerify|BenchmarkLocalAPIRoundTrip|BenchmarkCatalogRead' \
    ./pkg/wire ./pkg/strictjson ./hub/store/sqlite ./hub/store/postgres ./agent/outbox ./drivers/idcard ./hub/ingest ./hub/identity ./agent/localapi ./hub/httpapi 2>&1 | grep -E '^(Benchmark|ok|FAIL)' | tee "$RUN/go.txt"
  v=$(grep -E '^BenchmarkAppendBatch' "$RUN/go.txt" | grep -o '[0-9.]* records/s' | head -1 || true)
  row "agent outbox enqueue, synchronous=FULL (AppendBatch)" ">= 5,000 records/s" "${v:-see go.txt}"
  v=$(grep -E '^BenchmarkLocalAPIRoundTrip' "$RUN/go.txt" | grep -o '[0-9.]* p99-ms' | head -1 || true)
  row "local device API round trip p99 (Common.Status, loopback WebSocket)" "<= 5 ms" "${v:-see go.txt}"
  v=$(grep -E '^BenchmarkCatalogRead' "$RUN/go.txt" | grep -o '[0-9.]* req/s' | head -1 || true)
  row "catalog read, a channel's 50 listed apps (public, loopback HTTP)" ">= 10,000 requests/s" "${v:-see go.txt}"
fi

if ! skip shell; then
  echo "== kiosk shell: card tap -> logged in (real hub on loopback), agent RSS over shell sessions"
  go test -run '^$' -bench 'BenchmarkCardTapLogin|BenchmarkShellSession' -benchtime 30x ./e2e/ 2>&1 \
    | grep -E '^(Benchmark|ok|FAIL)' | tee "$RUN/shell.txt"
  v=$(grep -E '^BenchmarkCardTapLogin' "$RUN/shell.txt" | grep -o '[0-9.]* p99-ms' | head -1 || true)
  row "card tap -> logged in p99 (device time excluded)" "<= 300 ms" "${v:-see shell.txt}"
  v=$(grep -E '^BenchmarkShellSession' "$RUN/shell.txt" | grep -o '[0-9.]* agent-rss-MiB' | head -1 || true)
  row "agent RSS after 30 shell sessions (login, print, receipt, wipe)" "< 60 MiB" "${v:-see shell.txt}"
fi

HUBDIR_FRESH=0
[ -d "$HUBDIR" ] || HUBDIR_FRESH=1
start_hub
TOKEN=$(cat "$HUBDIR/bootstrap-token")
sim() { "$BIN/fleetsim" --hub "https://$HTTP" --ca "$HUBDIR/ca/ca.crt" --mqtt "$MQTT" --token "$TOKEN" "$@"; }

if ! skip ingest; then
  echo "== sustained ingest: 1,000 agents, 60 records/s each offered, 200 B, ${SECS}s"
  t0=$(cpu_ticks "$HUBPID")
  sim --state var/bench/sim --agents 1000 --rate 60 --size 200 --duration "${SECS}s" --json "$RUN/ingest.json" | tee "$RUN/ingest.txt"
  t1=$(cpu_ticks "$HUBPID")
  acked=$(json "$RUN/ingest.json" acked)
  row "sustained persisted ingest, 1,000 agents, 200 B" ">= 50,000 records/s" "$(json "$RUN/ingest.json" ackedPerSecond) records/s"
  row "hub CPU per persisted record" "reported" "$(awk -v t=$((t1-t0)) -v n="$acked" 'BEGIN{printf "%.1f us", t*10000/n}')"
fi

if ! skip latency; then
  echo "== latency at 10,000 records/s offered (1,000 agents x 10/s)"
  sim --state var/bench/sim --agents 1000 --rate 10 --duration "${SECS}s" --json "$RUN/latency.json" | tee "$RUN/latency.txt"
  row "latency enqueue -> ack at 10,000 records/s" "p99 <= 250 ms" "p99 $(json "$RUN/latency.json" latencyP99Ms) ms"
fi

if ! skip churn; then
  echo "== churn: 1,000 agents x 10 records/s, 20 connections cut per second, 10% offline for 10 s each"
  sim --state var/bench/sim --agents 1000 --rate 10 --heartbeat 5s --duration "${SECS}s" --churn 20 --offline-fraction 0.1 --offline-for 10s \
      --json "$RUN/churn.json" | tee "$RUN/churn.txt"
  row "churn and offline: records acked / appended (unacked)" "all, 0 unacked" "$(json "$RUN/churn.json" acked) / $(json "$RUN/churn.json" appended) ($(json "$RUN/churn.json" unacked))"
  row "  connections cut; kiosks offline; drain after load" "reported" "$(json "$RUN/churn.json" cuts); $(json "$RUN/churn.json" offlineKiosks); $(json "$RUN/churn.json" drainSeconds) s"
  row "  latency enqueue -> ack under churn" "reported" "p50 $(json "$RUN/churn.json" latencyP50Ms) ms, p99 $(json "$RUN/churn.json" latencyP99Ms) ms"
fi

if ! skip drain; then
  echo "== drain: one agent with 10,000 buffered records"
  sim --state var/bench/sim --agents 1 --prefill 10000 --duration 0 --json "$RUN/drain1.json" | tee "$RUN/drain1.txt"
  row "drain: one agent, 10,000 buffered" "<= 5 s" "$(json "$RUN/drain1.json" drainSeconds) s"
fi

if ! skip drain1000; then
  echo "== drain: 1,000 agents x 1,000 buffered while 1,000 others heartbeat every second"
  sim --state var/bench/sim-hb --agents 1000 --rate 0 --heartbeat 1s --duration 90s --json "$RUN/heartbeat.json" >"$RUN/heartbeat.txt" 2>&1 &
  HB=$!
  sleep 8
  sim --state var/bench/sim --agents 1000 --prefill 1000 --duration 0 --json "$RUN/drain1000.json" | tee "$RUN/drain1000.txt"
  kill -INT $HB 2>/dev/null || true; wait $HB 2>/dev/null || true
  row "drain: 1,000 agents x 1,000 buffered" "<= 60 s" "$(json "$RUN/drain1000.json" drainSeconds) s"
  row "  heartbeat p99 meanwhile" "< 1 s" "$(json "$RUN/heartbeat.json" heartbeatP99Ms) ms"
fi

if ! skip scale; then
  echo "== $MAXAG concurrent agents, then a reconnect storm (hub kill -9 and restart)"
  stop_hub; start_hub  # a fresh process, so the baseline is not the heap of earlier scenarios
  sleep 2
  base=$(rss_kib "$HUBPID")
  rm -f "$RUN/storm.signal"
  sim --state var/bench/sim-scale --agents "$MAXAG" --rate 0 --prefill 1 --heartbeat 60s --duration 5s --connect-concurrency 256 \
      --storm-signal "$RUN/storm.signal" --json "$RUN/scale.json" >"$RUN/scale.txt" 2>&1 &
  SIM=$!
  while [ ! -f "$RUN/storm.signal" ] && kill -0 $SIM 2>/dev/null; do sleep 0.5; done
  sleep 3
  before=$(rss_kib "$HUBPID")
  row "hub RSS per connected agent" "<= 32 KiB" "$(( (before - base) / MAXAG )) KiB (RSS $((before/1024)) MiB)"
  kill -9 "$HUBPID"; wait "$HUBPID" 2>/dev/null || true
  start_hub
  wait $SIM || true
  cat "$RUN/scale.txt"
  after=$(rss_kib "$HUBPID")
  row "concurrent connected agents on one hub" "20,000" "$(json "$RUN/scale.json" connected) of $MAXAG connected in $(json "$RUN/scale.json" connectSeconds) s"
  row "reconnect storm: all reconnected and resynced" "<= 60 s" "$(json "$RUN/scale.json" stormSeconds) s ($(json "$RUN/scale.json" stormResynced) of $MAXAG)"
  row "  hub RSS after storm / before" "<= 1.2x" "$(awk -v a="$after" -v b="$before" 'BEGIN{printf "%.2fx (%d MiB / %d MiB)", a/b, a/1024, b/1024}')"
fi

if ! skip mosquitto && command -v mosquitto >/dev/null; then
  echo "== reference: Mosquitto QoS1 fan-in, same generator"
  MP=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' "$MP" >"$RUN/mosquitto.conf"
  mosquitto -c "$RUN/mosquitto.conf" >"$RUN/mosquitto.log" 2>&1 &
  MOSQ=$!
  sleep 0.5
  "$BIN/fleetsim" mqtt --broker "127.0.0.1:$MP" --clients 1000 --batch 100 --size 200 --duration "${SECS}s" --json "$RUN/mosquitto.json" | tee "$RUN/mosquitto.txt"
  kill $MOSQ; wait $MOSQ 2>/dev/null || true; MOSQ=
  m=$(json "$RUN/mosquitto.json" recordsPerSecond); h=$(json "$RUN/ingest.json" ackedPerSecond 2>/dev/null || echo 0)
  row "reference: Mosquitto QoS1 fan-in (no persistence, no TLS)" "reported" "$m records/s; hub/mosquitto = $(awk -v h="${h:-0}" -v m="$m" 'BEGIN{ if (m>0) printf "%.2f", h/m; else print "n/a"}')"
fi

if ! skip bundles; then
  NB=${BENCH_BUNDLE_AGENTS:-1000}; MB=${BENCH_BUNDLE_MB:-5}
  echo "== bundle rollout: $NB simulated kiosks take a $MB MB signed bundle in one wave"
  stop_hub
  MAINHUB=$HUBDIR; HUBDIR=var/bench/hub-bundles; rm -rf "$HUBDIR" var/bench/sim-bundles var/bench/keys-bundles
  start_hub
  fc() { KF_HUB="https://$HTTP" KF_CA="$HUBDIR/ca/ca.crt" KF_TOKEN_FILE="$HUBDIR/bootstrap-token" "$BIN/fleetctl" "$@"; }
  B=$RUN/bundle; mkdir -p "$B/src"
  printf '{"app":"bench-app","version":"1.0.0","entry":"index.html","services":["Printer"]}\n' >"$B/src/manifest.json"
  printf '<!doctype html><title>bench</title>\n' >"$B/src/index.html"
  head -c $((MB * 1000000)) /dev/urandom >"$B/src/assets.bin"
  tar -czf "$B/bench-app-1.0.0.tar.gz" -C "$B/src" manifest.json index.html assets.bin
  fc departments create --id bench --name Bench >/dev/null
  fc apps create --id bench-app --department bench --kind kiosk-bundle --name "Bench app" >/dev/null
  fc apps versions create bench-app 1.0.0 >/dev/null
  fc apps versions upload bench-app 1.0.0 "$B/bench-app-1.0.0.tar.gz" >/dev/null
  fc apps submit bench-app 1.0.0 >/dev/null; fc apps approve bench-app 1.0.0 >/dev/null
  fc keys generate --dir var/bench/keys-bundles >/dev/null; fc keys init --dir var/bench/keys-bundles >/dev/null
  fc keys sign-bundle bench-app 1.0.0 --dir var/bench/keys-bundles >/dev/null
  fc apps publish bench-app 1.0.0 --channel kiosk >/dev/null
  "$BIN/fleetsim" --hub "https://$HTTP" --ca "$HUBDIR/ca/ca.crt" --mqtt "$MQTT" --token "$(cat "$HUBDIR/bootstrap-token")" --state var/bench/sim-bundles \
      --agents "$NB" --rate 0 --duration 30m --take-bundles --json "$RUN/bundles-sim.json" >"$RUN/bundles-sim.txt" 2>&1 &
  SIM=$!
  for _ in $(seq 1 600); do
    kill -0 $SIM 2>/dev/null || { echo "fleetsim stopped:" >&2; cat "$RUN/bundles-sim.txt" >&2; exit 1; }
    n=$(fc devices list --status online -o json | grep -c '"siteId"' || true)
    [ "$n" -ge "$NB" ] && break; sleep 1
  done
  c0=$(cpu_ticks "$HUBPID"); t0=$(date +%s.%N)
  ro=$(fc rollouts create --app bench-app --version 1.0.0 --waves 100 --soak 0s --min-done 1000000 -o json | sed -n 's/^  "id": "\(.*\)",/\1/p')
  for _ in $(seq 1 1800); do
    fc rollouts show "$ro" -o json >"$RUN/bundles-rollout.json"
    up=$(sed -n '/"totals"/,/}/s/.*"updated": \([0-9]*\).*/\1/p' "$RUN/bundles-rollout.json" | head -1)
    [ "${up:-0}" -ge "$NB" ] && break; sleep 0.5
  done
  t1=$(date +%s.%N); c1=$(cpu_ticks "$HUBPID")
  fc keys status -o json >"$RUN/bundles-served.json"
  kill -INT $SIM 2>/dev/null || true; wait $SIM 2>/dev/null || true
  row "bundle rollout: $NB kiosks take a $MB MB bundle, time to 100%" "reported" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f s", b-a}') (${up:-0} of $NB updated)"
  row "  hub CPU during the rollout" "reported" "$(awk -v t=$((c1-c0)) -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f CPU-s (%.0f%% of one core)", t/100, t/(b-a)}')"
  row "  bytes served; target requests from memory / from the store" "store reads = 1" "$(json "$RUN/bundles-served.json" targetBytes) B; $(json "$RUN/bundles-served.json" cacheHits) / $(json "$RUN/bundles-served.json" cacheMisses)"
  stop_hub; HUBDIR=$MAINHUB; start_hub
fi

if ! skip idle; then
  echo "== agent idle footprint (30 s)"
  AD=$(mktemp -d)
  cp var/bench/sim/kiosk-00000/* "$AD"/
  "$BIN/kiosk-agent" run --data "$AD" --log-level warn 2>"$RUN/agent-idle.log" &
  AP=$!
  sleep 5; c0=$(cpu_ticks $AP); sleep 30; c1=$(cpu_ticks $AP)
  row "agent idle RSS" "< 30 MiB" "$(( $(rss_kib $AP) / 1024 )) MiB"
  row "agent idle CPU" "< 1%" "$(awk -v t=$((c1-c0)) 'BEGIN{printf "%.2f%%", t/30}')"
  kill $AP; wait $AP 2>/dev/null || true; rm -rf "$AD"
fi

stop_hub

if ! skip cluster; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ ! -x "$PGBIN/postgres" ]; then
    echo "== cluster: skipped, no PostgreSQL (apt-get install postgresql)"
  else
    echo "== cluster: fleet-hub replicas on PostgreSQL (fsync on), the same loads as the SQLite hub above"
    PGDATA=var/bench/pg CLDIR=var/bench/cluster
    AS_PG=()
    mkdir -p "$PGDATA"
    if [ "$(id -u)" = 0 ]; then AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --); chown postgres: "$PGDATA"; chmod 700 "$PGDATA"; fi
    [ -f "$PGDATA/PG_VERSION" ] || "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U kioskfleet --auth=trust -E UTF8 --locale=C >"$RUN/initdb.log"
    PGPORT=$(free_port)
    "${AS_PG[@]}" "$PGBIN/postgres" -D "$PGDATA" -p "$PGPORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
      -c max_connections=200 >"$RUN/postgres.log" 2>&1 &
    PGPID=$!
    for _ in $(seq 1 200); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 0.05; done
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U kioskfleet kioskfleet 2>/dev/null || true
    PGURL="postgres://kioskfleet@127.0.0.1:$PGPORT/kioskfleet?sslmode=disable"
    RHTTP=(127.0.0.1:$(free_port) 127.0.0.1:$(free_port) 127.0.0.1:$(free_port))
    RMQTT=(127.0.0.1:$(free_port) 127.0.0.1:$(free_port) 127.0.0.1:$(free_port))
    [ -f "$CLDIR/identity.secret" ] || "$BIN/fleet-hub" init --data "$CLDIR" --store "$PGURL" --public-url "http://${RHTTP[0]}" --log-level warn >"$RUN/init.out"
    CTOKEN=$(cat "$CLDIR/bootstrap-token")
    csim() { "$BIN/fleetsim" --hub "http://${RHTTP[0]}" --token "$CTOKEN" --state var/bench/sim-pg "$@"; }
    sqlite_rate=$(json "$RUN/ingest.json" ackedPerSecond 2>/dev/null || true)

    # One replica: the same load as the SQLite hub's sustained ingest.
    start_replicas 1
    t0=$(replica_ticks); p0=$(pg_ticks)
    csim --agents 1000 --rate 60 --size 200 --duration "${SECS}s" --mqtt "${RMQTT[0]}" --json "$RUN/pg1.json" | tee "$RUN/pg1.txt"
    t1=$(replica_ticks); p1=$(pg_ticks)
    acked=$(json "$RUN/pg1.json" acked); pg1=$(json "$RUN/pg1.json" ackedPerSecond)
    row "durable ingest, PostgreSQL, 1 replica, 1,000 agents, 200 B" ">= 0.6x the SQLite hub" \
      "$pg1 records/s = $(awk -v a="$pg1" -v b="${sqlite_rate:-0}" 'BEGIN{ if (b > 0) printf "%.2fx", a/b; else print "n/a"}') the SQLite hub ($sqlite_rate)"
    row "  CPU per record: replica; PostgreSQL" "reported" "$(us_per $((t1 - t0)) "$acked"); $(us_per $((p1 - p0)) "$acked")"

    # Idle connections: what a connected kiosk costs a replica when it only heartbeats (every
    # 30 s) and keeps its MQTT keep-alive (15 s): measured once all are connected.
    csim --agents 1000 --rate 0 --heartbeat 30s --duration "$((SECS + 60))s" --mqtt "${RMQTT[0]}" >"$RUN/idleconn.txt" 2>&1 &
    IDLE=$!
    sessions() { curl -fsS "http://${RHTTP[0]}/metrics" | awk '/^kioskfleet_broker_sessions /{print $2}'; }
    for _ in $(seq 1 600); do [ "$(sessions)" = 1000 ] && break; sleep 0.2; done
    sleep 2
    t0=$(replica_ticks); p0=$(pg_ticks); sleep "$SECS"; t1=$(replica_ticks); p1=$(pg_ticks)
    kill -INT $IDLE 2>/dev/null || true; wait $IDLE 2>/dev/null || true
    row "  CPU per 1,000 connected kiosks, heartbeat every 30 s: replica; PostgreSQL" "reported" \
      "$(awk -v t=$((t1 - t0)) -v s="$SECS" 'BEGIN{printf "%.2f%% of a core", t/s}'); $(awk -v t=$((p1 - p0)) -v s="$SECS" 'BEGIN{printf "%.2f%%", t/s}')"
    stop_replicas

    # Three replicas on the same two cores, the kiosks spread over them.
    start_replicas 3
    ALL=$(IFS=,; echo "${RMQTT[*]}")
    t0=$(replica_ticks); p0=$(pg_ticks)
    csim --agents 1000 --rate 60 --size 200 --duration "${SECS}s" --mqtt "$ALL" --json "$RUN/pg3.json" | tee "$RUN/pg3.txt"
    t1=$(replica_ticks); p1=$(pg_ticks)
    acked=$(json "$RUN/pg3.json" acked); pg3=$(json "$RUN/pg3.json" ackedPerSecond)
    row "durable ingest, PostgreSQL, 3 replicas on the same 2 cores" "no slower than 1 replica" \
      "$pg3 records/s = $(awk -v a="$pg3" -v b="$pg1" 'BEGIN{ if (b > 0) printf "%.2fx", a/b; else print "n/a"}') 1 replica"
    row "  CPU per record: replicas; PostgreSQL" "reported" "$(us_per $((t1 - t0)) "$acked"); $(us_per $((p1 - p0)) "$acked")"

    csim --agents 1000 --rate 10 --duration "${SECS}s" --mqtt "$ALL" --json "$RUN/pglatency.json" | tee "$RUN/pglatency.txt"
    row "latency enqueue -> ack at 10,000 records/s, PostgreSQL, 3 replicas" "p99 <= 250 ms" "p99 $(json "$RUN/pglatency.json" latencyP99Ms) ms"

    # Command fan-out across replicas: the kiosks at r1 and r2, every command written on r0.
    csim --agents 1000 --rate 1 --duration "${SECS}s" --mqtt "${RMQTT[1]},${RMQTT[2]}" --fanout "http://${RHTTP[0]}" \
      --json "$RUN/fanout.json" | tee "$RUN/fanout.txt"
    row "command fan-out across replicas: 1,000 commands written on r0 to kiosks at r1, r2" "reported" \
      "$(json "$RUN/fanout.json" fanOutArrived) of $(json "$RUN/fanout.json" fanOutCommands) arrived; p50 $(json "$RUN/fanout.json" fanOutP50Ms) ms, p99 $(json "$RUN/fanout.json" fanOutP99Ms) ms"
    stop_replicas
    kill -INT "$PGPID"; wait "$PGPID" 2>/dev/null || true; PGPID=
  fi
fi
if ! skip go && [ -f "$RUN/go.txt" ]; then
  v=$(grep -E '^BenchmarkRefreshGrantPostgres' "$RUN/go.txt" | grep -o '[0-9.]* tokens/s' | head -1 || true)
  row "refresh grant on PostgreSQL (BenchmarkRefreshGrantPostgres)" ">= 2,000 tokens/s" "${v:-see go.txt}"
fi

{
  echo
  printf '%-62s | %-26s | %s\n' "figure" "target" "measured"
  printf '%s\n' "$(printf -- '-%.0s' $(seq 1 110))"
  printf '%s\n' "${rows[@]}"
} | tee "$RUN/table.txt"
echo "results in $RUN/"
