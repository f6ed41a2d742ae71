"""The nightly holds a batch of the delta, never the delta: staging is written in bounded transactions, and the
extract tasks stage each page they read before reading the next (issue #19).

Deterministic: the test counts staged rows per transaction and orders HTTP requests against staging writes; it
measures no time and no memory (peak memory is benchmark 11, bench/b11_task_memory.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from catalog_sync.connectors import ClientOptions
from catalog_sync.engine import run
from catalog_sync.flows import cold
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo

#: Small enough that the Luma catalog (2,026 SKUs, 21 ERP pages of 100) crosses many batches.
BATCH = 150


class Trace:
    """What happened, in order: ``("http", system, path)``, ``("stage", n rows)`` and ``("commit",)``."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.task = ""

    def staged_per_transaction(self) -> list[int]:
        spans, n = [], 0
        for e in self.events:
            if e[0] == "stage":
                n += e[1]
            elif e[0] == "commit":
                if n:
                    spans.append(n)
                n = 0
        return spans

    def requests_before_first_stage(self, task: str, system: str, stage: str) -> tuple[int, int]:
        """(requests to ``system`` by ``task`` before its first write to ``stage``, all its requests to it)."""
        mine = [e for e in self.events if e[-1] == task]
        first = next(i for i, e in enumerate(mine) if e[0] == "stage" and e[2] == stage)
        before = sum(1 for e in mine[:first] if e[0] == "http" and e[1] == system)
        return before, sum(1 for e in mine if e[0] == "http" and e[1] == system)


def _spy(t: Trace, real: Any) -> Any:
    def spy(session: Any, table: Any, rows: Any, *args: Any, **kwargs: Any) -> int:
        if table.name == "staged_record" and rows:
            t.events.append(("stage", len(rows), rows[0]["stage"], t.task))
        return int(real(session, table, rows, *args, **kwargs))

    return spy


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    t = Trace()
    monkeypatch.setattr(run, "STAGE_BATCH", BATCH)
    for name in ("upsert", "insert_rows"):  # the two ways a stage is written
        monkeypatch.setattr(repo, name, _spy(t, getattr(repo, name)))

    def committed(_session: Session) -> None:
        t.events.append(("commit", t.task))

    event.listen(Session, "after_commit", committed)
    try:
        yield t
    finally:
        event.remove(Session, "after_commit", committed)


def test_a_first_nightly_stages_in_bounded_batches_and_streams_its_extracts(
        hub_url: str, fresh_sandbox: Any, trace: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials,
                                    options=ClientOptions(page_size=100),
                                    on_attempt=lambda a: trace.events.append(("http", a.system, a.path, trace.task)))
    try:
        load_id = cold.open_run(dag_id="cold_data_nightly", run_id="manual__stream", window_start=None,
                                window_end=None)
        steps: list[tuple[str, Any]] = [
            ("extract_erp", lambda: cold.extract_erp(load_id, systems)),
            ("gate_master_data", lambda: cold.gate_master_data(load_id)),
            ("load_pim", lambda: cold.load_pim(load_id, systems)),
            ("link_assets", lambda: cold.link_assets(load_id, systems)),
            ("writeback_supplier", lambda: cold.writeback_supplier(load_id, systems)),
            ("extract_pim", lambda: cold.extract_pim(load_id, systems)),
            ("gate_channel_content", lambda: cold.gate_channel_content(load_id)),
            ("publish_products", lambda: cold.publish_products(load_id, systems)),
        ]
        outs = {}
        for name, call in steps:
            trace.task = name
            # link_assets works a batch of whole SKUs at a time: a small batch makes the Luma assets many batches
            monkeypatch.setenv("CATALOG_SYNC_GATE_BATCH", str(BATCH) if name == "link_assets" else "50000")
            outs[name] = call()
        trace.task = "publish_images"
        chunks = cold.plan_image_chunks(load_id, 50)  # Luma publishes fewer families than the DAG's 200 a chunk
        for chunk in chunks:
            cold.publish_images(load_id, chunk, systems, 50)
        trace.task = "check_consistency"
        cold.check_consistency(load_id, systems)
        trace.task = "finish"
        result = cold.finish(load_id)
    finally:
        systems.close()

    # The run is whole: every hop reconciles (finish raises otherwise), and the catalog crossed many batches.
    assert outs["extract_erp"]["read"] > 10 * BATCH
    assert outs["load_pim"]["delivered"] > 10 * BATCH
    assert len(chunks) >= 2
    assert result["hops"]["erp->pim"]["read"] == outs["extract_erp"]["read"] + outs["extract_erp"]["malformed"]

    # Invariant: no transaction writes more than one batch of staged records.
    spans = trace.staged_per_transaction()
    assert spans and max(spans) <= BATCH, sorted(spans)[-5:]
    assert len(spans) > outs["extract_erp"]["read"] // BATCH  # the delta went in many transactions

    # Invariant: each extract stages what it read as it reads: before its first staging write extract_erp has read
    # the pages of one batch (two pages of 100 for a batch of 150) of 21; extract_pim keeps only the changed products' family roots and stages the families
    # as it reads them back, a hundred roots at a time (some of its PIM reads come after its first staging write).
    before, total = trace.requests_before_first_stage("extract_erp", "erp", "erp_items")
    assert before == -(-BATCH // 100) and total > 10, (before, total)
    before, total = trace.requests_before_first_stage("extract_pim", "pim", "families")
    assert before < total, (before, total)

    # Invariant: link_assets holds a batch of the DAM's delta, not the delta: it stages the assets as it reads the
    # DAM's pages, and links a batch of whole SKUs at a time, writing each batch's links before reading the next.
    before, total = trace.requests_before_first_stage("link_assets", "dam", "dam_approved")
    assert before < total, (before, total)
    assert outs["link_assets"]["approved"] > 5 * BATCH
    linked_batches = [e for e in trace.events if e[0] == "stage" and e[2] == "pim_touched_assets"]
    first_linked = trace.events.index(linked_batches[0])
    last_pim_call = max(i for i, e in enumerate(trace.events) if e[0] == "http" and e[1] == "pim"
                        and e[-1] == "link_assets")
    assert first_linked < last_pim_call  # the next batch goes to the PIM after the first one's links are written
