"""Retention prunes old hot-batch runs, old audit rows, old validation folders and left-over staged frames in the
shared state store, and keeps every run rollback, the dead-letter queue, a cursor or the reports still need."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import (
    AuditEvent,
    DeadLetter,
    DqKpi,
    DqResult,
    FieldDelta,
    RunCounter,
    SyncRun,
    SyncState,
    utcnow,
)
from catalog_sync.retention import RetentionPolicy, prune

NOW = utcnow()


def _store(folder: Path) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(folder.as_uri())


def _run(s, load_id: str, flow: str, age_days: float, *, delta_entity: str | None = None) -> None:  # type: ignore[no-untyped-def]
    at = NOW - timedelta(days=age_days)
    s.add(SyncRun(load_id=load_id, flow=flow, status="success", started_at=at, ended_at=at))
    s.add(RunCounter(load_id=load_id, hop="erp->storefront", counter="read", value=3))
    s.add(AuditEvent(load_id=load_id, system="storefront", entity="inventory", record_key="MH01", action="write",
                     outcome="ok", started_at=at))
    s.add(DqResult(load_id=load_id, gate="stock_prices.l0", layer=0, entity="stock_prices", severity="soft",
                   rows_checked=3, rows_passed=3, rows_quarantined=0, success=True, created_at=at))
    s.add(DqKpi(load_id=load_id, kpi="timeliness", value=1.5, measured_at=at))
    if delta_entity:
        s.add(FieldDelta(load_id=load_id, system="storefront", entity=delta_entity, record_key="MH01-XS-Black",
                         field="price" if delta_entity == "price" else "available", before=1, after=2,
                         applied_at=at))


@pytest.fixture
def seeded(hub_url: str, tmp_path: Path) -> Path:
    """The hub's runs, and their folders in a ``file://`` store (returned: the folder behind it)."""
    with session_scope(hub_url) as s:
        _run(s, "hot-old", "hot_data_sync", 20, delta_entity="inventory")  # stock is never rolled back: goes
        _run(s, "hot-price", "hot_data_sync", 20, delta_entity="price")  # can still be rolled back: stays
        _run(s, "hot-dlq", "hot_data_sync", 20)
        s.add(DeadLetter(load_id="hot-dlq", flow="hot_data_sync", entity="inventory", record_key="stock:X@DC",
                         source_system="erp", target_system="storefront", reason_kind="gate", reason="bad"))
        _run(s, "hot-cursor", "hot_data_sync", 20)
        s.add(SyncState(system="erp", stream="changes", cursor_field="seq", cursor_value="9", load_id="hot-cursor"))
        _run(s, "hot-new", "hot_data_sync", 2)
        _run(s, "cold-old", "cold_data_nightly", 100)
        _run(s, "cold-new", "cold_data_nightly", 3)
    state = tmp_path / "shared-store"
    for load_id in ("hot-old", "hot-price", "cold-old", "cold-new", "ghost-run"):
        (state / "gx_validations" / load_id).mkdir(parents=True)
        (state / "gx_validations" / load_id / "products.l1.json").write_text("{}")
    (state / "data_docs" / "cold-old").mkdir(parents=True)
    return state


def _runs(hub_url: str) -> set[str]:
    with session_scope(hub_url) as s:
        return set(s.scalars(select(SyncRun.load_id)))


