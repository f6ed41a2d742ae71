"""Stand-in ``catalog_sync.airflow.systems`` for the browser tests: ``explain_configured`` answers the documented
trace shape, with the DAM link broken, without any system to read."""

from __future__ import annotations

from typing import Any

SCRIPT = "<script>alert('pwned')</script>"


def explain_configured(sku: str, hub_url: str | None = None) -> dict[str, Any]:
    """A fixed trace whose first broken link is ``dam_assets``."""
    return {
        "sku": sku,
        "systems": {
            "erp": {"sku": sku, "lifecycle_status": "active", "product_group": "Hoodies"},
            "pim": {"sku": sku, "name": "Hoodie " + SCRIPT, "enabled": True},
            "dam": [{"asset_id": "A1", "status": "in_review", "role": "hero"}],
            "supplier": [{"supplier": "Acme", "stock": 12}],
            "storefront": None,
            "shopper_page": {"status": 404, "cache": "MISS", "has_image": False},
        },
        "chain": [
            {"link": "erp_lifecycle", "ok": True, "detail": "active since 2025-02-01"},
            {"link": "dam_assets", "ok": False, "detail": "hero image A1 is still in review"},
            {"link": "pim_vs_erp", "ok": True, "detail": "consistent"},
            {"link": "storefront_feed", "ok": False, "detail": "not in the feed"},
            {"link": "shopper_page", "ok": False, "detail": "404 from the storefront"},
            {"link": "supplier_writeback", "ok": True, "detail": "nothing to write back"},
        ],
        "broken_link": "dam_assets",
        "verdict": f"{sku} is not on the storefront: its hero image is not approved in the DAM.",
        "last_diagnosis": {
            "load_id": "seasonal-1",
            "broken_link": "dam_assets",
            "actions": ["notified the DAM team"],
        },
        "dead_letters": [
            {
                "id": 1,
                "source_system": "pim",
                "target_system": "storefront",
                "reason_kind": "gate",
                "expectation": "hero_image_approved",
                "reason": "no approved hero image",
                "load_id": "nightly-1",
            }
        ],
    }
