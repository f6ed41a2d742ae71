"""Reference data the gates use: the unit, country and category tables, kept in the hub and changed only on approval.

Each table has one owner system (``OWNERS``): the ERP keeps the units of measure and the countries it books in,
the PIM keeps the category tree. The weekly reconciliation reads each owner's table (:func:`read_owner_tables`),
compares it with the applied rows (``hub.models.ReferenceValue``) and records the difference as a
``ReferenceProposal`` (:func:`propose`); nothing is applied until a person approves it (:func:`decide`, called
after the weekly DAG's Airflow approval task). The nightly transforms and gates read the applied rows once per task
(:func:`applied`, cached by the tables' version), never per record, so a unit the ERP added is refused until
someone approved it and accepted from the next run after.

What the applied tables mean to the gates:

- ``unit``: the transforms' unit table (``transforms.normalise_unit``: aliases -> code) and the layer-0 value sets
  (``uom``: units of kind ``count``; ``weight_unit``: ``weight``; ``dimension_unit``: ``length``).
- ``country``: the transforms' country table (``transforms.normalise_country``).
- ``category``: the products layer-1 taxonomy. While no category has been approved yet the gate keeps judging
  against the categories the run read from the PIM, as it did before the table existed (the migration seeds units
  and countries only: there was no fixed category list to seed from).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import yaml

if TYPE_CHECKING:
    from catalog_sync.flows.systems import Systems
    from catalog_sync.transforms import ReferenceData

TABLES: Final[tuple[str, ...]] = ("unit", "country", "category")
#: The system that owns each reference table (its values are read from there and nowhere else).
OWNERS: Final[dict[str, str]] = {"unit": "erp", "country": "erp", "category": "pim"}
#: Which kind of unit each canonical unit field accepts at the layer-0 gate.
FIELD_UNIT_KIND: Final[dict[str, str]] = {"uom": "count", "weight_unit": "weight", "dimension_unit": "length"}

Tables = dict[str, dict[str, dict[str, Any]]]  # table -> code -> attributes


@dataclass(frozen=True)
class Applied:
    """The applied reference tables at one version (``version`` changes whenever an approval changes a row)."""

    version: tuple[Any, ...]
    tables: Mapping[str, Mapping[str, Mapping[str, Any]]]

    def codes(self, table: str) -> frozenset[str]:
        return frozenset(self.tables.get(table, {}))

    def unit_value_sets(self) -> dict[str, frozenset[str]]:
        """``{canonical unit field: unit codes the layer-0 gate accepts}``."""
        units = self.tables.get("unit", {})
        return {field: frozenset(c for c, a in units.items() if a.get("kind") == kind)
                for field, kind in FIELD_UNIT_KIND.items()}

    def categories(self) -> frozenset[str] | None:
        """The approved category codes; None while none has been approved (see the module docstring)."""
        return self.codes("category") or None

    def reference_data(self) -> ReferenceData:
        """The transforms' lookup tables: units and countries from here, vendor rules from the YAML file."""
        from catalog_sync.transforms import REFERENCE_DATA_PATH, parse_reference_document

        document = yaml.safe_load(REFERENCE_DATA_PATH.read_text(encoding="utf-8"))
        document["units"] = {code: {"kind": a.get("kind"), "aliases": list(a.get("aliases") or [])}
                             for code, a in self.tables.get("unit", {}).items()}
        document["countries"] = {code: {"alpha3": a.get("alpha3"), "names": list(a.get("names") or [])}
                                 for code, a in self.tables.get("country", {}).items()}
        return parse_reference_document(document, REFERENCE_DATA_PATH)


# --- reading the applied tables ---------------------------------------------------------------------------------


def _version(hub_url: str) -> tuple[Any, ...]:
    from sqlalchemy import func, select

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import ReferenceValue

    with session_scope(hub_url) as s:
        row = s.execute(select(func.count(), func.max(ReferenceValue.proposal_id),
                               func.max(ReferenceValue.applied_at))).one()
    return tuple(str(v) for v in row)


@functools.lru_cache(maxsize=8)
def _load(hub_url: str, version: tuple[Any, ...]) -> Applied:
    # version only keys the cache: an approval changes it, and the next call reads the rows again
    from sqlalchemy import select

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import ReferenceValue

    tables: Tables = {t: {} for t in TABLES}
    with session_scope(hub_url) as s:
        for row in s.scalars(select(ReferenceValue)):
            tables.setdefault(row.table_name, {})[row.code] = dict(row.attributes or {})
    return Applied(version, tables)


def applied(hub_url: str | None = None) -> Applied:
    """The applied tables of the hub at ``hub_url`` (default: the configured hub); one small version query, and
    the rows are read again only when it changed."""
    from catalog_sync import config

    url = hub_url or config.hub_url()
    return _load(url, _version(url))


# --- the owners' tables -----------------------------------------------------------------------------------------


