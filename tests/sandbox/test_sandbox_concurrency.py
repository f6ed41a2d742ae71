"""Requests in flight at each system, counted by the sandbox, and the PIM's refusal past Akeneo's limits.

Akeneo documents 4 API calls at once per PIM connection and 10 per instance, 429 beyond
(https://api.akeneo.com/documentation/good-practices.html; /work/shared/specs/akeneo-docs/good-practices.md).
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from catalog_sync_sandbox.concurrency import Meter

from .helpers import erp, pim

API = "/pim/api/rest/v1"


def _at_once(calls: list[tuple[str, dict[str, str]]]) -> list[int]:
    """Send every (url, headers) GET at the same moment, each from its own thread; their statuses in order."""
    statuses: list[int] = [0] * len(calls)
    start = threading.Barrier(len(calls))

    def call(i: int) -> None:
        url, headers = calls[i]
        start.wait()
        statuses[i] = requests.get(url, headers=headers, timeout=30).status_code

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_meter_counts_the_peak_of_what_arrived_and_refuses_past_the_limits() -> None:
    meter = Meter()
    assert all(meter.enter("a", limit=2, total_limit=3) for _ in range(2))
    assert not meter.enter("a", limit=2, total_limit=3)  # a third on "a": refused, but it did arrive
    assert meter.enter("b", limit=2, total_limit=3)
    assert not meter.enter("b", limit=2, total_limit=3)  # a fourth on the instance
    snap = meter.snapshot()
    assert (snap["in_flight"], snap["peak"], snap["refused"]) == (3, 4, 2)
    assert snap["keys"]["a"] == {"in_flight": 2, "peak": 3, "refused": 1}
    meter.leave("a")
    meter.reset()  # peaks restart from what is still in flight
    assert (meter.snapshot()["peak"], meter.snapshot()["refused"]) == (2, 0)
    meter.leave("a")
    meter.leave("b")
    meter.leave("b")  # one leave too many is ignored
    assert meter.snapshot()["in_flight"] == 0


def test_two_tokens_of_one_pim_connection_share_its_four_calls(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    sb.set_faults("pim", latency_ms=1500)  # every call held 1.5 s at the PIM, so all six are there at once
    sb.reset_concurrency()
    first, second = pim(sb), pim(sb)  # two workers, each with its own token of the same connection
    assert first != second
    url = f"{sb.url}{API}/products/MH01-XS-Black"
    statuses = _at_once([(url, first)] * 3 + [(url, second)] * 3)
    assert sorted(statuses) == [200] * 4 + [429] * 2
    report = sb.concurrency("pim")
    assert report["limit"] == 4 and report["instance_limit"] == 10
    assert report["peak"] == 5 and report["refused"] == 2 and report["in_flight"] == 0
    assert report["connections"][sb.credentials["pim"]["client_id"]]["peak"] == 5
    sb.reset_concurrency()
    assert sb.concurrency()["pim"]["peak"] == 0


def test_pim_instance_limit_refuses_across_connections(fresh_sandbox: Any) -> None:
    state = fresh_sandbox.state
    fresh_sandbox.settings(pim_instance_max_concurrent=5)
    try:
        admitted = [state.pim_enter(conn) is None for conn in ("erp_sync",) * 4 + ("dam_sync",) * 2]
        assert admitted == [True] * 5 + [False]  # each connection under its 4; the instance's fifth is the last
    finally:
        for conn in ("erp_sync",) * 4 + ("dam_sync",):
            state.pim_leave(conn)
    assert fresh_sandbox.concurrency("pim")["in_flight"] == 0


def test_other_systems_are_counted_not_limited(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    sb.set_faults("erp", latency_ms=1000)
    sb.reset_concurrency()
    statuses = _at_once([(f"{sb.url}/erp/items?limit=1", erp(sb))] * 5)
    assert statuses == [200] * 5
    report = sb.concurrency()
    assert report["erp"] == {"in_flight": 0, "peak": 5, "refused": 0, "limit": None}
    assert set(report) == {"erp", "pim", "dam", "storefront", "supplier", "cdn", "adobe_commerce"}
    assert requests.get(f"{sb.url}/_sandbox/concurrency/nope", timeout=10).status_code == 404
