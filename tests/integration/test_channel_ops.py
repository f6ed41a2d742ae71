"""The weekly reconciliation, the seasonal republish and freeze windows per sales channel (issue #21), against the
sandbox's Adobe Commerce and a real hub, after a real nightly published the gear catalog to both channels.

One module-scoped sandbox and hub carry the story, in order: a clean week finds nothing on Adobe; a product deleted
from the PIM is a deletion on Adobe (and is disabled there), a price changed on Adobe behind the nightly's back is
drift; Adobe down is Adobe's own finding and letter while the storefront is reconciled; a republish puts Adobe's
price back, and with Adobe down the storefront's repair completes and Adobe keeps its letters; a freeze holds a
bulk content publish to Adobe and the release sends it through Adobe's own publish; a rollback of the week that
disabled the deleted product on Adobe enables it there again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import delete, select

from catalog_sync.airflow.notifiers import dispatch
from catalog_sync.connectors import ClientOptions, RetryPolicy
from catalog_sync.connectors.adobe_commerce import AdobeCommerceClient, PollPolicy
from catalog_sync.flows import freeze, reconcile, republish
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, Drift, HeldChange, SyncRun
from catalog_sync.reliability import run_cold
from tests.conftest import PG_URL, load_sandbox, pg_schema_url
from tests.integration.test_cold_retries_live import gear_catalog

ADOBE = "adobe_commerce"
PIM_DELETED = "24-MB04"  # a simple bag the merchandisers delete from the PIM (the ERP still has it)
PRICE_EDITED = "24-MB02"  # a simple bag whose price someone changes in Adobe's admin
DOWN_REPUBLISHED = "24-MB03"  # republished while Adobe is down


@dataclass
class Story:
    server: Any
    systems: Systems
    hub: str
    folder: Path


def adobe_client(server: Any) -> AdobeCommerceClient:
    """Adobe's client with a short retry budget, so an outage is known within a second."""
    options = ClientOptions(retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.05), read_timeout=10)
    return AdobeCommerceClient(f"{server.url}/adobe_commerce", server.credentials["adobe_commerce"], options,
                               poll=PollPolicy(first=0.02, cap=0.5, timeout=30))


def calendar(path: Path, *holds: str) -> Path:
    """A calendar with one window around now holding ``holds`` (none: an empty calendar)."""
    now = datetime.now(UTC)
    if not holds:
        path.write_text("windows: []\n")
        return path
    path.write_text(f"""windows:
  - name: test-peak
    start: "{(now - timedelta(days=1)).isoformat()}"
    end: "{(now + timedelta(days=1)).isoformat()}"
    holds: [{", ".join(holds)}]
    reason: a test's freeze
""")
    return path


def adobe_product(story: Story, sku: str) -> dict[str, Any]:
    found = story.systems.channels[ADOBE].get_product(sku)
    assert found is not None, sku
    return found


def findings(load_id: str, system: str = ADOBE) -> dict[tuple[str, str], tuple[str, Any, Any]]:
    with session_scope() as s:
        rows = s.execute(select(Drift.record_key, Drift.attribute, Drift.kind, Drift.owner_value,
                                Drift.observed_value).where(Drift.load_id == load_id, Drift.system == system)).all()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def week(story: Story, run_id: str) -> dict[str, Any]:
    done = reconcile.run(story.systems, send=dispatch, run_id=run_id)
    with session_scope() as s:
        run = s.get(SyncRun, done["load_id"])
        assert run is not None and run.status == "success", run.details if run else None
    return done


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    from catalog_sync.hub.db import _engine, migrate
    from catalog_sync_sandbox.server import SandboxServer

    folder = tmp_path_factory.mktemp("channel-ops")
    hub_urls = pg_schema_url(PG_URL) if PG_URL else iter([f"sqlite:///{folder / 'hub.sqlite'}"])
    hub = next(hub_urls)
    server = SandboxServer(f"sqlite:///{folder / 'sandbox.sqlite'}").start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_SYNC_HUB_URL", hub)
        mp.setenv("CATALOG_SYNC_HOME", str(folder / "local-state"))
        mp.setenv("CATALOG_SYNC_STORE_URL", (folder / "shared-store").as_uri())
        mp.setenv("CATALOG_SYNC_FREEZE_CALENDAR", str(calendar(folder / "no-freeze.yaml")))
        _engine.cache_clear()
        migrate(hub)
        load_sandbox(server, gear_catalog(folder / "gear"))
        server.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
        systems = Systems.from_base_url(server.url, server.credentials)
        for client in systems.channels.values():
            client.close()
        systems.channels = {ADOBE: adobe_client(server)}
        try:
            first = run_cold(systems, "scheduled__first")
            assert first.status == "success" and first.hops[f"pim->{ADOBE}"]["delivered"] > 0, first
            yield Story(server, systems, hub, folder)
        finally:
            server.clear_faults(ADOBE)
            systems.close()
            server.stop()
            _engine.cache_clear()
            for _ in hub_urls:
                pass


