#!/usr/bin/env bash
# make up: aws_twin + Airflow 3 (api-server, scheduler, dag-processor, triggerer started directly, no
# `airflow standalone`) in the background, with the repository's dags/ and plugins/ and aws_default
# pointing at the twin. Everything listens on 127.0.0.1 only; the UI asks for a login (simple auth
# manager, user `admin`, password generated on the first run and printed once). LocalExecutor with
# at most 4 tasks at a time, SQLite in its own AIRFLOW_HOME (.airflow-up, apart from make demo's).
# Stop with `make down` (scripts/down.sh). Pid files and logs: $AIRFLOW_HOME/run/.
#
#   AIRFLOW_PORT=8080 TWIN_PORT=4566 AIRFLOW_LOG_PORT=8793 AIRFLOW_HOME=./.airflow-up ./scripts/up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/.venv/bin"
TWIN_PORT="${TWIN_PORT:-4566}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
# the worker and trigger log servers (one process serving both, on 127.0.0.1)
LOG_PORT="${AIRFLOW_LOG_PORT:-8793}"
export PATH="$BIN:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow-up}"
STATE="$AIRFLOW_HOME/run"
READY_TIMEOUT="${READY_TIMEOUT:-240}"
COMPONENTS=(api-server scheduler dag-processor triggerer)
mkdir -p "$STATE"
started_at=$SECONDS

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

