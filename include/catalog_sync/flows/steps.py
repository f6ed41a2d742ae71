"""Steps every flow shares: gating a batch, checking ownership, writing with per-record isolation.

Each helper takes the run's ``RunContext`` and a hop name, and keeps that hop's counters honest: every record it is
given ends as delivered, unchanged or dead-lettered, never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final, TypeVar

from catalog_sync.connectors import ConnectorError, Outcome, RecordError, WriteResult
from catalog_sync.engine.run import RunContext, json_safe
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import ExternalId, utcnow

log = logging.getLogger(__name__)

#: Connector calls in flight at once for per-record reads and writes (each client also caps its own concurrency).
PARALLEL: Final = 4
_T = TypeVar("_T")
_R = TypeVar("_R")


def parallel(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[fn(i) for i in items]`` with up to ``PARALLEL`` calls in flight; the first exception is raised.

    Only for calls that touch none of the run's own state (connector calls: the clients are thread-safe and pace
    themselves); what each result means for the run is recorded afterwards, in the calling thread.
    """
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(items))) as pool:
        return list(pool.map(fn, items))


def run_load_id(flow: str, run_id: str | None) -> str:
    """A load id that is the same for every try of one Airflow run (so a retried task re-attaches)."""
    if not run_id:
        return repo.new_load_id(flow)
    safe = re.sub(r"[^A-Za-z0-9_.:+-]", "_", run_id)
    load_id = f"{flow}:{safe}"
    if len(load_id) <= 64:
        return load_id
    # Too long for the column: keep a readable prefix and a digest of the whole run id, so it stays unique.
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{load_id[:51]}~{digest}"


def batch_load_id(base: str, after: int) -> str:
    """The load id of one batch of a run that works in batches: ``base`` plus the cursor the batch starts from.

    A retried task that starts from the same cursor re-opens the same batch; later batches get their own ids.
    """
    suffix = f"@{after}"
    if len(base) + len(suffix) <= 64:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:12]
    return f"{base[: 64 - len(suffix) - 13]}~{digest}{suffix}"


def gate(
    ctx: RunContext,
    records: Sequence[Mapping[str, Any]],
    gate_name: str,
    *,
    layer: int,
    entity: str,
    hop: str | None,
    source_system: str,
    target_system: str,
    key: str = "sku",
    now: datetime | None = None,
    failures: dict[str, list[str]] | None = None,
    **inputs: Any,
) -> list[dict[str, Any]]:
    """Validate ``records`` through one GX gate; quarantined rows become dead letters, passing rows are returned.

    A hard gate that breaches its threshold raises ``GateFailed`` after its results, dead letters and validation
    (for the Data Docs) were saved and the run was failed with the gate's own account (its name, failing share and
    top failing expectations), so the task fails with the evidence in the hub. ``hop=None`` marks a post-delivery check whose findings do
    not count against the hop's records. ``failures``, when given, receives each quarantined record's key with
    the names of the expectations it broke, for a caller whose decision depends on which rule failed.

    The records are one batch; a delta too big to hold goes through :class:`BatchedGate` instead.
    """
    batched = BatchedGate(ctx, gate_name, layer=layer, entity=entity, hop=hop, source_system=source_system,
                          target_system=target_system, key=key, now=now, **inputs)
    passed = batched.check(records, failures=failures)
    batched.close()
    return passed


