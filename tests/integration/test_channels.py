"""The nightly's fan-out to the declared sales channels (governance/channels.yaml) over the Luma catalog in the
sandbox, with a real hub: the storefront and Adobe Commerce each get the catalog in their own shape, a product
outside Adobe's category trees goes to the storefront only, an Adobe outage is isolated to Adobe's own dead letters,
a second nightly over the same content sends nothing, and a retried channel task re-sends nothing committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from catalog_sync import reliability as R
from catalog_sync.connectors import ClientOptions, RetryPolicy
from catalog_sync.connectors.adobe_commerce import AdobeCommerceClient, PollPolicy
from catalog_sync.connectors.mapping import akeneo_product_to_canonical
from catalog_sync.engine.run import RunContext, run_task
from catalog_sync.flows import channels, cold, replay
from catalog_sync.flows.systems import Systems
from catalog_sync.governance.channels import load_channels
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter, SyncRun, SyncState
from catalog_sync.trace import explain_sku

ADOBE = load_channels().channel("adobe_commerce")
#: A Gear product (sold on both channels) whose name is longer than Adobe's title limit.
LONG = "24-UG03"
#: A men's hoodie: outside Adobe's category trees (Gear, Women), so on the storefront only.
MEN = "MH01"
BAG = "24-MB01"


def adobe_client(server: Any, attempts: list[Any] | None = None) -> AdobeCommerceClient:
    """The channel's client with a short retry budget, so an outage is known within a second."""
    options = ClientOptions(retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.05), read_timeout=10,
                            on_attempt=attempts.append if attempts is not None else None)
    return AdobeCommerceClient(f"{server.url}/adobe_commerce", server.credentials["adobe_commerce"], options,
                               poll=PollPolicy(first=0.02, cap=0.5, timeout=30))


@pytest.fixture
def systems(fresh_sandbox: Any) -> Iterator[Systems]:
    fresh_sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    bundle = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    for client in bundle.channels.values():
        client.close()
    bundle.channels = {"adobe_commerce": adobe_client(fresh_sandbox)}
    yield bundle
    bundle.close()
    fresh_sandbox.clear_faults("adobe_commerce")


def translate(systems: Systems, sku: str, names: dict[str, str]) -> None:
    """A merchandiser translates a product's name in the PIM."""
    values = {"name": [{"locale": locale, "scope": None, "data": text} for locale, text in names.items()]}
    (result,) = systems.pim.upsert_products([{"identifier": sku, "values": values}])
    assert result.ok, result


def letters(load_id: str, **where: Any) -> list[DeadLetter]:
    with session_scope() as s:
        query = select(DeadLetter).where(DeadLetter.load_id == load_id, DeadLetter.status == "open")
        for name, value in where.items():
            query = query.where(getattr(DeadLetter, name) == value)
        return list(s.scalars(query).all())


def forget_pim_cursor() -> None:
    """A re-run of the same window: the PIM's changes are read (and staged) again."""
    with session_scope() as s:
        s.execute(delete(SyncState).where(SyncState.system == "pim"))


