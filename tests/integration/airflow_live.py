"""A real Airflow for tests: the Airflow 3 components as subprocesses on a throw-away home, as `airflow standalone`
configures them (SQLite metadata database, LocalExecutor), running the project's own DAG files against a sandbox;
or, with ``celery=CeleryDeployment(...)``, as a multi-machine deployment runs them (CeleryExecutor, metadata on
PostgreSQL, Redis broker, a triggerer and Celery workers that each keep their own folders: tests/distributed/).

Unlike ``dag.test()``, this is Airflow's scheduler deciding: retries (a worker killed mid-task comes back as the
next try), clearing, trigger rules, teardowns, the DAG's failure callback and the task notifiers all run as in
production. Used by tests/integration/test_cold_retries_live.py; test_hot_live.py starts its own components the
same way.

- ``LiveAirflow``: the api-server (task workers report through its execution API), the DAG processor over a DAGs
  folder holding only the DAG files asked for, and the scheduler. ``live_hooks/`` leads their PYTHONPATH: its
  ``airflow_local_settings.py`` makes retries seconds apart, its ``sitecustomize.py`` can kill a task mid-write.
- ``CeleryDeployment``: what a CeleryExecutor deployment shares (metadata database, broker, result backend) and
  its workers' names. Each worker is its own ``airflow celery worker`` process with its own working folder, Airflow
  home, DAGs copy, logs and ``CATALOG_SYNC_HOME`` (``<root>/<worker>/``), and reports its name as the task
  instances' ``hostname`` (``live_hooks/live_hostname.py``), as if it ran on a machine of that name. The other
  components get their own ``CATALOG_SYNC_HOME`` too (``<root>/<component>/catalog-sync``): whatever one process
  writes there, no other process can read.
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
from dataclasses import dataclass
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
#: The SimpleAuthManager login of the api-server (a passwords file in the Airflow home).
UI_USER = ("admin", "admin")


@dataclass(frozen=True)
class CeleryDeployment:
    """The CeleryExecutor's shared services: ``metadata_url`` (a SQLAlchemy URL; Celery's results go to the same
    database), ``broker_url`` (Redis), and one Celery worker per name in ``workers``, each running
    ``concurrency`` tasks at a time."""

    metadata_url: str
    broker_url: str
    workers: tuple[str, ...] = ("worker-a", "worker-b")
    concurrency: int = 1


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
    ``celery``: run the CeleryExecutor deployment it describes instead of the LocalExecutor on SQLite.
    ``plugins``: load the repository's plugins/ (the Catalog Sync UI) into the api-server; ``UI_USER`` signs in.
    ``pools``: name -> slots (default ``POOLS``).
    """

    def __init__(self, root: Path, dag_files: list[str], sandbox_url: str, extra_env: dict[str, str],
                 connection_extras: dict[str, dict[str, Any]] | None = None, *,
                 celery: CeleryDeployment | None = None, plugins: bool = False,
                 pools: dict[str, int] | None = None) -> None:
        self.root, self.celery, self.pools = root, celery, pools or POOLS
        self.dag_files = dag_files
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
        if plugins:
            passwords = self.home / "passwords.json"
            passwords.write_text(json.dumps(dict([UI_USER])))
            self.env.update({
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER[0]}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            })
        if celery:
            self.env.update({
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": celery.metadata_url,
                "AIRFLOW__CELERY__BROKER_URL": celery.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{celery.metadata_url}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(celery.concurrency),
                # one process sends the tasks to the broker and reads their states (the default is a core each)
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                "AIRFLOW__API__WORKERS": "1",
            })
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def component_env(self, name: str) -> tuple[dict[str, str], Path | None]:
        """The environment and working folder of one component. Under Celery every component has a state folder of
        its own, and each worker its whole machine's worth of folders (``<root>/<worker>/``)."""
        if not self.celery:
            return self.env, None
        own = self.root / name
        env = {**self.env, "CATALOG_SYNC_HOME": str(own / "catalog-sync")}
        if name in self.celery.workers:
            env.update({
                "AIRFLOW_HOME": str(own / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(own / "dags"),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(own / "logs"),
                # the worker serves its task logs to the api-server, as on its own machine
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "live_hostname.hostname",
                "CATALOG_SYNC_TEST_HOSTNAME": name,
            })
            for folder in ("airflow", "dags", "logs"):
                (own / folder).mkdir(parents=True, exist_ok=True)
            for dag in self.dag_files:
                shutil.copy(REPO / "dags" / dag, own / "dags" / dag)
        (own / "catalog-sync").mkdir(parents=True, exist_ok=True)
        return env, own

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
                                     for name, n in self.pools.items()}))
        self.cli("pools", "import", str(pools))
        components: list[tuple[str, list[str]]] = [
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)]),
            ("dag-processor", ["dag-processor"]), ("scheduler", ["scheduler"])]
        if self.celery:
            components.append(("triggerer", ["triggerer"]))
            # Each worker takes the default queue and one named after itself (tasks a test pins there).
            components += [(worker, ["celery", "worker", "--celery-hostname", worker, "--queues", f"default,{worker}",
                                     "--concurrency", str(self.celery.concurrency)]) for worker in self.celery.workers]
        for name, args in components:
            env, cwd = self.component_env(name)
            # Each component leads its own process group, so its workers and supervisors die with it.
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env, cwd=cwd,
                                                stdout=(self.logs / f"{name}.log").open("w"),
                                                stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def url(self) -> str:
        """The api-server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def wait_api(self, within: float = 120) -> None:
        """Wait until the api-server answers its health check."""
        import httpx

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait(healthy, within, "the api-server answering")

    def token(self) -> str:
        """A JWT for ``UI_USER`` from the api-server's ``POST /auth/token`` (needs ``plugins=True``)."""
        import httpx

        resp = httpx.post(f"{self.url}/auth/token", json=dict(zip(("username", "password"), UI_USER, strict=True)),
                          timeout=10)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["access_token"])

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
        if self.celery:
            return _pg_query(self.celery.metadata_url, sql, params)
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

    def task_hosts(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id or task_id[map_index]: hostname}`` of one run: the host each task last ran on."""
        rows = self._query("SELECT task_id, map_index, hostname FROM task_instance "
                           "WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return {(t if m < 0 else f"{t}[{m}]"): (h or None) for t, m, h in rows}

    def task_timings(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """``{task_id or task_id[map_index]: {state, try_number, hostname, queue, pool, start_date, end_date,
        duration}}`` of one run, as the metadata database holds them (dates as text, ``duration`` in seconds)."""
        rows = self._query("SELECT task_id, map_index, state, try_number, hostname, queue, pool, start_date, "
                           "end_date, duration FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        keys = ("state", "try_number", "hostname", "queue", "pool", "start_date", "end_date", "duration")
        return {(t if m < 0 else f"{t}[{m}]"): dict(zip(keys, (s, n, h, q, p, str(b) if b else None,
                                                                   str(e) if e else None, d), strict=True))
                for t, m, s, n, h, q, p, b, e, d in rows}

    def run_times(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``queued_at``, ``start_date`` and ``end_date`` of one run (text), as the metadata database holds them."""
        rows = self._query("SELECT queued_at, start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?",
                           dag_id, run_id)
        return dict(zip(("queued_at", "start_date", "end_date"), (str(v) if v else None for v in rows[0]),
                        strict=True)) if rows else {}

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

    def answer_when_asked(self, dag_id: str, run_id: str, task_id: str, option: str,
                          headers: dict[str, str] | None = None, within: float = 300,
                          before: Callable[[dict[str, tuple[str | None, int]]], None] | None = None,
                          ) -> dict[str, tuple[str | None, int]]:
        """Wait until ``task_id`` waits for a person, then choose ``option`` through Airflow's HITL REST route (the
        one its "Required actions" page calls); the task states as they were when it was asked.

        The answer goes in once the scheduler has reaped the parked attempt's worker: an answer that lands before
        the executor reports that process done is lost (the scheduler takes the late "process finished" event for
        a failure of the resumed task and retries it, which asks again). A person answers minutes later.
        ``before`` sees the states just before the answer (to check that nothing moved while the task waited).
        """
        import httpx

        def asked() -> Any:
            states = self.task_instances(dag_id, run_id)
            return states if states.get(task_id, (None,))[0] == "awaiting_input" else None

        states: dict[str, tuple[str | None, int]] = self.wait(asked, within, f"{task_id} waiting for a person")
        parked = (f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{dag_id}',"
                  f" task_id='{task_id}', run_id='{run_id}', try_number={states[task_id][1]}")
        self.wait(lambda: parked in (self.logs / "scheduler.log").read_text(errors="replace"), 120,
                  f"the parked {task_id}'s worker reaped")
        if before is not None:
            before(states)
        answer = httpx.patch(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                             json={"chosen_options": [option]}, headers=headers or {}, timeout=30)
        assert answer.status_code == 200, answer.text
        return states

    def wait_finished(self, dag_id: str, run_id: str, within: float = 240) -> str:
        """Wait until the run is finished; its state."""
        return str(self.wait(lambda: (s := self.run_state(dag_id, run_id)) in FINISHED and s, within,
                             f"{dag_id} run {run_id} finishing"))

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.cli("dags", "trigger", dag_id, "--run-id", run_id)

    def tails(self) -> str:
        task_logs = sorted(self.root.rglob("attempt=*.log"), key=lambda p: p.stat().st_mtime)[-6:]
        files = sorted(self.logs.glob("*.log")) + task_logs
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2500:]}" for p in files)


@contextmanager
def live_airflow(root: Path, dag_files: list[str], sandbox_url: str, extra_env: dict[str, str],
                 connection_extras: dict[str, dict[str, Any]] | None = None, *,
                 celery: CeleryDeployment | None = None, plugins: bool = False,
                 pools: dict[str, int] | None = None) -> Iterator[LiveAirflow]:
    airflow = LiveAirflow(root, dag_files, sandbox_url, extra_env, connection_extras, celery=celery,
                          plugins=plugins, pools=pools)
    try:
        yield airflow.start()
    finally:
        airflow.stop()


def _pg_query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        try:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())
        except psycopg.errors.UndefinedTable:  # not migrated yet
            return []


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
