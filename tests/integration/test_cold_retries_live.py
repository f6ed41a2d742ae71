"""cold_data_nightly under Airflow's own scheduler and LocalExecutor (tests/integration/airflow_live.py): retries,
clears, quiet nights and hard-gate nights end the way an operator needs them to.

One Airflow serves four nights, on a small catalog (the Luma gear: 32 simple products) so the story stays short:

a. the scheduled night: ``load_pim`` is killed with SIGKILL right after its third PIM batch write, ``link_assets``
   and ``publish_products`` right after their first (a test-only hook, live_hooks/sitecustomize.py), each after
   counting what it read; Airflow retries them, ``load_pim`` resumes after the batches its first try committed,
   and the run succeeds with counts that reconcile, every new variant's opening stock, and no duplicate anywhere;
b. every task of that finished run is cleared and re-run: nothing in the hub or in any system changes;
c. a quiet night (nothing changed since) succeeds and says so, without Data Docs and without an alert;
d. a night whose ERP changes break the hard syntax gate fails once: the hub run's error and the one alert name the
   gate, the failing share and the top failing expectation.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync import store
from catalog_sync.flows import steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import (
    AuditEvent,
    DeadLetter,
    DqResult,
    FieldDelta,
    SyncRun,
    SyncState,
    TaskCheckpoint,
    TaskCounter,
)
from tests.conftest import LUMA, load_sandbox
from tests.integration.airflow_live import AlertSink, live_airflow

pytestmark = pytest.mark.airflow_live

DAG = "cold_data_nightly"
#: The Luma gear files: 32 simple products with images, loaded in a blink.
GEAR = ("CatalogSampleData_attributes.csv", "CatalogSampleData_categories.csv",
        "CatalogSampleData_products_gear_bags.csv", "CatalogSampleData_images_gear_bags.csv",
        "CatalogSampleData_products_gear_fitness_equipment.csv", "CatalogSampleData_images_gear_fitness_equipment.csv",
        "CatalogSampleData_products_gear_watches.csv", "CatalogSampleData_images_gear_watches.csv")
PIM_BATCH = 5
KILL_AFTER_WRITES = 3


def gear_catalog(folder: Path) -> Path:
    folder.mkdir()
    for name in GEAR:
        (folder / name).symlink_to(LUMA / name)
    (folder / "images").symlink_to(LUMA / "images")
    return folder


def hub_state(hub: str, load_id: str) -> dict[str, Any]:
    """Everything the hub holds about one run, and the cursors, as comparable values."""
    def rows(model: Any, *where: Any) -> list[tuple[Any, ...]]:
        cols = [c for c in model.__table__.columns if c.name not in {"id"}]
        return sorted(tuple(json.dumps(getattr(r, c.name), default=str, sort_keys=True) for c in cols)
                       for r in s.scalars(select(model).where(*where)))

    with session_scope(hub) as s:
        return {
            "run": rows(SyncRun, SyncRun.load_id == load_id),
            "counters": rows(TaskCounter, TaskCounter.load_id == load_id),
            "checkpoints": rows(TaskCheckpoint, TaskCheckpoint.load_id == load_id),
            "audit": rows(AuditEvent, AuditEvent.load_id == load_id),
            "deltas": rows(FieldDelta, FieldDelta.load_id == load_id),
            "dead_letters": rows(DeadLetter),
            "dq": rows(DqResult, DqResult.load_id == load_id),
            "cursors": rows(SyncState),
        }


def systems_state(systems: Systems) -> dict[str, Any]:
    """What the PIM and the storefront hold, with their own change stamps (a write moves them)."""
    pim = [(p["identifier"], p.get("updated")) for page in systems.pim.iter_products() for p in page.records]
    shop = [(p["handle"], p.get("updated_at"), [v.get("sku") for v in p.get("variants") or []],
             [i.get("src") for i in p.get("images") or []])
            for page in systems.storefront.iter_products() for p in page.records]
    return {"pim": sorted(pim), "storefront": sorted(shop, key=lambda p: p[0])}


def run_of(hub: str, run_id: str) -> SyncRun:
    with session_scope(hub) as s:
        return s.scalars(select(SyncRun).where(SyncRun.dag_id == DAG, SyncRun.run_id == run_id)).one()


def test_retries_clears_quiet_and_gated_nights_under_the_scheduler(tmp_path: Path, fresh_sandbox: Any) -> None:
    load_sandbox(fresh_sandbox, gear_catalog(tmp_path / "gear"))
    fresh_sandbox.settings(storefront_bucket_size=100000, storefront_leak_per_s=10000)
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    markers = tmp_path / "killed"
    markers.mkdir()
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    erp_items = [i for page in systems.erp.iter_items() for i in page.records]
    dam_assets = [a for page in systems.dam.iter_assets() for a in page.records]
    assert len(erp_items) == 32 and len(dam_assets) == 38
    with AlertSink() as alerts, live_airflow(
        tmp_path / "live", [f"{DAG}.py"], fresh_sandbox.url,
        {"CATALOG_SYNC_HUB_URL": hub, "CATALOG_SYNC_HOME": str(tmp_path / "home"),
         "CATALOG_SYNC_STORE_URL": (tmp_path / "shared-store").as_uri(),  # apart from the local state folder
         "AIRFLOW_CONN_CATALOG_SYNC_ALERT_WEBHOOK": json.dumps({  # the alerts' webhook connection, at the sink
             "conn_type": "http", "host": "127.0.0.1", "port": int(alerts.url.rsplit(":", 1)[1].split("/")[0]),
             "schema": "http", "extra": {"endpoint": "/alerts"}}),
         "CATALOG_SYNC_TEST_KILL": f"load_pim:{KILL_AFTER_WRITES},link_assets:1,publish_products:1",
         "CATALOG_SYNC_TEST_KILL_MARKERS": str(markers)},
        connection_extras={"catalog_sync_pim": {"batch_size": PIM_BATCH}},
    ) as airflow:
        try:
            # a. The scheduled night (catchup is off: Airflow schedules the latest interval once the DAG is parsed).
            (first, _, _), *_ = airflow.wait(lambda: airflow.runs(DAG), 120, "the scheduled run")
            assert airflow.wait_finished(DAG, first) == "success", airflow.task_instances(DAG, first)
            # the gates and the docs task, each in its own task process, handed over through the store only
            assert store.local_leftovers(tmp_path / "home") == []
            assert (tmp_path / "shared-store" / "data_docs" / store.run_folder_name(run_of(hub, first).load_id)
                    / "index.html").is_file()
            killed = sorted(p.name for p in markers.iterdir())
            assert killed == ["link_assets", "load_pim", "publish_products"], f"the hook killed {killed}"
            tis = airflow.task_instances(DAG, first)
            # each killed once, retried once by Airflow
            assert tis["load_pim"] == tis["link_assets"] == tis["publish_products"] == ("success", 2), tis
            run = run_of(hub, first)
            assert run.status == "success", run.error
            hops = run.details["hops"]
            assert hops["erp->pim"]["read"] == len(erp_items) and hops["dam->pim"]["read"] == len(dam_assets), hops
            for hop, c in hops.items():
                assert c["read"] == c["delivered"] + c["unchanged"] + c["dead_lettered"], (hop, c)
            with session_scope(hub) as s:
                parts = set(s.scalars(select(TaskCheckpoint.part).where(
                    TaskCheckpoint.load_id == run.load_id, TaskCheckpoint.task == "load_pim")))
                pim_writes = Counter(s.scalars(select(AuditEvent.record_key).where(
                    AuditEvent.load_id == run.load_id, AuditEvent.system == "pim", AuditEvent.action == "write",
                    AuditEvent.task == "load_pim")))
                open_letters = Counter((d.flow, d.entity, d.record_key, d.target_system, d.reason_kind,
                                        d.expectation) for d in s.scalars(select(DeadLetter)))
            batches = -(-len(erp_items) // PIM_BATCH)
            assert parts == {"", "plan", *(f"batch:{n}" for n in range(batches))}
            # every record written to the PIM is in the trail once, though the killed try wrote some of them too
            assert set(pim_writes.values()) == {1} and len(pim_writes) > KILL_AFTER_WRITES * PIM_BATCH
            assert not [k for k, n in open_letters.items() if n > 1]
            state = systems_state(systems)
            pim_ids = [i for i, _ in state["pim"]]
            assert len(pim_ids) == len(set(pim_ids)) >= len(erp_items)
            handles = [p[0] for p in state["storefront"]]
            variant_skus = [sku for p in state["storefront"] for sku in p[2]]
            assert len(handles) == len(set(handles)) and len(variant_skus) == len(set(variant_skus)) > 0
            with session_scope(hub) as s:
                shop_writes = Counter(s.scalars(select(AuditEvent.record_key).where(
                    AuditEvent.load_id == run.load_id, AuditEvent.system == "storefront",
                    AuditEvent.entity == "product", AuditEvent.action == "write",
                    AuditEvent.task == "publish_products")))
            assert set(shop_writes.values()) == {1} and len(shop_writes) == len(handles), shop_writes
            # the retried publish still wrote every new variant's opening stock, once per location
            products = steps.external_ids("storefront", "product", hub_url=hub)
            assert {extra["opening_stock"] for _, extra in products.values()} == {"written"}
            items = {str(extra["inventory_item_id"]) for _, extra in steps.external_ids(
                "storefront", "variant", hub_url=hub).values()}
            levels = Counter(str(lv["inventory_item_id"]) for lv in systems.storefront.inventory_levels(sorted(items)))
            assert set(levels) == items and len(set(levels.values())) == 1, levels
            assert alerts.alerts == []  # a task that succeeded on its retry is no one's emergency

            # b. Every task of the finished run cleared and re-run: nothing changes, in the hub or the systems.
            before_hub, before_systems = hub_state(hub, run.load_id), systems_state(systems)
            airflow.cli("tasks", "clear", DAG, "--yes")
            airflow.wait(lambda: airflow.run_state(DAG, first) not in {"success"}, 60, "the cleared run restarting")
            assert airflow.wait_finished(DAG, first) == "success", airflow.task_instances(DAG, first)
            assert all(try_number >= 2 for _, try_number in airflow.task_instances(DAG, first).values())
            assert hub_state(hub, run.load_id) == before_hub
            assert systems_state(systems) == before_systems
            assert alerts.alerts == []

            # c. A quiet night: nothing changed since; it succeeds and says so.
            airflow.trigger(DAG, "manual__quiet")
            assert airflow.wait_finished(DAG, "manual__quiet") == "success", airflow.task_instances(
                DAG, "manual__quiet")
            quiet = run_of(hub, "manual__quiet")
            assert quiet.status == "success" and quiet.details["quiet"] is True, (quiet.status, quiet.error)
            assert quiet.records_read == 0
            assert airflow.task_instances(DAG, "manual__quiet")["build_data_docs"][0] == "success"
            assert systems_state(systems) == before_systems
            assert alerts.alerts == []

            # d. A night whose ERP changes break the hard syntax gate systemically (a feed of mistyped barcodes, over
            # the gate's share in a batch of at least 20) fails once, naming the gate. One bad row would not.
            for n, item in enumerate(erp_items[:22]):  # distinct barcodes: no duplicate UPC
                assert systems.erp.put_item({**item, "upc": f"1234{n:02d}"}).ok
            airflow.trigger(DAG, "manual__gated")
            assert airflow.wait_finished(DAG, "manual__gated") == "failed"
            tis = airflow.task_instances(DAG, "manual__gated")
            assert tis["gate_master_data"] == ("failed", 1), tis
            failed = [t for t, (state_, _) in tis.items() if state_ == "failed"]
            assert failed == ["gate_master_data"], tis  # the teardown built the docs; nothing else failed
            gated = run_of(hub, "manual__gated")
            assert gated.status == "failed"
            airflow.wait(lambda: alerts.alerts, 30, "the alert")
            time.sleep(5)  # the DAG's failure callback has run by now: it must not send or rewrite anything
            assert run_of(hub, "manual__gated").error == gated.error
            (alert,) = alerts.alerts
            for text in (gated.error or "", alert["body"]):
                assert "gate 'products.l0'" in text and "22 of 22 rows quarantined (100.00%" in text, text
                assert "top failing expectations: products.l0.upc_format" in text, text
            assert alert["severity"] == "critical" and alert["facts"]["task_id"] == "gate_master_data"
        except BaseException:
            print(airflow.tails())
            raise
        finally:
            systems.close()
