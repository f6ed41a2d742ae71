"""RunContext: counters reconcile or the run fails loudly; staging is idempotent; deltas log real changes."""

from __future__ import annotations

import math

import pytest

from catalog_sync.engine.run import RecordsUnaccounted, RunContext, json_safe
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope


def test_counts_reconcile_and_run_succeeds(hub_url: str) -> None:
    ctx = RunContext.open("cold_nightly", hub_url=hub_url)
    ctx.count("erp->pim", read=5)
    ctx.count("erp->pim", delivered=2, unchanged=1)
    ctx.dead_letter([
        {"entity": "product", "record_key": k, "source_system": "erp", "target_system": "pim",
         "reason_kind": "api", "reason": "422 from PIM"} for k in ("A", "B")
    ], hop="erp->pim")
    ctx.count("pim->storefront", read=3, delivered=3)
    ctx.dead_letter([{"entity": "product", "record_key": "A", "source_system": "pim", "target_system": "storefront",
                      "reason_kind": "gate", "reason": "finding after delivery"}], hop=None)
    assert ctx.finish() == {"read": 8, "delivered": 5, "unchanged": 1, "dead_lettered": 2}
    with session_scope(hub_url) as s:
        assert repo.get_run(s, ctx.load_id)["status"] == "success"


def test_lost_records_fail_the_run(hub_url: str) -> None:
    ctx = RunContext.open("cold_nightly", hub_url=hub_url)
    ctx.count("erp->pim", read=3, delivered=3)
    ctx.count("pim->storefront", read=3, delivered=2)
    with pytest.raises(RecordsUnaccounted, match="pim->storefront: 3 records read but 2 accounted"):
        ctx.finish()
    with session_scope(hub_url) as s:
        run = repo.get_run(s, ctx.load_id)
    assert run["status"] == "failed" and "accounted" in run["error"]


def test_reopening_a_run_resets_its_counters(hub_url: str) -> None:
    ctx = RunContext.open("hot", load_id="hot-1", hub_url=hub_url)
    ctx.count("erp->storefront", read=4)
    again = RunContext.open("hot", load_id="hot-1", hub_url=hub_url)
    assert again.counts()["read"] == 0
    with pytest.raises(ValueError, match="unknown counters"):
        again.count("erp->storefront", lost=1)


def test_staging_replaces_and_reads_back(hub_url: str) -> None:
    ctx = RunContext.open("cold_nightly", hub_url=hub_url)
    ctx.stage("extract", [{"sku": "B", "price": 2.0}, {"sku": "A", "price": float("nan")}])
    ctx.stage("extract", [{"sku": "A", "price": 1.0}])
    assert ctx.staged("extract") == [{"sku": "A", "price": 1.0}]
    attached = RunContext.attach(ctx.load_id, hub_url=hub_url)
    assert attached.flow == "cold_nightly" and attached.staged("extract") == [{"sku": "A", "price": 1.0}]
    with pytest.raises(LookupError):
        RunContext.attach("no-such-run", hub_url=hub_url)


def test_staged_records_are_dropped_by_key(hub_url: str) -> None:
    ctx = RunContext.open("cold_nightly", hub_url=hub_url)
    ctx.stage("plan", ({"sku": f"S{i:03d}"} for i in range(10)))
    ctx.stage("other", [{"sku": "S001"}])
    ctx.drop_staged("plan", ["S001", "S005", "S999"])
    assert [r["sku"] for r in ctx.staged("plan")] == [f"S{i:03d}" for i in range(10) if i not in (1, 5)]
    assert ctx.staged("other") == [{"sku": "S001"}]


def test_deltas_only_for_changed_fields(hub_url: str) -> None:
    ctx = RunContext.open("cold_nightly", hub_url=hub_url)
    changed = ctx.record_deltas("pim", "product", "MH01", {"name": "A", "weight": 1}, {"name": "B", "weight": 1})
    assert changed == {"name": {"before": "A", "after": "B"}}
    ctx.audit("pim", "product", "MH01", "write", "ok", request={"name": "B"}, changes=changed)
    ctx.flush_audit()
    with session_scope(hub_url) as s:
        assert [(d["field"], d["before"], d["after"]) for d in repo.deltas_for_run(s, ctx.load_id)] == [
            ("name", "A", "B")
        ]


def test_json_safe_handles_nan_and_numpy() -> None:
    import numpy as np
    import pandas as pd

    out = json_safe({"a": float("nan"), "b": np.int64(3), "c": pd.Timestamp("2026-01-02T03:04:05Z"), "d": (1, 2)})
    assert out == {"a": None, "b": 3, "c": "2026-01-02T03:04:05+00:00", "d": [1, 2]}
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())


# --- retries: a task attempt's effects are idempotent per (run, task) -------------------------------------------


