"""The Freeze windows page: the active window and what it holds, read from a real (migrated) hub and the calendar
file the environment names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import HeldChange, SyncRun

PREFIX = "/catalog-sync"


@pytest.fixture
def admin(client: Any, tokens: dict[str, str]) -> Any:
    client.cookies.set("_token", tokens["admin"])
    return client


def test_the_page_shows_the_active_freeze_what_it_holds_and_the_waiting_release(
        admin: Any, hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "No freeze window is active" in admin.get(f"{PREFIX}/freeze").text
    now = datetime.now(UTC)
    calendar = tmp_path / "freeze.yaml"
    calendar.write_text(f"""windows:
  - name: peak
    start: "{(now - timedelta(days=1)).isoformat()}"
    end: "{(now + timedelta(days=1)).isoformat()}"
    holds: [category_move, deletion]
    reason: <i>holiday</i> peak
""")
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR", str(calendar))
    with session_scope(hub_url) as s:
        s.add(HeldChange(kind="category_move", system="storefront", entity="product", record_key="24-MB01",
                         change={"field": "tags", "before": ["Gear/Bags"], "after": ["Gear/Watches"]},
                         window="peak", load_id="cold_data_nightly:n1", status="held"))
        s.add(HeldChange(kind="deletion", system="pim", entity="product", record_key="24-WG01",
                         change={"system": "pim", "sku": "24-WG01"}, window="peak", load_id="weekly:w1",
                         status="released", released_by="ops", released_at=now))
        s.add(SyncRun(load_id="freeze_release:manual__r1", flow="freeze_release", run_id="manual__r1",
                      status="running"))

    data = admin.get(f"{PREFIX}/api/freeze").json()
    assert [w["name"] for w in data["active"]] == ["peak"] and data["held_total"] == 1
    assert data["per_kind"] == {"category_move": 1}
    assert data["approval_path"] == "/dags/freeze_release/runs/manual__r1/tasks/approve_release/required_actions"
    html = admin.get(f"{PREFIX}/freeze").text
    assert "peak: holding category move, deletion" in html
    assert "`24-MB01` categories [&#39;Gear/Bags&#39;] -&gt; [&#39;Gear/Watches&#39;]" in html
    assert "A release is waiting for approval in Airflow" in html
    assert "<i>holiday</i>" not in html  # the calendar's text is escaped
    assert "24-WG01" in html.split("Latest releases")[1] and "released" in html


def test_a_broken_calendar_is_shown_not_a_server_error(admin: Any, hub_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calendar = tmp_path / "freeze.yaml"
    calendar.write_text('windows:\n  - name: x\n    start: "2027-01-01T00:00:00"\n    end: "2027-01-02T00:00:00Z"\n'
                        "    holds: [deletion]\n")
    monkeypatch.setenv("CATALOG_SYNC_FREEZE_CALENDAR", str(calendar))
    page = admin.get(f"{PREFIX}/freeze")
    assert page.status_code == 200 and "has no UTC offset" in page.text
