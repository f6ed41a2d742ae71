"""The GX gate and the hand-written pandas checks quarantine the same records for the same reasons."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from _quality_cases import ALL_CASES, NOW, Case, gate_kwargs

from catalog_sync.quality import bench, pandas_checks
from catalog_sync.quality.gate import run_gate
from catalog_sync.quality.prep import gtin_check_digit_ok


def gx_pairs(case: Case, frame: pd.DataFrame) -> set[tuple[Any, str]]:
    result = run_gate(frame, case.gate, layer=case.layer, entity=case.entity, key=case.key, enforce=False,
                      **gate_kwargs(case))
    return {
        (None if pd.isna(k) else k, name)
        for k, names in zip(result.failed[case.key], result.failed["dq_expectations"], strict=True)
        for name in names
    }


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.gate)
def test_gx_and_pandas_flag_identical_pairs(case: Case) -> None:
    frame = case.frame()
    expected = pandas_checks.failing_pairs(frame, case.entity, case.layer, key=case.key, **gate_kwargs(case))
    assert gx_pairs(case, frame) == expected
    assert expected == case.expected_pairs()  # and both equal the hand-labelled truth


@pytest.mark.parametrize("layer", [0, 1])
def test_gx_and_pandas_agree_on_a_synthetic_batch(layer: int) -> None:
    frame = bench.synthetic_products(5_000, bad_share=0.05)
    kwargs: dict[str, Any] = {"now": NOW, **({"taxonomy": bench.TAXONOMY} if layer else {})}
    result = run_gate(frame, f"products.l{layer}", layer=layer, entity="products", enforce=False, **kwargs)
    by_pandas = pandas_checks.failing_rows(frame, "products", layer, **kwargs)
    gx_rows = {
        (frame.index.get_loc(idx), name)
        for idx, names in zip(result.failed.index, result.failed["dq_expectations"], strict=True)
        for name in names
    }
    pd_rows = {(int(p), name) for name, positions in by_pandas.items() for p in positions}
    assert gx_rows == pd_rows
    assert result.rows_quarantined > 0


def test_bench_reports_timings_and_ratio() -> None:
    out = bench.run(2_000, layer=0, repeat=1)
    assert out["rows"] == 2_000 and out["quarantined"] > 0
    assert out["gx_seconds"] > 0 and out["pandas_seconds"] > 0 and out["ratio"] > 0


def test_gtin_check_digits_of_known_codes() -> None:
    codes = pd.Series(["036000291452", "4006381333931", "036000291453", "4006381333932", None, "12", "ABCDEFGHIJKL"])
    # valid UPC-A, valid EAN-13, wrong digits; null and malformed values are another check's business
    assert gtin_check_digit_ok(codes).tolist() == [True, True, False, False, True, True, True]
