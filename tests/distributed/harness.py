"""A multi-machine Catalog Sync on one machine: Airflow's CeleryExecutor with two workers that share nothing but
PostgreSQL (Airflow's metadata, Celery's results, the hub), Redis (the broker) and the object store.

``celery_airflow(root, dag_files, sandbox_url)`` creates throw-away databases ``dist_airflow_<hex>`` and
``dist_hub_<hex>`` (``prefix`` changes ``dist``) in the local PostgreSQL (``CATALOG_SYNC_TEST_PG_URL`` names another server; its database part is
ignored), empties the Redis database ``CATALOG_SYNC_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/3``;
``redis_url`` names another),
migrates the hub, starts a ``LiveAirflow`` (tests/integration/airflow_live.py) with a ``CeleryDeployment`` of two
workers ``worker-a`` and ``worker-b``, and yields a ``Distributed``. Everything is stopped, dropped and emptied
afterwards. Every component and task sees ``CATALOG_SYNC_HUB_URL`` (the hub database) and
``CATALOG_SYNC_STORE_URL`` (``file://<root>/shared-store``, the one folder the deployment shares, standing for an
object store); ``CATALOG_SYNC_HOME`` is private to each process (``<root>/<component>/catalog-sync``).

PostgreSQL and Redis are required where they are promised (``CI`` is set, or one of the URLs is): there an
unreachable server fails the caller. Elsewhere ``unavailable()`` gives the reason to skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.airflow_live import CeleryDeployment, LiveAirflow, live_airflow

PG_URL = os.environ.get("CATALOG_SYNC_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("CATALOG_SYNC_TEST_REDIS_URL") or "redis://127.0.0.1:6379/3"
WORKERS = ("worker-a", "worker-b")


def required() -> bool:
    """PostgreSQL and Redis are promised here: their absence is a failure, not a skip."""
    return any(os.environ.get(k) for k in ("CI", "CATALOG_SYNC_TEST_PG_URL", "CATALOG_SYNC_TEST_REDIS_URL"))


def _pg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return url.set(database=database).render_as_string(hide_password=False)


def unavailable() -> str | None:
    """Why PostgreSQL or Redis cannot be used here, or None."""
    import psycopg
    import redis

    try:
        with psycopg.connect(_dsn(_pg_url("postgres")), connect_timeout=5):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} is unusable: {exc}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} is unusable: {exc}"
    return None


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def databases(prefix: str = "dist", kinds: tuple[str, ...] = ("airflow", "hub")) -> Iterator[tuple[str, ...]]:
    """New, empty PostgreSQL databases ``<prefix>_<kind>_<hex>`` (by default Airflow's metadata and the hub): their
    URLs, in the order of ``kinds``; dropped afterwards."""
    import psycopg

    tag = uuid.uuid4().hex[:10]
    names = tuple(f"{prefix}_{kind}_{tag}" for kind in kinds)
    admin = _dsn(_pg_url("postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield tuple(_pg_url(name) for name in names)
    finally:
        from catalog_sync.hub.db import _engine

        _engine.cache_clear()  # this process's pooled hub connections
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_database(url: str = REDIS_URL) -> Iterator[str]:
    """The Redis database of ``url``, emptied before and after."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def hub_run(hub: str, dag_id: str, run_id: str) -> Any:
    """The hub's ``SyncRun`` of one Airflow run."""
    from sqlalchemy import select

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import SyncRun

    with session_scope(hub) as s:
        return s.scalars(select(SyncRun).where(SyncRun.dag_id == dag_id, SyncRun.run_id == run_id)).one()


def scheduled_run(airflow: LiveAirflow, dag_id: str) -> str:
    """Unpause ``dag_id`` once it is parsed; the run the scheduler then creates (catchup is off: one)."""
    airflow.wait(lambda: airflow._query("SELECT 1 FROM dag WHERE dag_id = ?", dag_id), 180, f"{dag_id} parsed")
    airflow.cli("dags", "unpause", dag_id)
    (run_id, _, _), *_ = airflow.wait(lambda: airflow.runs(dag_id), 120, f"the scheduled {dag_id} run")
    return str(run_id)


@dataclass
class Distributed:
    """A running distributed deployment: the Airflow (``airflow.url`` is the api-server), the hub's URL, the shared
    store's folder."""

    airflow: LiveAirflow
    hub_url: str
    store: Path


@contextmanager
def celery_airflow(root: Path, dag_files: list[str], sandbox_url: str, extra_env: dict[str, str] | None = None,
                   *, workers: tuple[str, ...] = WORKERS, concurrency: int = 1,
                   connection_extras: dict[str, dict[str, Any]] | None = None,
                   pools: dict[str, int] | None = None, prefix: str = "dist",
                   redis_url: str = REDIS_URL) -> Iterator[Distributed]:
    """See the module docstring. ``pools`` default to the production sizes (``airflow_live.POOLS``); ``prefix``
    names the throw-away databases (``<prefix>_airflow_<hex>``, ``<prefix>_hub_<hex>``) and ``redis_url`` the Redis
    database used as the broker (emptied before and after)."""
    from catalog_sync.hub.db import _engine, migrate

    store = root / "shared-store"
    store.mkdir(parents=True, exist_ok=True)
    with databases(prefix) as (metadata_url, hub_url), redis_database(redis_url) as broker_url:
        migrate(hub_url)
        _engine.cache_clear()
        env = {"CATALOG_SYNC_HUB_URL": hub_url, "CATALOG_SYNC_STORE_URL": store.as_uri(), **(extra_env or {})}
        deployment = CeleryDeployment(metadata_url, broker_url, workers, concurrency)
        with live_airflow(root, dag_files, sandbox_url, env, connection_extras, celery=deployment, plugins=True,
                          pools=pools) as airflow:
            yield Distributed(airflow, hub_url, store)
