"""The hot path (issue #6) against the sandbox, after one cold publish of the Luma catalog as the baseline.

ERP changes are made over HTTP exactly as the ERP would commit them; the storefront's end state is read back over
HTTP. The cold baseline (~30 s) runs once for the module, so the tests share one sandbox and one hub: each test
uses its own SKUs and leaves the cursor at the feed head for the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog_sync.connectors import ClientOptions, ConnectorError, RetryPolicy
from catalog_sync.flows import cold, hot, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter, DqKpi, FieldDelta, SyncRun
from tests.conftest import load_sandbox


@dataclass
class Baseline:
    server: Any
    hub: str
    systems: Systems
    #: Published variant SKUs with their storefront ids, in SKU order; each test takes its own slice.
    variants: list[tuple[str, dict[str, Any]]]
    #: Storefront location id per ERP location.
    mirror: dict[str, int]


@pytest.fixture(scope="module")
def baseline(_mutable_sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    """Luma in the sandbox and published to the storefront by the cold flow (products, variants, ExternalIds)."""
    server = _mutable_sandbox
    load_sandbox(server)
    server.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    hub = f"sqlite:///{tmp_path_factory.mktemp('hot-hub') / 'hub.sqlite'}"
    migrate(hub)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_SYNC_HUB_URL", hub)
        systems = Systems.from_base_url(server.url, server.credentials)
        load_id = cold.open_run(dag_id="cold_data_nightly", run_id="baseline", window_start=None, window_end=None)
        cold.extract_erp(load_id, systems)
        cold.gate_master_data(load_id)
        cold.load_pim(load_id, systems)
        cold.extract_pim(load_id, systems)
        cold.gate_channel_content(load_id)
        cold.publish_products(load_id, systems)
        cold.finish(load_id)
        variants = sorted((sku, extra or {}) for sku, (_id, extra) in steps.external_ids("storefront", "variant").items()
                          if sku.count("-") == 2)  # configurable variants (MH01-XS-Black), not gear simples
        assert len(variants) > 1000
        mirror = {loc["erp_location"]: loc["id"] for loc in systems.storefront.locations()}
        try:
            yield Baseline(server, hub, systems, variants, mirror)
        finally:
            systems.close()
            server.clear_faults()


def take(baseline: Baseline, start: int, n: int) -> list[tuple[str, dict[str, Any]]]:
    """Variants of distinct products (a product's variants share a price band but not a test)."""
    seen: set[Any] = set()
    out = []
    for sku, extra in baseline.variants[start:]:
        if extra["product_id"] in seen:
            continue
        seen.add(extra["product_id"])
        out.append((sku, extra))
        if len(out) == n:
            return out
    raise AssertionError("not enough published products")


def level(baseline: Baseline, extra: dict[str, Any], erp_location: str) -> int | None:
    levels = baseline.systems.storefront.inventory_levels([extra["inventory_item_id"]])
    loc = baseline.mirror[erp_location]
    return next((lv["available"] for lv in levels if lv["location_id"] == loc), None)


def variant(baseline: Baseline, extra: dict[str, Any], sku: str) -> dict[str, Any]:
    product = baseline.systems.storefront.get_product(int(extra["product_id"]))
    assert product is not None
    return next(v for v in product["variants"] if v["sku"] == sku)


def cursor() -> int:
    with session_scope() as s:
        return int(repo.get_cursor(s, *hot.CURSOR) or 0)


def test_stock_price_and_lifecycle_reach_the_storefront(baseline: Baseline) -> None:
    erp, shop = baseline.systems.erp, baseline.systems.storefront
    (sku, extra), (other, other_extra) = take(baseline, 0, 2)
    parent = sku.rsplit("-", 2)[0]
    price = round(float(variant(baseline, extra, sku)["price"]) + 1.25, 2)
    assert erp.set_stock(sku, "DC-EAST", 17).ok
    assert erp.set_price(sku, price).ok
    assert erp.put_item({"sku": parent, "lifecycle_status": "seasonal-hold"}).ok
    assert erp.put_item({"sku": other, "lifecycle_status": "discontinued"}).ok  # a variant: the parent decides

    summary = hot.sync_changes(baseline.systems)

    assert level(baseline, extra, "DC-EAST") == 17
    assert variant(baseline, extra, sku)["price"] == f"{price:.2f}"
    product = shop.get_product(int(extra["product_id"]))
    assert product is not None and product["status"] == "draft"  # seasonal-hold is not for sale
    other_product = shop.get_product(int(other_extra["product_id"]))
    assert other_product is not None and other_product["status"] == "active"
    assert summary["read"] == 4 and summary["delivered"] == 3 and summary["unchanged"] == 1
    assert summary["dead_lettered"] == 0 and summary["cursor"] == erp.last_seq() == cursor()
    assert summary["timeliness_s"] is not None and 0 <= summary["timeliness_s"] < 60
    with session_scope() as s:
        run = s.get(SyncRun, summary["load_id"])
        assert run is not None and run.status == "success"
        kpi = s.get(DqKpi, (summary["load_id"], "timeliness"))
        assert kpi is not None and kpi.value == pytest.approx(summary["timeliness_s"])
        fields = {(d.record_key, d.field): (d.before, d.after) for d in
                  s.scalars(select(FieldDelta).where(FieldDelta.load_id == summary["load_id"]))}
        audited = s.scalar(select(func.count()).where(AuditEvent.load_id == summary["load_id"],
                                                      AuditEvent.action == "write"))
    assert fields[(f"stock:{sku}@DC-EAST", "available")][1] == 17
    price_before, price_after = fields[(f"price:{sku}", "price")]
    assert price_after == f"{price:.2f}" and price_before != price_after
    assert fields[(f"item:{parent}", "status")] == ("active", "draft")
    assert audited == 4


def test_a_burst_coalesces_to_the_last_value_and_a_rerun_writes_nothing_twice(baseline: Baseline) -> None:
    erp = baseline.systems.erp
    [(sku, extra)] = take(baseline, 200, 1)
    start = cursor()
    for quantity in range(1, 31):
        erp.set_stock(sku, "DC-WEST", quantity)

    first = hot.sync_changes(baseline.systems)

    assert level(baseline, extra, "DC-WEST") == 30
    assert (first["read"], first["coalesced"], first["delivered"], first["unchanged"]) == (30, 1, 1, 29)
    with session_scope() as s:
        superseded = s.scalar(select(func.count()).where(AuditEvent.load_id == first["load_id"],
                                                         AuditEvent.action == "read",
                                                         AuditEvent.outcome == "unchanged"))
        assert superseded == 29
        # A failure after the writes: the cursor goes back and the next run reads the same changes again.
        repo.commit_cursor(s, *hot.CURSOR, "seq", str(start), "test-rewind")

    again = hot.sync_changes(baseline.systems)

    assert (again["read"], again["delivered"], again["unchanged"]) == (30, 0, 30)  # Idempotent-Replayed
    assert level(baseline, extra, "DC-WEST") == 30 and again["cursor"] == first["cursor"]


def test_a_bad_change_is_dead_lettered_and_the_others_delivered(baseline: Baseline) -> None:
    erp = baseline.systems.erp
    picked = take(baseline, 400, 60)
    (bad_sku, bad_extra), good = picked[0], picked[1:]
    before = level(baseline, bad_extra, "STORE-NYC")
    erp.set_stock(bad_sku, "STORE-NYC", -4)
    for i, (sku, _extra) in enumerate(good):
        erp.set_stock(sku, "STORE-NYC", 100 + i)

    summary = hot.sync_changes(baseline.systems)

    assert (summary["read"], summary["delivered"], summary["dead_lettered"]) == (60, 59, 1)
    assert level(baseline, bad_extra, "STORE-NYC") == before
    assert [level(baseline, extra, "STORE-NYC") for _sku, extra in good[:3]] == [100, 101, 102]
    with session_scope() as s:
        letter = s.scalars(select(DeadLetter).where(DeadLetter.load_id == summary["load_id"])).one()
    assert letter.record_key == f"{bad_sku}@STORE-NYC" and letter.gate_layer == 1
    assert letter.expectation == "stock_prices.l1.quantity_in_range" and "-4" in letter.reason
    assert summary["cursor"] == cursor()  # a soft outcome within the gate's limit: the stream moves on


def test_a_bad_row_in_a_small_batch_is_quarantined_and_the_stream_moves_on(baseline: Baseline) -> None:
    """One bad figure must not hold back everyone else's stock: the gate is soft on the hot path."""
    erp = baseline.systems.erp
    [(sku, extra), (other, other_extra)] = take(baseline, 600, 2)
    before = level(baseline, extra, "DC-EAST")
    erp.set_stock(sku, "DC-EAST", -1)
    erp.set_stock(other, "DC-EAST", 9)

    summary = hot.sync_changes(baseline.systems)  # 1 of 2 rows fails: far above the limit, so it alerts

    assert (summary["read"], summary["delivered"], summary["dead_lettered"]) == (2, 1, 1)
    assert level(baseline, other_extra, "DC-EAST") == 9 and level(baseline, extra, "DC-EAST") == before
    assert summary["cursor"] == cursor()
    with session_scope() as s:
        letter = s.scalars(select(DeadLetter).where(DeadLetter.load_id == summary["load_id"])).one()
    assert letter.record_key == f"{sku}@DC-EAST" and "-1" in letter.reason

    erp.set_stock(sku, "DC-EAST", 3)  # the ERP's correction flows with the next change event
    summary = hot.sync_changes(baseline.systems)
    assert (summary["read"], summary["delivered"]) == (1, 1)
    assert level(baseline, extra, "DC-EAST") == 3


def test_the_cursor_stays_when_the_storefront_is_down_and_the_next_run_converges(baseline: Baseline) -> None:
    erp = baseline.systems.erp
    [(sku, extra)] = take(baseline, 800, 1)
    start = cursor()
    erp.set_stock(sku, "DC-WEST", 42)
    fast = ClientOptions(retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.05))
    impatient = Systems.from_base_url(baseline.server.url, baseline.server.credentials, options=fast)
    baseline.server.set_faults("storefront", error_rate=1.0)
    try:
        with pytest.raises(ConnectorError):
            hot.sync_changes(impatient)
    finally:
        baseline.server.clear_faults()
        impatient.close()
    assert cursor() == start
    with session_scope() as s:
        failed = s.scalars(select(SyncRun).where(SyncRun.flow == hot.FLOW).order_by(SyncRun.started_at.desc())).first()
    assert failed is not None and failed.status == "failed"

    summary = hot.sync_changes(baseline.systems)

    assert level(baseline, extra, "DC-WEST") == 42
    assert summary["delivered"] == 1 and summary["cursor"] == cursor() > start


