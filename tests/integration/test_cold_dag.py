"""The DAGs run by Airflow (dag.test) against the sandbox, with the systems' end state checked over HTTP.

One published catalog serves the whole story, since publishing it is the expensive part: the nightly run
publishes Luma; an ERP stock change goes out through `hot_data_sync`; a second nightly run carries an ERP
price change and dead-letters a record with a unit nobody knows; once the ERP is fixed, `dead_letter_replay`
delivers it; `sync_rollback` then takes the second nightly run's price back out of the PIM.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from catalog_sync import store
from catalog_sync.connectors.mapping import akeneo_product_to_canonical
from catalog_sync.flows import steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, SyncRun
from catalog_sync.quality.docs import docs_dir, saved_validations
from tests.conftest import SplitState


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> SyncRun:
    """Run one DAG with dag.test() and return the hub's record of the run it made."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=f"dags/{dag_id}.py").get_dag(dag_id)
    # Airflow 3.3.2's dag.test() cannot finish a run of a DAG with deadline alerts: DagRun.update_state looks the
    # alerts up by id, and an in-memory DAG holds their definitions, not the ids a scheduler's DAG sync assigns
    # (StatementError "'dict' object has no attribute 'hex'"). The deadlines are exercised through a real
    # scheduler in tests/integration/test_alerts_live.py; here they are dropped.
    dag.deadline = None
    dag_run = dag.test(run_conf=conf) if conf else dag.test()
    assert str(dag_run.state) == "success", [(ti.task_id, ti.state) for ti in dag_run.get_task_instances()]
    with session_scope() as s:
        # a replay records its run as "replay:<run id>" (it runs the nightly's steps under the nightly's flow)
        runs = s.scalars(select(SyncRun).where(SyncRun.dag_id == dag_id,
                                               SyncRun.run_id.endswith(dag_run.run_id))).all()
    # hot_data_sync: each declared channel's task records a batch of its own (details "channel", ADR 0018); the
    # run returned is the storefront's, and every batch must have succeeded
    assert all(r.status == "success" for r in runs), [(r.load_id, r.status, r.error) for r in runs]
    (run,) = [r for r in runs if not (r.details or {}).get("channel")]
    assert run.status == "success", (dag_id, run.load_id, run.status, run.error)
    assert run.records_read == run.records_delivered + run.records_unchanged + run.records_dead_lettered
    return run


def approve_when_asked(dag_id: str, task_id: str, stop: threading.Event, seen: dict[str, Any]) -> threading.Thread:
    """Answer the approval task "Approve" once it waits, as the Required actions page would (the HITL response
    written to the metadata database and the task resumed), recording what the approver saw and the state the
    downstream restore was in at that moment."""

    def answer() -> None:
        from airflow._shared.timezones import timezone
        from airflow.models.hitl import HITLDetail, HITLUser
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        while not stop.is_set():
            with create_session() as session:
                ti = session.scalars(select(TI).where(TI.dag_id == dag_id, TI.task_id == task_id,
                                                      TI.state == TaskInstanceState.AWAITING_INPUT)).first()
                if ti is not None:
                    restore = session.scalars(select(TI).where(TI.dag_id == dag_id, TI.run_id == ti.run_id,
                                                               TI.task_id == "restore")).one()
                    seen["restore_state_when_asked"] = restore.state
                    detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                    seen["subject"], seen["body"] = detail.subject, detail.body
                    detail.responded_by = HITLUser(id="merchandiser", name="merchandiser")
                    detail.responded_at = timezone.utcnow()
                    detail.chosen_options = ["Approve"]
                    session.add(detail)
                    handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti,
                                        session=session)
                    return
            stop.wait(0.5)

    def guarded() -> None:
        try:
            answer()
        except BaseException as exc:  # visible in the assertion instead of a silent hang of dag.test()
            seen["error"] = repr(exc)
            raise

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread


def pim_value(systems: Systems, sku: str, field: str) -> Any:
    product = systems.pim.get_product(sku)
    assert product is not None, sku
    return akeneo_product_to_canonical(product)[field]


