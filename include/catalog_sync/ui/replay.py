"""Replaying dead letters: trigger the ``dead_letter_replay`` DAG through Airflow's own REST API.

Why the REST API and not the api-server's internals: the call carries the *caller's own* token, so Airflow
itself decides (again) whether this person may trigger the DAG, validates the conf against the DAG's params,
and records the trigger in its audit log under their name — exactly as if they had pressed "Trigger" in the
Airflow UI. The replay DAG marks each letter ``replayed`` once it was delivered; the UI never does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from catalog_sync.ui.auth import REPLAY_DAG_ID

#: Where the UI reaches Airflow's REST API; by default the api-server that served the request.
API_URL_ENV = "CATALOG_SYNC_AIRFLOW_API_URL"


@dataclass(frozen=True)
class ReplayOutcome:
    """What Airflow answered: ``ok`` with the new run id, or a message fit to show a person."""

    ok: bool
    status_code: int
    message: str
    dag_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status_code": self.status_code,
            "message": self.message,
            "dag_run_id": self.dag_run_id,
        }


def api_base_url(request_base: str) -> str:
    """The Airflow REST API root: ``CATALOG_SYNC_AIRFLOW_API_URL`` if set, else the serving api-server."""
    return (os.environ.get(API_URL_ENV) or request_base).rstrip("/")


async def trigger_dag(
    base_url: str,
    token: str,
    dag_id: str,
    conf: dict[str, Any],
    note: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 30.0,
) -> ReplayOutcome:
    """POST ``/api/v2/dags/{dag_id}/dagRuns`` with ``conf`` as the caller.

    Args:
        base_url: Airflow api-server root, e.g. ``http://127.0.0.1:8080``.
        token: the caller's JWT, forwarded as a bearer token (never logged or shown).
        dag_id: the DAG to trigger.
        conf: the run's conf (Airflow validates it against the DAG's params).
        note: the run's note, shown in Airflow's UI.
        transport: an httpx transport (tests point it at a stand-in for Airflow).
        timeout: seconds to wait for Airflow.
    """
    url = f"{base_url}/api/v2/dags/{dag_id}/dagRuns"
    body = {"logical_date": None, "conf": conf, "note": note}
    try:
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            resp = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return ReplayOutcome(
            False, 502, f"Could not reach Airflow's REST API at {base_url}: {type(exc).__name__}"
        )
    if resp.status_code in (200, 201):
        run_id = resp.json().get("dag_run_id")
        message = f"Triggered {dag_id} run {run_id}."
        if await _paused(base_url, token, dag_id, transport, timeout):
            message += (f" {dag_id} is paused in Airflow, so the run waits in the queue: unpause the DAG (its "
                        "toggle on the DAGs page) to let it start.")
        return ReplayOutcome(True, resp.status_code, message, run_id)
    if resp.status_code == 404:
        return ReplayOutcome(
            False,
            404,
            f"The DAG {dag_id!r} does not exist in Airflow (yet): nothing was triggered. "
            "Deploy it, wait for the DAG processor to parse it, then try again.",
        )
    if resp.status_code in (401, 403):
        return ReplayOutcome(False, 403, f"Airflow refused to trigger {dag_id!r} for you ({resp.status_code}).")
    try:
        detail = resp.json().get("detail")
    except ValueError:
        detail = None
    return ReplayOutcome(
        False,
        resp.status_code,
        f"Airflow answered {resp.status_code} when triggering {dag_id!r}: {detail}",
    )


async def _paused(base_url: str, token: str, dag_id: str, transport: httpx.AsyncBaseTransport | None,
                  timeout: float) -> bool:
    """Whether Airflow says ``dag_id`` is paused (a run triggered then stays queued); False when it cannot tell."""
    try:
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            resp = await client.get(f"{base_url}/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {token}"})
        return resp.status_code == 200 and resp.json().get("is_paused") is True
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


async def trigger_replay(
    base_url: str,
    token: str,
    ids: list[int],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 30.0,
) -> ReplayOutcome:
    """Trigger ``dead_letter_replay`` with conf ``{"dead_letter_ids": ids}`` (already checked to be open) as the
    caller: see :func:`trigger_dag`."""
    return await trigger_dag(base_url, token, REPLAY_DAG_ID, {"dead_letter_ids": ids},
                             f"Replay of {len(ids)} dead letter(s)", transport=transport, timeout=timeout)
