"""ERP connector: item master, stock and prices, read by keyset pages or from the ordered change feed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from catalog_sync.connectors.base import Outcome, Page, Stream, WriteResult, nullable, split_records
from catalog_sync.connectors.credentials import ApiKeyCredentials, coerce
from catalog_sync.connectors.http import (
    ApiKeyAuth,
    ClientOptions,
    ConnectorError,
    HttpClient,
    MalformedResponse,
    RecordError,
    path_segment,
    require_keys,
)
from catalog_sync.domain import LifecycleStatus, System

ITEMS: Final = Stream(
    "items",
    "sku",
    "updated_at",
    {
        "required": ["sku", "product_type", "lifecycle_status", "updated_at"],
        "properties": {
            "sku": {"type": "string"},
            "parent_sku": nullable("string"),
            "product_type": {"type": "string", "enum": ["configurable", "simple"]},
            "item_type": nullable("string"),
            "components": nullable("array"),
            "kit_pricing": nullable("string"),
            "lifecycle_status": {"type": "string", "enum": [s.value for s in LifecycleStatus]},
            "upc": nullable("string"),
            "product_group": nullable("string"),
            "uom": nullable("string"),
            "weight": nullable("object"),
            "dimensions": nullable("object"),
            "country_of_origin": nullable("string"),
            "vendor_name": nullable("string"),
            "reference_price": nullable("object"),
            "description": nullable("string"),
            "updated_at": {"type": "string"},
        },
    },
)
STOCK: Final = Stream(
    "stock",
    ("sku", "location"),
    "updated_at",
    {
        "required": ["sku", "location", "quantity"],
        "properties": {
            "sku": {"type": "string"},
            "location": {"type": "string"},
            "quantity": {"type": "integer"},
            "updated_at": nullable("string"),
        },
    },
)
PRICES: Final = Stream(
    "prices",
    "sku",
    "updated_at",
    {
        "required": ["sku", "price", "currency"],
        "properties": {
            "sku": {"type": "string"},
            "price": {"type": "number"},
            "currency": {"type": "string"},
            "updated_at": nullable("string"),
        },
    },
)
CHANGES: Final = Stream(
    "changes",
    "seq",
    "seq",
    {
        "required": ["seq", "topic", "sku"],
        "properties": {
            "seq": {"type": "integer"},
            "topic": {"type": "string", "enum": ["stock", "price", "item"]},
            "sku": {"type": "string"},
            "data": nullable("object"),
            "committed_at": nullable("string"),
        },
    },
)


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class ErpClient(HttpClient):
    """The ERP's REST API (``X-Api-Key``). Build with ``ErpClient("http://host:8765/erp", "key")``."""

    system = System.ERP.value
    streams: Final = {s.name: s for s in (ITEMS, STOCK, PRICES, CHANGES)}
    #: The API refuses more than 1000 per page; 500 keeps pages quick to re-read after a dropped connection.
    DEFAULT_PAGE_SIZE: Final = 500
    MAX_PAGE_SIZE: Final = 1000

    def __init__(
        self, base_url: str, credentials: ApiKeyCredentials | str, options: ClientOptions | None = None, **kwargs: Any
    ) -> None:
        creds = coerce(ApiKeyCredentials, credentials)
        super().__init__(base_url, ApiKeyAuth(creds.api_key, "X-Api-Key"), options, **kwargs)

    @property
    def page_size(self) -> int:
        return min(self.options.page_size or self.DEFAULT_PAGE_SIZE, self.MAX_PAGE_SIZE)

    # ----------------------------------------------------------------------------------------------------- reads

    def _keyset(self, path: str, stream: Stream, key: str, params: dict[str, Any]) -> Iterator[Page]:
        after: str | None = params.pop("after_sku", None)
        offset = 0
        while True:
            query = {**params, "limit": self.page_size}
            if after is not None:
                query["after_sku"] = after
            body = self.get_json(path, query, validate=require_keys(key, "next_after_sku"))
            raw = body[key]
            good, bad = split_records(stream, raw, self.system, offset, refetch=lambda q=query: self.get_json(  # type: ignore[misc]  # mypy: lambda default args
                path, q, validate=require_keys(key, "next_after_sku"))[key])
            offset += len(raw)
            after = body.get("next_after_sku")
            yield Page(stream.name, good, bad, after)
            if not after:
                return

    def iter_items(self, updated_since: datetime | str | None = None, after_sku: str | None = None) -> Iterator[Page]:
        """Items in SKU order, optionally only those updated after ``updated_since`` (the stream's delta read)."""
        params: dict[str, Any] = {}
        if updated_since is not None:
            params["updated_since"] = _iso(updated_since)
        if after_sku:
            params["after_sku"] = after_sku
        return self._keyset("items", ITEMS, "items", params)

    def iter_stock(self, sku: str | None = None) -> Iterator[Page]:
        return self._keyset("stock", STOCK, "stock", {"sku": sku} if sku else {})

    def iter_prices(self, sku: str | None = None) -> Iterator[Page]:
        return self._keyset("prices", PRICES, "prices", {"sku": sku} if sku else {})

    def get_item(self, sku: str) -> dict[str, Any] | None:
        """One item, None when the ERP does not know the SKU; a malformed item raises :class:`RecordError`."""
        result = self.request("GET", f"items/{path_segment(sku)}", expect=(200, 404))
        if result.status == 404:
            return None
        error = ITEMS.check(result.body, self.system)
        if error is not None:
            raise error
        return dict(result.body)

    def iter_changes(self, after: int = 0, until: int | None = None, limit: int | None = None) -> Iterator[Page]:
        """The change feed from ``after`` (exclusive) up to ``until`` (inclusive, the bound frozen at run start).

        ``seq`` is gap-free and in commit order, so the page cursor (the last seq read) is a safe resume point.
        """
        size = min(limit or self.page_size, self.MAX_PAGE_SIZE)
        offset = 0
        while until is None or after < until:
            body = self.get_json("changes", {"after": after, "limit": size}, validate=require_keys("changes"))
            changes = body["changes"]
            if not changes:
                return
            seqs = [c["seq"] for c in changes if isinstance(c, dict) and isinstance(c.get("seq"), int)]
            # seq is gap-free, so even a malformed change has used one: the page ends at its highest seq
            top = max(seqs) if seqs else after + len(changes)
            if until is not None:
                changes = [c for c in changes if not (isinstance(c, dict) and isinstance(c.get("seq"), int))
                           or c["seq"] <= until]
                top = min(top, until)
            good, bad = split_records(CHANGES, changes, self.system, offset, refetch=lambda a=after: [  # type: ignore[misc]  # mypy: lambda default args
                c for c in self.get_json("changes", {"after": a, "limit": size}, validate=require_keys("changes"))[
                    "changes"]
                if until is None or not (isinstance(c, dict) and isinstance(c.get("seq"), int)) or c["seq"] <= until])
            offset += len(changes)
            yield Page(CHANGES.name, good, bad, top)
            if len(body["changes"]) < size or top <= after:
                return
            after = top

    def last_seq(self) -> int:
        """The feed's current head, to freeze as this run's upper bound."""
        body = self.get_json("changes", {"after": 0, "limit": 1}, validate=require_keys("last_seq"))
        return int(body["last_seq"])

    def reference_table(self, table: str) -> list[dict[str, Any]]:
        """The ERP's ``units`` or ``countries`` table, whole (each a few hundred rows at most: one answer)."""
        if table not in ("units", "countries"):
            raise ValueError(f"the ERP has reference tables units and countries, not {table!r}")
        body = self.get_json(table, None, validate=require_keys(table))
        rows = body[table]
        if not isinstance(rows, list) or not all(isinstance(r, dict) and r.get("code") for r in rows):
            raise MalformedResponse(f"{table}: expected a list of objects with a code")
        return [dict(r) for r in rows]

    def items_csv(self) -> str:
        """The legacy ``;``-separated export of every item."""
        return str(self.request("GET", "items.csv", parse="text").body)

    # ---------------------------------------------------------------------------------------------------- writes

    def _put(self, segments: tuple[str, ...], key: str, payload: dict[str, Any]) -> WriteResult:
        """PUT ``payload`` at the path of ``segments``, each encoded as one path segment (a SKU may hold ``/``)."""
        try:
            path = "/".join(path_segment(s) for s in segments)
            result = self.request("PUT", path, json_body=payload, record_key=key)
        except RecordError as exc:
            return WriteResult.failure(key, exc, payload)
        except ConnectorError:
            raise
        return WriteResult(key, Outcome.OK, result.status, None, payload, response=result.body)

    def put_item(self, item: dict[str, Any]) -> WriteResult:
        return self._put(("items", item["sku"]), item["sku"], item)

    def set_stock(self, sku: str, location: str, quantity: int) -> WriteResult:
        return self._put(("stock", sku, location), f"{sku}/{location}", {"quantity": quantity})

    def set_price(self, sku: str, price: float, currency: str = "USD") -> WriteResult:
        return self._put(("prices", sku), sku, {"price": price, "currency": currency})

    def register_webhook(self, url: str, topics: tuple[str, ...] = ("stock", "price", "item")) -> str:
        body = self.request("POST", "webhooks", json_body={"url": url, "topics": list(topics)}).body
        return str(body["id"])
