"""Connectors under the sandbox's injected faults: what each failure class does over real HTTP."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from catalog_sync.connectors import (
    Attempt,
    AuthError,
    ClientOptions,
    Outcome,
    ReadResult,
    RetryPolicy,
    build_client,
)
from catalog_sync.connectors.http import Disposition, FailureKind
from catalog_sync.domain import System


class Faults:
    """Switch sandbox faults on per system (the sandbox's own control API); all are cleared after the test."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox

    def set(self, system: System, **config: Any) -> None:
        self.sandbox.set_faults(system.value, **config)


@pytest.fixture
def faults(fresh_sandbox: Any) -> Iterator[Faults]:
    try:
        yield Faults(fresh_sandbox)
    finally:
        fresh_sandbox.clear_faults()


def client(sandbox: Any, system: System, attempts: list[Attempt] | None = None, **options: Any) -> Any:
    retry = options.pop("retry", RetryPolicy(max_attempts=8, base=0.02, cap=0.2, max_retry_after=5))
    opts = ClientOptions(retry=retry, on_attempt=attempts.append if attempts is not None else None,
                         read_timeout=options.pop("read_timeout", 10), **options)
    return build_client(system, f"{sandbox.url.rstrip('/')}/{system.value}", sandbox.credentials[system.value], opts)


def skus(result: ReadResult) -> list[str]:
    return sorted(r["sku"] for r in result.records)


def test_5xx_faults_are_retried_and_the_read_is_complete(fresh_sandbox: Any, faults: Faults) -> None:
    baseline = skus(ReadResult.collect(client(fresh_sandbox, System.ERP, page_size=50).iter_items()))
    faults.set(System.ERP, error_rate=0.3, seed=7)
    attempts: list[Attempt] = []
    result = ReadResult.collect(client(fresh_sandbox, System.ERP, attempts, page_size=50).iter_items())
    assert skus(result) == baseline
    assert any(a.error in ("http_500", "http_502", "http_503") for a in attempts)


def test_429_storm_honours_retry_after(fresh_sandbox: Any, faults: Faults) -> None:
    faults.set(System.DAM, rate_limit_storm={"every": 2, "retry_after": 0.3}, seed=1)
    attempts: list[Attempt] = []
    started = time.monotonic()
    pages = list(itertools.islice(client(fresh_sandbox, System.DAM, attempts, page_size=20).iter_assets(), 4))
    assert len(pages) == 4 and all(p.records and not p.errors for p in pages)
    storms = [a for a in attempts if a.status == 429]
    assert storms and all(a.waited >= 0.3 for a in storms)
    assert time.monotonic() - started >= 0.3 * len(storms)


def test_timeouts_are_retried(fresh_sandbox: Any, faults: Faults) -> None:
    faults.set(System.SUPPLIER, timeout_rate=0.5, timeout_s=1.5, seed=3)
    attempts: list[Attempt] = []
    result = ReadResult.collect(
        client(fresh_sandbox, System.SUPPLIER, attempts, read_timeout=0.5).iter_submissions(status=None)
    )
    assert result.records
    assert any(a.error == FailureKind.TIMEOUT for a in attempts)


def test_page_dropped_mid_body_is_read_again_whole(fresh_sandbox: Any, faults: Faults) -> None:
    baseline = skus(ReadResult.collect(client(fresh_sandbox, System.ERP, page_size=40).iter_items()))
    faults.set(System.ERP, drop_mid_page_rate=0.4, seed=11)
    attempts: list[Attempt] = []
    result = ReadResult.collect(client(fresh_sandbox, System.ERP, attempts, page_size=40).iter_items())
    assert skus(result) == baseline and not result.errors
    assert any(a.error in (FailureKind.CONNECTION, FailureKind.MALFORMED_BODY) for a in attempts)


def test_malformed_records_are_dead_lettered_one_by_one(fresh_sandbox: Any, faults: Faults) -> None:
    pim = client(fresh_sandbox, System.PIM, page_size=50)
    total = len(ReadResult.collect(pim.iter_products()).records)
    # A page with malformed records is read again (base.REREADS) and healed position by position, so only a record
    # garbled in every read is left to dead-letter: at 90 % corruption some are.
    faults.set(System.PIM, malformed_rate=0.9, seed=5)
    result = ReadResult.collect(pim.iter_products())
    assert result.errors, "a 90 % corruption rate should leave some records garbled in every read"
    assert len(result.records) + len(result.errors) == total
    assert all(e.disposition is Disposition.DEAD_LETTER and e.record_key for e in result.errors)


def test_pim_token_expiry_refreshes_once(fresh_sandbox: Any) -> None:
    fresh_sandbox.settings(token_lifetime_s=1)
    try:
        pim = client(fresh_sandbox, System.PIM, page_size=10)
        pim.oauth._clock = lambda: 0.0  # freeze our clock: only the server's 401 can tell us the token expired
        first = next(iter(pim.iter_products()))
        time.sleep(1.5)
        second = next(iter(pim.iter_products()))
        assert first.records and [r["identifier"] for r in second.records] == [r["identifier"] for r in first.records]
        assert pim.oauth.issued == 2
    finally:
        fresh_sandbox.settings(token_lifetime_s=3600)


def test_pim_bad_credentials_fail_fast(fresh_sandbox: Any) -> None:
    creds = {**fresh_sandbox.credentials["pim"], "password": "wrong-password-123"}
    attempts: list[Attempt] = []
    pim = build_client(System.PIM, f"{fresh_sandbox.url.rstrip('/')}/pim", creds,
                       ClientOptions(on_attempt=attempts.append))
    with pytest.raises(AuthError) as info:
        pim.get_product("anything")
    assert len(attempts) == 1 and "wrong-password-123" not in str(info.value)


def test_pim_collection_patch_isolates_a_422_line(fresh_sandbox: Any) -> None:
    pim = client(fresh_sandbox, System.PIM)
    existing = next(iter(pim.iter_products())).records[:2]
    good = [{"identifier": p["identifier"],
             "values": {"meta_title": [{"locale": "en_US", "scope": None, "data": "Fine"}]}} for p in existing]
    bad = {"identifier": existing[0]["identifier"] + "-BAD",
           "values": {"no_such_attribute": [{"locale": None, "scope": None, "data": "x"}]}}
    results = pim.upsert_products([good[0], bad, good[1]])
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.FAILED, Outcome.OK]
    failed = results[1]
    assert failed.status == 422 and failed.disposition is Disposition.DEAD_LETTER and failed.message
    assert failed.sent == bad
    assert pim.get_product(bad["identifier"]) is None
