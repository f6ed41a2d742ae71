"""The weekly refresh of the reference tables (``catalog_sync.refdata``): propose, then apply on a human decision.

``refresh`` is the weekly_reconciliation task ``refresh_reference_data``; its ``summary`` (the diff in Markdown)
becomes the body of the DAG's approval task, and ``apply_decision`` (task ``apply_reference_data``) turns the
approval's answer, as Airflow's HITL operator returns it, into an approved or rejected proposal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from catalog_sync import refdata
from catalog_sync.engine.run import RunContext
from catalog_sync.flows import freeze
from catalog_sync.flows.systems import Systems

#: The options of the approval task (Airflow's ApprovalOperator uses the same two).
APPROVE, REJECT = "Approve", "Reject"
#: What a dead letter refused by a reference table names as its expectation: the transform's field (a unit or
#: country with no entry) or the gate check judging against a reference table.
REFUSED_BY_REFERENCE: Final[frozenset[str]] = frozenset({
    "uom", "weight_unit", "dimension_unit", "country_of_origin",
    "products.l0.uom_known", "products.l0.weight_unit_known", "products.l0.dimension_unit_known",
    "products.l1.category_known",
})


def refresh(load_id: str, systems: Systems) -> dict[str, Any]:
    """Read every reference table from its owner, and record the difference from the applied tables as a proposal.

    Returns ``proposal_id`` (None when nothing changed), ``changes`` and ``summary`` (the diff as Markdown).
    """
    ctx = RunContext.attach(load_id)
    owners = refdata.read_owner_tables(systems)
    result = refdata.propose(load_id, owners, ctx.hub_url)
    for table, change in result["diff"].items():
        for kind in ("added", "removed", "changed"):
            for entry in change[kind]:
                ctx.audit(refdata.OWNERS[table], f"reference_{table}", entry["code"], "propose", kind,
                          changes=entry)
    ctx.flush_audit()
    return {k: result[k] for k in ("proposal_id", "changes", "summary")}


def apply_decision(load_id: str, proposal_id: int, response: Mapping[str, Any] | None,
                   systems: Systems | None = None) -> dict[str, Any]:
    """Apply or reject ``proposal_id`` as the approval task answered; after an approval, replay (with ``systems``)
    the open dead letters a reference table refused, so that what the approval made valid is delivered now and not
    only when its source next changes (a record still refused stays open, as any replay leaves it).

    ``response`` is the HITL operator's return value (``chosen_options``, ``responded_by_user``...). Anything but
    an explicit "Approve" rejects: a timed-out approval (``responded_by_user`` None) is recorded as rejected with
    nobody as its decider, so the values stay refused until the next refresh proposes them again.
    """
    ctx = RunContext.attach(load_id)
    chosen = list((response or {}).get("chosen_options") or [])
    user = (response or {}).get("responded_by_user") or None
    who = str(user.get("name") or user.get("id")) if isinstance(user, Mapping) else None
    approved = chosen == [APPROVE] and who is not None
    if approved and freeze.hold_taxonomy(ctx, proposal_id, who):
        # a freeze holding taxonomy changes: the proposal stays proposed until freeze_release applies it
        return {"proposal_id": proposal_id, "status": "held", "decided_by": who, "rows_changed": 0}
    note = None if who else "no answer before the approval's deadline"
    result = refdata.decide(proposal_id, approved=approved, decided_by=who, hub_url=ctx.hub_url, note=note)
    ctx.audit("hub", "reference_proposal", str(proposal_id), "decide", result["status"],
              changes={"decided_by": who, "chosen_options": chosen})
    ctx.flush_audit()
    if approved and systems is not None:
        result["replay"] = replay_refused(systems, by=who or "reference refresh", hub_url=ctx.hub_url,
                                          run_id=f"reference-{proposal_id}")
    return result


def replay_refused(systems: Systems, *, by: str, hub_url: str | None, run_id: str) -> dict[str, Any]:
    """Replay every open dead letter a reference table refused (``REFUSED_BY_REFERENCE``)."""
    from sqlalchemy import select

    from catalog_sync.flows import replay
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import DeadLetter

    with session_scope(hub_url) as s:
        ids = list(s.scalars(select(DeadLetter.id).where(
            DeadLetter.status == "open", DeadLetter.expectation.in_(sorted(REFUSED_BY_REFERENCE)),
            DeadLetter.reason_kind.in_(["transform", "gate"]))).all())
    if not ids:
        return {"replayed": [], "still_open": []}
    done = replay.replay(ids, systems, by=by, dag_id="weekly_reconciliation", run_id=run_id, hub_url=hub_url)
    return {"replayed": done["replayed"], "still_open": done["still_open"], "load_id": done["load_id"]}
