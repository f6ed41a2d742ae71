"""Gate results on the hub (SQLite and PostgreSQL), KPIs and their history, Data Docs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from _quality_cases import NOW, PRODUCT, PRODUCTS_L0, PRODUCTS_L1, PRODUCTS_L2, gate_kwargs
from sqlalchemy import select

from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, DqResult
from catalog_sync.quality import docs, kpis
from catalog_sync.quality.gate import GateResult, run_gate
from catalog_sync.quality.persist import json_safe, persist_gate_result


def l0_result() -> GateResult:
    return run_gate(PRODUCTS_L0.frame(), "products.l0", layer=0, entity="products", enforce=False, now=NOW)


def test_persist_writes_one_result_and_one_letter_per_record_idempotently(hub_url: str) -> None:
    result = l0_result()
    # the same run twice (a retried task) replaces its own rows; a later run finding the same records bumps them
    for load_id, runs, attempt in (("load-1", 1, 1), ("load-1", 1, 1), ("load-2", 2, 2)):
        with session_scope(hub_url) as s:
            counts = persist_gate_result(s, load_id, result, "erp_to_pim", "erp", "pim")
        assert counts == {"dq_results": 1, "dead_letters": result.rows_quarantined}
        with session_scope(hub_url) as s:
            rows = s.scalars(select(DqResult)).all()
            letters = s.scalars(select(DeadLetter).order_by(DeadLetter.record_key)).all()
            assert len(rows) == runs
            assert (rows[0].rows_checked, rows[0].rows_quarantined) == (result.rows_checked, result.rows_quarantined)
            assert rows[0].severity == "hard" and rows[0].success is False
            assert rows[0].failing_expectations["products.l0.uom_known"]["count"] == 3
            assert len(letters) == result.rows_quarantined
            assert {letter.attempts for letter in letters} == {attempt}
    with session_scope(hub_url) as s:
        multi = s.scalars(select(DeadLetter).where(DeadLetter.record_key == "MULTI")).one()
        # the first expectation is the most important (suite order here: uom before currency)
        assert multi.expectation == "products.l0.uom_known" and multi.gate_layer == 0 and multi.reason_kind == "gate"
        assert "products.l0.uom_known" in multi.reason and "products.l0.currency_format" in multi.reason
        assert 'uom="ea"' in multi.reason and 'currency="dollars"' in multi.reason
        assert multi.payload["uom"] == "ea" and multi.payload["axes"] is None
        nokey = s.scalars(select(DeadLetter).where(DeadLetter.expectation == "products.l0.sku_present")).one()
        assert nokey.record_key.startswith("<row ")
        json.dumps([letter.payload for letter in s.scalars(select(DeadLetter))])  # all payloads are JSON


def test_duplicate_keys_are_merged_into_one_letter(hub_url: str) -> None:
    result = run_gate(PRODUCTS_L1.frame(), "products.l1", layer=1, entity="products", **gate_kwargs(PRODUCTS_L1))
    with session_scope(hub_url) as s:
        persist_gate_result(s, "load-2", result, "pim_to_storefront", "pim", "storefront")
    with session_scope(hub_url) as s:
        dup = s.scalars(select(DeadLetter).where(DeadLetter.record_key == "DUP-1")).one()
        assert dup.expectation == "products.l1.sku_unique"
        assert len(dup.payload["duplicates"]) == 1 and "another row with this key" in dup.reason


def test_json_safe_converts_pandas_and_numpy_values() -> None:
    value = {
        "nan": float("nan"), "nat": pd.NaT, "ts": pd.Timestamp("2026-01-01", tz="UTC"), "i": np.int64(3),
        "b": np.bool_(True), "arr": np.array([1.5, np.nan]), "none": None, "na": pd.NA,
    }
    assert json_safe(value) == {
        "nan": None, "nat": None, "ts": "2026-01-01T00:00:00+00:00", "i": 3, "b": True, "arr": [1.5, None],
        "none": None, "na": None,
    }


def test_kpi_values() -> None:
    frame = pd.DataFrame({"name": ["a", None, "  ", "d"], "description": ["x", "y", "z", None]})
    assert kpis.completeness(frame, ["name", "description"]) == 5 / 8
    assert kpis.completeness(frame, ["name", "missing_column"]) == 2 / 8
    assert kpis.completeness(frame.iloc[:0], ["name"]) == 1.0
    joined = PRODUCTS_L2.frame()
    acc = kpis.accuracy(joined, {"erp_lifecycle_status": "pim_lifecycle_status", "erp_weight": "pim_weight"})
    # 12 rows each: one lifecycle mismatch (PRE-1), one weight mismatch (W-1); float noise is not a mismatch
    assert acc == 22 / 24
    changed = pd.Series(["2026-04-01T10:00:00Z", "2026-04-01T10:00:00Z", None, "2026-04-01T10:00:00Z"])
    arrived = pd.Series(["2026-04-01T10:00:30Z", "2026-04-01T10:02:00Z", "2026-04-01T10:05:00Z",
                         "2026-04-01T10:01:00Z"])
    assert kpis.timeliness(changed, arrived) == 60.0
    assert kpis.timeliness(pd.Series([None]), pd.Series([None])) is None
    l0 = run_gate(pd.DataFrame([{**PRODUCT, "sku": f"S{i}"} for i in range(8)] + [{**PRODUCT, "sku": "X", "uom": "ea"}]),
                  "products.l0", layer=0, entity="products", enforce=False)
    l1 = run_gate(l0.passed, "products.l1", layer=1, entity="products", taxonomy=["Nope"])
    assert l1.rows_quarantined == 8  # unknown category everywhere
    assert kpis.first_time_pass_rate([l0]) == 8 / 9
    assert kpis.first_time_pass_rate([l0, l1]) == 0.0


def test_kpis_are_written_per_run_and_queried_over_time(hub_url: str) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with session_scope(hub_url) as s:
        kpis.write_kpis(s, "run-1", {"completeness": 0.9, "accuracy": 0.95, "timeliness": None}, measured_at=t0)
        kpis.write_kpis(s, "run-2", {"completeness": 0.97}, measured_at=t0 + timedelta(days=1))
        kpis.write_kpis(s, "run-1", {"completeness": 0.91}, measured_at=t0)  # re-run overwrites
    with session_scope(hub_url) as s:
        history = kpis.kpi_history(s, "completeness")
        assert [(h["load_id"], h["value"]) for h in history] == [("run-1", 0.91), ("run-2", 0.97)]
        assert {h["kpi"] for h in kpis.kpi_history(s)} == {"completeness", "accuracy"}
        assert [h["load_id"] for h in kpis.kpi_history(s, since=t0 + timedelta(hours=1))] == ["run-2"]


def test_data_docs_are_built_from_saved_results() -> None:
    l0 = l0_result()
    assert docs.save_validation("load-docs", l0) is not None
    assert docs.save_validation("load-docs", run_gate(pd.DataFrame(), "products.l0", layer=0,
                                                      entity="products")) is None
    index = docs.build_data_docs("load-docs")
    assert index == docs.docs_dir("load-docs") / "index.html" and index.is_file()
    pages = list(index.parent.rglob("products.l0.html"))
    assert len(pages) == 1
    html = pages[0].read_text()
    # the page renders our suite, its failed expectations and their business reasons (the GX description)
    assert "catalog_sync.products.l0" in html and "Unsuccessful Expectations" in html
    assert "unit of measure." in html
    assert "products.l0" in index.read_text()