def test_prune_removes_only_what_nothing_needs(hub_url: str, seeded: Path) -> None:
    before = _runs(hub_url)
    dry = prune(hub_url=hub_url, now=NOW, root=_store(seeded), dry_run=True)
    assert _runs(hub_url) == before and (seeded / "gx_validations" / "hot-old").is_dir()

    report = prune(hub_url=hub_url, now=NOW, root=_store(seeded))
    assert {k: report[k] for k in ("hot_runs", "audit_rows", "validation_folders", "protected_runs_kept")} == \
        {k: dry[k] for k in ("hot_runs", "audit_rows", "validation_folders", "protected_runs_kept")} == \
        {"hot_runs": 1, "audit_rows": 1, "validation_folders": 4, "protected_runs_kept": 3}
    assert _runs(hub_url) == before - {"hot-old"}
    with session_scope(hub_url) as s:
        def left(model) -> int:  # type: ignore[no-untyped-def]
            return int(s.scalar(select(func.count()).select_from(model).where(model.load_id == "hot-old")) or 0)
        assert [left(m) for m in (RunCounter, AuditEvent, DqResult, FieldDelta)] == [0, 0, 0, 0]
        assert left(DqKpi) == 1  # the Quality page's trend keeps every run's KPI
        # The 100-day-old nightly keeps its run row and counters; only its audit rows aged out.
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.load_id == "cold-old")) == 0
        assert s.get(SyncRun, "cold-old") is not None
        # The rollback-able price delta and its audit rows are intact.
        assert s.scalar(select(func.count()).select_from(FieldDelta).where(FieldDelta.load_id == "hot-price")) == 1
    folders = {p.name for p in (seeded / "gx_validations").iterdir()}
    assert folders == {"hot-price", "cold-new"}  # hot-old pruned, cold-old too old, ghost-run unknown
    assert not (seeded / "data_docs" / "cold-old").exists()

    again = prune(hub_url=hub_url, now=NOW, root=_store(seeded))
    assert (again["hot_runs"], again["audit_rows"], again["validation_folders"]) == (0, 0, 0)


def test_a_price_delta_past_the_rollback_window_no_longer_protects_its_run(hub_url: str, seeded: Path) -> None:
    report = prune(RetentionPolicy(rollback_days=10), hub_url=hub_url, now=NOW, root=_store(seeded))
    assert report["hot_runs"] == 2 and "hot-price" not in _runs(hub_url)


def test_policy_refuses_windows_under_a_day() -> None:
    with pytest.raises(ValueError, match="hot_runs_days"):
        RetentionPolicy(hot_runs_days=0)


def test_the_command_prunes_and_reports_json(hub_url: str, seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    env = {**os.environ, "CATALOG_SYNC_HUB_URL": hub_url, "CATALOG_SYNC_HOME": str(seeded.parent / "home"),
           "CATALOG_SYNC_STORE_URL": seeded.as_uri()}
    done = subprocess.run([sys.executable, "-m", "catalog_sync.cli", "retention", "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["dry_run"] is True and report["hot_runs"] == 1 and report["validation_folders"] == 4
    assert "hot-old" in _runs(hub_url)


def test_staged_frames_of_finished_or_unknown_runs_go_and_a_running_ones_stay(hub_url: str) -> None:
    """On fsspec's in-memory store (no local folder at all): a reconciliation's staging prefix outlives its run
    only when the run failed before ``finish``; retention removes it, never while the run is still running."""
    import uuid

    from catalog_sync import store

    with session_scope(hub_url) as s:
        for load_id, status in (("recon-failed", "failed"), ("recon-running", "running"), ("recon-done", "success")):
            s.add(SyncRun(load_id=load_id, flow="weekly_reconciliation", status=status, started_at=NOW))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_SYNC_STORE_URL", f"memory://retention-{uuid.uuid4().hex}")
        root = store.store_root()
    for load_id in ("recon-failed", "recon-running", "recon-done", "ghost:run"):
        store.write_bytes(store.prefix(store.STAGING, load_id, root) / "erp.csv.gz", b"frame")
    dry = prune(hub_url=hub_url, now=NOW, root=root, dry_run=True)
    assert dry["staging_folders"] == 3 and len(list((root / store.STAGING).iterdir())) == 4
    report = prune(hub_url=hub_url, now=NOW, root=root)
    assert report["staging_folders"] == 3
    assert [p.name for p in (root / store.STAGING).iterdir()] == ["recon-running"]
    store.remove_tree(root)
