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
