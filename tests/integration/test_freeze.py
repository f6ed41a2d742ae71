"""Freeze windows (flows/freeze.py) against the sandbox and a real hub.

During a declared freeze a nightly moving a product to another category writes the rest of its content but keeps
the storefront's categories, and records the move as a held change; the ERP's stock keeps reaching the shop through
the hot path; and the ``freeze_release`` DAG, under Airflow's own scheduler, asks a person in Airflow's Required
actions and, once approved, applies the move through the nightly's publish. Deletions and a bulk publish are held
and released the same way (in process).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync.engine.run import RunContext
from catalog_sync.flows import freeze, hot, reconcile, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import AuditEvent, HeldChange, SyncRun
from catalog_sync.reliability import run_cold
from catalog_sync.trace import explain_sku
from catalog_sync.trace_cli import render_text
from tests.conftest import load_sandbox
from tests.integration.airflow_live import LiveAirflow
from tests.integration.test_cold_retries_live import gear_catalog

DAG = "freeze_release"


def calendar(path: Path, *holds: str, active: bool = True) -> Path:
    """A calendar with one window around now (or one that ended an hour ago) holding ``holds``."""
    now = datetime.now(UTC)
    start, end = (now - timedelta(days=1), now + timedelta(days=1)) if active else (
        now - timedelta(days=2), now - timedelta(hours=1))
    path.write_text(f"""windows:
  - name: test-peak
    start: "{start.isoformat()}"
    end: "{end.isoformat()}"
    holds: [{", ".join(holds)}]
    reason: a test's freeze
