#!/usr/bin/env bash
# make down: stop what `make up` started (the process groups whose leaders are in .twin/*.pid).
set -uo pipefail
cd "$(dirname "$0")/.."
STATE="$PWD/.twin"

stop() {  # stop NAME EXPECTED_CMDLINE_PART
  local pidfile="$STATE/$1.pid" pid
  [ -f "$pidfile" ] || { echo "$1: not running"; return 0; }
  pid="$(cat "$pidfile")"
  # only a process group we started: the leader's command line must still be ours
  if ! kill -0 "$pid" 2>/dev/null || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"; then
    echo "$1: not running (stale pid file)"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 40); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    echo "$1: still running after 20s, killing"
    kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
  echo "$1: stopped"
}

stop airflow "airflow standalone"
stop twin "aws_twin serve"
