"""Data-quality KPIs of a run, written to ``dq_kpi``, and their history.

* completeness: share of required attribute cells that are filled (blank strings count as empty);
* accuracy: share of compared values that match the owning system's value (from a layer-2 joined frame);
* timeliness: median seconds from the change in the source system to its arrival downstream;
* first_time_pass_rate: share of records that passed every gate on their first import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_sync.hub import repo
from catalog_sync.hub.models import DqKpi, utcnow
from catalog_sync.quality import prep
from catalog_sync.quality.gate import GateResult

KPIS: tuple[str, ...] = ("completeness", "accuracy", "timeliness", "first_time_pass_rate")


def completeness(frame: pd.DataFrame, required: Sequence[str]) -> float:
    """Share of the ``required`` cells of ``frame`` that are filled; a missing column counts as all empty.

    An empty frame (or no required attribute) is complete by definition: 1.0.
    """
    if not len(frame) or not required:
        return 1.0
    filled = sum(
        int((~prep.missing_text(frame[col])).sum()) if col in frame.columns else 0 for col in required
    )
    return filled / (len(frame) * len(required))


def accuracy(frame: pd.DataFrame, pairs: Mapping[str, str]) -> float:
    """Share of values that match their owner's value, over the ``{owner column: observed column}`` pairs.

    Rows where both sides are null are not compared (nothing to be inaccurate about); one null side is a
    mismatch. Numeric pairs are compared at 1e-6 relative tolerance to ignore float noise. 1.0 if nothing compared.
    """
    compared = matched = 0
    for owner, observed in pairs.items():
        a, b = frame[owner], frame[observed]
        considered = ~(a.isna() & b.isna())
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            same = pd.Series(np.isclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6), index=a.index)
        else:
            same = (a == b).fillna(False).astype(bool)
        compared += int(considered.sum())
        matched += int((considered & same).sum())
    return matched / compared if compared else 1.0


def timeliness(source_changed_at: pd.Series, arrived_at: pd.Series) -> float | None:
    """Median seconds from source change to downstream arrival; None when no pair of timestamps is known."""
    lag = (prep.to_timestamp(arrived_at) - prep.to_timestamp(source_changed_at)).dt.total_seconds().dropna()
    return float(lag.median()) if len(lag) else None


def first_time_pass_rate(results: Iterable[GateResult]) -> float:
    """Share of records that passed every gate of their first import (gate results of that import).

    Records are identified by their key; a record quarantined by any gate counts as failed. Layer-by-layer
    gates see fewer rows each time (quarantined rows do not reach the next layer), so the records are the union of
    all keys checked. 1.0 when nothing was checked.
    """
    checked: set[Any] = set()
    failed: set[Any] = set()
    for result in results:
        key = result.key
        for part, target in ((result.passed, checked), (result.failed, checked), (result.failed, failed)):
            if key in part.columns:
                target.update(part[key].dropna().tolist())
    return 1.0 - len(failed) / len(checked) if checked else 1.0


def write_kpis(
    session: Session, load_id: str, values: Mapping[str, float | None], measured_at: datetime | None = None
) -> int:
    """Upsert the KPI values of a run (None values are skipped: a KPI that could not be measured is absent)."""
    unknown = set(values) - set(KPIS)
    if unknown:
        raise ValueError(f"unknown KPI(s) {sorted(unknown)}; expected {KPIS}")
    when = measured_at or utcnow()
    rows = [
        {"load_id": load_id, "kpi": kpi, "value": float(v), "measured_at": when}
        for kpi, v in values.items()
        if v is not None
    ]
    return repo.upsert(session, DqKpi.__table__, rows, key=["load_id", "kpi"])  # type: ignore[arg-type]


def kpi_history(
    session: Session, kpi: str | None = None, *, since: datetime | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """KPI values over time, oldest first: ``[{"load_id", "kpi", "value", "measured_at"}]``."""
    stmt = select(DqKpi)
    if kpi is not None:
        stmt = stmt.where(DqKpi.kpi == kpi)
    if since is not None:
        stmt = stmt.where(DqKpi.measured_at >= since)
    stmt = stmt.order_by(DqKpi.measured_at, DqKpi.kpi).limit(limit)
    return [
        {"load_id": r.load_id, "kpi": r.kpi, "value": r.value, "measured_at": r.measured_at}
        for r in session.scalars(stmt)
    ]
