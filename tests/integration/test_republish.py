"""Issue #6: the seasonal republish against the sandbox, one failure mode at a time.

One published baseline (the nightly cold flow run once over Luma) is shared by this module and ``test_trace``;
each test injects its scenario on the SKUs the scenario picks, so the tests do not step on each other. For every
failure mode: a dry run names the right broken link and changes nothing; a real run fixes it (checked over HTTP
in each system); a second run finds nothing left to fix.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync.connectors import CdnClient, ClientOptions, RetryPolicy
from catalog_sync.flows import republish
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter, SyncRun
from catalog_sync.trace import REPAIRS, explain_sku, rendition
from tests.conftest import load_sandbox

#: Where the session keeps the published sandbox: on pytest's config, because this module is imported under two
#: names when ``test_trace`` imports it (a module-level cache would be built twice).
_ATTR = "_catalog_sync_published_baseline"


def published_baseline(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, name: str = "") -> Any:
    """A sandbox of its own with Luma published by the nightly cold flow, built once per session (and ``name``:
    a module whose scenarios would collide with this module's SKUs asks for one of its own).

    Shared with ``test_trace`` so the two modules need one ~minute-long publish, not two. The cold run writes to
    a hub of its own; each test then gets a fresh hub from the ``hub_url`` fixture.
    """
    attr = _ATTR + name
    if getattr(config, attr, None) is not None:
        return getattr(config, attr)
    from catalog_sync.flows import cold
    from catalog_sync.hub.db import migrate
    from catalog_sync_sandbox.server import SandboxServer

    folder: Path = tmp_path_factory.mktemp(f"republish-baseline{name}")
    server = SandboxServer(f"sqlite:///{folder / 'sandbox.sqlite'}").start()
    config.add_cleanup(server.stop)
    load_sandbox(server)
    server.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    hub = f"sqlite:///{folder / 'hub.sqlite'}"
    migrate(hub)
    previous = os.environ.get("CATALOG_SYNC_HUB_URL")
    os.environ["CATALOG_SYNC_HUB_URL"] = hub  # the cold steps use the process's default hub
    systems = Systems.from_base_url(server.url, server.credentials)
    try:
        load_id = cold.open_run(dag_id="cold_data_nightly", run_id="baseline", window_start=None, window_end=None)
        for step in ("extract_erp", "gate_master_data", "load_pim", "link_assets", "writeback_supplier",
                     "extract_pim", "gate_channel_content", "publish_products"):
            fn = getattr(cold, step)
            fn(load_id) if step.startswith("gate_") else fn(load_id, systems)
        for chunk in cold.plan_image_chunks(load_id):
            cold.publish_images(load_id, chunk, systems)
        cold.finish(load_id)
    finally:
        systems.close()
        if previous is None:
            os.environ.pop("CATALOG_SYNC_HUB_URL", None)
        else:
            os.environ["CATALOG_SYNC_HUB_URL"] = previous
    server.baseline_hub = hub  # the hub whose cursors the baseline committed: a later nightly on it is a delta
    setattr(config, attr, server)
    return server


@pytest.fixture(scope="module")
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return published_baseline(request.config, tmp_path_factory)


@pytest.fixture
def systems(published: Any) -> Iterator[Systems]:
    bundle = Systems.from_base_url(published.url, published.credentials)
    yield bundle
    bundle.close()


# --- helpers ---------------------------------------------------------------------------------------------------


def snapshot(systems: Systems, skus: list[str]) -> dict[str, Any]:
    """What each system holds for the SKUs (everything but the shopper page, whose cache any read moves)."""
    out = {}
    for sku in skus:
        trace = explain_sku(sku, systems)
        out[sku] = {k: v for k, v in trace["systems"].items() if k != "shopper_page"}
    return out


def run(systems: Systems, hub_url: str, skus: list[str], *, dry_run: bool, tag: str,
        repairs: list[str] | None = None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    params: dict[str, Any] = {"season": "AW26", "skus": skus, "dry_run": dry_run}
    if repairs is not None:
        params["repairs"] = repairs
    result = republish.run(params, systems, run_id=tag, hub_url=hub_url)
    return result, republish.diagnoses(result["load_id"], hub_url)


def assert_live(systems: Systems, sku: str, image_src: str | None = None) -> None:
    """The end state a seasonal launch needs, read straight from each system."""
    trace = explain_sku(sku, systems)
    erp, pim = systems.erp.get_item(sku), trace["systems"]["pim"]
    assert erp is not None and pim is not None
    assert pim["lifecycle_status"] == erp["lifecycle_status"] == "active", (sku, pim, erp)
    if pim["kind"] == "product":
        assert pim["enabled"] is True
    handle = trace["systems"]["storefront"]["handle"]
    product = systems.storefront.find_by_handle(handle)
    assert product is not None and product["status"] == "active", sku
    assert systems.cdn is not None
    page = systems.cdn.shopper_page(handle)  # what shoppers get: the CDN's copy
    assert page.status == 200
    if image_src is not None:
        assert image_src in [i["src"] for i in product["images"]]
        assert f'src="{image_src}"' in page.html.replace("&amp;", "&")
    assert trace["systems"]["shopper_page"]["has_image"] is True
    assert trace["broken_link"] is None, trace["chain"]


SCENARIOS = {
    "erp_pre_active_with_approved_seasonal_images": "erp_lifecycle",
    "dam_valid_from_in_future": "dam_assets",
    "orphan_assets": "dam_assets",
    "pim_cached_draft_while_erp_active": "pim_vs_erp",
    "supplier_stale_inactive_flag": "supplier_writeback",
    "storefront_stale_cached_page": "shopper_page",
    "variants_left_behind": "erp_lifecycle",
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_failure_mode_is_diagnosed_fixed_and_stays_fixed(
    scenario: str, published: Any, systems: Systems, hub_url: str
) -> None:
    injected = published.scenario(scenario)
    skus = injected["skus"]
    assert skus
    before = snapshot(systems, skus)

    # 1. Dry run: the exact broken link for every affected SKU, and nothing changed anywhere.
    result, found = run(systems, hub_url, skus, dry_run=True, tag=f"{scenario[:24]}-dry")
    scope = set(found)
    assert set(skus) <= scope
    for sku in skus:
        assert found[sku]["broken_link"] == SCENARIOS[scenario], (sku, found[sku]["findings"])
        assert found[sku]["dry_run"] is True and found[sku]["findings"]
        assert all(a["status"] in ("planned", "not_allowed") for a in found[sku]["actions"])
    assert result["hops"]["triage"]["read"] == len(scope) == result["hops"]["triage"]["unchanged"]
    assert snapshot(systems, skus) == before
    if scenario == "storefront_stale_cached_page":
        assert explain_sku(skus[0], systems)["broken_link"] == "shopper_page"  # still stale: nothing purged

    # 2. Real run: every SKU repaired and verified live.
    result, found = run(systems, hub_url, skus, dry_run=False, tag=f"{scenario[:24]}-real")
    hop = result["hops"]["triage"]
    assert hop["read"] == len(scope) and hop["dead_lettered"] == 0, {k: d["findings"] for k, d in found.items()}
    assert hop["delivered"] == sum(1 for d in found.values() if d["broken_link"]) >= len(skus)
    for sku in skus:
        assert found[sku]["actions"][-1]["status"] == "holds", found[sku]["actions"]
        assert any(a["status"] == "done" for a in found[sku]["actions"])
    seasonal: dict[str, str] = {}
    if scenario == "erp_pre_active_with_approved_seasonal_images":
        for change in injected["changes"]:
            asset = systems.dam.get_asset(change["dam"]["asset"])
            assert asset is not None
            seasonal[change["sku"]] = str(rendition(asset))
    for sku in skus:
        assert_live(systems, sku, seasonal.get(sku))
    if scenario == "supplier_stale_inactive_flag":
        for change in injected["changes"]:
            sub = systems.supplier.get_submission(change["supplier"]["submission"])
            assert sub is not None and sub["status"] == "quarantined" and "lifecycle" in sub["reason"]
        with session_scope(hub_url) as s:
            letters = s.scalars(select(DeadLetter).where(DeadLetter.reason_kind == "ownership",
                                                         DeadLetter.record_key.in_(skus))).all()
        assert {letter.record_key for letter in letters} == set(skus)
    if scenario == "storefront_stale_cached_page":
        (sku,) = skus
        handle = injected["changes"][0]["storefront"]["handle"]
        purge = next(a for a in found[sku]["actions"] if a["repair"] == "cache")
        assert purge["system"] == "cdn" and purge["status"] == "done" and purge["target"] == handle
        with session_scope(hub_url) as s:
            audit = s.scalars(select(AuditEvent).where(AuditEvent.load_id == result["load_id"],
                                                       AuditEvent.system == "cdn")).all()
        assert [(a.record_key, a.action, a.outcome) for a in audit] == [(handle, "purge", "ok")]
        assert audit[0].response["purge_id"]
        assert injected["changes"][0]["storefront"]["current_price"] in systems.cdn.shopper_page(handle).html
    if scenario == "variants_left_behind":
        parent = injected["changes"][0]["sku"]
        variants = [s for s in skus if s != parent]
        assert variants
        for sku in variants:  # found at the variant level, naming the parent that moved
            assert any(parent in f["detail"] for f in found[sku]["findings"] if f["link"] == "erp_lifecycle")

    # 3. Second run: nothing left to fix.
    result, found = run(systems, hub_url, skus, dry_run=False, tag=f"{scenario[:24]}-again")
    assert all(d["broken_link"] is None for d in found.values()), {k: v["findings"] for k, v in found.items()}
    assert result["hops"]["triage"]["unchanged"] == len(found)
    with session_scope(hub_url) as s:
        runs = s.scalars(select(SyncRun).where(SyncRun.flow == republish.FLOW)).all()
    assert [r.status for r in runs] == ["success"] * 3


def test_a_repair_not_allowed_is_left_alone_and_dead_lettered(
    published: Any, systems: Systems, hub_url: str
) -> None:
    (sku,) = published.scenario("erp_pre_active_with_approved_seasonal_images", ["24-MB03"])["skus"]
    everything_but_erp = [r for r in REPAIRS if r != "activate_erp"]
    result, found = run(systems, hub_url, [sku], dry_run=False, tag="no-erp", repairs=everything_but_erp)
    assert systems.erp.get_item(sku)["lifecycle_status"] == "pre-active"  # the ERP owns it: untouched
    assert result["hops"]["triage"] == {"read": 1, "delivered": 0, "unchanged": 0, "dead_lettered": 1}
    assert {"repair": "activate_erp", "status": "not_allowed"}.items() <= found[sku]["actions"][0].items()
    with session_scope(hub_url) as s:
        letter = s.scalars(select(DeadLetter).where(DeadLetter.record_key == sku)).one()
    assert letter.reason_kind == "gate" and letter.expectation == "triage:erp_lifecycle"


def test_the_runbook_names_each_repair_the_live_page_check_and_what_is_left_by_hand(
    published: Any, systems: Systems, hub_url: str
) -> None:
    """Issue #18: the run writes the validated propagation path per SKU, in words, with the steps for a person."""
    (draft,) = published.scenario("pim_cached_draft_while_erp_active", ["24-MB06"])["skus"]
    (stale,) = published.scenario("storefront_stale_cached_page", ["24-UG05"])["skus"]
    (pre_active,) = published.scenario("erp_pre_active_with_approved_seasonal_images", ["24-WG03"])["skus"]
    no_erp = [r for r in REPAIRS if r != "activate_erp"]
    result, found = run(systems, hub_url, [draft, stale, pre_active], dry_run=False, tag="runbook", repairs=no_erp)
    books = {sku: d["runbook"] for sku, d in found.items()}

    def link(sku: str, name: str) -> dict[str, Any]:
        return next(x for x in books[sku]["links"] if x["link"] == name)

    # Every SKU's path lists the chain in the order a launch propagates, ERP first, the live page after the shop.
    assert [x["link"] for x in books[draft]["links"]] == ["erp_lifecycle", "pim_vs_erp", "dam_assets",
                                                           "storefront_feed", "shopper_page", "supplier_writeback"]
    # The PIM's stale draft: what was wrong, the repair that changed it (in words, with its name), now right.
    pim = link(draft, "pim_vs_erp")
    assert pim["was"] and not pim["by_hand"] and pim["holds"] is True
    (fix,) = [a for a in pim["repairs"] if a["repair"] == "pim_state"]
    assert fix["status"] == "done" and fix["status_words"] == "changed" and "lifecycle" in fix["label"]
    assert books[draft]["outcome"] == "delivered" and books[draft]["by_hand"] == []
    # The stale page: purged at the CDN, and the live-page check after the repairs says shoppers get it right.
    page = link(stale, "shopper_page")
    assert [(a["repair"], a["status"]) for a in page["repairs"]] == [("cache", "done")]
    assert "CDN" in page["repairs"][0]["label"]
    assert books[stale]["live_page"]["holds"] is True and books[stale]["live_page"]["checked_after_repairs"]
    # The pre-active item: the ERP repair was not allowed, so the runbook hands it to a person, in the ERP.
    erp = link(pre_active, "erp_lifecycle")
    assert erp["holds"] is False and [a["status"] for a in erp["repairs"]] == ["not_allowed"]
    (step,) = erp["by_hand"]
    assert step.startswith(f"In the ERP, decide whether {pre_active} is sold this season") and "not allowed" in step
    assert books[pre_active]["outcome"] == "dead_lettered"
    assert [m["link"] for m in books[pre_active]["by_hand"]][:1] == ["erp_lifecycle"]
    assert result["hops"]["triage"]["dead_lettered"] == 1

    # The runbook page of the run puts this in tables and sentences, no raw JSON.
    from catalog_sync.ui import queries

    with session_scope(hub_url) as s:
        book = queries.launch_runbook(s, result["load_id"])
    assert book is not None and book["totals"]["need_a_person"] == 1 and book["totals"]["repairs_made"] >= 2
    assert book["skus"][0]["sku"] == pre_active  # the SKU a person must see first


def test_scope_by_category_and_parent(systems: Systems) -> None:
    by_parent = republish.resolve_scope(systems, ["MH01"], [])
    assert "MH01" in by_parent and "MH01-XS-Black" in by_parent and len(by_parent) > 10
    by_category = republish.resolve_scope(systems, [], ["Gear/Bags"])
    assert "24-MB01" in by_category and all(not s.startswith("MH") for s in by_category)
    with pytest.raises(republish.ScopeError):
        republish.normalise_params({"skus": [], "categories": []})
    with pytest.raises(republish.ScopeError):
        republish.normalise_params({"skus": ["X"], "repairs": ["delete_everything"]})


def test_the_dag_runs_a_dry_run_from_its_form(published: Any, hub_url: str, airflow_db: str,
                                              airflow_connections: Any) -> None:
    from airflow.dag_processing.dagbag import DagBag

    airflow_connections(published.url)
    dag = DagBag(dag_folder="dags/seasonal_republish.py").get_dag("seasonal_republish")
    assert dag.params["repairs"] == list(REPAIRS) and dag.params["dry_run"] is True
    dag_run = dag.test(run_conf={"season": "AW26", "skus": ["24-MB01", "MH01-XS-Black"], "dry_run": True})
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    assert states["repair_and_republish"] == "skipped" and states["verify"] == "success"
    with session_scope(hub_url) as s:
        run = s.scalars(select(SyncRun).where(SyncRun.dag_id == "seasonal_republish")).one()
    assert run.status == "success" and run.records_read == 2 == run.records_unchanged
    found = republish.diagnoses(run.load_id, hub_url)
    assert set(found) == {"24-MB01", "MH01-XS-Black"} and all(d["dry_run"] for d in found.values())


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connection is refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_cdn_is_recorded_and_the_sku_dead_lettered(published: Any, hub_url: str) -> None:
    (sku,) = published.scenario("storefront_stale_cached_page", ["24-UG03"])["skus"]
    bundle = Systems.from_base_url(published.url, published.credentials)
    # The shop's pages still come through the CDN's edge; its purge API does not answer.
    bundle.cdn = CdnClient(f"http://127.0.0.1:{_closed_port()}", published.credentials["cdn"],
                           ClientOptions(retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.02)),
                           site_url=f"{published.url}/cdn/edge")
    try:
        result, found = run(bundle, hub_url, [sku], dry_run=False, tag="cdn-down")
        purge = next(a for a in found[sku]["actions"] if a["repair"] == "cache")
        handle = purge["target"]
        assert bundle.cdn.shopper_page(handle).cache == "HIT"  # still the stale copy
    finally:
        bundle.close()
    assert result["hops"]["triage"] == {"read": 1, "delivered": 0, "unchanged": 0, "dead_lettered": 1}
    assert purge["system"] == "cdn" and purge["status"] == "failed" and "connection" in purge["detail"]
    with session_scope(hub_url) as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.load_id == result["load_id"],
                                                   AuditEvent.system == "cdn")).one()
        letter = s.scalars(select(DeadLetter).where(DeadLetter.record_key == sku,
                                                    DeadLetter.load_id == result["load_id"])).one()
    assert (audit.record_key, audit.action, audit.outcome) == (handle, "purge", "error")
    assert letter.reason_kind == "api" and letter.expectation == "triage:shopper_page"


