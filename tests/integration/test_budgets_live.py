"""The PIM's limit holds across task processes: Airflow's own scheduler and LocalExecutor run three DAGs that call
the PIM at once, each task in its own process with its own PIM token, and the sandbox counts the PIM calls in
flight.

Invariant (ARCHITECTURE.md): the requests in flight to a system from all workers together never exceed its
documented limit. Akeneo's is 4 API calls at once per connection; every task process authenticates as the one
connection, so only the ``pim_api`` pool (4 slots, a slot per call in flight) keeps them under it. The sandbox
counts a call refused for being over the limit as one more at once, so a peak above 4 (or any refusal) is a
breach, and a peak of 1 would mean the tasks never overlapped and the test proved nothing.

The PIM answers every call 0.3 s late (an injected latency, counted as in flight), so the PIM tasks of the nightly,
the weekly reconciliation and a seasonal dry run overlap on the small Luma gear catalog. Within ~3 minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.airflow.budgets import LIMITS, POOLS
from catalog_sync.hub.db import migrate
from tests.conftest import load_sandbox
from tests.integration.airflow_live import live_airflow
from tests.integration.test_cold_retries_live import gear_catalog

pytestmark = pytest.mark.airflow_live

DAGS = ("cold_data_nightly", "weekly_reconciliation", "seasonal_republish")


def test_pim_calls_in_flight_from_all_task_processes_stay_within_akeneos_limit(
        tmp_path: Path, fresh_sandbox: Any) -> None:
    sandbox = fresh_sandbox
    load_sandbox(sandbox, gear_catalog(tmp_path / "gear"))
    sandbox.settings(storefront_bucket_size=100000, storefront_leak_per_s=10000)
    sandbox.set_faults("pim", latency_ms=300)
    limit = sandbox.concurrency("pim")["limit"]
    assert limit == LIMITS["pim"].requests == POOLS["pim_api"].size == 4
    skus = sorted(item["sku"] for item in _erp_skus(sandbox))[:12]
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    with live_airflow(tmp_path / "live", [f"{d}.py" for d in DAGS], sandbox.url,
                      {"CATALOG_SYNC_HUB_URL": hub, "CATALOG_SYNC_HOME": str(tmp_path / "home"),
                       # the API without logins: the weekly run's reference approval is answered through it
                       "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"},
                      connection_extras={"catalog_sync_pim": {"batch_size": 5}}) as airflow:
        # catchup is off: Airflow schedules the latest interval of the nightly and of the weekly once parsed
        def scheduled() -> dict[str, str] | None:
            found = {dag_id: airflow.runs(dag_id) for dag_id in DAGS[:2]}
            return {dag_id: r[0][0] for dag_id, r in found.items()} if all(found.values()) else None

        runs = airflow.wait(scheduled, 120, "the scheduled nightly and weekly runs")
        sandbox.reset_concurrency()  # count from here: what the three DAGs send together
        airflow.cli("dags", "trigger", "seasonal_republish", "--run-id", "budgets_dry_run",
                    "--conf", json.dumps({"skus": skus, "dry_run": True}))
        runs["seasonal_republish"] = "budgets_dry_run"
        # the first weekly run proposes the PIM's category tree and waits for a person
        airflow.answer_when_asked("weekly_reconciliation", runs["weekly_reconciliation"], "approve_reference_data",
                                  "Approve")
        states = {dag_id: airflow.wait_finished(dag_id, run_id, within=240) for dag_id, run_id in runs.items()}
        pim = sandbox.concurrency("pim")
        unfinished = {dag_id: {t: s for t, (s, _) in airflow.task_instances(dag_id, run_id).items()
                               if s not in ("success", "skipped")} for dag_id, run_id in runs.items()}
        assert states == dict.fromkeys(states, "success"), (states, unfinished, airflow.tails()[-4000:])
    print(f"PIM calls at once from all task processes: peak {pim['peak']} (limit {limit}), refused {pim['refused']}")
    assert pim["refused"] == 0, pim
    assert 1 < pim["peak"] <= limit, pim


def _erp_skus(sandbox: Any) -> list[dict[str, Any]]:
    from catalog_sync.flows.systems import Systems

    systems = Systems.from_base_url(sandbox.url, sandbox.credentials)
    try:
        return [i for page in systems.erp.iter_items() for i in page.records]
    finally:
        systems.close()