def test_a_clean_week_finds_nothing_on_adobe(story: Story) -> None:
    done = week(story, "scheduled__clean")
    assert findings(done["load_id"]) == {}
    hop = done["counts"][f"{ADOBE}:products"] if f"{ADOBE}:products" in done["counts"] else None
    with session_scope() as s:
        run = s.get(SyncRun, done["load_id"])
        assert run is not None
        channel = run.details["channels"][ADOBE]
    assert channel["down"] is None and channel["records"] > 0 and channel["by_kind"] == {}
    assert hop is None or hop["read"] == channel["records"]


def test_a_pim_deletion_is_a_deletion_on_adobe_and_an_adobe_price_edit_is_drift(story: Story) -> None:
    expected_price = adobe_product(story, PRICE_EDITED)["price"]
    # behind the flows' backs: a merchandiser deletes a product in the PIM (the sandbox's PIM has no delete
    # route, so its row goes), someone edits a price in Adobe's admin
    from catalog_sync_sandbox import db

    with story.server.state.engine.begin() as conn:
        conn.execute(delete(db.pim_product).where(db.pim_product.c.identifier == PIM_DELETED))
    token = {"Authorization": f"Bearer {story.server.credentials['adobe_commerce']['access_token']}"}
    edited = requests.put(f"{story.server.url}/adobe_commerce/rest/all/V1/products/{PRICE_EDITED}", headers=token,
                          json={"product": {"sku": PRICE_EDITED, "price": 1.23}}, timeout=10)
    assert edited.status_code == 200, edited.text
    assert adobe_product(story, PIM_DELETED)["status"] == 1

    done = week(story, "scheduled__edited")

    found = findings(done["load_id"])
    assert found[(PIM_DELETED, "sku")] == ("deleted", "not in the PIM", PIM_DELETED)
    kind, owner, observed = found[(PRICE_EDITED, "price")]
    assert kind == "drift" and float(owner) == pytest.approx(expected_price) and float(observed) == 1.23
    assert set(found) == {(PIM_DELETED, "sku"), (PRICE_EDITED, "price")}, found
    # the deletion applied as the storefront's are: reversible (disabled, not removed), audited, delta-logged
    assert adobe_product(story, PIM_DELETED)["status"] == 2
    assert done["deletions"]["planned"] == 1 and done["deletions"]["failed"] == 0
    # a second week: the SKU is still reported, and its disable is unchanged
    again = week(story, "scheduled__edited_again")
    assert findings(again["load_id"])[(PIM_DELETED, "sku")][0] == "deleted"
    with session_scope() as s:
        run = s.get(SyncRun, again["load_id"])
        assert run is not None and run.details["deletions"]["unchanged"] == [f"{ADOBE}:{PIM_DELETED}"]


def test_adobe_down_is_its_own_finding_while_the_storefront_is_reconciled(story: Story) -> None:
    story.server.set_faults(ADOBE, error_rate=1.0, seed=21)  # every Adobe answer a 5xx
    try:
        done = week(story, "scheduled__adobe_down")
    finally:
        story.server.clear_faults(ADOBE)
    found = findings(done["load_id"])
    ((key, attribute), (kind, _, observed)), = found.items()
    assert (key, attribute, kind) == (ADOBE, "availability", "unavailable")
    assert "unavailable" in str(observed)
    with session_scope() as s:
        letters = s.scalars(select(DeadLetter).where(DeadLetter.load_id == done["load_id"])).all()
        run = s.get(SyncRun, done["load_id"])
        assert run is not None
        details = run.details
    assert [(x.source_system, x.reason_kind, x.expectation) for x in letters] == [
        (ADOBE, "channel", "channel_unavailable")]
    # the storefront, the PIM and the ERP were compared as in any week: the storefront's copy of the bag the PIM
    # lost (the showable repair's asset-link write left a PIM stub without content) is drift from its owner
    assert details["records"]["storefront"] > 0 and details["channels"][ADOBE]["down"]
    assert findings(done["load_id"], "storefront")[(PIM_DELETED, "name")][0] == "drift"


def test_a_republish_reaches_adobe_and_an_adobe_outage_leaves_the_storefront_repair(story: Story) -> None:
    wanted = story.systems.erp.get_item(PRICE_EDITED)
    assert wanted is not None
    assert adobe_product(story, PRICE_EDITED)["price"] == 1.23
    params = {"season": "test", "skus": [PRICE_EDITED], "dry_run": False,
              "repairs": ["dam_links", "pim_state", "storefront", "cache"]}
    done = republish.run(params, story.systems, run_id="manual__republish")
    assert adobe_product(story, PRICE_EDITED)["price"] != 1.23
    week_after = week(story, "scheduled__after_republish")
    assert (PRICE_EDITED, "price") not in findings(week_after["load_id"])
    actions = republish.diagnoses(done["load_id"])[PRICE_EDITED]["actions"]
    assert {(a["repair"], a["system"], a["status"]) for a in actions} >= {("channel", ADOBE, "published")}

    story.server.set_faults(ADOBE, error_rate=1.0, seed=22)
    try:
        down = republish.run({**params, "skus": [DOWN_REPUBLISHED]}, story.systems, run_id="manual__adobe_down")
    finally:
        story.server.clear_faults(ADOBE)
    diagnosis = republish.diagnoses(down["load_id"])[DOWN_REPUBLISHED]
    on_adobe = [a for a in diagnosis["actions"] if a["repair"] == "channel"]
    assert [(a["system"], a["status"]) for a in on_adobe] == [(ADOBE, "dead_lettered")]
    assert down["hops"]["triage"]["dead_lettered"] == 0, down["hops"]  # the storefront's outcome is its own
    with session_scope() as s:
        run = s.get(SyncRun, down["load_id"])
        assert run is not None and run.status == "success"
        letters = s.scalars(select(DeadLetter).where(DeadLetter.load_id == down["load_id"])).all()
    assert {(x.target_system, x.expectation) for x in letters} == {(ADOBE, "channel_unavailable")}