def test_luma_goes_to_both_channels_each_in_its_own_shape(hub_url: str, systems: Systems) -> None:
    translate(systems, BAG, {"fr_FR": "Sac de sport Joust", "de_DE": "Joust Sporttasche"})
    night = R.run_cold(systems, "manual__channels")
    assert night.status == "success" and night.unreconciled() == []
    shop, adobe = night.hops["pim->storefront"], night.hops[ADOBE.hop]
    assert shop["delivered"] > 140
    # every Adobe record (parents and variants of the Gear and Women families) delivered, none refused
    assert adobe["read"] == adobe["delivered"] > 500 and adobe["dead_lettered"] == 0
    assert night.steps["publish_channels"]["adobe_commerce"]["not_sold"] > 50  # the men's families

    client = systems.channels["adobe_commerce"]
    # channel-specific titles: Adobe's are cut at a word boundary, the storefront keeps the PIM's
    pim_name = akeneo_product_to_canonical(systems.pim.get_product(LONG) or {})["name"]
    assert len(pim_name) > ADOBE.formatting.title_max_length
    on_adobe = (client.get_product(LONG) or {})["name"]
    assert len(on_adobe) <= ADOBE.formatting.title_max_length and pim_name.startswith(on_adobe + " ")
    shown = systems.storefront.find_by_handle(cold.storefront_handle(
        akeneo_product_to_canonical(systems.pim.get_product(LONG) or {})))
    assert shown is not None and shown["title"] == pim_name
    # descriptions keep only the allowed tags there
    description = {a["attribute_code"]: a["value"] for a in (client.get_product(BAG) or {})["custom_attributes"]}[
        "description"]
    assert "<p>" in description and "<br" not in description and "<li>" in description
    # locales: fr to the declared store view, de to the one Adobe's storeConfigs give de_DE
    assert (client.get_product(BAG, "fr") or {})["name"] == "Sac de sport Joust"
    assert (client.get_product(BAG, "de") or {})["name"] == "Joust Sporttasche"
    assert (client.get_product(BAG) or {})["name"] == "Joust Duffle Bag"
    # a configurable's variants are linked on Adobe; ERP prices and status travel
    parent = client.get_product("WJ01") or {}
    assert parent.get("type_id") == "configurable" and parent["extension_attributes"]["configurable_product_links"]
    assert parent["status"] == 1

    # sold on one channel only: the men's hoodie is on the storefront, not on Adobe
    men = akeneo_product_to_canonical(systems.pim.get_product_model(MEN) or {})
    assert systems.storefront.find_by_handle(cold.storefront_handle(men)) is not None
    assert client.get_product(MEN) is None
    states = {c["channel"]: c for c in explain_sku(MEN, systems)["channels"]}
    assert states["adobe_commerce"]["state"] == "never published" and states["adobe_commerce"]["live"] is None
    states = {c["channel"]: c for c in explain_sku(BAG, systems)["channels"]}
    assert states["adobe_commerce"]["state"] == "published"
    assert states["adobe_commerce"]["live"] == {"name": "Joust Duffle Bag", "status": 1,
                                                "images": len(client.media(BAG))}
    assert states["adobe_commerce"]["live"]["images"] > 0  # its gallery went out after it

    # a second nightly over the same content (the window read again) sends nothing to either channel
    forget_pim_cursor()
    again = R.run_cold(systems, "manual__channels_again")
    assert again.status == "success"
    for hop in ("pim->storefront", ADOBE.hop):
        assert again.hops[hop]["delivered"] == 0 and again.hops[hop]["unchanged"] > 0, (hop, again.hops[hop])
    assert again.hops[ADOBE.hop]["read"] == adobe["read"] == again.hops[ADOBE.hop]["unchanged"]


def test_an_adobe_outage_is_isolated_to_adobe_and_replayed_later(hub_url: str, fresh_sandbox: Any,
                                                                 systems: Systems) -> None:
    fresh_sandbox.set_faults("adobe_commerce", error_rate=1.0, seed=14)  # every Adobe answer a 5xx, all night
    attempts: list[Any] = []
    systems.channels["adobe_commerce"] = adobe_client(fresh_sandbox, attempts)
    night = R.run_cold(systems, "manual__adobe_down")
    # the nightly succeeds; the storefront's publish is complete, as without Adobe
    assert night.status == "success" and night.unreconciled() == []
    shop, adobe = night.hops["pim->storefront"], night.hops[ADOBE.hop]
    assert shop["delivered"] > 140 and shop["read"] == shop["delivered"] + shop["unchanged"] + shop["dead_lettered"]
    assert night.hops["dam->storefront"]["delivered"] > 100
    # every Adobe record dead-lettered with kind "channel", naming the outage; reconciled on Adobe's hop
    assert adobe["read"] == adobe["dead_lettered"] > 500 and adobe["delivered"] == 0
    down = letters(night.load_id, target_system="adobe_commerce")
    assert len(down) == adobe["read"]
    assert {x.reason_kind for x in down} == {"channel"} and {x.expectation for x in down} == {"channel_unavailable"}
    assert all("adobe_commerce was unavailable" in x.reason for x in down)
    assert night.steps["publish_channels"]["adobe_commerce"]["down"]
    # once known down, no further call: the first call's attempts only (the catalog read), then nothing
    assert len(attempts) == 2 and all(a.status is not None and a.status >= 500 for a in attempts)
    # the storefront's own letters are not the outage's
    assert not [x for x in letters(night.load_id) if x.target_system == "storefront" and x.reason_kind == "channel"
                and "adobe" in x.reason]

    # Adobe answers again: the letters are replayed from the PIM to Adobe only
    fresh_sandbox.clear_faults("adobe_commerce")
    bag = [x.id for x in down if x.record_key in (BAG, "WJ01", "WJ01-M-Red")]
    assert len(bag) == 3
    done = replay.replay(bag, systems, by="tester")
    assert sorted(done["replayed"]) == sorted(bag) and done["still_open"] == []
    assert (systems.channels["adobe_commerce"].get_product(BAG) or {}).get("name") == "Joust Duffle Bag"


