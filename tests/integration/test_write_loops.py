"""A write-back loop in the sandbox: a supplier portal resubmits its product name every night and a merchandiser
puts the PIM's name back every morning. The nightly's supplier hop and the edits flip the PIM's name; the
nightly that sees more flips than the threshold holds the field, dead-letters it with the history and raises one
alert; later nights leave the field alone until an operator releases it. The demo catalog's own nightly holds
nothing (tests/integration/test_cold_flow.py::test_luma_moves_through_every_hop_and_reconciles)."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from catalog_sync import alerting
from catalog_sync.connectors.mapping import canonical_to_akeneo_values
from catalog_sync.flows import cold
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter, FieldHold
from tests.integration.test_cold_flow import pim_record

SKU = "MH01-XS-Black"
SUPPLIERS_NAME = "Chaz Kangaroo Hoodie XS Black (supplier master)"


def _submit(sandbox: Any, name: str) -> None:
    resp = requests.post(f"{sandbox.url}/supplier/api/submissions", timeout=10,
                         headers={"X-Api-Key": sandbox.credentials["supplier"]["api_key"]},
                         json={"supplier": "SUP-LOOP", "sku": SKU, "changes": {"name": name}})
    resp.raise_for_status()


def _night(n: int, systems: Systems) -> tuple[str, dict[str, Any]]:
    """The supplier hop of one nightly, and the nightly's finish (where loops are detected)."""
    load_id = cold.open_run(dag_id="cold_data_nightly", run_id=f"manual__loop{n}", window_start=None,
                            window_end=None)
    cold.writeback_supplier(load_id, systems)
    return load_id, cold.finish(load_id)


def _merchandiser_restores(systems: Systems, name: str) -> None:
    (res,) = systems.pim.upsert_products([{"identifier": SKU, "values": canonical_to_akeneo_values({"name": name})}])
    assert res.ok


def _loop_alerts(load_id: str) -> list[str]:
    return [a.key for a in alerting.run_alerts(load_id) if a.key.startswith("write_loop:")]


def test_a_name_flipping_between_supplier_and_pim_is_held_dead_lettered_and_alerted_once(
    hub_url: str, fresh_sandbox: Any, systems: Systems
) -> None:
    pims_name = pim_record(systems, SKU)["name"]
    threshold = alerting.load_rules().loop_flips
    assert threshold == 3
    # Night 1 writes the supplier's name (a change, no flip); each later night finds the merchandiser's edit
    # (flip) and writes the supplier's name over it again (flip): nights 2 and 3 make four flips.
    runs = []
    for night in (1, 2, 3):
        _submit(fresh_sandbox, SUPPLIERS_NAME)
        load_id, result = _night(night, systems)
        runs.append((load_id, result))
        assert pim_record(systems, SKU)["name"] == SUPPLIERS_NAME
        _merchandiser_restores(systems, pims_name)
    assert [r["write_loops_held"] for _, r in runs] == [[], [], [f"{SKU}.name"]]
    assert [_loop_alerts(load_id) for load_id, _ in runs] == [[], [], [f"write_loop:pim/product/{SKU}/name"]]

    (letter,) = [x for x in _open_letters() if x.reason_kind == "loop"]
    assert (letter.record_key, letter.target_system, letter.source_system) == (SKU, "pim", "supplier")
    assert "flipped 4 times" in letter.reason and "changed outside Catalog Sync" in letter.reason
    assert f"the supplier portal's value \"{SUPPLIERS_NAME}\"" in letter.reason
    assert [s["by"] for s in letter.payload["history"]] == ["supplier", "outside", "supplier", "outside", "supplier"]

    # Night 4: the supplier submits again; the name is held, so the merchandiser's stays, with no second letter
    # and no second alert. The submission is decided with the reason.
    _submit(fresh_sandbox, SUPPLIERS_NAME)
    night4, result4 = _night(4, systems)
    assert result4["write_loops_held"] == [] and _loop_alerts(night4) == []
    assert pim_record(systems, SKU)["name"] == pims_name
    assert [x.id for x in _open_letters() if x.reason_kind == "loop"] == [letter.id]
    with session_scope() as s:
        skipped = s.scalars(select(AuditEvent).where(AuditEvent.load_id == night4, AuditEvent.record_key == SKU,
                                                     AuditEvent.outcome == "refused")).all()
    assert skipped and "write-back loop" in skipped[0].response["message"]
    decided = [sub for page in systems.supplier.iter_submissions(status=None) for sub in page.records
               if sub["supplier"] == "SUP-LOOP"]
    assert "held in a write-back loop" in str(decided[-1]["reason"])

    # The operator settles it (the merchandiser accepts the supplier's name) and discards the letter: the hold is
    # released and the next night writes the field again without holding it on the flips before the release.
    with session_scope() as s:
        repo.resolve_dead_letters(s, [letter.id], "discarded", by="ops")
        assert s.scalars(select(FieldHold.released_by)).all() == ["ops"]
    _submit(fresh_sandbox, SUPPLIERS_NAME)
    _, result5 = _night(5, systems)
    assert result5["write_loops_held"] == []
    assert pim_record(systems, SKU)["name"] == SUPPLIERS_NAME


def _open_letters() -> list[DeadLetter]:
    with session_scope() as s:
        return list(s.scalars(select(DeadLetter).where(DeadLetter.status == "open")).all())