def test_the_dags_publish_sync_replay_and_roll_back(hub_url: str, fresh_sandbox: Any, airflow_db: str,
                                                    airflow_connections: Any, store_elsewhere: SplitState) -> None:
    fresh_sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    airflow_connections(fresh_sandbox.url)
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        # 1. cold_data_nightly publishes the catalog.
        nightly = run_dag("cold_data_nightly")
        assert nightly.records_read > 7000
        # Invariant (ARCHITECTURE.md, Deployment): the gates' validation results and the Data Docs went to the
        # shared store, apart from CATALOG_SYNC_HOME; nothing a task hands on was written to the local folder.
        assert store.local_leftovers(store_elsewhere.home) == []
        assert [p.name for p in saved_validations(nightly.load_id)]
        assert (docs_dir(nightly.load_id) / "index.html").is_file()
        assert docs_dir(nightly.load_id).path.startswith(str(store_elsewhere.store))
        products = [p for page in systems.storefront.iter_products() for p in page.records]
        assert len(products) >= 170
        hoodie = next(p for p in products if any(v["sku"] == "MH01-XS-Black" for v in p["variants"]))
        assert hoodie["status"] == "active" and hoodie["images"]
        page = systems.storefront.shopper_page(hoodie["handle"])
        assert page.status == 200 and hoodie["title"] in page.html
        # ... and to the declared second channel (governance/channels.yaml): Adobe Commerce sells the Gear and Women
        # trees, in its own task and pool; the men's hoodie is the storefront's only
        adobe = systems.channels["adobe_commerce"]
        assert (adobe.get_product("24-MB01") or {}).get("status") == 1 and adobe.get_product("MH01") is None
        # its galleries follow in publish_channel_images_adobe_commerce, in the channel's square rendition
        assert adobe.media("24-MB01") and all("-square-" in e["file"] for e in adobe.media("24-MB01"))

        # 2. hot_data_sync: an ERP stock change reaches the storefront's inventory.
        sku = "MH01-XS-Black"
        assert systems.erp.set_stock(sku, "DC-EAST", 4321).ok
        hot = run_dag("hot_data_sync", {"drain_idle_s": 0})  # one batch, no wait for more changes
        assert hot.records_delivered >= 1
        (_, extra) = steps.external_ids("storefront", "variant", [sku])[sku]
        assert extra is not None
        levels = systems.storefront.inventory_levels([extra["inventory_item_id"]])
        assert 4321 in [lv["available"] for lv in levels]

        # 3. A second nightly run: a new ERP reference price goes to the PIM, an unknown unit is dead-lettered.
        priced, broken = "MH02-XS-Black", "MJ01-XS-Orange"
        old_price = pim_value(systems, priced, "reference_price")
        item = systems.erp.get_item(priced)
        assert item is not None
        new_price = round(float(old_price) + 7.5, 2)
        assert systems.erp.put_item({**item, "reference_price": {**item["reference_price"], "amount": new_price}}).ok
        assert systems.erp.put_item({**systems.erp.get_item(broken), "uom": "furlong"}).ok
        second = run_dag("cold_data_nightly")
        assert pim_value(systems, priced, "reference_price") == new_price
        with session_scope() as s:
            (letter,) = s.scalars(select(DeadLetter).where(DeadLetter.record_key == broken,
                                                           DeadLetter.status == "open")).all()
        assert letter.load_id == second.load_id and "uom" in letter.expectation

        # 4. dead_letter_replay, once the ERP is fixed, delivers the record.
        assert systems.erp.put_item({**systems.erp.get_item(broken), "uom": "EA"}).ok
        replayed = run_dag("dead_letter_replay", {"dead_letter_ids": [letter.id]})
        assert replayed.records_delivered >= 1
        with session_scope() as s:
            assert s.get(DeadLetter, letter.id).status == "replayed"
        assert pim_value(systems, broken, "uom") == "EA"

        # 5. sync_rollback takes the second nightly run's price back out of the PIM, once a person approved the
        #    plan it showed.
        stop, seen = threading.Event(), {}
        approver = approve_when_asked("sync_rollback", "approve_restore", stop, seen)
        try:
            run_dag("sync_rollback", {"load_id": second.load_id})
        finally:
            stop.set()
            approver.join(timeout=10)
        assert "error" not in seen and seen["restore_state_when_asked"] in (None, "none"), seen
        assert second.load_id in seen["subject"] and "1 record to restore" in seen["body"]
        assert priced in seen["body"] and "reference_price" in seen["body"]
        assert pim_value(systems, priced, "reference_price") == old_price
    finally:
        systems.close()
