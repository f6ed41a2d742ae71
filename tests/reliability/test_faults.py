"""Issue #9, faults: a nightly cold run and a burst of ERP stock/price changes through the hot flow, with every
sandbox fault switched on, lose nothing, duplicate nothing, and end where a fault-free run ends.

Faults (all five systems): 10% of requests answered 500/502/503, a 429 storm with Retry-After every 40th request,
2% of requests held past the client's short read timeout, 3% of GET answers cut mid-body, 1% of listed records
corrupted (identifier dropped or a string in a number field).

Each scenario runs on the same sandbox server reloaded from the same catalog, so the fault-free baseline and the
faulty run start from identical systems. The faulty run is executed the way Airflow would retry it: every task up
to the consistency check, then the whole run again under the same run id (a cleared DAG run), then again after it
succeeded; the hot flow runs twice under the same run id too.

``pytest tests/reliability/test_faults.py -s`` prints the figures recorded in RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from catalog_sync import reliability as R
from catalog_sync.connectors import ClientOptions
from catalog_sync.connectors.base import ReadResult
from catalog_sync.connectors.http import RetryPolicy
from catalog_sync.flows import hot
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import migrate
from catalog_sync_sandbox.faults import SYSTEMS
from tests.conftest import LUMA, load_sandbox
from tests.reliability.conftest import FAST_STOREFRONT

FAULTS: dict[str, Any] = {
    "error_rate": 0.10,
    "rate_limit_storm": {"every": 40, "retry_after": 0.02},
    "timeout_rate": 0.02,
    "timeout_s": 1.2,
    "malformed_rate": 0.01,
    "drop_mid_page_rate": 0.03,
}
#: Short client timeouts so an injected timeout (held 1.2 s) costs under a second, yet long enough that a real
#: answer on a busy 2-core machine is not taken for one (0.3 s gave up on PIM PATCHes under load); enough
#: attempts that a record is never given up on because of transport faults alone (0.3 ** 8: about one logical
#: request in 15,000).
CLIENT = {"read_timeout": 0.8, "connect_timeout": 2.0,
          "retry": RetryPolicy(max_attempts=8, base=0.02, cap=0.2, max_retry_after=5)}
BURST_SKUS = 120
#: SKUs of the run in `make test` (the first Luma families, parents with their variants). At 1,000 every kind of
#: fault still fires far above what `judge` asks (on 2026-12-04: 533 5xx, 133 429s, 111 timeouts, 141 dropped
#: connections) and the test took 111 s beside a benchmark; 2,000 took 260 s in CI. RELIABILITY_SCALE overrides
#: it (RELIABILITY.md's table was measured at 2,000); `make soak` runs 20,000.
DEFAULT_SCALE = int(os.environ.get("RELIABILITY_SCALE") or 1000)


@dataclass
class Outcome:
    runs: list[R.ColdRun] = field(default_factory=list)
    hot: list[dict[str, Any]] = field(default_factory=list)
    tally: R.FaultTally = field(default_factory=R.FaultTally)
    pim: dict[str, Any] = field(default_factory=dict)
    shop: dict[str, Any] = field(default_factory=dict)
    supplier: dict[str, Any] = field(default_factory=dict)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    letters: list[Any] = field(default_factory=list)
    references: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        malformed = sum(1 for x in self.letters if x.expectation == "record_schema")
        names = ("read", "delivered", "unchanged", "dead_lettered")
        cold = [{k: sum(c.get(k, 0) for c in run.hops.values()) for k in names} for run in self.runs]
        return {
            "faulty_attempts": self.tally.failed, "attempts": self.tally.attempts, "by_kind": self.tally.kinds(),
            "malformed_records_dead_lettered": malformed,
            # records over every hop of each cold run: the full (cleared) run, then the re-run after success
            "cold": cold,
            "hot": {k: self.hot[0][k] for k in names},
            # read but neither delivered, unchanged nor dead-lettered, over every hop of every run
            "lost": sum(max(0, c.get("read", 0) - sum(c.get(k, 0) for k in names[1:]))
                        for run in self.runs for c in run.hops.values())
            + sum(max(0, h["read"] - sum(h[k] for k in names[1:])) for h in self.hot),
            "duplicates": sum(len(v) for v in self.duplicates.values()),
        }


def scenario(server: Any, hub: str, *, faults: dict[str, Any] | None, scale: int | None = None) -> Outcome:
    """Load the catalog, run cold (retried), burst ERP changes, run hot (twice), and read the end state."""
    load_sandbox(server, LUMA, scale=scale)
    server.settings(**FAST_STOREFRONT)
    os.environ["CATALOG_SYNC_HUB_URL"] = hub
    migrate(hub)
    out = Outcome()
    clean = Systems.from_base_url(server.url, server.credentials)
    systems = Systems.from_base_url(server.url, server.credentials, ClientOptions(**CLIENT, seed=1),
                                    on_attempt=out.tally)

    def faults_on() -> None:
        for i, system in enumerate(SYSTEMS):
            if faults:
                server.set_faults(system, **faults, seed=11 + i)

    try:
        faults_on()
        R.run_cold(systems, "scheduled__reliability", stop_after="check_consistency")  # killed before finish
        out.runs.append(R.run_cold(systems, "scheduled__reliability"))  # the cleared run, start to end
        out.runs.append(R.run_cold(systems, "scheduled__reliability"))  # and once more after it succeeded
        server.clear_faults()

        # A burst on the ERP: every SKU's stock set twice (the first value superseded), and a price change.
        stock = ReadResult.collect(clean.erp.iter_stock()).records
        published = {v["sku"] for p in R.storefront_state(clean).values() for v in p["variants"]}
        rows = sorted((r for r in stock if r["sku"] in published), key=lambda r: (r["sku"], r["location"]))
        for n, row in enumerate(rows[:BURST_SKUS]):
            clean.erp.set_stock(row["sku"], row["location"], 1000 + n)
            clean.erp.set_stock(row["sku"], row["location"], 7 + n % 13)
            if n % 3 == 0:
                clean.erp.set_price(row["sku"], 10 + n % 50 + 0.99)
        faults_on()
        out.hot.append(hot.sync_changes(systems, run_id="scheduled__reliability_hot"))
        out.hot.append(hot.sync_changes(systems, run_id="scheduled__reliability_hot"))
        server.clear_faults()

        out.pim = R.pim_state(clean)
        out.shop = R.storefront_state(clean)
        out.supplier = R.supplier_state(clean)
        out.duplicates = R.duplicates(clean, hub)
        out.letters = R.open_dead_letters(hub)
        out.references = ReadResult.collect(clean.erp.iter_items()).records + [
            dict(c, sku=c["sku"]) for c in ReadResult.collect(clean.erp.iter_changes()).records
        ]
    finally:
        server.clear_faults()
        systems.close()
        clean.close()
    return out


def judge(baseline: Outcome, faulty: Outcome, report: Path | None = None) -> None:
    # The faults really fired, of every kind.
    kinds = faulty.tally.kinds()
    assert kinds.get("http_429", 0) > 10, kinds
    assert sum(kinds.get(f"http_{s}", 0) for s in (500, 502, 503)) > 100, kinds
    assert kinds.get("timeout", 0) > 10, kinds
    assert kinds.get("connection", 0) + kinds.get("malformed_body", 0) > 10, kinds
    # Malformed records are re-read and healed (connectors.base.REREADS); one garbled in every read would be
    # dead-lettered with expectation record_schema and is then excluded from the comparison below.

    # Every hop of every run reconciles exactly (RunCounter rows) and the run says success (SyncRun).
    for run in [*baseline.runs, *faulty.runs]:
        assert run.status == "success", (run.load_id, run.error)
        assert run.unreconciled() == [], run.unreconciled()
    for h in [*baseline.hot, *faulty.hot]:
        assert h["read"] == h["delivered"] + h["unchanged"] + h["dead_lettered"], h
    # Nothing was read less under faults: malformed records are read and dead-lettered, not skipped.
    for hop in ("erp->pim", "dam->pim", "supplier->pim"):  # a scaled-down catalog may have no submissions
        read = baseline.runs[0].hops.get(hop, {}).get("read", 0)
        assert faulty.runs[0].hops.get(hop, {}).get("read", 0) == read, hop
    assert baseline.runs[0].hops["erp->pim"]["read"] > 0
    assert faulty.hot[0]["read"] == baseline.hot[0]["read"] > BURST_SKUS
    # Every dead letter says why.
    assert all(x.reason and x.reason.strip() for x in faulty.letters)

    # No duplicate anywhere, in either world.
    assert all(not v for v in baseline.duplicates.values()), baseline.duplicates
    assert all(not v for v in faulty.duplicates.values()), faulty.duplicates

    # Same end state as the fault-free run for every record not dead-lettered.
    excluded = R.dead_lettered_skus(faulty.letters, faulty.references) | R.dead_lettered_skus(
        baseline.letters, baseline.references)
    assert len(excluded) < 0.1 * len(baseline.pim), len(excluded)
    pim_diff = R.differences(baseline.pim, faulty.pim, excluded)
    assert pim_diff == {}, json.dumps(dict(list(pim_diff.items())[:5]), default=str)
    handles = R.storefront_exclusions(baseline.shop, baseline.pim, excluded) | R.storefront_exclusions(
        faulty.shop, faulty.pim, excluded)
    shop_diff = R.differences(baseline.shop, faulty.shop, handles)
    assert shop_diff == {}, json.dumps({k: {f: [v["reference"].get(f), (v["other"] or {}).get(f)]
                                            for f in v["reference"] if v["reference"].get(f) != (v["other"] or {}).get(f)}
                                        for k, v in list(shop_diff.items())[:3]}, default=str)
    # every supplier submission got the same decision, but for SKUs dead-lettered only under faults (a SKU whose
    # lifecycle flag is refused in both worlds still has its content decided, and is compared)
    faults_only = R.dead_lettered_skus(faulty.letters, faulty.references) - R.dead_lettered_skus(
        baseline.letters, baseline.references)
    submissions = {k for k, v in baseline.supplier.items() if v["sku"] in faults_only}
    assert len(submissions) < 0.5 * len(baseline.supplier), (len(submissions), len(baseline.supplier))
    assert R.differences(baseline.supplier, faulty.supplier, submissions) == {}
    # most products are compared (a product is left out when any of its variants was dead-lettered)
    assert len(baseline.shop) - len(handles) > 0.6 * len(baseline.shop)

    figures = {"baseline": baseline.figures(), "faulty": faulty.figures(), "excluded_skus": len(excluded),
               "excluded_handles": len(handles), "compared_pim_records": len(baseline.pim) - len(excluded),
               "compared_storefront_products": len(baseline.shop) - len(handles),
               "compared_supplier_submissions": len(baseline.supplier) - len(submissions)}
    print("\nRELIABILITY FIGURES", json.dumps(figures, indent=1, default=str))
    if report is not None:
        report.write_text(json.dumps(figures, indent=1, default=str))


def test_cold_and_hot_runs_under_faults_lose_and_duplicate_nothing(
    rel_sandbox: Any, hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = scenario(rel_sandbox, f"sqlite:///{tmp_path / 'baseline.sqlite'}", faults=None, scale=DEFAULT_SCALE)
    faulty = scenario(rel_sandbox, hub_url, faults=FAULTS, scale=DEFAULT_SCALE)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub_url)
    judge(baseline, faulty, Path(os.environ.get("RELIABILITY_FIGURES", tmp_path / "figures.json")))


@pytest.mark.soak
def test_soak_20k_skus_under_faults(rel_sandbox: Any, hub_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = scenario(rel_sandbox, f"sqlite:///{tmp_path / 'baseline.sqlite'}", faults=None, scale=20000)
    faulty = scenario(rel_sandbox, hub_url, faults=FAULTS, scale=20000)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub_url)
    assert faulty.runs[0].hops["erp->pim"]["read"] >= 20000  # the first run reads them all; later ones, the delta
    judge(baseline, faulty, Path(os.environ.get("RELIABILITY_FIGURES", tmp_path / "figures.json")))