def read_owner_tables(systems: Systems) -> Tables:
    """Each reference table as its owner system holds it now."""
    units = {str(u["code"]): {"kind": u.get("kind"), "aliases": sorted(u.get("aliases") or [])}
             for u in systems.erp.reference_table("units")}
    countries = {str(c["code"]): {"alpha3": c.get("alpha3"), "names": list(c.get("names") or [])}
                 for c in systems.erp.reference_table("countries")}
    categories = {str(c["code"]): {"parent": c.get("parent"), "labels": dict(c.get("labels") or {})}
                  for c in systems.pim.list_structure("categories")}
    return {"unit": units, "country": countries, "category": categories}


def _comparable(table: str, attributes: Mapping[str, Any]) -> Any:
    # alias lists are sets: the same spellings in another order are no change
    if table == "unit":
        return {"kind": attributes.get("kind"), "aliases": sorted(attributes.get("aliases") or [])}
    return dict(attributes)


def diff_tables(current: Mapping[str, Mapping[str, Mapping[str, Any]]], owners: Tables) -> dict[str, Any]:
    """``{table: {"added", "removed", "changed"}}`` turning ``current`` into the owners' tables; tables without a
    change are left out. The category table is compared only once its owner has one (an empty PIM tree is read as
    'nothing to say', not as 'remove every category')."""
    out: dict[str, Any] = {}
    for table in TABLES:
        have, want = current.get(table, {}), owners.get(table, {})
        if table == "category" and not want:
            continue
        added = [{"code": c, "attributes": want[c]} for c in sorted(set(want) - set(have))]
        removed = [{"code": c, "attributes": dict(have[c])} for c in sorted(set(have) - set(want))]
        changed = [{"code": c, "before": dict(have[c]), "after": want[c]} for c in sorted(set(have) & set(want))
                   if _comparable(table, have[c]) != _comparable(table, want[c])]
        if added or removed or changed:
            out[table] = {"added": added, "removed": removed, "changed": changed}
    return out


def diff_markdown(diff: Mapping[str, Any], proposal_id: int | None = None) -> str:
    """The diff as the approver reads it (the approval task's body in Airflow's UI)."""
    if not diff:
        return "No change: the applied reference tables match their owner systems."
    lines = [f"Reference data refresh #{proposal_id}" if proposal_id else "Reference data refresh", ""]
    for table, change in diff.items():
        lines += [f"### {table} (owner: {OWNERS[table]})", ""]
        lines += [f"- **added** `{e['code']}` {_attrs(e['attributes'])}" for e in change["added"]]
        lines += [f"- **removed** `{e['code']}` {_attrs(e['attributes'])}" for e in change["removed"]]
        lines += [f"- **changed** `{e['code']}` {_attrs(e['before'])} -> {_attrs(e['after'])}"
                  for e in change["changed"]]
        lines.append("")
    lines.append("Approve to apply these changes to the tables the nightly gates read; reject to keep them as "
                 "they are (values the gates do not know stay refused).")
    return "\n".join(lines)


def _attrs(attributes: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in attributes.items() if v not in (None, [], {}))


def change_count(diff: Mapping[str, Any]) -> int:
    return sum(len(c["added"]) + len(c["removed"]) + len(c["changed"]) for c in diff.values())


# --- proposing and deciding -------------------------------------------------------------------------------------


def propose(load_id: str, owners: Tables, hub_url: str | None = None) -> dict[str, Any]:
    """Record the difference between the owners' tables and the applied ones as a proposal (nothing is applied).

    A proposal still waiting from an earlier refresh is superseded: the new one is computed from the same applied
    rows and the owners' newer state. No difference, no proposal (``proposal_id`` None).
    """
    from sqlalchemy import update

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import ReferenceProposal

    diff = diff_tables(applied(hub_url).tables, owners)
    with session_scope(hub_url) as s:
        s.execute(update(ReferenceProposal).where(ReferenceProposal.status == "proposed")
                  .values(status="superseded", decided_at=datetime.now(UTC),
                          note=f"superseded by the refresh of run {load_id}"))
        if not diff:
            return {"proposal_id": None, "changes": 0, "diff": {}, "summary": diff_markdown(diff)}
        proposal = ReferenceProposal(load_id=load_id, status="proposed", diff=diff)
        s.add(proposal)
        s.flush()
        proposal_id = int(proposal.id)
    return {"proposal_id": proposal_id, "changes": change_count(diff), "diff": diff,
            "summary": diff_markdown(diff, proposal_id)}


class ProposalNotOpen(RuntimeError):
    """The proposal was already decided or superseded."""


