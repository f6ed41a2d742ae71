"""Storefront connector: Shopify's GraphQL Admin API (2026-04), for reads and writes alike.

Every call is one GraphQL document POSTed to ``admin/api/2026-04/graphql.json``; no REST endpoint is used. The
answers are normalised into the product dicts the flows read (numeric ids, ``body_html``, ``option1``..., lower
case status, comma-joined tags), so the flows do not depend on the wire format.

Shopify meters the API in points (:mod:`catalog_sync.connectors.shopify_cost`): each document's requested cost
is computed before it is sent and requests are sized to stay under the 1,000-point single-query limit; the
client keeps its own image of the plan's bucket from every answer's ``extensions.cost.throttleStatus`` and waits
until a request's points are there before sending it, so a long publish runs near the restore rate without
meeting ``THROTTLED``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, TypeVar

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
    TransientError,
)
from catalog_sync.connectors.mapping import METAFIELD_NAMESPACE
from catalog_sync.connectors.shopify_cost import MAX_QUERY_COST, Plan, largest_fitting, requested_cost
from catalog_sync.connectors.shopify_cost import plan as plan_named
from catalog_sync.domain import System

API_VERSION: Final = "2026-04"
GRAPHQL_VERSION: Final = API_VERSION
GRAPHQL: Final = f"admin/api/{API_VERSION}/graphql.json"
#: Quantities per ``inventorySetQuantities`` call (Shopify's maximum).
LEVELS_PER_REQUEST: Final = 250
#: ``productSet`` fields per GraphQL request, at most (the cost limit usually stops a batch sooner).
PRODUCTS_PER_REQUEST: Final = 50
#: Variants asked for with each product read; a product with more has the rest read page by page.
VARIANTS_PER_READ: Final = 25
#: Images asked for with each product read.
MEDIA_PER_READ: Final = 10
#: Locations read in one call (Shopify shops have far fewer).
LOCATIONS_PER_READ: Final = 250
#: Shopify's limit on variants per product (the largest ``variants(first:)`` a productSet answer asks for).
MAX_VARIANTS: Final = 250
#: Shopify's GraphQL weight units by REST ``weight_unit``, and back.
WEIGHT_UNITS: Final = {"g": "GRAMS", "kg": "KILOGRAMS", "oz": "OUNCES", "lb": "POUNDS"}
REST_WEIGHT_UNITS: Final = {v: k for k, v in WEIGHT_UNITS.items()}
#: The product metafield holding a configurable product's own SKU (Shopify has no field for it).
SKU_METAFIELD_KEY: Final = "sku"

#: What a product read selects; ``$variants``/``$media`` size the connections.
PRODUCT_FRAGMENT: Final = (
    "fragment ProductFields on Product { id handle title descriptionHtml vendor productType status tags "
    "updatedAt options { name values } "
    f'skuMetafield: metafield(namespace: "{METAFIELD_NAMESPACE}", key: "{SKU_METAFIELD_KEY}") '
    "{ namespace key value } "
    "variants(first: $variants) { nodes { ...VariantFields } pageInfo { hasNextPage endCursor } } "
    "media(first: $media) { nodes { ...MediaFields } pageInfo { hasNextPage endCursor } } }"
)
MEDIA_FRAGMENT: Final = (
    "fragment MediaFields on Media { ... on MediaImage { id alt originalSource { url } image { url altText } } }"
)
VARIANT_FRAGMENT: Final = (
    "fragment VariantFields on ProductVariant { id sku price barcode position inventoryQuantity "
    "selectedOptions { name value } "
    "inventoryItem { id requiresShipping tracked measurement { weight { value unit } } } }"
)
PRODUCTS_QUERY: Final = (
    "query Products($first: Int!, $after: String, $query: String, $variants: Int!, $media: Int!) { "
    "products(first: $first, after: $after, query: $query, sortKey: ID) { nodes { ...ProductFields } "
    "pageInfo { hasNextPage endCursor } } } " + PRODUCT_FRAGMENT + " " + VARIANT_FRAGMENT + " " + MEDIA_FRAGMENT
)
PRODUCT_QUERY: Final = (
    "query Product($id: ID!, $variants: Int!, $media: Int!) { product(id: $id) { ...ProductFields } } "
    + PRODUCT_FRAGMENT + " " + VARIANT_FRAGMENT + " " + MEDIA_FRAGMENT
)
MORE_MEDIA_QUERY: Final = (
    "query MoreMedia($id: ID!, $first: Int!, $after: String) { product(id: $id) { "
    "media(first: $first, after: $after) { nodes { ...MediaFields } pageInfo { hasNextPage endCursor } } } } "
    + MEDIA_FRAGMENT
)
MORE_VARIANTS_QUERY: Final = (
    "query MoreVariants($id: ID!, $first: Int!, $after: String) { product(id: $id) { "
    "variants(first: $first, after: $after) { nodes { ...VariantFields } pageInfo { hasNextPage endCursor } } } } "
    + VARIANT_FRAGMENT
)
LOCATIONS_QUERY: Final = (
    "query Locations($first: Int!, $after: String) { locations(first: $first, after: $after) { "
    "nodes { id name isActive } pageInfo { hasNextPage endCursor } } }"
)
LEVELS_QUERY: Final = (
    "query Levels($ids: [ID!]!, $locations: Int!) { nodes(ids: $ids) { ... on InventoryItem { id "
    'inventoryLevels(first: $locations) { nodes { location { id } quantities(names: ["available"]) '
    "{ name quantity } } } } } }"
)
PRODUCT_SET_FIELD: Final = (
    "{alias}: productSet(input: ${alias}, identifier: ${alias}_id) {{ product {{ id handle title status "
    "variants(first: {variants}) {{ nodes {{ id sku price inventoryItem {{ id }} }} }} }} "
    "userErrors {{ field message code }} }}"
)
PRODUCT_DELETE: Final = (
    "mutation ProductDelete($input: ProductDeleteInput!) { productDelete(input: $input) { deletedProductId "
    "userErrors { field message } } }"
)
#: Shopify's product fixed bundles (``productBundleCreate`` / ``productBundleUpdate``): asynchronous, each answers
#: with a ``ProductBundleOperation`` polled through ``productOperation`` until ``COMPLETE``. A bundle holds at most
#: 30 components (Shopify's "Add a product fixed bundle" guide), each of at most 2,000 units.
MAX_BUNDLE_COMPONENTS: Final = 30
MAX_COMPONENT_QUANTITY: Final = 2000
BUNDLE_OPERATION_FIELDS: Final = (
    "productBundleOperation { id status product { id } userErrors { code field message } } userErrors { field message }"
)
BUNDLE_CREATE: Final = (
    "mutation BundleCreate($input: ProductBundleCreateInput!) { productBundleCreate(input: $input) { "
    + BUNDLE_OPERATION_FIELDS + " } }"
)
BUNDLE_UPDATE: Final = (
    "mutation BundleUpdate($input: ProductBundleUpdateInput!) { productBundleUpdate(input: $input) { "
    + BUNDLE_OPERATION_FIELDS + " } }"
)
BUNDLE_OPERATION: Final = (
    "query BundleOperation($id: ID!) { productOperation(id: $id) { status product { id } "
    "... on ProductBundleOperation { id userErrors { code field message } } } }"
)
COMPONENT_OPTIONS: Final = (
    "query ComponentOptions($ids: [ID!]!) { nodes(ids: $ids) { ... on Product { id handle "
    "options { id name values } } } }"
)
#: Seconds before the first look at a bundle operation, doubled at each look up to BUNDLE_POLL_MAX_S; a bundle
#: operation not complete after BUNDLE_POLLS looks is a retryable failure of that bundle.
BUNDLE_POLL_S: Final = 0.2
BUNDLE_POLL_MAX_S: Final = 5.0
BUNDLE_POLLS: Final = 12
#: Creates in one ``upsert_products`` call from which they go out as a bulk operation rather than productSet
#: requests: a first load of a large catalog. A bulk operation is not metered by the cost bucket, so past this
#: size it finishes sooner than paced requests on a standard plan (1,000 creates of 10-variant products are
#: ~34,000 points: about six minutes at 100 points a second); under it, the staging and polling do not pay off.
BULK_THRESHOLD: Final = 1000
#: Seconds between two looks at a running bulk operation.
BULK_POLL_S: Final = 2.0
BULK_PRODUCT_SET: Final = (
    "mutation call($input: ProductSetInput!, $identifier: ProductSetIdentifiers) { "
    "productSet(input: $input, identifier: $identifier) { product { id handle title status "
    f"variants(first: {MAX_VARIANTS}) {{ nodes {{ id sku price inventoryItem {{ id }} }} }} }} "
    "userErrors { field message code } } }"
)
STAGED_UPLOADS_CREATE: Final = (
    "mutation StagedUpload($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: $input) { "
    "stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } } }"
)
BULK_RUN_MUTATION: Final = (
    "mutation BulkRun($mutation: String!, $path: String!) { bulkOperationRunMutation(mutation: $mutation, "
    "stagedUploadPath: $path) { bulkOperation { id status } userErrors { field message code } } }"
)
BULK_OPERATION: Final = (
    "query BulkOperation($id: ID!) { bulkOperation(id: $id) { id status errorCode objectCount url "
    "partialDataUrl } }"
)
VARIANTS_COUNT: Final = "query VariantsCount { productVariantsCount { count precision } }"
#: What Shopify says when the store's daily allowance of new variants is spent (the variant creation throttle).
VARIANT_THROTTLE_MESSAGE: Final = "Daily variant creation limit reached"
SET_QUANTITIES: Final = (
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
_VARIANT_FIELDS: Final = ("price", "barcode", "option1", "option2", "option3", "weight", "weight_unit",
                          "requires_shipping", "tracked")


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
            # Shopify's own flags: a virtual or downloadable item needs no shipping, and is tracked only when stocked
            for rest, name in (("requires_shipping", "requiresShipping"), ("tracked", "tracked")):
                if v.get(rest) is not None:
                    item[name] = bool(v[rest])
            if v.get("weight") is not None and v.get("weight_unit") in WEIGHT_UNITS:
                item["measurement"] = {"weight": {"value": float(v["weight"]), "unit": WEIGHT_UNITS[v["weight_unit"]]}}
            elif "weight" in wanted and wanted["weight"] is None and v.get("id"):
                # productSet leaves an omitted field as it was: an emptied weight is sent as Shopify's "no weight",
                # 0 in the unit the variant had (read back as no weight)
                unit = WEIGHT_UNITS.get(str((current.get(wanted.get("sku")) or {}).get("weight_unit") or ""), "POUNDS")
                item["measurement"] = {"weight": {"value": 0.0, "unit": unit}}
            variant: dict[str, Any] = {
                **({"id": gid("ProductVariant", v["id"])} if v.get("id") else {}),
                "optionValues": [{"optionName": name, "name": v.get(f"option{i}")}
                                 for i, name in enumerate(names[:3], start=1) if v.get(f"option{i}") is not None],
                "inventoryItem": item,
            }
            if v.get("price") is not None:
                variant["price"] = str(v["price"])
            if v.get("barcode") is not None:
                variant["barcode"] = str(v["barcode"])
            elif "barcode" in wanted and v.get("id"):
                variant["barcode"] = None  # emptied upstream: an explicit null clears it (omitted would keep it)
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


def product_from_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """A product read through GraphQL (:data:`PRODUCT_FRAGMENT`) in the shape the flows read: numeric ids,
    ``body_html``, comma-joined ``tags``, lower-case ``status``, variants with ``option1``..``option3`` in the
    order of the product's options, images with ``src``, and the SKU metafield under ``metafields``."""
    options = [{"name": o.get("name"), "values": list(o.get("values") or [])} for o in node.get("options") or []]
    names = [o["name"] for o in options]
    variants = []
    for v in (node.get("variants") or {}).get("nodes") or []:
        chosen = {o.get("name"): o.get("value") for o in v.get("selectedOptions") or []}
        item = v.get("inventoryItem") or {}
        weight = ((item.get("measurement") or {}).get("weight")) or {}
        variant: dict[str, Any] = {
            "id": rest_id(v.get("id")), "sku": v.get("sku"), "price": v.get("price"), "barcode": v.get("barcode"),
            "position": v.get("position"), "inventory_item_id": rest_id(item.get("id")),
            "inventory_quantity": v.get("inventoryQuantity"),
            # Shopify has no "no weight": 0 is what an item without one carries, read as no weight
            "weight": weight.get("value") or None,
            "weight_unit": REST_WEIGHT_UNITS.get(str(weight.get("unit") or "")) if weight.get("value") else None,
            "requires_shipping": item.get("requiresShipping"), "tracked": item.get("tracked"),
        }
        for i in (1, 2, 3):
            variant[f"option{i}"] = chosen.get(names[i - 1]) if i <= len(names) else None
        variants.append(variant)
    images = []
    for m in (node.get("media") or {}).get("nodes") or []:
        src = (m.get("originalSource") or {}).get("url") or (m.get("image") or {}).get("url")
        if src:  # media other than images (video, 3D) select nothing here
            images.append({"id": rest_id(m.get("id")), "src": src, "alt": m.get("alt")})
    meta = node.get("skuMetafield")
    tags = node.get("tags")
    return {
        "id": rest_id(node.get("id")), "admin_graphql_api_id": node.get("id"), "handle": node.get("handle"),
        "title": node.get("title"), "body_html": node.get("descriptionHtml"), "vendor": node.get("vendor"),
        "product_type": node.get("productType"), "status": str(node.get("status") or "").lower(),
        "tags": ", ".join(tags) if isinstance(tags, list) else tags, "updated_at": node.get("updatedAt"),
        "options": options, "variants": variants, "images": images,
        "metafields": [{"namespace": meta.get("namespace"), "key": meta.get("key"), "value": meta.get("value")}]
        if meta else [],
    }


