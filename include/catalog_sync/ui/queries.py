"""Read-only hub queries behind the Catalog Sync pages; every function returns plain, JSON-able values.

All SQL goes through SQLAlchemy expressions (bound parameters, no string building). JSON columns are
aggregated in Python so the same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from catalog_sync.hub.models import DeadLetter, Diagnosis, DqKpi, DqResult, Drift, SyncRun

if TYPE_CHECKING:
    from catalog_sync.store import StorePath

#: KPIs the overview charts, in display order (others found in the hub are appended after these).
KPI_ORDER: tuple[str, ...] = ("completeness", "accuracy", "timeliness", "first_time_pass_rate")
#: The flow whose Drift rows the reconciliation page shows.
RECONCILIATION_FLOW = "weekly_reconciliation"
#: Replaced values of payload keys that look like credentials (payloads come from external systems).
REDACTED = "***"
_SENSITIVE_KEY = re.compile(
    r"passw(or)?d|^pass$|^pwd$|secret|token|api[_-]?key|private[_-]?key|authori[sz]ation|credential|cookie",
    re.I,
)


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of credential-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SENSITIVE_KEY.search(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row(obj: Any, columns: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in columns:
        value = getattr(obj, col.name)
        out[col.name] = _iso(value) if isinstance(value, datetime) else value
    return out


# --- data quality overview --------------------------------------------------------------------------------------


def kpi_series(session: Session, limit_runs: int = 60) -> dict[str, list[dict[str, Any]]]:
    """KPI name -> the last ``limit_runs`` values, oldest first: ``{load_id, flow, measured_at, value}``."""
    rows = session.execute(
        select(DqKpi.kpi, DqKpi.load_id, DqKpi.value, DqKpi.measured_at, SyncRun.flow)
        .outerjoin(SyncRun, SyncRun.load_id == DqKpi.load_id)
        .order_by(DqKpi.measured_at.desc(), DqKpi.load_id.desc())
    ).all()
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kpi, load_id, value, measured_at, flow in rows:
        if len(series[kpi]) < limit_runs:
            series[kpi].append(
                {"load_id": load_id, "flow": flow, "measured_at": _iso(measured_at), "value": float(value)}
            )
    ordered = [k for k in KPI_ORDER if k in series] + sorted(k for k in series if k not in KPI_ORDER)
    return {k: list(reversed(series[k])) for k in ordered}


def gate_totals(session: Session) -> list[dict[str, Any]]:
    """Rows checked, passed and quarantined per (layer, gate), summed over every run, plus failed-run counts."""
    rows = session.execute(
        select(
            DqResult.layer,
            DqResult.gate,
            func.min(DqResult.entity),
            func.min(DqResult.severity),
            func.count(),
            func.sum(case((DqResult.success.is_(False), 1), else_=0)),
            func.coalesce(func.sum(DqResult.rows_checked), 0),
            func.coalesce(func.sum(DqResult.rows_passed), 0),
            func.coalesce(func.sum(DqResult.rows_quarantined), 0),
            func.max(DqResult.created_at),
        )
        .group_by(DqResult.layer, DqResult.gate)
        .order_by(DqResult.layer, DqResult.gate)
    ).all()
    return [
        {
            "layer": layer,
            "gate": gate,
            "entity": entity,
            "severity": severity,
            "runs": int(runs),
            "failed_runs": int(failed or 0),
            "rows_checked": int(checked),
            "rows_passed": int(passed),
            "rows_quarantined": int(quarantined),
            "last_seen": _iso(last),
        }
        for layer, gate, entity, severity, runs, failed, checked, passed, quarantined, last in rows
    ]


def layer_totals(gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-gate totals of :func:`gate_totals` summed per layer."""
    layers: dict[int, dict[str, Any]] = {}
    for g in gates:
        t = layers.setdefault(
            g["layer"],
            {"layer": g["layer"], "gates": 0, "rows_checked": 0, "rows_passed": 0, "rows_quarantined": 0},
        )
        t["gates"] += 1
        for key in ("rows_checked", "rows_passed", "rows_quarantined"):
            t[key] += g[key]
    return [layers[k] for k in sorted(layers)]


