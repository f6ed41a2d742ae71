"""Retention: prune what the hub and the shared state store keep past its use, never what rollback or reports still need.

Every hot batch is a hub run (seconds apart under a steady stream) with its counters, audit rows, gate results and
a validation folder; without pruning the hub grows by tens of thousands of runs a day. Run weekly by the
``hub_retention`` DAG and by hand with ``catalog-sync retention`` (``--dry-run`` counts without deleting).

What goes (defaults in :class:`RetentionPolicy`):

- **hot-batch runs** (flow ``hot_data_sync``) finished more than ``hot_runs_days`` ago: the run row, its counters,
  audit rows, staged records, gate results and validation folder;
- **audit rows** of any flow older than ``audit_days``;
- **validation folders** (``gx_validations/<run>``, ``data_docs/<run>`` in the shared state store,
  :mod:`catalog_sync.store`) of runs older than ``validations_days``, and of runs the hub no longer has;
- **staged frames** (``staging/<run>`` in the store) of reconciliations that are no longer running: ``finish``
  removes its own, so what is left belongs to a run that failed, or to a run the hub no longer has.

What stays, whatever its age (a run is *protected*):

- a run whose field deltas can still be rolled back (not rolled back, applied within ``rollback_days``; stock
  deltas do not count, stock is never rolled back): rollback reads its deltas and shows its audit rows;
- a run with open dead letters (the Dead letters page links to it; replay reads its context);
- the run that committed a current cursor (``sync_state.load_id``);
- any run still running;
- the data-quality KPIs of every run (``dq_kpi``, one row per KPI and run): the Quality page's trends read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, select

from catalog_sync import store
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import (
    AuditEvent,
    DeadLetter,
    DqResult,
    FieldDelta,
    RunCounter,
    StagedRecord,
    SyncRun,
    SyncState,
    utcnow,
)

if TYPE_CHECKING:
    from catalog_sync.store import StorePath

HOT_FLOW = "hot_data_sync"
#: Rows deleted per statement: keeps each IN list and transaction small on SQLite and PostgreSQL alike.
CHUNK = 500


@dataclass(frozen=True)
class RetentionPolicy:
    hot_runs_days: float = 14
    audit_days: float = 90
    validations_days: float = 30
    rollback_days: float = 30

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1 day, not {value}")


def protected_runs(session: Any, now: datetime, policy: RetentionPolicy) -> set[str]:
    """Load ids that must be kept whole (see the module docstring)."""
    rollback_from = now - timedelta(days=policy.rollback_days)
    keep: set[str] = set()
    # Stock deltas do not count: stock is never rolled back (the next ERP change is its truth).
    keep |= set(session.scalars(select(FieldDelta.load_id).where(FieldDelta.rolled_back_by.is_(None),
                                                                  FieldDelta.applied_at >= rollback_from,
                                                                  FieldDelta.entity != "inventory")
                                .distinct()))
    keep |= set(session.scalars(select(DeadLetter.load_id).where(DeadLetter.status == "open").distinct()))
    keep |= {x for x in session.scalars(select(SyncState.load_id).distinct()) if x}
    keep |= set(session.scalars(select(SyncRun.load_id).where(SyncRun.status == "running")))
    return keep


def prune(policy: RetentionPolicy | None = None, *, hub_url: str | None = None, now: datetime | None = None,
          root: StorePath | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Apply the retention policy; returns what was (or, with ``dry_run``, would be) removed, per kind.

    ``root`` is the shared state store (by default :func:`catalog_sync.store.store_root`).
    """
    policy = policy or RetentionPolicy()
    now = now or utcnow()
    root = root if root is not None else store.store_root()
    report: dict[str, Any] = {"policy": asdict(policy), "dry_run": dry_run, "hot_runs": 0, "audit_rows": 0,
                              "run_rows": {}, "validation_folders": 0, "staging_folders": 0,
                              "protected_runs_kept": 0}
    with session_scope(hub_url) as s:
        keep = protected_runs(s, now, policy)
        hot_cutoff = now - timedelta(days=policy.hot_runs_days)
        old_hot = [x for x in s.scalars(select(SyncRun.load_id).where(
            SyncRun.flow == HOT_FLOW, SyncRun.started_at < hot_cutoff, SyncRun.status != "running"))]
        report["protected_runs_kept"] = sum(1 for x in old_hot if x in keep)
        doomed = [x for x in old_hot if x not in keep]
        report["hot_runs"] = len(doomed)
        run_rows: dict[str, int] = {}
        # Field deltas of a pruned run are past the rollback window (or rolled back): the run is not protected.
        for model in (RunCounter, AuditEvent, StagedRecord, DqResult, FieldDelta, SyncRun):
            run_rows[model.__tablename__] = _delete_in(s, model, doomed, dry_run)
        report["run_rows"] = run_rows

        audit_cutoff = now - timedelta(days=policy.audit_days)
        old_audit = select(AuditEvent.id).where(AuditEvent.started_at < audit_cutoff)
        if keep:
            old_audit = old_audit.where(AuditEvent.load_id.not_in(sorted(keep)))
        report["audit_rows"] = _delete_ids(s, old_audit, dry_run)

        known = {load_id: started for load_id, started in s.execute(select(SyncRun.load_id, SyncRun.started_at))}
        running = set(s.scalars(select(SyncRun.load_id).where(SyncRun.status == "running")))
    report["validation_folders"] = _prune_folders(root, known, keep, set(doomed),
                                                  now - timedelta(days=policy.validations_days), dry_run)
    report["staging_folders"] = _prune_staging(root, running, dry_run)
    return report