def test_without_a_cdn_the_purge_is_skipped_and_says_so(published: Any, hub_url: str) -> None:
    (sku,) = published.scenario("erp_pre_active_with_approved_seasonal_images", ["24-WG01"])["skus"]
    bundle = Systems.from_base_url(published.url, {k: v for k, v in published.credentials.items() if k != "cdn"})
    assert bundle.cdn is None
    try:
        result, found = run(bundle, hub_url, [sku], dry_run=False, tag="no-cdn")
    finally:
        bundle.close()
    assert result["hops"]["triage"]["delivered"] == 1  # shoppers get the storefront's own, current page
    purge = next(a for a in found[sku]["actions"] if a["repair"] == "cache")
    assert purge["status"] == "skipped" and "no CDN is configured" in purge["detail"]
    with session_scope(hub_url) as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.load_id == result["load_id"],
                                                   AuditEvent.system == "cdn")).one()
    assert audit.outcome == "skipped" and "catalog_sync_cdn" in audit.response["message"]


def test_the_next_nightly_keeps_what_a_seasonal_republish_fixed(published: Any, systems: Systems,
                                                                hub_url: str) -> None:
    """A season launched by the republish (seasonal images leading the gallery, products active, pages purged) is
    left exactly so by the next nightly: the two publish the same gallery by the one rule and the one order."""
    from catalog_sync import reliability as R

    injected = published.scenario("erp_pre_active_with_approved_seasonal_images")
    skus = injected["skus"]
    result, found = run(systems, hub_url, skus, dry_run=False, tag="season-then-nightly")
    assert all(d["actions"][-1]["status"] == "holds" for d in found.values()), found
    handles = {sku: explain_sku(sku, systems)["systems"]["storefront"]["handle"] for sku in skus}
    assert systems.cdn is not None

    def shown() -> dict[str, Any]:
        out = {}
        for sku, handle in handles.items():
            product = systems.storefront.find_by_handle(handle)
            assert product is not None
            out[sku] = {"status": product["status"], "images": [i["src"] for i in product["images"]],
                        "variants": sorted((v["sku"], v["price"]) for v in product["variants"])}
        return out

    launched = shown()
    for change in injected["changes"]:  # the season's own picture leads
        seasonal = rendition(systems.dam.get_asset(change["dam"]["asset"]) or {})
        assert launched[change["sku"]]["images"][0] == seasonal

    nightly = R.run_cold(systems, "after-the-launch", hub_url=hub_url)
    assert nightly.status == "success" and nightly.unreconciled() == []
    assert shown() == launched
    for sku, handle in handles.items():
        page = systems.cdn.shopper_page(handle)
        assert page.status == 200
        assert f'src="{launched[sku]["images"][0]}"' in page.html.replace("&amp;", "&")
        assert explain_sku(sku, systems)["broken_link"] is None


