"""Benchmark 5: weekly reconciliation of 1M SKUs (quick: 100k) across four systems: ``flows.reconcile.compare`` on
synthetic frames, wall time and peak memory (this process's max RSS, a fresh subprocess). Target: <= 5 min and
<= 4 GB. Read cost from the systems is not included (see BENCHMARKS.md).

The frames: one per system (ERP, PIM, DAM, storefront) keyed by ``sku``, built with the module's own synthetic
builder when it has one (``synthetic_frames``), otherwise here; 1% of SKUs drift or are missing per system.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import resource
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.common import Result, base_args, emit

TARGET_S = 300
TARGET_GB = 4.0
SYSTEMS = ("erp", "pim", "dam", "storefront")


def frames(n: int, seed: int = 5) -> dict[str, pd.DataFrame]:
    """Four full reads in ``reconcile.LAYOUTS``: simple products, consistent across systems, with 1% of SKUs
    drifting per copy system (weight, lifecycle, name) and 0.5% missing from each copy."""
    from catalog_sync.flows.reconcile import _build

    rng = np.random.default_rng(seed)
    sku = [f"MH{i:08d}" for i in range(n)]
    upc = [f"{i:012d}" for i in range(n)]
    weight = rng.uniform(0.1, 5, n).round(3).tolist()
    price = rng.uniform(10, 200, n).round(2).tolist()
    life = rng.choice(["active", "discontinued"], n, p=[0.9, 0.1]).tolist()
    group = rng.choice(["Top", "Bottom", "Bag"], n).tolist()
    none = [None] * n

    def const(v: Any) -> list[Any]:
        return [v] * n

    erp = _build("erp", {"sku": sku, "parent_sku": none, "upc": upc, "product_type": const("simple"),
                         "lifecycle_status": life, "product_group": group, "uom": const("EA"), "weight": weight,
                         "weight_unit": const("kg"), "dimension_unit": const("cm"), "country_of_origin": const("US"),
                         "vendor_name": const("Luma"), "reference_price": price, "currency": const("USD")})

    def drift(values: list[Any], bad: np.ndarray, to: Any) -> list[Any]:
        out = list(values)
        for i in np.flatnonzero(bad):
            out[i] = to(out[i]) if callable(to) else to
        return out

    def keep() -> np.ndarray:
        return rng.random(n) >= 0.005

    names = [f"Hoodie {i}" for i in range(n)]
    pim = _build("pim", {"sku": sku, "entity": const("product"), "enabled": const(1.0), "parent_sku": none,
                         "upc": upc, "name": names, "description": const("A soft hoodie."),
                         "product_type": const("simple"),
                         "lifecycle_status": drift(life, rng.random(n) < 0.01, "discontinued"),
                         "product_group": group, "uom": const("EA"),
                         "weight": drift(weight, rng.random(n) < 0.01, lambda w: w + 1), "weight_unit": const("kg"),
                         "country_of_origin": const("US"), "vendor_name": const("Luma"), "reference_price": price,
                         "currency": const("USD"), "categories": const("Men/Tops")})
    shop = _build("storefront", {"sku": sku, "row_kind": const("simple"), "handle": [s.lower() for s in sku],
                                 "product_id": list(range(1, n + 1)), "status": const("active"), "parent_sku": none,
                                 "product_type": const("simple"), "upc": upc,
                                 "name": drift(names, rng.random(n) < 0.01, "Old title"),
                                 "description": const("A soft hoodie."), "vendor_name": const("Luma"),
                                 "categories": const("Men/Tops"), "weight": weight, "weight_unit": const("kg")})
    dam = _build("dam", {"asset_id": [f"A{i:08d}" for i in range(n)], "sku": sku, "status": const("approved"),
                         "role": const("hero")})
    return {"erp": erp, "pim": pim[keep()].reset_index(drop=True),
            "storefront": shop[keep()].reset_index(drop=True), "dam": dam}


def main() -> None:
    parser = base_args(__doc__)
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    n = args.rows or (100_000 if args.quick else 1_000_000)
    common = dict(name="reconcile", title="Weekly reconciliation compare() across four systems",
                  target=f"<= {TARGET_S // 60} min and peak memory <= {TARGET_GB:g} GB")
    if importlib.util.find_spec("catalog_sync.flows.reconcile") is None:
        emit(Result(scale={"skus": n}, status="not run: module missing (catalog_sync.flows.reconcile)", **common))
        return
    reconcile = importlib.import_module("catalog_sync.flows.reconcile")
    compare = getattr(reconcile, "compare", None)
    if compare is None:
        emit(Result(scale={"skus": n}, status="not run: catalog_sync.flows.reconcile has no compare()", **common))
        return
    t = time.perf_counter()
    builder = getattr(reconcile, "synthetic_frames", None)
    data = builder(n) if callable(builder) else frames(n)
    build_s = time.perf_counter() - t
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    params = list(inspect.signature(compare).parameters)
    t = time.perf_counter()
    try:
        if isinstance(data, dict) and all(p in data for p in params if p in SYSTEMS):
            out = compare(**{p: data[p] for p in params if p in data})
        elif isinstance(data, dict):
            out = compare(data)
        else:
            out = compare(*data) if isinstance(data, (tuple, list)) else compare(data)
    except Exception as exc:  # noqa: BLE001 - the harness reports, it does not guess
        emit(Result(scale={"skus": n}, status=f"failed: compare{tuple(params)} raised {type(exc).__name__}: "
                    f"{str(exc)[:200]}", **common))
        return
    seconds = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    size: Any = len(out) if hasattr(out, "__len__") else None
    emit(Result(scale={"skus": n, "systems": 4}, held=seconds <= TARGET_S and peak_gb <= TARGET_GB,
                figures={"compare_s": round(seconds, 2), "peak_rss_gb": round(peak_gb, 2),
                         "rss_before_compare_gb": round(rss_before, 2), "frame_build_s": round(build_s, 1),
                         "result_len": size, "frames_from": "reconcile.synthetic_frames" if callable(builder)
                         else "bench.b5_reconcile.frames"},
                notes=["peak memory = max RSS of the whole benchmark process (frames + compare)",
                       "read cost from the four systems not included"], **common))


if __name__ == "__main__":
    main()
