"""A file-fed ERP: item exports dropped into an inbox, checked whole, then row by row (catalog_sync.connectors.erp_files).

Through the cold flow: a broken file is refused whole with a line-numbered report and moved aside, nothing of it
reaches the PIM, and the next good file goes through. The choice of feed is one setting: the ERP connection's
extra ``item_feed``."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from catalog_sync import reliability as R
from catalog_sync.airflow.hooks import client_from_connection
from catalog_sync.connectors.erp_files import COLUMNS, ErpItemFiles, FileRefused, parse_file
from catalog_sync.domain import System
from catalog_sync.flows.systems import Systems
from tests.conftest import load_sandbox
from tests.reliability.conftest import FAST_STOREFRONT
from tests.reliability.test_bad_inputs import _row, _write

NOW = 1_780_000_000.0


def _item(sku: str, **cells: str) -> dict[str, str]:
    return {**dict.fromkeys(COLUMNS, ""), "sku": sku, "product_type": "simple", "lifecycle_status": "active",
            "product_group": "Bag", "uom": "EA", "weight": "1.2", "weight_unit": "lbs", "country_of_origin": "US",
            "vendor_name": "Luma", "reference_price": "45", "currency": "USD", **cells}


def _export(path: Path, rows: list[dict[str, str]], *, delimiter: str = ",", trailer: int | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
        if trailer is not None:
            fh.write(f"TRAILER,{trailer}\r\n")
    return path


# ------------------------------------------------------------------------------------------- the file checks


def test_a_good_file_becomes_api_shaped_items_and_a_bad_row_alone_is_refused() -> None:
    rows = [_item("F-1"), _item("F-2", weight="heavy"), _item("F-3")]
    data = "\n".join([",".join(COLUMNS)] + [",".join(r[c] for c in COLUMNS) for r in rows] + ["TRAILER,3"])
    from datetime import UTC, datetime

    parsed = parse_file("items.csv", data.encode(), None, datetime(2026, 12, 2, tzinfo=UTC))
    good = [p for p in parsed if isinstance(p, dict)]
    assert [g["sku"] for g in good] == ["F-1", "F-3"]
    assert good[0]["weight"] == {"value": 1.2, "unit": "lbs"} and good[0]["updated_at"] == "2026-12-02T00:00:00Z"
    bad = [p for p in parsed if not isinstance(p, dict)]
    assert len(bad) == 1 and bad[0].record_key == "F-2" and "line 3: weight 'heavy' is not a number" in bad[0].reason


def test_a_file_says_what_an_item_is_and_lists_a_kit_s_components() -> None:
    from datetime import UTC, datetime

    rows = [_item("EBOOK-1", item_type="downloadable", weight="", weight_unit=""),
            _item("KIT-1", item_type="bundle", kit_pricing="fixed", components="F-1=1|F-3=2.5|F-4"),
            _item("KIT-2", item_type="grouped", components="F-1=none")]
    data = "\n".join([",".join(COLUMNS)] + [",".join(r[c] for c in COLUMNS) for r in rows])
    parsed = parse_file("items.csv", data.encode(), None, datetime(2026, 12, 2, tzinfo=UTC))
    good = {p["sku"]: p for p in parsed if isinstance(p, dict)}
    assert (good["EBOOK-1"]["item_type"], good["EBOOK-1"]["components"]) == ("downloadable", None)
    assert good["KIT-1"]["components"] == [{"sku": "F-1", "quantity": 1.0}, {"sku": "F-3", "quantity": 2.5},
                                           {"sku": "F-4", "quantity": 1.0}]
    assert good["KIT-1"]["kit_pricing"] == "fixed"
    (bad,) = [p for p in parsed if not isinstance(p, dict)]
    assert bad.record_key == "KIT-2" and "components 'F-1=none': the quantity is not a number" in bad.reason


@pytest.mark.parametrize(("content", "expected"), [
    (b"sku;product_type;lifecycle_status\nA;simple;active\n", "line 1: the delimiter is ';'"),
    (b"sku,product_type\nA,simple\n", "line 1: missing required column(s) lifecycle_status"),
    (b"sku,product_type,lifecycle_status,colour\nA,simple,active,red\n", "line 1: unknown column(s) colour"),
    (b"sku,product_type,lifecycle_status\nA,simple,active\nB,simple,active\nTRAILER,3\n",
     "line 4: 2 data rows, but the feed states 3"),
    (b"sku,product_type,lifecycle_status\nA,simple,active\nB,simple,\xe9t\xe9\n", "line 3: not UTF-8 text"),
    (b"", "line 1: empty file"),
])
def test_a_broken_file_is_refused_whole_with_line_numbers(content: bytes, expected: str) -> None:
    from datetime import UTC, datetime

    with pytest.raises(FileRefused) as caught:
        parse_file("items.csv", content, None, datetime.now(UTC))
    assert expected in str(caught.value), str(caught.value)


def test_a_manifest_states_the_row_count() -> None:
    from datetime import UTC, datetime

    data = b"sku,product_type,lifecycle_status\nA,simple,active\n"
    assert len(parse_file("i.csv", data, {"rows": 1}, datetime.now(UTC))) == 1
    with pytest.raises(FileRefused, match="1 data rows, but the feed states 2"):
        parse_file("i.csv", data, {"rows": 2}, datetime.now(UTC))


def test_the_feed_is_one_setting_on_the_erp_connection(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    conn = Connection(conn_id="catalog_sync_erp", conn_type="catalog_sync_erp", host="http://127.0.0.1:9/erp",
                      password="k", extra=json.dumps({"item_feed": f"file://{tmp_path}"}))
    client = client_from_connection(System.ERP, conn)
    try:
        assert isinstance(client, ErpItemFiles) and client.inbox == tmp_path and client.api is not None
    finally:
        client.close()
    api_only = Connection(conn_id="catalog_sync_erp", conn_type="catalog_sync_erp", host="http://127.0.0.1:9/erp",
                          password="k")
    client = client_from_connection(System.ERP, api_only)
    try:
        assert not isinstance(client, ErpItemFiles)  # the API stays the default
    finally:
        client.close()


# ------------------------------------------------------------------------------------- through the cold flow


def _drop(path: Path, at: float) -> None:
    os.utime(path, (at, at))


def test_a_broken_file_is_refused_and_the_next_good_one_is_synced(
    rel_sandbox: Any, hub_url: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    _write(catalog / "products.csv", [_row(f"FILL-{n:04d}") for n in range(30)])
    load_sandbox(rel_sandbox, catalog)
    rel_sandbox.settings(**FAST_STOREFRONT)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    api = Systems.from_base_url(rel_sandbox.url, rel_sandbox.credentials)
    systems = Systems(ErpItemFiles(inbox, api.erp), api.pim, api.dam, api.storefront, api.supplier)
    try:
        # a file cut on the way: the trailer says 5 rows, 4 arrived
        broken = _export(inbox / "items_20261201T0100.csv", [_item(f"CUT-{n}") for n in range(4)], trailer=5)
        _drop(broken, time.time() - 60)
        first = R.run_cold(systems, "manual__files_1")
        assert first.status == "success" and first.unreconciled() == []
        assert first.hops["erp->pim"]["read"] == 1 and first.hops["erp->pim"]["dead_lettered"] == 1  # the file
        rejected = inbox / "rejected"
        assert not broken.exists() and (rejected / broken.name).exists()
        report = (rejected / f"{broken.name}.report.txt").read_text()
        assert "line 6: 4 data rows, but the feed states 5" in report
        letters = [x for x in R.open_dead_letters() if x.record_key == broken.name]
        assert len(letters) == 1 and "refused" in letters[0].reason
        in_pim = R.pim_state(systems)
        assert not [sku for sku in in_pim if sku.startswith("CUT-")]  # nothing of it half-applied

        good = _export(inbox / "items_20261202T0100.csv",
                       [_item(f"GOOD-{n}") for n in range(5)] + [_item("GOOD-BAD", reference_price="lots")], trailer=6)
        _drop(good, time.time())
        second = R.run_cold(systems, "manual__files_2")
        assert second.status == "success" and second.unreconciled() == []
        assert second.hops["erp->pim"]["read"] == 6
        in_pim = R.pim_state(systems)
        assert {f"GOOD-{n}" for n in range(5)} <= set(in_pim)
        assert in_pim["GOOD-0"]["lifecycle_status"] == "active"
        assert "GOOD-BAD" not in in_pim
        bad_row = [x for x in R.open_dead_letters() if x.record_key == "GOOD-BAD"]
        assert bad_row and "line 7: reference_price 'lots' is not a number" in bad_row[0].reason
        assert good.exists()  # a read file stays; the committed cursor keeps the next run from reading it again
        third = R.run_cold(systems, "manual__files_3")
        assert third.status == "success" and third.hops.get("erp->pim", {}).get("read", 0) == 0
    finally:
        api.close()


def test_the_inbox_watcher_fires_for_a_file_newer_than_the_cursor(hub_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``erp_item_files`` asset's trigger, driven as the triggerer drives it: silent with an empty inbox, one event
    for a dropped file, none again for the same file; silent for an API-fed ERP (no item_feed)."""
    import asyncio
    import concurrent.futures

    from catalog_sync.airflow.triggers import ErpItemFileTrigger
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_ERP", json.dumps(
        {"conn_type": "catalog_sync_erp", "extra": {"item_feed": str(inbox)}}))
    monkeypatch.setenv("AIRFLOW_CONN_API_FED_ERP", json.dumps(
        {"conn_type": "catalog_sync_erp", "host": "127.0.0.1", "password": "k"}))
    with session_scope() as s:  # the last nightly read up to a minute ago
        repo.commit_cursor(s, "erp", "items", "updated_at", "2026-01-01T00:00:00+00:00", "test")
    old = _export(inbox / "items_old.csv", [_item("OLD-1")])
    _drop(old, 1_700_000_000.0)  # arrived before the cursor: already read

    async def watch() -> list[Any]:
        events = ErpItemFileTrigger(poll_interval=0.05).run()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(events), timeout=0.5)
        events = ErpItemFileTrigger(poll_interval=0.05).run()
        await asyncio.to_thread(_export, inbox / "items_new.csv", [_item("NEW-1")])
        seen = [(await asyncio.wait_for(anext(events), timeout=10)).payload]
        with pytest.raises(TimeoutError):  # the same file is signalled once
            await asyncio.wait_for(anext(events), timeout=0.5)
        quiet = ErpItemFileTrigger(conn_id="api_fed_erp", poll_interval=0.05, recheck_interval=0.05).run()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(quiet), timeout=0.5)
        return seen

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        (event,) = pool.submit(asyncio.run, watch()).result()
    assert event == {"files": ["items_new.csv"]}