def test_a_change_for_a_sku_not_yet_on_the_storefront_is_accounted(baseline: Baseline) -> None:
    erp = baseline.systems.erp
    erp.put_item({"sku": "HOT-NEW-1", "product_type": "simple", "lifecycle_status": "pre-active"})
    erp.set_stock("HOT-NEW-1", "DC-EAST", 5)

    summary = hot.sync_changes(baseline.systems)

    assert (summary["read"], summary["unchanged"], summary["delivered"]) == (2, 2, 0)
    with session_scope() as s:
        messages = {e.response["message"] for e in s.scalars(select(AuditEvent).where(
            AuditEvent.load_id == summary["load_id"], AuditEvent.action == "write"))}
    assert messages == {hot.NOT_PUBLISHED}


def test_the_change_feed_trigger_signals_each_new_head_once(baseline: Baseline, airflow_connections: Any) -> None:
    """The asset watcher's trigger, driven as the triggerer drives it: one event per head the hub has not applied,
    silence while nothing new arrives, and a serialisation that rebuilds the same trigger (same watcher hash)."""
    import asyncio
    import concurrent.futures
    import importlib

    from airflow.triggers.base import BaseEventTrigger

    from catalog_sync.airflow.triggers import ErpChangeFeedTrigger

    airflow_connections(baseline.server.url)
    trigger = ErpChangeFeedTrigger(poll_interval=0.05, resignal_after=60.0)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*rebuilt.serialize())

    erp = baseline.systems.erp
    [(sku, _extra)] = take(baseline, 1000, 1)
    start = cursor()
    erp.set_stock(sku, "DC-EAST", 7)
    head = erp.last_seq()  # earlier tests of this module may have left changes after the cursor

    async def watch() -> list[dict[str, Any]]:
        events = rebuilt.run()
        seen = [(await asyncio.wait_for(anext(events), timeout=30)).payload]
        with pytest.raises(TimeoutError):  # the same head is not signalled again while its run is under way
            await asyncio.wait_for(anext(events), timeout=0.5)
        events = rebuilt.run()  # wait_for cancelled the generator: a triggerer restart, in effect
        seen.append((await asyncio.wait_for(anext(events), timeout=30)).payload)
        await asyncio.to_thread(erp.set_stock, sku, "DC-EAST", 8)
        seen.append((await asyncio.wait_for(anext(events), timeout=30)).payload)
        await events.aclose()
        return seen

    # In its own thread: a browser test's Playwright keeps an event loop running in this one for the session.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first, after_restart, newer = pool.submit(asyncio.run, watch()).result()
    assert first == after_restart == {"after": start, "head": head, "pending": head - start}
    assert newer == {"after": start, "head": head + 1, "pending": head + 1 - start}
    assert hot.sync_changes(baseline.systems)["cursor"] == head + 1  # the run the events ask for


