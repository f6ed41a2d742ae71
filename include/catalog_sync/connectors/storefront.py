"""Storefront connector: Shopify's Admin REST API (2025-01) for reads and single writes, its GraphQL Admin API
(2026-04) for bulk writes (``productSet`` under aliases, ``inventorySetQuantities`` 250 levels a call)."""

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
    ConfigurationError,
    ConnectorError,
    Disposition,
    HttpClient,
    HttpResult,
    MalformedResponse,
    RecordError,
    RetryLater,
    require_keys,
)
from catalog_sync.domain import System

API_VERSION: Final = "2025-01"
ADMIN: Final = f"admin/api/{API_VERSION}"
CALL_LIMIT_HEADER: Final = "X-Shopify-Shop-Api-Call-Limit"
GRAPHQL_VERSION: Final = "2026-04"
GRAPHQL: Final = f"admin/api/{GRAPHQL_VERSION}/graphql.json"
#: GraphQL points a mutation field costs (Shopify's published cost of a mutation).
MUTATION_COST: Final = 10
#: ``productSet`` fields per GraphQL request: 500 points, half Shopify's 1,000-point single-query limit.
PRODUCTS_PER_REQUEST: Final = 50
#: Quantities per ``inventorySetQuantities`` call (Shopify's maximum).
LEVELS_PER_REQUEST: Final = 250
#: Handles per ``products.json?handle=a,b,...`` read (keeps the URL well under servers' request-line limits).
HANDLES_PER_READ: Final = 100
#: Shopify's GraphQL weight units by REST ``weight_unit``.
WEIGHT_UNITS: Final = {"g": "GRAMS", "kg": "KILOGRAMS", "oz": "OUNCES", "lb": "POUNDS"}

_PRODUCT_SET: Final = (
    "{alias}: productSet(input: ${alias}, identifier: ${alias}_id) {{ product {{ id handle title status "
    "variants(first: 250) {{ nodes {{ id sku price inventoryItem {{ id }} }} }} }} userErrors {{ field message code }} }}"
)
_SET_QUANTITIES: Final = (
    "mutation SetQuantities($input: InventorySetQuantitiesInput!, $key: String!) { "
    "inventorySetQuantities(input: $input) @idempotent(key: $key) { inventoryAdjustmentGroup { changes { "
    "delta quantityAfterChange item { id } location { id } } } userErrors { field message code } } }"
)

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
    if "variants" not in desired:  # a partial update (images only) leaves the variants alone
        pass
    elif set(current) != set(wanted):
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


def gid(kind: str, number: int | str) -> str:
    """A Shopify global id (``gid://shopify/Product/123``) from a REST id."""
    return f"gid://shopify/{kind}/{number}"