def aggregate_failing(results: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Sum ``failing_expectations`` maps (expectation -> {count, reason, critical}) over gate results.

    Returns one entry per expectation, most failing rows first: ``{expectation, rows, runs, reason, critical}``.
    """
    agg: dict[str, dict[str, Any]] = {}
    for failing in results:
        for name, info in (failing or {}).items():
            info = info if isinstance(info, dict) else {"count": info}
            entry = agg.setdefault(
                name, {"expectation": name, "rows": 0, "runs": 0, "reason": "", "critical": False}
            )
            try:
                entry["rows"] += int(info.get("count") or 0)
            except (TypeError, ValueError):
                pass
            entry["runs"] += 1
            entry["reason"] = str(info.get("reason") or entry["reason"])
            entry["critical"] = bool(entry["critical"] or info.get("critical"))
    return sorted(agg.values(), key=lambda e: (-e["rows"], -e["runs"], e["expectation"]))


def top_failing_expectations(session: Session, limit: int = 15) -> list[dict[str, Any]]:
    """The expectations that failed on the most rows, over every gate result in the hub."""
    failing = session.scalars(
        select(DqResult.failing_expectations).where(DqResult.failing_expectations.is_not(None))
    ).all()
    return aggregate_failing(list(failing))[:limit]


def quality_overview(session: Session) -> dict[str, Any]:
    """Everything the data-quality overview page shows."""
    gates = gate_totals(session)
    return {
        "kpis": kpi_series(session),
        "gates": gates,
        "layers": layer_totals(gates),
        "failing_expectations": top_failing_expectations(session),
    }


# --- runs -------------------------------------------------------------------------------------------------------


def recent_runs(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The latest runs of every flow, newest first."""
    runs = session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc()).limit(limit)).all()
    return [_row(r, SyncRun.__table__.columns) for r in runs]


def load_id_for_airflow_run(session: Session, dag_id: str, run_id: str) -> str | None:
    """The load id the hub recorded for an Airflow DAG run (the newest, if a run registered several)."""
    return session.scalar(
        select(SyncRun.load_id)
        .where(SyncRun.dag_id == dag_id, SyncRun.run_id == run_id)
        .order_by(SyncRun.started_at.desc())
        .limit(1)
    )


def run_report(session: Session, load_id: str) -> dict[str, Any] | None:
    """One run: its row, what each gate saw and quarantined, and its dead letters by kind and status."""
    run = session.get(SyncRun, load_id)
    if run is None:
        return None
    results = session.scalars(
        select(DqResult).where(DqResult.load_id == load_id).order_by(DqResult.layer, DqResult.gate)
    ).all()
    gates = []
    for r in results:
        row = _row(r, DqResult.__table__.columns)
        row["failing"] = aggregate_failing([r.failing_expectations])
        gates.append(row)
    letters = session.execute(
        select(DeadLetter.reason_kind, DeadLetter.status, func.count())
        .where(DeadLetter.load_id == load_id)
        .group_by(DeadLetter.reason_kind, DeadLetter.status)
        .order_by(DeadLetter.reason_kind, DeadLetter.status)
    ).all()
    kpis = session.execute(
        select(DqKpi.kpi, DqKpi.value).where(DqKpi.load_id == load_id).order_by(DqKpi.kpi)
    ).all()
    run_row = _row(run, SyncRun.__table__.columns)
    run_row["details"] = redact(run_row.get("details"))
    return {
        "run": run_row,
        "gates": gates,
        "totals": {
            "rows_checked": sum(g["rows_checked"] for g in gates),
            "rows_passed": sum(g["rows_passed"] for g in gates),
            "rows_quarantined": sum(g["rows_quarantined"] for g in gates),
            "gates_failed": sum(1 for g in gates if not g["success"]),
        },
        "kpis": {k: float(v) for k, v in kpis},
        "dead_letters": [{"reason_kind": k, "status": s, "count": int(n)} for k, s, n in letters],
        # The run's own dead-letter rows, beside its hop counts: ``records_dead_lettered`` counts each record once
        # on the hop that lost it, while a letter written with ``hop=None`` (a post-delivery consistency finding,
        # a stale supplier submission, a refused rollback field) is about a record the hop already counted as
        # delivered or unchanged. The page shows both, labelled, so they are not read as one figure.
        "dead_letter_totals": {
            "written": sum(int(n) for _, _, n in letters),
            "open": sum(int(n) for _, st, n in letters if st == "open"),
        },
    }


