"""Write a gate's outcome to the hub: one ``dq_result`` row per (run, gate), one dead letter per quarantined record.

Both writes are idempotent upserts: re-running the same load id overwrites its ``dq_result`` row and refreshes its
open dead letters, and a later run whose record is still failing the same expectation bumps the ``attempts`` of the
open dead letter instead of opening a second one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from catalog_sync.hub import repo
from catalog_sync.hub.models import DqResult, utcnow
from catalog_sync.quality.gate import FAILED_COLUMNS, GateResult

#: Longest field value quoted in a dead-letter reason; payload keeps the full value.
_QUOTE_MAX = 120


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: NaN/NaT -> None, Timestamps -> ISO strings, numpy scalars/arrays -> Python."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        return [json_safe(v) for v in list(value)]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bool | int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _quote(value: Any) -> str:
    text = json.dumps(json_safe(value), ensure_ascii=False, default=str)
    return text if len(text) <= _QUOTE_MAX else text[: _QUOTE_MAX - 1] + "…"


def _row_reason(result: GateResult, row: Mapping[str, Any], names: list[str]) -> str:
    """All broken expectations of one row, each with its reason and the field values involved."""
    parts = []
    for name in names:
        check = result.checks[name]
        values = ", ".join(f"{f}={_quote(row.get(f))}" for f in check.explain_fields if f in row)
        reason = result.failing_expectations[name]["reason"]
        parts.append(f"{name}: {reason}" + (f" [{values}]" if values else ""))
    return "; ".join(parts)


def dead_letters(
    result: GateResult, load_id: str, flow: str, source_system: str, target_system: str
) -> list[dict[str, Any]]:
    """The dead letters of ``result``: one per quarantined record (rows sharing a key are merged)."""
    letters: dict[tuple[str, str], dict[str, Any]] = {}
    columns = [c for c in result.failed.columns if c not in FAILED_COLUMNS]
    for position, record in enumerate(result.failed[columns].to_dict(orient="records")):
        names: list[str] = result.failed["dq_expectations"].iloc[position]
        payload = json_safe(record)
        raw_key = payload.get(result.key)
        record_key = str(raw_key) if raw_key not in (None, "") else f"<row {result.failed.index[position]}>"
        ident = (record_key, names[0])
        reason = _row_reason(result, record, names)
        if ident in letters:
            # Two rows with one key (a duplicate SKU) cannot share one open letter twice in one statement.
            letter = letters[ident]
            letter["payload"].setdefault("duplicates", []).append(payload)
            letter["reason"] += f" | another row with this key: {reason}"
            continue
        letters[ident] = {
            "load_id": load_id,
            "flow": flow,
            "entity": result.entity,
            "record_key": record_key[:255],
            "source_system": source_system,
            "target_system": target_system,
            "reason_kind": "gate",
            "gate_layer": result.layer,
            "expectation": names[0][:128],
            "reason": reason,
            "payload": payload,
        }
    return list(letters.values())


def persist_gate_result(
    session: Session,
    load_id: str,
    result: GateResult,
    flow: str,
    source_system: str,
    target_system: str,
) -> dict[str, int]:
    """Upsert the gate's ``dq_result`` row and open (or bump) a dead letter per quarantined record.

    Returns ``{"dq_results": 1, "dead_letters": n}``. The caller owns the transaction.
    """
    persist_dq_row(session, load_id, result)
    return {"dq_results": 1, "dead_letters": persist_dead_letters(session, load_id, result, flow, source_system,
                                                                 target_system)}


def persist_dead_letters(session: Session, load_id: str, result: GateResult, flow: str, source_system: str,
                         target_system: str) -> int:
    """Open (or bump) a dead letter per quarantined record of ``result`` (one batch of a gate may be given at a
    time: a record key lives in one batch, see ``quality.batching``); returns how many."""
    letters = dead_letters(result, load_id, flow, source_system, target_system)
    repo.dead_letter(session, letters)
    return len(letters)


def persist_dq_row(session: Session, load_id: str, result: GateResult) -> None:
    """Upsert the gate's ``dq_result`` row of the run (for a batched gate: its totals, ``GateTotals.result``)."""
    repo.upsert(
        session,
        DqResult.__table__,  # type: ignore[arg-type]
        [
            {
                "load_id": load_id,
                "gate": result.gate,
                "layer": result.layer,
                "entity": result.entity,
                "severity": result.severity,
                "rows_checked": result.rows_checked,
                "rows_passed": result.rows_passed,
                "rows_quarantined": result.rows_quarantined,
                "success": result.success,
                "failing_expectations": json_safe(result.failing_expectations),
                "created_at": utcnow(),
            }
        ],
        key=["load_id", "gate"],
    )
