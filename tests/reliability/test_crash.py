"""Issue #9, crashes: the task process SIGKILLed in the middle of its writes, and the hub database lost in the
middle of a run. Each ends in a failure nobody can mistake for success (the hub run is not 'success', the cursors
stay), and the retry of the same Airflow run converges to the end state of an uninterrupted run, with no
duplicate in any system or in the dead-letter queue.

The catalog is six Luma families (about 90 SKUs), small enough to run the flow three times per case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from catalog_sync import reliability as R
from catalog_sync.connectors import ClientOptions
from catalog_sync.connectors.http import Attempt
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.hub.models import SyncState
from tests.conftest import REPO, load_sandbox
from tests.reliability.conftest import FAST_STOREFRONT

RUN_ID = "scheduled__crash"
LOAD_ID = f"cold_data_nightly:{RUN_ID}"


def load(server: Any, catalog: Path) -> Systems:
    load_sandbox(server, catalog)
    server.settings(**FAST_STOREFRONT)
    return Systems.from_base_url(server.url, server.credentials)


def end_state(systems: Systems) -> tuple[dict[str, Any], dict[str, Any]]:
    return R.pim_state(systems), R.storefront_state(systems)


def baseline(server: Any, catalog: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The end state of an uninterrupted run, on its own hub, from freshly loaded systems."""
    hub = f"sqlite:///{tmp_path / 'baseline.sqlite'}"
    migrate(hub)
    systems = load(server, catalog)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CATALOG_SYNC_HUB_URL", hub)  # the flow's steps use the process's hub
            run = R.run_cold(systems, RUN_ID, hub_url=hub)
        assert run.status == "success" and run.unreconciled() == [], run
        return end_state(systems)
    finally:
        systems.close()


def assert_converged(systems: Systems, hub: str, expected: tuple[dict[str, Any], dict[str, Any]]) -> R.ColdRun:
    run = R.run_cold(systems, RUN_ID, hub_url=hub)  # the Airflow retry: same run id, same load id
    assert run.status == "success" and run.unreconciled() == [], run
    pim, shop = end_state(systems)
    assert R.differences(expected[0], pim, set()) == {}
    shop_diff = R.differences(expected[1], shop, set())
    assert shop_diff == {}, {k: [f for f in v["reference"] if v["reference"].get(f) != (v["other"] or {}).get(f)] for k, v in shop_diff.items()}
    assert all(not v for v in R.duplicates(systems, hub).values()), R.duplicates(systems, hub)
    return run


def cursors(hub: str) -> dict[tuple[str, str], str]:
    with session_scope(hub) as s:
        return {(c.system, c.stream): c.cursor_value for c in s.scalars(select(SyncState))}


@pytest.mark.parametrize("step", ["load_pim", "publish_products"])
def test_a_task_killed_mid_write_fails_clearly_and_its_retry_converges(
    step: str, rel_sandbox: Any, small_catalog: Path, hub_url: str, tmp_path: Path
) -> None:
    expected = baseline(rel_sandbox, small_catalog, tmp_path)
    systems = load(rel_sandbox, small_catalog)
    config = tmp_path / "systems.json"
    config.write_text(json.dumps({"url": rel_sandbox.url, "credentials": rel_sandbox.credentials}))
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_worker", RUN_ID, step, str(config)],
        cwd=REPO, env={**os.environ, "CATALOG_SYNC_HUB_URL": hub_url}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.startswith("WRITE 3"):  # some of the step's writes are in, most are not
                worker.send_signal(signal.SIGKILL)
                break
            assert line.strip() != "DONE", f"{step} finished before it could be killed"
        assert worker.wait(timeout=120) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
    try:
        # A killed process can say nothing: the run is left 'running' (Airflow marks the task failed when its
        # heartbeat stops, and the failure callback marks the hub run), never 'success', and no cursor moved.
        with session_scope(hub_url) as s:
            assert (repo.get_run(s, LOAD_ID) or {}).get("status") == "running"
        assert cursors(hub_url) == {}
        assert_converged(systems, hub_url, expected)
    finally:
        systems.close()


def test_losing_the_hub_mid_run_fails_clearly_and_the_retry_converges(
    rel_sandbox: Any, small_catalog: Path, hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = baseline(rel_sandbox, small_catalog, tmp_path)
    load_sandbox(rel_sandbox, small_catalog)
    rel_sandbox.settings(**FAST_STOREFRONT)
    gone = "postgresql+psycopg://catalog_sync@127.0.0.1:1/hub_is_gone"
    writes = 0

    def lose_the_hub(attempt: Attempt) -> None:
        nonlocal writes
        if attempt.system == "storefront" and attempt.method in ("POST", "PUT") and (attempt.status or 500) < 300:
            writes += 1
            if writes == 3:  # from now on every hub session fails to connect, as when the database goes away
                monkeypatch.setenv("CATALOG_SYNC_HUB_URL", gone)

    faulty = Systems.from_base_url(rel_sandbox.url, rel_sandbox.credentials, ClientOptions(),
                                   on_attempt=lose_the_hub)
    try:
        with pytest.raises(OperationalError):
            R.run_cold(faulty, RUN_ID)  # the hub URL is read per session, so the loss hits mid-step
    finally:
        faulty.close()
    assert writes >= 3
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub_url)  # the database is back
    with session_scope(hub_url) as s:
        assert (repo.get_run(s, LOAD_ID) or {}).get("status") != "success"
    assert cursors(hub_url) == {}
    systems = Systems.from_base_url(rel_sandbox.url, rel_sandbox.credentials)
    try:
        assert_converged(systems, hub_url, expected)
    finally:
        systems.close()
