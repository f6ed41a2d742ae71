"""Images to the declared sales channels (governance/channels.yaml ``images``) over the Luma catalog in the sandbox,
with a real hub: Adobe Commerce gets each sold product's showable gallery in its own rendition (the DAM's ``square``)
with its own image roles, a second nightly adds nothing, an image not licensed for Adobe's region is not sent there
while the storefront shows it, an image whose licence expired comes off Adobe through the image_windows sweep, and
an Adobe outage dead-letters Adobe's galleries only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync import reliability as R
from catalog_sync.connectors.adobe_mapping import media_entry_stem, media_stem
from catalog_sync.flows import cold, windows
from catalog_sync.flows.systems import Systems
from catalog_sync.governance.channels import load_channels
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter
from catalog_sync_sandbox import db as sandbox_db
from catalog_sync_sandbox.dam import write_asset
from tests.integration.test_channels import adobe_client, forget_pim_cursor

ADOBE = load_channels().channel("adobe_commerce")
#: A women's hoodie: sold on both channels, a configurable family whose variants bring their own pictures.
BAG = "WH06"


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


def bag_assets(systems: Systems) -> list[dict[str, Any]]:
    """The family's DAM assets: its gallery's once the PIM links them, the DAM's own before."""
    ids = cold.family_asset_ids(cold._families(systems, [BAG])[0])
    if not ids:  # before the first nightly the PIM holds no links yet
        return [a for page in systems.dam.iter_assets() for a in page.records
                if str(a.get("sku") or "") == BAG or str(a.get("sku") or "").startswith(BAG + "-")]
    found, _ = systems.dam.get_assets(ids)
    return [found[i] for i in ids]


def stored_bytes(server: Any, sku: str) -> dict[str, str]:
    """What Adobe Commerce stored for each of the SKU's gallery entries: entry file -> sha256 of the image."""
    t = sandbox_db.adobe_media
    with server.state.engine.connect() as conn:
        return {r.entry["file"]: r.content_sha256 for r in conn.execute(select(t).where(t.c.sku == sku))}


def shop_images(systems: Systems) -> list[str]:
    shown = systems.storefront.find_by_handle(cold.storefront_handle(cold._families(systems, [BAG])[0]["parent"]))
    return [str(i.get("src")) for i in (shown or {}).get("images") or []]


def test_adobe_gets_its_rendition_and_roles_once_and_not_what_its_region_may_not_show(
        hub_url: str, fresh_sandbox: Any, systems: Systems) -> None:
    assets = bag_assets(systems)
    assert len(assets) >= 2
    # one of the bag's images is licensed for the US only: the storefront (US) shows it, Adobe (EU) must not
    us_only = max(assets, key=lambda a: (a["role"] != "hero", str(a["id"])))
    write_asset(fresh_sandbox.state, str(us_only["id"]), {"rights_regions": ["US"]})

    night = R.run_cold(systems, "manual__channel_images")
    assert night.status == "success" and night.unreconciled() == []
    hop = night.hops[ADOBE.image_hop]
    assert hop["read"] == hop["delivered"] > 20 and hop["dead_lettered"] == 0, hop
    assert night.hops["dam->storefront"]["delivered"] > 100  # the storefront's images as before

    client = systems.channels["adobe_commerce"]
    entries = client.media(BAG)
    linked = bag_assets(systems)
    wanted = [a for a in linked if a["id"] != us_only["id"]]
    assert len(entries) == len(wanted) == len(linked) - 1
    assert len(shop_images(systems)) == len(linked)  # the storefront keeps the US-only image
    # each entry is one asset's square rendition: the bytes Adobe holds are the DAM's square ones, not the original
    stems = {media_stem(str(a["id"]), "square", a["checksum"]): a for a in wanted}
    stored = stored_bytes(fresh_sandbox, BAG)
    for entry in entries:
        asset = stems[media_entry_stem(entry) or ""]
        square, mime = systems.dam.download_rendition(asset, "square")
        assert mime == "image/png" and entry["file"].endswith(".png")
        assert stored[entry["file"]] == hashlib.sha256(square).hexdigest() != asset["checksum"]
    # the channel's roles: the first hero in gallery order fills image, small_image and thumbnail, the others none
    ordered = sorted(entries, key=lambda e: e["position"])
    assert [e["position"] for e in ordered] == list(range(1, len(entries) + 1))
    assert stems[media_entry_stem(ordered[0]) or ""]["role"] == "hero"
    assert ordered[0]["types"] == ["image", "small_image", "thumbnail"]
    assert all(e["types"] == [] for e in ordered[1:])

    # a second nightly over the same content adds nothing, removes nothing
    forget_pim_cursor()
    again = R.run_cold(systems, "manual__channel_images_again")
    assert again.status == "success" and again.unreconciled() == []
    hop_again = again.hops[ADOBE.image_hop]
    assert hop_again["delivered"] == 0 and hop_again["unchanged"] == hop_again["read"] > 20, hop_again
    assert client.media(BAG) == entries