def test_one_task_drains_changes_that_arrive_while_it_runs(baseline: Baseline) -> None:
    """``hot.drain`` (what the DAG's task runs): changes committed while it polls go out in later batches of the
    same task, each batch its own hub run; it stops once nothing new arrived for ``idle_s``."""
    erp = baseline.systems.erp
    (a, extra_a), (b, extra_b), (c, extra_c) = take(baseline, 900, 3)
    hot.sync_changes(baseline.systems)  # start at the head, whatever earlier tests left
    assert erp.set_stock(a, "DC-EAST", 11).ok
    now = [0.0]
    arrivals = {2: (b, 12), 5: (c, 13)}  # committed during the 2nd and 5th poll
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds
        polls.append(now[0])
        if len(polls) in arrivals:
            sku, quantity = arrivals[len(polls)]
            assert erp.set_stock(sku, "DC-EAST", quantity).ok

    out = hot.drain(baseline.systems, run_id="manual__drain", idle_s=2.0, poll_s=0.25, budget_s=60,
                    clock=lambda: now[0], sleep=sleep)

    assert (level(baseline, extra_a, "DC-EAST"), level(baseline, extra_b, "DC-EAST"),
            level(baseline, extra_c, "DC-EAST")) == (11, 12, 13)
    assert (out["batches"], out["read"], out["delivered"], out["dead_lettered"]) == (3, 3, 3, 0)
    assert out["cursor"] == erp.last_seq() == cursor()
    assert now[0] == pytest.approx(1.25 + 2.0)  # last change synced at 1.25 s, then 2 s idle
    assert len(set(out["load_ids"])) == 3
    with session_scope() as s:
        runs = [s.get(SyncRun, load_id) for load_id in out["load_ids"]]
    assert all(r is not None and r.status == "success" and r.records_read == 1 for r in runs)
    windows = [(r.details["after"], r.details["until"]) for r in runs if r is not None and r.details]
    assert [w[0] for w in windows[1:]] == [w[1] for w in windows[:-1]]  # back to back, nothing skipped
    # A retried task starting from the same cursor re-opens that batch's run, not a finished one.
    assert steps.batch_load_id(steps.run_load_id(hot.FLOW, "manual__drain"), windows[1][0]) == out["load_ids"][1]
    assert len(steps.batch_load_id("x" * 64, 123456)) == 64


