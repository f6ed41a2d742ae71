"""The gate's checks hand-written in vectorised pandas: the benchmark baseline and a cross-check of the GX gate.

Each check kind is re-implemented here with the null semantics GX's pandas engine applies (see
``catalog_sync.quality.spec``), on the same working frame the gate builds (same pre-step helper columns). A test
asserts that this module and :func:`catalog_sync.quality.gate.run_gate` flag exactly the same (key, expectation)
pairs, so any drift in how GX judges a kind (a regex searched instead of matched, nulls not skipped) shows up.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from catalog_sync.quality.policy import load_policy
from catalog_sync.quality.spec import Check
from catalog_sync.quality.suites import GateInputs, layer_checks


def check_fails(work: pd.DataFrame, check: Check) -> np.ndarray:
    """Boolean mask of the rows of ``work`` that break ``check`` (every row when a needed column is absent)."""
    n = len(work)
    if any(c not in work.columns for c in check.columns):
        return np.ones(n, dtype=bool)
    p = check.params
    kind = check.kind
    if kind in ("pair_equal", "pair_at_least"):
        a, b = work[check.columns[0]], work[check.columns[1]]
        ignore = p.get("ignore_row_if", "both_values_are_missing")
        skip = (a.isna() | b.isna()) if ignore == "either_value_is_missing" else (a.isna() & b.isna())
        holds = (a == b) if kind == "pair_equal" else (a >= b)
        return (~skip & ~holds.fillna(False).astype(bool)).to_numpy(dtype=bool)
    if kind == "compound_unique":
        cols = list(check.columns)
        considered = ~work[cols].isna().all(axis=1)
        dup = work.loc[considered, cols].duplicated(keep=False)
        out = np.zeros(n, dtype=bool)
        out[np.flatnonzero(considered.to_numpy())[dup.to_numpy()]] = True
        return out
    col = work[check.columns[0]]
    if kind == "not_null":
        return col.isna().to_numpy(dtype=bool)
    if kind == "flag":
        return (col != True).to_numpy(dtype=bool)  # noqa: E712  (a null helper is a failure too)
    present = col.notna()
    if kind == "in_set":
        bad = ~col.isin(list(p["value_set"]))
    elif kind in ("regex", "not_regex"):
        found = col.astype(str).str.contains(p["regex"], regex=True).fillna(False).astype(bool)
        bad = ~found if kind == "regex" else found
    elif kind == "between":
        lo, hi = p.get("min_value"), p.get("max_value")
        ok = pd.Series(True, index=col.index)
        if lo is not None:
            ok &= col >= lo
        if hi is not None:
            ok &= col <= hi
        bad = ~ok
    elif kind == "length_between":
        length = col.astype(str).str.len()
        lo, hi = p.get("min_value"), p.get("max_value")
        ok = pd.Series(True, index=col.index)
        if lo is not None:
            ok &= length >= lo
        if hi is not None:
            ok &= length <= hi
        bad = ~ok
    elif kind == "unique":
        bad = col.duplicated(keep=False)
    else:
        raise ValueError(f"unknown check kind {kind!r} in {check.name}")
    return (present & bad.fillna(True).astype(bool)).to_numpy(dtype=bool)


def failing_rows(
    frame: pd.DataFrame,
    entity: str,
    layer: int,
    *,
    now: datetime | None = None,
    taxonomy: Collection[str] | None = None,
    known_skus: Collection[str] | None = None,
) -> dict[str, np.ndarray]:
    """``{expectation name: positions of the rows of frame that break it}`` (only failing expectations)."""
    from catalog_sync.quality.gate import prepare_frame

    inputs = GateInputs(
        rules=load_policy().rules,
        now=now or datetime.now(UTC),
        taxonomy=frozenset(taxonomy) if taxonomy is not None else None,
        known_skus=frozenset(known_skus) if known_skus is not None else None,
    )
    if not len(frame):
        return {}
    work, _ = prepare_frame(frame, entity, layer, inputs)
    out: dict[str, np.ndarray] = {}
    for check in layer_checks(entity, layer, inputs):
        mask = check_fails(work, check)
        if mask.any():
            out[check.name] = np.flatnonzero(mask)
    return out


def failing_pairs(
    frame: pd.DataFrame,
    entity: str,
    layer: int,
    *,
    key: str = "sku",
    now: datetime | None = None,
    taxonomy: Collection[str] | None = None,
    known_skus: Collection[str] | None = None,
) -> set[tuple[Any, str]]:
    """The set of ``(key value, expectation name)`` pairs the checks flag (null keys appear as None)."""
    rows = failing_rows(frame, entity, layer, now=now, taxonomy=taxonomy, known_skus=known_skus)
    keys = frame[key].astype(object).where(frame[key].notna(), None).to_numpy() if key in frame else None
    return {
        (keys[i] if keys is not None else int(i), name) for name, positions in rows.items() for i in positions
    }