def decide(proposal_id: int, *, approved: bool, decided_by: str | None, hub_url: str | None = None,
           note: str | None = None) -> dict[str, Any]:
    """Apply (``approved``) or reject a proposal, recording who decided and when.

    Approval applies exactly the recorded diff (what the approver saw), in one transaction with the status change.
    ``decided_by`` None records a rejection nobody made (the approval timed out).
    """
    from sqlalchemy import delete, select

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import ReferenceProposal, ReferenceValue

    now = datetime.now(UTC)
    with session_scope(hub_url) as s:
        proposal = s.get(ReferenceProposal, proposal_id, with_for_update=True)
        if proposal is None or proposal.status != "proposed":
            raise ProposalNotOpen(f"reference proposal {proposal_id} is "
                                  f"{'unknown' if proposal is None else proposal.status}, not proposed")
        proposal.status = "approved" if approved else "rejected"
        proposal.decided_at, proposal.decided_by, proposal.note = now, decided_by, note
        applied_rows = 0
        if approved:
            for table, change in (proposal.diff or {}).items():
                for entry in change["removed"]:
                    s.execute(delete(ReferenceValue).where(ReferenceValue.table_name == table,
                                                           ReferenceValue.code == entry["code"]))
                for entry in [*change["added"], *({"code": e["code"], "attributes": e["after"]}
                                                  for e in change["changed"])]:
                    row = s.scalars(select(ReferenceValue).where(ReferenceValue.table_name == table,
                                                                 ReferenceValue.code == entry["code"])).first()
                    if row is None:
                        row = ReferenceValue(table_name=table, code=entry["code"], owner_system=OWNERS[table])
                        s.add(row)
                    row.attributes, row.proposal_id, row.applied_at = dict(entry["attributes"]), proposal_id, now
                applied_rows += len(change["removed"]) + len(change["added"]) + len(change["changed"])
    return {"proposal_id": proposal_id, "status": "approved" if approved else "rejected",
            "decided_by": decided_by, "rows_changed": applied_rows}


def proposals(hub_url: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest proposals, newest first (for the CLI and the UI)."""
    from sqlalchemy import select

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import ReferenceProposal

    with session_scope(hub_url) as s:
        rows = s.scalars(select(ReferenceProposal).order_by(ReferenceProposal.id.desc()).limit(limit)).all()
        return [{"id": r.id, "load_id": r.load_id, "status": r.status, "diff": r.diff,
                 "changes": change_count(r.diff or {}), "proposed_at": r.proposed_at, "decided_at": r.decided_at,
                 "decided_by": r.decided_by, "note": r.note} for r in rows]


# --- the standard tables (seed) ---------------------------------------------------------------------------------


def gate_seed() -> Tables:
    """The units and countries the gates accepted before the tables lived in the hub: the units of
    ``governance/reference_data.yaml`` that the layer-0 value sets also held, and all of its countries.

    Migration 0007 holds a frozen copy of this (a unit test keeps the two equal); the sandbox ERP starts from it.
    """
    from catalog_sync.quality.reference import DIMENSION_UNITS, UOM_CODES, WEIGHT_UNITS
    from catalog_sync.transforms import REFERENCE_DATA_PATH

    gate = {"count": UOM_CODES, "weight": WEIGHT_UNITS, "length": DIMENSION_UNITS}
    document = yaml.safe_load(REFERENCE_DATA_PATH.read_text(encoding="utf-8"))
    units = {str(code): {"kind": spec["kind"], "aliases": [str(a) for a in spec.get("aliases") or []]}
             for code, spec in (document.get("units") or {}).items() if code in gate.get(spec.get("kind"), ())}
    countries = {str(code): {"alpha3": spec.get("alpha3"), "names": [str(n) for n in spec.get("names") or []]}
                 for code, spec in (document.get("countries") or {}).items()}
    return {"unit": units, "country": countries, "category": {}}


# --- the UI's page ----------------------------------------------------------------------------------------------

#: Where Airflow's UI shows a waiting approval (the path ``HITLOperator.generate_link_to_ui`` builds).
APPROVAL_PATH: Final[str] = "/dags/{dag_id}/runs/{run_id}/tasks/approve_reference_data/required_actions"


def overview(session: Any, limit: int = 10) -> dict[str, Any]:
    """The Reference data page: the applied tables (size, owner, last change) and the latest proposals with their
    diff, each waiting one with the Airflow page where it is approved."""
    from sqlalchemy import func, select

    from catalog_sync.hub.models import ReferenceProposal, ReferenceValue, SyncRun

    sizes = {name: (int(n), last) for name, n, last in session.execute(
        select(ReferenceValue.table_name, func.count(), func.max(ReferenceValue.applied_at))
        .group_by(ReferenceValue.table_name))}
    tables = [{"table": t, "owner": OWNERS[t], "rows": sizes.get(t, (0, None))[0],
               "last_applied": sizes.get(t, (0, None))[1]} for t in TABLES]
    rows = session.scalars(select(ReferenceProposal).order_by(ReferenceProposal.id.desc()).limit(limit)).all()
    runs = dict(session.execute(select(SyncRun.load_id, SyncRun.run_id)
                                .where(SyncRun.load_id.in_([r.load_id for r in rows]))).all()) if rows else {}
    proposals_out = []
    for r in rows:
        run_id = runs.get(r.load_id)
        proposals_out.append({
            "id": r.id, "load_id": r.load_id, "status": r.status, "changes": change_count(r.diff or {}),
            "diff": r.diff or {}, "proposed_at": r.proposed_at, "decided_at": r.decided_at,
            "decided_by": r.decided_by, "note": r.note,
            "approval_path": (APPROVAL_PATH.format(dag_id="weekly_reconciliation", run_id=run_id)
                              if r.status == "proposed" and run_id else None),
        })
    return {"tables": tables, "proposals": proposals_out}
