"""Benchmark: the GX gate against the hand-written pandas checks on a large synthetic product frame.

``python -m catalog_sync.quality.bench --rows 1000000`` prints both timings and their ratio (target: GX time /
pandas time <= 2). Both sides include the shared pre-step; the GX side also builds the result frames.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

TAXONOMY = ("Men/Tops/Hoodies & Sweatshirts", "Women/Bottoms/Pants", "Gear/Bags")


def synthetic_products(rows: int, *, bad_share: float = 0.01, seed: int = 7) -> pd.DataFrame:
    """Canonical product records, mostly valid, with ``bad_share`` of rows broken in assorted ways."""
    rng = np.random.default_rng(seed)
    ids = np.arange(rows)
    sku = pd.Series([f"MH{i:08d}" for i in ids], dtype="str")
    # Valid EAN-13s: 12 random digits plus the computed check digit.
    body = rng.integers(0, 10, size=(rows, 12), dtype=np.int64)
    check = (10 - (body * np.array([1, 3] * 6)).sum(axis=1) % 10) % 10
    digits = np.concatenate([body, check[:, None]], axis=1) + 48
    upc = pd.Series(digits.astype(np.uint8).view("S13").ravel().astype(str), dtype="str")
    frame = pd.DataFrame(
        {
            "sku": sku,
            "parent_sku": pd.Series(np.nan, index=ids, dtype="str"),
            "product_type": "simple",
            "lifecycle_status": rng.choice(["active", "pre-active", "discontinued"], rows),
            "upc": upc,
            "product_group": rng.choice(["Top", "Bottom", "Bag"], rows),
            "uom": rng.choice(["EA", "PR"], rows),
            "weight": rng.uniform(0.1, 5, rows).round(3),
            "weight_unit": "kg",
            "dimension_unit": "cm",
            "reference_price": rng.uniform(12, 200, rows).round(2),
            "currency": "USD",
            "name": "Chaz Kangeroo Hoodie",
            "description": "A soft, warm hoodie for the cooler days of the season.",
            "meta_description": "Warm hoodie",
            "category": rng.choice(list(TAXONOMY), rows),
            "updated_at": "2026-03-01T10:00:00Z",
        }
    )
    bad = np.flatnonzero(rng.random(rows) < bad_share)
    kinds = rng.integers(0, 6, size=bad.size)
    frame.loc[bad[kinds == 0], "uom"] = "each"
    frame.loc[bad[kinds == 1], "upc"] = "036000291453"
    frame.loc[bad[kinds == 2], "name"] = np.nan
    frame.loc[bad[kinds == 3], "sku"] = "bad sku"
    frame.loc[bad[kinds == 4], "reference_price"] = -1.0
    frame.loc[bad[kinds == 5], "updated_at"] = "yesterday"
    return frame


def run(rows: int, layer: int = 0, repeat: int = 2) -> dict[str, Any]:
    """Time the gate and the pandas checks on ``rows`` synthetic rows (best of ``repeat``); return the numbers."""
    from catalog_sync.quality import pandas_checks
    from catalog_sync.quality.gate import gx_context, run_gate

    frame = synthetic_products(rows)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    gx_context()  # the context is built once per process; do not bill it to one gate run
    kwargs: dict[str, Any] = {"now": now, "taxonomy": TAXONOMY} if layer == 1 else {"now": now}
    gx_times, pd_times = [], []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = run_gate(frame, f"products.l{layer}", layer=layer, entity="products", enforce=False, **kwargs)
        gx_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        pandas_checks.failing_rows(frame, "products", layer, **kwargs)
        pd_times.append(time.perf_counter() - t)
    assert result is not None
    return {
        "rows": rows,
        "layer": layer,
        "quarantined": result.rows_quarantined,
        "gx_seconds": round(min(gx_times), 3),
        "pandas_seconds": round(min(pd_times), 3),
        "ratio": round(min(gx_times) / min(pd_times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--layer", type=int, default=0, choices=(0, 1))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(run(args.rows, args.layer, args.repeat))


if __name__ == "__main__":
    main()
