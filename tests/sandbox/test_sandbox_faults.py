"""Each fault switch, over real HTTP, against the shared sandbox (faults are cleared after each test)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from .helpers import dam, erp, shop


def _items(sb: Any, **kw: Any) -> requests.Response:
    return requests.get(f"{sb.url}/erp/items", params={"limit": 50}, headers=erp(sb), **{"timeout": 10, **kw})


def test_error_rate_answers_5xx_and_only_on_that_system(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("erp", error_rate=1.0)
    codes = {_items(sandbox).status_code for _ in range(6)}
    assert codes <= {500, 502, 503} and codes
    assert requests.get(f"{sandbox.url}/dam/api/assets", headers=dam(sandbox), timeout=10).status_code == 200
    sandbox.clear_faults("erp")
    assert _items(sandbox).status_code == 200


def test_error_statuses_narrow_the_server_errors_to_the_ones_named(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("erp", error_rate=1.0, error_statuses=[503])
    assert {_items(sandbox).status_code for _ in range(8)} == {503}
    refused = requests.put(f"{sandbox.url}/_sandbox/faults/erp", json={"error_rate": 1, "error_statuses": [404]},
                           timeout=10)
    assert refused.status_code == 422 and "500-599" in refused.text


def test_rate_limit_storm_every_nth_request_with_retry_after(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("storefront", rate_limit_storm={"every": 2, "retry_after": 3})
    answers = [requests.get(f"{sandbox.url}/storefront/admin/api/2025-01/locations.json", headers=shop(sandbox),
                            timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 429, 200, 429]
    assert answers[1].headers["Retry-After"] == "3"


def test_latency_is_added(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("erp", latency_ms=300)
    started = time.monotonic()
    assert _items(sandbox).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_timeout_holds_the_answer_past_the_client_timeout(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("erp", timeout_rate=1.0, timeout_s=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _items(sandbox, timeout=0.3)


def test_malformed_records_drop_an_identifier_or_put_text_in_a_number(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("erp", malformed_rate=0.5, seed=3)
    items = _items(sandbox).json()["items"]
    broken = [i for i in items if "sku" not in i or any(v == "not-a-number" for v in i.values())]
    assert 5 < len(broken) < 45
    stock = requests.get(f"{sandbox.url}/erp/stock", params={"limit": 50}, headers=erp(sandbox), timeout=10).json()
    assert any(s.get("quantity") == "not-a-number" or "sku" not in s for s in stock["stock"])


def test_dropped_connection_mid_page(sandbox: Any, sandbox_faults: Any) -> None:
    sandbox_faults("erp", drop_mid_page_rate=1.0)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        _items(sandbox).json()


def test_faults_are_deterministic_for_a_seed(sandbox: Any, sandbox_faults: Any) -> None:
    def run() -> list[int]:
        sandbox_faults("erp", error_rate=0.5, seed=11)
        return [_items(sandbox).status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second and 200 in first and set(first) - {200}
    sandbox_faults("erp", error_rate=0.5, seed=12)
    assert [_items(sandbox).status_code for _ in range(12)] != first


def test_fault_config_is_validated_and_readable(sandbox: Any, sandbox_faults: Any) -> None:
    bad = requests.put(f"{sandbox.url}/_sandbox/faults/erp", json={"error_rate": 2}, timeout=10)
    assert bad.status_code == 422
    assert requests.put(f"{sandbox.url}/_sandbox/faults/mainframe", json={}, timeout=10).status_code == 404
    sandbox_faults("pim", latency_ms=5)
    assert requests.get(f"{sandbox.url}/_sandbox/faults/pim", timeout=10).json()["latency_ms"] == 5
