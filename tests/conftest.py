"""Shared fixtures: hub databases on SQLite and, when configured, on PostgreSQL.

``CATALOG_SYNC_TEST_PG_URL`` (CI sets it) makes every hub-database test run on PostgreSQL too; when it is set
and the server cannot be reached, the tests fail rather than skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The demo catalog shipped in the repository (demo-data/README.md); CATALOG_SYNC_DEMO_CATALOG points elsewhere.
LUMA = Path(os.environ.get("CATALOG_SYNC_DEMO_CATALOG") or REPO / "demo-data" / "luma")

PG_URL = os.environ.get("CATALOG_SYNC_TEST_PG_URL")

# Airflow reads its home when first imported: point it at a throw-away folder before any test imports it, so no
# test touches a developer's own Airflow database. The metadata DB is migrated lazily (fixture `airflow_db`).
# This module is imported twice (as pytest's `conftest` and as `tests.conftest` by test modules): both imports
# must agree on one home, or Airflow would read one folder and `airflow_db` migrate another.
_AIRFLOW_HOME = os.environ.get("CATALOG_SYNC_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(
    prefix="catalog-sync-test-airflow-")
os.environ["CATALOG_SYNC_TEST_AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", None)
# No freeze window unless a test declares one (its own calendar file): the suite must not change outcome on the
# day a shipped window (governance/freeze_windows.yaml) begins.
os.environ["CATALOG_SYNC_FREEZE_CALENDAR"] = str(REPO / "tests" / "data" / "freeze_none.yaml")
HUB_BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test touches the developer's own .state folder or hub."""
    home = tmp_path_factory.mktemp("catalog-sync-home")
    old = {k: os.environ.get(k) for k in ("CATALOG_SYNC_HOME", "CATALOG_SYNC_HUB_URL", "CATALOG_SYNC_STORE_URL",
                                          "CATALOG_SYNC_STORE_CONN_ID")}
    os.environ["CATALOG_SYNC_HOME"] = str(home)
    for name in ("CATALOG_SYNC_HUB_URL", "CATALOG_SYNC_STORE_URL", "CATALOG_SYNC_STORE_CONN_ID"):
        os.environ.pop(name, None)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@dataclass(frozen=True)
