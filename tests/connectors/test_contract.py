"""The connector contract, run against every connector over real HTTP to the sandbox.

One parametrised suite: each system declares how to read its main stream, how to read only what changed, how
to write a record and read it back. The same assertions then hold for all five: pages chain without gaps or
duplicates, a delta read returns the changed record and not the whole catalog, a write reads back, and the same
write twice leaves the same state and no duplicate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog_sync.connectors import (
    ClientOptions,
    Outcome,
    Page,
    ReadResult,
    RetryPolicy,
    WriteResult,
    build_client,
)
from catalog_sync.connectors.mapping import canonical_to_shopify_product, erp_item_to_canonical
from catalog_sync.domain import System

#: Small enough that every catalog stream spans several pages, large enough to keep the suite quick.
PAGE_SIZE = 40
FAST_RETRY = RetryPolicy(max_attempts=6, base=0.05, cap=0.5, max_retry_after=5)


def make_client(sandbox: Any, system: System, **options: Any) -> Any:
    opts = ClientOptions(retry=options.pop("retry", FAST_RETRY), read_timeout=options.pop("read_timeout", 10),
                         **options)
    return build_client(system, f"{sandbox.url.rstrip('/')}/{system.value}", sandbox.credentials[system.value], opts)


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Contract:
    """How the shared suite drives one connector."""

    system: System
    key: str  # the main stream's primary key field
    cursor: str  # its cursor field
    read: Callable[[Any], Iterator[Page]]
    delta: Callable[[Any, datetime], Iterator[Page]]
    write: Callable[[Any, dict[str, Any]], WriteResult]  # write a recognisably changed version of a record
    read_back: Callable[[Any, dict[str, Any]], dict[str, Any] | None]
    changed: Callable[[dict[str, Any]], bool]  # does a read-back record carry the change?
    prepare: Callable[[Any], None] | None = None  # make sure the stream has records to read
    #: False where the delta is "still open work" (supplier: pending submissions), which a write closes.
    delta_includes_change: bool = True


# ------------------------------------------------------------------------------------------------------ ERP

def _erp_write(c: Any, item: dict[str, Any]) -> WriteResult:
    result: WriteResult = c.put_item({**item, "vendor_name": "Contract Vendor Ltd"})
    return result


ERP = Contract(
    System.ERP, "sku", "updated_at",
    read=lambda c: c.iter_items(),
    delta=lambda c, since: c.iter_items(updated_since=since),
    write=_erp_write,
    read_back=lambda c, r: c.get_item(r["sku"]),
    changed=lambda r: r["vendor_name"] == "Contract Vendor Ltd",
)

# ------------------------------------------------------------------------------------------------------ PIM

CONTRACT_TITLE = "Contract meta title"


def _pim_write(c: Any, product: dict[str, Any]) -> WriteResult:
    values = {"meta_title": [{"locale": "en_US", "scope": None, "data": CONTRACT_TITLE}]}
    results = c.upsert_products([{"identifier": product["identifier"], "values": values}])
    assert len(results) == 1
    result: WriteResult = results[0]
    return result


PIM = Contract(
    System.PIM, "identifier", "updated",
    read=lambda c: c.iter_products(),
    delta=lambda c, since: c.iter_products(updated_after=since),
    write=_pim_write,
    read_back=lambda c, r: c.get_product(r["identifier"]),
    changed=lambda r: any(v["data"] == CONTRACT_TITLE for v in r["values"].get("meta_title", [])),
)

# ------------------------------------------------------------------------------------------------------ DAM

VALID_TO = "2099-12-31T00:00:00Z"

DAM = Contract(
    System.DAM, "id", "updated_at",
    read=lambda c: c.iter_assets(),
    delta=lambda c, since: c.iter_assets(updated_since=since),
    write=lambda c, a: c.update_asset(a["id"], {"valid_to": VALID_TO}),
    read_back=lambda c, a: c.get_asset(a["id"]),
    changed=lambda a: str(a.get("valid_to", "")).startswith("2099-12-31"),
)

# ----------------------------------------------------------------------------------------------- storefront


def _storefront_prepare(c: Any) -> None:
    """The storefront starts empty: publish three simple products so there is something to page through."""
    for n in range(3):
        record = erp_item_to_canonical({"sku": f"CONTRACT-{n}", "product_type": "simple",
                                        "lifecycle_status": "active", "reference_price": {"amount": 10 + n}})
        record.update(name=f"Contract product {n}", description="<p>Contract</p>")
        assert c.upsert_product(canonical_to_shopify_product(record)).ok


def _storefront_write(c: Any, product: dict[str, Any]) -> WriteResult:
    desired = {k: product.get(k) for k in ("handle", "title", "body_html", "vendor", "product_type", "status")}
    desired["variants"] = [{k: v.get(k) for k in ("sku", "price", "barcode")} for v in product["variants"]]
    result: WriteResult = c.upsert_product({**desired, "title": "Contract title"})
    return result


STOREFRONT = Contract(
    System.STOREFRONT, "id", "updated_at",
    read=lambda c: c.iter_products(),
    delta=lambda c, since: c.iter_products(updated_at_min=since),
    write=_storefront_write,
    read_back=lambda c, p: c.find_by_handle(p["handle"]),
    changed=lambda p: p["title"] == "Contract title",
    prepare=_storefront_prepare,
)

# ------------------------------------------------------------------------------------------------- supplier

SUPPLIER = Contract(
    System.SUPPLIER, "id", "submitted_at",
    read=lambda c: c.iter_submissions(status=None),
    # the portal has no change timestamp to filter on: "what is new" is what is still pending
    delta=lambda c, since: c.iter_submissions(status="pending"),
    write=lambda c, s: c.decide(s["id"], "quarantined", "contract test"),
    read_back=lambda c, s: next((r for r in ReadResult.collect(c.iter_submissions(status=None)).records
                                 if r["id"] == s["id"]), None),
    changed=lambda s: s["status"] == "quarantined",
    delta_includes_change=False,
)

CONTRACTS = [ERP, PIM, DAM, STOREFRONT, SUPPLIER]


@pytest.fixture(params=CONTRACTS, ids=[c.system.value for c in CONTRACTS])
def contract(request: pytest.FixtureRequest, fresh_sandbox: Any) -> Iterator[tuple[Contract, Any]]:
    spec: Contract = request.param
    client = make_client(fresh_sandbox, spec.system, page_size=PAGE_SIZE)
    if spec.prepare is not None:
        spec.prepare(client)
    with client:
        yield spec, client


def test_pages_chain_without_gaps_or_duplicates(contract: tuple[Contract, Any]) -> None:
    spec, client = contract
    result = ReadResult.collect(spec.read(client))
    keys = [r[spec.key] for r in result.records]
    assert keys, "the sandbox catalog should not be empty"
    assert len(keys) == len(set(keys)), "a record was read twice across pages"
    assert not result.errors, [str(e) for e in result.errors]
    if len(keys) > PAGE_SIZE:
        full_pages = math.ceil(len(keys) / PAGE_SIZE)
        # a keyset or cursor API may only learn it is done on one extra, empty page
        assert result.pages in (full_pages, full_pages + 1)


def test_delta_read_returns_the_change_not_the_catalog(contract: tuple[Contract, Any]) -> None:
    spec, client = contract
    everything = ReadResult.collect(spec.read(client)).records
    target = everything[len(everything) // 2]
    newest = max(parse_ts(r[spec.cursor]) for r in everything if r.get(spec.cursor))
    since = newest + timedelta(seconds=1)
    # the PIM filters at one-second resolution: let the clock pass the catalog's newest stamp
    wait = (since - datetime.now(UTC)).total_seconds()
    if wait > 0:
        time.sleep(min(wait + 0.1, 3))
    assert spec.write(client, target).ok
    changed = ReadResult.collect(spec.delta(client, since)).records
    keys = {r[spec.key] for r in changed}
    if spec.delta_includes_change:
        assert target[spec.key] in keys
        assert len(keys) < len(everything)
    else:
        assert target[spec.key] not in keys and keys


def test_write_reads_back_and_rewrite_is_idempotent(contract: tuple[Contract, Any]) -> None:
    spec, client = contract
    before = ReadResult.collect(spec.read(client)).records
    target = before[0]
    first = spec.write(client, target)
    assert first.ok, first.message
    back = spec.read_back(client, target)
    assert back is not None and spec.changed(back)
    second = spec.write(client, target)
    assert second.outcome in (Outcome.OK, Outcome.UNCHANGED), second.message
    again = spec.read_back(client, target)
    assert again is not None and spec.changed(again)
    after = ReadResult.collect(spec.read(client)).records
    assert sorted(map(str, (r[spec.key] for r in after))) == sorted(map(str, (r[spec.key] for r in before)))
