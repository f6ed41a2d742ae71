"""Benchmark 1: gate overhead. The three GX layers of the products gate on 1M synthetic rows (quick: 100k) against
the hand-written pandas version of the same checks, in the same process, best of N. Target: total GX time / total
pandas time <= 2, and both quarantine exactly the same rows (compared as SKU multisets)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from bench.common import Result, base_args, emit, profiled

TARGET = 2.0


def cross_system_frame(products: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    """The layer-2 frame (ERP, PIM and storefront values per SKU) with ~1% drift of assorted kinds."""
    rng = np.random.default_rng(seed)
    n = len(products)
    status = np.where(products["lifecycle_status"].to_numpy() == "active", "active", "draft")
    frame = pd.DataFrame({
        "sku": products["sku"], "parent_sku": products["parent_sku"],
        "erp_lifecycle_status": products["lifecycle_status"], "pim_lifecycle_status": products["lifecycle_status"],
        "erp_weight": products["weight"], "pim_weight": products["weight"],
        "erp_reference_price": products["reference_price"], "pim_reference_price": products["reference_price"],
        "pim_status": status, "storefront_status": status,
        "pim_name": products["name"], "storefront_title": products["name"],
    })
    bad = np.flatnonzero(rng.random(n) < 0.01)
    kinds = rng.integers(0, 5, size=bad.size)
    frame.loc[bad[kinds == 0], "pim_lifecycle_status"] = "discontinued"
    frame.loc[bad[kinds == 1], "pim_weight"] = frame.loc[bad[kinds == 1], "erp_weight"] + 1
    frame.loc[bad[kinds == 2], "pim_reference_price"] = frame.loc[bad[kinds == 2], "erp_reference_price"] + 5
    frame.loc[bad[kinds == 3], "storefront_status"] = "archived"
    frame.loc[bad[kinds == 4], "storefront_title"] = "Old title"
    return frame


def main() -> None:
    parser = base_args(__doc__)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    from catalog_sync.quality import pandas_checks
    from catalog_sync.quality.bench import TAXONOMY, synthetic_products
    from catalog_sync.quality.gate import gx_context, run_gate

    t = time.perf_counter()
    products = synthetic_products(rows)
    frames = {0: products, 1: products, 2: cross_system_frame(products)}
    build_s = time.perf_counter() - t
    now = datetime(2026, 4, 1, tzinfo=UTC)
    gx_context()  # built once per process, as in a worker; not billed to a gate run
    per_layer: dict[str, Any] = {}
    identical = True
    total_gx = total_pd = 0.0
    profile_path = None
    for layer, frame in frames.items():
        kwargs: dict[str, Any] = {"now": now}
        if layer == 1:
            kwargs["taxonomy"] = TAXONOMY
        gx_times, pd_times = [], []
        result = failing = None
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = run_gate(frame, f"products.l{layer}", layer=layer, entity="products", enforce=False, **kwargs)
            gx_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            failing = pandas_checks.failing_rows(frame, "products", layer, **kwargs)
            pd_times.append(time.perf_counter() - t)
        assert result is not None and failing is not None
        positions = np.unique(np.concatenate(list(failing.values()))) if failing else np.array([], dtype=int)
        pd_skus = Counter(frame["sku"].iloc[positions].tolist())
        gx_skus = Counter(result.quarantined_keys)
        same = pd_skus == gx_skus
        identical &= same
        gx_s, pd_s = min(gx_times), min(pd_times)
        total_gx += gx_s
        total_pd += pd_s
        per_layer[f"l{layer}"] = {"gx_s": round(gx_s, 3), "pandas_s": round(pd_s, 3), "ratio": round(gx_s / pd_s, 2),
                                  "quarantined_gx": sum(gx_skus.values()), "quarantined_pandas": sum(pd_skus.values()),
                                  "identical": same}
        print(f"layer {layer}: {per_layer[f'l{layer}']}", flush=True)
    ratio = total_gx / total_pd
    if args.profile and ratio > TARGET:
        _, profile_path = profiled("gate_gx_l1", lambda: run_gate(frames[1], "products.l1", layer=1,
                                                                  entity="products", enforce=False, now=now,
                                                                  taxonomy=TAXONOMY), True)
    emit(Result(
        name="gate_overhead", title="GX gate (layers 0-2) vs hand-written pandas checks, same process",
        scale={"rows": rows, "layers": 3},
        figures={"ratio": round(ratio, 2), "gx_s": round(total_gx, 2), "pandas_s": round(total_pd, 2),
                 "identical_quarantine": identical, "per_layer": per_layer, "frame_build_s": round(build_s, 1)},
        target=f"GX/pandas <= {TARGET} and identical quarantined SKUs", held=ratio <= TARGET and identical,
        notes=[f"best of {args.repeat} per side per layer; frames from quality.bench.synthetic_products (layers 0, 1)"
               " and a derived ERP/PIM/storefront frame with 1% drift (layer 2); GX side includes building the "
               "passed/failed frames, both sides include the shared prepare step"],
        profile=profile_path))


if __name__ == "__main__":
    main()