def _state(systems: Systems, sku: str) -> Any:
    from catalog_sync.trace import Reader, read_sku

    return read_sku(Reader(systems), sku)


def _two_image_product(systems: Systems, skip: set[str]) -> tuple[str, str, list[dict[str, Any]]]:
    """A published, healthy simple gear product showing two or more images: (SKU, handle, its gallery assets)."""
    from catalog_sync.trace import Reader, read_sku

    for n in range(1, 10):
        for prefix in ("24-MB", "24-WB", "24-UG", "24-MG", "24-WG"):
            sku = f"{prefix}{n:02d}"
            if sku in skip:
                continue
            try:
                state = read_sku(Reader(systems), sku)
            except Exception:  # noqa: BLE001  (a SKU this catalog does not have)
                continue
            if not state.known:
                continue
            shown = (systems.storefront.find_by_handle(state.handle or "") or {}).get("images") or []
            mine = [a for a in state.assets if a.get("sku") == sku and a.get("role") == "gallery"]
            # a healthy one: earlier tests of this module leave some SKUs broken on purpose
            if len(shown) >= 2 and mine and explain_sku(sku, systems)["broken_link"] is None:
                return sku, str(state.handle), mine
    raise AssertionError("no published product with a gallery image")


def test_images_come_down_when_rights_end_and_go_up_when_an_embargo_lifts(published: Any, systems: Systems,
                                                                          hub_url: str) -> None:
    """Without anyone: the image_windows sweep finds the assets whose window edge passed and fixes their SKUs'
    PIM links, storefront gallery and shopper page. The clock is moved by setting the edges seconds ahead."""
    import time
    from datetime import UTC, datetime, timedelta

    from catalog_sync.flows import cold, windows
    from catalog_sync.hub import repo

    assert systems.cdn is not None
    # SKUs test_trace's cases use on the same published sandbox
    taken = {"24-MB01", "24-MB02", "24-MB05", "24-MB06", "24-WB02", "24-WB03", "24-WB04", "24-WB05", "24-UG01"}
    expiring_sku, expiring_handle, (expiring, *_) = _two_image_product(systems, taken)
    embargo_sku, embargo_handle, (embargoed, *_) = _two_image_product(systems, taken | {expiring_sku})
    t0 = datetime.now(UTC).replace(microsecond=0)
    with session_scope(hub_url) as s:  # the last sweep ran just now
        repo.commit_cursor(s, *windows.CURSOR, "window_edge", t0.isoformat(), "test")

    # rights that end in a few seconds; an image kept off the shop (unlinked, not shown) until its window opens
    src = {a["id"]: rendition(a) for a in (expiring, embargoed)}
    assert systems.dam.update_asset(expiring["id"], {"rights_expires_at": (t0 + timedelta(seconds=3)).isoformat()}).ok
    assert systems.dam.update_asset(embargoed["id"], {"valid_from": (t0 + timedelta(seconds=3)).isoformat()}).ok
    links = [a for a in _state(systems, embargo_sku).pim_links if a != embargoed["id"]]
    cold.write_asset_links(systems, {embargo_sku: links}, set())
    product = systems.storefront.find_by_handle(embargo_handle)
    kept = [i for i in product["images"] if i["src"] != src[embargoed["id"]]]
    assert systems.storefront.upsert_product({"handle": embargo_handle, "images": kept}).ok
    systems.cdn.purge_pages([embargo_handle])
    assert src[expiring["id"]] in [i["src"] for i in systems.storefront.find_by_handle(expiring_handle)["images"]]

    early = windows.sweep(systems, run_id="windows-early", hub_url=hub_url)  # nothing due yet
    assert early["skus"] == [] and early["load_id"] is None
    time.sleep(max(0.0, (t0 + timedelta(seconds=4) - datetime.now(UTC)).total_seconds()))
    due = windows.sweep(systems, run_id="windows-due", hub_url=hub_url)
    assert set(due["skus"]) == {expiring_sku, embargo_sku}, due
    assert due["repaired"]["dead_lettered"] == 0, due

    gone = systems.storefront.find_by_handle(expiring_handle)
    assert src[expiring["id"]] not in [i["src"] for i in gone["images"]] and gone["images"]
    assert expiring["id"] not in _state(systems, expiring_sku).pim_links
    assert src[expiring["id"]] not in systems.cdn.shopper_page(expiring_handle).html.replace("&amp;", "&")
    up = systems.storefront.find_by_handle(embargo_handle)
    assert src[embargoed["id"]] in [i["src"] for i in up["images"]]
    assert embargoed["id"] in _state(systems, embargo_sku).pim_links
    assert src[embargoed["id"]] in systems.cdn.shopper_page(embargo_handle).html.replace("&amp;", "&")
    with session_scope(hub_url) as s:
        assert repo.get_cursor(s, *windows.CURSOR) == due["until"]
    # the trace (and the UI's trace page, which shows the same record) says why the image is off the shop
    (traced,) = [a for a in explain_sku(expiring_sku, systems)["systems"]["dam"] if a["asset_id"] == expiring["id"]]
    assert traced["showable"] is False and "usage rights expired" in traced["hidden_because"]
    assert traced["rights_expires_at"] and traced["rights_regions"]


