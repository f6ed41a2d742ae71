"""A real Airflow api-server with the Catalog Sync plugin, a seeded hub, and headless Chromium.

The server runs in a temporary AIRFLOW_HOME: ``airflow db migrate``, ``airflow dags reserialize`` (so the
stand-in ``dead_letter_replay`` DAG below and the real manual DAGs of ``MANUAL_DAG_FILES`` exist and can be
triggered), then ``airflow api-server`` on a free
port with SimpleAuthManager users admin:admin and viewer:viewer from a passwords file, the repository's
``plugins/`` folder, and CATALOG_SYNC_HOME / CATALOG_SYNC_HUB_URL pointing at a hub seeded with known figures.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
STAND_INS = Path(__file__).with_name("stand_ins")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = {"admin": "admin", "viewer": "viewer"}
#: Manual DAGs served as they are, so the browser fills in their real trigger forms (nothing runs them: no scheduler).
MANUAL_DAG_FILES = ("seasonal_republish.py", "sync_rollback.py")
#: An Airflow run of the replay DAG that the hub knows, for the "Catalog Sync" tab on the DAG run page.
E2E_RUN_ID = "manual__e2e-catalog-sync"

#: Stand-in for the lead's replay DAG: same dag_id and conf contract, so triggering it is real.
REPLAY_DAG = '''
"""Stand-in dead_letter_replay DAG for the browser tests (the real one lives in dags/)."""
from airflow.sdk import dag, task


@dag(dag_id="dead_letter_replay", schedule=None, catchup=False, tags=["e2e"])
def dead_letter_replay():
    @task
    def replay(**context):
        return context["params"].get("dead_letter_ids")

    replay()


dead_letter_replay()
'''


@dataclass(frozen=True)
class AirflowServer:
    """A running api-server: its URL, environment, its local state folder and the shared state store (a folder
    apart from it, behind CATALOG_SYNC_STORE_URL) that holds the Data Docs it serves."""

    url: str
    env: dict[str, str]
    state_dir: Path
    store_dir: Path
    hub_url: str
    dead_letters: dict[str, int]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _airflow(env: dict[str, str], *args: str, log: Path, timeout: float) -> None:
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            [str(BIN / "airflow"), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if proc.returncode != 0:
        pytest.fail(f"airflow {' '.join(args)} failed ({proc.returncode}); see {log}")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"airflow api-server did not answer within {timeout:.0f} s; see {log}")


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """Start the api-server once for all browser tests; stopped (its process group only) afterwards."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: run scripts/install_test_tools.sh")
    from catalog_sync.hub.db import _engine, migrate, session_scope
    from catalog_sync.hub.models import SyncRun
    from tests.unit.ui.seed import seed_hub

    root = tmp_path_factory.mktemp("e2e")
    home, state, dags, shared = root / "airflow", root / "catalog-sync", root / "dags", root / "shared-store"
    for d in (home, state, dags, shared):
        d.mkdir()
    (dags / "dead_letter_replay.py").write_text(REPLAY_DAG)
    for name in MANUAL_DAG_FILES:  # the real DAGs whose trigger forms the browser fills in
        shutil.copy(REPO / "dags" / name, dags / name)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    hub_url = f"sqlite:///{state / 'hub.sqlite'}"
    migrate(hub_url)
    seeded = seed_hub(hub_url)
    with session_scope(hub_url) as session:  # the hub run behind the Airflow run the tab test opens
        session.add(
            SyncRun(
                load_id="replay-e2e",
                flow="dead_letter_replay",
                dag_id="dead_letter_replay",
                run_id=E2E_RUN_ID,
            )
        )
    _engine.cache_clear()  # the api-server opens the file itself; drop our pooled connections
    docs = shared / "data_docs" / "nightly-1"  # as the docs task uploads them (quality.docs.build_data_docs)
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html><body><h1>GX Data Docs of nightly-1</h1></body></html>")
    (shared / "secret.txt").write_text("top secret")

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "CATALOG_SYNC_HOME": str(state),
            "CATALOG_SYNC_STORE_URL": shared.as_uri(),
            "CATALOG_SYNC_HUB_URL": hub_url,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            # serves the stand-in catalog_sync.airflow.systems (see stand_ins/sitecustomize.py)
            "PYTHONPATH": os.pathsep.join(p for p in (str(STAND_INS), os.environ.get("PYTHONPATH")) if p),
        }
    )
    log = root / "airflow.log"
    _airflow(env, "db", "migrate", log=log, timeout=240)
    _airflow(env, "dags", "reserialize", log=log, timeout=120)
    with log.open("a") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "airflow"),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stopping it ends its workers and only them
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log, timeout=120)
        print(f"\nAirflow api-server for the browser tests: {url} (log: {log})")
        yield AirflowServer(url, env, state, shared, hub_url, seeded["dead_letters"], log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the browser tests write their screenshots (printed so a person can look at them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nScreenshots: {SCREENSHOTS}")
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian Chromium with a fresh profile, driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: run scripts/install_test_tools.sh")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
