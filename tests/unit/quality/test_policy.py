"""Hard vs soft gates, critical expectations, missing columns, empty frames and the policy file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _quality_cases import NOW, PRODUCT, PRODUCTS_L1, SUPPLIER

from catalog_sync.quality.gate import GateFailed, run_gate
from catalog_sync.quality.policy import load_policy


def products(n_ok: int, **bad: object) -> pd.DataFrame:
    rows = [{**PRODUCT, "sku": f"OK-{i}"} for i in range(n_ok)]
    if bad:
        rows.append({**PRODUCT, "sku": "BAD-1", **bad})
    return pd.DataFrame(rows)


def test_every_gate_documents_why_it_is_hard_or_soft() -> None:
    policy = load_policy()
    assert policy.gates
    for gate in policy.gates.values():
        assert gate.severity in ("hard", "soft")
        assert len(gate.why) > 40, gate.name


def test_hard_gate_within_its_limit_quarantines_and_returns() -> None:
    # 1 bad row in 100 = 1 % < 2 % limit, and uom_known is not critical
    result = run_gate(products(99, uom="each"), "products.l0", layer=0, entity="products")
    assert result.rows_quarantined == 1 and not result.breached and not result.alert
    assert result.failed["sku"].tolist() == ["BAD-1"]


def test_hard_gate_raises_when_the_failure_share_passes_its_limit() -> None:
    with pytest.raises(GateFailed, match=r"products.l0.*2 of 20 rows.*limit 2.00%") as info:
        run_gate(products(18, uom="ea").pipe(lambda f: pd.concat([f, f.tail(1).assign(sku="BAD-2")])),
                 "products.l0", layer=0, entity="products")
    result = info.value.result
    assert result.breached and result.rows_quarantined == 2
    assert sorted(result.failed["sku"]) == ["BAD-1", "BAD-2"]


def test_a_single_critical_failure_is_quarantined_and_alerts_but_never_stops() -> None:
    # one SKU with an underscore among 200 good ones: that row is held back with its reason, the rest go on
    result = run_gate(products(200, sku="BAD_SKU"), "products.l0", layer=0, entity="products")
    assert result.failed["sku"].tolist() == ["BAD_SKU"] and result.rows_passed == 200
    assert result.failing_expectations["products.l0.sku_format"]["critical"]
    assert not result.breached and result.alert


def test_a_systemic_critical_failure_stops_and_names_the_top_expectations() -> None:
    bad = pd.DataFrame([{**PRODUCT, "sku": f"bad sku {i}"} for i in range(10)])
    with pytest.raises(GateFailed, match=r"10 of 110 rows.*top failing expectations: products.l0.sku_format "
                                         r"\(10 rows"):
        run_gate(pd.concat([products(100), bad]), "products.l0", layer=0, entity="products")


def test_a_small_batch_is_quarantined_whatever_its_share() -> None:
    # 1 bad row of 2 is 50 %, but two rows say nothing about the feed (min_rows_to_stop 20): nothing stops
    result = run_gate(products(1, uom="each"), "products.l0", layer=0, entity="products")
    assert result.rows_quarantined == 1 and result.rows_passed == 1 and not result.breached


def test_enforce_false_returns_a_breached_hard_result() -> None:
    frame = pd.DataFrame([{**PRODUCT, "sku": f"S-{i}", "uom": "each"} for i in range(25)])
    result = run_gate(frame, "products.l0", layer=0, entity="products", enforce=False)
    assert result.breached and result.severity == "hard" and not result.alert


def test_soft_gate_never_raises_but_raises_the_alert_flag() -> None:
    frame = pd.DataFrame([{**SUPPLIER, "supplier_sku": f"V-{i}", "uom": "each"} for i in range(25)])
    result = run_gate(frame, "supplier.l0", layer=0, entity="supplier", key="supplier_sku")
    assert result.rows_quarantined == 25 and result.breached and result.alert
    ok = run_gate(frame.assign(uom="EA"), "supplier.l0", layer=0, entity="supplier", key="supplier_sku")
    assert ok.success and not ok.alert and ok.rows_passed == 25


def test_missing_required_column_fails_every_row_with_a_clear_reason() -> None:
    frame = products(3).drop(columns=["uom"])
    with pytest.raises(GateFailed, match="columns missing from the frame: uom") as info:
        run_gate(frame, "products.l0", layer=0, entity="products")
    result = info.value.result
    assert result.rows_quarantined == 3
    failing = result.failing_expectations["products.l0.uom_present"]
    assert failing["count"] == 3 and "uom missing from the frame" in failing["reason"]
    assert result.missing_columns == ["uom"]


def test_missing_optional_columns_are_not_failures() -> None:
    frame = products(3).drop(columns=["upc", "weight", "weight_unit", "dimension_unit", "updated_at", "currency"])
    result = run_gate(frame, "products.l0", layer=0, entity="products")
    assert result.success and result.rows_passed == 3


def test_missing_layer2_columns_fail_rather_than_pass_silently() -> None:
    frame = pd.DataFrame({"sku": ["A", "B"], "erp_lifecycle_status": ["active", "active"]})
    result = run_gate(frame, "products.l2", layer=2, entity="products")
    assert result.rows_quarantined == 2
    assert "products.l2.lifecycle_erp_matches_pim" in result.failing_expectations


def test_empty_frame_passes_without_touching_gx() -> None:
    result = run_gate(pd.DataFrame(columns=["sku"]), "products.l0", layer=0, entity="products")
    assert (result.rows_checked, result.rows_passed, result.rows_quarantined) == (0, 0, 0)
    assert result.success and not result.breached and result.validation is None
    assert list(result.failed.columns)[-3:] == ["dq_layer", "dq_expectations", "dq_reasons"]
    assert run_gate(pd.DataFrame(), "products.l1", layer=1, entity="products", taxonomy=[]).rows_checked == 0


def test_input_frame_and_index_are_preserved() -> None:
    frame = products(2, uom="each").set_index(pd.Index([10, 20, 30], name="line"))
    before = frame.copy()
    result = run_gate(frame, "products.l0", layer=0, entity="products", enforce=False)
    pd.testing.assert_frame_equal(frame, before)
    assert result.passed.index.tolist() == [10, 20]
    assert result.failed.index.tolist() == [30]
    assert "_row" not in result.failed.columns and "_row" not in result.passed.columns


def test_misconfigured_calls_are_refused() -> None:
    frame = products(1)
    with pytest.raises(KeyError, match="not configured"):
        run_gate(frame, "products.l9", layer=9, entity="products")
    with pytest.raises(ValueError, match="configured for products layer 0"):
        run_gate(frame, "products.l0", layer=1, entity="products")
    with pytest.raises(ValueError, match="taxonomy"):
        run_gate(frame, "products.l1", layer=1, entity="products")
    with pytest.raises(ValueError, match="known_skus"):
        run_gate(frame, "assets.l2", layer=2, entity="assets", key="asset_id")


def test_policy_file_validation(tmp_path: Path) -> None:
    from catalog_sync.quality.policy import THRESHOLDS_FILE

    bad = THRESHOLDS_FILE.read_text().replace("severity: soft", "severity: maybe", 1)
    path = tmp_path / "thresholds.yaml"
    path.write_text(bad)
    with pytest.raises(ValueError, match="severity must be 'hard' or 'soft'"):
        load_policy(str(path))


def test_soft_gate_alert_on_layer1_rule_share() -> None:
    rows = [{**PRODUCT, "sku": f"OK-{i}", "upc": None} for i in range(16)]
    rows += [{**PRODUCT, "sku": f"CHEAP-{i}", "upc": None, "reference_price": 1.0} for i in range(4)]
    result = run_gate(pd.DataFrame(rows), "products.l1", layer=1, entity="products", now=NOW,
                      taxonomy=PRODUCTS_L1.kwargs["taxonomy"])
    assert sorted(result.failed["sku"]) == [f"CHEAP-{i}" for i in range(4)]
    assert result.failure_share == 0.2 and result.alert  # 20 % > 10 % limit of a soft gate
