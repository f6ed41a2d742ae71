"""The integration hub's tables: runs, audit trail, dead letters, sync state, delta log, quality results.

The hub is Catalog Sync's own memory. External systems stay the source of truth for the attributes they own; the
hub records what was read, what was written, what was refused and why, so that any change can be explained
and undone. Every table that a re-run could write twice has a unique business key, and every write goes through
``catalog_sync.hub.repo.upsert`` on that key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, MetaData, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names make Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class SyncRun(Base):
    """One execution of one flow; its ``load_id`` stamps every row the run writes anywhere in the hub."""

    __tablename__ = "sync_run"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    dag_id: Mapped[str | None] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(String(250))
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | success | failed
    records_read: Mapped[int] = mapped_column(Integer, default=0)
    records_delivered: Mapped[int] = mapped_column(Integer, default=0)
    records_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    records_dead_lettered: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]

    __table_args__ = (Index("ix_sync_run_flow_started", "flow", "started_at"),)


class AuditEvent(Base):
    """One attempt to read or write one record (or one page, for bulk reads) in one system."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64), index=True)
    system: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))  # read | write | delete | rollback | purge
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | unchanged | refused | error | dead_lettered
    request: Mapped[dict[str, Any] | None]
    response: Mapped[dict[str, Any] | None]
    changes: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    #: The Airflow task (and the part of it: a batch, a page) whose attempt wrote the row; None outside a task.
    #: A retry replaces the rows of the parts it redoes, so a record's write is in the trail once per run.
    task: Mapped[str | None] = mapped_column(String(128))
    part: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_event_key", "system", "entity", "record_key"),
                      Index("ix_audit_event_task", "load_id", "task"))


class DeadLetter(Base):
    """A record that could not be delivered, with why, kept until someone replays or discards it.

    Only one *open* dead letter exists per (flow, entity, key, target, reason kind, expectation): a re-run of the
    same failing window bumps ``attempts`` instead of piling up duplicates.
    """

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64), index=True)
    flow: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    source_system: Mapped[str] = mapped_column(String(32))
    target_system: Mapped[str] = mapped_column(String(32))
    reason_kind: Mapped[str] = mapped_column(String(16))  # gate | ownership | api | transform | duplicate | channel
    gate_layer: Mapped[int | None] = mapped_column(Integer)
    expectation: Mapped[str] = mapped_column(String(128), default="")
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | replayed | discarded
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index(
            "uq_dead_letter_open",
            "flow",
            "entity",
            "record_key",
            "target_system",
            "reason_kind",
            "expectation",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_dead_letter_status_system", "status", "target_system"),
    )


class SyncState(Base):
    """The committed cursor of one (system, stream): moved only after the data behind it passed its gates."""

    __tablename__ = "sync_state"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor_field: Mapped[str] = mapped_column(String(64))
    cursor_value: Mapped[str | None] = mapped_column(String(64))
    load_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FieldDelta(Base):
    """Before and after of one field of one record, as changed by one run: what a rollback replays backwards."""

    __tablename__ = "field_delta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64))
    system: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(128))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
    rolled_back_by: Mapped[str | None] = mapped_column(String(64))
    #: The system whose value the write carried (``erp``, ``supplier``, ``dam``...): who set ``after``. None on
    #: rows written before it was recorded, and for writes that carry no one system's value (a rollback).
    source_system: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("load_id", "system", "entity", "record_key", "field", name="uq_field_delta_key"),
        Index("ix_field_delta_record", "system", "entity", "record_key"),
    )


class RecordFingerprint(Base):
    """Hash of the last payload delivered for a record to a target: lets a run skip what did not change."""

    __tablename__ = "record_fingerprint"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    load_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DqResult(Base):
    """What one quality gate saw in one run."""

    __tablename__ = "dq_result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64))
    gate: Mapped[str] = mapped_column(String(128))
    layer: Mapped[int] = mapped_column(Integer)
    entity: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))  # hard | soft
    rows_checked: Mapped[int] = mapped_column(Integer)
    rows_passed: Mapped[int] = mapped_column(Integer)
    rows_quarantined: Mapped[int] = mapped_column(Integer)
    success: Mapped[bool]
    failing_expectations: Mapped[dict[str, Any] | None]  # expectation -> {count, reason, critical}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("load_id", "gate", name="uq_dq_result_run_gate"),)


