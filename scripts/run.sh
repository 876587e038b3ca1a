#!/usr/bin/env bash
# make run: start a hub (embedded broker + SQLite) and one kiosk agent with simulated peripherals on
# loopback, enrolling the agent on first run. Data lives in ./var and is kept between runs.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
VAR=${KF_VAR:-var}
HTTP=${KF_HTTP_ADDR:-127.0.0.1:8080}
MQTT=${KF_MQTT_ADDR:-127.0.0.1:8883}
HUB=https://$HTTP
CA=$VAR/hub/ca/ca.crt   # the hub's CA: what fleetctl, the console and curl trust (kiosks pin it via their token)
mkdir -p "$VAR/logs"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped. Data kept in $VAR/ (delete it to start afresh)."
}
trap cleanup INT TERM EXIT

"$BIN/fleet-hub" --data "$VAR/hub" --http-addr "$HTTP" --mqtt-addr "$MQTT" >"$VAR/logs/hub.out" 2>"$VAR/logs/hub.log" &
pids+=($!)
for _ in $(seq 1 100); do
  [ -f "$VAR/hub/bootstrap-token" ] && "$BIN/fleetctl" --hub "$HUB" --ca "$CA" --token-file "$VAR/hub/bootstrap-token" health >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$VAR/logs/hub.log" >&2; exit 1; }
  sleep 0.1
done
TOKEN=$(cat "$VAR/hub/bootstrap-token")
export KF_HUB=$HUB KF_CA=$CA KF_TOKEN=$TOKEN
CONSOLE=${KF_CONSOLE_ADDR:-127.0.0.1:8081}
"$BIN/fleet-console" --hub "$HUB" --hub-ca "$CA" --token-file "$VAR/hub/bootstrap-token" --addr "$CONSOLE" 2>"$VAR/logs/console.log" &
pids+=($!)

if [ ! -f "$VAR/agent/identity.json" ]; then
  "$BIN/fleetctl" sites create --id demo-hall --name "Demo service hall" --region 440305 --address "1 Demo Road" >/dev/null 2>&1 || true
  ET=$("$BIN/fleetctl" tokens create --site demo-hall --ttl 10m -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  "$BIN/kiosk-agent" enroll --data "$VAR/agent" --hub "$HUB" --token "$ET" --model "demo-kiosk"
fi

AGENT_ARGS=(run --data "$VAR/agent")
if [ -x "$BIN/devsim" ]; then
  "$BIN/devsim" kiosk --dir "$VAR/devsim" >"$VAR/logs/devsim.out" 2>"$VAR/logs/devsim.log" &
  pids+=($!)
  for _ in $(seq 1 50); do [ -f "$VAR/devsim/devices.yaml" ] && break; sleep 0.1; done
  [ -f "$VAR/devsim/devices.yaml" ] && AGENT_ARGS+=(--devices "$VAR/devsim/devices.yaml")
fi
"$BIN/kiosk-agent" "${AGENT_ARGS[@]}" 2>"$VAR/logs/agent.log" &
pids+=($!)

DEV=$(sed -n 's/.*"deviceId": *"\([^"]*\)".*/\1/p' "$VAR/agent/identity.json")
cat <<MSG

kioskfleet is running.
  fleet console  http://$CONSOLE   (open it in a browser; works on a phone too)
  hub HTTP API   $HUB/api/v1      (metrics: $HUB/metrics)
  hub MQTT/TLS   $MQTT
  hub CA         $CA   (curl --cacert $CA $HUB/healthz)
  admin token    $TOKEN
  staff login    user admin, password in $VAR/hub/initial-credentials (written at first start)
  kiosk agent    $DEV  (data: $VAR/agent)
  logs           $VAR/logs/

Try, in another terminal:
  export KF_HUB=$HUB KF_CA=$CA KF_TOKEN=$TOKEN
  ./bin/fleetctl devices list
  ./bin/fleetctl devices show $DEV
  ./bin/fleetctl commands send $DEV ping --wait 30s
  ./bin/fleetctl state set $DEV --doc '{"heartbeatInterval":"10s"}'
  ./bin/devsim ctl --dir $VAR/devsim fault receipt0 paper-out     # then watch the console

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