class BatchedGate:
    """One gate over a delta given in batches (``quality.batching`` plans them so that every group of rows a
    cross-row check compares is in one batch): each batch is validated by GX, its quarantined rows become dead
    letters and its validation result is saved for the Data Docs as it is checked; :meth:`close` writes the gate's
    ``dq_result`` row with the totals and applies the gate's policy to the whole delta's failure share (a hard gate
    breached fails the run and raises ``GateFailed`` there, after the evidence is saved).

    ``columns`` (the delta's columns, ``BatchPlan.columns``) gives every batch's frame every column the whole
    frame would have had.
    """

    def __init__(self, ctx: RunContext, gate_name: str, *, layer: int, entity: str, hop: str | None,
                 source_system: str, target_system: str, key: str = "sku", now: datetime | None = None,
                 columns: Sequence[str] | None = None, **inputs: Any) -> None:
        from catalog_sync.quality.gate import GateTotals

        self.ctx, self.gate_name, self.layer, self.entity, self.hop = ctx, gate_name, layer, entity, hop
        self.source_system, self.target_system, self.key, self.now = source_system, target_system, key, now
        self.columns = list(columns) if columns is not None else None
        self.inputs = inputs
        self.totals = GateTotals(gate_name)
        self.validations = 0

    def check(self, records: Sequence[Mapping[str, Any]], *,
              failures: dict[str, list[str]] | None = None, **inputs: Any) -> list[dict[str, Any]]:
        """Validate one batch; returns its passing records (``failures`` as :func:`gate`). ``inputs`` replace the
        gate's inputs for this batch only (what a batch is judged against may be read per batch, such as the SKUs
        the catalogue knows of the batch's assets)."""
        import pandas as pd

        from catalog_sync.quality.docs import save_validation
        from catalog_sync.quality.gate import run_gate

        frame = pd.DataFrame([json_safe(dict(r)) for r in records])
        if self.columns is not None and len(frame):
            frame = frame.reindex(columns=self.columns)
        result = run_gate(frame, self.gate_name, layer=self.layer, entity=self.entity, key=self.key, now=self.now,
                          enforce=False, **{**self.inputs, **inputs})
        self.totals.add(result)
        _persist(self.ctx, result, self.source_system, self.target_system, self.hop, self.key)
        if result.validation is not None:
            self.validations += 1
            save_validation(self.ctx.load_id, result, part=self.validations)
        if failures is not None and result.rows_quarantined:
            for row_key, names in zip(result.failed[self.key].astype(str), result.failed["dq_expectations"],
                                      strict=True):
                failures.setdefault(row_key, []).extend(names)
        if result.rows_quarantined == 0:
            return [dict(r) for r in records]
        passed = set(result.passed[self.key].astype(str)) if len(result.passed) else set()
        return [dict(r) for r in records if str(r.get(self.key)) in passed]

    def close(self) -> Any:
        """Write the gate's totals; a hard gate breached over the whole delta fails the run and raises
        ``GateFailed``. Returns the totals (a ``GateResult`` without rows)."""
        from catalog_sync.quality.gate import GateFailed
        from catalog_sync.quality.persist import persist_dq_row

        if not self.totals.batches:
            self.check([])
        result = self.totals.result()
        with session_scope(self.ctx.hub_url) as s:
            persist_dq_row(s, self.ctx.load_id, result)
        if result.breached and result.severity == "hard":
            failed = GateFailed(result)
            # The run fails here, once, with the gate's own account; the DAG's failure callback keeps it.
            self.ctx.fail(str(failed))
            raise failed
        return result


def _persist(ctx: RunContext, result: Any, source: str, target: str, hop: str | None, key: str) -> None:
    from catalog_sync.quality.persist import persist_dead_letters

    with session_scope(ctx.hub_url) as s:
        persist_dead_letters(s, ctx.load_id, result, ctx.flow, source, target)
    if hop is not None and result.rows_quarantined:
        ctx.count(hop, dead_lettered=int(result.failed[key].astype(str).nunique()))


def check_ownership(
    ctx: RunContext,
    records: Iterable[Mapping[str, Any]],
    *,
    writer: str,
    target: str,
    hop: str,
    entity: str = "product",
    key: str = "sku",
) -> list[dict[str, Any]]:
    """Keep only the attributes ``writer`` may write into ``target``; refused attributes are dead-lettered.

    A record with a refused attribute is still delivered with its allowed attributes (the refusal is about one
    field, not the record) and is counted once; the refusal stays visible in the dead-letter queue. A field held
    in a write-back loop (``governance.loops``) is left out the same way, audited, without a new letter: its
    hold already has one.
    """
    from catalog_sync.governance import load_ownership, refusals_to_dead_letters
    from catalog_sync.governance.loops import drop_held

    ownership = load_ownership()
    allowed: list[dict[str, Any]] = []
    refusals: list[Any] = []
    for record in records:
        check = ownership.check_write(writer, target, dict(record), entity)
        refusals.extend(check.refused)
        allowed.append({key: record.get(key), **check.allowed})
    if refusals:
        letters = refusals_to_dead_letters(refusals, ctx.load_id, ctx.flow, entity, target)
        for letter in letters:
            letter["source_system"] = writer
        ctx.dead_letter(letters, hop=None)
    return drop_held(ctx, allowed, target=target, entity=entity, key=key)