# --- launch runbook -----------------------------------------------------------------------------------------------

#: The flow whose runs have a launch runbook.
REPUBLISH_FLOW = "seasonal_republish"


def launch_runbook(session: Session, load_id: str) -> dict[str, Any] | None:
    """A seasonal republish run's runbook: per SKU, the links of the chain with what was wrong, what each repair
    changed, what holds now and what is left to do by hand (``catalog_sync.flows.runbook``). None: no such run.

    SKUs needing a person come first, then those repaired, then those that held all along. A SKU stored before
    runbooks were written (``runbook`` None) is listed with its outcome unknown.
    """
    run = session.get(SyncRun, load_id)
    if run is None:
        return None
    rows = session.scalars(select(Diagnosis).where(Diagnosis.load_id == load_id).order_by(Diagnosis.sku)).all()
    skus = [r.runbook or {"sku": r.sku, "outcome": "unknown", "dry_run": r.dry_run, "first_broken": r.broken_link,
                          "verdict": "this run predates runbooks", "links": [], "by_hand": [],
                          "live_page": {"holds": None, "detail": "not recorded", "checked_after_repairs": False}}
            for r in rows]
    rank = {"dead_lettered": 0, "unknown": 1, "delivered": 2, "unchanged": 3}
    skus.sort(key=lambda b: (0 if b["by_hand"] else 1, rank.get(b["outcome"], 1), b["sku"]))
    details = run.details or {}
    return {
        "run": {"load_id": run.load_id, "flow": run.flow, "dag_id": run.dag_id, "run_id": run.run_id,
                "status": run.status, "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
                "season": details.get("season"), "dry_run": details.get("dry_run"),
                "repairs": details.get("repairs") or []},
        "is_republish": run.flow == REPUBLISH_FLOW,
        "skus": redact(skus),
        "totals": {
            "skus": len(skus),
            "repaired": sum(1 for b in skus if b["outcome"] == "delivered"),
            "held_all_along": sum(1 for b in skus if b["outcome"] == "unchanged" and not b.get("first_broken")),
            "need_a_person": sum(1 for b in skus if b["by_hand"]),
            "manual_steps": sum(len(b["by_hand"]) for b in skus),
            "repairs_made": sum(1 for b in skus for link in b["links"] for a in link["repairs"]
                                if a["status"] == "done"),
            "live_pages_ok": sum(1 for b in skus if b["live_page"]["holds"]),
        },
    }


# --- dead letters -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterFilter:
    """The filters of the dead-letter page; ``None`` or empty means "any"."""

    source_system: str | None = None
    target_system: str | None = None
    gate_layer: int | None = None
    expectation: str | None = None
    reason_kind: str | None = None
    status: str | None = "open"
    load_id: str | None = None
    record_key: str | None = None
    unset: tuple[str, ...] = ()  # columns that must be empty (a group whose expectation is none, say)

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "unset" and value is not None and value != "":
                stmt = stmt.where(getattr(DeadLetter, f.name) == value)
        for name in self.unset:
            stmt = stmt.where(getattr(DeadLetter, name).is_(None))
        return stmt

    def as_params(self) -> dict[str, Any]:
        """The non-empty filters, e.g. for building links that keep them."""
        return {
            f.name: getattr(self, f.name) for f in fields(self)
            if f.name != "unset" and getattr(self, f.name) not in (None, "")
        }


def _letter(dl: DeadLetter, with_payload: bool) -> dict[str, Any]:
    row = _row(dl, DeadLetter.__table__.columns)
    if with_payload:
        row["payload"] = redact(row["payload"])
    else:
        row.pop("payload")
    return row