class DqKpi(Base):
    """One data-quality KPI value (completeness, accuracy, timeliness, first-time pass rate) for one run."""

    __tablename__ = "dq_kpi"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kpi: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)


class Diagnosis(Base):
    """Seasonal-republish triage of one SKU in one run: which link of the chain broke and what was done."""

    __tablename__ = "diagnosis"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(255), index=True)
    broken_link: Mapped[str | None] = mapped_column(String(64))  # None: nothing broken
    findings: Mapped[list[Any]]
    actions: Mapped[list[Any]]
    dry_run: Mapped[bool]
    #: The launch runbook of this SKU (``flows.republish.runbook``): each link of the chain with what was wrong,
    #: what was changed by which repair, what holds now, and what is left to do by hand. None on older rows.
    runbook: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("load_id", "sku", name="uq_diagnosis_run_sku"),)


class Drift(Base):
    """One attribute of one record that differs from its owner system's value, found by reconciliation."""

    __tablename__ = "drift"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64))
    system: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    attribute: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # drift | missing | deleted | orphan
    owner_system: Mapped[str] = mapped_column(String(32))
    owner_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    observed_value: Mapped[Any] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        UniqueConstraint("load_id", "system", "entity", "record_key", "attribute", name="uq_drift_key"),
    )


class StagedRecord(Base):
    """Records handed from one task to the next within a run (by reference, never through XCom)."""

    __tablename__ = "staged_record"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    payload: Mapped[dict[str, Any]]


class RunCounter(Base):
    """One counter of one hop of a run (e.g. ``erp->pim`` / ``delivered``), incremented atomically.

    A SKU crosses several hops in one run (ERP -> PIM, PIM -> storefront, images); the no-loss invariant
    ``read == delivered + unchanged + dead_lettered`` must hold for each hop on its own.
    """

    __tablename__ = "run_counter"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hop: Mapped[str] = mapped_column(String(64), primary_key=True)
    counter: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class TaskCounter(Base):
    """One counter of one hop as one part of one task of a run left it (``part`` "" is the task's own work
    outside any checkpointed part).

    A retry (or a cleared task) first drops the rows of every part it has not committed (``TaskCheckpoint``), then
    counts those parts again: counts are replaced, never added to. The run's totals are the sum over its tasks.
    """

    __tablename__ = "task_counter"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(128), primary_key=True)
    part: Mapped[str] = mapped_column(String(64), primary_key=True)
    hop: Mapped[str] = mapped_column(String(64), primary_key=True)
    counter: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class TaskCheckpoint(Base):
    """A part of a task of a run (a batch written, ``part`` "" for the whole task) whose effects are committed.

    A retry skips what is here: a committed batch is not written again, and a task committed whole returns its
    recorded ``result`` without doing anything (so clearing a finished task in the Airflow UI changes nothing).
    """

    __tablename__ = "task_checkpoint"

    load_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(128), primary_key=True)
    part: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    committed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExternalId(Base):
    """Where a record lives in a system that assigns its own ids (Shopify product, variant, inventory item)."""

    __tablename__ = "external_id"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255))
    extra: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertState(Base):
    """When an alert was last sent, so a repeat inside the suppression window is counted instead of sent again.

    ``alert_key`` names what the alert is about (``dead_letters_open``, ``soft_gate:products.l1``,
    ``unreachable:erp``...), not the run: the same condition seen by the next run is a repeat.
    """

    __tablename__ = "alert_state"

    alert_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_sent_at: Mapped[datetime]
    last_subject: Mapped[str] = mapped_column(Text)
    last_facts: Mapped[dict[str, Any] | None]
    sent: Mapped[int] = mapped_column(Integer, default=1)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    last_suppressed_at: Mapped[datetime | None]


