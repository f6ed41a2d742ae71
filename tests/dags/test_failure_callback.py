"""The DAG failure callback ``HubRunFailed``: it fails a run the hub still shows running, and keeps a better account.

A hard gate fails the hub run itself, naming the gate; a run whose ``finish`` committed is a success whatever a
later task did. Neither may be rewritten to the callback's generic "task_failure".
"""

from __future__ import annotations

from types import SimpleNamespace

from catalog_sync.airflow.defaults import HubRunFailed
from catalog_sync.engine.run import RunContext
from catalog_sync.flows import cold
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope


def _open(run_id: str) -> RunContext:
    return RunContext.attach(cold.open_run(dag_id=cold.FLOW, run_id=run_id, window_start=None, window_end=None))


def _run(load_id: str) -> dict:
    with session_scope() as s:
        return repo.get_run(s, load_id) or {}


def test_a_running_run_is_failed_with_the_reason(hub_url: str) -> None:
    ctx = _open("manual__running")
    # the DAG processor's minimal context: no dag_run, only its id
    HubRunFailed(cold.FLOW)({"run_id": "manual__running", "reason": "task_failure"})
    run = _run(ctx.load_id)
    assert run["status"] == "failed" and run["error"] == "DAG run failed: task_failure"


def test_a_gate_s_account_and_a_committed_success_are_kept(hub_url: str) -> None:
    gated = _open("manual__gated")
    gated.fail("gate 'products.l0' (hard, layer 0) failed: 3 of 3 rows quarantined")
    done = _open("manual__done")
    done.finish()
    for run_id in ("manual__gated", "manual__done"):
        HubRunFailed(cold.FLOW)({"dag_run": SimpleNamespace(run_id=run_id), "reason": "task_failure"})
    assert _run(gated.load_id)["error"].startswith("gate 'products.l0'")
    assert _run(done.load_id)["status"] == "success" and _run(done.load_id)["error"] is None
    HubRunFailed(cold.FLOW)({"run_id": "manual__never_opened", "reason": "task_failure"})  # nothing to fail
