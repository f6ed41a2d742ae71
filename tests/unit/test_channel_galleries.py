"""How one family's gallery on a declared channel is made the showable one (``channels._sync_gallery``), against a
channel and a DAM kept in memory: what is added, moved in place, removed and left alone."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog_sync.connectors import Outcome, WriteResult
from catalog_sync.connectors.adobe_mapping import media_entry_stem
from catalog_sync.flows.channels import _sync_gallery
from catalog_sync.governance.channels import load_channels

ADOBE = load_channels().channel("adobe_commerce")
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)


def asset(n: int, role: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"AST-{n}", "role": role, "status": "approved", "valid_from": None, "valid_to": None,
            "rights_expires_at": None, "rights_regions": [], "checksum": f"{n:02d}" * 32, "filename": f"img{n}.jpg",
            "renditions": {"ecommerce": "e", "square": "s"}, **fields}


class Dam:
    def __init__(self) -> None:
        self.downloads: list[str] = []

    def download_rendition(self, a: Mapping[str, Any], rendition: str) -> tuple[bytes, str]:
        self.downloads.append(f"{a['id']}:{rendition}")
        return PNG, "image/png"


class Channel:
    """Magento's gallery as far as the sync sees it: entries with ids, a role held by one entry."""

    def __init__(self, entries: list[dict[str, Any]] | None = None) -> None:
        self.entries = list(entries or [])
        self.ids = itertools.count(100)
        self.calls: list[str] = []

    def media(self, sku: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.entries]

    def _release(self, types: list[str], keep: int) -> None:
        for e in self.entries:
            if e["id"] != keep:
                e["types"] = [t for t in e["types"] if t not in types]

    def add_media(self, sku: str, entry: Mapping[str, Any], *, listed: Any = None) -> WriteResult:
        new = {"id": next(self.ids), "label": entry["label"], "position": entry["position"], "disabled": False,
               "types": list(entry["types"]), "file": f"/c/s/{entry['content']['name']}"}
        self._release(new["types"], new["id"])
        self.entries.append(new)
        self.calls.append(f"add {media_entry_stem(new)}")
        return WriteResult(sku, Outcome.OK, 200)

    def update_media(self, sku: str, entry_id: int, entry: Mapping[str, Any]) -> WriteResult:
        (found,) = [e for e in self.entries if e["id"] == entry_id]
        found.update(label=entry["label"], position=entry["position"], types=list(entry["types"]))
        self._release(found["types"], entry_id)
        self.calls.append(f"move {entry_id}")
        return WriteResult(f"{sku}/{entry_id}", Outcome.OK, 200)

    def delete_media(self, sku: str, entry_id: int) -> WriteResult:
        self.entries = [e for e in self.entries if e["id"] != entry_id]
        self.calls.append(f"delete {entry_id}")
        return WriteResult(f"{sku}/{entry_id}", Outcome.OK, 200)


class Systems:
    def __init__(self) -> None:
        self.dam = Dam()


def sync(channel: Channel, systems: Systems, assets: list[dict[str, Any]]) -> dict[str, Any]:
    return _sync_gallery(ADOBE, systems, channel, "WH06", assets, NOW)  # type: ignore[arg-type]


def test_a_gallery_goes_out_once_in_order_with_the_channels_roles() -> None:
    assets = [asset(3, "gallery"), asset(1, "hero"), asset(2, "hero"), asset(4, "swatch")]
    channel, systems = Channel(), Systems()
    first = sync(channel, systems, assets)
    assert all(r.ok for r in first["results"]) and len(first["added"]) == 4
    by_position = sorted(channel.entries, key=lambda e: e["position"])
    assert [e["label"] for e in by_position] == ["img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg"]
    assert [e["types"] for e in by_position] == [["image", "small_image", "thumbnail"], [], [], ["swatch_image"]]
    assert systems.dam.downloads == ["AST-1:square", "AST-2:square", "AST-3:square", "AST-4:square"]
    # again, and again after Magento renamed a file whose name was taken: nothing sent
    channel.entries[0]["file"] = channel.entries[0]["file"].replace(".png", "_1.png")
    channel.calls.clear()
    again = sync(channel, systems, assets)
    assert channel.calls == [] and again["added"] == again["moved"] == again["removed"] == []
    assert len(again["kept"]) == 4 and len(systems.dam.downloads) == 4


def test_a_hidden_image_goes_the_others_move_up_in_place_and_hand_made_entries_stay() -> None:
    assets = [asset(1, "hero"), asset(2, "gallery"), asset(3, "gallery")]
    channel, systems = Channel([{"id": 1, "label": "by hand", "position": 9, "disabled": False, "types": [],
                                 "file": "/m/y/my-own.jpg"}]), Systems()
    sync(channel, systems, assets)
    ids = {e["label"]: e["id"] for e in channel.entries}
    channel.calls.clear()
    # the first gallery image's licence does not cover the channel's region (EU); the hero's expired
    assets[1]["rights_regions"] = ["US"]
    assets[0]["rights_expires_at"] = (NOW - timedelta(days=1)).isoformat()
    done = sync(channel, systems, assets)
    assert all(r.ok for r in done["results"])
    assert channel.calls == [f"delete {ids['img1.jpg']}", f"delete {ids['img2.jpg']}", f"move {ids['img3.jpg']}"]
    assert {e["label"]: e["position"] for e in channel.entries} == {"by hand": 9, "img3.jpg": 1}
    assert len(systems.dam.downloads) == 3  # the image that moved was not sent again


def test_a_new_file_of_an_asset_is_a_new_entry_and_an_asset_without_the_rendition_is_not_sent() -> None:
    assets = [asset(1, "hero"), asset(2, "gallery")]
    channel, systems = Channel(), Systems()
    sync(channel, systems, assets)
    old = {e["label"]: e["id"] for e in channel.entries}
    channel.calls.clear()
    assets[0]["checksum"] = "ff" * 32  # a re-upload in the DAM
    assets[1]["renditions"] = {"ecommerce": "e"}  # the DAM has no square rendition of it
    sync(channel, systems, assets)
    assert channel.calls == [f"delete {old['img1.jpg']}", f"delete {old['img2.jpg']}", "add " +
                             str(media_entry_stem(channel.entries[-1]))]
    assert [e["types"] for e in channel.entries] == [["image", "small_image", "thumbnail"]]