class FieldHold(Base):
    """A field of a record held out of every flow's writes because it flipped in a write-back loop.

    Written by ``catalog_sync.governance.loops`` when the field's values in ``field_delta`` kept going back to
    earlier ones, more often than ``alerts.write_loops.flips`` within the window (thresholds.yaml). While a hold
    is open (``released_at`` None), every write of that field is skipped (``flows.steps.check_ownership``); it is
    released when an operator replays or discards its dead letter (``repo.resolve_dead_letters``). ``history``
    is the flip sequence the detector saw, oldest first, each step ``{at, by, from, to}``.
    """

    __tablename__ = "field_hold"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(128))
    flips: Mapped[int] = mapped_column(Integer)
    history: Mapped[list[Any]]
    load_id: Mapped[str] = mapped_column(String(64))
    dead_letter_id: Mapped[int | None] = mapped_column(Integer)
    held_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index(
            "uq_field_hold_open",
            "system",
            "entity",
            "record_key",
            "field",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        Index("ix_field_hold_load_id", "load_id"),
    )


class ReferenceValue(Base):
    """One applied entry of a reference table the gates and transforms check values against.

    ``table_name`` is ``unit`` (ERP-owned: ``attributes`` holds ``kind`` and ``aliases``), ``country`` (ERP-owned:
    ``alpha3`` and ``names``) or ``category`` (PIM-owned: ``parent`` and ``labels``). Rows change only when a
    :class:`ReferenceProposal` is approved (``catalog_sync.refdata.decide``); the seed rows (``proposal_id`` None)
    are what the gates accepted before reference data lived in the hub.
    """

    __tablename__ = "reference_value"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]]
    owner_system: Mapped[str] = mapped_column(String(32))
    proposal_id: Mapped[int | None] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("table_name", "code", name="uq_reference_value_table_code"),)


class ReferenceProposal(Base):
    """A weekly refresh's proposed change to the reference tables, waiting for (or given) a human decision.

    ``diff`` is ``{table_name: {"added": [{code, attributes}], "removed": [{code, attributes}],
    "changed": [{code, before, after}]}}`` against the applied rows at proposal time. ``status``: ``proposed``,
    ``approved`` (applied), ``rejected`` (by a person, or ``decided_by`` None when nobody answered in time) or
    ``superseded`` (a later refresh proposed again before anyone decided).
    """

    __tablename__ = "reference_proposal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    load_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    diff: Mapped[dict[str, Any]]
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_reference_proposal_status", "status", "id"),)


class HeldChange(Base):
    """A structural or bulk change a flow held during a declared freeze window instead of applying it
    (``catalog_sync.governance.freeze``), kept until a person releases it (``freeze_release``).

    ``kind``: ``category_move`` (a storefront product's categories), ``deletion`` (a SKU the ERP deleted, to disable
    in the PIM or archive on the storefront), ``taxonomy`` (an approved change of the category reference table) or
    ``bulk_content`` (a product's content in a nightly that changed more than the bulk share of the catalog).
    ``change`` holds what the applying code needs later (and what a reviewer reads: before and after). ``status``:
    ``held``, ``released`` (applied after an approval), ``dead_lettered`` (the release tried and the target refused;
    the dead letter carries it on) or ``superseded``. One held row per (kind, system, entity, key): a later hold of
    the same record replaces its change.
    """

    __tablename__ = "held_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    change: Mapped[dict[str, Any]]
    window: Mapped[str] = mapped_column(String(128))
    load_id: Mapped[str] = mapped_column(String(64))
    held_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="held")
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(128))
    release_load_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("uq_held_change_held", "kind", "system", "entity", "record_key", unique=True,
              sqlite_where=text("status = 'held'"), postgresql_where=text("status = 'held'")),
        Index("ix_held_change_status", "status", "id"),
    )
