"""A run of one flow: its load id, its counters, and the hub writes every step makes on its behalf.

A flow is split across Airflow tasks; each task re-attaches to the run by load id (``RunContext.attach``), so no
state lives in the worker between tasks. Records move between tasks through the ``staged_record`` table.

A run's tasks are retried and cleared by Airflow; each task runs under ``run_task``, which makes its attempt's
effects idempotent per (run, task): counters live per (run, task, part) in ``task_counter`` and an attempt first
drops those of every part not yet committed (``task_checkpoint``), audit rows of those parts likewise, and a
committed part (a batch written) or a committed task is skipped, not redone. So a retry resumes where the last
attempt committed, and clearing a finished task changes nothing.

Invariant: when a run finishes, ``read == delivered + unchanged + dead_lettered`` on every hop (ERP -> PIM,
PIM -> storefront, ...). A run whose counts do not reconcile is marked failed and raises ``RecordsUnaccounted``:
a sync that silently drops records must never report success.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Table, delete, func, or_, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import (
    AuditEvent,
    RunCounter,
    StagedRecord,
    SyncRun,
    TaskCheckpoint,
    TaskCounter,
    utcnow,
)

log = logging.getLogger(__name__)

COUNTERS = ("read", "delivered", "unchanged", "dead_lettered")
#: Staged records written to a transaction, and read to a page (``RunContext.stage`` / ``iter_staged``): what a
#: task holds of a stage at once, whatever the size of the delta.
STAGE_BATCH = 2_000
_T = TypeVar("_T")
#: The task whose attempt is running in this thread (set by ``run_task``); ``RunContext.attach`` picks it up.
_TASK: ContextVar[str | None] = ContextVar("catalog_sync_task", default=None)


class RecordsUnaccounted(RuntimeError):
    """Read records that were neither delivered, unchanged nor dead-lettered: the run must not succeed."""


_PLAIN: Final = frozenset({str, int, bool, type(None)})


def json_safe(value: Any) -> Any:
    """Turn NaN, numpy scalars, timestamps and decimals into plain JSON values (for payloads and audit rows)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        # Most payloads are flat dicts of plain values: those are copied without a call per value.
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_safe(item())
    if hasattr(value, "tolist"):  # numpy arrays
        return json_safe(value.tolist())
    return json.loads(json.dumps(value, default=str))


