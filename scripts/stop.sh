#!/usr/bin/env bash
# `make stop`: end what `make run` started (each service runs in its own process group).
set -uo pipefail
PIDS="${CATALOG_SYNC_HOME:-$(cd "$(dirname "$0")/.." && pwd)/.state}/pids"
[[ -d "$PIDS" ]] || { echo "nothing to stop"; exit 0; }
for pidfile in "$PIDS"/*.pid; do
  [[ -e "$pidfile" ]] || continue
  name=$(basename "$pidfile" .pid); pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    echo "stopped $name"
  fi
  rm -f "$pidfile"
done
