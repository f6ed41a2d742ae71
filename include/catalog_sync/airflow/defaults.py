"""Defaults every Catalog Sync DAG shares. Light to import: DAG files import it at parse time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

OWNER = "catalog-sync"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

class FailFast(RetryPolicy):
    """No retry for what a retry cannot fix: the connectors' "fail fast" class (``ConfigurationError`` and its
    ``AuthError``: a 400/401/403/404 of an endpoint, a rejected token), a missing Airflow connection, and a
    breached hard gate. The task ends on its first try with the message the client classified; every other
    failure keeps the task's normal retries.

    Evaluated in the worker only (Airflow serializes just the fact that a policy exists), so the connector
    classes are imported when a task fails, never while the DAG file is parsed.
    """

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int,
                 context: Any = None) -> RetryDecision:
        kind = fail_fast_kind(exception)
        if kind is None:
            return RetryDecision.default()
        return RetryDecision.fail(reason=f"{kind}, not retried: {exception}")


def fail_fast_kind(exc: BaseException) -> str | None:
    """What makes ``exc`` (or an exception it was raised from) a fail-fast failure; None when a retry may help."""
    import sys

    from airflow.exceptions import AirflowNotFoundException

    from catalog_sync.connectors.http import AuthError, ConfigurationError

    # A GateFailed can only come from a process that imported the gate module (pandas, numpy); when it was not
    # imported, no need to pay for that import just to say "no".
    gate = sys.modules.get("catalog_sync.quality.gate")
    gate_failed: type[BaseException] | None = getattr(gate, "GateFailed", None)

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AuthError):
            return "authentication failed"
        if isinstance(current, ConfigurationError):
            return "configuration error"
        if isinstance(current, AirflowNotFoundException):
            return "connection missing"
        if gate_failed is not None and isinstance(current, gate_failed):
            return "hard quality gate breached"
        current = current.__cause__ or current.__context__
    return None


#: Retries at about 1, 5 and 25 minutes (capped at 30): long enough for a rate limit or a deploy to pass.
#: What a retry cannot fix (configuration, credentials, a breached hard gate) is not retried at all (FailFast).
DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 5.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=1),
    "retry_policy": FailFast(),
}


def default_args(**overrides: Any) -> dict[str, Any]:
    """The shared defaults plus the failure notifier, with per-DAG overrides."""
    from catalog_sync.airflow.notifiers import CatalogSyncAlertNotifier

    return {
        **DEFAULT_ARGS,
        "on_failure_callback": CatalogSyncAlertNotifier(severity="critical"),
        **overrides,
    }


def freshness_deadline(interval: timedelta, what: str, *, from_logical_date: bool = False) -> Any:
    """An Airflow deadline alert: a run not finished ``interval`` after it was queued (or after its logical date)
    sends the freshness alert ``what`` through the alert notifiers (``notifiers.deadline_missed``, run by the
    triggerer)."""
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    reference = DeadlineReference.DAGRUN_LOGICAL_DATE if from_logical_date else DeadlineReference.DAGRUN_QUEUED_AT
    return DeadlineAlert(reference=reference, interval=interval,
                         callback=AsyncCallback("catalog_sync.airflow.notifiers.deadline_missed",
                                                kwargs={"what": what}))


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
