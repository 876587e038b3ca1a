#!/usr/bin/env bash
# make run-cluster: the hub scaled out, on loopback. PostgreSQL (Debian's, its cluster in
# ./var/cluster/pg, run as an unprivileged user), three fleet-hub replicas on it sharing one data
# folder of secrets (made once by fleet-hub init), HAProxy in front of them (scripts/haproxy.cfg:
# TCP passthrough for the kiosks' MQTT and for the HTTPS side), and one simulated kiosk
# enrolled through the load balancer and sending records. Data lives in ./var/cluster and is kept
# between runs. Ctrl-C stops everything. See docs/cluster.md.
#
# Environment: KF_VAR (data folder, default ./var; the cluster's is $KF_VAR/cluster), KF_HTTP_ADDR
# and KF_MQTT_ADDR (the load balancer, default 127.0.0.1:8080 and :8883, as make run's hub),
# KF_REPLICA_HTTP and KF_REPLICA_MQTT (the replicas' ports, default 8101,8102,8103 and
# 8111,8112,8113 on 127.0.0.1), KF_PG_ADDR (PostgreSQL, 127.0.0.1:5499).
set -euo pipefail
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501)); then
  echo "cluster: needs bash 5.1 or later (Debian 12 has 5.2), not $BASH_VERSION" >&2
  exit 1
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
VAR=$(realpath -m -- "${KF_VAR:-$ROOT/var}")/cluster
cd "$ROOT"
BIN=$ROOT/bin
LOGS=$VAR/logs
LB_HTTP=${KF_HTTP_ADDR:-127.0.0.1:8080}
LB_MQTT=${KF_MQTT_ADDR:-127.0.0.1:8883}
IFS=, read -r -a R_HTTP <<<"${KF_REPLICA_HTTP:-8101,8102,8103}"
IFS=, read -r -a R_MQTT <<<"${KF_REPLICA_MQTT:-8111,8112,8113}"
PG_ADDR=${KF_PG_ADDR:-127.0.0.1:5499}
HUB=https://$LB_HTTP
DATA=$VAR/hub # the secrets every replica is given
CA=$DATA/ca/ca.crt # the hub's CA: what fleetctl and curl trust (kiosks pin it via their token)
TOKEN_FILE=$DATA/bootstrap-token
STORE="postgres://kioskfleet@$PG_ADDR/kioskfleet?sslmode=disable"
mkdir -p "$LOGS"

PROG=cluster
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"
STOP_LAST=postgres # once the replicas have released their kiosks
# Each child runs in a session of its own (setsid), so Ctrl-C reaches this script alone, which
# stops them in order: a child that got the terminal's SIGINT too would stop on its own, PostgreSQL
# before the replicas are done with it, and bash takes a child that stopped cleanly on SIGINT as
# the one that handled it, so its INT trap would not run.
own() { spawn "$1" setsid "${@:2}"; }

for p in haproxy; do
  command -v "$p" >/dev/null || { echo "cluster: $p is missing: apt-get install haproxy (or make test-deps)" >&2; exit 1; }
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/postgres" ] || { echo "cluster: PostgreSQL is missing: apt-get install postgresql (or make test-deps)" >&2; exit 1; }

# PostgreSQL refuses to run as root: as root, its files and process belong to the postgres user
# that Debian's package creates.
PGDATA=$VAR/pg
AS_PG=()
if [ "$(id -u)" = 0 ]; then
  AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  mkdir -p "$PGDATA" && chown postgres: "$PGDATA" && chmod 700 "$PGDATA"
fi
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  echo "cluster: creating the PostgreSQL cluster in $PGDATA"
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U kioskfleet --auth=trust -E UTF8 --locale=C >"$LOGS/initdb.log" 2>&1 ||
    { cat "$LOGS/initdb.log" >&2; exit 1; }
fi
# Loopback only, trust authentication (no password on 127.0.0.1): a development cluster. Every
# commit is durable (fsync and synchronous_commit on, the defaults).
own postgres "${AS_PG[@]}" "$PGBIN/postgres" -D "$PGDATA" -p "${PG_ADDR##*:}" -c listen_addresses="${PG_ADDR%:*}" \
  -c unix_socket_directories= -c max_connections=200
await 30 "PostgreSQL accepting connections on $PG_ADDR" postgres "$PGBIN/pg_isready" -q -h "${PG_ADDR%:*}" -p "${PG_ADDR##*:}" -U kioskfleet -d postgres
"$PGBIN/createdb" -h "${PG_ADDR%:*}" -p "${PG_ADDR##*:}" -U kioskfleet kioskfleet 2>/dev/null || true

if [ ! -f "$DATA/identity.secret" ]; then
  echo "cluster: setting the cluster up (fleet-hub init): its secrets in $DATA, its schema in PostgreSQL"
  "$BIN/fleet-hub" init --data "$DATA" --store "$STORE" --public-url "$HUB" --log-level warn | tee "$LOGS/init.out"
fi