def _delete_in(session: Any, model: Any, load_ids: list[str], dry_run: bool) -> int:
    total = 0
    for i in range(0, len(load_ids), CHUNK):
        part = load_ids[i:i + CHUNK]
        if dry_run:
            from sqlalchemy import func

            total += int(session.scalar(select(func.count()).select_from(model).where(model.load_id.in_(part))) or 0)
        else:
            total += int(session.execute(delete(model).where(model.load_id.in_(part))).rowcount or 0)
    return total


def _delete_ids(session: Any, query: Select[Any], dry_run: bool) -> int:
    ids = list(session.scalars(query))
    if dry_run:
        return len(ids)
    for i in range(0, len(ids), CHUNK):
        session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids[i:i + CHUNK])))
    return len(ids)


def _run_folders(root: StorePath, name: str) -> list[StorePath]:
    """The run folders under one store prefix, by name."""
    base = root / name
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name)


def _prune_folders(root: StorePath, known: dict[str, datetime], keep: set[str], doomed: set[str],
                   cutoff: datetime, dry_run: bool) -> int:
    """Validation and Data Docs folders of pruned, unknown or old runs; those of protected runs stay.

    Folder names are the load ids made path-safe (store.run_folder_name), so they are matched through it.
    """
    by_folder = {store.run_folder_name(load_id): load_id for load_id in known}
    by_folder.update({store.run_folder_name(load_id): load_id for load_id in doomed})
    kept_folders = {store.run_folder_name(load_id) for load_id in keep}
    removed = 0
    for name in (store.VALIDATIONS, store.DATA_DOCS):
        for folder in _run_folders(root, name):
            if folder.name in kept_folders:
                continue
            load_id = by_folder.get(folder.name)
            started = known.get(load_id) if load_id and load_id not in doomed else None
            if started is not None and _aware(started) >= cutoff:
                continue
            if not dry_run:
                store.remove_tree(folder)
            removed += 1
    return removed


def _prune_staging(root: StorePath, running: set[str], dry_run: bool) -> int:
    """Staged frames of reconciliations no longer running (failed, or unknown to the hub); a running one's stay."""
    live = {store.run_folder_name(load_id) for load_id in running}
    removed = 0
    for folder in _run_folders(root, store.STAGING):
        if folder.name in live:
            continue
        if not dry_run:
            store.remove_tree(folder)
        removed += 1
    return removed


def _aware(ts: datetime) -> datetime:
    from datetime import UTC

    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
