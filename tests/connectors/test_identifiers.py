"""Identifiers in request paths, over real HTTP to the sandbox: a SKU, asset id or submission id holding ``/``,
``?``, ``#``, ``%`` or a space reaches its own record and no other (ERP, DAM and supplier connectors)."""

from __future__ import annotations

from typing import Any

import pytest

from catalog_sync.connectors import (
    ClientOptions,
    ConfigurationError,
    Outcome,
    RecordError,
    RetryPolicy,
    build_client,
)
from catalog_sync.domain import System

RETRY = RetryPolicy(max_attempts=3, base=0.05, cap=0.5, max_retry_after=5)
#: Each is a prefix of, or a path around, a record that exists: sent raw, it would answer for that record.
AWKWARD = ["MH01?x=1", "MH01#top", "MH01/", "MH01%", "MH01 x", "../items", "MH01/../MH01"]


def client(sandbox: Any, system: System) -> Any:
    return build_client(system, f"{sandbox.url}/{system.value}", sandbox.credentials[system.value],
                        ClientOptions(retry=RETRY))


@pytest.mark.parametrize("sku", AWKWARD)
def test_an_erp_lookup_answers_for_that_sku_only(sandbox: Any, sku: str) -> None:
    erp = client(sandbox, System.ERP)
    assert erp.get_item("MH01")["sku"] == "MH01"  # the record each awkward SKU would have reached
    assert erp.get_item(sku) is None


def test_erp_records_with_reserved_characters_are_written_and_read_by_their_own_sku(fresh_sandbox: Any) -> None:
    erp = client(fresh_sandbox, System.ERP)
    skus = ["BAG/01", "BAG?01", "BAG#01", "BAG%01", "BAG 01", "../BAG"]
    for n, sku in enumerate(skus):
        written = erp.put_item({"sku": sku, "product_type": "simple", "lifecycle_status": "draft",
                                "vendor_name": f"Vendor {n}"})
        assert written.outcome is Outcome.OK and written.response["sku"] == sku
    for n, sku in enumerate(skus):
        assert erp.get_item(sku)["vendor_name"] == f"Vendor {n}"
        assert erp.set_stock(sku, "DC-EAST", 7 + n).ok and erp.set_price(sku, 10.0 + n).ok
    assert erp.get_item("BAG") is None  # what "BAG/01" and "BAG?01" reached before they were encoded
    stock = {r["sku"]: r["quantity"] for page in erp.iter_stock() for r in page.records
             if r["location"] == "DC-EAST"}
    prices = {r["sku"]: r["price"] for page in erp.iter_prices() for r in page.records}
    for n, sku in enumerate(skus):
        assert stock[sku] == 7 + n and prices[sku] == 10.0 + n


def test_dot_segments_are_refused_rather_than_sent() -> None:
    erp = build_client(System.ERP, "http://127.0.0.1:9/erp", "key")  # never contacted
    for sku in ("", ".", ".."):
        with pytest.raises(RecordError):
            erp.get_item(sku)
        assert erp.put_item({"sku": sku}).outcome is Outcome.FAILED


def test_a_dam_asset_id_with_a_slash_is_its_own_asset(fresh_sandbox: Any) -> None:
    dam = client(fresh_sandbox, System.DAM)
    assert dam.get_asset("../assets") is None  # raw, this was the asset list
    created = dam.update_asset("AST/SEASON 1", {"filename": "season.jpg", "sku": "24-MB01", "role": "seasonal"})
    assert created.outcome is Outcome.OK and created.response["id"] == "AST/SEASON 1"
    asset = dam.get_asset("AST/SEASON 1")
    assert asset is not None and asset["id"] == "AST/SEASON 1" and asset["role"] == "seasonal"
    assert dam.get_asset("AST") is None
    assert dam.download(asset)[:8] == b"\x89PNG\r\n\x1a\n"  # the binary route, not an asset named ".../binary"


def test_supplier_submission_paths_are_encoded(sandbox: Any) -> None:
    supplier = client(sandbox, System.SUPPLIER)
    existing = next(iter(supplier.iter_submissions())).records[0]
    assert supplier.get_submission(existing["id"])["id"] == existing["id"]
    for probe in ("../submissions", f"{existing['id']}?x=1", f"{existing['id']}/"):
        assert supplier.get_submission(probe) is None
    with pytest.raises(ConfigurationError, match="404"):  # an unknown submission, not the one it prefixes
        supplier.decide(f"{existing['id']}#x", "rejected", "no such submission")
    assert supplier.get_submission(existing["id"])["status"] == existing["status"]  # untouched
