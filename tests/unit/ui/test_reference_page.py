"""The Reference data page: applied tables and proposals with their diff, read from a real (migrated) hub."""

from __future__ import annotations

from typing import Any

import pytest

from catalog_sync import refdata
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import SyncRun

PREFIX = "/catalog-sync"


@pytest.fixture
def admin(client: Any, tokens: dict[str, str]) -> Any:
    client.cookies.set("_token", tokens["admin"])
    return client


def test_the_page_shows_the_seeded_tables_and_a_waiting_proposal_with_its_diff(admin: Any, hub_url: str) -> None:
    assert "No refresh has proposed a change yet." in admin.get(f"{PREFIX}/reference-data").text
    with session_scope(hub_url) as s:
        s.add(SyncRun(load_id="weekly_reconciliation:w1", flow="weekly_reconciliation", run_id="scheduled__w1"))
    owners = {**refdata.gate_seed(), "category": {"gear": {"parent": None, "labels": {"en_US": "<b>Gear</b>"}}}}
    owners["unit"] = {**owners["unit"], "BAG": {"kind": "count", "aliases": ["bag"]}}
    proposed = refdata.propose("weekly_reconciliation:w1", owners, hub_url)

    data = admin.get(f"{PREFIX}/api/reference-data").json()
    assert {t["table"]: t["rows"] for t in data["tables"]} == {
        "unit": len(refdata.gate_seed()["unit"]), "country": len(refdata.gate_seed()["country"]), "category": 0}
    (proposal,) = data["proposals"]
    assert (proposal["id"], proposal["status"], proposal["changes"]) == (proposed["proposal_id"], "proposed", 2)
    assert proposal["approval_path"] == ("/dags/weekly_reconciliation/runs/scheduled__w1/tasks/"
                                         "approve_reference_data/required_actions")
    html = admin.get(f"{PREFIX}/reference-data").text
    assert "<code>BAG</code>" in html and "Approve or reject in Airflow" in html
    assert "<b>Gear</b>" not in html and "&lt;b&gt;Gear&lt;/b&gt;" in html  # PIM labels are escaped

    refdata.decide(proposed["proposal_id"], approved=False, decided_by="catalog.manager", hub_url=hub_url)
    html = admin.get(f"{PREFIX}/reference-data").text
    assert "rejected" in html and "by catalog.manager" in html and "Approve or reject in Airflow" not in html