""")
    return path


def nightly(systems: Systems, run_id: str) -> str:
    """The whole nightly, its tasks in order (catalog_sync.reliability); its load id, the run a success."""
    run = run_cold(systems, run_id)
    assert run.status == "success", run
    return run.load_id


@pytest.fixture
def published(tmp_path: Path, fresh_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Systems, str]]:
    """The gear catalog published by a first nightly (no freeze yet), with its own hub."""
    load_sandbox(fresh_sandbox, gear_catalog(tmp_path / "gear"))
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub)
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        nightly(systems, "scheduled__first")
        yield systems, hub
    finally:
        systems.close()


def move_a_product(systems: Systems) -> tuple[str, list[str], list[str]]:
    """Move one simple product on the shop to another product's category in the PIM; (sku, shop tags before,
    its new PIM categories)."""
    ids = steps.external_ids("storefront", "product")
    by_category: dict[tuple[str, ...], str] = {}
    for sku in sorted(ids):
        product = systems.pim.get_product(sku)
        if product and not product.get("parent"):
            by_category.setdefault(tuple(product.get("categories") or []), sku)
    assert len(by_category) >= 2, by_category
    (codes, sku), (other, _) = list(by_category.items())[:2]
    before = shop_tags(systems, sku)
    assert systems.pim.upsert_products([{"identifier": sku, "categories": list(other)}])[0].ok
    return sku, before, list(other)


def shop_tags(systems: Systems, sku: str) -> list[str]:
    product_id, _ = steps.external_ids("storefront", "product", [sku])[sku]
    product = systems.storefront.get_product(int(product_id))
    assert product is not None
    return sorted(t.strip() for t in (product.get("tags") or "").split(",") if t.strip())


def stock_flows(systems: Systems) -> None:
    """The hot path during the freeze: an ERP stock change reaches the shop at once."""
    variant_ids = steps.external_ids("storefront", "variant")
    sku, (_, extra) = next((k, v) for k, v in sorted(variant_ids.items()) if (v[1] or {}).get("inventory_item_id"))
    assert systems.erp.set_stock(sku, "DC-EAST", 31).ok
    summary = hot.sync_changes(systems)
    assert summary["delivered"] >= 1 and summary["dead_lettered"] == 0
    mirror = {loc["erp_location"]: loc["id"] for loc in systems.storefront.locations()}
    levels = systems.storefront.inventory_levels([(extra or {})["inventory_item_id"]])
    assert next(lv["available"] for lv in levels if lv["location_id"] == mirror["DC-EAST"]) == 31


def held_rows(hub: str, **where: Any) -> list[HeldChange]:
    with session_scope(hub) as s:
        rows = s.scalars(select(HeldChange).filter_by(**where).order_by(HeldChange.id)).all()
        s.expunge_all()
        return list(rows)


@pytest.mark.airflow_live
def test_a_category_move_is_held_by_a_freeze_and_released_after_approval(
        tmp_path: Path, published: tuple[Systems, str], fresh_sandbox: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    systems, hub = published
    frozen = calendar(tmp_path / "freeze.yaml", "category_move", "deletion")
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR", str(frozen))
    sku, before, after = move_a_product(systems)

    load_id = nightly(systems, "scheduled__frozen")

    assert shop_tags(systems, sku) == before, "the storefront kept its categories during the freeze"
    (held,) = held_rows(hub, record_key=sku)
    assert (held.kind, held.status, held.window, held.load_id) == ("category_move", "held", "test-peak", load_id)
    assert held.change["before"] == before and held.change["after"] and held.change["after"] != before
    with session_scope(hub) as s:
        run = s.get(SyncRun, load_id)
        assert run is not None and run.status == "success"
        assert s.scalars(select(AuditEvent.outcome).where(AuditEvent.load_id == load_id,
                                                          AuditEvent.record_key == sku)).all().count("held") == 1
    trace = explain_sku(sku, systems, hub)
    assert [h["kind"] for h in trace["held_changes"]] == ["category_move"]
    assert f"test-peak: `{sku}` categories" in render_text(trace)  # catalog-sync explain
    stock_flows(systems)

    airflow = LiveAirflow(tmp_path / "live", [f"{DAG}.py"], fresh_sandbox.url, {
        "CATALOG_SYNC_HUB_URL": hub, "CATALOG_SYNC_HOME": str(tmp_path / "home"),
        "CATALOG_SYNC_FREEZE_CALENDAR": str(frozen),  # released while the freeze still holds
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    })
    airflow.start()
    try:
        run_id = "manual__release"
        airflow.wait(lambda: DAG in airflow.cli("dags", "list", "-o", "plain"), 120, "the DAG parsed")
        airflow.trigger(DAG, run_id)

        def unanswered(states: dict[str, tuple[str | None, int]]) -> None:
            assert states["list_held"][0] == "success"
            assert airflow.task_instances(DAG, run_id)["apply_release"][0] in (None, "none")
            assert shop_tags(systems, sku) == before  # nothing applied before the answer
            with sqlite3.connect(airflow.home / "airflow.db") as conn:
                (body,) = conn.execute(
                    "select h.body from hitl_detail h join task_instance ti on ti.id = h.ti_id "
                    "where ti.dag_id = ? and ti.run_id = ? and ti.task_id = 'approve_release'",
                    (DAG, run_id)).fetchone()
            assert f"`{sku}` categories" in body and "held by window `test-peak`" in body

        airflow.answer_when_asked(DAG, run_id, "approve_release", "Approve", before=unanswered)
        assert airflow.wait_finished(DAG, run_id) == "success", airflow.tails()
    finally:
        airflow.stop()

    assert shop_tags(systems, sku) == sorted(held.change["after"])
    (released,) = held_rows(hub, id=held.id)
    assert released.status == "released" and released.released_by and released.release_load_id
    with session_scope(hub) as s:
        run = s.get(SyncRun, released.release_load_id)
        assert run is not None and (run.flow, run.status) == ("freeze_release", "success")
    assert explain_sku(sku, systems, hub)["held_changes"] == []
    # released changes are not held again by the next night, though the freeze goes on
    nightly(systems, "scheduled__after")
    assert held_rows(hub, status="held") == [] and shop_tags(systems, sku) == sorted(held.change["after"])


def test_without_an_active_window_a_category_move_is_applied(
        tmp_path: Path, published: tuple[Systems, str], monkeypatch: pytest.MonkeyPatch) -> None:
    systems, hub = published
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR",
                       str(calendar(tmp_path / "over.yaml", "category_move", active=False)))
    sku, before, _ = move_a_product(systems)
    nightly(systems, "scheduled__thawed")
    assert shop_tags(systems, sku) != before and held_rows(hub) == []


def test_held_deletions_and_a_bulk_publish_are_released_through_their_own_flows(
        tmp_path: Path, published: tuple[Systems, str], monkeypatch: pytest.MonkeyPatch) -> None:
    systems, hub = published
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR",
                       str(calendar(tmp_path / "freeze.yaml", "deletion", "bulk_content")))
    # a bulk change: every product on the shop gets a new description in the PIM
    ids = steps.external_ids("storefront", "product")
    monkeypatch.setattr(freeze, "bulk_limits", lambda path=None: (0.5, 1))
    simple = sorted(sku for sku in ids if not (systems.pim.get_product(sku) or {}).get("parent"))
    for sku in simple:
        assert systems.pim.upsert_products([{"identifier": sku, "values": {"description": [
            {"locale": "en_US", "scope": "ecommerce", "data": f"Holiday copy for {sku}"}]}}])[0].ok
    nightly(systems, "scheduled__bulk")
    bulk = held_rows(hub, kind="bulk_content")
    assert {h.record_key for h in bulk} >= set(simple)
    assert "Holiday copy" not in (systems.storefront.get_product(int(ids[simple[0]][0])) or {}).get("body_html", "")

    # a deletion found by the weekly reconciliation
    gone = simple[0]
    weekly = reconcile.open_run(dag_id="weekly_reconciliation", run_id="scheduled__w1", window_start=None,
                                window_end=None)
    handle = (ids[gone][1] or {})["handle"]
    plan = [{"plan_key": f"pim:{gone}", "system": "pim", "sku": gone, "action": "disable"},
            {"plan_key": f"storefront:{gone}", "system": "storefront", "sku": gone, "action": "archive",
             "handle": handle}]
    RunContext.attach(weekly).stage("deletion_plan", plan, key="plan_key")
    done = reconcile.apply_deletions(weekly, systems)
    assert done["held"] == 2 and done["disabled"] == 0 and done["archived"] == 0
    assert (systems.pim.get_product(gone) or {}).get("enabled") is True

    listed = freeze.open_release(dag_id=DAG, run_id="manual__keep", hub_url=None)
    assert listed["held"] == len(bulk) + 2
    kept = freeze.release(listed["load_id"], {"chosen_options": ["Keep held"],
                                              "responded_by_user": {"id": "1", "name": "ops"}}, systems)
    assert kept["kept_held"] == listed["held"] and len(held_rows(hub, status="held")) == listed["held"]

    listed = freeze.open_release(dag_id=DAG, run_id="manual__go", hub_url=None)
    out = freeze.release(listed["load_id"], {"chosen_options": ["Approve"],
                                             "responded_by_user": {"id": "1", "name": "ops"}}, systems)
    assert out["released"] == listed["held"] and out["dead_lettered"] == 0, out
    assert held_rows(hub, status="held") == []
    assert (systems.pim.get_product(gone) or {}).get("enabled") is False
    assert "Holiday copy" in (systems.storefront.get_product(int(ids[simple[1]][0])) or {}).get("body_html", "")
    with session_scope(hub) as s:
        run = s.get(SyncRun, listed["load_id"])
        assert run is not None and run.status == "success", run.details if run else None


def test_an_approved_category_table_is_held_until_the_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog_sync import refdata
    from catalog_sync.flows import reference

    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub)
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR", str(calendar(tmp_path / "freeze.yaml", "taxonomy")))
    weekly = reconcile.open_run(dag_id="weekly_reconciliation", run_id="scheduled__w1", window_start=None,
                                window_end=None)
    owners = {**refdata.gate_seed(), "category": {"gear": {"parent": None, "labels": {"en_US": "Gear"}}}}
    proposal = refdata.propose(weekly, owners, hub)["proposal_id"]
    approver = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "merch.lead"}}

    assert reference.apply_decision(weekly, proposal, approver)["status"] == "held"
    assert refdata.applied(hub).categories() is None  # the gates still judge as before
    (held,) = held_rows(hub, kind="taxonomy")
    assert held.change["approved_by"] == "merch.lead" and held.record_key == str(proposal)

    listed = freeze.open_release(dag_id=DAG, run_id="manual__t1")
    out = freeze.release(listed["load_id"], {"chosen_options": ["Approve"],
                                             "responded_by_user": {"id": "1", "name": "ops"}}, None)
    assert out["released"] == 1
    assert refdata.applied(hub).categories() == {"gear"}
    assert refdata.proposals(hub)[0]["status"] == "approved" and refdata.proposals(hub)[0]["decided_by"] == "ops"
