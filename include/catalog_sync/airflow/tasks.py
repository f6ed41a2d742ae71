"""What DAG tasks need from Airflow at run time: the systems from connections, the run's window.

Kept out of the DAG files so those stay orchestration only; imported inside task bodies, never at parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from catalog_sync.flows.systems import Systems


def systems() -> Systems:
    """The five systems, each built from its Airflow connection (``catalog_sync_<system>``), and the CDN when its
    connection exists (a deployment without one gets ``cdn=None``, and its purges are recorded as skipped)."""
    from airflow.exceptions import AirflowNotFoundException

    from catalog_sync.airflow.hooks import HOOKS, OPTIONAL
    from catalog_sync.domain import System

    clients = {s: HOOKS[s]().get_conn() for s in System if s not in OPTIONAL}
    try:
        cdn = HOOKS[System.CDN]().get_conn()
    except AirflowNotFoundException:
        cdn = None
    return Systems(clients[System.ERP], clients[System.PIM], clients[System.DAM], clients[System.STOREFRONT],
                   clients[System.SUPPLIER], cdn=cdn)


def run_window(context: Any) -> dict[str, Any]:
    """dag_id, run_id and the data window of the running DAG run.

    A manual run's data interval can end hours before it was triggered (the last cron tick); its window ends
    at ``run_after`` instead, so "run it now" means now. Scheduled runs keep their data interval, so a re-run of
    the same interval does the same work.
    """
    dag_run = context["dag_run"]
    end: datetime | None = context.get("data_interval_end")
    run_after = getattr(dag_run, "run_after", None)
    run_type = str(getattr(dag_run, "run_type", "") or "")
    if run_after is not None and (end is None or run_type.endswith("manual")):
        end = run_after
    return {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id,
            "window_start": context.get("data_interval_start"), "window_end": end}


def resumable(step: Callable[..., Any], load_id: str, *args: Any) -> Any:
    """Run a flow step as the running Airflow task (``task_id``, ``[map_index]`` for a mapped one), idempotently:
    a retry, or the task cleared in the UI, resumes where the last attempt committed (``engine.run.run_task``)."""
    from airflow.sdk import get_current_context

    from catalog_sync.engine.run import run_task

    ti = get_current_context()["ti"]
    map_index = getattr(ti, "map_index", -1)
    task = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}[{map_index}]"
    return run_task(task, load_id, step, *args)
