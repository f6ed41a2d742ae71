"""Roll a run back: restore, in every system it touched, the values its per-field delta log says it replaced.

The rollback is itself a run (flow ``sync_rollback``): every restoring write is audited and logged as a delta of
its own, so a rollback can be inspected and, if need be, rolled back too. Three rules keep it safe:

- Ownership is checked again: a restored value is written as the system that owns it (or, for a copy, the
  system that owns the original), so a rollback can never write what a normal run could not.
- A field that a later run changed again is not touched (that would silently undo newer, valid data); it is
  reported as a conflict instead.
- Hot data (stock) is not rolled back: the next ERP change event is the truth for it.

On a declared sales channel (``governance/channels.yaml``) the delta log holds what Catalog Sync changed there on
its own account: the weekly reconciliation's disabling of a SKU the channel should no longer hold (``status``).
That is restored as Magento status; the channel's content is the PIM's, so rolling back the PIM's values and
publishing again is how channel content goes back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, select, update

from catalog_sync.connectors import Outcome, WriteResult
from catalog_sync.connectors.mapping import (
    akeneo_empty_values,
    akeneo_product_to_canonical,
    canonical_to_akeneo_values,
)
from catalog_sync.engine.run import RunContext, chunked, json_safe
from catalog_sync.flows import steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import FieldDelta, SyncRun

FLOW = "sync_rollback"
#: Storefront field names as the delta log records them -> the canonical attribute that owns them.
STOREFRONT_FIELDS = {"status": "lifecycle_status", "title": "name", "images": "asset_links",
                     "body_html": "description", "vendor": "vendor_name"}
#: Attributes whose storefront copy is written by the PIM (cold data travels owner -> PIM -> storefront).
VIA_PIM = frozenset({"name", "asset_links", "description", "vendor_name"})
#: What a rollback restores on a declared sales channel: the only field Catalog Sync changes there outside a
#: publish (the reconciliation's disable, catalog_sync.flows.reconcile._disable_on_channel).
CHANNEL_FIELDS = frozenset({"status"})


def _is_channel(system: str) -> bool:
    from catalog_sync.governance.channels import load_channels

    return system in load_channels().channels


class RollbackRefused(RuntimeError):
    """The run cannot be rolled back (unknown, still running, or already rolled back)."""


def plan(load_id: str, hub_url: str | None = None) -> dict[str, Any]:
    """What a rollback of ``load_id`` would restore, and which fields it must leave alone (conflicts)."""
    with session_scope(hub_url) as s:
        run = s.get(SyncRun, load_id)
        if run is None:
            raise RollbackRefused(f"no run {load_id!r} in the hub")
        if run.status == "running":
            raise RollbackRefused(f"run {load_id!r} is still running")
        deltas = s.scalars(select(FieldDelta).where(FieldDelta.load_id == load_id,
                                                    FieldDelta.rolled_back_by.is_(None))).all()
        restore: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
        conflicts = []
        for d in deltas:
            newer = s.scalar(select(FieldDelta.load_id).where(and_(
                FieldDelta.system == d.system, FieldDelta.entity == d.entity, FieldDelta.record_key == d.record_key,
                FieldDelta.field == d.field, FieldDelta.applied_at > d.applied_at,
                FieldDelta.rolled_back_by.is_(None), FieldDelta.load_id != load_id)).limit(1))
            if newer:
                conflicts.append({"system": d.system, "record_key": d.record_key, "field": d.field,
                                  "changed_again_by": newer})
                continue
            restore[(d.system, d.entity, d.record_key)][d.field] = d.before
    return {"load_id": load_id, "records": [
        {"system": k[0], "entity": k[1], "record_key": k[2], "fields": v} for k, v in sorted(restore.items())
    ], "conflicts": conflicts}


def plan_markdown(todo: dict[str, Any], limit: int = 50) -> str:
    """The plan as the approver reads it (Markdown): counts per system, the first ``limit`` records with the values
    they get back, and every conflict left alone."""
    records, conflicts = todo["records"], todo["conflicts"]
    per_system: dict[str, int] = defaultdict(int)
    for rec in records:
        per_system[rec["system"]] += 1
    lines = [f"**Rollback of run `{todo['load_id']}`**: {_n(len(records), 'record')} to restore, "
             f"{_n(len(conflicts), 'field')} left alone because a later run changed them again.", ""]
    if per_system:
        lines += ["| system | records |", "|---|---|", *(f"| {k} | {v} |" for k, v in sorted(per_system.items())), ""]
    if records:
        lines += ["| system | record | restores |", "|---|---|---|"]
        for rec in records[:limit]:
            fields = ", ".join(f"{f} = {v!r}" for f, v in sorted(rec["fields"].items()))
            lines.append(f"| {rec['system']} | `{rec['record_key']}` | {fields} |")
        if len(records) > limit:
            lines.append(f"| | ... {len(records) - limit} more | `catalog-sync rollback --plan {todo['load_id']}` |")
        lines.append("")
    if conflicts:
        lines += ["Conflicts (not restored):", *(f"- {c['system']} `{c['record_key']}` {c['field']} "
                                                  f"(changed again by `{c['changed_again_by']}`)"
                                                  for c in conflicts[:limit]), ""]
    lines.append("Stock is never rolled back: the next ERP change is its truth.")
    return "\n".join(lines)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def rollback(load_id: str, systems: Systems, *, by: str, dag_id: str | None = None, run_id: str | None = None,
             hub_url: str | None = None) -> dict[str, Any]:
    """Restore the previous values of run ``load_id`` in every system it touched."""
    todo = plan(load_id, hub_url)
    ctx = RunContext.open(FLOW, load_id=steps.run_load_id(FLOW, run_id), dag_id=dag_id, run_id=run_id,
                          hub_url=hub_url)
    ctx.count("rollback", read=len(todo["records"]))
    restored: list[tuple[str, str, str]] = []
    allowed_by_record = []
    for rec in todo["records"]:
        allowed = _allowed_fields(ctx, rec["system"], rec["entity"], rec["record_key"], rec["fields"])
        if allowed:  # else already dead-lettered (ownership) and counted by _allowed_fields
            allowed_by_record.append((rec["system"], rec["entity"], rec["record_key"], allowed))
    pim = [r for r in allowed_by_record if r[0] == "pim"]
    for batch in chunked(pim, systems.pim.batch_size):
        restored += _restore_pim(ctx, systems, batch)
    for system, entity, key, allowed in (r for r in allowed_by_record if r[0] != "pim"):
        before = _current(systems, system, entity, key, allowed)
        result = _write(systems, system, entity, key, allowed)
        steps.deliver(ctx, [result], hop="rollback", system=system, entity=entity, source_system="hub",
                      before={key: before}, fields_of=steps.fixed(allowed))
        if result.outcome is not Outcome.FAILED:
            restored.append((system, entity, key))
    with session_scope(hub_url) as s:
        for system, entity, key in restored:
            s.execute(update(FieldDelta).where(
                FieldDelta.load_id == load_id, FieldDelta.system == system, FieldDelta.entity == entity,
                FieldDelta.record_key == key, FieldDelta.rolled_back_by.is_(None),
            ).values(rolled_back_by=ctx.load_id))
    counts = ctx.finish(details={"rolled_back": load_id, "by": by, "conflicts": todo["conflicts"]})
    return {"load_id": ctx.load_id, "rolled_back": load_id, "records": len(todo["records"]),
            "restored": len(restored), "conflicts": todo["conflicts"], "counts": counts}


def _restore_pim(ctx: RunContext, systems: Systems,
                 batch: Sequence[tuple[str, str, str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """One collection PATCH per kind (products, product models) for up to a batch of records."""
    from catalog_sync.flows.cold import _current_pim

    keys = [key for _s, _e, key, _f in batch]
    products = _current_pim(systems, keys, models=False)
    models = _current_pim(systems, [k for k in keys if k not in products], models=True)
    restored = []
    for kind, current in (("products", products), ("models", models)):
        rows = [(e, key, fields) for _s, e, key, fields in batch if key in current]
        if not rows:
            continue
        if kind == "products":
            results = systems.pim.upsert_products(
                [{"identifier": key, "values": _akeneo_restore_values(f, current[key])} for _e, key, f in rows])
        else:
            results = systems.pim.upsert_product_models(
                [{"code": key, "values": _akeneo_restore_values(f, current[key])} for _e, key, f in rows])
        wanted = {key: fields for _e, key, fields in rows}
        before = {key: {f: json_safe(current[key].get(f)) for f in fields} for key, fields in wanted.items()}
        steps.deliver(ctx, results, hop="rollback", system="pim", entity="product", source_system="hub",
                      before=before, fields_of=steps.by_key(wanted))
        restored += [("pim", "product", r.key) for r in results if r.outcome is not Outcome.FAILED]
    missing = [key for key in keys if key not in products and key not in models]
    if missing:
        ctx.dead_letter([{"entity": "product", "record_key": k, "source_system": "hub", "target_system": "pim",
                          "reason_kind": "api", "expectation": "missing_in_target",
                          "reason": "the PIM no longer has this record; nothing to restore"} for k in missing],
                        hop="rollback")
    return restored


def _writer(system: str, attribute: str) -> str:
    """The system a restoring write acts as: the attribute's owner, or the target itself for its own data."""
    from catalog_sync.governance import load_ownership

    owner = load_ownership().owner(attribute, "product")
    return owner if owner != system else system


