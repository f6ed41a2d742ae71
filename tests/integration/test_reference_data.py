"""Reference data the gates use (issue #21): a unit the ERP adds is refused by the nightly until a refresh proposing
it is approved, and stays refused when the proposal is rejected. Real sandbox over HTTP, real hub (SQLite, and
PostgreSQL when configured); the weekly refresh and the decision run as the weekly DAG's tasks call them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from catalog_sync import refdata
from catalog_sync.flows import cold, reference
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, ReferenceProposal, ReferenceValue

SKU = "MH01-XS-Black"


def erp_admin(server: Any, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """What an ERP administrator does in the ERP itself (the product never writes reference data)."""
    response = httpx.request(method, f"{server.url}/erp/{path}", json=body,
                             headers={"X-Api-Key": server.credentials["erp"]["api_key"]}, timeout=30)
    response.raise_for_status()
    return response


def nightly_erp_to_pim(run_id: str, systems: Systems) -> str:
    """The nightly's ERP -> PIM hop: extract, normalise + layer-0 gate, load (cold_data_nightly's first tasks)."""
    load_id = cold.open_run(dag_id="cold_data_nightly", run_id=run_id, window_start=None, window_end=None)
    cold.extract_erp(load_id, systems)
    cold.gate_master_data(load_id)
    cold.load_pim(load_id, systems)
    cold.finish(load_id)
    return load_id


def letters_for(load_id: str, sku: str) -> list[DeadLetter]:
    with session_scope() as s:
        return list(s.scalars(select(DeadLetter).where(DeadLetter.load_id == load_id,
                                                       DeadLetter.record_key == sku)).all())


def pim_uom(systems: Systems, sku: str) -> Any:
    product = systems.pim.get_product(sku)
    assert product is not None
    return (product["values"].get("uom") or [{}])[0].get("data")


def weekly_refresh(run_id: str, systems: Systems) -> tuple[str, dict[str, Any]]:
    from catalog_sync.flows import reconcile

    load_id = reconcile.open_run(dag_id="weekly_reconciliation", run_id=run_id, window_start=None, window_end=None)
    return load_id, reference.refresh(load_id, systems)


def answer(option: str, user: str | None = "catalog.manager") -> dict[str, Any]:
    """The approval task's return value as Airflow's HITL operator hands it on (HITLTriggerEventSuccessPayload)."""
    return {"chosen_options": [option], "params_input": {},
            "responded_by_user": {"id": user, "name": user} if user else None, "responded_at": None}


def test_an_erp_unit_is_refused_until_its_refresh_is_approved(hub_url: str, fresh_sandbox: Any,
                                                               systems: Systems) -> None:
    # the seed is what the gates accepted before, and the ERP ships the same tables: a first refresh proposes
    # only the PIM's category tree (no category list was seeded)
    _, first = weekly_refresh("scheduled__w0", systems)
    assert set(refdata.proposals(hub_url)[0]["diff"]) == {"category"} and first["proposal_id"] is not None

    erp_admin(fresh_sandbox, "PUT", "units/BAG", {"kind": "count", "aliases": ["bag", "bags"]})
    item = systems.erp.get_item(SKU)
    assert item is not None
    assert systems.erp.put_item({**item, "uom": "bags"}).ok

    refused = nightly_erp_to_pim("scheduled__n1", systems)
    (letter,) = letters_for(refused, SKU)
    assert letter.reason_kind == "transform" and "unknown unit of measure 'BAGS'" in (letter.reason or "")
    assert pim_uom(systems, SKU) != "BAG"

    load_id, proposed = weekly_refresh("scheduled__w1", systems)
    assert proposed["proposal_id"] is not None
    assert "**added** `BAG` kind=count, aliases=['bag', 'bags']" in proposed["summary"]
    with session_scope() as s:
        proposal = s.get(ReferenceProposal, proposed["proposal_id"])
        assert proposal is not None and proposal.status == "proposed"
        assert proposal.diff["unit"]["added"] == [{"code": "BAG", "attributes": {"kind": "count",
                                                                                  "aliases": ["bag", "bags"]}}]
        # proposing applies nothing
        assert s.scalars(select(ReferenceValue).where(ReferenceValue.code == "BAG")).first() is None
    assert systems.erp.put_item({**item, "uom": "bags", "vendor_name": "Luma Outfitters"}).ok  # read again
    still = nightly_erp_to_pim("scheduled__n2", systems)
    assert [x.reason_kind for x in letters_for(still, SKU)] == ["transform"]

    decided = reference.apply_decision(load_id, proposed["proposal_id"], answer("Approve"), systems)
    assert (decided["status"], decided["decided_by"]) == ("approved", "catalog.manager")
    with session_scope() as s:
        proposal = s.get(ReferenceProposal, proposed["proposal_id"])
        assert proposal is not None and proposal.decided_by == "catalog.manager" and proposal.decided_at
        # the approval replayed the letters the unit table had refused: delivered now, not at the next change
        assert {x.status for x in s.scalars(select(DeadLetter).where(DeadLetter.record_key == SKU))} == {"replayed"}
    assert set(decided["replay"]["replayed"]) == {letter.id, *(x.id for x in letters_for(still, SKU))}
    assert pim_uom(systems, SKU) == "BAG"

    # and the next nightly's gate accepts the unit in any spelling the ERP gave for it
    other = systems.erp.get_item("MH01-S-Black")
    assert other is not None and systems.erp.put_item({**other, "uom": "Bag"}).ok
    accepted = nightly_erp_to_pim("scheduled__n3", systems)
    assert letters_for(accepted, "MH01-S-Black") == []
    assert pim_uom(systems, "MH01-S-Black") == "BAG"
    with pytest.raises(refdata.ProposalNotOpen):
        reference.apply_decision(load_id, proposed["proposal_id"], answer("Approve"))


@pytest.mark.parametrize("response", [answer("Reject"), answer("Reject", user=None)], ids=["rejected", "timed-out"])
def test_a_rejected_refresh_keeps_the_unit_refused(hub_url: str, fresh_sandbox: Any, systems: Systems,
                                                   response: dict[str, Any]) -> None:
    erp_admin(fresh_sandbox, "PUT", "units/BAG", {"kind": "count", "aliases": ["bag"]})
    item = systems.erp.get_item(SKU)
    assert item is not None
    assert systems.erp.put_item({**item, "uom": "bag"}).ok
    load_id, proposed = weekly_refresh("scheduled__w1", systems)
    decided = reference.apply_decision(load_id, proposed["proposal_id"], response, systems)
    assert decided["status"] == "rejected" and decided["rows_changed"] == 0 and "replay" not in decided
    assert decided["decided_by"] == (response["responded_by_user"] or {}).get("name")
    refused = nightly_erp_to_pim("scheduled__n1", systems)
    assert [x.reason_kind for x in letters_for(refused, SKU)] == ["transform"]
    # the next weekly refresh proposes it again (the ERP still has it), superseding nothing already decided
    _, again = weekly_refresh("scheduled__w2", systems)
    assert again["proposal_id"] != proposed["proposal_id"] and "`BAG`" in again["summary"]


def test_a_retired_unit_and_an_approved_category_tree_reach_the_gates(hub_url: str, fresh_sandbox: Any,
                                                                      systems: Systems) -> None:
    erp_admin(fresh_sandbox, "DELETE", "units/CS")
    load_id, proposed = weekly_refresh("scheduled__w1", systems)
    diff = proposed and refdata.proposals(hub_url)[0]["diff"]
    assert [e["code"] for e in diff["unit"]["removed"]] == ["CS"]
    pim_categories = {c["code"] for c in systems.pim.list_structure("categories")}
    assert {e["code"] for e in diff["category"]["added"]} == pim_categories
    assert refdata.applied(hub_url).categories() is None  # before approval: the run's own categories
    reference.apply_decision(load_id, proposed["proposal_id"], answer("Approve"))
    now = refdata.applied(hub_url)
    assert now.categories() == pim_categories
    assert "CS" not in now.unit_value_sets()["uom"] and "EA" in now.unit_value_sets()["uom"]
