"""The nightly and the weekly reconciliation on Airflow's CeleryExecutor with two workers that share nothing but
PostgreSQL, Redis and the object store (harness.py): scheduler, dag-processor, triggerer, api-server and the two
``airflow celery worker`` processes, each with its own folders, against the sandbox loaded with the demo catalog.

- cold_data_nightly runs end to end with its tasks on both workers (the task instances' hostnames), the hub's
  counts reconcile, and the sandbox PIM never had more calls in flight than Akeneo's limit (4), counted at the PIM;
- weekly_reconciliation runs end to end: its four reads run on both workers, so ``compare`` reads frames staged on
  another machine;
- the nightly's Data Docs, built on one worker, are served by the api-server (whose own state folder is empty)
  through the Catalog Sync UI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog_sync_sandbox.state import STOREFRONT_PLANS
from tests.distributed.harness import WORKERS, celery_airflow, hub_run, scheduled_run

pytestmark = [pytest.mark.airflow_live, pytest.mark.distributed]

NIGHTLY, WEEKLY = "cold_data_nightly", "weekly_reconciliation"
A, B = WORKERS
#: Tasks pinned to one worker's queue (the live cluster policy), so a hand-over between machines is certain rather
#: than left to where Celery happens to place tasks: a gate's validation result is written on A and the Data Docs
#: built from it on B; the reconciliation stages two systems' frames on each worker, so ``compare``, wherever it
#: runs, reads frames staged on the other machine. Every other task goes wherever Celery puts it.
PINNED = {f"{NIGHTLY}.gate_master_data": A, f"{NIGHTLY}.build_data_docs": B,
          f"{WEEKLY}.read_erp": A, f"{WEEKLY}.read_pim": A, f"{WEEKLY}.read_dam": B, f"{WEEKLY}.read_storefront": B}


def test_nightly_and_reconciliation_on_two_celery_workers(
        tmp_path: Path, pg_and_redis: None, fresh_sandbox: Any) -> None:
    # A Shopify Plus shop (the plan airflow_settings.yaml sizes the storefront pool for), so the images publish in
    # seconds rather than minutes.
    fresh_sandbox.settings(**STOREFRONT_PLANS["plus"])
    with celery_airflow(tmp_path / "dist", [f"{NIGHTLY}.py", f"{WEEKLY}.py"], fresh_sandbox.url,
                        {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                         "CATALOG_SYNC_TEST_PIN_TASKS": json.dumps(PINNED)}) as dist:
        airflow, hub = dist.airflow, dist.hub_url

        limit = fresh_sandbox.concurrency("pim")["limit"]
        assert limit == 4  # Akeneo: a fifth call in flight on one connection gets 429
        fresh_sandbox.reset_concurrency()
        nightly = scheduled_run(airflow, NIGHTLY)
        assert airflow.wait_finished(NIGHTLY, nightly, within=420) == "success", airflow.task_instances(
            NIGHTLY, nightly)
        # the PIM saw no more calls at once from the two workers together than its limit, and refused none
        pim = fresh_sandbox.concurrency("pim")
        print(f"PIM calls at once during the nightly on two workers: peak {pim['peak']} (limit {limit})")
        assert pim["refused"] == 0 and 1 <= pim["peak"] <= limit, pim
        hosts = airflow.task_hosts(NIGHTLY, nightly)
        assert set(hosts.values()) == set(WORKERS), hosts  # both workers ran tasks, nothing ran elsewhere
        run = hub_run(hub, NIGHTLY, nightly)
        assert run.status == "success", run.error
        hops = (run.details or {})["hops"]
        assert hops["erp->pim"]["read"] > 0 and hops["erp->pim"]["delivered"] > 0, hops
        for hop, c in hops.items():
            assert c["read"] == c["delivered"] + c["unchanged"] + c["dead_lettered"], (hop, c)

        weekly = scheduled_run(airflow, WEEKLY)
        # The first weekly run proposes the reference tables (the PIM's category tree) and waits for a person: the
        # approval goes through the api-server, and a worker applies it.
        airflow.wait_api()
        airflow.answer_when_asked(WEEKLY, weekly, "approve_reference_data", "Approve",
                                  headers={"Authorization": f"Bearer {airflow.token()}"})
        assert airflow.wait_finished(WEEKLY, weekly, within=300) == "success", airflow.task_instances(
            WEEKLY, weekly)
        weekly_hosts = airflow.task_hosts(WEEKLY, weekly)
        assert set(weekly_hosts.values()) <= set(WORKERS), weekly_hosts
        # the reads ran where they were pinned, two on each machine: compare read frames another machine staged
        ran_on = {f"{NIGHTLY}.{t}": h for t, h in hosts.items()} | {f"{WEEKLY}.{t}": h for t, h in weekly_hosts.items()}
        assert {task: ran_on.get(task) for task in PINNED} == PINNED, ran_on
        assert hub_run(hub, WEEKLY, weekly).status == "success"

        # The Data Docs one worker built, through the api-server (its own state folder holds none).
        airflow.wait_api()
        resp = httpx.get(f"{airflow.url}/catalog-sync/runs/{run.load_id}/data-docs/index.html",
                         headers={"Authorization": f"Bearer {airflow.token()}"}, timeout=30)
        assert resp.status_code == 200, resp.text[:2000]
        assert resp.headers["content-type"].startswith("text/html") and "<html" in resp.text.lower()
        assert not list((tmp_path / "dist" / "api-server" / "catalog-sync").rglob("index.html"))