def rest_id(value: Any) -> int | None:
    """The REST id inside a global id."""
    tail = str(value or "").rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def product_set_input(desired: Mapping[str, Any], existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """A REST-shaped product as ``ProductSetInput``. Fields ``desired`` leaves out are left out (``productSet``
    keeps them); a partial variant (``{"sku", "price"}``) is completed from ``existing``'s variant of that SKU,
    because ``productSet`` replaces the variant list with what it is sent."""
    out: dict[str, Any] = {}
    for rest, name in (("title", "title"), ("body_html", "descriptionHtml"), ("vendor", "vendor"),
                       ("product_type", "productType"), ("handle", "handle")):
        if rest in desired:
            out[name] = desired[rest]
    if desired.get("status"):
        out["status"] = str(desired["status"]).upper()
    if "tags" in desired:
        tags = desired["tags"]
        out["tags"] = [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else list(tags or [])
    options = desired.get("options") if "options" in desired else (existing or {}).get("options")
    names = [str(o.get("name")) for o in options or []]
    if "options" in desired or ("variants" in desired and names):
        out["productOptions"] = [{"name": o.get("name"), "values": [{"name": v} for v in o.get("values") or []]}
                                 for o in options or []]
    if "variants" in desired:
        current = {v.get("sku"): v for v in (existing or {}).get("variants") or []}
        variants = []
        for wanted in desired.get("variants") or []:
            v = {**current.get(wanted.get("sku"), {}), **wanted}
            item: dict[str, Any] = {"sku": v.get("sku")}
            if v.get("weight") is not None and v.get("weight_unit") in WEIGHT_UNITS:
                item["measurement"] = {"weight": {"value": float(v["weight"]), "unit": WEIGHT_UNITS[v["weight_unit"]]}}
            variant: dict[str, Any] = {
                "optionValues": [{"optionName": name, "name": v.get(f"option{i}")}
                                 for i, name in enumerate(names[:3], start=1) if v.get(f"option{i}") is not None],
                "inventoryItem": item,
            }
            if v.get("price") is not None:
                variant["price"] = str(v["price"])
            if v.get("barcode") is not None:
                variant["barcode"] = str(v["barcode"])
            variants.append(variant)
        out["variants"] = variants
    if "images" in desired:
        out["files"] = [{"originalSource": i.get("src"), "alt": i.get("alt"), "contentType": "IMAGE"}
                        for i in desired.get("images") or []]
    if "metafields" in desired:
        out["metafields"] = [dict(m) for m in desired.get("metafields") or []]
    return out


def _rest_product(node: Mapping[str, Any]) -> dict[str, Any]:
    """A ``productSet`` answer's product in the REST shape the flows read (numeric ids, lower-case status)."""
    return {
        "id": rest_id(node.get("id")), "handle": node.get("handle"), "title": node.get("title"),
        "status": str(node.get("status") or "").lower(),
        "variants": [{"id": rest_id(v.get("id")), "sku": v.get("sku"), "price": v.get("price"),
                      "inventory_item_id": rest_id((v.get("inventoryItem") or {}).get("id"))}
                     for v in (node.get("variants") or {}).get("nodes") or []],
    }


def _user_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(e.get('field') or []) or 'input'}: {e.get('message')}" for e in errors)


@dataclass(frozen=True)
class LevelWrite:
    """One inventory level to set: ``key`` names it in the results; ``change_seq`` the ERP change it applies."""

    key: str
    sku: str
    location_id: int | str
    inventory_item_id: int | str
    available: int
    change_seq: int | str


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
        self._points: tuple[float, float, float] | None = None  # GraphQL (available, restore rate, observed at)

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

    # ------------------------------------------------------------------------------------------- GraphQL points

    def _graphql_checked(self, result: HttpResult) -> None:
        """``validate`` of a GraphQL answer: notes the cost bucket; THROTTLED is retried when enough points are
        back; any other top-level error without data means the request itself is wrong."""
        body = result.body
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            raise MalformedResponse("a GraphQL answer holds data or errors")
        status = ((body.get("extensions") or {}).get("cost") or {}).get("throttleStatus") or {}
        restore = float(status.get("restoreRate") or 0)
        if "currentlyAvailable" in status and restore:
            with self._bucket_lock:
                self._points = (float(status["currentlyAvailable"]), restore, time.monotonic())
        codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
        if "THROTTLED" in codes:
            cost = (body.get("extensions") or {}).get("cost") or {}
            short = float(cost.get("requestedQueryCost") or MUTATION_COST) - float(status.get("currentlyAvailable") or 0)
            raise RetryLater("GraphQL THROTTLED", max(short, 1.0) / restore if restore else None)

    def _points_wait(self, cost: float) -> float:
        with self._bucket_lock:
            if self._points is None:
                return 0.0
            available, restore, at = self._points
        return max(0.0, cost - (available + (time.monotonic() - at) * restore)) / restore

    def graphql(self, query: str, variables: Mapping[str, Any], cost: float) -> HttpResult:
        """One GraphQL Admin request, paced by the cost bucket so that normal operation is never throttled."""
        wait = self._points_wait(cost)
        if wait > 0:
            self.throttled_seconds += wait
            self._sleep(wait)
        result = self.request("POST", GRAPHQL, json_body={"query": query, "variables": dict(variables)},
                              validate=self._graphql_checked)
        if not isinstance(result.body.get("data"), dict):
            raise ConfigurationError(f"GraphQL refused the request: {result.body.get('errors')}",
                                     system=self.system, method="POST", path=GRAPHQL, status=result.status)
        return result

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

    def find_by_handles(self, handles: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The products with these handles, by handle (absent ones left out): one read per hundred handles."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(str(h) for h in handles))
        for start in range(0, len(wanted), HANDLES_PER_READ):
            batch = wanted[start:start + HANDLES_PER_READ]
            body = self.get_json(f"{ADMIN}/products.json", {"handle": ",".join(batch), "limit": len(batch)},
                                 validate=_products_well_formed)
            found.update({p["handle"]: p for p in body["products"] if p.get("handle") in batch})
        return found

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

    def upsert_products(
        self, products: Sequence[Mapping[str, Any]], existing: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[WriteResult]:
        """Create or update many products by handle: what they are now is read in batches (or taken from
        ``existing``, by handle, when the caller just read them), unchanged ones are left alone, and the rest go
        out as ``productSet`` mutations, :data:`PRODUCTS_PER_REQUEST` (or ``options.batch_size``, if smaller) to a
        GraphQL request.

        One result per product, in order; a product the storefront refuses (its ``userErrors``) fails alone. When
        the storefront stops answering, the raised error carries the results of the requests that did go out in
        ``partial_results``.
        """
        handles = [str(p["handle"]) for p in products]
        current = dict(existing) if existing is not None else self.find_by_handles(handles)
        results: dict[int, WriteResult] = {}
        outgoing: list[tuple[int, dict[str, Any], list[str] | None]] = []
        for n, product in enumerate(products):
            desired, found = dict(product), current.get(handles[n])
            diffs = product_differences(found, desired) if found else None
            if found and not diffs:
                results[n] = WriteResult(handles[n], Outcome.UNCHANGED, 200, None, desired, response=dict(found))
            else:
                outgoing.append((n, desired, diffs))
        size = min(self.options.batch_size or PRODUCTS_PER_REQUEST, PRODUCTS_PER_REQUEST)
        for start in range(0, len(outgoing), size):
            batch = outgoing[start:start + size]
            try:
                results.update(self._product_set(batch, handles, current))
            except ConnectorError as exc:
                exc.partial_results = [results[n] for n in sorted(results)]
                raise
        return [results[n] for n in range(len(products))]

    def _product_set(self, batch: Sequence[tuple[int, dict[str, Any], list[str] | None]], handles: Sequence[str],
                     current: Mapping[str, Mapping[str, Any]]) -> dict[int, WriteResult]:
        variables: dict[str, Any] = {}
        fields, params = [], []
        for n, desired, _diffs in batch:
            alias = f"p{n}"
            variables[alias] = product_set_input(desired, current.get(handles[n]))
            variables[f"{alias}_id"] = {"handle": handles[n]}
            params.append(f"${alias}: ProductSetInput!, ${alias}_id: ProductSetIdentifiers")
            fields.append(_PRODUCT_SET.format(alias=alias))
        query = f"mutation ProductSet({', '.join(params)}) {{ {' '.join(fields)} }}"
        result = self.graphql(query, variables, MUTATION_COST * len(batch))
        data, errors = result.body["data"], result.body.get("errors") or []
        out: dict[int, WriteResult] = {}
        for n, desired, diffs in batch:
            alias, handle = f"p{n}", handles[n]
            answer = data.get(alias) or {}
            problems = list(answer.get("userErrors") or []) + [
                {"field": ["input"], "message": e.get("message")} for e in errors if (e.get("path") or [None])[0] == alias]
            if problems or not answer.get("product"):
                out[n] = WriteResult(handle, Outcome.FAILED, 422, _user_errors(problems) or "no product in the answer",
                                     desired, Disposition.DEAD_LETTER)
                continue
            message = "created" if diffs is None else "updated: " + ", ".join(diffs)
            out[n] = WriteResult(handle, Outcome.OK, result.status, message, desired,
                                 response=_rest_product(answer["product"]))
        return out

    def delete_product(self, product_id: int) -> WriteResult:
        key = str(product_id)
        result = self.request("DELETE", f"{ADMIN}/products/{product_id}.json", expect=(200, 204, 404))
        outcome = Outcome.UNCHANGED if result.status == 404 else Outcome.OK
        return WriteResult(key, outcome, result.status, "already absent" if result.status == 404 else "deleted")

    def set_inventory_levels(self, levels: Sequence[LevelWrite]) -> list[WriteResult]:
        """Set many inventory levels: ``inventorySetQuantities`` with :data:`LEVELS_PER_REQUEST` quantities a call
        (or ``options.batch_size``, if smaller).

        The ERP owns stock, so the quantities are absolute and the compare-and-set check is waived. Each call's
        ``@idempotent`` key is derived from the ERP changes it applies (:func:`idempotency_key` of every level),
        so a retried call, or a re-run of the same changes, is answered from the first and changes nothing (all
        levels UNCHANGED, "replayed"); a later change of the same level has another key and is applied.

        The mutation is all or nothing: the levels its ``userErrors`` name fail alone (dead-letter material) and
        the others are sent again without them. One result per level, in order.
        """
        results: dict[str, WriteResult] = {}
        size = min(self.options.batch_size or LEVELS_PER_REQUEST, LEVELS_PER_REQUEST)
        for start in range(0, len(levels), size):
            chunk = list(levels[start:start + size])
            try:
                results.update(self._set_quantities(chunk))
            except ConnectorError as exc:
                exc.partial_results = [results[lv.key] for lv in levels if lv.key in results]
                raise
        return [results[lv.key] for lv in levels]

    def _set_quantities(self, pending: list[LevelWrite]) -> dict[str, WriteResult]:
        out: dict[str, WriteResult] = {}

        def sent(lv: LevelWrite) -> dict[str, Any]:
            return {"location_id": lv.location_id, "inventory_item_id": lv.inventory_item_id,
                    "available": lv.available,
                    "idempotency_key": idempotency_key(lv.sku, lv.location_id, lv.available, lv.change_seq)}

        while pending:
            key = hashlib.sha256("\n".join(f"{sent(lv)['idempotency_key']}:{lv.inventory_item_id}"
                                           for lv in pending).encode()).hexdigest()
            variables = {"key": key, "input": {
                "name": "available", "reason": "correction", "ignoreCompareQuantity": True,
                "referenceDocumentUri": "catalog-sync://erp/stock",
                "quantities": [{"inventoryItemId": gid("InventoryItem", lv.inventory_item_id),
                                "locationId": gid("Location", lv.location_id), "quantity": lv.available}
                               for lv in pending]}}
            result = self.graphql(_SET_QUANTITIES, variables, MUTATION_COST)
            answer = result.body["data"].get("inventorySetQuantities")
            if answer is None:
                raise ConfigurationError(f"inventorySetQuantities refused: {result.body.get('errors')}",
                                         system=self.system, method="POST", path=GRAPHQL, status=result.status)
            errors = answer.get("userErrors") or []
            if errors:
                named: dict[int, list[Mapping[str, Any]]] = {}
                for e in errors:
                    path = [str(p) for p in e.get("field") or []]
                    if len(path) > 2 and path[:2] == ["input", "quantities"] and path[2].isdigit():
                        named.setdefault(int(path[2]), []).append(e)
                refused = named if named else dict.fromkeys(range(len(pending)), errors)
                for i, problems in refused.items():
                    lv = pending[i]
                    out[lv.key] = WriteResult(lv.key, Outcome.FAILED, 422, _user_errors(problems), sent(lv),
                                              Disposition.DEAD_LETTER)
                pending = [lv for i, lv in enumerate(pending) if i not in refused]
                continue
            replayed = str(result.headers.get("Idempotent-Replayed", "")).lower() == "true"
            changed = {(rest_id((c.get("item") or {}).get("id")), rest_id((c.get("location") or {}).get("id")))
                       for c in (answer.get("inventoryAdjustmentGroup") or {}).get("changes") or []}
            for lv in pending:
                level = {"inventory_item_id": lv.inventory_item_id, "location_id": lv.location_id,
                         "available": lv.available}
                if replayed:
                    out[lv.key] = WriteResult(lv.key, Outcome.UNCHANGED, result.status, "replayed", sent(lv),
                                              response=level)
                elif (rest_id(lv.inventory_item_id), rest_id(lv.location_id)) in changed:
                    out[lv.key] = WriteResult(lv.key, Outcome.OK, result.status, None, sent(lv), response=level)
                else:
                    out[lv.key] = WriteResult(lv.key, Outcome.UNCHANGED, result.status,
                                              f"already {lv.available}", sent(lv), response=level)
            pending = []
        return out