def test_a_backlog_is_worked_off_in_bounded_batches(baseline: Baseline) -> None:
    """A backlog (an outage's worth of changes) is read ``max_changes`` at a time, each batch committed before the
    next is read, and nothing is left behind."""
    erp = baseline.systems.erp
    picks = take(baseline, 1100, 7)
    hot.sync_changes(baseline.systems)  # start at the head, whatever earlier tests left
    start = cursor()
    for i, (sku, _extra) in enumerate(picks):
        assert erp.set_stock(sku, "DC-EAST", 30 + i).ok
    out = hot.drain(baseline.systems, run_id="manual__bounded", idle_s=1.0, poll_s=0.05, budget_s=60,
                    max_changes=3)
    with session_scope() as s:
        runs = [s.get(SyncRun, load_id) for load_id in out["load_ids"]]
    windows = [(r.details["after"], r.details["until"]) for r in runs if r is not None and r.details]
    read = [w for w in windows if w[1] > w[0]]
    assert [until - after for after, until in read] == [3, 3, 1]
    assert read[0][0] == start and read[-1][1] == start + 7 == cursor()
    assert out["read"] == 7 and out["delivered"] == 7
    assert [level(baseline, extra, "DC-EAST") for _sku, extra in picks] == [30 + i for i in range(7)]