def list_dead_letters(
    session: Session, flt: DeadLetterFilter, limit: int = 200, offset: int = 0
) -> dict[str, Any]:
    """Dead letters matching ``flt``, newest first, without payloads; ``total`` counts every match."""
    total = session.scalar(flt.apply(select(func.count()).select_from(DeadLetter))) or 0
    rows = session.scalars(
        flt.apply(select(DeadLetter))
        .order_by(DeadLetter.updated_at.desc(), DeadLetter.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return {"total": int(total), "limit": limit, "offset": offset, "items": [_letter(r, False) for r in rows]}


#: What makes dead letters "the same problem": one fix (a mapping, a reference value, a down system) clears them.
GROUP_KEYS: tuple[str, ...] = ("source_system", "target_system", "reason_kind", "expectation")


def dead_letter_groups(session: Session, flt: DeadLetterFilter, limit: int = 50) -> dict[str, Any]:
    """The letters matching ``flt`` grouped by :data:`GROUP_KEYS`, largest group first: each with its count, one
    reason as an example (the reasons differ by record), and the newest update."""
    cols = [getattr(DeadLetter, k) for k in GROUP_KEYS]
    stmt = flt.apply(select(*cols, func.count().label("n"), func.min(DeadLetter.reason).label("example"),
                            func.min(DeadLetter.id).label("member"), func.max(DeadLetter.updated_at).label("newest"))
                     .select_from(DeadLetter))
    rows = session.execute(stmt.group_by(*cols).order_by(func.count().desc(), *cols).limit(limit + 1)).all()
    groups = [{**{k: getattr(r, k) for k in GROUP_KEYS}, "count": int(r.n), "example": r.example,
               "member": int(r.member), "newest": r.newest.isoformat() if r.newest else None} for r in rows[:limit]]
    return {"groups": groups, "more": len(rows) > limit}


def group_filter(flt: DeadLetterFilter, member: Mapping[str, Any]) -> DeadLetterFilter:
    """``flt`` narrowed to the group of the letter ``member`` (its :data:`GROUP_KEYS` values; an empty one matches
    only empty ones, as the grouping did)."""
    values = {k: member.get(k) for k in GROUP_KEYS}
    return replace(flt, **{k: v for k, v in values.items() if v is not None},
                   unset=tuple(k for k, v in values.items() if v is None))


def matching_letter_ids(session: Session, flt: DeadLetterFilter, limit: int) -> tuple[list[int], int]:
    """Up to ``limit`` ids of the OPEN letters matching ``flt`` (oldest first, so a repeated action progresses),
    and how many open letters match in all."""
    open_flt = replace(flt, status="open")
    total = session.scalar(open_flt.apply(select(func.count()).select_from(DeadLetter))) or 0
    ids = session.scalars(open_flt.apply(select(DeadLetter.id)).order_by(DeadLetter.id).limit(limit)).all()
    return list(ids), int(total)


def get_dead_letter(session: Session, letter_id: int) -> dict[str, Any] | None:
    """One dead letter with its (redacted) payload."""
    dl = session.get(DeadLetter, letter_id)
    return _letter(dl, True) if dl is not None else None


def dead_letter_facets(session: Session) -> dict[str, list[Any]]:
    """Distinct values of each filterable column, for the filter drop-downs."""
    columns = {
        "source_system": DeadLetter.source_system,
        "target_system": DeadLetter.target_system,
        "gate_layer": DeadLetter.gate_layer,
        "expectation": DeadLetter.expectation,
        "reason_kind": DeadLetter.reason_kind,
        "status": DeadLetter.status,
    }
    return {
        name: [v for v in session.scalars(select(col).distinct().order_by(col)).all() if v not in (None, "")]
        for name, col in columns.items()
    }


def open_letter_ids(session: Session, ids: list[int]) -> list[int]:
    """The subset of ``ids`` that are still open (replay and discard only act on those)."""
    if not ids:
        return []
    return list(
        session.scalars(
            select(DeadLetter.id)
            .where(DeadLetter.id.in_(ids), DeadLetter.status == "open")
            .order_by(DeadLetter.id)
        ).all()
    )


# --- reconciliation drift ---------------------------------------------------------------------------------------


def drift_report(
    session: Session, attribute: str | None = None, kind: str | None = None, limit: int = 500
) -> dict[str, Any]:
    """Drift of the latest weekly reconciliation: counts per attribute and kind, and the records (filtered)."""
    run = session.scalars(
        select(SyncRun)
        .where(SyncRun.flow == RECONCILIATION_FLOW)
        .order_by(SyncRun.started_at.desc())
        .limit(1)
    ).first()
    if run is None:
        return {"run": None, "kinds": [], "by_attribute": [], "total": 0, "records": [], "showable": None,
                "showable_repairs": None}
    details = run.details or {}
    counts = session.execute(
        select(Drift.attribute, Drift.kind, func.count())
        .where(Drift.load_id == run.load_id)
        .group_by(Drift.attribute, Drift.kind)
        .order_by(Drift.attribute, Drift.kind)
    ).all()
    kinds = sorted({k for _, k, _ in counts})
    pivot: dict[str, dict[str, Any]] = {}
    for attr, k, n in counts:
        entry = pivot.setdefault(attr, {"attribute": attr, "total": 0, "kinds": dict.fromkeys(kinds, 0)})
        entry["kinds"][k] = int(n)
        entry["total"] += int(n)
    stmt = select(Drift).where(Drift.load_id == run.load_id)
    if attribute:
        stmt = stmt.where(Drift.attribute == attribute)
    if kind:
        stmt = stmt.where(Drift.kind == kind)
    records = session.scalars(
        stmt.order_by(Drift.attribute, Drift.system, Drift.entity, Drift.record_key).limit(limit)
    ).all()
    return {
        "run": _row(run, [c for c in SyncRun.__table__.columns if c.name != "details"]),
        "kinds": kinds,
        "by_attribute": sorted(pivot.values(), key=lambda e: (-e["total"], e["attribute"])),
        "total": sum(e["total"] for e in pivot.values()),
        "records": [redact(_row(r, Drift.__table__.columns)) for r in records],
        # the storefront against the showable rule, per SKU, and what the run's repair did (flows/reconcile.py)
        "showable": redact(details.get("showable")),
        "showable_repairs": redact(details.get("showable_repairs")),
    }


# --- GX Data Docs -----------------------------------------------------------------------------------------------

#: Load ids are generated by ``repo.new_load_id`` (flow-timestamp-hex); anything else is refused as a path.
_SAFE_LOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}")


def data_docs_root(root: StorePath, load_id: str) -> StorePath | None:
    """The run's Data Docs folder in the shared state store ``root``, named as the writer names it
    (``quality.docs.docs_dir``), or None when ``load_id`` is not a load id."""
    from catalog_sync.quality.docs import docs_dir

    if not _SAFE_LOAD_ID.fullmatch(load_id) or ".." in load_id:
        return None
    return docs_dir(load_id, root)


def resolve_data_docs_file(root: StorePath, load_id: str, rel_path: str) -> StorePath | None:
    """The file ``rel_path`` inside a run's Data Docs in the store ``root``, or None if it is missing or escapes
    the folder.

    Traversal (``..``, ``.``, empty segments, absolute paths, backslashes, NUL bytes) yields None before the store
    is asked. On a local store a symlink pointing out of the folder yields None too (object stores have no links).
    """
    from catalog_sync.store import is_local

    folder = data_docs_root(root, load_id)
    if folder is None or "\x00" in rel_path or "\\" in rel_path:
        return None
    rel = rel_path.strip("/") or "index.html"
    if any(part in ("..", ".", "") for part in rel.split("/")):
        return None
    target = folder / rel
    try:
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return None
    except OSError:
        return None
    if is_local(folder):
        base = os.path.realpath(folder.path)
        if os.path.commonpath([base, os.path.realpath(target.path)]) != base:
            return None
    return target
