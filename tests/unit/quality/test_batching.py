"""A gate run over a delta in batches (``quality.batching``) gives the outcome of one run over the whole delta:
the same rows quarantined for the same expectations, the same counts and the same policy decision; checks that
compare rows (duplicate SKUs and UPCs, a variant's parent, a parent's children and axes) find rows that sit
batches apart. Persisted: the same ``dq_result`` row and dead letters, and one Data Docs validation per batch."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, select

from catalog_sync.engine.run import RunContext
from catalog_sync.flows import steps
from catalog_sync.flows.cold import _family_links
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, DqResult
from catalog_sync.quality import docs
from catalog_sync.quality.batching import gate_batch_size, plan_batches
from catalog_sync.quality.gate import GateResult, GateTotals, run_gate
from catalog_sync.transforms import duplicate_links, find_duplicates
from tests.unit.quality._quality_cases import PRODUCTS_L0, PRODUCTS_L1, Case, gate_kwargs


def _records(case: Case) -> list[dict[str, Any]]:
    """The case's rows, with each repeated SKU or UPC and each variant moved to the far end of the delta."""
    seen: set[tuple[str, Any]] = set()
    early, late = [], []
    for row in ({**case.base, **over} for over, _ in case.rows):
        keys = {("sku", row["sku"]), ("upc", row.get("upc"))} - {("upc", None)}
        (late if keys & seen or row.get("parent_sku") else early).append(row)
        seen |= keys
    return early + late


def _pairs(result: GateResult) -> set[tuple[Any, str]]:
    keys = [None if pd.isna(k) else k for k in result.failed[result.key]]
    return {(k, nm) for k, names in zip(keys, result.failed["dq_expectations"], strict=True) for nm in names}


def _batched(case: Case, records: list[dict[str, Any]], size: int, linked: bool,
             ) -> tuple[GateResult, set[tuple[Any, str]], int]:
    links = _family_links if linked else (lambda _row: [])
    plan = plan_batches(([r] for r in records), links, size)
    totals, pairs = GateTotals(case.gate), set()
    for batch in plan.batches(iter(records), lambda _r: 1):
        result = run_gate(pd.DataFrame(batch).reindex(columns=plan.columns), case.gate, layer=case.layer,
                          entity=case.entity, enforce=False, **gate_kwargs(case))
        totals.add(result)
        pairs |= _pairs(result)
    return totals.result(), pairs, totals.batches


def _outcome(result: GateResult) -> tuple[Any, ...]:
    return (result.rows_checked, result.rows_passed, result.rows_quarantined, result.failing_expectations,
            result.success, result.breached, result.alert, result.missing_columns)


@pytest.mark.parametrize("case", [PRODUCTS_L0, PRODUCTS_L1], ids=lambda c: c.gate)
@pytest.mark.parametrize("size", [1, 3])
def test_a_gate_batched_gives_the_outcome_of_the_whole_delta(case: Case, size: int) -> None:
    records = _records(case)
    whole = run_gate(pd.DataFrame(records), case.gate, layer=case.layer, entity=case.entity, enforce=False,
                     **gate_kwargs(case))
    assert _pairs(whole) == case.expected_pairs()
    batched, pairs, batches = _batched(case, records, size, linked=True)
    assert batches > 1
    assert pairs == _pairs(whole)
    assert _outcome(batched) == _outcome(whole)


def test_a_duplicate_batches_apart_is_found_only_because_the_batches_are_linked() -> None:
    records = _records(PRODUCTS_L1)
    duplicate = [i for i, r in enumerate(records) if r["sku"] == "DUP-1"]
    assert duplicate[-1] - duplicate[0] > 10  # far apart in the delta
    _, linked, _ = _batched(PRODUCTS_L1, records, 1, linked=True)
    assert {("DUP-1", "products.l1.sku_unique"), ("UPC-A", "products.l1.upc_unique"),
            ("UPC-B", "products.l1.upc_unique"), ("ORPH-1", "products.l1.variant_parent_present")} <= linked
    # the control: batches of one row planned without the key index see no duplicate at all
    _, unlinked, _ = _batched(PRODUCTS_L1, records, 1, linked=False)
    assert not {p for p in unlinked if p[1].endswith("_unique")}