def test_an_erp_lifecycle_change_the_pim_does_not_follow_alerts_naming_both_states(
        published: Any, systems: Systems, hub_url: str) -> None:
    from datetime import timedelta

    from catalog_sync.flows import lifecycle_watch as lw
    from catalog_sync.hub import repo

    assert lw.watch(systems, follow_within=timedelta(0), hub_url=hub_url)[0] == []  # the first run: the head
    sku = "24-UG04"
    assert systems.erp.put_item({"sku": sku, "lifecycle_status": "discontinued"}).ok
    not_yet, _ = lw.watch(systems, follow_within=timedelta(hours=1), hub_url=hub_url)
    assert not_yet == []  # inside the time the PIM has to follow
    (alert,), summary = lw.watch(systems, follow_within=timedelta(0), hub_url=hub_url)
    assert alert.key == f"lifecycle_divergence:{sku}" and summary["diverged"] == 1
    assert alert.facts["erp_lifecycle"] == "discontinued" and alert.facts["pim_lifecycle"] == "active"
    assert sku in alert.subject and "discontinued" in alert.subject and "active" in alert.subject
    # looked at once: the cursor moved past it
    assert lw.watch(systems, follow_within=timedelta(0), hub_url=hub_url)[0] == []
    with session_scope(hub_url) as s:
        assert int(repo.get_cursor(s, *lw.CURSOR) or 0) == systems.erp.last_seq()
    # a change the PIM did follow (the republish's pim_state repair stands in for the nightly) is no alert
    assert systems.erp.put_item({"sku": sku, "lifecycle_status": "active"}).ok
    assert lw.watch(systems, follow_within=timedelta(0), hub_url=hub_url)[0] == []
