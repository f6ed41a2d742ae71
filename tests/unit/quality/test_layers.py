"""Every expectation of every gate, triggered on purpose: exact records quarantined, with layer and expectation."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from _quality_cases import ALL_CASES, PRODUCTS_L0, PRODUCTS_L1, Case, gate_kwargs

from catalog_sync.quality.gate import GateResult, run_gate
from catalog_sync.quality.policy import load_policy
from catalog_sync.quality.suites import GateInputs, layer_checks


def flagged_pairs(result: GateResult) -> set[tuple[Any, str]]:
    pairs = set()
    for key, names in zip(result.failed[result.key], result.failed["dq_expectations"], strict=True):
        for name in names:
            pairs.add((None if pd.isna(key) else key, name))
    return pairs


def run_case(case: Case) -> GateResult:
    return run_gate(
        case.frame(), case.gate, layer=case.layer, entity=case.entity, key=case.key, enforce=False,
        **gate_kwargs(case),
    )


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.gate)
def test_gate_quarantines_exactly_the_broken_records(case: Case) -> None:
    result = run_case(case)
    assert flagged_pairs(result) == case.expected_pairs()
    assert result.passed[case.key].tolist() == case.expected_passing_keys()
    assert result.rows_checked == len(case.rows)
    assert result.rows_passed + result.rows_quarantined == result.rows_checked
    assert set(result.failed["dq_layer"]) == {case.layer}
    # the failed frame carries a reason for every broken expectation, in the same order as the names
    for names, reasons in zip(result.failed["dq_expectations"], result.failed["dq_reasons"], strict=True):
        assert [r.split(":")[0] for r in reasons] == names
        assert all(len(r.split(": ", 1)[1]) > 10 for r in reasons)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.gate)
def test_cases_trigger_every_expectation_of_the_layer(case: Case) -> None:
    inputs = GateInputs(rules=load_policy().rules, **{k: frozenset(v) if k in ("taxonomy", "known_skus") else v
                                                       for k, v in gate_kwargs(case).items()})
    declared = {c.name for c in layer_checks(case.entity, case.layer, inputs)}
    assert {name for _, name in case.expected_pairs()} == declared


def test_failing_expectations_summary_counts_rows_and_carries_reason_and_criticality() -> None:
    result = run_case(PRODUCTS_L0)
    uom = result.failing_expectations["products.l0.uom_known"]
    assert uom["count"] == 3  # "each", "ea" and the row breaking two rules
    assert uom["critical"] is False and "canonical codes" in uom["reason"]
    assert result.failing_expectations["products.l0.sku_present"]["critical"] is True


def test_every_expectation_carries_reason_critical_and_a_stable_id() -> None:
    from catalog_sync.quality.suites import build_suite

    inputs = GateInputs(taxonomy=frozenset({"A"}))
    checks = layer_checks("products", 1, inputs)
    suite = build_suite("products", 1, checks)
    ids = {e.meta["name"]: e.id for e in suite.expectations}
    for expectation in suite.expectations:
        assert isinstance(expectation.meta["reason"], str) and expectation.meta["reason"]
        assert isinstance(expectation.meta["critical"], bool)
    # rebuilt with another taxonomy: a new suite, the same ids
    other = build_suite("products", 1, layer_checks("products", 1, GateInputs(taxonomy=frozenset({"B"}))))
    assert other is not suite
    assert {e.meta["name"]: e.id for e in other.expectations} == ids


def test_duplicate_skus_and_upcs_are_layer_1_not_layer_0() -> None:
    frame = pd.DataFrame([PRODUCTS_L0.base, PRODUCTS_L0.base])
    l0 = run_gate(frame, "products.l0", layer=0, entity="products", enforce=False)
    assert l0.rows_quarantined == 0
    l1 = run_gate(frame, "products.l1", layer=1, entity="products", enforce=False,
                  taxonomy=PRODUCTS_L1.kwargs["taxonomy"])
    assert set(l1.failing_expectations) == {"products.l1.sku_unique", "products.l1.upc_unique"}
    assert l1.rows_quarantined == 2
