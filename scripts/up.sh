#!/usr/bin/env bash
# make up: aws_twin + Airflow 3 (`airflow standalone`: api-server, scheduler, dag-processor, triggerer)
# in the background, with the repository's dags/ and plugins/ and aws_default pointing at the twin.
# Stop both with `make down` (scripts/down.sh). Logs: .twin/twin.log and .twin/airflow.log.
#
#   AIRFLOW_PORT=8080 TWIN_PORT=4566 AIRFLOW_HOME=./.airflow ./scripts/up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/.venv/bin"
STATE="$ROOT/.twin"
TWIN_PORT="${TWIN_PORT:-4566}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
export PATH="$BIN:$PATH"  # airflow standalone starts its components as `airflow ...`
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
READY_TIMEOUT="${READY_TIMEOUT:-240}"
mkdir -p "$STATE" "$AIRFLOW_HOME"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$STATE/twin.pid" || alive "$STATE/airflow.pid"; then
  echo "already running (pid files in $STATE); run 'make down' first" >&2
  exit 1
fi
for port in "$TWIN_PORT" "$AIRFLOW_PORT"; do
  if "$BIN/python" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    echo "port $port is in use; set TWIN_PORT / AIRFLOW_PORT" >&2
    exit 1
  fi
done

# --- the twin ------------------------------------------------------------------------------------
REVIEW_TOKEN="${AWS_TWIN_REVIEW_TOKEN:-$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')}"
: >"$STATE/twin.log"
setsid "$BIN/python" -m aws_twin serve --host 127.0.0.1 --port "$TWIN_PORT" \
  --review-token "$REVIEW_TOKEN" --work-dir "$STATE/work" >>"$STATE/twin.log" 2>&1 </dev/null &
echo $! >"$STATE/twin.pid"
TWIN_URL=""
for _ in $(seq 1 120); do
  TWIN_URL="$(sed -n 's/^aws_twin ready //p' "$STATE/twin.log" | head -1)"
  [ -n "$TWIN_URL" ] && break
  alive "$STATE/twin.pid" || { cat "$STATE/twin.log" >&2; echo "aws_twin failed to start" >&2; exit 1; }
  sleep 0.5
done
[ -n "$TWIN_URL" ] || { echo "aws_twin did not become ready; see $STATE/twin.log" >&2; exit 1; }
REVIEW_URL="$(sed -n 's/^aws_twin review page //p' "$STATE/twin.log" | head -1)"

# --- Airflow -------------------------------------------------------------------------------------
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
# New DAGs start paused, so a scheduled DAG (expense_documents is hourly) does not fire on its own;
# the trigger form's "Unpause ... on trigger" box (checked by default) unpauses on the first trigger.
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="http://localhost:$AIRFLOW_PORT"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_TWIN_URL="$TWIN_URL"
# Deferred waits (the expense DAG's review poll, 300 s on AWS; Textract and SageMaker jobs) check
# every few seconds against the twin, so a submitted review ends its run within seconds.
export AWS_ML_WAITER_DELAY="${AWS_ML_WAITER_DELAY:-5}"
# The A2I Review Page link of wait_for_review opens the twin's page with this token (offline only).
export AWS_TWIN_REVIEW_TOKEN="$REVIEW_TOKEN"
export AIRFLOW_CONN_AWS_DEFAULT="{\"conn_type\": \"aws\", \"login\": \"testing\", \"password\": \"testing\", \"extra\": {\"endpoint_url\": \"$TWIN_URL\", \"region_name\": \"$AWS_DEFAULT_REGION\"}}"
: >"$STATE/airflow.log"
setsid "$BIN/airflow" standalone >>"$STATE/airflow.log" 2>&1 </dev/null &
echo $! >"$STATE/airflow.pid"

UI="http://localhost:$AIRFLOW_PORT"
printf 'waiting for Airflow at %s ' "$UI"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -fsS -o /dev/null "$UI/api/v2/monitor/health" 2>/dev/null; do
  if ! alive "$STATE/airflow.pid"; then
    echo; tail -50 "$STATE/airflow.log" >&2; echo "airflow standalone exited; see $STATE/airflow.log" >&2
    "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo; echo "Airflow did not answer within ${READY_TIMEOUT}s; see $STATE/airflow.log" >&2
    exit 1
  fi
  printf '.'
  sleep 2
done
echo " up"

# List the DAGs the dag-processor has parsed so far (and any import errors), through the REST API.
"$BIN/python" - "$UI" "$ROOT/dags" <<'EOF' || true
import json, sys, time, urllib.request
from pathlib import Path

ui, dags_folder = sys.argv[1], Path(sys.argv[2])
token = json.load(urllib.request.urlopen(f"{ui}/auth/token", timeout=10))["access_token"]

def get(path):
    req = urllib.request.Request(f"{ui}/api/v2/{path}", headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req, timeout=10))

files = {p for p in dags_folder.rglob("*.py") if "__pycache__" not in p.parts and p.read_text().count("dag")}
deadline = time.monotonic() + 90
while True:
    dags = get("dags?limit=100")["dags"]
    errors = get("importErrors")["import_errors"]
    parsed = {d["fileloc"] for d in dags} | {e["filename"] for e in errors}
    if len(parsed) >= len(files) or time.monotonic() > deadline:
        break
    time.sleep(3)
for d in sorted(dags, key=lambda d: d["dag_id"]):
    print(f"  DAG {d['dag_id']}{' (paused)' if d['is_paused'] else ''}")
for e in errors:
    print(f"  IMPORT ERROR {e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}")
if not dags and not errors:
    print("  (no DAGs parsed yet)")
EOF

cat <<EOF

Airflow UI:        $UI   (simple auth manager: everyone is admin)
REST API:          $UI/api/v2  (token: curl $UI/auth/token)
aws_twin:          $TWIN_URL
A2I review page:   $REVIEW_URL
Logs:              $STATE/airflow.log, $STATE/twin.log
Stop:              make down
EOF
