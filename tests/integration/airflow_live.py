"""A real Airflow for tests: the Airflow 3 components as subprocesses on a throw-away home, as `airflow standalone`
configures them (SQLite metadata database, LocalExecutor), running the project's own DAG files against a sandbox.

Unlike ``dag.test()``, this is Airflow's scheduler deciding: retries (a worker killed mid-task comes back as the
next try), clearing, trigger rules, teardowns, the DAG's failure callback and the task notifiers all run as in
production. Used by tests/integration/test_cold_retries_live.py; test_hot_live.py starts its own components the
same way.

- ``LiveAirflow``: the api-server (task workers report through its execution API), the DAG processor over a DAGs
  folder holding only the DAG files asked for, and the scheduler. ``live_hooks/`` leads their PYTHONPATH: its
  ``airflow_local_settings.py`` makes retries seconds apart, its ``sitecustomize.py`` can kill a task mid-write.
- ``AlertSink``: a local webhook receiver, set as the alert webhook (an Airflow Variable from the environment).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from catalog_sync.airflow.budgets import POOLS as BUDGET_POOLS
from tests.conftest import airflow_connection_env

REPO = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).with_name("live_hooks")
#: Pools the Catalog Sync DAGs name, at their production sizes (catalog_sync.airflow.budgets, as in
#: airflow_settings.yaml): a smaller pool than a task's pool_slots would never run it.
POOLS = {name: p.size for name, p in BUDGET_POOLS.items()}
FINISHED = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AlertSink:
    """A webhook receiver on 127.0.0.1: every JSON body POSTed to it, in arrival order (``alerts``)."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.alerts.append(json.loads(body or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AlertSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class LiveAirflow:
    """A running Airflow over ``root`` (home, DAGs folder, logs), talking to the sandbox at ``sandbox_url``.

    ``extra_env`` reaches every component and every task process (hub URL, alert webhook, test hooks).
    """

    def __init__(self, root: Path, dag_files: list[str], sandbox_url: str, extra_env: dict[str, str],
                 connection_extras: dict[str, dict[str, Any]] | None = None) -> None:
        self.home, self.dags, self.logs = root / "airflow", root / "dags", root / "logs"
        for folder in (self.home, self.dags, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        for name in dag_files:
            shutil.copy(REPO / "dags" / name, self.dags / name)
        connections = airflow_connection_env(sandbox_url)
        for conn_id, extra in (connection_extras or {}).items():
            key = f"AIRFLOW_CONN_{conn_id.upper()}"
            conn = json.loads(connections[key])
            conn["extra"] = {**conn["extra"], **extra}
            connections[key] = json.dumps(conn)
        port = free_port()
        self.port = port
        pythonpath = os.pathsep.join([str(HOOKS), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
            **connections,
            "PYTHONPATH": pythonpath,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "catalog-sync-live-test-secret-0123456789abcdef",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
            # a task's state changes reach the scheduler within a second or two
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            **extra_env,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 180) -> str:
        """One ``airflow`` CLI command against this deployment; its output (it must succeed)."""
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def start(self) -> LiveAirflow:
        self.cli("db", "migrate", timeout=300)
        pools = self.home / "pools.json"
        pools.write_text(json.dumps({name: {"slots": n, "description": name, "include_deferred": False}
                                     for name, n in POOLS.items()}))
        self.cli("pools", "import", str(pools))
        for name, args in (("api-server", ["api-server", "--port", str(self.port)]),
                           ("dag-processor", ["dag-processor"]), ("scheduler", ["scheduler"])):
            # Each component leads its own process group, so its workers and supervisors die with it.
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=self.env,
                                                stdout=(self.logs / f"{name}.log").open("w"),
                                                stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    # --- the metadata database, read directly (a CLI call costs seconds) ----------------------------------------

    def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        db = self.home / "airflow.db"
        if not db.exists():
            return []
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError:  # a table not migrated yet
                return []

    def runs(self, dag_id: str) -> list[tuple[str, str, str]]:
        """(run_id, run_type, state) of every run of ``dag_id``, oldest first."""
        rows = self._query("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ? ORDER BY id", dag_id)
        return [(str(r), str(t), str(s)) for r, t, s in rows]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self._query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(rows[0][0]) if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """``{task_id or task_id[map_index]: (state, try_number)}`` of one run."""
        rows = self._query("SELECT task_id, map_index, state, try_number FROM task_instance "
                           "WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return {(t if m < 0 else f"{t}[{m}]"): (s, int(n or 0)) for t, m, s, n in rows}

    # --- waiting ------------------------------------------------------------------------------------------------

    def wait(self, condition: Callable[[], Any], within: float, what: str) -> Any:
        start = time.monotonic()
        while time.monotonic() - start < within:
            value = condition()
            if value:
                return value
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"airflow {name} exited\n{self.tails()}"
            time.sleep(0.5)
        raise AssertionError(f"{what} not seen within {within:.0f} s\n{self.tails()}")

    def wait_finished(self, dag_id: str, run_id: str, within: float = 240) -> str:
        """Wait until the run is finished; its state."""
        return str(self.wait(lambda: (s := self.run_state(dag_id, run_id)) in FINISHED and s, within,
                             f"{dag_id} run {run_id} finishing"))

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.cli("dags", "trigger", dag_id, "--run-id", run_id)

    def tails(self) -> str:
        files = sorted(self.logs.glob("*.log")) + sorted(self.logs.rglob("attempt=*.log"))[-6:]
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2500:]}" for p in files)


@contextmanager
def live_airflow(root: Path, dag_files: list[str], sandbox_url: str, extra_env: dict[str, str],
                 connection_extras: dict[str, dict[str, Any]] | None = None) -> Iterator[LiveAirflow]:
    airflow = LiveAirflow(root, dag_files, sandbox_url, extra_env, connection_extras)
    try:
        yield airflow.start()
    finally:
        airflow.stop()


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