def test_duplicates_found_in_linked_batches_are_those_of_the_whole_delta() -> None:
    records = [{"sku": f"S{i}", "upc": f"{i:012d}", "name": "x"} for i in range(40)]
    records += [{"sku": "S3", "upc": "000000000003", "name": "x"},  # an exact repeat: dropped silently
                {"sku": "S5", "upc": "000000000005", "name": "y"},  # another version of S5
                {"sku": "S77", "upc": "3"}]  # UPC of S3 spelled short: a collision
    whole_clean, whole_dups = find_duplicates(records)
    plan = plan_batches(([r] for r in records), duplicate_links, 4)
    clean, dups = [], []
    for batch in plan.batches(iter(records), lambda _r: 1):
        kept, found = find_duplicates(batch)
        clean += kept
        dups += [(d.rule, d.record_key, d.reason) for d in found]
    assert sorted(dups) == sorted((d.rule, d.record_key, d.reason) for d in whole_dups)
    assert len(dups) == 4 and sorted(map(json.dumps, clean)) == sorted(map(json.dumps, whole_clean))


def test_the_gate_batch_size_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_SYNC_GATE_BATCH", "7")
    assert gate_batch_size() == 7
    monkeypatch.setenv("CATALOG_SYNC_GATE_BATCH", "0")
    with pytest.raises(ValueError):
        gate_batch_size()


def _persisted(hub_url: str, load_id: str) -> tuple[Any, ...]:
    with session_scope(hub_url) as s:
        row = s.scalars(select(DqResult).where(DqResult.load_id == load_id)).one()
        letters = s.execute(select(DeadLetter.record_key, DeadLetter.expectation, DeadLetter.reason)
                            .where(DeadLetter.load_id == load_id)).all()
    return (row.rows_checked, row.rows_passed, row.rows_quarantined, row.success, row.failing_expectations,
            sorted(letters))


def test_a_batched_gate_persists_what_the_unbatched_gate_persists(hub_url: str, tmp_path: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(tmp_path))
    records = _records(PRODUCTS_L1)
    gate_args: dict[str, Any] = {"layer": 1, "entity": "products", "hop": None, "source_system": "pim",
                                 "target_system": "storefront", **gate_kwargs(PRODUCTS_L1)}
    whole = RunContext.open("cold_data_nightly", load_id="whole", hub_url=hub_url)
    passed_whole = steps.gate(whole, records, "products.l1", **gate_args)
    persisted_whole = _persisted(hub_url, "whole")
    with session_scope(hub_url) as s:  # a later run's letter for the same finding would bump this one instead
        s.execute(delete(DeadLetter))

    parts = RunContext.open("cold_data_nightly", load_id="parts", hub_url=hub_url)
    plan = plan_batches(([r] for r in records), _family_links, 3)
    gate = steps.BatchedGate(parts, "products.l1", columns=plan.columns, **gate_args)
    passed_parts = [r for batch in plan.batches(iter(records), lambda _r: 1) for r in gate.check(batch)]
    totals = gate.close()

    assert sorted(r["sku"] for r in passed_parts) == sorted(r["sku"] for r in passed_whole)
    assert _persisted(hub_url, "parts") == persisted_whole and persisted_whole[2] > 10
    assert totals.rows_checked == len(records) and gate.validations > 3
    # the Data Docs keep one validation per batch and show them all
    saved = [p.name for p in docs.saved_validations("parts")]
    assert saved[0] == "products.l1.json" and len(saved) == gate.validations
    assert [p.name for p in docs.saved_validations("whole")] == ["products.l1.json"]
    index = docs.build_data_docs("parts")
    html = index.read_text()
    assert all(docs.validation_name("products.l1", n) in html for n in range(2, gate.validations + 1))