def test_an_expired_licence_comes_off_adobe_through_the_window_sweep(hub_url: str, fresh_sandbox: Any,
                                                                     systems: Systems) -> None:
    night = R.run_cold(systems, "manual__channel_images_sweep")
    assert night.status == "success"
    client = systems.channels["adobe_commerce"]
    before = client.media(BAG)
    assert len(before) >= 2 and len(shop_images(systems)) == len(before)
    expired = next(a for a in bag_assets(systems) if a["role"] != "hero")
    now = datetime.now(UTC)
    write_asset(fresh_sandbox.state, str(expired["id"]), {"rights_expires_at": now - timedelta(minutes=5)})

    swept = windows.sweep(systems, run_id="manual__sweep", now=now)
    assert BAG in swept["skus"]
    on_adobe = swept["channels"]["adobe_commerce"]
    assert on_adobe["families"] >= 1 and on_adobe["down"] is None and on_adobe["load_id"]
    after = client.media(BAG)
    gone = media_stem(str(expired["id"]), "square", expired["checksum"])
    assert gone in {media_entry_stem(e) for e in before} and gone not in {media_entry_stem(e) for e in after}
    assert len(after) == len(before) - 1
    # the others stay: the same entries, those after the gone one moved up in place (no file sent again)
    assert {e["id"] for e in after} < {e["id"] for e in before}
    assert sorted(e["position"] for e in after) == list(range(1, len(after) + 1))
    assert len(shop_images(systems)) == len(after)  # gone from the storefront too, by the same rule


def test_an_adobe_outage_dead_letters_adobes_galleries_only(hub_url: str, fresh_sandbox: Any,
                                                            systems: Systems) -> None:
    night = R.run_cold(systems, "manual__channel_images_down", stop_after="publish_channels")
    fresh_sandbox.set_faults("adobe_commerce", error_rate=1.0, seed=21)  # Adobe down after its products went out
    for step in R.COLD_STEPS[R.COLD_STEPS.index("publish_channel_images"):]:
        R.run_step(step, night.load_id, systems)
    done = R.report(night.load_id)
    assert done.status == "success" and done.unreconciled() == []
    hop = done.hops[ADOBE.image_hop]
    assert hop["read"] == hop["dead_lettered"] > 20 and hop["delivered"] == 0
    assert done.hops["dam->storefront"]["delivered"] > 100  # the storefront's images were not held back
    with session_scope() as s:
        down = s.scalars(select(DeadLetter).where(DeadLetter.load_id == night.load_id,
                                                  DeadLetter.entity == "images")).all()
        assert {(x.target_system, x.reason_kind, x.expectation) for x in down} == {
            ("adobe_commerce", "channel", "channel_unavailable")}
        assert len(down) == hop["read"]
