#!/usr/bin/env bash
# make run: start a hub (embedded broker + SQLite + OpenID Provider), the fleet console, a simulated
# kiosk's peripherals (devsim) and one kiosk agent on loopback, enrolling the agent on first run.
# Data lives in ./var and is kept between runs. Ctrl-C stops everything.
#
# Every path handed to a child is absolute (devsim's daemons change their working folder). If any
# child exits, this says which, shows the end of its log, stops the rest and exits 1.
#
# Environment: KF_VAR (data folder, default ./var of the checkout; a relative one is taken from
# where you are), KF_HTTP_ADDR (hub HTTP, default 127.0.0.1:8080), KF_MQTT_ADDR (hub MQTT/TLS,
# 127.0.0.1:8883), KF_CONSOLE_ADDR (fleet console, 127.0.0.1:8081), KF_LOCAL_API_ADDR (the kiosk's
# local device API, 127.0.0.1:8090).
set -euo pipefail
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501)); then
  echo "run: needs bash 5.1 or later (Debian 12 has 5.2), not $BASH_VERSION" >&2
  exit 1
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
VAR=$(realpath -m -- "${KF_VAR:-$ROOT/var}")
cd "$ROOT"
BIN=$ROOT/bin
LOGS=$VAR/logs
HTTP=${KF_HTTP_ADDR:-127.0.0.1:8080}
MQTT=${KF_MQTT_ADDR:-127.0.0.1:8883}
CONSOLE=${KF_CONSOLE_ADDR:-127.0.0.1:8081}
LOCALAPI=${KF_LOCAL_API_ADDR:-127.0.0.1:8090}
HUB=https://$HTTP
CA=$VAR/hub/ca/ca.crt # the hub's CA: what fleetctl, the console and curl trust (kiosks pin it via their token)
TOKEN_FILE=$VAR/hub/bootstrap-token
mkdir -p "$LOGS"

PROG=run
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"

fleetctl() { "$BIN/fleetctl" --hub "$HUB" --ca "$CA" --token-file "$TOKEN_FILE" "$@"; }
hub_healthy() { [ -f "$TOKEN_FILE" ] && fleetctl health >/dev/null 2>&1; }

spawn hub "$BIN/fleet-hub" --data "$VAR/hub" --http-addr "$HTTP" --mqtt-addr "$MQTT" --console-url "http://$CONSOLE"
await 30 "hub healthy at $HUB" hub hub_healthy
# Staff log in to the console through the hub (OIDC): the console's client secret is taken once from
# the hub's first-start credentials into a file of the console's own, so it survives the operator
# deleting initial-credentials. Without it (a data folder from before), the console runs in setup
# mode on the bootstrap token.
SECRET_FILE=$VAR/console/client-secret
if [ ! -s "$SECRET_FILE" ] && [ -f "$VAR/hub/initial-credentials" ]; then
  mkdir -p "$VAR/console"
  (umask 077 && sed -n 's/^client secret fleet-console: //p' "$VAR/hub/initial-credentials" >"$SECRET_FILE")
fi
if [ -s "$SECRET_FILE" ]; then
  CONSOLE_AUTH=(--client-secret-file "$SECRET_FILE")
  STAFF="user admin, password in $VAR/hub/initial-credentials (written at first start)"
else
  CONSOLE_AUTH=(--token-file "$TOKEN_FILE")
  STAFF="none: no console client secret in $VAR/console, so the console runs in setup mode on the admin token"
fi
spawn console "$BIN/fleet-console" --hub "$HUB" --hub-ca "$CA" "${CONSOLE_AUTH[@]}" --addr "$CONSOLE"
await 10 "console listening on $CONSOLE" console listening "$CONSOLE"

if [ ! -f "$VAR/agent/identity.json" ]; then
  fleetctl sites create --id demo-hall --name "Demo service hall" --region 440305 --address "1 Demo Road" >/dev/null 2>&1 || true
  ET=$(fleetctl tokens create --site demo-hall --ttl 10m -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  "$BIN/kiosk-agent" enroll --data "$VAR/agent" --hub "$HUB" --token "$ET" --model "demo-kiosk" >/dev/null
fi
DEV=$(sed -n 's/.*"deviceId": *"\([^"]*\)".*/\1/p' "$VAR/agent/identity.json")

rm -f "$VAR/devsim/devices.yaml" # left by a devsim that was killed: it appears when devsim is ready
spawn devsim "$BIN/devsim" kiosk --dir "$VAR/devsim"
await 30 "devsim's simulated peripherals ready" devsim test -f "$VAR/devsim/devices.yaml"
# --rescan 0: the simulated kiosk's devices are devsim's; never probe this machine's real serial
# and USB devices (a CH340 adapter would be taken for an ID-card reader).
spawn agent "$BIN/kiosk-agent" run --data "$VAR/agent" --mqtt "$MQTT" --devices "$VAR/devsim/devices.yaml" \
  --profiles "$ROOT/firmware-profiles" --rescan 0 --local-api "$LOCALAPI"
online() { fleetctl devices show "$DEV" -o json 2>/dev/null | grep -q '"online": *true'; }
await 30 "kiosk $DEV online" agent online
PERIPHERALS=$(awk '$1 != "config" && $1 != "control" { printf "%s ", $1 }' "$LOGS/devsim.out")

cat <<MSG

kioskfleet is running.
  fleet console  http://$CONSOLE   (open it in a browser and log in as staff; works on a phone too)
  hub HTTP API   $HUB/api/v1      (metrics: $HUB/metrics)
  hub MQTT/TLS   $MQTT
  hub CA         $CA   (curl --cacert $CA $HUB/healthz)
  admin token    $(cat "$TOKEN_FILE")
  staff login    $STAFF
  kiosk agent    $DEV  (data: $VAR/agent)
  local API      ws://$LOCALAPI/xfs4iot/v1.0/kiosk   (the kiosk's device API, loopback only: docs/localapi.md)
  kiosk shell    http://$LOCALAPI/   (what a citizen sees: docs/shell.md; the card on devsim's reader logs in)
  peripherals    ${PERIPHERALS}(simulated by devsim: ./bin/devsim ctl --dir $VAR/devsim devices)
  logs           $LOGS/

Try, in another terminal:
  export KF_HUB=$HUB KF_CA=$CA KF_TOKEN_FILE=$TOKEN_FILE
  ./bin/fleetctl devices list
  ./bin/fleetctl devices show $DEV
  ./bin/fleetctl commands send $DEV ping --wait 30s
  ./bin/fleetctl state set $DEV --doc '{"heartbeatInterval":"10s"}'
  ./bin/devsim ctl --dir $VAR/devsim fault receipt0 paper-out     # then watch the console

Ctrl-C stops everything.
MSG

# Sleep until a child ends (Ctrl-C runs the INT trap instead).
alive
st=0
wait -n -p gone "${pids[@]}" || st=$?
died "$gone" "$st"