def test_a_retried_channel_task_resends_nothing_committed(hub_url: str, fresh_sandbox: Any,
                                                          systems: Systems) -> None:
    night = R.run_cold(systems, "manual__adobe_retry", stop_after="publish_products")
    load_id = night.load_id
    task = ADOBE.task_id
    real = systems.channels["adobe_commerce"]

    class KilledAfterOneSlice:
        """The worker dies on the task's second publish (after the first slice committed)."""

        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def publish(self, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("worker lost")
            return real.publish(*args, **kwargs)

    with pytest.raises(RuntimeError, match="worker lost"):
        run_task(task, load_id, channels.publish_channel, ADOBE.name, systems, KilledAfterOneSlice())
    first = {r.record_key for r in _writes(load_id, "ok")}
    assert first  # the first slice went out and was committed

    sent: list[Any] = []

    class Watching:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def publish(self, records: Any, catalog: Any) -> Any:
            sent.extend(str(r["sku"]) for r in records)
            return real.publish(records, catalog)

    result = run_task(task, load_id, channels.publish_channel, ADOBE.name, systems, Watching())
    assert sent and not set(sent) & first  # nothing the first attempt committed went out again
    assert result["read"] == result["delivered"] == len(first) + len(set(sent))
    # cleared after success: the task returns what it returned and sends nothing
    sent.clear()
    assert run_task(task, load_id, channels.publish_channel, ADOBE.name, systems, Watching()) == result
    assert sent == []
    counts = RunContext.attach(load_id).hop_counts()[ADOBE.hop]
    assert counts["read"] == counts["delivered"] + counts["unchanged"] + counts["dead_lettered"]


def _writes(load_id: str, outcome: str) -> list[AuditEvent]:
    with session_scope() as s:
        return list(s.scalars(select(AuditEvent).where(
            AuditEvent.load_id == load_id, AuditEvent.system == "adobe_commerce", AuditEvent.action == "write",
            AuditEvent.outcome == outcome)).all())



def test_a_backfill_brings_adobe_level_for_families_no_nightly_will_send_again(hub_url: str, fresh_sandbox: Any,
                                                                              systems: Systems) -> None:
    """After the first nightly, someone deletes a product on Adobe by hand: the next nightly's window does not see
    it change, so only a backfill puts it back. Without *Send again* the backfill finds Adobe's content as it last
    sent it and sends nothing; with it, the product and its gallery are back, and every hop reconciles."""
    from catalog_sync_sandbox import db

    night = R.run_cold(systems, "manual__before_backfill")
    assert night.status == "success" and night.hops[ADOBE.hop]["delivered"] > 500
    adobe = systems.channels["adobe_commerce"]
    gallery = adobe.media(BAG)
    assert adobe.get_product(BAG) is not None and gallery
    with fresh_sandbox.state.engine.begin() as conn:  # the sandbox has no product DELETE route: its rows go
        conn.execute(delete(db.adobe_media).where(db.adobe_media.c.sku == BAG))
        conn.execute(delete(db.adobe_product).where(db.adobe_product.c.sku == BAG))
    assert adobe.get_product(BAG) is None

    level = channels.backfill("adobe_commerce", systems, adobe, run_id="manual__backfill")
    products = level["products"]
    assert products["read"] == night.hops[ADOBE.hop]["read"] and products["delivered"] == 0
    assert products["unchanged"] == products["read"] and products["down"] is None
    # every family root of the PIM was read; the men's ones, outside Adobe's trees, were not staged for it
    assert level["families"]["in_pim"] > level["families"]["sold"] > 0
    assert adobe.get_product(BAG) is None  # the hub's fingerprint says Adobe has it as sent

    again = channels.backfill("adobe_commerce", systems, adobe, resend=True, run_id="manual__backfill_resend")
    products = again["products"]
    assert products["read"] == night.hops[ADOBE.hop]["read"] and products["dead_lettered"] == 0
    assert products["delivered"] == products["read"]
    assert (adobe.get_product(BAG) or {}).get("name") == "Joust Duffle Bag"
    assert {m.get("file", "").rsplit("/", 1)[-1] for m in adobe.media(BAG)} == {
        m.get("file", "").rsplit("/", 1)[-1] for m in gallery}
    with session_scope() as s:  # each backfill is a hub run of its own whose hops reconcile (finish checks them)
        runs = {x.run_id: x for x in s.scalars(select(SyncRun).where(SyncRun.flow == channels.BACKFILL_FLOW))}
    assert {r: x.status for r, x in runs.items()} == {"manual__backfill": "success",
                                                     "manual__backfill_resend": "success"}
    assert runs["manual__backfill_resend"].details["images"]["delivered"] >= 1