def _set_result(handle: str, desired: dict[str, Any], diffs: list[str] | None, answer: Mapping[str, Any],
                problems: Sequence[Mapping[str, Any]], status: int, via: str | None = None) -> WriteResult:
    """One product's ``productSet`` answer as a WriteResult. A refusal by the variant creation throttle is no
    fault of the record: it fails with RETRY (the product goes on a later day), not DEAD_LETTER."""
    problems = [*(answer.get("userErrors") or []), *problems]
    if problems or not answer.get("product"):
        throttled = any(VARIANT_THROTTLE_MESSAGE in str(p.get("message")) for p in problems)
        return WriteResult(handle, Outcome.FAILED, 429 if throttled else 422,
                           _user_errors(problems) or "no product in the answer", desired,
                           Disposition.RETRY if throttled else Disposition.DEAD_LETTER)
    message = "created" if diffs is None else "updated: " + ", ".join(diffs)
    response = _rest_product(answer["product"])
    if via:
        response["bulk_operation"] = via
    return WriteResult(handle, Outcome.OK, status, message, desired, response=response)


def _user_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(e.get('field') or []) or 'input'}: {e.get('message')}" for e in errors)


#: Shopify's variant creation throttle: past this many variants in a store...
VARIANT_THROTTLE_THRESHOLD: Final = 50_000
#: ...at most this many new variants a day.
VARIANT_DAILY_LIMIT: Final = 1000