class Killed(Exception):
    """Stands for the worker dying mid-task (nothing after the raise runs, as after a SIGKILL)."""


def _writer(batches: int, *, die_after: int | None, written: list[int]) -> object:
    """A task step that reads ``batches * 10`` records up front, then writes them batch by batch as committed
    parts, auditing each record and dead-lettering the first record of each batch; dies after ``die_after``."""

    def step(load_id: str) -> dict[str, int]:
        ctx = RunContext.attach(load_id)
        ctx.count("erp->pim", read=batches * 10)
        for number in range(batches):
            if ctx.committed(f"batch:{number}"):
                continue
            if die_after is not None and number == die_after:
                raise Killed(f"killed before batch {number}")
            with ctx.part(f"batch:{number}"):
                written.append(number)
                for i in range(1, 10):
                    ctx.audit("pim", "product", f"S{number}-{i}", "write", "ok")
                ctx.count("erp->pim", delivered=9)
                ctx.dead_letter([{"entity": "product", "record_key": f"S{number}-0", "source_system": "erp",
                                  "target_system": "pim", "reason_kind": "api", "reason": "422"}], hop="erp->pim")
        return {"batches": batches}

    return step


def test_a_retried_task_resumes_after_its_committed_batches_and_counts_once(hub_url: str) -> None:
    from sqlalchemy import func, select

    from catalog_sync.engine.run import run_task
    from catalog_sync.hub.models import AuditEvent, DeadLetter

    ctx = RunContext.open("cold_data_nightly", load_id="cold:retry", hub_url=hub_url)
    written: list[int] = []
    with pytest.raises(Killed):
        run_task("load_pim", ctx.load_id, _writer(4, die_after=2, written=written), hub_url=hub_url)
    assert written == [0, 1]
    # the killed attempt's read count is still there, doubled by nothing yet
    assert ctx.hop_counts()["erp->pim"]["read"] == 40
    assert run_task("load_pim", ctx.load_id, _writer(4, die_after=None, written=written),
                    hub_url=hub_url) == {"batches": 4}
    assert written == [0, 1, 2, 3]  # batches 0 and 1 were not written again
    assert ctx.hop_counts()["erp->pim"] == {"read": 40, "delivered": 36, "unchanged": 0, "dead_lettered": 4}
    with session_scope(hub_url) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 36
        assert s.scalars(select(DeadLetter.attempts)).all() == [1, 1, 1, 1]
    # Cleared in the finished run: the task's recorded result, and nothing done or counted again.
    assert run_task("load_pim", ctx.load_id, _writer(4, die_after=0, written=written),
                    hub_url=hub_url) == {"batches": 4}
    assert written == [0, 1, 2, 3]
    assert ctx.finish() == {"read": 40, "delivered": 36, "unchanged": 0, "dead_lettered": 4}


def test_an_attempt_that_died_mid_part_leaves_no_count_or_audit_row_behind(hub_url: str) -> None:
    from sqlalchemy import func, select

    from catalog_sync.engine.run import run_task
    from catalog_sync.hub.models import AuditEvent

    ctx = RunContext.open("cold_data_nightly", load_id="cold:mid-part", hub_url=hub_url)

    def dies_inside_the_part(load_id: str) -> None:
        task = RunContext.attach(load_id)
        task.count("erp->pim", read=5)
        with task.part("batch:0"):
            task.audit("pim", "product", "A", "write", "ok")
            task.flush_audit()
            task.count("erp->pim", delivered=1)
            raise Killed("inside batch 0")

    def completes(load_id: str) -> int:
        task = RunContext.attach(load_id)
        task.count("erp->pim", read=5)
        with task.part("batch:0"):
            task.audit("pim", "product", "A", "write", "ok")
            task.count("erp->pim", delivered=5)
        return 5

    with pytest.raises(Killed):
        run_task("load_pim", ctx.load_id, dies_inside_the_part, hub_url=hub_url)
    with pytest.raises(Killed):
        run_task("load_pim", ctx.load_id, dies_inside_the_part, hub_url=hub_url)
    assert run_task("load_pim", ctx.load_id, completes, hub_url=hub_url) == 5
    assert ctx.hop_counts() == {"erp->pim": {"read": 5, "delivered": 5, "unchanged": 0, "dead_lettered": 0}}
    with session_scope(hub_url) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 1


def test_a_failed_run_is_running_again_while_a_task_of_it_is_retried(hub_url: str) -> None:
    from catalog_sync.engine.run import run_task

    ctx = RunContext.open("cold_data_nightly", load_id="cold:again", hub_url=hub_url)
    ctx.fail("gate 'products.l0' (hard, layer 0) failed")

    def status(load_id: str) -> str:
        with session_scope(hub_url) as s:
            return str(repo.get_run(s, load_id)["status"])

    assert run_task("gate_master_data", ctx.load_id, status, hub_url=hub_url) == "running"