def test_stock_of_an_erp_location_the_location_map_leaves_out_is_dead_lettered_naming_it(baseline: Baseline) -> None:
    erp, shop = baseline.systems.erp, baseline.systems.storefront
    [(sku, extra)] = take(baseline, 1040, 1)
    before = level(baseline, extra, "STORE-NYC")
    full = dict(shop.location_map)
    shop.location_map = {code: target for code, target in full.items() if code != "STORE-NYC"}
    try:
        erp.set_stock(sku, "STORE-NYC", 61)
        erp.set_stock(sku, "DC-EAST", 62)
        summary = hot.sync_changes(baseline.systems)
    finally:
        shop.location_map = full
    assert (summary["read"], summary["delivered"], summary["dead_lettered"]) == (2, 1, 1)
    assert level(baseline, extra, "STORE-NYC") == before and level(baseline, extra, "DC-EAST") == 62
    with session_scope() as s:
        letter = s.scalars(select(DeadLetter).where(DeadLetter.load_id == summary["load_id"])).one()
    assert letter.expectation == "location_mapped" and "'STORE-NYC'" in letter.reason
    assert "location_map" in letter.reason


def test_a_hot_price_change_purges_the_cached_shopper_page(baseline: Baseline) -> None:
    """The page shows prices: after a hot price write, the CDN's copy of that product's page is purged, so shoppers
    see the new price at once instead of the cached one."""
    erp, shop, cdn = baseline.systems.erp, baseline.systems.storefront, baseline.systems.cdn
    assert cdn is not None
    [(sku, extra)] = take(baseline, 1300, 1)
    handle = shop.get_product(int(extra["product_id"]))["handle"]
    cdn.shopper_page(handle)
    assert cdn.shopper_page(handle).cache == "HIT"  # a shopper's visit put the page in the CDN's cache
    price = round(float(variant(baseline, extra, sku)["price"]) + 2.5, 2)
    assert erp.set_price(sku, price).ok
    summary = hot.sync_changes(baseline.systems)
    assert summary["delivered"] == 1
    page = cdn.shopper_page(handle)
    assert page.cache == "MISS" and f"{price:.2f}" in page.html
    with session_scope() as s:
        purges = s.scalars(select(AuditEvent).where(AuditEvent.load_id == summary["load_id"],
                                                    AuditEvent.action == "purge")).all()
    assert [(p.system, p.outcome) for p in purges] == [("cdn", "ok")]