for pidfile in "$STATE"/*.pid; do
  if alive "$pidfile"; then
    echo "already running (pid files in $STATE); run 'make down' first" >&2
    exit 1
  fi
done
for port in "$TWIN_PORT" "$AIRFLOW_PORT" "$LOG_PORT"; do
  if "$BIN/python" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    echo "port $port is in use; set TWIN_PORT / AIRFLOW_PORT / AIRFLOW_LOG_PORT" >&2
    exit 1
  fi
done
token() { "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(16))'; }

# --- the twin ------------------------------------------------------------------------------------
REVIEW_TOKEN="${AWS_TWIN_REVIEW_TOKEN:-$(token)}"
# the twin's S3 object viewer: the churn report's "Report" link carries this token
export AWS_TWIN_VIEWER_TOKEN="${AWS_TWIN_VIEWER_TOKEN:-$(token)}"
: >"$STATE/twin.log"
setsid "$BIN/python" -m aws_twin serve --host 127.0.0.1 --port "$TWIN_PORT" \
  --review-token "$REVIEW_TOKEN" --work-dir "$STATE/twin-work" >>"$STATE/twin.log" 2>&1 </dev/null &
echo $! >"$STATE/twin.pid"

# --- Airflow -------------------------------------------------------------------------------------
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# the hooks' boto3 sessions share one botocore loader per process (aws_ml_provider.hooks.session_factory)
export AIRFLOW__AWS__SESSION_FACTORY="${AIRFLOW__AWS__SESSION_FACTORY:-aws_ml_provider.hooks.session_factory.SharedLoaderSessionFactory}"
# churn_drift_monitor catches up hourly from its start date: from the hour make up starts, unless set
export CHURN_DRIFT_START_DATE="${CHURN_DRIFT_START_DATE:-$(date -u +%Y-%m-%dT%H:00:00+00:00)}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# at most 4 task processes at a time (the LocalExecutor starts this many workers)
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=1
# a login as on MWAA: one user (role admin), its password generated once into the passwords file
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
# New DAGs start paused, so a scheduled DAG (expense_documents is hourly) does not fire on its own;
# the trigger form's "Unpause ... on trigger" box (checked by default) unpauses on the first trigger.
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="http://localhost:$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW_PORT/execution/"
# task and trigger logs are served by one log server on 127.0.0.1, found at the tasks' hostname
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$LOG_PORT"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="$LOG_PORT"
export AIRFLOW__CORE__HOSTNAME_CALLABLE=urllib.request.localhost
# shared by every component: the scheduler signs task tokens the api-server checks, the api-server
# signs log requests the log server checks
export AIRFLOW__API_AUTH__JWT_SECRET="$(token)"
export AIRFLOW__API__SECRET_KEY="$(token)"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# the twin's URL is known before it is ready: Airflow starts meanwhile, the twin is waited for below
TWIN_URL="http://127.0.0.1:$TWIN_PORT"
export AWS_TWIN_URL="$TWIN_URL"
# Deferred waits (the expense DAG's review poll, 300 s on AWS; Textract and SageMaker jobs) check
# every few seconds against the twin, so a submitted review ends its run within seconds.
export AWS_ML_WAITER_DELAY="${AWS_ML_WAITER_DELAY:-5}"
# The A2I Review Page link of wait_for_review opens the twin's page with this token (offline only).
export AWS_TWIN_REVIEW_TOKEN="$REVIEW_TOKEN"
export AIRFLOW_CONN_AWS_DEFAULT="{\"conn_type\": \"aws\", \"login\": \"testing\", \"password\": \"testing\", \"extra\": {\"endpoint_url\": \"$TWIN_URL\", \"region_name\": \"$AWS_DEFAULT_REGION\"}}"

fail() {
  echo "$1" >&2
  "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
  exit 1
}

# the metadata DB: migrated once per Airflow version, not on every start
VERSION="$("$BIN/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')"
if [ ! -f "$AIRFLOW_HOME/.migrated-$VERSION" ]; then
  echo "airflow db migrate ($AIRFLOW_HOME, first run)"
  "$BIN/airflow" db migrate >"$STATE/db-migrate.log" 2>&1 || { tail -30 "$STATE/db-migrate.log" >&2; fail "airflow db migrate failed; see $STATE/db-migrate.log"; }
  touch "$AIRFLOW_HOME/.migrated-$VERSION"
fi

# the admin password, generated on the first run (the api-server would print it only in its log)
PASSWORDS="$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
NEW_PASSWORD=""
if ! "$BIN/python" -c 'import json,sys; sys.exit("admin" not in json.load(open(sys.argv[1])))' "$PASSWORDS" 2>/dev/null; then
  NEW_PASSWORD="$(token)"
  (umask 077 && printf '{"admin": "%s"}\n' "$NEW_PASSWORD" >"$PASSWORDS")
fi

for name in "${COMPONENTS[@]}"; do
  args=()
  case "$name" in
    api-server) args=(--host 127.0.0.1 --port "$AIRFLOW_PORT") ;;
    scheduler | triggerer) args=(--skip-serve-logs) ;;  # the log server below binds 127.0.0.1
  esac
  : >"$STATE/$name.log"
  setsid "$BIN/airflow" "$name" "${args[@]}" >>"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
done
# `airflow scheduler` / `triggerer` would serve logs on every interface; this one serves both on 127.0.0.1
: >"$STATE/serve-logs.log"
setsid "$BIN/python" -c "import uvicorn; uvicorn.run('airflow.utils.serve_logs.log_server:get_app', host='127.0.0.1', port=$LOG_PORT, log_level='warning', access_log=False)" \
  >>"$STATE/serve-logs.log" 2>&1 </dev/null &
echo $! >"$STATE/serve-logs.pid"

for _ in $(seq 1 240); do
  grep -q '^aws_twin ready ' "$STATE/twin.log" && break
  alive "$STATE/twin.pid" || { cat "$STATE/twin.log" >&2; fail "aws_twin failed to start"; }
  sleep 0.5
done
grep -q '^aws_twin ready ' "$STATE/twin.log" || fail "aws_twin did not become ready; see $STATE/twin.log"
REVIEW_URL="$(sed -n 's/^aws_twin review page //p' "$STATE/twin.log" | head -1)"
CONTROL_TOKEN="$(sed -n 's/^aws_twin control token //p' "$STATE/twin.log" | head -1)"

# ready: metadatabase, scheduler, triggerer and dag_processor healthy in /api/v2/monitor/health
UI="http://localhost:$AIRFLOW_PORT"
healthy() {
  [ "$(curl -fsS --max-time 5 "$UI/api/v2/monitor/health" 2>/dev/null | grep -oE '"status": ?"healthy"' | wc -l)" -ge 4 ]
}
printf 'waiting for Airflow at %s ' "$UI"
deadline=$((SECONDS + READY_TIMEOUT))
until healthy; do
  for name in "${COMPONENTS[@]}" serve-logs twin; do
    if ! alive "$STATE/$name.pid"; then
      echo; tail -40 "$STATE/$name.log" >&2
      fail "$name exited; see $STATE/$name.log"
    fi
  done
  [ "$SECONDS" -lt "$deadline" ] || { echo; fail "Airflow was not healthy within ${READY_TIMEOUT}s; see $STATE/*.log"; }
  printf '.'
  sleep 1
done
echo " up in $((SECONDS - started_at))s"

# List the DAGs the dag-processor has parsed so far (and any import errors), through the REST API.
AIRFLOW_UP_PASSWORDS="$PASSWORDS" "$BIN/python" - "$UI" "$ROOT/dags" <<'EOF' || true
import json, os, sys, time, urllib.request
from pathlib import Path

ui, dags_folder = sys.argv[1], Path(sys.argv[2])
password = json.load(open(os.environ["AIRFLOW_UP_PASSWORDS"]))["admin"]
login = urllib.request.Request(
    f"{ui}/auth/token", data=json.dumps({"username": "admin", "password": password}).encode(),
    headers={"Content-Type": "application/json"}, method="POST",
)
token = json.load(urllib.request.urlopen(login, timeout=10))["access_token"]

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
    time.sleep(2)
for d in sorted(dags, key=lambda d: d["dag_id"]):
    print(f"  DAG {d['dag_id']}{' (paused)' if d['is_paused'] else ''}")
for e in errors:
    print(f"  IMPORT ERROR {e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}")
if not dags and not errors:
    print("  (no DAGs parsed yet)")
EOF

if [ -n "$NEW_PASSWORD" ]; then
  LOGIN="user admin, password $NEW_PASSWORD  (generated now, shown once; kept in $PASSWORDS)"
else
  LOGIN="user admin, password in $PASSWORDS"
fi
cat <<EOF

Airflow UI:        $UI   (login: $LOGIN)
REST API:          $UI/api/v2  (token: POST $UI/auth/token {"username": "admin", "password": ...})
aws_twin:          $TWIN_URL
A2I review page:   $REVIEW_URL
S3 object viewer:  $TWIN_URL/_twin/s3/<bucket>/<key>?token=$AWS_TWIN_VIEWER_TOKEN  (the churn report's "Report" link)
Twin control:      $TWIN_URL/_twin/{state,faults,reset}  (header X-Twin-Control-Token: $CONTROL_TOKEN)
Logs:              $STATE/*.log (task logs: $AIRFLOW_HOME/logs)
Stop:              make down
EOF
