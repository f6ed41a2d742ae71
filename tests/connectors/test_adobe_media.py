"""The Adobe Commerce connector's gallery calls against the sandbox: an entry's roles move to the entry given them,
an entry is changed in place without its file, and a removal is idempotent (Magento's 404 for an entry that is not
there is UNCHANGED)."""

from __future__ import annotations

from typing import Any

import pytest

from catalog_sync.connectors import Outcome
from catalog_sync.connectors.adobe_mapping import magento_media_entry, media_entry_stem, media_stem
from catalog_sync.connectors.http import Disposition, RecordError
from tests.connectors.test_adobe_commerce import PNG, catalog, family, make_client, sb, server  # noqa: F401

GIF = b"GIF89a" + bytes(range(32))


def test_a_gallery_entry_is_moved_in_place_and_removed_once(sb: Any) -> None:  # noqa: F811
    with make_client(sb) as client:
        client.publish(family()[4:], catalog(client))
        first, second = (media_stem(f"AST-{n}", "square", f"{n}" * 12) for n in (1, 2))
        hero = magento_media_entry(PNG, "image/png", f"{first}.png", "hero", "hero", 1)
        other = magento_media_entry(GIF, "image/gif", f"{second}.gif", "other", "gallery", 2,
                                    types=["image", "small_image", "thumbnail"])
        assert client.add_media("24-MB01", hero).ok and client.add_media("24-MB01", other).ok
        a, b = sorted(client.media("24-MB01"), key=lambda e: e["position"])
        assert (media_entry_stem(a), media_entry_stem(b)) == (first, second)
        assert a["types"] == [] and b["types"] == ["image", "small_image", "thumbnail"]  # the role moved to b

        moved = client.update_media("24-MB01", a["id"], {**a, "position": 3, "types": ["image"]})
        assert moved.outcome is Outcome.OK and "content" not in moved.sent["entry"]
        a2, b2 = sorted(client.media("24-MB01"), key=lambda e: e["id"])
        assert (a2["position"], a2["types"], a2["file"]) == (3, ["image"], a["file"])
        assert b2["types"] == ["small_image", "thumbnail"]

        gone = client.delete_media("24-MB01", a["id"])
        again = client.delete_media("24-MB01", a["id"])
        missing = client.update_media("24-MB01", a["id"], a)
        assert gone.outcome is Outcome.OK and again.outcome is Outcome.UNCHANGED and again.status == 404
        assert missing.disposition is Disposition.DEAD_LETTER and "No image with the provided ID" in str(
            missing.message)
        assert [e["id"] for e in client.media("24-MB01")] == [b["id"]]
        with pytest.raises(RecordError, match="doesn't exist") as refused:  # that record's error, not the run's
            client.media("NO-SUCH-SKU")
        assert refused.value.status == 404
