"""Fixtures for the UI tests: Airflow's real SimpleAuthManager and JWTs, and a hub seeded with known figures.

The app under test is mounted exactly as the api-server mounts it (``/catalog-sync`` next to the auth
manager's own ``/auth`` app), and tokens are obtained from ``POST /auth/token`` with a username and password,
so authentication runs through Airflow's own code end to end. Airflow's metadata database is only needed for
the revoked-token check; a throw-away SQLite file with that one table stands in for it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.ui.seed import seed_hub

USERS = {"admin": ("admin", "admin-pw"), "operator": ("op", "op-pw"), "viewer": ("viewer", "viewer-pw")}


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own CATALOG_SYNC_HOME and its own shared state store, in another folder (the UI reads Data
    Docs from the store only), so Data Docs built by one test never show up in another."""
    home = tmp_path / "catalog-sync-home"
    home.mkdir()
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(home))
    monkeypatch.setenv("CATALOG_SYNC_STORE_URL", (tmp_path / "catalog-sync-store").as_uri())
    return home


@pytest.fixture
def airflow_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow configured with SimpleAuthManager (admin, op and viewer users); yields the auth manager.

    Function-scoped on purpose: the environment, Airflow's session factory and the auth-manager singleton are
    all restored after each test, so tests elsewhere in the suite see Airflow exactly as they left it.
    """
    from airflow import settings
    from airflow.api_fastapi import app as api_app
    from airflow.models.revoked_token import RevokedToken
    from sqlalchemy import create_engine
    from sqlalchemy.orm import scoped_session, sessionmaker

    home = tmp_path_factory.mktemp("airflow-home")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: pw for name, (_, pw) in USERS.items()}))
    mp = pytest.MonkeyPatch()
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, (r, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
    }
    for key, value in env.items():
        mp.setenv(key, value)
    engine = create_engine(f"sqlite:///{home / 'airflow.db'}")
    RevokedToken.__table__.create(engine)
    mp.setattr(settings, "Session", scoped_session(sessionmaker(bind=engine, expire_on_commit=False)))
    previous = api_app._AuthManagerState.instance
    api_app._AuthManagerState.instance = None
    try:
        yield api_app.init_auth_manager()
    finally:
        api_app._AuthManagerState.instance = previous
        mp.undo()
        engine.dispose()


def build_root_app(**app_kwargs: Any) -> Any:
    """The api-server's shape: the auth manager's app at /auth and ours at /catalog-sync."""
    from airflow.api_fastapi.app import init_auth_manager
    from fastapi import FastAPI

    from catalog_sync.ui.app import create_app

    root = FastAPI()
    init_auth_manager(root)
    root.mount("/catalog-sync", create_app(**app_kwargs))
    return root


@pytest.fixture
def make_client(airflow_auth: Any) -> Callable[..., Any]:
    """Build a TestClient for the mounted app; keyword arguments go to ``create_app``."""
    from fastapi.testclient import TestClient

    def _make(**app_kwargs: Any) -> TestClient:
        return TestClient(build_root_app(**app_kwargs))

    return _make


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


@pytest.fixture
def tokens(airflow_auth: Any) -> dict[str, str]:
    """A JWT per user, issued by Airflow's own ``POST /auth/token`` after checking the password."""
    from fastapi.testclient import TestClient

    out = {}
    with TestClient(build_root_app()) as c:
        for name, (_, password) in USERS.items():
            resp = c.post("/auth/token", json={"username": name, "password": password})
            assert resp.status_code == 201, resp.text
            out[name] = resp.json()["access_token"]
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def seeded_hub(hub_url: str) -> dict[str, Any]:
    """The migrated test hub, seeded by :func:`tests.unit.ui.seed.seed_hub`."""
    return seed_hub(hub_url)


@pytest.fixture
def data_docs(seeded_hub: dict[str, Any]) -> Path:
    """Data Docs built for run nightly-1 (not for nightly-2) in the shared state store, plus a secret file at the
    store's root. Returns the local folder behind the run's Data Docs (the test store is a ``file://`` one)."""
    from catalog_sync import store

    root = Path(store.store_root().path)
    docs = root / "data_docs" / "nightly-1"
    (docs / "validations").mkdir(parents=True, exist_ok=True)
    (docs / "index.html").write_text("<html><body><h1>GX Data Docs nightly-1</h1></body></html>")
    (docs / "validations" / "v.html").write_text("<html>validation</html>")
    (root / "secret.txt").write_text("top secret")
    return docs
