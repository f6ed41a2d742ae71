"""What DAG tasks need from Airflow at run time: the systems from connections, the run's window.

Kept out of the DAG files so those stay orchestration only; imported inside task bodies, never at parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from catalog_sync.airflow import budgets
from catalog_sync.connectors import ConfigurationError
from catalog_sync.flows.systems import Systems


def systems() -> Systems:
    """The five systems, each built from its Airflow connection (``catalog_sync_<system>``), and the CDN when its
    connection exists (a deployment without one gets ``cdn=None``, and its purges are recorded as skipped).

    In a running task the clients follow the task's request budget (``catalog_sync.airflow.budgets``): the client
    of its pool's system keeps at most ``pool_slots`` requests in flight, each other system its pool may call the
    pool's figure for it, and a system the pool has no budget for is :class:`OutsideBudget` (a
    ``ConfigurationError`` as soon as it is used). Outside a task (a script, a test) every client keeps its
    connection's own ``max_concurrency``.
    """
    from airflow.exceptions import AirflowNotFoundException

    from catalog_sync.airflow.hooks import HOOKS, OPTIONAL
    from catalog_sync.domain import System

    running = running_task()
    budget = None if running is None else budgets.concurrency(running[1], running[2])

    def build(system: System) -> Any:
        if budget is None:
            return HOOKS[system]().get_conn()
        if system.value not in budget:
            assert running is not None
            return OutsideBudget(system.value, *running)
        return HOOKS[system]().get_conn(max_concurrency=budget[system.value])

    clients = {s: build(s) for s in System if s not in OPTIONAL}
    try:
        cdn = build(System.CDN)
    except AirflowNotFoundException:
        cdn = None
    return Systems(clients[System.ERP], clients[System.PIM], clients[System.DAM], clients[System.STOREFRONT],
                   clients[System.SUPPLIER], cdn=cdn, channels=_channels_in_budget(budget))


def _channels_in_budget(budget: dict[str, int] | None) -> dict[str, Any]:
    """The declared channels the running task's pool has a budget for (all of them outside a task) whose
    connection exists, by name."""
    from airflow.exceptions import AirflowNotFoundException

    from catalog_sync.governance.channels import load_channels

    out: dict[str, Any] = {}
    for channel in load_channels().channels.values():
        if budget is not None and channel.name not in budget:
            continue
        try:
            out[channel.name] = channel_client(channel.name)
        except AirflowNotFoundException:
            continue
    return out


def channel_client(name: str) -> Any:
    """The client of the declared sales channel ``name`` (``governance/channels.yaml``), from its Airflow connection.
    In a running task it keeps the requests in flight its pool's budget gives the channel (``pool_slots`` in the
    channel's own pool); from a pool without a budget for it, it is :class:`OutsideBudget`."""
    from catalog_sync.airflow.hooks import AdobeCommerceHook
    from catalog_sync.governance.channels import load_channels

    channel = load_channels().channel(name)
    running = running_task()
    if running is None:
        return AdobeCommerceHook(channel.connection_id).get_conn()
    budget = budgets.concurrency(running[1], running[2])
    if name not in budget:
        return OutsideBudget(name, *running)
    return AdobeCommerceHook(channel.connection_id).get_conn(max_concurrency=budget[name])


def channel_source_map(name: str) -> dict[str, str]:
    """The declared channel ``name``'s ERP location -> inventory source map (its connection's ``source_map``)."""
    from catalog_sync.airflow.hooks import AdobeCommerceHook
    from catalog_sync.governance.channels import load_channels

    return AdobeCommerceHook(load_channels().channel(name).connection_id).source_map()


def running_task() -> tuple[str, str | None, int] | None:
    """(``dag_id.task_id``, pool, pool_slots) of the Airflow task this process runs; None outside a task."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except (RuntimeError, KeyError):
        return None
    task = ti.task
    return f"{ti.dag_id}.{ti.task_id}", getattr(task, "pool", None), int(getattr(task, "pool_slots", 1) or 1)


class OutsideBudget:
    """Stands for a system the running task's pool has no request budget for: using it is a configuration
    error (fail fast, no retry) naming the task, its pool and the system, rather than requests that no pool
    counts. ``close`` is allowed, so a ``Systems`` holding one closes as usual."""

    def __init__(self, system: str, task: str, pool: str | None, pool_slots: int) -> None:
        self.system, self.task, self.pool, self.pool_slots = system, task, pool, pool_slots

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ConfigurationError(
            f"task {self.task} called the {self.system} from pool {self.pool!r}, which has no request budget for "
            f"it: run the task in {self.system}'s pool or add the {self.system} to its pool's 'also' "
            "(catalog_sync.airflow.budgets.POOLS)", system=self.system)

    def __repr__(self) -> str:
        return f"OutsideBudget({self.system!r}, task={self.task!r}, pool={self.pool!r})"


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