def fixed(values: Mapping[str, Any]) -> Callable[[WriteResult], Mapping[str, Any]]:
    """``fields_of`` for a write whose changed fields are the same whatever the result."""
    return lambda _result: values


def by_key(values: Mapping[str, Mapping[str, Any]]) -> Callable[[WriteResult], Mapping[str, Any]]:
    """``fields_of`` looking each result's fields up by its record key."""
    return lambda result: values.get(result.key, {})


def deliver(
    ctx: RunContext,
    results: Sequence[WriteResult],
    *,
    hop: str,
    system: str,
    entity: str,
    source_system: str,
    before: Mapping[str, Mapping[str, Any]] | None = None,
    fields_of: Callable[[WriteResult], Mapping[str, Any]] | None = None,
) -> dict[str, int]:
    """Account for per-record write results: audit every one, dead-letter failures, log deltas of changes."""
    counts = {"delivered": 0, "unchanged": 0, "dead_lettered": 0}
    letters = []
    for r in results:
        if r.outcome is Outcome.FAILED:
            counts["dead_lettered"] += 1
            letters.append({
                "entity": entity, "record_key": r.key, "source_system": source_system, "target_system": system,
                "reason_kind": "api", "expectation": f"http_{r.status}" if r.status else "no_answer",
                "reason": r.message or "write refused", "payload": r.sent,
            })
            ctx.audit(system, entity, r.key, "write", "dead_lettered", request=r.sent,
                      response={"status": r.status, "message": r.message})
            continue
        changes = None
        if r.outcome is Outcome.OK and fields_of is not None:
            changes = ctx.record_deltas(system, entity, r.key, dict((before or {}).get(r.key, {})),
                                        dict(fields_of(r)), source=source_system)
        counts["delivered" if r.outcome is Outcome.OK else "unchanged"] += 1
        ctx.audit(system, entity, r.key, "write", r.outcome.value, request=r.sent,
                  response={"status": r.status, "message": r.message}, changes=changes)
    if letters:
        ctx.dead_letter(letters, hop=None)  # counted below with the others
    ctx.count(hop, **counts)
    ctx.flush_audit()
    return counts


def dead_letter_read_errors(
    ctx: RunContext, errors: Sequence[RecordError], *, hop: str, entity: str, source: str, target: str
) -> int:
    """Malformed records a connector could not parse: each is dead-lettered with the connector's reason.

    Each one is a record read, so each counts as dead-lettered on the hop, even when two share a key (two
    garbled changes of one SKU are one open letter in the queue but two records in the run's accounting).
    """
    if not errors:
        return 0
    ctx.count(hop, read=len(errors))
    ctx.dead_letter([
        {"entity": entity, "record_key": e.record_key, "source_system": source, "target_system": target,
         "reason_kind": "api", "gate_layer": 0, "expectation": "record_schema", "reason": e.reason,
         "payload": e.record if isinstance(e.record, dict) else {"raw": str(e.record)}}
        for e in errors
    ], hop=None)
    ctx.count(hop, dead_lettered=len(errors))
    return len(errors)


def failed_batch(ctx: RunContext, keys: Sequence[str], error: ConnectorError, *, hop: str, entity: str,
                 source: str, target: str, payloads: Mapping[str, Any] | None = None) -> None:
    """A whole write batch that failed with a record-level error: dead-letter each record of it."""
    ctx.dead_letter([
        {"entity": entity, "record_key": k, "source_system": source, "target_system": target, "reason_kind": "api",
         "expectation": f"http_{error.status}" if error.status else "no_answer", "reason": str(error),
         "payload": (payloads or {}).get(k)}
        for k in keys
    ], hop=hop)


def save_external_ids(system: str, entity: str, ids: Mapping[str, tuple[str, dict[str, Any] | None]],
                      hub_url: str | None = None) -> None:
    rows = [
        {"system": system, "entity": entity, "record_key": k, "external_id": ext, "extra": extra,
         "updated_at": utcnow()}
        for k, (ext, extra) in ids.items()
    ]
    with session_scope(hub_url) as s:
        repo.upsert(s, ExternalId.__table__, rows, key=["system", "entity", "record_key"])  # type: ignore[arg-type]