@dataclass
class RunContext:
    """Handle on one run in the hub. Cheap to create; holds no connection."""

    load_id: str
    flow: str
    hub_url: str | None = None
    #: The task this handle counts and audits for (None: a flow that runs outside Airflow tasks' bookkeeping).
    task: str | None = None
    #: The part of the task being done now ("" outside ``part``).
    part_name: str = ""
    #: Seconds spent waiting on external systems, by system (filled by ``on_attempt``).
    external_seconds: dict[str, float] = field(default_factory=dict)
    _audit_buffer: list[dict[str, Any]] = field(default_factory=list)
    _delta_buffer: list[dict[str, Any]] = field(default_factory=list)

    # --- lifecycle -------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        flow: str,
        *,
        load_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        hub_url: str | None = None,
    ) -> RunContext:
        """Start (or, for a retried task with the same load id, re-open) a run."""
        with session_scope(hub_url) as s:
            load_id = repo.start_run(
                s, flow, load_id=load_id, dag_id=dag_id, run_id=run_id,
                window_start=window_start, window_end=window_end,
            )
            s.execute(update(SyncRun).where(SyncRun.load_id == load_id).values(
                **{f"records_{c}": 0 for c in COUNTERS}
            ))
            # Only the counters kept outside tasks (a one-task flow re-opened by its retry); a task's own
            # counters are replaced by that task's next attempt (run_task), never by re-opening the run.
            s.execute(delete(RunCounter).where(RunCounter.load_id == load_id))
        return cls(load_id=load_id, flow=flow, hub_url=hub_url, task=_TASK.get())

    @classmethod
    def attach(cls, load_id: str, hub_url: str | None = None) -> RunContext:
        """A handle on an open run; inside ``run_task`` it counts and audits as that task."""
        with session_scope(hub_url) as s:
            run = s.get(SyncRun, load_id)
            if run is None:
                raise LookupError(f"no run with load id {load_id!r} in the hub")
            return cls(load_id=load_id, flow=run.flow, hub_url=hub_url, task=_TASK.get())

    # --- parts of a task: what a retry skips ------------------------------------------------------------------

    def committed(self, part: str) -> bool:
        """Whether ``part`` of this task was committed by an earlier attempt (always False outside a task)."""
        if self.task is None:
            return False
        with session_scope(self.hub_url) as s:
            return s.get(TaskCheckpoint, (self.load_id, self.task, part)) is not None

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Count and audit the block as ``name`` of this task and, when it ends normally, commit it: a later
        attempt skips it (``committed``). An attempt killed inside the block leaves it uncommitted, and the next
        attempt drops what it counted and audited before redoing it. Outside a task, only runs the block."""
        if self.task is None:
            yield
            return
        if not name:
            raise ValueError("a part needs a name ('' is the task itself)")
        outer, self.part_name = self.part_name, name
        try:
            yield
            self.flush_audit()
            with session_scope(self.hub_url) as s:
                repo.upsert(s, cast(Table, TaskCheckpoint.__table__),
                            [{"load_id": self.load_id, "task": self.task, "part": name, "result": None,
                              "committed_at": utcnow()}], key=["load_id", "task", "part"])
        finally:
            self.part_name = outer

    def count(self, hop: str, **increments: int) -> None:
        """Add to a hop's counters atomically (safe when several tasks of a run write at once)."""
        unknown = set(increments) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown counters {sorted(unknown)}")
        scope = {"task": self.task, "part": self.part_name} if self.task is not None else {}
        rows = [
            {"load_id": self.load_id, **scope, "hop": hop, "counter": name, "value": int(n)}
            for name, n in increments.items()
            if n
        ]
        if not rows:
            return
        table = cast(Table, (TaskCounter if self.task is not None else RunCounter).__table__)
        with session_scope(self.hub_url) as s:
            insert: Any = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
            stmt = insert(table).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=["load_id", *scope, "hop", "counter"],
                set_={"value": table.c.value + stmt.excluded.value},
            )
            s.execute(stmt)

    def hop_counts(self, *, task_only: bool = False) -> dict[str, dict[str, int]]:
        """{hop: {counter: value}} with every counter present: the run's totals (the sum over its tasks and the
        counters kept outside tasks), or with ``task_only`` this task's own."""
        if task_only:
            query = (select(TaskCounter.hop, TaskCounter.counter, func.sum(TaskCounter.value))
                     .where(TaskCounter.load_id == self.load_id, TaskCounter.task == (self.task or ""))
                     .group_by(TaskCounter.hop, TaskCounter.counter))
        else:
            both = union_all(
                select(RunCounter.hop, RunCounter.counter, RunCounter.value).where(RunCounter.load_id == self.load_id),
                select(TaskCounter.hop, TaskCounter.counter, TaskCounter.value)
                .where(TaskCounter.load_id == self.load_id),
            ).subquery()
            query = select(both.c.hop, both.c.counter, func.sum(both.c.value)).group_by(both.c.hop, both.c.counter)
        with session_scope(self.hub_url) as s:
            rows = s.execute(query).all()
        hops: dict[str, dict[str, int]] = {}
        for hop, counter, value in rows:
            hops.setdefault(hop, dict.fromkeys(COUNTERS, 0))[counter] = int(value or 0)
        return hops

    def counts(self) -> dict[str, int]:
        """Totals over every hop."""
        totals = dict.fromkeys(COUNTERS, 0)
        for counters in self.hop_counts().values():
            for name, value in counters.items():
                totals[name] += value
        return totals

    def unaccounted(self) -> list[str]:
        """One line per hop whose read records are not all delivered, unchanged or dead-lettered (so far)."""
        problems = []
        for hop, c in sorted(self.hop_counts().items()):
            accounted = c["delivered"] + c["unchanged"] + c["dead_lettered"]
            if accounted != c["read"]:
                problems.append(
                    f"{hop}: {c['read']} records read but {accounted} accounted for (delivered {c['delivered']}, "
                    f"unchanged {c['unchanged']}, dead-lettered {c['dead_lettered']})"
                )
        return problems

    def finish(self, *, details: dict[str, Any] | None = None) -> dict[str, int]:
        """Close the run; fails it loudly when any hop's counts do not reconcile."""
        self.flush_audit()
        hops = self.hop_counts()
        counts = self.counts()
        merged = {**(details or {}), "hops": hops, "external_seconds": self.external_seconds}
        problems = self.unaccounted()
        with session_scope(self.hub_url) as s:
            if problems:
                error = "; ".join(problems)
                repo.finish_run(s, self.load_id, status="failed", counts=counts, error=error, details=merged)
            else:
                repo.finish_run(s, self.load_id, status="success", counts=counts, details=merged)
        if problems:
            raise RecordsUnaccounted("; ".join(problems))
        self.cleanup_staging()
        return counts

    def fail(self, error: str) -> None:
        self.flush_audit()
        with session_scope(self.hub_url) as s:
            repo.finish_run(s, self.load_id, status="failed", error=error[:4000])

    # --- staging ---------------------------------------------------------------------------------------------

    def stage(self, stage: str, records: Iterable[dict[str, Any]], key: str = "sku") -> int:
        """Replace a stage's records (idempotent: a retried task writes the same stage again).

        ``records`` may be a generator: it is consumed and written ``STAGE_BATCH`` rows at a time, each batch in
        its own transaction, so neither the rows nor the transaction grow with the catalog. A task killed half-way
        leaves part of the stage written; its retry replaces the stage whole again before anything reads it.
        """
        self.clear_stage(stage)
        return self._write_stage(stage, records, key, fresh=True)

    def stage_more(self, stage: str, records: Iterable[dict[str, Any]], key: str = "sku") -> int:
        """Add records to a stage (a record whose key is there already replaces it), ``STAGE_BATCH`` rows to a
        transaction: how a task stages a delta it reads page by page."""
        return self._write_stage(stage, records, key, fresh=False)

    def _write_stage(self, stage: str, records: Iterable[dict[str, Any]], key: str, *, fresh: bool) -> int:
        table = cast(Table, StagedRecord.__table__)
        n = 0
        for batch in chunked_iter(records, STAGE_BATCH):
            rows = [{"load_id": self.load_id, "stage": stage, "record_key": str(r[key]), "payload": json_safe(r)}
                    for r in batch]
            with session_scope(self.hub_url) as s:
                if fresh:  # an emptied stage: a plain insert (COPY on PostgreSQL), a repeated key is an error
                    repo.insert_rows(s, table, rows)
                else:
                    repo.upsert(s, table, rows, key=["load_id", "stage", "record_key"])
            n += len(rows)
        return n

    def drop_staged(self, stage: str, keys: Iterable[str]) -> None:
        """Remove the records under ``keys`` from a stage (``STAGE_BATCH`` keys to a statement)."""
        for batch in chunked_iter(sorted({str(k) for k in keys}), STAGE_BATCH):
            with session_scope(self.hub_url) as s:
                s.execute(delete(StagedRecord).where(StagedRecord.load_id == self.load_id,
                                                     StagedRecord.stage == stage, StagedRecord.record_key.in_(batch)))

    def clear_stage(self, stage: str) -> None:
        with session_scope(self.hub_url) as s:
            s.execute(delete(StagedRecord).where(StagedRecord.load_id == self.load_id, StagedRecord.stage == stage))

    def staged(self, stage: str) -> list[dict[str, Any]]:
        """A stage's records, whole, in key order: only for stages that stay small whatever the catalog (a
        cursor, a chunk's plan). A stage that grows with the delta is read with ``iter_staged``."""
        return [r for page in self.iter_staged(stage) for r in page]

    def iter_staged(self, stage: str, size: int | None = None, *, after: str | None = None,
                    ) -> Iterator[list[dict[str, Any]]]:
        """A stage's records in key order, ``size`` (default ``STAGE_BATCH``) at a time: each page is one query
        that starts after the last key of the page before (keyset pagination on the primary key), so a page costs
        the same wherever it is and no transaction stays open between pages."""
        size = size or STAGE_BATCH
        last = after
        while True:
            query = (select(StagedRecord.record_key, StagedRecord.payload)
                     .where(StagedRecord.load_id == self.load_id, StagedRecord.stage == stage)
                     .order_by(StagedRecord.record_key).limit(size))
            if last is not None:
                query = query.where(StagedRecord.record_key > last)
            with session_scope(self.hub_url) as s:
                rows = s.execute(query).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[1] for r in rows]
            if len(rows) < size:
                return

    def staged_page(self, stage: str, number: int, size: int) -> list[dict[str, Any]]:
        """Page ``number`` of a stage, in key order, ``size`` records to a page (a mapped task's chunk)."""
        with session_scope(self.hub_url) as s:
            return list(s.scalars(
                select(StagedRecord.payload)
                .where(StagedRecord.load_id == self.load_id, StagedRecord.stage == stage)
                .order_by(StagedRecord.record_key).offset(number * size).limit(size)).all())

    def staged_by_keys(self, stage: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The records of a stage under ``keys`` (those present), ``{key: record}``."""
        out: dict[str, dict[str, Any]] = {}
        for batch in chunked_iter(sorted({str(k) for k in keys}), 500):
            with session_scope(self.hub_url) as s:
                out.update(s.execute(
                    select(StagedRecord.record_key, StagedRecord.payload)
                    .where(StagedRecord.load_id == self.load_id, StagedRecord.stage == stage,
                           StagedRecord.record_key.in_(batch))).tuples().all())
        return out

    def count_staged(self, stage: str) -> int:
        with session_scope(self.hub_url) as s:
            return int(s.scalar(select(func.count()).select_from(StagedRecord).where(
                StagedRecord.load_id == self.load_id, StagedRecord.stage == stage)) or 0)

    def cleanup_staging(self) -> None:
        with session_scope(self.hub_url) as s:
            s.execute(delete(StagedRecord).where(StagedRecord.load_id == self.load_id))

    # --- audit, dead letters, deltas ------------------------------------------------------------------------

    def on_attempt(self, system: str, method: str, path: str, status: int | None, attempt: int,
                   elapsed: float) -> None:
        """Connector callback: time spent waiting on the external system, by system."""
        self.external_seconds[system] = self.external_seconds.get(system, 0.0) + elapsed

    def audit(self, system: str, entity: str, record_key: str, action: str, outcome: str, *,
              request: Any = None, response: Any = None, changes: Any = None, attempt: int = 1,
              started_at: datetime | None = None) -> None:
        """Buffer one audit row; flushed in bulk (every 1,000 rows and at the end of each step)."""
        self._audit_buffer.append({
            "load_id": self.load_id, "system": system, "entity": entity, "record_key": str(record_key),
            "action": action, "attempt": attempt, "outcome": outcome, "request": json_safe(request),
            "response": json_safe(response), "changes": json_safe(changes),
            "started_at": started_at or utcnow(), "ended_at": utcnow(),
            "task": self.task, "part": self.part_name if self.task is not None else None,
        })
        if len(self._audit_buffer) >= 1000:
            self.flush_audit()

    def flush_audit(self) -> None:
        """Write buffered audit rows and field deltas in one transaction."""
        if not self._audit_buffer and not self._delta_buffer:
            return
        with session_scope(self.hub_url) as s:
            repo.record_audit(s, self._audit_buffer)
            repo.record_deltas(s, self._delta_buffer)
        self._audit_buffer = []
        self._delta_buffer = []

    def dead_letter(self, letters: Iterable[dict[str, Any]], *, hop: str | None) -> int:
        """Dead-letter records (each dict needs entity, record_key, source/target system, reason_kind, reason).

        With a ``hop``, each distinct record counts once as dead-lettered on that hop; ``hop=None`` records a
        finding about a record already accounted for (a post-delivery consistency check).
        """
        rows = [{"load_id": self.load_id, "flow": self.flow, **json_safe(letter)} for letter in letters]
        if not rows:
            return 0
        with session_scope(self.hub_url) as s:
            repo.dead_letter(s, rows)
        if hop is not None:
            self.count(hop, dead_lettered=len({(r["entity"], r["record_key"]) for r in rows}))
        return len(rows)

    def record_deltas(self, system: str, entity: str, record_key: str, before: dict[str, Any],
                      after: dict[str, Any], *, source: str | None = None) -> dict[str, dict[str, Any]]:
        """Buffer the fields that really changed for the delta log; returns {field: {"before", "after"}}.

        ``source`` is the system whose value the write carried (the write-back loop detector names it)."""
        changed = {
            f: {"before": json_safe(before.get(f)), "after": json_safe(v)}
            for f, v in after.items()
            if json_safe(before.get(f)) != json_safe(v)
        }
        self._delta_buffer.extend(
            {"load_id": self.load_id, "system": system, "entity": entity, "record_key": str(record_key),
             "field": f, "before": d["before"], "after": d["after"], "source_system": source}
            for f, d in changed.items()
        )
        if len(self._delta_buffer) >= 1000:
            self.flush_audit()
        return changed


def run_task(task: str, load_id: str, step: Callable[..., Any], *args: Any, hub_url: str | None = None,
             **kwargs: Any) -> Any:
    """``step(load_id, *args, **kwargs)`` as one attempt of ``task`` of the run ``load_id``, idempotently.

    A task committed whole by an earlier attempt returns that attempt's result and does nothing (a cleared task of
    a finished run changes nothing). Otherwise what earlier attempts counted and audited in parts they did not
    commit is dropped first, so the parts redone now are counted once; committed parts stay, and the step skips
    them (``RunContext.committed``). A run failed by an earlier attempt is running again while the task runs.
    The task commits whole when the step returns; its result must be JSON-able (it is what Airflow's XCom gets).
    """
    with session_scope(hub_url) as s:
        done = s.get(TaskCheckpoint, (load_id, task, ""))
        if done is not None:
            log.info("%s: task %s was committed at %s by an earlier attempt; nothing left to do", load_id, task,
                     done.committed_at)
            return (done.result or {}).get("value")
        kept = select(TaskCheckpoint.part).where(TaskCheckpoint.load_id == load_id, TaskCheckpoint.task == task)
        dropped = s.execute(delete(TaskCounter).where(
            TaskCounter.load_id == load_id, TaskCounter.task == task, TaskCounter.part.not_in(kept)))
        s.execute(delete(AuditEvent).where(AuditEvent.load_id == load_id, AuditEvent.task == task,
                                           or_(AuditEvent.part.is_(None), AuditEvent.part.not_in(kept))))
        s.execute(update(SyncRun).where(SyncRun.load_id == load_id, SyncRun.status == "failed")
                  .values(status="running", ended_at=None, error=None))
        resumed = s.scalar(select(func.count()).select_from(kept.subquery())) or 0
    if resumed or getattr(dropped, "rowcount", 0):
        log.info("%s: task %s resumes: %d part(s) committed by earlier attempts are kept, what the others counted "
                 "is counted again", load_id, task, resumed)
    token = _TASK.set(task)
    try:
        result = step(load_id, *args, **kwargs)
    finally:
        _TASK.reset(token)
    with session_scope(hub_url) as s:
        repo.upsert(s, cast(Table, TaskCheckpoint.__table__),
                    [{"load_id": load_id, "task": task, "part": "", "result": {"value": json_safe(result)},
                      "committed_at": utcnow()}], key=["load_id", "task", "part"])
    return result


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def chunked_iter(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` (any iterable, a generator too) in lists of at most ``size``, never holding more than one."""
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Stopwatch:
    """Wall time of a block, for the share of time spent in Catalog Sync's own code."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