def _allowed_fields(ctx: RunContext, system: str, entity: str, key: str,
                    fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields the restoring write may carry; refusals are dead-lettered exactly as in a normal run."""
    from catalog_sync.governance import load_ownership, refusals_to_dead_letters
    from catalog_sync.governance.loops import drop_held

    if _is_channel(system):
        # A channel is not a system of the ownership model: what Catalog Sync wrote there on its own account (a
        # disable) is put back as it was; a field it does not restore on a channel is refused, and said so.
        allowed = {f: v for f, v in fields.items() if f in CHANNEL_FIELDS}
        other = sorted(set(fields) - CHANNEL_FIELDS)
        if other:
            ctx.dead_letter([{"entity": entity, "record_key": key, "source_system": "hub", "target_system": system,
                              "reason_kind": "api", "expectation": "not_restorable",
                              "reason": f"a rollback restores only {', '.join(sorted(CHANNEL_FIELDS))} on {system}, "
                                        f"not {', '.join(other)}: roll back the PIM's values and publish again"}],
                            hop=None)
        if not allowed:
            ctx.count("rollback", dead_lettered=1)
        return allowed
    ownership = load_ownership()
    allowed = {}
    refusals: list[Any] = []
    for field, value in fields.items():
        attribute = STOREFRONT_FIELDS.get(field, field) if system == "storefront" else field
        if system == "storefront" and entity == "images":
            attribute = "asset_links"
        writer = "pim" if system == "storefront" and attribute in VIA_PIM else _writer(system, attribute)
        check = ownership.check_write(writer, system, {"sku": key, attribute: value}, "product")
        if check.refused:
            refusals.extend(check.refused)
        else:
            allowed[field] = value
    if refusals:
        ctx.dead_letter(refusals_to_dead_letters(refusals, ctx.load_id, ctx.flow, "product", system), hop=None)
    # A field held in a write-back loop is not restored either: the hold's letter is released first.
    (kept,) = drop_held(ctx, [{"record_key": key, **allowed}], target=system, entity=entity, key="record_key")
    allowed = {k: v for k, v in kept.items() if k != "record_key"}
    if not allowed:
        ctx.count("rollback", dead_lettered=1)
    return allowed


def _akeneo_restore_values(fields: Mapping[str, Any],
                           current: Mapping[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Akeneo values that put ``fields`` back, including explicit nulls for values that did not exist before.

    A price is an amount with its currency in Akeneo; a run that changed only the amount logged only the amount,
    so the restored amount goes back with the record's ``current`` currency.
    """
    present = {k: v for k, v in fields.items() if v is not None}
    if present.get("reference_price") is not None and present.get("currency") is None:
        present["currency"] = (current or {}).get("currency") or "USD"
    values = canonical_to_akeneo_values(present)
    values.update(akeneo_empty_values(field for field, value in fields.items() if value is None))
    return values


def _write(systems: Systems, system: str, entity: str, key: str, fields: Mapping[str, Any]) -> WriteResult:
    if system == "pim":
        found = systems.pim.get_product(key) or systems.pim.get_product_model(key)
        values = _akeneo_restore_values(fields, akeneo_product_to_canonical(found) if found else None)
        if systems.pim.get_product(key) is not None:
            (result,) = systems.pim.upsert_products([{"identifier": key, "values": values}])
        else:
            (result,) = systems.pim.upsert_product_models([{"code": key, "values": values}])
        return result
    if system == "storefront":
        ids = steps.external_ids("storefront", "product", [key])
        handle = (ids.get(key, ("", None))[1] or {}).get("handle")
        if not handle:
            return WriteResult(key, Outcome.FAILED, None, "no storefront product known for this SKU")
        desired: dict[str, Any] = {"handle": handle}
        if "status" in fields:
            if fields["status"] is None:  # the run created the product: take it off sale again
                desired["status"] = "archived"
            else:
                desired["status"] = fields["status"]
        if fields.get("title"):
            desired["title"] = fields["title"]
        if "body_html" in fields:  # an empty description is a value to restore too
            desired["body_html"] = fields["body_html"] or ""
        if "vendor" in fields:
            desired["vendor"] = fields["vendor"]
        if "images" in fields:
            desired["images"] = [{"src": src, "position": i} for i, src in enumerate(fields["images"] or [], 1)]
        import dataclasses

        return dataclasses.replace(systems.storefront.upsert_product(desired), key=key)
    if _is_channel(system) and entity == "product":
        client = systems.channels.get(system)
        if client is None:
            return WriteResult(key, Outcome.FAILED, None, f"no client for {system} here (its Airflow connection is "
                               "not configured)")
        if fields.get("status") is None:
            return WriteResult(key, Outcome.FAILED, None, f"no earlier status of {key} on {system} to restore")
        return client.set_status(key, int(fields["status"]))
    return WriteResult(key, Outcome.FAILED, None, f"rollback of {system}/{entity} is not supported")


def _current(systems: Systems, system: str, entity: str, key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Current values of ``fields`` (the before-values of the rollback's own delta log)."""
    if system == "pim":
        product = systems.pim.get_product(key) or systems.pim.get_product_model(key)
        canonical = akeneo_product_to_canonical(product) if product else {}
        return {f: json_safe(canonical.get(f)) for f in fields}
    if system == "storefront":
        ids = steps.external_ids("storefront", "product", [key])
        handle = (ids.get(key, ("", None))[1] or {}).get("handle")
        product = systems.storefront.find_by_handle(handle) if handle else None
        product = product or {}
        current = {"status": product.get("status"), "title": product.get("title"),
                   "body_html": product.get("body_html"), "vendor": product.get("vendor"),
                   "images": [i.get("src") for i in product.get("images") or []]}
        return {f: current.get(f) for f in fields}
    client = systems.channels.get(system) if _is_channel(system) else None
    if client is not None:
        from catalog_sync.connectors import ConnectorError

        try:  # a channel down fails this record's write next, which dead-letters it; the others go on
            product = client.get_product(key) or {}
        except ConnectorError:
            return {}
        return {f: product.get(f) for f in fields}
    return {}
