#!/usr/bin/env bash
# make down: stop what `make up` started: the process groups whose leaders are in $AIRFLOW_HOME/run/*.pid
# (AIRFLOW_HOME as for make up, default ./.airflow-up). Also stops a stack an older `make up` left
# (.twin/airflow.pid, .twin/twin.pid).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STATE="${AIRFLOW_HOME:-$ROOT/.airflow-up}/run"

stop() {  # stop PIDFILE EXPECTED_CMDLINE_REGEX
  local pidfile="$1" name pid
  name="$(basename "$pidfile" .pid)"
  [ -f "$pidfile" ] || { echo "$name: not running"; return 0; }
  pid="$(cat "$pidfile")"
  # only a process group we started: the leader's command line must still be ours
  if ! kill -0 "$pid" 2>/dev/null || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE -- "$2"; then
    echo "$name: not running (stale pid file)"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 40); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    echo "$name: still running after 20s, killing"
    kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
  echo "$name: stopped"
}

# the Airflow components and the log server together, then the twin
for name in scheduler triggerer dag-processor api-server; do
  stop "$STATE/$name.pid" "airflow ${name/-/[-_]}" &  # the api-server retitles itself "airflow api_server"
done
stop "$STATE/serve-logs.pid" "serve_logs" &
wait
stop "$STATE/twin.pid" "aws_twin serve"
# a stack started by the previous make up (airflow standalone, state in .twin/)
if [ -f "$ROOT/.twin/airflow.pid" ] || [ -f "$ROOT/.twin/twin.pid" ]; then
  stop "$ROOT/.twin/airflow.pid" "airflow standalone"
  stop "$ROOT/.twin/twin.pid" "aws_twin serve"
fi