def external_ids(system: str, entity: str, keys: Iterable[str] | None = None,
                 hub_url: str | None = None) -> dict[str, tuple[str, dict[str, Any] | None]]:
    from sqlalchemy import select

    query = select(ExternalId.record_key, ExternalId.external_id, ExternalId.extra).where(
        ExternalId.system == system, ExternalId.entity == entity
    )
    wanted = list(keys) if keys is not None else None
    out: dict[str, tuple[str, dict[str, Any] | None]] = {}
    with session_scope(hub_url) as s:
        if wanted is None:
            rows = s.execute(query).all()
        else:
            rows = []
            for start in range(0, len(wanted), 500):
                rows.extend(s.execute(query.where(ExternalId.record_key.in_(wanted[start:start + 500]))).all())
    for key, ext, extra in rows:
        out[key] = (ext, extra)
    return out


#: Why a page was not purged in a deployment without a CDN connection.
NO_CDN: Final = ("skipped: no CDN is configured (Airflow connection catalog_sync_cdn), so no cached copy was "
                 "purged; a CDN in front of the shop serves its copy until the copy's TTL runs out")


def purge_pages(ctx: RunContext, systems: Systems, pages: Mapping[str, str], *,
                hop: str | None) -> dict[str, tuple[str, str]]:
    """Purge the CDN's cached copy of each page, ``{record key: storefront handle}``, after its product changed.

    Every page gets an audit row under its record key (system ``cdn``, action ``purge``): ``ok`` with the purge
    id, ``error`` with the CDN's answer, or ``skipped`` when no CDN is configured. With a ``hop``, the pages are
    read on it and each ends delivered (purged), unchanged (skipped) or dead-lettered (the purge failed: the page
    stays stale until its TTL runs out or a seasonal republish purges it). Returns ``{record key: (outcome,
    detail)}`` with outcome ``purged``, ``skipped`` or ``failed``.
    """
    if not pages:
        return {}
    if hop is not None:
        ctx.count(hop, read=len(pages))
    out: dict[str, tuple[str, str]] = {}
    if systems.cdn is None:
        for key, handle in sorted(pages.items()):
            ctx.audit("cdn", "page", key, "purge", "skipped", request={"handle": handle}, response={"message": NO_CDN})
            out[key] = ("skipped", NO_CDN)
        if hop is not None:
            ctx.count(hop, unchanged=len(pages))
        ctx.flush_audit()
        return out
    cdn = systems.cdn
    handles = sorted(set(pages.values()))
    purged: dict[str, str] = {}
    error: ConnectorError | None = None
    try:
        purged = cdn.purge_pages(handles)
    except ConnectorError as exc:  # recorded page by page below; the products themselves were written
        error = exc
        done = dict(exc.partial_results)
        purged = {h: done[cdn.surrogate_key(h)] for h in handles if cdn.surrogate_key(h) in done}
    letters = []
    for key, handle in sorted(pages.items()):
        request = {"handle": handle, "surrogate_key": cdn.surrogate_key(handle)}
        if handle in purged:
            ctx.audit("cdn", "page", key, "purge", "ok", request=request, response={"purge_id": purged[handle]})
            out[key] = ("purged", f"purge {purged[handle]}")
            continue
        assert error is not None
        ctx.audit("cdn", "page", key, "purge", "error", request=request,
                  response={"status": error.status, "message": str(error)})
        out[key] = ("failed", str(error))
        letters.append({"entity": "page", "record_key": key, "source_system": "storefront", "target_system": "cdn",
                        "reason_kind": "api", "expectation": f"http_{error.status}" if error.status else "no_answer",
                        "reason": f"the cached page was not purged, so shoppers see the old one: {error}",
                        "payload": request})
    if hop is not None:
        ctx.count(hop, delivered=len(pages) - len(letters))
        if letters:
            ctx.dead_letter(letters, hop=hop)
    if error is not None:
        log.warning("%s: %d page purge(s) failed: %s", ctx.load_id, len(pages) - sum(
            1 for o, _ in out.values() if o == "purged"), error)
    ctx.flush_audit()
    return out
