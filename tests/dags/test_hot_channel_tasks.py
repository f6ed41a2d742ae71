"""The hot path's tasks for the declared sales channels (docs/adr/0018): one per enabled channel beside the
storefront's ``sync_changes``, in the channel's own pool, ahead of the nightly's tasks there, with clients sized
by that pool's budget and none for the storefront or the PIM."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from catalog_sync.airflow.budgets import POOLS
from catalog_sync.governance.channels import load_channels
from tests.dags.test_budgets import REPO


@pytest.fixture(scope="module")
def hot_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "hot_data_sync.py"))
    assert bag.import_errors == {}
    return bag.dags["hot_data_sync"]


def test_each_enabled_channel_has_its_hot_task_beside_the_storefronts(hot_dag: Any) -> None:
    enabled = load_channels().enabled()
    assert enabled
    assert {t.task_id for t in hot_dag.tasks} == {"sync_changes", *(f"sync_channel_{c.name}" for c in enabled)}
    for channel in enabled:
        task = hot_dag.get_task(f"sync_channel_{channel.name}")
        assert (task.pool, task.pool_slots) == (channel.pool, POOLS[channel.pool].slots)
        # neither waits on the other: a channel that is slow or down never holds the storefront's batch
        assert task.upstream_task_ids == set() and task.downstream_task_ids == set()
        # ahead of the nightly's publish in the same pool
        assert str(task.weight_rule).endswith("absolute") and task.priority_weight == 100


def test_the_hot_channel_task_calls_only_the_erp_and_its_channel(hot_dag: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.context import set_current_context

    from catalog_sync.airflow.tasks import OutsideBudget, channel_client, channel_source_map, systems
    from tests.conftest import airflow_connection_env

    for name, value in airflow_connection_env("http://127.0.0.1:9").items():  # nothing listens: no request
        monkeypatch.setenv(name, value)
    task = hot_dag.get_task("sync_channel_adobe_commerce")
    ti = SimpleNamespace(task=task, dag_id=task.dag_id, task_id=task.task_id)
    with set_current_context({"ti": ti}):  # type: ignore[arg-type]
        client = channel_client("adobe_commerce")
        bundle = systems()
        sources = channel_source_map("adobe_commerce")
    assert client.options.max_concurrency == POOLS["adobe_commerce_api"].slots
    assert bundle.erp.options.max_concurrency == POOLS["adobe_commerce_api"].also["erp"]
    assert isinstance(bundle.storefront, OutsideBudget) and isinstance(bundle.pim, OutsideBudget)
    assert sources and all(isinstance(k, str) and isinstance(v, str) for k, v in sources.items())
    bundle.close()
    client.close()
