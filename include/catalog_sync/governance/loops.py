"""Write-back loops: one field of one record whose value keeps going back and forth between writers.

A loop looks like this in the delta log (``field_delta``): the supplier portal's nightly resubmission writes a
product name into the PIM, a merchandiser puts their own name back in the PIM, the next night the supplier's comes
back... Each writer is right by its own rules, and left alone they flip the field forever (and every flip is
published to the shop). Nothing in one run looks wrong; only the field's history across runs shows it.

The detector reads that history. For each watched field (``alerts.write_loops.watch`` in thresholds.yaml) it
replays the values in order: every write Catalog Sync made (``before`` -> ``after``, by the system whose value it
carried, ``source_system``), and every change made outside Catalog Sync in between (a write whose ``before`` is not
what the previous write left: a person or another tool changed the field meanwhile). A *flip* is a change that
puts back a value the field already held in the window; more than ``flips`` flips within ``window_minutes`` is a
loop. The window ends at the moment the detector runs: a flip is a write that happened, not data of an interval.

A field found in a loop is *held*: a ``field_hold`` row, a dead letter (reason kind ``loop``) whose reason tells
the flips in words and whose payload carries them, and an audit row. While the hold is open every flow leaves the
field out of its writes (``flows.steps.check_ownership``, the pre-write filter every flow shares) and audits the
skip; the rest of the record goes on. One alert goes out for the hold (``alerting.run_alerts``). An operator
releases the hold by replaying or discarding its dead letter (``repo.resolve_dead_letters``); the history before
the release no longer counts, so a released field is not held again by the same flips.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, and_, func, or_, select, tuple_

from catalog_sync.engine.run import RunContext, chunked
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, FieldDelta, FieldHold, SyncRun, utcnow
from catalog_sync.quality.policy import AlertRules, load_alert_rules

#: Who a writer is, in the words of a dead letter.
WRITERS: Final[dict[str, str]] = {"erp": "the ERP", "pim": "the PIM", "dam": "the DAM", "supplier": "the supplier portal",
                                  "storefront": "the storefront"}
#: The author of a change Catalog Sync did not make, found because the next write's before-value differed.
OUTSIDE: Final = "outside"


def _value(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _when(ts: Any) -> str:
    if isinstance(ts, datetime):
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(ts)


def history(deltas: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The field's changes, oldest first, and how many of them were flips.

    ``deltas`` are its ``field_delta`` rows in the order they were applied, each with ``applied_at``, ``before``,
    ``after`` and ``by`` (the writer). Returns steps ``{at, by, from, to, flip}``; a change made outside Catalog
    Sync has ``by`` ``"outside"`` and ``at`` the instant it was found (it happened before).
    """
    steps: list[dict[str, Any]] = []
    held: list[Any] = []
    current: Any = None
    flips = 0

    def change(at: Any, by: str, old: Any, new: Any) -> None:
        nonlocal current, flips
        flip = new in held
        flips += int(flip)
        steps.append({"at": _when(at), "by": by, "from": old, "to": new, "flip": flip})
        if not flip:
            held.append(new)
        current = new

    for i, d in enumerate(deltas):
        if i == 0:
            held.append(d["before"])
        elif d["before"] != current:
            change(d["applied_at"], OUTSIDE, current, d["before"])
        change(d["applied_at"], str(d["by"]), d["before"], d["after"])
    return steps, flips


