# Children of a foreground script (scripts/run.sh, scripts/cluster.sh), sourced by it: start them
# with their output in $LOGS, watch them, stop them all on Ctrl-C or when one dies. The sourcing
# script sets PROG (its name in messages), LOGS and VAR, and `set -euo pipefail`.

# The children, in start order: pids[i] is names[i], writing to $LOGS/NAME.out and NAME.log.
pids=() names=()
spawn() { # spawn NAME COMMAND...
  local name=$1
  shift
  "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  pids+=($!) names+=("$name")
}

# stop CODE: stop the children (SIGTERM, SIGKILL after 5 s) and exit with CODE, or 1 if one had
# to be killed. The children named in STOP_LAST (space-separated: a database the others use) get
# their SIGTERM once the others have ended, and 30 s (a database's shutdown checkpoint).
stop() {
  local code=$1 i k left last keys=("${!pids[@]}") # newest first; a restarted child's index is new
  trap - INT TERM HUP EXIT
  for last in 0 1; do # the others, then STOP_LAST
    for ((k = ${#keys[@]} - 1; k >= 0; k--)); do
      i=${keys[$k]}
      if [ "$(stage "$i")" = "$last" ]; then kill -TERM "${pids[$i]}" 2>/dev/null || true; fi
    done
    for _ in $(seq $((last ? 300 : 50))); do
      left=0
      for i in "${!pids[@]}"; do [ "$(stage "$i")" -le "$last" ] && kill -0 "${pids[$i]}" 2>/dev/null && left=1; done
      ((left)) || break
      sleep 0.1
    done
  done
  for i in "${!pids[@]}"; do
    if kill -KILL "${pids[$i]}" 2>/dev/null; then
      echo "$PROG: ${names[$i]} did not stop within $(($(stage "$i") ? 30 : 5)) s of SIGTERM; killed it (log: $LOGS/${names[$i]}.log)" >&2
      code=1
    fi
  done
  wait 2>/dev/null || true
  echo "stopped. Data kept in $VAR/ (delete it to start afresh)."
  exit "$code"
}
trap 'echo; echo "stopping..."; stop 0' INT TERM HUP
trap 'stop $?' EXIT # a failed step (set -e) stops the children too

# stage I: 1 if child I is named in STOP_LAST, else 0.
stage() { if [[ " ${STOP_LAST:-} " == *" ${names[$1]} "* ]]; then echo 1; else echo 0; fi; }

# show_log NAME: the end of a child's log, indented.
show_log() { tail -n 20 "$LOGS/$1.log" | sed 's/^/  | /' >&2; }

# died PID STATUS: a child ended on its own; say which and why, stop the rest, exit 1.
died() {
  local i name=?
  for i in "${!pids[@]}"; do [ "${pids[$i]}" = "$1" ] && name=${names[$i]}; done
  echo >&2
  echo "$PROG: $name exited (status $2) while it should be running; the end of $LOGS/$name.log:" >&2
  show_log "$name"
  echo "$PROG: stopping the rest." >&2
  stop 1
}

# alive: every child still runs (else died).
alive() {
  local i st
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      st=0
      wait "${pids[$i]}" || st=$?
      died "${pids[$i]}" "$st"
    fi
  done
}

# await SECONDS WHAT NAME TEST...: poll TEST until it succeeds while every child runs, or show the
# end of child NAME's log and fail.
await() {
  local secs=$1 what=$2 name=$3 i
  shift 3
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    alive
    sleep 0.1
  done
  echo "$PROG: $what not within $secs s; the end of $LOGS/$name.log:" >&2
  show_log "$name"
  return 1
}

# listening HOST:PORT: something accepts TCP connections there.
listening() { (: <"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
