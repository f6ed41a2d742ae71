"""Storefront connector (Shopify Admin REST API 2025-01): products by handle, inventory, cache, shopper page."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import requests

from catalog_sync.connectors.base import Outcome, Page, Stream, WriteResult, nullable, split_records
from catalog_sync.connectors.credentials import StorefrontCredentials, coerce
from catalog_sync.connectors.http import (
    ApiKeyAuth,
    ClientOptions,
    HttpClient,
    HttpResult,
    MalformedResponse,
    RecordError,
    require_keys,
)
from catalog_sync.domain import System

API_VERSION: Final = "2025-01"
ADMIN: Final = f"admin/api/{API_VERSION}"
CALL_LIMIT_HEADER: Final = "X-Shopify-Shop-Api-Call-Limit"

PRODUCTS: Final = Stream(
    "products",
    "id",
    "updated_at",
    {
        "required": ["id", "handle", "variants"],
        "properties": {
            "id": {"type": "integer"},
            "title": nullable("string"),
            "body_html": nullable("string"),
            "handle": {"type": "string"},
            "vendor": nullable("string"),
            "product_type": nullable("string"),
            "status": {"type": "string", "enum": ["active", "draft", "archived"]},
            "tags": nullable("string", "array"),
            "updated_at": nullable("string"),
            "options": nullable("array"),
            "variants": {"type": "array"},
            "images": nullable("array"),
        },
    },
)

#: Product fields compared to decide whether an update would change anything.
_PRODUCT_FIELDS: Final = ("title", "body_html", "vendor", "product_type", "status", "tags")
_VARIANT_FIELDS: Final = ("price", "barcode", "option1", "option2", "option3", "weight", "weight_unit")


def idempotency_key(sku: str, location_id: str | int, quantity: int, change_seq: int | str) -> str:
    """The ``Idempotency-Key`` of one inventory set: the same ERP change always yields the same key, so a
    replayed run (or a retried request whose answer was lost) is answered from the first and changes nothing."""
    raw = f"catalog-sync:inventory:{sku}:{location_id}:{quantity}:{change_seq}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _same(a: Any, b: Any) -> bool:
    if a in (None, "") and b in (None, ""):
        return True
    try:
        return float(a) == float(b)  # "34.00" vs 34 vs "34.0": prices and weights compare as numbers
    except (TypeError, ValueError):
        return bool(a == b)


def product_differences(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Which storefront fields ``desired`` would change on ``existing`` (variants matched by SKU)."""
    diffs = [f for f in _PRODUCT_FIELDS if f in desired and not _same(existing.get(f), desired[f])]
    current = {v.get("sku"): v for v in existing.get("variants") or []}
    wanted = {v.get("sku"): v for v in desired.get("variants") or []}
    if set(current) != set(wanted):
        diffs.append("variants")
    else:
        for sku, variant in wanted.items():
            diffs.extend(f"variants[{sku}].{f}" for f in _VARIANT_FIELDS
                         if f in variant and not _same(current[sku].get(f), variant[f]))
    if "images" in desired:
        have = [i.get("src") for i in existing.get("images") or []]
        if have != [i.get("src") for i in desired["images"]]:
            diffs.append("images")
    return diffs


def _products_well_formed(result: HttpResult) -> None:
    require_keys("products")(result)
    problems = [p for r in result.body["products"] for p in PRODUCTS.problems(r)]
    if problems:
        raise MalformedResponse(f"malformed product in the answer: {problems[0]}")


@dataclass(frozen=True)
class ShopperPage:
    """The product page a shopper sees, as served through the render cache."""

    status: int
    html: str
    cache: str | None  # "HIT" | "MISS"
    age: int | None