_P = TypeVar("_P")


def creation_schedule(
    products: Sequence[_P],
    store_variants: int,
    today: date,
    *,
    rank: Callable[[_P], Any] | None = None,
    size: Callable[[_P], int] | None = None,
    created_today: int = 0,
    threshold: int = VARIANT_THROTTLE_THRESHOLD,
    daily_limit: int = VARIANT_DAILY_LIMIT,
) -> list[tuple[_P, date | None]]:
    """The day each new product can be created under Shopify's variant creation throttle, most important first.

    ``rank`` orders the products (smallest first; e.g. active, in stock, in season before the rest). Until the
    store holds ``threshold`` variants, creates are free; after, each day takes ``daily_limit`` new variants and a
    product goes on the first day its variants still fit (a product with more variants than a whole day allows
    gets None: it can never be created in one piece). ``created_today`` is what today has used already. A product
    is a mapping with its ``variants``, or anything ``size`` gives the number of variants of.
    """
    def variants(product: Any) -> int:
        return size(product) if size is not None else len(product.get("variants") or [])

    ranked = sorted(products, key=rank) if rank is not None else list(products)
    held, day, used = store_variants, today, created_today
    out: list[tuple[_P, date | None]] = []
    for product in ranked:
        need = max(1, variants(product))
        if held < threshold:
            out.append((product, today))
            held += need
            continue
        if need > daily_limit:
            out.append((product, None))
            continue
        if used + need > daily_limit:
            day, used = day + timedelta(days=1), 0
        out.append((product, day))
        used += need
        held += need
    return out


@dataclass(frozen=True)
class LevelWrite:
    """One inventory level to set: ``key`` names it in the results; ``change_seq`` the ERP change it applies."""

    key: str
    sku: str
    location_id: int | str
    inventory_item_id: int | str
    available: int
    change_seq: int | str


@dataclass(frozen=True)
class ShopperPage:
    """The product page a shopper sees, as served through the render cache."""

    status: int
    html: str
    cache: str | None  # "HIT" | "MISS"
    age: int | None


