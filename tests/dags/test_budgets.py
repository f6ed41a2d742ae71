"""Request budgets across workers (catalog_sync.airflow.budgets): every task that builds clients runs in a system's
pool with pool_slots equal to its client's concurrency, the pools keep every system within its limit, and a task
that calls a system its pool has no budget for fails fast instead of sending requests no pool counts.

Invariant (ARCHITECTURE.md): the requests in flight to a system from all workers together never exceed its limit.
The live half of it, counted at the sandbox's PIM through Airflow's scheduler, is
tests/integration/test_budgets_live.py.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog_sync.airflow import budgets
from catalog_sync.airflow.budgets import LIMITS, POOLS

REPO = Path(__file__).resolve().parents[2]
#: What a task body does to build a client of an external system.
BUILDS_CLIENTS = re.compile(r"\bsystems\(\)|configured_systems\(|client_from_connection\(|Hook\(|\.get_conn\(")


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def _client_tasks(dagbag: Any) -> list[Any]:
    found = []
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            fn = getattr(t, "python_callable", None)
            if fn is not None and BUILDS_CLIENTS.search(inspect.getsource(fn)):
                found.append(t)
    return found


def test_every_task_that_builds_clients_holds_its_concurrency_in_a_system_pool(dagbag) -> None:  # type: ignore[no-untyped-def]
    tasks = _client_tasks(dagbag)
    assert len(tasks) >= 20  # the audit: every DAG's system-calling tasks, none missed by the pattern
    wrong = [(t.dag_id, t.task_id, t.pool, t.pool_slots) for t in tasks
             if t.pool not in POOLS or t.pool_slots != POOLS[t.pool].slots]
    assert wrong == [], "tasks that call systems outside their pool's budget (pool, pool_slots)"
    # the client of the pool's system keeps exactly the slots the task holds
    for t in tasks:
        assert budgets.concurrency(t.pool, t.pool_slots)[POOLS[t.pool].system] == t.pool_slots


def test_no_task_asks_for_more_slots_than_its_pool_has(dagbag) -> None:  # type: ignore[no-untyped-def]
    # Airflow's scheduler never runs a task whose pool_slots exceed its pool's size (it logs and leaves it queued).
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            if t.pool in POOLS:
                assert 1 <= t.pool_slots <= POOLS[t.pool].size, (dag.dag_id, t.task_id)
                assert t.pool_slots == POOLS[t.pool].slots, (dag.dag_id, t.task_id)


def test_the_pools_keep_every_system_within_its_limit() -> None:
    bounded = {s: budgets.worst_case(s) for s in LIMITS}
    for system, limit in LIMITS.items():
        if limit.requests is not None:
            assert bounded[system] <= limit.requests, (system, bounded[system], limit.requests)
    assert bounded["pim"] == LIMITS["pim"].requests == 4  # Akeneo's documented calls at once per connection
    assert all("pim" not in p.also for p in POOLS.values())  # only pim_api's tasks call the PIM
    assert all(p.size % p.slots == 0 and p.slots <= p.size for p in POOLS.values())


def test_airflow_settings_and_the_test_harness_create_the_budgeted_pools() -> None:
    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text())["airflow"]
    assert {p["pool_name"]: p["pool_slot"] for p in settings["pools"]} == {n: p.size for n, p in POOLS.items()}
    from tests.integration.airflow_live import POOLS as HARNESS

    assert HARNESS == {n: p.size for n, p in POOLS.items()}


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import airflow_connection_env

    for name, value in airflow_connection_env("http://127.0.0.1:9").items():  # nothing listens: no request goes out
        monkeypatch.setenv(name, value)


def _systems_seen_by(task: Any) -> dict[str, Any]:
    """What ``tasks.systems()`` builds when ``task`` (a real task of a project DAG) is the running task: the
    context Airflow's task runner sets (``set_current_context``) with that task's instance."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.context import set_current_context

    from catalog_sync.airflow.tasks import OutsideBudget, systems
    from catalog_sync.connectors import ConfigurationError

    ti = SimpleNamespace(task=task, dag_id=task.dag_id, task_id=task.task_id)
    with set_current_context({"ti": ti}):  # type: ignore[arg-type]
        bundle = systems()
    seen: dict[str, Any] = {}
    for name in ("erp", "pim", "dam", "storefront", "supplier", "cdn"):
        client = getattr(bundle, name)
        if isinstance(client, OutsideBudget):
            with pytest.raises(ConfigurationError) as refused:
                client.batch_size  # noqa: B018 (using it is the point)
            seen[name] = f"refused: {refused.value}"
        else:
            seen[name] = client.options.max_concurrency
    bundle.close()
    return seen


def test_a_task_gets_clients_sized_by_its_pool_and_none_for_systems_outside_it(dagbag, connections) -> None:  # type: ignore[no-untyped-def]
    link_assets = dagbag.dags["cold_data_nightly"].get_task("link_assets")
    seen = _systems_seen_by(link_assets)
    assert seen == {"pim": 1, "erp": 1, "dam": 1, "storefront": 1, "supplier": 1, "cdn": 1}
    hot = _systems_seen_by(dagbag.dags["hot_data_sync"].get_task("sync_changes"))
    assert (hot["storefront"], hot["erp"], hot["cdn"]) == (2, 4, 1)
    assert hot["pim"].startswith("refused: task hot_data_sync.sync_changes called the pim from pool "
                                 "'storefront_hot'")
    read_dam = _systems_seen_by(dagbag.dags["weekly_reconciliation"].get_task("read_dam"))
    assert read_dam["dam"] == 1
    assert all(str(read_dam[s]).startswith("refused") for s in ("erp", "pim", "storefront", "supplier", "cdn"))


def test_a_system_called_outside_the_budget_fails_fast(dagbag, connections) -> None:  # type: ignore[no-untyped-def]
    from catalog_sync.airflow.defaults import fail_fast_kind
    from catalog_sync.airflow.tasks import OutsideBudget

    refused = OutsideBudget("pim", "cold_data_nightly.extract_erp", "erp_api", 1)
    with pytest.raises(Exception) as exc:
        refused.upsert_products([{"identifier": "MH01-XS-Black"}])
    assert fail_fast_kind(exc.value) == "configuration error"  # the task ends on its first try, no retry


def test_outside_a_task_the_clients_keep_their_connections_concurrency(connections) -> None:  # type: ignore[no-untyped-def]
    from catalog_sync.airflow.tasks import systems

    bundle = systems()
    assert bundle.pim.options.max_concurrency == 4 and bundle.erp.options.max_concurrency == 4
    bundle.close()


def test_the_client_keeps_the_lower_of_its_budget_and_its_connections_concurrency() -> None:
    from airflow.models.connection import Connection

    from catalog_sync.airflow.hooks import client_from_connection
    from catalog_sync.domain import System

    def pim(**extra: Any) -> Any:
        return Connection(conn_id="catalog_sync_pim", conn_type="catalog_sync_pim", host="127.0.0.1", port=9,
                          login="u", password="p", extra=json.dumps({"client_id": "c", "client_secret": "s", **extra}))

    assert client_from_connection(System.PIM, pim(), max_concurrency=1).options.max_concurrency == 1
    assert client_from_connection(System.PIM, pim(max_concurrency=2), max_concurrency=4).options.max_concurrency == 2
    assert client_from_connection(System.PIM, pim(max_concurrency=2)).options.max_concurrency == 2
