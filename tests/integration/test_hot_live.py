"""The hot path with Airflow really running: an ERP stock change reaches the storefront through the asset watcher,
and a change of a SKU Adobe Commerce sells reaches that channel through the DAG's channel task.

Starts the Airflow 3 components as subprocesses on a throw-away home (SQLite, LocalExecutor, as `airflow
standalone` configures them): the API server (task workers report through its execution API), the DAG processor
(over a DAGs folder holding only `hot_data_sync.py`, so parsing is instant), the scheduler and the triggerer (which
runs `ErpChangeFeedTrigger`). Connections come from `AIRFLOW_CONN_*` variables pointing at the sandbox.

The first change includes Airflow's start-up; the second one measures the event-driven latency from the ERP's
commit to the storefront showing the new figure, and prints it (recorded in docs/adr/0004).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from catalog_sync.airflow.budgets import POOLS
from catalog_sync.flows import steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import AuditEvent, DqKpi, SyncRun
from tests.conftest import airflow_connection_env

pytestmark = pytest.mark.airflow_live

REPO = Path(__file__).resolve().parents[2]
SKU = "MH01-XS-Black"
#: A simple product of Adobe Commerce's category trees, published there before the hot changes.
ADOBE_SKU = "24-MB01"
FIRST_WITHIN_S = 120.0  # includes Airflow's start-up
NEXT_WITHIN_S = 45.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    done = subprocess.run(cmd, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, timeout=180)
    assert done.returncode == 0, f"{' '.join(cmd[2:])} failed:\n{log.read_text()[-3000:]}"


@pytest.fixture
def airflow(tmp_path: Path, fresh_sandbox: Any) -> Iterator[dict[str, Any]]:
    """A running Airflow (api-server, dag-processor, scheduler, triggerer) over a fresh home; killed afterwards."""
    home, dags, logs = tmp_path / "airflow", tmp_path / "dags", tmp_path / "logs"
    for folder in (home, dags, logs):
        folder.mkdir()
    shutil.copy(REPO / "dags" / "hot_data_sync.py", dags / "hot_data_sync.py")
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
        **airflow_connection_env(fresh_sandbox.url),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # No unpause step racing the first parse: the DAG is live as soon as it is parsed.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "catalog-sync-live-test-secret-0123456789abcdef",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
        "CATALOG_SYNC_HUB_URL": hub,
        "CATALOG_SYNC_HOME": str(tmp_path / "catalog-sync"),
    }
    airflow_cli = [sys.executable, "-m", "airflow"]
    setup_log = logs / "setup.log"
    _run([*airflow_cli, "db", "migrate"], env, setup_log)
    _run([*airflow_cli, "pools", "set", "storefront_hot", str(POOLS["storefront_hot"].size), "Shopify Admin API, hot path"], env, setup_log)
    # the hot DAG's channel task (sync_channel_adobe_commerce) runs in the channel's pool
    _run([*airflow_cli, "pools", "set", "adobe_commerce_api", str(POOLS["adobe_commerce_api"].size),
          "Adobe Commerce admin REST API"], env, setup_log)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in (("api-server", ["api-server", "--port", str(port)]), ("dag-processor", ["dag-processor"]),
                           ("scheduler", ["scheduler"]), ("triggerer", ["triggerer"])):
            # Each component leads its own process group, so its workers and supervisors die with it.
            procs[name] = subprocess.Popen([*airflow_cli, *args], env=env, stdout=(logs / f"{name}.log").open("w"),
                                           stderr=subprocess.STDOUT, start_new_session=True)
        yield {"hub": hub, "logs": logs, "procs": procs}
    finally:
        for proc in procs.values():
            with _suppress_gone():
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with _suppress_gone():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


class _suppress_gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def _publish_one(systems: Systems, hub: str) -> dict[str, Any]:
    """What the nightly publish leaves for one SKU: a storefront product and the hub's ExternalId rows."""
    price = next(p["price"] for page in systems.erp.iter_prices() for p in page.records if p["sku"] == SKU)
    result = systems.storefront.upsert_product({
        "handle": "hot-live-mh01", "title": "Chaz Kangeroo Hoodie", "status": "active",
        "variants": [{"sku": SKU, "price": f"{price:.2f}", "option1": "XS"}],
    })
    assert result.ok and result.response, result
    product = result.response
    extra = {"inventory_item_id": product["variants"][0]["inventory_item_id"], "product_id": product["id"],
             "handle": product["handle"]}
    steps.save_external_ids("storefront", "product", {SKU.split("-")[0]: (str(product["id"]), None)}, hub)
    steps.save_external_ids("storefront", "variant", {SKU: (str(product["variants"][0]["id"]), extra)}, hub)
    return extra


def _publish_one_to_adobe(systems: Systems, hub: str) -> None:
    """What the nightly's channel publish leaves for one simple product sold on Adobe Commerce (a Gear bag): the
    product on the channel and the hub's fingerprint of it under the channel's name."""
    price = next(p["price"] for page in systems.erp.iter_prices() for p in page.records if p["sku"] == ADOBE_SKU)
    client = systems.channels["adobe_commerce"]
    (result,) = client.publish([{"sku": ADOBE_SKU, "name": "Joust Duffle Bag", "reference_price": price,
                                 "lifecycle_status": "active"}], client.catalog())
    assert result.ok, result
    with session_scope(hub) as s:
        repo.save_fingerprints(s, "adobe_commerce", "product", {ADOBE_SKU: "published by hand"}, "hot-live-setup")