class StorefrontClient(HttpClient):
    """Shopify Admin REST. Build with ``StorefrontClient("http://host:8765/storefront", "shpat_...")``.

    Watches ``X-Shopify-Shop-Api-Call-Limit`` (a leaky bucket: ``used/40``, draining 2 per second) and waits
    before a request when the bucket is nearly full, so normal operation never meets a 429 at all.
    """

    system = System.STOREFRONT.value
    streams: Final = {PRODUCTS.name: PRODUCTS}
    MAX_PAGE_SIZE: Final = 250
    LEAK_PER_SECOND: Final = 2.0

    def __init__(
        self,
        base_url: str,
        credentials: StorefrontCredentials | str,
        options: ClientOptions | None = None,
        *,
        bucket_threshold: float = 0.8,
        leak_per_second: float | None = None,
        **kwargs: Any,
    ) -> None:
        creds = coerce(StorefrontCredentials, credentials)
        super().__init__(base_url, ApiKeyAuth(creds.access_token, "X-Shopify-Access-Token"), options, **kwargs)
        self.bucket_threshold = bucket_threshold
        # Shopify's plan decides the drain rate (standard 2/s, Plus 20/s); pacing on the wrong one wastes time.
        self.leak_per_second = float(leak_per_second or self.LEAK_PER_SECOND)
        self._bucket_lock = threading.Lock()
        self._bucket: tuple[float, float, float] | None = None  # (used, size, observed at)
        #: Seconds spent waiting for the bucket to drain, for the time-waiting-on-systems metric.
        self.throttled_seconds = 0.0

    # ------------------------------------------------------------------------------------------ call-limit bucket

    def after_response(self, response: requests.Response) -> None:
        value = response.headers.get(CALL_LIMIT_HEADER)
        if not value or "/" not in value:
            return
        used, _, size = value.partition("/")
        try:
            with self._bucket_lock:
                self._bucket = (float(used), float(size), time.monotonic())
        except ValueError:
            return

    def bucket_wait(self) -> float:
        """Seconds to wait before the next call so the bucket is back under the threshold."""
        with self._bucket_lock:
            if self._bucket is None:
                return 0.0
            used, size, at = self._bucket
        level = max(0.0, used - (time.monotonic() - at) * self.leak_per_second)
        ceiling = size * self.bucket_threshold
        return 0.0 if level < ceiling else (level - ceiling + 1) / self.leak_per_second

    def before_request(self) -> None:
        wait = self.bucket_wait()
        if wait > 0:
            self.throttled_seconds += wait
            self._sleep(wait)

    # ----------------------------------------------------------------------------------------------------- reads

    def iter_products(
        self,
        updated_at_min: datetime | str | None = None,
        status: str | None = None,
        handle: str | None = None,
    ) -> Iterator[Page]:
        """Products, following ``Link: <...>; rel="next"``; ``updated_at_min`` is the stream's delta read."""
        first: dict[str, Any] = {"limit": min(self.options.page_size or self.MAX_PAGE_SIZE, self.MAX_PAGE_SIZE)}
        if updated_at_min is not None:
            first["updated_at_min"] = (
                updated_at_min.isoformat() if isinstance(updated_at_min, datetime) else updated_at_min
            )
        if status:
            first["status"] = status
        if handle:
            first["handle"] = handle
        url = f"{ADMIN}/products.json"
        params: dict[str, Any] | None = first
        offset = 0
        while True:
            result = self.request("GET", url, params=params, validate=require_keys("products"))
            raw = result.body["products"]
            good, bad = split_records(PRODUCTS, raw, self.system, offset, refetch=lambda u=url, p=params: self.get_json(  # type: ignore[misc]  # mypy: lambda default args
                u, p, validate=require_keys("products"))["products"])
            offset += len(raw)
            nxt = (result.links.get("next") or {}).get("url")
            cursor = parse_qs(urlsplit(nxt).query).get("page_info", [None])[0] if nxt else None
            yield Page(PRODUCTS.name, good, bad, cursor)
            if not nxt:
                return
            # Shopify rejects filters next to page_info: the link alone carries the position
            url, params = nxt, None

    def get_product(self, product_id: int) -> dict[str, Any] | None:
        result = self.request("GET", f"{ADMIN}/products/{product_id}.json", expect=(200, 404))
        return None if result.status == 404 else dict(result.body["product"])

    def find_by_handle(self, handle: str) -> dict[str, Any] | None:
        # a garbled product in the answer is read again: acting on it (its id, its variants) would corrupt a write
        body = self.get_json(f"{ADMIN}/products.json", {"handle": handle, "limit": 1},
                             validate=_products_well_formed)
        matches = [p for p in body["products"] if p.get("handle") == handle]
        return matches[0] if matches else None

    def locations(self) -> list[dict[str, Any]]:
        return list(self.get_json(f"{ADMIN}/locations.json", validate=require_keys("locations"))["locations"])

    def inventory_levels(self, inventory_item_ids: Sequence[int | str]) -> list[dict[str, Any]]:
        """Current stock of the given inventory items at every location."""
        ids = ",".join(str(i) for i in inventory_item_ids)
        body = self.get_json(f"{ADMIN}/inventory_levels.json", {"inventory_item_ids": ids},
                             validate=require_keys("inventory_levels"))
        return list(body["inventory_levels"])

    def shopper_page(self, handle: str) -> ShopperPage:
        """The public product page (no admin token: the shopper has none either)."""
        result = self.request("GET", f"products/{handle}", expect=(200, 404), parse="text", authenticate=False)
        age = result.headers.get("Age")
        return ShopperPage(result.status, str(result.body or result.content.decode("utf-8", "replace")),
                           result.headers.get("X-Cache"), int(age) if age and age.isdigit() else None)

    # ---------------------------------------------------------------------------------------------------- writes

    def upsert_product(self, product: Mapping[str, Any]) -> WriteResult:
        """Create or update one product, keyed by its ``handle``; ``unchanged`` when nothing would change."""
        handle = str(product["handle"])
        desired = dict(product)
        try:
            existing = self.find_by_handle(handle)
            if existing is None:
                result = self.request("POST", f"{ADMIN}/products.json", json_body={"product": desired},
                                      record_key=handle, expect=(200, 201))
                return WriteResult(handle, Outcome.OK, result.status, "created", desired,
                                   response=result.body.get("product"))
            diffs = product_differences(existing, desired)
            if not diffs:
                return WriteResult(handle, Outcome.UNCHANGED, 200, None, desired, response=existing)
            desired["id"] = existing["id"]
            # carry variant ids over, by SKU, so Shopify updates variants instead of replacing them
            ids = {v.get("sku"): v.get("id") for v in existing.get("variants") or []}
            if "variants" in desired:  # a partial update (images only) leaves the variants alone
                desired["variants"] = [
                    {**v, "id": ids[v.get("sku")]} if v.get("sku") in ids else dict(v)
                    for v in desired.get("variants") or []
                ]
            result = self.request("PUT", f"{ADMIN}/products/{existing['id']}.json", json_body={"product": desired},
                                  record_key=handle)
            return WriteResult(handle, Outcome.OK, result.status, "updated: " + ", ".join(diffs), desired,
                               response=(result.body or {}).get("product"))
        except RecordError as exc:
            return WriteResult.failure(handle, exc, desired)

    def upsert_products(self, products: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """One result per product; a refused product never stops the others."""
        results: list[WriteResult] = []
        for product in products:
            try:
                results.append(self.upsert_product(product))
            except Exception as exc:
                if hasattr(exc, "partial_results"):
                    exc.partial_results = list(results)
                raise
        return results

    def delete_product(self, product_id: int) -> WriteResult:
        key = str(product_id)
        result = self.request("DELETE", f"{ADMIN}/products/{product_id}.json", expect=(200, 204, 404))
        outcome = Outcome.UNCHANGED if result.status == 404 else Outcome.OK
        return WriteResult(key, outcome, result.status, "already absent" if result.status == 404 else "deleted")

    def set_inventory(
        self, sku: str, location_id: int | str, inventory_item_id: int | str, available: int, change_seq: int | str
    ) -> WriteResult:
        """Set one SKU's stock at one location, idempotently for the ERP change ``change_seq``."""
        key = idempotency_key(sku, location_id, available, change_seq)
        payload = {"location_id": location_id, "inventory_item_id": inventory_item_id, "available": available}
        record = f"{sku}/{location_id}"
        try:
            result = self.request("POST", f"{ADMIN}/inventory_levels/set.json", json_body=payload,
                                  headers={"Idempotency-Key": key}, record_key=record)
        except RecordError as exc:
            return WriteResult.failure(record, exc, {**payload, "idempotency_key": key})
        replayed = str(result.headers.get("Idempotent-Replayed", "")).lower() == "true"
        return WriteResult(record, Outcome.UNCHANGED if replayed else Outcome.OK, result.status,
                           "replayed" if replayed else None, {**payload, "idempotency_key": key},
                           response=result.body)

    def purge_cache(self, handles: Sequence[str]) -> dict[str, Any]:
        """Drop the rendered pages of ``handles`` so shoppers see the new data before the cache TTL runs out."""
        return dict(self.request("POST", f"{ADMIN}/cache/purge.json", json_body={"handles": list(handles)}).body or {})