class SplitState:
    """A local state folder and a shared state store in two unrelated folders (see :func:`store_elsewhere`)."""

    home: Path  # CATALOG_SYNC_HOME: what one process keeps for itself
    store: Path  # the folder behind CATALOG_SYNC_STORE_URL: what tasks and the UI share

    def fresh_home(self, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Throw the local state folder away and point CATALOG_SYNC_HOME at an empty one, as if the next task (or
        the UI) ran on another machine; the store stays."""
        import shutil

        shutil.rmtree(self.home)
        other = self.home.with_name(self.home.name + "-elsewhere")
        other.mkdir()
        monkeypatch.setenv("CATALOG_SYNC_HOME", str(other))
        return other


@pytest.fixture
def store_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SplitState:
    """CATALOG_SYNC_HOME in one temporary folder, the shared state store (a ``file://`` URL) in another, so a test
    can show that what tasks hand each other never passes through the local state folder."""
    split = SplitState(home=tmp_path / "local-state", store=tmp_path / "shared-store")
    split.home.mkdir()
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(split.home))
    monkeypatch.setenv("CATALOG_SYNC_STORE_URL", split.store.as_uri())
    monkeypatch.delenv("CATALOG_SYNC_STORE_CONN_ID", raising=False)
    return split


def pg_schema_url(base_url: str) -> Iterator[str]:
    """A throw-away schema in the configured PostgreSQL, dropped afterwards; yields a URL pinned to it."""
    from sqlalchemy import create_engine, text

    schema = f"cs_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # a configured but unreachable PostgreSQL is a failure, not a skip
        pytest.fail(f"CATALOG_SYNC_TEST_PG_URL is set but PostgreSQL is unusable: {exc}")
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        from catalog_sync.hub.db import _engine

        _engine.cache_clear()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=HUB_BACKENDS)
def empty_hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty hub database (no tables), on each configured backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.sqlite'}"
    else:
        assert PG_URL
        yield from pg_schema_url(PG_URL)


@pytest.fixture
def hub_url(empty_hub_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated hub database, also made the process default through CATALOG_SYNC_HUB_URL."""
    from catalog_sync.hub.db import migrate

    migrate(empty_hub_url)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", empty_hub_url)
    return empty_hub_url


# ---------------------------------------------------------------------------------------------------------------
# Sandbox systems (owner: the sandbox, issue #3). A real HTTP service on a free 127.0.0.1 port, in a background
# thread, over its own temporary SQLite database, loaded with the Luma catalog.
#
#   sandbox          session-scoped, READ-ONLY by convention: never mutate it (use fresh_sandbox for that).
#   fresh_sandbox    function-scoped: a second server, emptied and reloaded with Luma before each test.
#   Both have their PIM bootstrapped (bootstrap_pim); a test that loads a sandbox itself calls load_sandbox.
#   sandbox_faults   function-scoped: set_faults(system, **config) on the shared `sandbox`; cleared afterwards.
#
# Each yields a catalog_sync_sandbox.server.SandboxServer: .url (base URL), .credentials ({system: {...}} in the
# field names of catalog_sync.connectors.credentials), .state (in-process settings/faults), and the control helpers
# .load(), .reset(), .scenario(name, skus), .set_faults(system, **config), .clear_faults(system=None),
# .settings(**changes).
# ---------------------------------------------------------------------------------------------------------------


def bootstrap_pim(server: object) -> dict[str, object]:
    """``catalog-sync pim bootstrap`` against a sandbox: a loaded sandbox's PIM is a fresh Akeneo with content that
    names attributes, families and options nobody has created yet; the product creates them, as before a first
    nightly. Returns the bootstrap's report."""
    from catalog_sync.connectors import PimClient
    from catalog_sync.governance.pim_bootstrap import bootstrap

    with PimClient(f"{server.url}/pim", server.credentials["pim"]) as pim:  # type: ignore[attr-defined]
        return bootstrap(pim).as_dict()


def load_sandbox(server: object, catalog: Path | str = LUMA, **kwargs: object) -> dict[str, object]:
    """Empty the sandbox, load ``catalog`` and bootstrap its PIM: the state every flow test starts from."""
    summary: dict[str, object] = server.load(str(catalog), **kwargs)  # type: ignore[attr-defined]
    bootstrap_pim(server)
    return summary


def _start_sandbox(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[object]:
    from catalog_sync_sandbox.server import SandboxServer

    folder = tmp_path_factory.mktemp(name)
    server = SandboxServer(f"sqlite:///{folder / 'sandbox.sqlite'}").start()
    try:
        load_sandbox(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The sandbox systems loaded with the Luma catalog, shared by the whole session (do not mutate)."""
    yield from _start_sandbox(tmp_path_factory, "sandbox-shared")


@pytest.fixture(scope="session")
def _mutable_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from _start_sandbox(tmp_path_factory, "sandbox-mutable")


@pytest.fixture
def fresh_sandbox(_mutable_sandbox: object) -> object:
    """A sandbox a test may change freely: emptied, faults and settings reset, Luma reloaded and its PIM
    bootstrapped (about a second)."""
    load_sandbox(_mutable_sandbox)  # load resets first
    return _mutable_sandbox


@pytest.fixture
def sandbox_faults(sandbox: object) -> Iterator[object]:
    """``set_faults(system, **config)`` against the shared sandbox; every fault is cleared after the test."""
    yield sandbox.set_faults  # type: ignore[attr-defined]
    sandbox.clear_faults()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------------
# Airflow (owner: the lead). A migrated metadata DB for dag.test(), and Airflow connections to a sandbox.
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _airflow_db_migrated() -> str:
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return _AIRFLOW_HOME


@pytest.fixture
def airflow_db(_airflow_db_migrated: str) -> str:
    """The session's throw-away Airflow metadata database, migrated once; returns AIRFLOW_HOME.

    Checked on every use from this process's own point of view (the one ``dag.test()`` runs in): it must be
    the throw-away file, never a developer's database, and must hold Airflow's tables. Pooled connections that
    predate the migration are dropped, so none of them answers from before it.
    """
    from airflow import settings
    from sqlalchemy import inspect

    engine = settings.Session.get_bind() if settings.Session is not None else settings.engine
    database = engine.url.database or ""
    assert database.startswith(_AIRFLOW_HOME), (
        f"Airflow in this process uses {engine.url!r}, not the test home {_AIRFLOW_HOME}: something configured "
        "Airflow before tests/conftest.py set AIRFLOW_HOME")
    engine.dispose()
    if "dag" not in inspect(engine).get_table_names():  # the subprocess migrated another file than we read
        from airflow.utils.db import initdb

        initdb()
    return _airflow_db_migrated


def airflow_connection_env(base_url: str) -> dict[str, str]:
    """AIRFLOW_CONN_* variables for the catalog_sync_* connections of airflow_settings.yaml, re-pointed at
    ``base_url`` (a sandbox on some port), URLs in their extras (the CDN's site_url) included."""
    import json
    from urllib.parse import urlsplit

    import yaml

    target = urlsplit(base_url)
    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text())
    env = {}
    for conn in settings["airflow"]["connections"]:
        demo = f"{conn['conn_schema']}://{conn['conn_host']}:{conn['conn_port']}"
        extra = {k: v.replace(demo, base_url.rstrip("/"), 1) if isinstance(v, str) and v.startswith(demo) else v
                 for k, v in (conn.get("conn_extra") or {}).items()}
        env[f"AIRFLOW_CONN_{conn['conn_id'].upper()}"] = json.dumps({
            "conn_type": conn["conn_type"], "host": target.hostname, "port": target.port,
            "schema": target.scheme, "login": conn.get("conn_login"), "password": conn.get("conn_password"),
            "extra": extra,
        })
    return env


@pytest.fixture
def airflow_connections(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``point_at(base_url)``: make the catalog_sync_* Airflow connections reach that sandbox for this test."""

    def point_at(base_url: str) -> None:
        for name, value in airflow_connection_env(base_url).items():
            monkeypatch.setenv(name, value)

    return point_at