def test_a_freeze_holds_a_bulk_publish_to_adobe_and_the_release_sends_it(
        story: Story, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR",
                       str(calendar(story.folder / "bulk.yaml", "bulk_content")))
    monkeypatch.setattr(freeze, "bulk_limits", lambda path=None: (0.5, 1))
    simple = sorted(sku for sku in ("24-MB01", "24-MB02", "24-MB03", "24-MB05", "24-MB06", "24-UG01", "24-UG02",
                                    "24-UG03", "24-UG04", "24-UG05")
                    if (story.systems.pim.get_product(sku) or {}).get("enabled"))
    before = {sku: adobe_product(story, sku)["name"] for sku in simple}
    for sku in simple:
        assert story.systems.pim.upsert_products([{"identifier": sku, "values": {"name": [
            {"locale": "en_US", "scope": None, "data": f"Peak {sku}"}]}}])[0].ok

    night = run_cold(story.systems, "scheduled__frozen")
    assert night.status == "success" and night.unreconciled() == [], night

    held = [h for h in _held() if h["system"] == ADOBE]
    assert {h["record_key"] for h in held} == set(simple)
    assert all(h["kind"] == "bulk_content" and h["window"] == "test-peak" for h in held)
    assert {sku: adobe_product(story, sku)["name"] for sku in simple} == before
    with session_scope() as s:  # the Freeze windows page lists each hold with its system
        page = json.loads(json.dumps(freeze.overview(s), default=str))
    assert {h["record_key"] for h in page["held"] if h["system"] == ADOBE} == set(simple)
    assert any(f"content update on {ADOBE}" in h["what"] for h in page["held"])

    listed = freeze.open_release(dag_id="freeze_release", run_id="manual__adobe_release")
    out = freeze.release(listed["load_id"], {"chosen_options": ["Approve"],
                                             "responded_by_user": {"id": "1", "name": "ops"}}, story.systems)
    assert out["approved"] and out["dead_lettered"] == 0 and out["released"] == listed["held"], out
    assert {sku: adobe_product(story, sku)["name"] for sku in simple} == {sku: f"Peak {sku}" for sku in simple}
    assert [h for h in _held() if h["system"] == ADOBE] == []


def test_rolling_back_the_week_that_disabled_a_sku_on_adobe_enables_it_again(story: Story) -> None:
    """The weekly run's disable on Adobe is in its delta log, so ``sync_rollback`` of that run puts the status back
    on Adobe, audited and delta-logged as a run of its own, and a second rollback finds nothing left to restore."""
    from catalog_sync.flows import rollback
    from catalog_sync.hub.models import FieldDelta

    with session_scope() as s:
        week_id = s.scalar(select(SyncRun.load_id).where(SyncRun.run_id == "scheduled__edited",
                                                          SyncRun.flow == "weekly_reconciliation"))
    assert week_id is not None and adobe_product(story, PIM_DELETED)["status"] == 2
    todo = rollback.plan(week_id)
    assert [(r["system"], r["record_key"], r["fields"]) for r in todo["records"]] == [
        (ADOBE, PIM_DELETED, {"status": 1})] and todo["conflicts"] == []

    done = rollback.rollback(week_id, story.systems, by="ops")
    assert done["restored"] == 1 and adobe_product(story, PIM_DELETED)["status"] == 1
    with session_scope() as s:
        restoring = s.execute(select(FieldDelta.system, FieldDelta.record_key, FieldDelta.field, FieldDelta.before,
                                     FieldDelta.after).where(FieldDelta.load_id == done["load_id"])).all()
        marked = s.scalars(select(FieldDelta.rolled_back_by).where(FieldDelta.load_id == week_id)).all()
    assert [tuple(r) for r in restoring] == [(ADOBE, PIM_DELETED, "status", 2, 1)]
    assert marked == [done["load_id"]]
    assert rollback.plan(week_id)["records"] == []


def _held() -> list[dict[str, Any]]:
    with session_scope() as s:
        return [{"system": h.system, "record_key": h.record_key, "kind": h.kind, "window": h.window}
                for h in s.scalars(select(HeldChange).where(HeldChange.status == "held"))]
