"""The SKU trace page shows the SKU's state on each declared sales channel (``explain_sku``'s ``channels``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.ui.test_pages import trace_result

PREFIX = "/catalog-sync"


@pytest.fixture
def admin(client: Any, tokens: dict[str, str]) -> Any:
    client.cookies.set("_token", tokens["admin"])
    return client


def test_the_trace_page_shows_each_channels_state(admin: Any, hub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result = trace_result("WJ01-S-Red")
    result["channels"] = [
        {"channel": "adobe_commerce", "enabled": True, "state": "dead_lettered", "open_letters": 1,
         "last_write": {"load_id": "cold_data_nightly:n2", "outcome": "dead_lettered",
                        "message": "adobe_commerce was unavailable during the nightly"},
         "configured": True, "live": {"name": "Stellar Solar Jacket", "status": 1, "images": 3}},
        {"channel": "b2b_portal", "enabled": True, "state": "published", "open_letters": 0, "last_write": None,
         "configured": True, "live": {"name": "Stellar Solar Jacket", "status": 2, "images": 1}},
    ]
    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", lambda sku: result)
    html = admin.get(f"{PREFIX}/trace", params={"sku": "WJ01-S-Red"}).text
    table = html.split('id="trace-channels"', 1)[1].split("</table>", 1)[0]
    assert "adobe_commerce" in table and "dead_lettered (1 open letter)" in table
    assert "dead_lettered in cold_data_nightly:n2: adobe_commerce was unavailable during the nightly" in table
    # what the channel shows now: its product's name, whether it is enabled, and how many images its gallery has
    assert "Stellar Solar Jacket (enabled, 3 images)" in table and "Stellar Solar Jacket (disabled, 1 image)" in table
    # a trace without channels (an older result) shows no table
    del result["channels"]
    assert 'id="trace-channels"' not in admin.get(f"{PREFIX}/trace", params={"sku": "WJ01-S-Red"}).text


def test_catalog_sync_explain_shows_each_channels_state() -> None:
    from catalog_sync.trace_cli import render_text

    result = trace_result("WJ01-S-Red")
    result["channels"] = [
        {"channel": "adobe_commerce", "enabled": True, "state": "dead_lettered", "open_letters": 1,
         "last_write": {"load_id": "cold_data_nightly:n2", "outcome": "dead_lettered", "at": "2026-12-03T02:14:00"},
         "configured": True, "live": {"name": "Stellar Solar Jacket", "status": 2, "images": 3}},
        {"channel": "b2b_portal", "enabled": True, "state": "never published", "open_letters": 0,
         "last_write": None, "configured": True, "live": None},
    ]
    text = render_text(result)
    channels = text.split("Sales channels (2)", 1)[1].split("Chain", 1)[0]
    adobe, portal = channels.split("b2b_portal", 1)
    assert "dead_lettered, 1 open dead letter(s)" in adobe
    assert "dead_lettered at 2026-12-03T02:14:00 in cold_data_nightly:n2" in adobe
    assert "Stellar Solar Jacket, disabled, 3 image(s)" in adobe
    assert "never published" in portal and "no such product" in portal
    assert "Sales channels" not in render_text(trace_result("WJ01-S-Red"))