def describe(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each step of a history as a sentence."""
    out = []
    for s in steps:
        again = " (back to an earlier value)" if s["flip"] else ""
        if s["by"] == OUTSIDE:
            out.append(f"before {s['at']}: changed outside Catalog Sync (by a person or another tool) from "
                       f"{_value(s['from'])} to {_value(s['to'])}{again}")
        else:
            writer = WRITERS.get(s["by"], s["by"])
            out.append(f"{s['at']}: Catalog Sync wrote {writer}'s value {_value(s['to'])} over {_value(s['from'])}"
                       f"{again}")
    return out


def _reason(system: str, entity: str, key: str, field: str, flips: int, rules: AlertRules,
            steps: Sequence[Mapping[str, Any]]) -> str:
    hours = rules.loop_window_minutes / 60
    writers = sorted({WRITERS.get(s["by"], s["by"]) if s["by"] != OUTSIDE else "changes made outside Catalog Sync"
                      for s in steps})
    return (f"Write-back loop: {field} of {entity} {key} in the {system} flipped {flips} times within {hours:g} h "
            f"(more than {rules.loop_flips} is a loop) between {', '.join(writers)}. No flow writes this field "
            "until the writers agree on one value and this letter is replayed or discarded. History: "
            + "; ".join(describe(steps)) + ".")


def detect(ctx: RunContext, *, now: datetime | None = None, rules: AlertRules | None = None) -> list[dict[str, Any]]:
    """Hold every watched field that flipped more than the threshold within the window ending ``now``.

    Fields already held are left alone (they are not written while held). Returns one dict per new hold:
    ``{system, entity, record_key, field, flips, history, dead_letter_id}``.
    """
    rules = rules or load_alert_rules()
    now = now or utcnow()
    start = now - timedelta(minutes=rules.loop_window_minutes)
    # Every flip needs a change, and each delta row accounts for at most two (an outside change, then the write).
    least = (rules.loop_flips + 2 + 1) // 2
    watched = [and_(FieldDelta.system == system, FieldDelta.entity == entity) for system, entity in rules.loop_watch]
    if not watched:
        return []
    key_cols = (FieldDelta.system, FieldDelta.entity, FieldDelta.record_key, FieldDelta.field)
    with session_scope(ctx.hub_url) as s:
        candidates = s.execute(
            select(*key_cols).where(FieldDelta.applied_at >= start, FieldDelta.applied_at <= now, or_(*watched))
            .group_by(*key_cols).having(func.count() >= least)).all()
        if not candidates:
            return []
        holds = s.execute(select(FieldHold.system, FieldHold.entity, FieldHold.record_key, FieldHold.field,
                                 FieldHold.released_at)).all()
        released: dict[tuple[str, str, str, str], datetime] = {}
        still_held: set[tuple[str, str, str, str]] = set()
        for system, entity, key, field, at in holds:
            if at is None:
                still_held.add((system, entity, key, field))
            else:
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                released[(system, entity, key, field)] = max(at, released.get((system, entity, key, field), at))
        wanted = [tuple(c) for c in candidates if tuple(c) not in still_held]
        looping: list[tuple[tuple[str, str, str, str], list[dict[str, Any]], int]] = []
        for batch in chunked(wanted, 200):
            # a field's deltas are all in its batch: each batch's fields are judged before the next is read
            rows: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
            found = s.execute(
                select(*key_cols, FieldDelta.applied_at, FieldDelta.before, FieldDelta.after,
                       FieldDelta.source_system, SyncRun.flow)
                .join(SyncRun, SyncRun.load_id == FieldDelta.load_id, isouter=True)
                .where(tuple_(*key_cols).in_(list(batch)), FieldDelta.applied_at >= start,
                       FieldDelta.applied_at <= now)
                .order_by(FieldDelta.applied_at, FieldDelta.id)).all()
            for system, entity, key, field, applied_at, before, after, source, flow in found:
                applied_at = applied_at if applied_at.tzinfo else applied_at.replace(tzinfo=UTC)
                since = released.get((system, entity, key, field))
                if since is not None and applied_at <= since:
                    continue  # flips before a release were the operator's to judge, and were judged
                rows[(system, entity, key, field)].append({"applied_at": applied_at, "before": before,
                                                           "after": after, "by": source or flow or "catalog_sync"})
            for ident, deltas in rows.items():
                steps, flips = history(deltas)
                if flips > rules.loop_flips:
                    looping.append((ident, steps, flips))
    new: list[dict[str, Any]] = []
    for (system, entity, key, field), steps, flips in sorted(looping, key=lambda held: held[0]):
        new.append(_hold(ctx, system, entity, key, field, flips, steps, rules))
    ctx.flush_audit()
    return new


def _hold(ctx: RunContext, system: str, entity: str, key: str, field: str, flips: int,
          steps: list[dict[str, Any]], rules: AlertRules) -> dict[str, Any]:
    writer = next((s["by"] for s in reversed(steps) if s["by"] != OUTSIDE), "catalog_sync")
    expectation = f"write_loop:{field}"[:128]
    payload = {"field": field, "flips": flips, "threshold": rules.loop_flips,
               "window_minutes": rules.loop_window_minutes, "history": steps}
    ctx.dead_letter([{"entity": entity, "record_key": key, "source_system": writer, "target_system": system,
                      "reason_kind": "loop", "expectation": expectation,
                      "reason": _reason(system, entity, key, field, flips, rules, steps), "payload": payload}],
                    hop=None)  # a finding about a record its own hop already accounted for
    with session_scope(ctx.hub_url) as s:
        letter_id = s.scalar(select(DeadLetter.id).where(
            DeadLetter.status == "open", DeadLetter.flow == ctx.flow, DeadLetter.entity == entity,
            DeadLetter.record_key == key, DeadLetter.target_system == system, DeadLetter.reason_kind == "loop",
            DeadLetter.expectation == expectation))
        repo.upsert(s, cast(Table, FieldHold.__table__),
                    [{"system": system, "entity": entity, "record_key": key, "field": field, "flips": flips,
                      "history": steps, "load_id": ctx.load_id, "dead_letter_id": letter_id, "held_at": utcnow(),
                      "released_at": None, "released_by": None}],
                    key=["system", "entity", "record_key", "field"], update_cols=[],
                    index_where=FieldHold.__table__.c.released_at.is_(None))
    ctx.audit(system, entity, key, "hold", "refused", changes={field: {"flips": flips}},
              response={"message": f"{field} held: write-back loop ({flips} flips), dead letter {letter_id}"})
    return {"system": system, "entity": entity, "record_key": key, "field": field, "flips": flips,
            "history": steps, "dead_letter_id": letter_id}


def held_fields(system: str, entity: str, hub_url: str | None = None) -> dict[str, dict[str, int | None]]:
    """``{record key: {field: dead letter id}}`` of the fields of ``entity`` in ``system`` held now."""
    out: dict[str, dict[str, int | None]] = defaultdict(dict)
    with session_scope(hub_url) as s:
        for key, field, letter in s.execute(select(FieldHold.record_key, FieldHold.field, FieldHold.dead_letter_id)
                                            .where(FieldHold.system == system, FieldHold.entity == entity,
                                                   FieldHold.released_at.is_(None))):
            out[key][field] = letter
    return dict(out)


def drop_held(ctx: RunContext, records: Iterable[dict[str, Any]], *, target: str, entity: str,
              key: str = "sku") -> list[dict[str, Any]]:
    """``records`` without the fields held in ``target``; each skipped field gets an audit row naming its letter."""
    records = list(records)
    held = held_fields(target, entity, ctx.hub_url)
    if not held:
        return records
    out = []
    for record in records:
        mine = held.get(str(record.get(key)))
        if mine:
            skipped = sorted(f for f in mine if f in record)
            for field in skipped:
                ctx.audit(target, entity, str(record.get(key)), "write", "refused", request={field: record[field]},
                          response={"message": f"{field} is held in a write-back loop (dead letter "
                                               f"{mine[field]}); not written until an operator releases it"})
            record = {k: v for k, v in record.items() if k not in mine}
        out.append(record)
    ctx.flush_audit()
    return out


__all__ = ["describe", "detect", "drop_held", "held_fields", "history"]
