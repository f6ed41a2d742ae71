"""The weekly reference-data refresh under Airflow's own scheduler (tests/integration/airflow_live.py): the
weekly_reconciliation run proposes the unit the ERP added, its approval task waits for a person in Airflow's
"Required actions" with the diff as its body, and an approval given through Airflow's REST API (the HITL route the
UI itself calls) applies the unit and replays the record the nightly had refused.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync.flows import cold
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import DeadLetter, ReferenceProposal, ReferenceValue
from tests.conftest import load_sandbox
from tests.integration.airflow_live import LiveAirflow
from tests.integration.test_cold_retries_live import gear_catalog
from tests.integration.test_reference_data import erp_admin, pim_uom

pytestmark = pytest.mark.airflow_live

DAG = "weekly_reconciliation"


def test_a_unit_approved_in_airflow_reaches_the_gates(tmp_path: Path, fresh_sandbox: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    load_sandbox(fresh_sandbox, gear_catalog(tmp_path / "gear"))
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub)  # the in-process nightly reads the process's default hub
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        sku = str(next(iter(next(iter(systems.erp.iter_items())).records))["sku"])
        erp_admin(fresh_sandbox, "PUT", "units/BAG", {"kind": "count", "aliases": ["bag"]})
        item = systems.erp.get_item(sku)
        assert item is not None and systems.erp.put_item({**item, "uom": "bag"}).ok
        nightly = cold.open_run(dag_id="cold_data_nightly", run_id="scheduled__n1", window_start=None,
                                window_end=None)
        cold.extract_erp(nightly, systems)
        cold.gate_master_data(nightly)
        cold.load_pim(nightly, systems)
        cold.finish(nightly)
        with session_scope(hub) as s:
            (letter,) = s.scalars(select(DeadLetter).where(DeadLetter.record_key == sku)).all()
            assert (letter.reason_kind, letter.expectation) == ("transform", "uom")

        airflow = LiveAirflow(tmp_path / "live", [f"{DAG}.py"], fresh_sandbox.url, {
            "CATALOG_SYNC_HUB_URL": hub, "CATALOG_SYNC_HOME": str(tmp_path / "home"),
            # the API without logins: every caller is an admin, as a signed-in approver would be in the UI
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        })
        airflow.start()
        try:
            # unpaused with catchup off, the scheduler starts the latest weekly interval itself
            run_id = airflow.wait(lambda: (runs := airflow.runs(DAG)) and runs[0][0], 180, "a weekly run")

            def unanswered(states: dict[str, tuple[str | None, int]]) -> None:
                assert states["refresh_reference_data"][0] == "success"
                time.sleep(3)  # the scheduler keeps looping: nothing may be applied before the answer
                assert airflow.task_instances(DAG, run_id)["apply_reference_data"][0] in (None, "none")
                with session_scope(hub) as s:
                    assert s.scalars(select(ReferenceValue).where(ReferenceValue.code == "BAG")).first() is None
                with sqlite3.connect(airflow.home / "airflow.db") as conn:
                    (body,) = conn.execute(
                        "select h.body from hitl_detail h join task_instance ti on ti.id = h.ti_id "
                        "where ti.dag_id = ? and ti.run_id = ? and ti.task_id = 'approve_reference_data'",
                        (DAG, run_id)).fetchone()
                assert "**added** `BAG` kind=count, aliases=['bag']" in body and "### unit (owner: erp)" in body

            airflow.answer_when_asked(DAG, run_id, "approve_reference_data", "Approve", before=unanswered)
            airflow.wait(lambda: airflow.task_instances(DAG, run_id).get("apply_reference_data", (None,))[0]
                         in ("success", "failed"), 240, "the decision applied")
            assert airflow.task_instances(DAG, run_id)["apply_reference_data"][0] == "success", airflow.tails()
        finally:
            airflow.stop()

        with session_scope(hub) as s:
            (proposal,) = s.scalars(select(ReferenceProposal).where(ReferenceProposal.status == "approved")).all()
            assert proposal.decided_by and proposal.decided_at
            assert s.scalars(select(ReferenceValue).where(ReferenceValue.code == "BAG")).one().proposal_id == \
                proposal.id
            assert s.get(DeadLetter, letter.id).status == "replayed"  # type: ignore[union-attr]
        assert pim_uom(systems, sku) == "BAG"
    finally:
        systems.close()
