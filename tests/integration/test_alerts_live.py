"""Fail fast and deadline alerts with Airflow really running (api-server, dag-processor, scheduler, triggerer).

Two probe DAGs built from the project's own defaults (``catalog_sync.airflow.defaults``):

- ``fail_fast_probe``: one task raises the connectors' ``AuthError`` (fail fast), one a ``TransientError`` (retry);
  both with one retry one second apart. The scheduler must give the first one try, the second two.
- ``deadline_probe``: a run that must finish 5 s after it was queued runs for 60 s; the scheduler sees the missed
  deadline and the triggerer runs ``catalog_sync.airflow.notifiers.deadline_missed``, which sends the freshness
  alert through the SMTP and webhook connections (local sinks here) once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.hub.db import migrate
from tests.alerting.sinks import SmtpSink, WebhookReceiver, alert_connection_env
from tests.conftest import airflow_connection_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.airflow_live

PROBES = '''
import time
from datetime import timedelta

from airflow.sdk import dag, task

from catalog_sync.airflow.defaults import START_DATE, default_args, freshness_deadline


@dag(schedule=None, start_date=START_DATE, catchup=False,
     default_args=default_args(retries=1, retry_delay=timedelta(seconds=1), retry_exponential_backoff=0))
def fail_fast_probe():
    @task
    def bad_credentials():
        from catalog_sync.connectors.http import AuthError

        raise AuthError("pim: POST /api/oauth/v1/token answered 401 (client secret refused)", system="pim",
                        status=401)

    @task
    def erp_down():
        from catalog_sync.connectors.http import TransientError

        raise TransientError("erp: GET /erp/changes answered 503 five times", system="erp", status=503)

    bad_credentials()
    erp_down()


fail_fast_probe()


@dag(schedule=None, start_date=START_DATE, catchup=False, default_args=default_args(retries=0),
     deadline=freshness_deadline(timedelta(seconds=5), "not finished 5 s after it was queued"))
def deadline_probe():
    @task
    def slow():
        time.sleep(60)

    slow()


deadline_probe()
'''


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("alerts-live")
    home, dags, logs = tmp_path / "airflow", tmp_path / "dags", tmp_path / "logs"
    for folder in (home, dags, logs):
        folder.mkdir()
    (dags / "probes.py").write_text(textwrap.dedent(PROBES))
    shutil.copy(REPO / "dags" / "sync_rollback.py", dags / "sync_rollback.py")
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    smtp, hook = SmtpSink(), WebhookReceiver()
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
        **alert_connection_env(smtp, hook),
        # The rollback's restore builds its clients from these; nothing listens there (its plan here is empty).
        **airflow_connection_env("http://127.0.0.1:9"),
        # The API without logins, so the test can answer the approval as a person would in the UI.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "catalog-sync-live-test-secret-0123456789abcdef",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
        "CATALOG_SYNC_HUB_URL": hub,
        "CATALOG_SYNC_HOME": str(tmp_path / "catalog-sync"),
    }
    cli = [sys.executable, "-m", "airflow"]
    done = subprocess.run([*cli, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    done = subprocess.run([*cli, "pools", "set", "pim_api", "4", "Akeneo PIM"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in (("api-server", ["api-server", "--port", str(port)]), ("dag-processor", ["dag-processor"]),
                           ("scheduler", ["scheduler"]), ("triggerer", ["triggerer"])):
            procs[name] = subprocess.Popen([*cli, *args], env=env, stdout=(logs / f"{name}.log").open("w"),
                                           stderr=subprocess.STDOUT, start_new_session=True)
        yield {"env": env, "cli": cli, "db": home / "airflow.db", "logs": logs, "smtp": smtp, "hook": hook,
               "hub": hub, "api": f"http://127.0.0.1:{port}"}
    finally:
        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        smtp.close()
        hook.close()


def _wait(condition: Callable[[], Any], within: float, what: str, logs: Path) -> Any:
    start = time.monotonic()
    while time.monotonic() - start < within:
        found = condition()
        if found:
            return found
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"{what} not seen within {within:.0f} s\n{tails}")


def _trigger(live: dict[str, Any], dag_id: str, conf: dict[str, Any] | None = None) -> None:
    def triggered() -> bool:
        extra = ["--conf", json.dumps(conf)] if conf else []
        done = subprocess.run([*live["cli"], "dags", "trigger", dag_id, *extra], env=live["env"],
                              capture_output=True, text=True, timeout=120)
        return done.returncode == 0
    _wait(triggered, 180, f"{dag_id} parsed and triggered", live["logs"])


def _task_states(db: Path, dag_id: str) -> dict[str, tuple[str | None, int]]:
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select task_id, state, try_number from task_instance where dag_id = ?", (dag_id,))
        return {task: (state, int(tries)) for task, state, tries in rows}


def test_fail_fast_gets_one_try_and_a_deadline_miss_alerts_once(live: dict[str, Any]) -> None:
    _trigger(live, "fail_fast_probe")
    _trigger(live, "deadline_probe")

    def settled() -> dict[str, tuple[str | None, int]] | None:
        states = _task_states(live["db"], "fail_fast_probe")
        return states if {s for s, _ in states.values()} == {"failed"} and len(states) == 2 else None

    states = _wait(settled, 240, "both probe tasks failed for good", live["logs"])
    assert states["bad_credentials"] == ("failed", 1), states  # no retry
    assert states["erp_down"] == ("failed", 2), states  # the retry it was configured with
    task_log = "\n".join(f.read_text(errors="replace") for f in live["logs"].rglob("*")
                         if f.is_file() and "task_id=bad_credentials" in str(f))
    assert "authentication failed, not retried" in task_log
    assert "client secret refused" in task_log

    hook: WebhookReceiver = live["hook"]
    smtp: SmtpSink = live["smtp"]

    def deadline_alert() -> list[dict[str, Any]]:
        return [h for h in hook.received if h["json"]["key"] == "freshness:deadline_probe"]

    alerts = _wait(deadline_alert, 120, "the deadline alert at the webhook", live["logs"])
    assert alerts[0]["json"]["facts"]["dag_id"] == "deadline_probe"
    assert "not finished 5 s after it was queued" in alerts[0]["json"]["subject"]
    _wait(lambda: [m for m in smtp.messages if "deadline_probe" in m.subject], 30, "the deadline e-mail",
          live["logs"])
    # The failure callbacks alerted too: the ERP outage as such, once though the task ran twice.
    erp = _wait(lambda: [h for h in hook.received if h["json"]["key"] == "unreachable:erp"], 60,
                "the ERP-unreachable alert", live["logs"])
    time.sleep(3)
    assert len(deadline_alert()) == 1 and len(erp) == 1
    # Airflow stored the callback's result (a text column): the triggerer saved it and kept running
    def stored() -> bool:
        with sqlite3.connect(f"file:{live['db']}?mode=ro", uri=True, timeout=30) as conn:
            rows = conn.execute("SELECT state, output FROM callback").fetchall()
        return any(state == "success" and "freshness:deadline_probe: sent to" in (output or "")
                   for state, output in rows)

    _wait(stored, 30, "the deadline callback's result saved by the triggerer", live["logs"])


def test_a_rollback_waits_for_approval_and_restores_only_after_it(live: dict[str, Any]) -> None:
    import requests

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import SyncRun

    with session_scope(live["hub"]) as s:
        s.add(SyncRun(load_id="cold-to-undo", flow="cold_data_nightly", status="success"))
    _trigger(live, "sync_rollback", {"load_id": "cold-to-undo"})

    def waiting() -> dict[str, tuple[str | None, int]] | None:
        states = _task_states(live["db"], "sync_rollback")
        return states if states.get("approve_restore", (None,))[0] == "awaiting_input" else None

    states = _wait(waiting, 240, "the approval waiting for a person", live["logs"])
    assert states["preview"][0] == "success"
    time.sleep(8)  # the scheduler keeps looping meanwhile: restore must not start
    states = _task_states(live["db"], "sync_rollback")
    assert states["restore"][0] in (None, "none"), states

    with sqlite3.connect(live["db"]) as conn:
        run_id, body = conn.execute(
            "select ti.run_id, h.body from hitl_detail h join task_instance ti on ti.id = h.ti_id "
            "where ti.dag_id = 'sync_rollback' and ti.task_id = 'approve_restore'").fetchone()
    assert "Rollback of run `cold-to-undo`" in body and "0 records to restore" in body and "0 fields left alone" in body

    answer = requests.patch(f"{live['api']}/api/v2/dags/sync_rollback/dagRuns/{run_id}/taskInstances/"
                            f"approve_restore/-1/hitlDetails", json={"chosen_options": ["Approve"]}, timeout=30)
    assert answer.status_code == 200, answer.text
    done = _wait(lambda: (lambda st: st if st.get("restore", (None,))[0] in ("success", "failed") else None)(
        _task_states(live["db"], "sync_rollback")), 180, "the restore after approval", live["logs"])
    assert done["restore"][0] == "success", done
