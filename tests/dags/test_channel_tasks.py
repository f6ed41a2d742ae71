"""The nightly's tasks for the declared sales channels (governance/channels.yaml): one per enabled channel, beside
the storefront's publish, in the channel's own pool, with its client sized by that pool's budget; its images after
its products; the image_windows sweep's repair per channel."""

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
        # its images follow it (when it takes images), in a task of their own
        assert task.downstream_task_ids == {"gate_consistency"} | ({channel.image_task_id} if channel.images else set())
        # beside publish_products: neither waits for the other
        assert "publish_products" not in task.upstream_task_ids | task.downstream_task_ids
        assert channel.task_id not in nightly.get_task("publish_products").get_flat_relative_ids(upstream=False)


def test_each_channel_taking_images_has_its_image_task_after_its_products(nightly: Any) -> None:
    for channel in load_channels().enabled():
        assert channel.images is not None
        task = nightly.get_task(channel.image_task_id)
        assert (task.pool, task.pool_slots) == (channel.pool, POOLS[channel.pool].slots)
        # after the channel's own product publish (a gallery needs its product), before the consistency gate
        assert task.upstream_task_ids == {"open_run", channel.task_id}
        assert task.downstream_task_ids == {"gate_consistency"}
        # the storefront's image work neither waits for it nor holds it back
        for shop in ("publish_products", "plan_image_chunks", "publish_images"):
            relatives = nightly.get_task(shop).get_flat_relative_ids(upstream=False)
            assert channel.image_task_id not in relatives, shop
            assert shop not in task.get_flat_relative_ids(upstream=True)
        # its pool lets it read the DAM (the assets and their renditions)
        assert POOLS[channel.pool].also.get("dam", 0) >= 1


def test_the_image_windows_sweep_repairs_each_channel_in_a_task_of_its_own() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "image_windows.py"))
    assert bag.import_errors == {}
    windows = bag.dags["image_windows"]
    for channel in load_channels().enabled():
        task = windows.get_task(f"sweep_channel_{channel.name}")
        assert task.upstream_task_ids == {"sweep"}  # the storefront's repair first: it unlinks what may not show
        assert task.pool == "pim_api" and POOLS["pim_api"].also.get(channel.name, 0) >= 1


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
