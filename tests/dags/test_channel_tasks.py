"""The nightly's tasks for the declared sales channels (governance/channels.yaml): one per enabled channel, beside
the storefront's publish, in the channel's own pool, with its client sized by that pool's budget."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from catalog_sync.airflow.budgets import POOLS
from catalog_sync.governance.channels import load_channels
from tests.dags.test_budgets import REPO


@pytest.fixture(scope="module")
def nightly() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "cold_data_nightly.py"))
    assert bag.import_errors == {}
    return bag.dags["cold_data_nightly"]


def test_each_enabled_channel_has_its_task_beside_the_storefronts_publish(nightly: Any) -> None:
    enabled = load_channels().enabled()
    assert [c.name for c in enabled] == ["adobe_commerce"]
    for channel in enabled:
        task = nightly.get_task(channel.task_id)
        assert (task.pool, task.pool_slots) == (channel.pool, POOLS[channel.pool].slots)
        assert task.upstream_task_ids == {"open_run", "gate_channel_content"}  # open_run: the load id's XCom
        assert task.downstream_task_ids == {"gate_consistency"}
        # beside publish_products: neither waits for the other
        assert "publish_products" not in task.upstream_task_ids | task.downstream_task_ids
        assert channel.task_id not in nightly.get_task("publish_products").get_flat_relative_ids(upstream=False)


def test_the_channel_task_gets_a_client_sized_by_its_pool(nightly: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.context import set_current_context

    from catalog_sync.airflow.tasks import OutsideBudget, channel_client, systems
    from tests.conftest import airflow_connection_env

    for name, value in airflow_connection_env("http://127.0.0.1:9").items():  # nothing listens: no request
        monkeypatch.setenv(name, value)
    task = nightly.get_task("publish_channel_adobe_commerce")
    ti = SimpleNamespace(task=task, dag_id=task.dag_id, task_id=task.task_id)
    with set_current_context({"ti": ti}):  # type: ignore[arg-type]
        client = channel_client("adobe_commerce")
        bundle = systems()
    assert client.options.max_concurrency == POOLS["adobe_commerce_api"].slots
    assert bundle.erp.options.max_concurrency == 1 and isinstance(bundle.pim, OutsideBudget)
    assert set(bundle.channels) == {"adobe_commerce"}
    bundle.close()
    client.close()
    # the storefront's publish has no budget for the channel: its bundle leaves it out
    shop = nightly.get_task("publish_products")
    with set_current_context({"ti": SimpleNamespace(task=shop, dag_id=shop.dag_id, task_id=shop.task_id)}):  # type: ignore[arg-type]
        assert systems().channels == {}
        assert isinstance(channel_client("adobe_commerce"), OutsideBudget)
