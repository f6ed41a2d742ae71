"""Benchmark 8: the hot path while a nightly publish is writing the storefront, WITHOUT Airflow.

Two writers share one storefront (the sandbox, in its own process, on the Shopify Plus call limits `make run`
uses: a bucket of 400 cost points draining 20 per second... as the sandbox's ``plus`` plan defines them):

- the nightly: a thread re-publishing the whole published catalogue pass after pass through the storefront
  client's bulk ``upsert_products`` (``productSet``, as ``cold.publish_products`` sends it), each pass with a
  changed title so every product is really written;
- the hot path: ``flows.hot.sync_changes`` back to back (as the DAG's drain loop runs batches), while a producer
  commits ERP stock changes at 50/s for 60 s.

Latency of a change = (the instant the ``sync_changes`` run that wrote it returned) - (its ``committed_at`` in the
ERP change feed). Target: p95 <= 5 s, nothing lost (every changed SKU/location shows the ERP's last value,
nothing dead-lettered). Airflow's pools (``storefront_hot`` apart from ``storefront_api``) decide who gets a
worker slot; they cannot share out the storefront's call budget, which is what this measures.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.b4_hot import TARGET_P95_S, Loop, latencies, produce, publish_baseline
from bench.common import Result, base_args, emit


class Nightly(threading.Thread):
    """Re-publishes every storefront product, 50 to a slice, until stopped; counts what it wrote."""

    def __init__(self, url: str, credentials: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        from catalog_sync.flows.systems import Systems

        self.systems = Systems.from_base_url(url, credentials)
        self.stop = threading.Event()
        self.written = 0
        self.passes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        products = [p for page in self.systems.storefront.iter_products() for p in page.records]
        try:
            while not self.stop.is_set():
                self.passes += 1
                for start in range(0, len(products), 50):
                    if self.stop.is_set():
                        return
                    part = products[start:start + 50]
                    desired = [{"handle": p["handle"], "title": f"{p['title']} · pass {self.passes}"} for p in part]
                    results = self.systems.storefront.upsert_products(desired)
                    self.written += sum(1 for r in results if r.ok)
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            self.error = exc
        finally:
            self.systems.close()


def main() -> None:
    parser = base_args(__doc__)
    parser.add_argument("--steady-seconds", type=int, default=60)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cs_bench_hot_nightly_"))
    os.environ["CATALOG_SYNC_HOME"] = str(workdir)
    import logging

    logging.basicConfig(level=logging.WARNING)
    from bench.b2_cold import fresh_hub
    from bench.sandbox_proc import UNLIMITED_STOREFRONT, SandboxProcess
    from catalog_sync.flows import hot, steps
    from catalog_sync.flows.systems import Systems

    sandbox = SandboxProcess(workdir, "sandbox").start("plus")
    try:
        sandbox.load(None)
        sandbox.settings(**UNLIMITED_STOREFRONT)  # the baseline publish is set-up, not the subject
        fresh_hub(workdir, "hub")
        systems = Systems.from_base_url(sandbox.url, sandbox.credentials)
        publish_baseline(systems)
        sandbox.settings(storefront_bucket_size=400, storefront_leak_per_s=20.0)  # Shopify Plus, as `make run`
        extra = steps.external_ids("storefront", "variant")
        variants = sorted(extra)
        hot.sync_changes(systems)  # start at the feed head
        nightly = Nightly(sandbox.url, sandbox.credentials)
        nightly.start()
        time.sleep(3)  # the nightly is writing before the first change is committed
        loop = Loop(systems)
        loop.start()
        last: dict[tuple[str, str], int] = {}
        first = systems.erp.last_seq() + 1
        took = produce(systems, variants, int(args.rate * args.steady_seconds), args.rate, last,
                       np.random.default_rng(8))
        head = systems.erp.last_seq()
        deadline = time.time() + 300
        while (not loop.runs or loop.runs[-1]["cursor"] < head) and time.time() < deadline and loop.error is None:
            time.sleep(0.1)
        written_during = nightly.written
        nightly.stop.set()
        loop.stop.set()
        loop.join(timeout=60)
        nightly.join(timeout=120)
        lat = latencies(systems, list(loop.runs), first, head)
        location = {loc["erp_location"]: loc["id"] for loc in systems.storefront.locations()}
        wrong = 0
        keys = sorted(last)
        for start in range(0, len(keys), 50):
            batch = keys[start:start + 50]
            ids = {str(extra[sku][1]["inventory_item_id"]): (sku, loc) for sku, loc in batch}
            levels = systems.storefront.inventory_levels(list(ids))
            seen = {(ids[str(lv["inventory_item_id"])], lv["location_id"]): lv["available"] for lv in levels
                    if str(lv["inventory_item_id"]) in ids}
            wrong += sum(1 for sku, loc in batch if seen.get(((sku, loc), location[loc])) != last[(sku, loc)])
        runs = loop.runs
        figures = {
            "changes": head - first + 1, "produce_s": round(took, 1),
            "achieved_rate_per_s": round((head - first + 1) / took, 1), "measured": len(lat),
            "p50_s": round(float(np.percentile(lat, 50)), 3) if lat else None,
            "p95_s": round(float(np.percentile(lat, 95)), 3) if lat else None,
            "max_s": round(max(lat), 3) if lat else None,
            "hot_runs": len(runs), "delivered": sum(r["delivered"] for r in runs),
            "dead_lettered": sum(r["dead_lettered"] for r in runs), "storefront_mismatches": wrong,
            "nightly_products_written_meanwhile": written_during, "nightly_passes": nightly.passes,
            "loop_error": repr(loop.error) if loop.error else None,
            "nightly_error": repr(nightly.error) if nightly.error else None,
        }
        print(figures, flush=True)
        systems.close()
    finally:
        sandbox.stop()
    lost = bool(figures["storefront_mismatches"] or figures["dead_lettered"] or figures["loop_error"])
    held = (not lost) and figures["p95_s"] is not None and figures["p95_s"] <= TARGET_P95_S
    emit(Result(
        name="hot_during_nightly", title="Hot path latency while a nightly publish writes the storefront",
        scale={"skus": 2026, "rate_per_s": args.rate, "steady_s": args.steady_seconds, "storefront_plan": "plus"},
        figures=figures, target=f"p95 <= {TARGET_P95_S} s, no change lost", held=held,
        notes=["the nightly is simulated by re-publishing every storefront product (title changed each pass) "
               "through the storefront client's bulk productSet writes, in its own client and thread",
               "latency measured up to the return of the sync_changes run that wrote the change",
               "without Airflow: the pools decide worker slots; this measures the shared storefront call budget"]))


if __name__ == "__main__":
    main()
