#!/usr/bin/env bash
# `make run`: set up Catalog Sync on the embedded default and run it.
# Started by the Makefile, which exports CATALOG_SYNC_HOME, AIRFLOW_HOME and the AIRFLOW__* settings.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${CATALOG_SYNC_HOME:?run me through make run}"
PIDS="$STATE/pids"; LOGS="$STATE/logs"
mkdir -p "$PIDS" "$LOGS" "$AIRFLOW_HOME"
SANDBOX_PORT="${CATALOG_SYNC_SANDBOX_PORT:-8765}"
API_PORT="${AIRFLOW__API__PORT:-8080}"
# Loopback and a small footprint unless the caller chose otherwise (the Makefile sets the same defaults; these
# hold when the script runs on its own). LocalExecutor starts AIRFLOW__CORE__PARALLELISM task processes.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# Task processes reach Airflow's execution API at the address it really listens on (the default, localhost:8080,
# may resolve to ::1 first and ignores a changed port).
if [[ "$AIRFLOW__API__HOST" == "0.0.0.0" ]]; then API_REACH=127.0.0.1; else API_REACH="$AIRFLOW__API__HOST"; fi
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://$API_REACH:$API_PORT/execution/}"
SANDBOX_HOST="${CATALOG_SYNC_SANDBOX_HOST:-127.0.0.1}"
CATALOG="${CATALOG_SYNC_DEMO_CATALOG:-$PWD/demo-data/luma}"

say() { printf '\n==> %s\n' "$*"; }

wait_for() {  # url, what, seconds
  local url=$1 what=$2 deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if (( SECONDS > deadline )); then
      echo "$what did not come up within $3 s; see $LOGS" >&2; exit 1
    fi
    sleep 1
  done
}

start_bg() {  # name, command...: start in its own process group so `make stop` can end all its children
  local name=$1; shift
  if [[ -f "$PIDS/$name.pid" ]] && kill -0 "$(cat "$PIDS/$name.pid")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$PIDS/$name.pid"))"; return
  fi
  setsid nohup "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$PIDS/$name.pid"
}

if [[ ! -d "$CATALOG" ]]; then
  echo "Demo catalog not found at $CATALOG (set CATALOG_SYNC_DEMO_CATALOG to a Magento 2 export folder)" >&2
  exit 1
fi

say "Airflow metadata database ($AIRFLOW_HOME)"
[[ -f "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ]] || echo '{"admin": "admin"}' >"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
airflow db migrate >"$LOGS/airflow-db-migrate.log" 2>&1
# Serialize the DAGs now so they can be triggered as soon as the API server answers.
airflow dags reserialize >"$LOGS/airflow-reserialize.log" 2>&1

say "Hub database"
catalog-sync hub migrate

say "Connections, pools and variables from airflow_settings.yaml"
# The demo's connections name the sandbox's default port; a sandbox on another port takes them along.
python -m catalog_sync.airflow.settings_loader airflow_settings.yaml --replace-port "8765=$SANDBOX_PORT"

say "Sandbox systems on http://$SANDBOX_HOST:$SANDBOX_PORT"
start_bg sandbox catalog-sync sandbox serve --host "$SANDBOX_HOST" --port "$SANDBOX_PORT" --storefront-plan plus
wait_for "http://127.0.0.1:$SANDBOX_PORT/openapi.json" "the sandbox" 60
catalog-sync sandbox load --catalog "$CATALOG" --url "http://127.0.0.1:$SANDBOX_PORT"

say "PIM structure (attributes, options, families, channel) from governance/pim_model.yaml"
catalog-sync pim bootstrap

say "Airflow (standalone) on http://$AIRFLOW__API__HOST:$API_PORT ($AIRFLOW__CORE__PARALLELISM task processes, $AIRFLOW__API__WORKERS API worker)"
start_bg airflow airflow standalone
wait_for "http://127.0.0.1:$API_PORT/api/v2/monitor/health" "Airflow" 180

say "First nightly run"
catalog-sync demo first-run --timeout 900

say "A few nights of history: each day's changes in the systems, then that night's run (the KPI charts get a line)"
catalog-sync sandbox history --url "http://127.0.0.1:$SANDBOX_PORT" --timeout 900

say "The demo story: a few SKUs broken the ways real catalogs break, then the nightly again"
STORY="$CATALOG_SYNC_HOME/demo_story.json"
catalog-sync sandbox story --url "http://127.0.0.1:$SANDBOX_PORT" --save "$STORY"
catalog-sync demo nightly --timeout 900 --run-id "manual__demo_night_4_after_the_story_$(date +%Y%m%dT%H%M%S)"
catalog-sync sandbox story --guide "$STORY" --ui "http://127.0.0.1:$API_PORT"

cat <<MSG

Catalog Sync is running.
  Airflow UI        http://127.0.0.1:$API_PORT   (local login: admin / admin)
  Quality reports   http://127.0.0.1:$API_PORT/catalog-sync/quality
  Dead letters      http://127.0.0.1:$API_PORT/catalog-sync/dead-letters
  SKU trace         catalog-sync explain MH01-XS-Black   (or in the UI: /catalog-sync/trace)
  Sandbox systems   http://127.0.0.1:$SANDBOX_PORT/docs
  Logs              $LOGS
Stop everything with: make stop
MSG