# The replicas: the same secrets, store, public URL and advertised MQTT address (the load
# balancer's), each its own name and listeners. The load balancer connects to them from
# 127.0.0.2 (loopback too), starting each connection with a PROXY protocol v2 header naming the
# client's address, which they take from there only: their limits per client address count
# clients, not the balancer.
LB_SOURCE=127.0.0.2
export KF_LB_MQTT=$LB_MQTT KF_LB_HTTP=$LB_HTTP KF_CA=$CA KF_LB_SOURCE=$LB_SOURCE
replica() { # replica I: start replica rI
  own "r$1" "$BIN/fleet-hub" --data "$DATA" --store "$STORE" --replica "r$1" \
    --http-addr "127.0.0.1:${R_HTTP[$1]}" --mqtt-addr "127.0.0.1:${R_MQTT[$1]}" \
    --public-url "$HUB" --advertise-mqtt "$LB_MQTT" --proxy-protocol-from "$LB_SOURCE"
}
for i in 0 1 2; do
  replica "$i"
  export "KF_R${i}_HTTP=127.0.0.1:${R_HTTP[$i]}" "KF_R${i}_MQTT=127.0.0.1:${R_MQTT[$i]}" "KF_R${i}_HTTP_PORT=${R_HTTP[$i]}"
done
healthy() { "$BIN/fleetctl" --hub "$1" --ca "$CA" --token-file "$TOKEN_FILE" health >/dev/null 2>&1; }
for i in 0 1 2; do
  await 30 "replica r$i healthy" "r$i" healthy "https://127.0.0.1:${R_HTTP[$i]}"
done
own haproxy haproxy -db -f "$ROOT/scripts/haproxy.cfg"
await 15 "the load balancer answering at $HUB" haproxy healthy "$HUB"
fleetctl() { "$BIN/fleetctl" --hub "$HUB" --ca "$CA" --token-file "$TOKEN_FILE" "$@"; }

AGENT=$VAR/agent
if [ ! -f "$AGENT/identity.json" ]; then
  fleetctl sites create --id cluster-hall --name "Cluster demo hall" --region 440305 >/dev/null 2>&1 || true
  ET=$(fleetctl tokens create --site cluster-hall --ttl 10m -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  "$BIN/kiosk-agent" enroll --data "$AGENT" --hub "$HUB" --token "$ET" --model "demo-kiosk" >/dev/null
fi
DEV=$(sed -n 's/.*"deviceId": *"\([^"]*\)".*/\1/p' "$AGENT/identity.json")
own agent "$BIN/kiosk-agent" run --data "$AGENT" --synthetic-rate 2
holder() { fleetctl devices show "$DEV" -o json 2>/dev/null | sed -n 's/.*"replica": *"\([^"]*\)".*/\1/p' | head -1; }
online() { fleetctl devices show "$DEV" -o json 2>/dev/null | grep -q '"online": *true'; }
await 30 "kiosk $DEV online" agent online
H=$(holder)
H=${H:-r0}

cat <<MSG

kioskfleet is running scaled out: three hub replicas on PostgreSQL, behind HAProxy.
  load balancer  $HUB/api/v1 (HTTP API, OpenID: $HUB/.well-known/openid-configuration)
                 $LB_MQTT (MQTT/TLS, passed through to a replica)
  replicas       r0 https://127.0.0.1:${R_HTTP[0]}  mqtt 127.0.0.1:${R_MQTT[0]}
                 r1 https://127.0.0.1:${R_HTTP[1]}  mqtt 127.0.0.1:${R_MQTT[1]}
                 r2 https://127.0.0.1:${R_HTTP[2]}  mqtt 127.0.0.1:${R_MQTT[2]}   (metrics: /metrics on each)
  PostgreSQL     $STORE  (data: $PGDATA)
  secrets        $DATA   (the one folder every replica is given)
  hub CA         $CA   (curl --cacert $CA $HUB/healthz)
  admin token    $(cat "$TOKEN_FILE")
  staff login    user admin, password in $DATA/initial-credentials (written by fleet-hub init)
  kiosk agent    $DEV, at replica $H  (data: $AGENT)
  logs           $LOGS/

Try, in another terminal:
  export KF_HUB=$HUB KF_CA=$CA KF_TOKEN_FILE=$TOKEN_FILE
  ./bin/fleetctl devices show $DEV -o json | grep '"replica"'   # which replica holds its session
  kill -9 \$(pgrep -f -- '--replica $H --http-addr 127.0.0.1:${R_HTTP[${H#r}]} ')
                                                     # the kiosk moves to another replica; shown there
  ./bin/fleetctl commands send $DEV ping --wait 30s  # written on any replica, sent by the holder
  ./bin/fleetsim --hub $HUB --ca $CA --token \$(cat $TOKEN_FILE) --agents 300 --rate 5 \\
      --duration 60s --state $VAR/fleetsim           # 300 more simulated kiosks, spread by HAProxy

A replica that stops is started again after 2 s, as a supervisor would. Ctrl-C stops everything.
MSG

# Sleep until a child ends (Ctrl-C runs the INT trap instead): a replica is started again, any
# other ending stops everything.
while :; do
  alive
  st=0
  wait -n -p gone "${pids[@]}" || st=$?
  for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" = "$gone" ] && [[ ${names[$i]} == r[0-9] ]]; then
      echo "cluster: replica ${names[$i]} exited (status $st); starting it again in 2 s (its log: $LOGS/${names[$i]}.log.1)"
      mv -f "$LOGS/${names[$i]}.log" "$LOGS/${names[$i]}.log.1"
      n=${names[$i]#r}
      unset "pids[$i]" "names[$i]"
      sleep 2
      replica "$n"
      continue 2
    fi
  done
  died "$gone" "$st"
done
