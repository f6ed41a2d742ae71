"""The cursor invariant (ARCHITECTURE.md): a cursor moves only once every record its run read is accounted for.

A run that lost track of one record (read, but neither delivered, unchanged nor dead-lettered) must fail and leave
its cursors where they were, so the next run reads that record again. Each test makes the flow lose one record on
purpose and checks exactly that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog_sync import reliability as R
from catalog_sync.engine.run import RecordsUnaccounted, RunContext
from catalog_sync.flows import cold, hot, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from tests.conftest import load_sandbox
from tests.reliability.conftest import FAST_STOREFRONT
from tests.reliability.test_bad_inputs import _row, _write


def _small(rel_sandbox: Any, tmp_path: Path) -> Systems:
    folder = tmp_path / "catalog"
    folder.mkdir()
    _write(folder / "products.csv", [_row(f"CUR-{n:03d}", description=f"<p>A roomy canvas bag, number {n}.</p>")
                                     for n in range(12)])
    load_sandbox(rel_sandbox, folder)
    rel_sandbox.settings(**FAST_STOREFRONT)
    return Systems.from_base_url(rel_sandbox.url, rel_sandbox.credentials)


def test_a_nightly_that_loses_a_record_keeps_its_cursors(rel_sandbox: Any, hub_url: str, tmp_path: Path) -> None:
    systems = _small(rel_sandbox, tmp_path)
    try:
        load_id = cold.open_run(dag_id=cold.FLOW, run_id="manual__lost", window_start=None, window_end=None)
        for step in R.COLD_STEPS[:-1]:
            R.run_step(step, load_id, systems)
        RunContext.attach(load_id).count(cold.ERP_PIM, read=1)  # one record read and then lost track of
        with pytest.raises(RecordsUnaccounted):
            cold.finish(load_id)
        with session_scope() as s:
            assert repo.get_run(s, load_id)["status"] == "failed"
            assert {stream: repo.get_cursor(s, system, stream) for system, stream in cold.CURSORS} == \
                dict.fromkeys((stream for _, stream in cold.CURSORS), None)
        again = R.run_cold(systems, "manual__next")  # the next night reads it all again and commits
        assert again.status == "success"
        with session_scope() as s:
            assert repo.get_cursor(s, "erp", "items") is not None
    finally:
        systems.close()


def test_a_hot_batch_that_loses_a_change_keeps_the_cursor(rel_sandbox: Any, hub_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    systems = _small(rel_sandbox, tmp_path)
    try:
        R.run_cold(systems, "manual__published")
        hot.sync_changes(systems)  # start at the feed's head
        with session_scope() as s:
            start = repo.get_cursor(s, *hot.CURSOR)
        first, second = sorted(steps.external_ids("storefront", "variant"))[:2]  # published variants
        assert systems.erp.set_stock(first, "DC-EAST", 7).ok
        assert systems.erp.set_stock(second, "DC-EAST", 8).ok
        gate = hot._gate
        monkeypatch.setattr(hot, "_gate", lambda ctx, sys, changes: gate(ctx, sys, changes)[1:])  # drops one
        with pytest.raises(RecordsUnaccounted):
            hot.sync_changes(systems)
        with session_scope() as s:
            assert repo.get_cursor(s, *hot.CURSOR) == start
        monkeypatch.setattr(hot, "_gate", gate)
        summary = hot.sync_changes(systems)  # the next batch reads both changes again
        assert summary["read"] == 2 and summary["delivered"] + summary["unchanged"] == 2 and summary["cursor"] > int(start or 0)
    finally:
        systems.close()