def _adobe_quantity(fresh_sandbox: Any, source: str) -> Any:
    answer = requests.get(f"{fresh_sandbox.url}/adobe_commerce/rest/all/V1/inventory/source-items", timeout=10,
                          params={"searchCriteria[filter_groups][0][filters][0][value]": ADOBE_SKU},
                          headers={"Authorization": "Bearer "
                                   f"{fresh_sandbox.credentials['adobe_commerce']['access_token']}"})
    answer.raise_for_status()
    return next((i["quantity"] for i in answer.json()["items"] if i["source_code"] == source), None)


def _wait(condition: Callable[[], bool], within: float, what: str, logs: Path) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if condition():
            return time.monotonic() - start
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"{what} not seen within {within:.0f} s\n{tails}")


def test_an_erp_stock_change_reaches_the_storefront_through_airflow(fresh_sandbox: Any,
                                                                     airflow: dict[str, Any]) -> None:
    fresh_sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        extra = _publish_one(systems, airflow["hub"])
        _publish_one_to_adobe(systems, airflow["hub"])
        location = next(loc["id"] for loc in systems.storefront.locations() if loc["erp_location"] == "DC-EAST")

        def shows(quantity: int) -> Callable[[], bool]:
            def check() -> bool:
                levels = systems.storefront.inventory_levels([extra["inventory_item_id"]])
                return any(lv["location_id"] == location and lv["available"] == quantity for lv in levels)
            return check

        assert systems.erp.set_stock(SKU, "DC-EAST", 41).ok
        first = _wait(shows(41), FIRST_WITHIN_S, "the first change (with Airflow start-up)", airflow["logs"])

        committed = datetime.now(UTC)
        assert systems.erp.set_stock(SKU, "DC-EAST", 42).ok
        latency = _wait(shows(42), NEXT_WITHIN_S, "the second change", airflow["logs"])
        print(f"\nhot path through Airflow: first change {first:.1f} s (with start-up), "
              f"second change {latency:.1f} s from ERP commit to storefront")

        with session_scope(airflow["hub"]) as s:
            runs = s.scalars(select(SyncRun).where(SyncRun.dag_id == "hot_data_sync")
                             .order_by(SyncRun.started_at)).all()
            assert runs and all(r.run_id for r in runs)
            last = next(r for r in reversed(runs) if r.records_delivered)
            # the batch that delivered it ended after the commit (it may have opened just before: a batch opens,
            # then freezes the feed's head, so a change committed in between is still its own)
            assert last.status == "success" and last.ended_at is not None
            assert last.ended_at.replace(tzinfo=UTC) >= committed
            kpi = s.get(DqKpi, (last.load_id, "timeliness"))
        assert kpi is not None and 0 <= kpi.value <= latency + 1
        print(f"timeliness KPI of that run: {kpi.value:.1f} s")

        # Adobe Commerce, through its own task (sync_channel_adobe_commerce) and cursor: stock of a SKU it sells
        assert systems.erp.set_stock(ADOBE_SKU, "DC-EAST", 17).ok
        to_adobe = _wait(lambda: _adobe_quantity(fresh_sandbox, "dc_east") == 17, NEXT_WITHIN_S,
                         "the change on Adobe Commerce", airflow["logs"])
        print(f"hot path to Adobe Commerce through Airflow: {to_adobe:.1f} s from ERP commit")
        with session_scope(airflow["hub"]) as s:
            delivered = [r for r in s.scalars(select(SyncRun).where(SyncRun.dag_id == "hot_data_sync"))
                         if ((r.details or {}).get("hops") or {}).get("erp->adobe_commerce", {}).get("delivered")]
            assert delivered and all(r.status == "success" for r in delivered)
            # the men's hoodie (not sold on Adobe) was read on Adobe's hop and never sent there
            skipped = s.scalars(select(AuditEvent).where(AuditEvent.system == "adobe_commerce",
                                                         AuditEvent.record_key == f"stock:{SKU}@DC-EAST")).all()
            assert skipped and {a.outcome for a in skipped} == {"unchanged"}
        assert any("task_id=sync_channel_adobe_commerce" in str(f) for f in airflow["logs"].rglob("*"))

        # The connections' secrets were used on every request of those runs, and reach no log or report.
        secrets = [json.loads(v) for v in airflow_connection_env(fresh_sandbox.url).values()]
        known = {c["password"] for c in secrets if c.get("password") and len(c["password"]) >= 5}
        assert {"erp-sandbox-key", "shpat_sandbox_token"} <= known
        files = [f for f in airflow["logs"].rglob("*") if f.is_file()]
        task_logs = [f for f in files if "task_id=sync_changes" in str(f)]
        assert task_logs, "no task log of sync_changes was written"
        with session_scope(airflow["hub"]) as s:
            audit = [json.dumps([a.request, a.response]) for a in s.scalars(select(AuditEvent))]
        assert audit
        for text, where in [*((f.read_text(errors="replace"), str(f)) for f in files), *((a, "audit") for a in audit)]:
            leaked = [k for k in known if k in text]
            assert not leaked, f"{leaked} in {where}"
    finally:
        systems.close()
