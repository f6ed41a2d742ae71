"""Request budgets: how many requests each external system may have in flight from all Airflow workers together, and
the pools that hold every worker to it. Light to import: DAG files read it at parse time.

Airflow's pools live in the metadata database, so every scheduler and worker shares them, on ``airflow
standalone`` as on Celery. A pool's slots count *requests in flight*, not tasks:

* a task that calls external systems runs in the pool of one of them (:data:`POOLS`), with ``pool_slots`` equal to
  the requests in flight its client of that system may keep: ``catalog_sync.airflow.tasks.systems()`` builds that
  client with ``max_concurrency = pool_slots``, read from the running task itself, so the two cannot disagree;
* a task may call a few other systems too (its pool's ``also``), each with the fixed concurrency listed there;
  calling any other system is a ``ConfigurationError`` (fail fast), so the table below is the whole truth;
* so at most ``worst_case(system)`` requests are in flight to a system from all workers together: its own pool's
  size, plus, for every pool whose tasks may also call it, the most tasks that pool runs at once times their
  concurrency. ``tests/dags/test_budgets.py`` holds that bound to the system's limit (:data:`LIMITS`).

Akeneo is the system with a documented, enforced limit, so every task that calls the PIM runs in ``pim_api`` and
the PIM is no other pool's "also". Airflow runs one task in one pool only; that is why the other systems of a task
are budgeted per pool, not per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True)
class Limit:
    """Requests a system takes at once from Catalog Sync's workers together; None when it limits something else."""

    requests: int | None
    source: str


#: Per system: the most requests in flight from all workers together, and where the figure comes from.
LIMITS: Final[Mapping[str, Limit]] = {
    "pim": Limit(4, "Akeneo: at most 4 API calls at once per PIM connection (10 per instance), 429 beyond "
                    "(api.akeneo.com/documentation/good-practices.html); every worker uses the one connection"),
    "erp": Limit(14, "the ERP publishes no limit: the most Catalog Sync sends it, for its owners to agree to"),
    "dam": Limit(10, "the DAM publishes no limit: the most Catalog Sync sends it, for its owners to agree to"),
    "supplier": Limit(4, "the supplier portal publishes no limit: the most Catalog Sync sends it"),
    "storefront": Limit(None, "Shopify meters points, not requests at once: one bucket per app and shop, which every "
                              "client follows from the throttleStatus of each answer"),
    "cdn": Limit(None, "Fastly's purge API sets no limit on requests at once"),
    "adobe_commerce": Limit(6, "Adobe Commerce publishes no limit on requests at once (its REST rate limiting is a "
                               "store setting, off by default): the most Catalog Sync sends the channel, for the "
                               "store's owners to agree to: one request in flight per task (products go in bulks "
                               "polled to the end), from its own pool and from a dead-letter replay"),
}


@dataclass(frozen=True)
class Pool:
    """An Airflow pool of one system. Every task in it takes ``slots`` slots and keeps at most ``slots`` requests
    in flight to ``system``, and at most ``also[s]`` to each other system ``s`` it may call."""

    name: str
    system: str
    size: int
    slots: int
    description: str
    also: Mapping[str, int] = field(default_factory=dict)

    @property
    def most_tasks(self) -> int:
        """Tasks of this pool running at once, at most."""
        return self.size // self.slots


#: The pools, as airflow_settings.yaml creates them (tests/dags/test_budgets.py checks the two agree).
POOLS: Final[Mapping[str, Pool]] = {p.name: p for p in (
    Pool("pim_api", "pim", 4, 1, "Akeneo PIM: 4 API calls at once per connection (a fifth gets 429); a slot is "
         "one call in flight; every task that calls the PIM runs here",
         # adobe_commerce: a replay of a channel's letters re-reads the PIM and publishes to the channel
         also={"erp": 1, "dam": 1, "storefront": 1, "supplier": 1, "cdn": 1, "adobe_commerce": 1}),
    Pool("erp_api", "erp", 2, 1, "ERP REST API; a slot is one call in flight"),
    Pool("dam_api", "dam", 2, 1, "DAM API; a slot is one call in flight"),
    Pool("storefront_api", "storefront", 2, 1, "Shopify GraphQL Admin API; a slot is one request in flight, and "
         "every client paces itself on the shop's cost bucket (Plus: 10,000 points, 1,000 a second)",
         also={"erp": 1, "dam": 1, "cdn": 1}),
    Pool("storefront_hot", "storefront", 2, 2, "The hot path's own slots on the Shopify Admin API (stock, live "
         "prices), so a nightly publish holding storefront_api never delays it; same cost bucket",
         also={"erp": 4, "cdn": 1}),
    # a declared sales channel (catalog_sync/governance/channels.yaml) publishes in its own pool, so a channel that
    # is slow or down never holds the storefront's slots; its task reads status and live prices from the ERP, and
    # its image task the assets and their renditions from the DAM
    Pool("adobe_commerce_api", "adobe_commerce", 2, 1, "Adobe Commerce admin REST API (a declared sales "
         "channel); a slot is one request in flight", also={"erp": 1, "dam": 1}),
)}


def pool(name: str) -> dict[str, Any]:
    """``@task(**pool("pim_api"))``: the task's pool and its ``pool_slots``, from :data:`POOLS`."""
    return {"pool": name, "pool_slots": POOLS[name].slots}


def concurrency(pool_name: str | None, pool_slots: int) -> dict[str, int]:
    """Requests in flight a task of ``pool_name`` holding ``pool_slots`` may keep, per system it may call: its
    pool's system gets ``pool_slots``, the pool's ``also`` systems their listed figure. A pool that is not in
    :data:`POOLS` (``default_pool``) may call none."""
    found = POOLS.get(pool_name or "")
    if found is None:
        return {}
    return {**found.also, found.system: pool_slots}


def worst_case(system: str) -> int:
    """The most requests in flight to ``system`` from all workers together that the pools allow."""
    total = 0
    for p in POOLS.values():
        if p.system == system:
            total += p.size  # each running task holds as many slots as it keeps requests in flight
        total += p.most_tasks * p.also.get(system, 0)
    return total