class StorefrontClient(HttpClient):
    """Shopify GraphQL Admin 2026-04. Build with ``StorefrontClient("http://host:8765/storefront", "shpat_...")``.

    Args:
        plan: the shop's Shopify plan (``standard``, ``advanced``, ``plus``, ``enterprise``): the bucket the client
            assumes until the first answer reports the real one.
        location_map: ERP location code -> Shopify location, by GID (``gid://shopify/Location/1``) or by name;
            :meth:`locations` names each location's ERP code from it (``erp_location``).
    """

    system = System.STOREFRONT.value
    streams: Final = {PRODUCTS.name: PRODUCTS}

    def __init__(
        self,
        base_url: str,
        credentials: StorefrontCredentials | str,
        options: ClientOptions | None = None,
        *,
        plan: str | Plan = "standard",
        location_map: Mapping[str, str] | None = None,
        bulk_threshold: int = BULK_THRESHOLD,
        bulk_poll_s: float = BULK_POLL_S,
        **kwargs: Any,
    ) -> None:
        creds = coerce(StorefrontCredentials, credentials)
        super().__init__(base_url, ApiKeyAuth(creds.access_token, "X-Shopify-Access-Token"), options, **kwargs)
        self.plan = plan if isinstance(plan, Plan) else plan_named(plan)
        self.location_map = {str(k): str(v) for k, v in (location_map or {}).items()}
        self.bulk_threshold = bulk_threshold
        self.bulk_poll_s = bulk_poll_s
        #: Shopify's variant creation throttle as this shop has it (a first load plans its creates by them).
        self.variant_threshold = VARIANT_THROTTLE_THRESHOLD
        self.variant_daily_limit = VARIANT_DAILY_LIMIT
        #: Bulk operations this client ran (their GIDs), for the audit trail.
        self.bulk_operations: list[str] = []
        self._points_lock = threading.Lock()
        self._maximum = float(self.plan.maximum_available)
        self._restore = float(self.plan.restore_rate)
        self._available = self._maximum  # the client's image of the bucket, points
        self._observed = time.monotonic()
        self._in_flight = 0.0  # points reserved by requests sent but not yet answered
        self._cost = threading.local()
        #: Seconds spent waiting for points, for the time-waiting-on-systems metric.
        self.throttled_seconds = 0.0
        #: GraphQL requests answered, and how many of them were THROTTLED (the pacing's miss rate).
        self.graphql_requests = 0
        self.throttled_answers = 0
        #: Points the shop charged (``actualQueryCost``) over all answers.
        self.points_used = 0.0
        self._location_count: int | None = None

    # --------------------------------------------------------------------------------------------- the bucket

    def _level(self, now: float) -> float:
        return min(self._maximum, self._available + (now - self._observed) * self._restore)

    def before_request(self) -> None:
        """Reserve this attempt's points in the client's image of the bucket and wait until they are there.

        Reservations go below zero when several threads want points at once: each then waits its turn, so
        concurrent requests never ask the shop for points it does not have yet."""
        cost = float(getattr(self._cost, "value", 0.0) or 0.0)
        if not cost:
            return
        with self._points_lock:
            now = time.monotonic()
            earlier = float(getattr(self._cost, "reserved", 0.0) or 0.0)
            if earlier:  # the previous attempt got no GraphQL answer (a 5xx, a timeout): the shop charged nothing
                self._available += earlier
                self._in_flight = max(0.0, self._in_flight - earlier)
            level = self._level(now)
            wait = max(0.0, (cost - level) / self._restore)
            self._available, self._observed = level - cost, now
            self._in_flight += cost
            self._cost.reserved = cost
        if wait > 0:
            self.throttled_seconds += wait
            self._sleep(wait)

    def _settle(self, status: Mapping[str, Any], actual: float | None) -> None:
        """Take the shop's word for the bucket: ``currentlyAvailable`` after this answer, less what other
        requests in flight have reserved."""
        reserved = float(getattr(self._cost, "reserved", 0.0) or 0.0)
        self._cost.reserved = 0.0
        with self._points_lock:
            self._in_flight = max(0.0, self._in_flight - reserved)
            if "currentlyAvailable" in status:
                self._maximum = float(status.get("maximumAvailable") or self._maximum)
                self._restore = float(status.get("restoreRate") or self._restore)
                self._available = float(status["currentlyAvailable"]) - self._in_flight
                self._observed = time.monotonic()
            self.graphql_requests += 1
            self.points_used += float(actual or 0.0)

    def _graphql_checked(self, result: HttpResult) -> None:
        """``validate`` of a GraphQL answer: settles the bucket; THROTTLED is retried when the points are back."""
        body = result.body
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            raise MalformedResponse("a GraphQL answer holds data or errors")
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        self._settle(status, cost.get("actualQueryCost"))
        codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
        if "THROTTLED" in codes:
            with self._points_lock:
                self.throttled_answers += 1
            restore = float(status.get("restoreRate") or self._restore)
            short = float(cost.get("requestedQueryCost") or 0) - float(status.get("currentlyAvailable") or 0)
            raise RetryLater("GraphQL THROTTLED", max(short, 1.0) / restore)

    def graphql(self, query: str, variables: Mapping[str, Any], cost: float | None = None) -> HttpResult:
        """One GraphQL Admin request, sent once its requested cost is in the bucket.

        A document over :data:`MAX_QUERY_COST` is a bug in the caller's sizing, refused before it is sent; any
        top-level error without data (the document does not validate) is a ConfigurationError."""
        cost = float(requested_cost(query, variables) if cost is None else cost)
        if cost > MAX_QUERY_COST:
            raise ConfigurationError(f"a GraphQL request of {cost:g} points exceeds Shopify's single-query limit "
                                     f"({MAX_QUERY_COST})", system=self.system, method="POST", path=GRAPHQL)
        self._cost.value = cost
        try:
            result = self.request("POST", GRAPHQL, json_body={"query": query, "variables": dict(variables)},
                                  validate=self._graphql_checked)
        finally:
            self._cost.value = 0.0
            if getattr(self._cost, "reserved", 0.0):  # the request failed without an answer: free its points
                with self._points_lock:
                    self._available += self._cost.reserved
                    self._in_flight = max(0.0, self._in_flight - self._cost.reserved)
                self._cost.reserved = 0.0
        if not isinstance(result.body.get("data"), dict):
            raise ConfigurationError(f"GraphQL refused the request: {result.body.get('errors')}",
                                     system=self.system, method="POST", path=GRAPHQL, status=result.status)
        return result

    def after_response(self, response: requests.Response) -> None:
        return None

    # ----------------------------------------------------------------------------------------------------- reads

    def _read_sizes(self) -> dict[str, int]:
        return {"variants": VARIANTS_PER_READ, "media": MEDIA_PER_READ}

    def _rest_of(self, node: Mapping[str, Any], field: str, query: str, first: int) -> list[Any]:
        """All of ``node``'s ``field`` connection: the first page it came with, then the others page by page."""
        page = node.get(field) or {}
        info = page.get("pageInfo") or {}
        nodes = list(page.get("nodes") or [])
        while info.get("hasNextPage"):
            body = self.graphql(query, {"id": node["id"], "first": first, "after": info.get("endCursor")}).body
            more = ((body["data"].get("product") or {}).get(field)) or {}
            nodes.extend(more.get("nodes") or [])
            info = more.get("pageInfo") or {}
        return nodes

    def _complete(self, node: dict[str, Any]) -> dict[str, Any]:
        """``node``'s variants and images past their first pages, read page by page; then the node as the flows
        read it."""
        return product_from_node({
            **node,
            "variants": {"nodes": self._rest_of(node, "variants", MORE_VARIANTS_QUERY, MAX_VARIANTS // 2)},
            "media": {"nodes": self._rest_of(node, "media", MORE_MEDIA_QUERY, MAX_VARIANTS // 2)},
        })

    def _products_page_size(self, query: str | None) -> int:
        limit = min(self.options.page_size or MAX_VARIANTS, MAX_VARIANTS)
        return max(1, largest_fitting(
            lambda n: (PRODUCTS_QUERY, {"first": n, "query": query, **self._read_sizes()}), limit))

    def iter_products(
        self,
        updated_at_min: datetime | str | None = None,
        status: str | None = None,
        handle: str | None = None,
    ) -> Iterator[Page]:
        """Products in id order, a page per request (as many as the cost limit allows); ``updated_at_min`` is the
        stream's delta read. The cursor of a page is Shopify's ``endCursor``."""
        terms = []
        if updated_at_min is not None:
            at = updated_at_min.isoformat() if isinstance(updated_at_min, datetime) else str(updated_at_min)
            terms.append(f"updated_at:>='{at}'")
        if status:
            terms.append("(" + " OR ".join(f"status:{s.strip()}" for s in status.split(",") if s.strip()) + ")")
        if handle:
            terms.append(f"handle:'{handle}'")
        query = " AND ".join(terms) or None
        first = self._products_page_size(query)
        after: str | None = None
        offset = 0
        while True:
            variables = {"first": first, "after": after, "query": query, **self._read_sizes()}

            def read(v: Mapping[str, Any] = variables) -> tuple[list[dict[str, Any]], dict[str, Any]]:
                body = self.graphql(PRODUCTS_QUERY, v).body
                connection = body["data"].get("products") or {}
                return [self._complete(n) for n in connection.get("nodes") or []], connection.get("pageInfo") or {}

            raw, info = read()
            good, bad = split_records(PRODUCTS, raw, self.system, offset, refetch=lambda: read()[0])
            offset += len(raw)
            after = info.get("endCursor") if info.get("hasNextPage") else None
            yield Page(PRODUCTS.name, good, bad, after)
            if after is None:
                return

    def get_product(self, product_id: int | str) -> dict[str, Any] | None:
        ref = str(product_id) if str(product_id).startswith("gid://") else gid("Product", product_id)
        body = self.graphql(PRODUCT_QUERY, {"id": ref, **self._read_sizes()}).body
        node = body["data"].get("product")
        return self._complete(node) if node else None

    def find_by_handle(self, handle: str) -> dict[str, Any] | None:
        return self.find_by_handles([handle]).get(handle)

    def _by_handles_document(self, handles: Sequence[str]) -> tuple[str, dict[str, Any]]:
        params = ", ".join(f"$h{i}: String!" for i in range(len(handles)))
        fields = " ".join(f"h{i}: productByIdentifier(identifier: {{handle: $h{i}}}) {{ ...ProductFields }}"
                          for i in range(len(handles)))
        query = (f"query ProductsByHandle({params}, $variants: Int!, $media: Int!) {{ {fields} }} "
                 + PRODUCT_FRAGMENT + " " + VARIANT_FRAGMENT + " " + MEDIA_FRAGMENT)
        return query, {**{f"h{i}": h for i, h in enumerate(handles)}, **self._read_sizes()}

    def find_by_handles(self, handles: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The products with these handles, by handle (absent ones left out): ``productByIdentifier`` under
        aliases, as many to a request as the cost limit allows."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(str(h) for h in handles))
        if not wanted:
            return found
        size = max(1, largest_fitting(lambda n: self._by_handles_document(wanted[:n]), len(wanted)))
        for start in range(0, len(wanted), size):
            batch = wanted[start:start + size]
            query, variables = self._by_handles_document(batch)
            data = self.graphql(query, variables).body["data"]
            for i, handle in enumerate(batch):
                node = data.get(f"h{i}")
                if node and node.get("handle") == handle:
                    product = self._complete(node)
                    problems = PRODUCTS.problems(product)
                    if problems:  # acting on a garbled product (its id, its variants) would corrupt a write
                        raise MalformedResponse(f"malformed product in the answer: {problems[0]}")
                    found[handle] = product
        return found

    def locations(self) -> list[dict[str, Any]]:
        """The shop's locations, each with the ERP location code ``location_map`` gives it (``erp_location``,
        None when none does). A map entry naming no location of the shop, or two ERP codes naming one
        location, is a ConfigurationError: stock would go to the wrong place or nowhere."""
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            body = self.graphql(LOCATIONS_QUERY, {"first": LOCATIONS_PER_READ, "after": after}).body
            connection = body["data"].get("locations") or {}
            nodes.extend(connection.get("nodes") or [])
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            after = info.get("endCursor")
        self._location_count = len(nodes)
        code_of: dict[str, str] = {}
        for code, target in self.location_map.items():
            match = [n for n in nodes if n.get("id") == target] or [n for n in nodes if n.get("name") == target]
            if not match:
                known = ", ".join(f"{n.get('name')} ({n.get('id')})" for n in nodes) or "none"
                raise ConfigurationError(f"location_map maps ERP location {code!r} to {target!r}, which is not a "
                                         f"location of the shop (its locations: {known})", system=self.system)
            location = str(match[0]["id"])
            if location in code_of:
                raise ConfigurationError(f"location_map maps ERP locations {code_of[location]!r} and {code!r} to "
                                         f"one Shopify location ({target!r}); stock is set per location, so each "
                                         "ERP location needs its own", system=self.system)
            code_of[location] = code
        return [{"id": rest_id(n.get("id")), "admin_graphql_api_id": n.get("id"), "name": n.get("name"),
                 "active": n.get("isActive"), "erp_location": code_of.get(str(n.get("id")))} for n in nodes]

    def _levels_document(self, ids: Sequence[int | str], per_item: int) -> tuple[str, dict[str, Any]]:
        return LEVELS_QUERY, {"ids": [str(i) if str(i).startswith("gid://") else gid("InventoryItem", i)
                                      for i in ids], "locations": per_item}

    def inventory_levels(self, inventory_item_ids: Sequence[int | str]) -> list[dict[str, Any]]:
        """Current ``available`` stock of the given inventory items at every location, as
        ``{"inventory_item_id", "location_id", "available"}`` (numeric ids)."""
        ids = list(dict.fromkeys(inventory_item_ids))
        if not ids:
            return []
        if self._location_count is None:
            self.locations()
        per_item = max(1, min(self._location_count or 1, LOCATIONS_PER_READ))
        size = max(1, largest_fitting(lambda n: self._levels_document(ids[:n], per_item), len(ids)))
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), size):
            query, variables = self._levels_document(ids[start:start + size], per_item)
            for item in self.graphql(query, variables).body["data"].get("nodes") or []:
                for level in ((item or {}).get("inventoryLevels") or {}).get("nodes") or []:
                    available = next((q.get("quantity") for q in level.get("quantities") or []
                                      if q.get("name") == "available"), None)
                    out.append({"inventory_item_id": rest_id(item.get("id")),
                                "location_id": rest_id((level.get("location") or {}).get("id")),
                                "available": available})
        return out

    def shopper_page(self, handle: str) -> ShopperPage:
        """The public product page (no admin token: the shopper has none either)."""
        result = self.request("GET", f"products/{handle}", expect=(200, 404), parse="text", authenticate=False)
        age = result.headers.get("Age")
        return ShopperPage(result.status, str(result.body or result.content.decode("utf-8", "replace")),
                           result.headers.get("X-Cache"), int(age) if age and age.isdigit() else None)

    # ---------------------------------------------------------------------------------------------------- writes

    def upsert_product(self, product: Mapping[str, Any]) -> WriteResult:
        """Create or update one product, keyed by its ``handle``; ``unchanged`` when nothing would change."""
        try:
            return self.upsert_products([product])[0]
        except RecordError as exc:
            return WriteResult.failure(str(product["handle"]), exc, dict(product))

    def upsert_products(
        self, products: Sequence[Mapping[str, Any]], existing: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[WriteResult]:
        """Create or update many products by handle: what they are now is read in batches (or taken from
        ``existing``, by handle, when the caller just read them), unchanged ones are left alone, and the rest go
        out as ``productSet`` mutations under aliases, as many to a request as keep its cost under Shopify's
        limit (and at most :data:`PRODUCTS_PER_REQUEST`, or ``options.batch_size`` if smaller).

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
        creates = [entry for entry in outgoing if entry[2] is None]
        if len(creates) >= self.bulk_threshold:  # a first load: one bulk operation instead of paced requests
            try:
                results.update(self._bulk_product_set(creates, handles))
            except ConnectorError as exc:
                exc.partial_results = [results[n] for n in sorted(results)]
                raise
            outgoing = [entry for entry in outgoing if entry[2] is not None]
        for batch in self._product_set_batches(outgoing, handles, current):
            try:
                results.update(self._product_set(batch, handles, current))
            except ConnectorError as exc:
                exc.partial_results = [results[n] for n in sorted(results)]
                raise
        return [results[n] for n in range(len(products))]

    @staticmethod
    def _answer_variants(desired: Mapping[str, Any], found: Mapping[str, Any] | None) -> int:
        """How many variants a productSet answer asks for: as many as the product will have."""
        count = len(desired["variants"]) if "variants" in desired else len((found or {}).get("variants") or [])
        return max(1, min(MAX_VARIANTS, count))

    def _product_set_batches(self, outgoing: Sequence[tuple[int, dict[str, Any], list[str] | None]],
                             handles: Sequence[str], current: Mapping[str, Mapping[str, Any]]
                             ) -> Iterator[list[tuple[int, dict[str, Any], list[str] | None]]]:
        """``outgoing`` cut into requests: a request takes products while its requested cost stays under the
        limit (each alias costs 10 plus the variants its answer asks for)."""
        most = min(self.options.batch_size or PRODUCTS_PER_REQUEST, PRODUCTS_PER_REQUEST)
        batch: list[tuple[int, dict[str, Any], list[str] | None]] = []
        spent = 0
        for entry in outgoing:
            n, desired, _ = entry
            alias_cost = requested_cost(
                "mutation M { " + PRODUCT_SET_FIELD.format(alias="a", variants=self._answer_variants(
                    desired, current.get(handles[n]))) + " }")
            if batch and (len(batch) >= most or spent + alias_cost > MAX_QUERY_COST):
                yield batch
                batch, spent = [], 0
            batch.append(entry)
            spent += alias_cost
        if batch:
            yield batch

    def product_set_document(self, batch: Sequence[tuple[int, dict[str, Any], list[str] | None]],
                             handles: Sequence[str], current: Mapping[str, Mapping[str, Any]]
                             ) -> tuple[str, dict[str, Any]]:
        """The ``productSet`` request for ``batch``: one aliased field per product, keyed by handle."""
        variables: dict[str, Any] = {}
        fields, params = [], []
        for n, desired, _diffs in batch:
            alias = f"p{n}"
            found = current.get(handles[n])
            variables[alias] = product_set_input(desired, found)
            variables[f"{alias}_id"] = {"handle": handles[n]}
            params.append(f"${alias}: ProductSetInput!, ${alias}_id: ProductSetIdentifiers")
            fields.append(PRODUCT_SET_FIELD.format(alias=alias, variants=self._answer_variants(desired, found)))
        return f"mutation ProductSet({', '.join(params)}) {{ {' '.join(fields)} }}", variables

    def _product_set(self, batch: Sequence[tuple[int, dict[str, Any], list[str] | None]], handles: Sequence[str],
                     current: Mapping[str, Mapping[str, Any]]) -> dict[int, WriteResult]:
        query, variables = self.product_set_document(batch, handles, current)
        result = self.graphql(query, variables)
        data, errors = result.body["data"], result.body.get("errors") or []
        out: dict[int, WriteResult] = {}
        for n, desired, diffs in batch:
            alias = f"p{n}"
            problems = [{"field": ["input"], "message": e.get("message")}
                        for e in errors if (e.get("path") or [None])[0] == alias]
            out[n] = _set_result(handles[n], desired, diffs, data.get(alias) or {}, problems, result.status)
        return out

    def _bulk_product_set(self, entries: Sequence[tuple[int, dict[str, Any], list[str] | None]],
                          handles: Sequence[str]) -> dict[int, WriteResult]:
        """Create ``entries`` with one bulk operation: their ``productSet`` variables staged as JSONL, the
        operation run and polled to its end, its JSONL answers read back line by line (line n is entry n)."""
        lines = "".join(json.dumps({"input": product_set_input(desired, None), "identifier": {"handle": handles[n]}})
                        + "\n" for n, desired, _ in entries).encode()
        staged = self.graphql(STAGED_UPLOADS_CREATE, {"input": [{
            "resource": "BULK_MUTATION_VARIABLES", "filename": "product_set.jsonl", "mimeType": "text/jsonl",
            "httpMethod": "PUT"}]}).body["data"]["stagedUploadsCreate"] or {}
        targets = staged.get("stagedTargets") or []
        if staged.get("userErrors") or not targets:
            raise ConfigurationError(f"stagedUploadsCreate refused: {staged.get('userErrors')}", system=self.system)
        target = targets[0]
        path = next((p["value"] for p in target.get("parameters") or [] if p.get("name") == "key"), None)
        # the staged target is a signed URL: it takes no admin token
        self.request("PUT", str(target["url"]), data=lines, headers={"Content-Type": "text/jsonl"},
                     authenticate=False, parse="bytes", expect=(200, 201, 204))
        run = self.graphql(BULK_RUN_MUTATION, {"mutation": BULK_PRODUCT_SET, "path": path}).body["data"][
            "bulkOperationRunMutation"] or {}
        errors = run.get("userErrors") or []
        if any(e.get("code") == "OPERATION_IN_PROGRESS" for e in errors):
            raise TransientError("another bulk operation is running on the shop", system=self.system)
        if errors or not run.get("bulkOperation"):
            raise ConfigurationError(f"bulkOperationRunMutation refused: {errors}", system=self.system)
        operation = run["bulkOperation"]
        self.bulk_operations.append(str(operation["id"]))
        while operation.get("status") in ("CREATED", "RUNNING", "CANCELING"):
            self._sleep(self.bulk_poll_s)
            operation = self.graphql(BULK_OPERATION, {"id": operation["id"]}).body["data"]["bulkOperation"] or {}
        if operation.get("status") != "COMPLETED":
            raise TransientError(f"bulk operation {operation.get('id')} ended {operation.get('status')} "
                                 f"({operation.get('errorCode')})", system=self.system)
        answers: dict[int, Mapping[str, Any]] = {}
        if operation.get("url"):
            text = self.request("GET", str(operation["url"]), authenticate=False, parse="bytes").content
            for line in text.decode("utf-8").splitlines():
                if line.strip():
                    answer = json.loads(line)
                    answers[int(answer.get("__lineNumber", -1))] = answer
        out: dict[int, WriteResult] = {}
        for line_number, (n, desired, diffs) in enumerate(entries):
            answer = answers.get(line_number)
            if answer is None:
                out[n] = WriteResult(handles[n], Outcome.FAILED, None, f"no answer in bulk operation "
                                     f"{operation.get('id')}", desired, Disposition.RETRY)
                continue
            problems = [{"field": ["input"], "message": e.get("message")} for e in answer.get("errors") or []]
            out[n] = _set_result(handles[n], desired, diffs, (answer.get("data") or {}).get("productSet") or {},
                                 problems, 200, via=str(operation.get("id")))
        return out

    # ----------------------------------------------------------------------------------------- fixed bundles

    def upsert_bundle(self, product: Mapping[str, Any], components: Sequence[tuple[int | str, int]],
                      product_id: int | str | None = None) -> WriteResult:
        """Create or update one product fixed bundle: ``product`` (REST-shaped, one variant: the bundle's own
        price and SKU) made of ``components`` (storefront product id, quantity), each of one variant.

        ``productBundleCreate`` (or ``productBundleUpdate`` of ``product_id``, which replaces the components) is
        polled to completion with bounded backoff; the bundle's handle, content, status and price are then set
        with ``productSet`` on its id (the bundle mutations take a title and components only). A refusal (the
        mutation's or the operation's ``userErrors``) fails this bundle alone, with Shopify's messages."""
        handle = str(product["handle"])
        desired = dict(product)
        problems = []
        if not components:
            problems.append("a fixed bundle needs at least one component")
        if len(components) > MAX_BUNDLE_COMPONENTS:
            problems.append(f"{len(components)} components: a Shopify bundle holds at most {MAX_BUNDLE_COMPONENTS}")
        problems += [f"component {ref}: quantity {q} is outside 1..{MAX_COMPONENT_QUANTITY}"
                     for ref, q in components if not 1 <= q <= MAX_COMPONENT_QUANTITY]
        if problems:
            return WriteResult(handle, Outcome.FAILED, 422, "; ".join(problems), desired, Disposition.DEAD_LETTER)
        refs = [str(ref) if str(ref).startswith("gid://") else gid("Product", ref) for ref, _ in components]
        found = self.graphql(COMPONENT_OPTIONS, {"ids": refs}).body["data"].get("nodes") or []
        selections: list[dict[str, Any]] = []
        for (ref, quantity), node in zip(components, found, strict=True):
            if not node:
                return WriteResult(handle, Outcome.FAILED, 422, f"component {ref}: Product does not exist.",
                                   desired, Disposition.DEAD_LETTER)
            if any(len(o.get("values") or []) != 1 for o in node.get("options") or []):
                return WriteResult(handle, Outcome.FAILED, 422, f"component {node.get('handle')}: has several "
                                   "variants; a fixed bundle of this connector takes one variant of each component",
                                   desired, Disposition.DEAD_LETTER)
            selections.append({"productId": node["id"], "quantity": int(quantity), "optionSelections": [
                {"componentOptionId": o["id"], "name": f"{node.get('handle')} {o['name']}", "values": o["values"]}
                for o in node.get("options") or []]})
        if product_id is None:
            query, variables = BUNDLE_CREATE, {"input": {"title": str(product.get("title") or handle),
                                                         "components": selections}}
        else:
            query, variables = BUNDLE_UPDATE, {"input": {"productId": gid("Product", product_id),
                                                         "title": str(product.get("title") or handle),
                                                         "components": selections}}
        result = self.graphql(query, variables)
        answer = next(iter(result.body["data"].values())) or {}
        operation = answer.get("productBundleOperation")
        if answer.get("userErrors") or not operation:
            return WriteResult(handle, Outcome.FAILED, 422, _user_errors(answer.get("userErrors") or [])
                               or "no bundle operation in the answer", desired, Disposition.DEAD_LETTER)
        delay = BUNDLE_POLL_S
        for _ in range(BUNDLE_POLLS):
            if operation.get("status") == "COMPLETE":
                break
            self._sleep(delay)
            delay = min(delay * 2, BUNDLE_POLL_MAX_S)
            operation = self.graphql(BUNDLE_OPERATION, {"id": operation["id"]}).body["data"].get(
                "productOperation") or {}
        else:
            return WriteResult(handle, Outcome.FAILED, 504, f"bundle operation {operation.get('id')} not complete "
                               f"after {BUNDLE_POLLS} looks", desired, Disposition.RETRY)
        if operation.get("userErrors") or not operation.get("product"):
            errors = operation.get("userErrors") or []
            codes = sorted({str(e.get("code")) for e in errors if e.get("code")})
            return WriteResult(handle, Outcome.FAILED, 422, (_user_errors(errors) or "no product made")
                               + (f" ({', '.join(codes)})" if codes else ""), desired, Disposition.DEAD_LETTER)
        bundle_id = rest_id(operation["product"]["id"])
        assert bundle_id is not None
        current = self.get_product(bundle_id)
        query, variables = self._set_by_id(bundle_id, desired, current)
        set_result = self.graphql(query, variables)
        written = _set_result(handle, desired, None if product_id is None else ["bundle"],
                              set_result.body["data"].get("p") or {}, [], set_result.status)
        if written.ok and written.response is not None:
            written.response["bundle_components"] = [{"product_id": rest_id(r), "quantity": q}
                                                     for r, (_, q) in zip(refs, components, strict=True)]
        return written

    def _set_by_id(self, product_id: int, desired: Mapping[str, Any], current: Mapping[str, Any] | None
                   ) -> tuple[str, dict[str, Any]]:
        """A ``productSet`` of one product addressed by id (a bundle, whose handle Shopify chose)."""
        query = ("mutation ProductSet($p: ProductSetInput!, $p_id: ProductSetIdentifiers) { "
                 + PRODUCT_SET_FIELD.format(alias="p", variants=self._answer_variants(desired, current)) + " }")
        return query, {"p": product_set_input(desired, current), "p_id": {"id": gid("Product", product_id)}}

    def bundle_components(self, product_id: int | str) -> list[dict[str, Any]]:
        """The components of a storefront bundle: ``[{"handle", "quantity"}]`` (empty for a product that is none)."""
        query = ("query BundleComponents($id: ID!) { product(id: $id) { bundleComponents(first: 30) { nodes { "
                 "quantity componentProduct { id handle } } } } }")
        product = self.graphql(query, {"id": gid("Product", product_id)}).body["data"].get("product") or {}
        return [{"handle": n["componentProduct"]["handle"], "quantity": n.get("quantity")}
                for n in (product.get("bundleComponents") or {}).get("nodes") or []]

    def variant_count(self) -> int:
        """How many variants the store holds (what Shopify's variant creation throttle counts)."""
        body = self.graphql(VARIANTS_COUNT, {}).body
        return int(((body["data"].get("productVariantsCount")) or {}).get("count") or 0)

    def delete_product(self, product_id: int | str) -> WriteResult:
        key = str(product_id)
        ref = key if key.startswith("gid://") else gid("Product", key)
        result = self.graphql(PRODUCT_DELETE, {"input": {"id": ref}})
        answer = result.body["data"].get("productDelete") or {}
        errors = answer.get("userErrors") or []
        if answer.get("deletedProductId"):
            return WriteResult(key, Outcome.OK, result.status, "deleted")
        if any("does not exist" in str(e.get("message")) for e in errors):
            return WriteResult(key, Outcome.UNCHANGED, result.status, "already absent")
        return WriteResult(key, Outcome.FAILED, 422, _user_errors(errors) or "not deleted", None,
                           Disposition.DEAD_LETTER)

    def set_inventory_levels(self, levels: Sequence[LevelWrite]) -> list[WriteResult]:
        """Set many inventory levels: ``inventorySetQuantities`` with :data:`LEVELS_PER_REQUEST` quantities a call
        (or ``options.batch_size``, if smaller).

        The ERP owns stock, so the quantities are absolute: each carries ``changeFromQuantity: null``, the
        2026-04 way of opting out of the compare-and-set check. Each call's ``@idempotent`` key is derived from
        the ERP changes it applies (:func:`idempotency_key` of every level), so a retried call, or a re-run of
        the same changes, is answered from the first and changes nothing (all levels UNCHANGED, "replayed"); a
        later change of the same level has another key and is applied.

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

    @staticmethod
    def set_quantities_variables(pending: Sequence[LevelWrite]) -> dict[str, Any]:
        key = hashlib.sha256("\n".join(
            f"{idempotency_key(lv.sku, lv.location_id, lv.available, lv.change_seq)}:{lv.inventory_item_id}"
            for lv in pending).encode()).hexdigest()
        return {"key": key, "input": {
            "name": "available", "reason": "correction", "referenceDocumentUri": "catalog-sync://erp/stock",
            "quantities": [{"inventoryItemId": gid("InventoryItem", lv.inventory_item_id),
                            "locationId": gid("Location", lv.location_id), "quantity": lv.available,
                            "changeFromQuantity": None}
                           for lv in pending]}}

    def _set_quantities(self, pending: list[LevelWrite]) -> dict[str, WriteResult]:
        out: dict[str, WriteResult] = {}

        def sent(lv: LevelWrite) -> dict[str, Any]:
            return {"location_id": lv.location_id, "inventory_item_id": lv.inventory_item_id,
                    "available": lv.available,
                    "idempotency_key": idempotency_key(lv.sku, lv.location_id, lv.available, lv.change_seq)}

        while pending:
            result = self.graphql(SET_QUANTITIES, self.set_quantities_variables(pending))
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
