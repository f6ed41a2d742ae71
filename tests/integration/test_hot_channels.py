"""Hot data to every channel that sells the SKU (issue #21, docs/adr/0018): ERP stock, live prices and lifecycle
status reach the storefront and each declared sales channel, each on its own hop and cursor.

One nightly publishes the Luma catalog to both channels (the baseline, once for the module); each test then commits
ERP changes over HTTP, runs the storefront's batch and Adobe Commerce's batch, and reads the result back from each
system over HTTP. Each test uses its own SKUs and leaves both cursors at the feed head.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import select

from catalog_sync import reliability as R
from catalog_sync.airflow.triggers import _poll
from catalog_sync.connectors.adobe_commerce import AdobeCommerceClient
from catalog_sync.flows import hot, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter, SyncRun
from tests.conftest import load_sandbox
from tests.integration.test_channels import adobe_client

CHANNEL = "adobe_commerce"
#: The sandbox connection's source map (docker-compose.yaml, airflow_settings.yaml): ERP location -> MSI source.
SOURCES = {"DC-EAST": "dc_east", "DC-WEST": "dc_west", "STORE-NYC": "store_nyc"}


@dataclass
class Baseline:
    server: Any
    systems: Systems
    adobe: AdobeCommerceClient
    #: storefront variants by SKU (their product and inventory item ids)
    variants: dict[str, dict[str, Any]]
    #: storefront location id per ERP location
    mirror: dict[str, int]


@pytest.fixture(scope="module")
def baseline(_mutable_sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    server = _mutable_sandbox
    load_sandbox(server)
    server.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    hub = f"sqlite:///{tmp_path_factory.mktemp('hot-channels-hub') / 'hub.sqlite'}"
    migrate(hub)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_SYNC_HUB_URL", hub)
        systems = Systems.from_base_url(server.url, server.credentials)
        for client in systems.channels.values():
            client.close()
        adobe = adobe_client(server)
        systems.channels = {CHANNEL: adobe}
        night = R.run_cold(systems, "baseline")
        assert night.status == "success" and night.hops[f"pim->{CHANNEL}"]["delivered"] > 500
        variants = {sku: extra or {} for sku, (_id, extra) in steps.external_ids("storefront", "variant").items()}
        mirror = {loc["erp_location"]: loc["id"] for loc in systems.storefront.locations()}
        # both cursors committed at the feed head before the tests' own changes (one change, so each has a row)
        assert systems.erp.set_stock("MH01-XS-Black", "DC-WEST", 3).ok
        hot.sync_changes(systems)
        hot.sync_channel_changes(systems, CHANNEL, adobe, SOURCES)
        try:
            yield Baseline(server, systems, adobe, variants, mirror)
        finally:
            systems.close()
            server.clear_faults()


def shop_level(b: Baseline, sku: str, erp_location: str) -> Any:
    levels = b.systems.storefront.inventory_levels([b.variants[sku]["inventory_item_id"]])
    return next((lv["available"] for lv in levels if lv["location_id"] == b.mirror[erp_location]), None)


def shop_price(b: Baseline, sku: str) -> Any:
    product = b.systems.storefront.get_product(int(b.variants[sku]["product_id"])) or {}
    return next(v["price"] for v in product["variants"] if v["sku"] == sku)


def adobe_quantity(b: Baseline, sku: str, source: str) -> Any:
    """The MSI source item as Adobe lists it (``GET /V1/inventory/source-items``, filtered by SKU)."""
    answer = requests.get(f"{b.server.url}/adobe_commerce/rest/all/V1/inventory/source-items", timeout=10,
                          params={"searchCriteria[filter_groups][0][filters][0][field]": "sku",
                                  "searchCriteria[filter_groups][0][filters][0][value]": sku},
                          headers={"Authorization": f"Bearer {b.server.credentials[CHANNEL]['access_token']}"})
    answer.raise_for_status()
    return next((i["quantity"] for i in answer.json()["items"] if i["source_code"] == source), None)


def cursors() -> tuple[int, int]:
    with session_scope() as s:
        return (int(repo.get_cursor(s, *hot.CURSOR) or 0), int(repo.get_cursor(s, *hot.channel_cursor(CHANNEL)) or 0))


def balanced(summary: dict[str, Any]) -> bool:
    return summary["read"] == summary["delivered"] + summary["unchanged"] + summary["dead_lettered"]


#: A women's jacket variant (Women is one of Adobe's category trees): sold on both channels.
BOTH = "WJ01-M-Red"
#: A men's hoodie variant (outside Adobe's trees): sold on the storefront only.
SHOP_ONLY = "MH01-M-Black"


def test_stock_and_price_reach_both_channels_and_a_shop_only_sku_stays_off_adobe(baseline: Baseline) -> None:
    b, erp = baseline, baseline.systems.erp
    assert BOTH in b.variants and SHOP_ONLY in b.variants
    assert b.adobe.get_product(BOTH) is not None and b.adobe.get_product(SHOP_ONLY) is None
    price = round(float(shop_price(b, BOTH)) + 3.5, 2)
    assert erp.set_stock(BOTH, "DC-EAST", 23).ok and erp.set_price(BOTH, price).ok
    assert erp.set_stock(SHOP_ONLY, "DC-EAST", 11).ok and erp.set_price(SHOP_ONLY, 61.25).ok

    shop = hot.sync_changes(b.systems)
    adobe = hot.sync_channel_changes(b.systems, CHANNEL, b.adobe, SOURCES)

    # the storefront: both SKUs' stock and price
    assert shop_level(b, BOTH, "DC-EAST") == 23 and shop_price(b, BOTH) == f"{price:.2f}"
    assert shop_level(b, SHOP_ONLY, "DC-EAST") == 11 and shop_price(b, SHOP_ONLY) == "61.25"
    assert shop["read"] == shop["delivered"] == 4 and balanced(shop)
    # Adobe Commerce: the SKU it sells, as a source item and a base price, read back from the channel
    assert adobe_quantity(b, BOTH, "dc_east") == 23
    assert (b.adobe.get_product(BOTH) or {})["price"] == price
    assert adobe["read"] == 4 and adobe["delivered"] == 2 and adobe["unchanged"] == 2 and balanced(adobe)
    assert adobe["dead_lettered"] == 0 and adobe["down"] is None
    # the shop-only SKU never went to Adobe: unchanged, audited as not published there yet
    assert b.adobe.get_product(SHOP_ONLY) is None and adobe_quantity(b, SHOP_ONLY, "dc_east") is None
    with session_scope() as s:
        skipped = s.scalars(select(AuditEvent).where(AuditEvent.load_id == adobe["load_id"],
                                                     AuditEvent.outcome == "unchanged")).all()
        run = s.get(SyncRun, adobe["load_id"])
        assert run is not None and run.status == "success"
        assert (run.details or {})["hops"][hot.channel_hop(CHANNEL)]["read"] == 4
    assert {e.record_key for e in skipped} == {f"stock:{SHOP_ONLY}@DC-EAST", f"price:{SHOP_ONLY}"}
    assert all(e.response["message"] == hot.not_published_to(CHANNEL) for e in skipped)
    assert cursors() == (erp.last_seq(), erp.last_seq()) == (shop["cursor"], adobe["cursor"])


def test_lifecycle_sets_the_channel_status_of_the_family_root(baseline: Baseline) -> None:
    b, erp = baseline, baseline.systems.erp
    assert (b.adobe.get_product("WJ02") or {})["status"] == 1
    assert erp.put_item({"sku": "WJ02", "lifecycle_status": "seasonal-hold"}).ok
    assert erp.put_item({"sku": "WJ03-M-Red", "lifecycle_status": "discontinued"}).ok  # a variant: its root decides
    hot.sync_changes(b.systems)
    adobe = hot.sync_channel_changes(b.systems, CHANNEL, b.adobe, SOURCES)
    assert (b.adobe.get_product("WJ02") or {})["status"] == 2  # not active: disabled on the channel
    assert (b.adobe.get_product("WJ03-M-Red") or {})["status"] == 1
    assert adobe["delivered"] == 1 and adobe["unchanged"] == 1 and balanced(adobe)
    with session_scope() as s:
        (followed,) = s.scalars(select(AuditEvent).where(AuditEvent.load_id == adobe["load_id"],
                                                         AuditEvent.outcome == "unchanged")).all()
    assert followed.record_key == "item:WJ03-M-Red" and followed.response["message"] == hot.FOLLOWS_PARENT


def test_adobe_down_leaves_the_storefront_and_its_cursor_and_the_changes_are_read_again(baseline: Baseline) -> None:
    b, erp = baseline, baseline.systems.erp
    sku = "WJ04-M-Red" if "WJ04-M-Red" in b.variants else next(s for s in b.variants if s.startswith("WS"))
    adobe_before = adobe_quantity(b, sku, "dc_west")
    _, channel_before = cursors()
    assert erp.set_stock(sku, "DC-WEST", 31).ok and erp.set_price(sku, 44.5).ok
    attempts: list[Any] = []
    down_client = adobe_client(b.server, attempts)
    b.server.set_faults(CHANNEL, error_rate=1.0, seed=18)  # every Adobe answer a 5xx, throughout
    try:
        shop = hot.sync_changes(b.systems)
        adobe = hot.sync_channel_changes(b.systems, CHANNEL, down_client, SOURCES)
    finally:
        b.server.clear_faults(CHANNEL)
    # the storefront's writes and cursor, as if Adobe did not exist
    assert shop_level(b, sku, "DC-WEST") == 31 and shop_price(b, sku) == "44.50"
    assert shop["delivered"] == 2 and balanced(shop) and cursors()[0] == erp.last_seq()
    # Adobe's batch stopped at the outage: nothing written there, its cursor where it was, its run failed saying so
    assert adobe["down"] and f"{CHANNEL} was unavailable" in adobe["down"] and adobe["cursor"] == channel_before
    assert cursors()[1] == channel_before and attempts and all((a.status or 0) >= 500 for a in attempts)
    assert adobe_quantity(b, sku, "dc_west") == adobe_before
    with session_scope() as s:
        run = s.get(SyncRun, adobe["load_id"])
        assert run is not None and run.status == "failed" and "unavailable" in (run.error or "")
        # no change was dead-lettered for the outage: they stay after the cursor
        assert not s.scalars(select(DeadLetter).where(DeadLetter.load_id == adobe["load_id"])).all()

    # the change-feed watcher sees the channel's cursor behind the head: a run is started for it (and, should the
    # channel stay down, the lag alert follows, naming it), though the storefront has applied everything
    assert _poll(erp) == (channel_before, erp.last_seq(), CHANNEL)

    # Adobe answers again: the next run re-reads the same changes from the channel's cursor and applies them
    again = hot.drain(b.systems, channel=CHANNEL, client=b.adobe, source_map=SOURCES, idle_s=0, poll_s=0)
    assert again["after"] == channel_before and again["cursor"] == erp.last_seq() and again["down"] is None
    assert again["delivered"] == 2 and adobe_quantity(b, sku, "dc_west") == 31
    assert (b.adobe.get_product(sku) or {})["price"] == 44.5
    assert _poll(erp) == (erp.last_seq(), erp.last_seq(), "storefront")  # nothing left to signal


def test_stock_of_an_erp_location_without_a_source_is_dead_lettered_naming_it(baseline: Baseline) -> None:
    b, erp = baseline, baseline.systems.erp
    assert erp.set_stock(BOTH, "STORE-NYC", 5).ok and erp.set_stock(BOTH, "DC-EAST", 6).ok
    hot.sync_changes(b.systems)
    adobe = hot.sync_channel_changes(b.systems, CHANNEL, b.adobe, {"DC-EAST": "dc_east"})  # no STORE-NYC source
    assert adobe["delivered"] == 1 and adobe["dead_lettered"] == 1 and balanced(adobe)
    assert adobe_quantity(b, BOTH, "dc_east") == 6
    with session_scope() as s:
        (letter,) = s.scalars(select(DeadLetter).where(DeadLetter.load_id == adobe["load_id"])).all()
    assert letter.record_key == f"stock:{BOTH}@STORE-NYC" and letter.reason_kind == "channel"
    assert letter.target_system == CHANNEL and "'STORE-NYC'" in letter.reason
    # the letter is the change's account: the channel's cursor moved past it
    assert cursors()[1] == erp.last_seq() == adobe["cursor"]
