"""Defaults every Catalog Sync DAG shares. Light to import: DAG files import it at parse time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

OWNER = "catalog-sync"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

#: Retries at about 1, 5 and 25 minutes (capped at 30): long enough for a rate limit or a deploy to pass.
#: Tasks where a retry cannot help (a failed quality gate) raise AirflowFailException, which skips them.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 5.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=1),
}


def default_args(**overrides: Any) -> dict[str, Any]:
    """The shared defaults plus the failure notifier, with per-DAG overrides."""
    from catalog_sync.airflow.notifiers import CatalogSyncAlertNotifier

    return {
        **DEFAULT_ARGS,
        "on_failure_callback": CatalogSyncAlertNotifier(severity="critical"),
        **overrides,
    }


class HubRunFailed:
    """DAG-level failure callback: marks the run failed in the hub, so the UI never shows a dead run as running.

    Only a run the hub still shows as running is changed: a run a task already failed with its own account (a hard
    gate names itself, its share and its expectations) keeps it, and a run whose ``finish`` committed stays a
    success (its data and cursors are in; a later task cannot undo that).
    """

    def __init__(self, flow: str) -> None:
        self.flow = flow

    def __call__(self, context: Any) -> None:
        from catalog_sync.engine.run import RunContext
        from catalog_sync.flows.steps import run_load_id
        from catalog_sync.hub import repo
        from catalog_sync.hub.db import session_scope

        # The DAG processor passes only dag, run_id and reason when it has no task to describe the run by.
        run_id = getattr(context.get("dag_run"), "run_id", None) or context.get("run_id")
        if not run_id:
            return
        load_id = run_load_id(self.flow, run_id)
        with session_scope() as s:
            run = repo.get_run(s, load_id)
        if run is None or run["status"] != "running":
            return  # never registered (failed before open_run), or already settled with a better account
        RunContext.attach(load_id).fail(f"DAG run failed: {context.get('reason') or 'a task failed'}")
