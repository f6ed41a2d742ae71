"""The storefront's bulk writes, in the shape of the Shopify GraphQL Admin API (2026-04): ``productSet`` and
``inventorySetQuantities``.

Shopify's REST Admin API writes one product or one inventory level per call; at catalog scale that is the
bottleneck (a 100,000-SKU first publish is hundreds of thousands of calls). The GraphQL Admin API is where
Shopify puts its bulk writes, so the sandbox speaks the part of it Catalog Sync uses, on the same tables as the
REST routes (a product written here reads back identically through ``products.json``):

- ``productSet(input:, identifier: {handle:})`` creates or updates one product by handle, declaratively: the
  fields sent replace what is there (variants matched by their option values), the fields left out stay. A
  request may carry many ``productSet`` fields under aliases; each gets its own ``userErrors``.
- ``inventorySetQuantities(input:) @idempotent(key:)`` sets up to 250 absolute quantities, all or nothing. The
  ``@idempotent`` directive is mandatory (as in 2026-04): a retried request with the same key and variables gets
  the first answer back (``Idempotent-Replayed: true``) and changes nothing; the same key with other variables is
  refused.
- Calls are metered by query cost (10 points per mutation field, 1 for a query) against a bucket sized by the
  storefront plan (``SandboxState.storefront_graphql_call``); an over-budget request gets Shopify's ``THROTTLED``
  error with the bucket in ``extensions.cost``.

Requests are parsed, validated and executed by graphql-core against the schema below, a faithful subset of
Shopify's; all mutations of one request run in one transaction under the sandbox's write lock.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, cast

from fastapi import APIRouter, Depends, Request, Response
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLDirective,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
    validate,
    value_from_ast_untyped,
)
from graphql.execution.values import get_directive_values
from pydantic import BaseModel
from sqlalchemy import Connection, func, select
from starlette.exceptions import HTTPException

from catalog_sync.catalog.magento import slugify
from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, iso, parse_ts
from catalog_sync_sandbox.storefront import check_token, save_product, token_header

GRAPHQL_VERSION: Final = "2026-04"
MAX_QUERY_COST: Final = 1000
MUTATION_COST: Final = 10
CONNECTION_COST: Final = 2
#: The most nodes a connection page (``first``) or ``nodes(ids:)`` returns.
MAX_PAGE: Final = 250
MAX_QUANTITIES: Final = 250
#: REST weight units and their GraphQL names.
WEIGHT_UNITS: Final = {"g": "GRAMS", "kg": "KILOGRAMS", "oz": "OUNCES", "lb": "POUNDS"}
#: REST product fields (as ``save_product`` names them) and their ``ProductSetInput`` names.
PRODUCT_FIELDS: Final = {"title": "title", "body_html": "descriptionHtml", "vendor": "vendor",
                         "product_type": "productType", "handle": "handle", "status": "status", "tags": "tags",
                         "options": "productOptions", "variants": "variants", "images": "files",
                         "metafields": "metafields"}

SCHEMA_SDL: Final = """
schema { query: QueryRoot, mutation: Mutation }

directive @idempotent(key: String!) on FIELD

scalar DateTime
scalar HTML
scalar Money
scalar URL
scalar UnsignedInt64

enum ProductStatus { ACTIVE ARCHIVED DRAFT UNLISTED }
enum ProductSortKeys { ID TITLE UPDATED_AT }
enum WeightUnit { GRAMS KILOGRAMS OUNCES POUNDS }
enum FileContentType { EXTERNAL_VIDEO FILE IMAGE MODEL_3D VIDEO }
enum StagedUploadTargetGenerateUploadResource { BULK_MUTATION_VARIABLES }
enum StagedUploadHttpMethodType { POST PUT }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkMutationErrorCode { INVALID_MUTATION INVALID_STAGED_UPLOAD_FILE NO_SUCH_FILE OPERATION_IN_PROGRESS }
enum ProductSetUserErrorCode {
  GENERIC_ERROR HANDLE_NOT_UNIQUE INVALID_INPUT INVALID_PRODUCT INVALID_VARIANT MISSING_FIELD_REQUIRED
  OPTION_DOES_NOT_EXIST OPTIONS_OVER_LIMIT PRODUCT_DOES_NOT_EXIST VARIANTS_OVER_LIMIT
}
enum ProductOperationStatus { ACTIVE COMPLETE CREATED }
enum ProductBundleMutationUserErrorCode { GENERIC_ERROR INVALID_INPUT JOB_ERROR PRODUCT_DOES_NOT_EXIST }
enum InventorySetQuantitiesUserErrorCode {
  CHANGE_FROM_QUANTITY_STALE COMPARE_QUANTITY_REQUIRED INVALID_INVENTORY_ITEM INVALID_LOCATION INVALID_NAME
  INVALID_QUANTITY_NEGATIVE NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR
}

input ProductIdentifierInput { id: ID, handle: String }
input ProductSetIdentifiers { id: ID, handle: String }
input OptionValueSetInput { id: ID, name: String }
input OptionSetInput { id: ID, name: String, position: Int, values: [OptionValueSetInput!] }
input VariantOptionValueInput { id: ID, name: String, optionName: String }
input WeightInput { value: Float!, unit: WeightUnit! }
input InventoryItemMeasurementInput { weight: WeightInput }
input InventoryItemInput {
  sku: String, tracked: Boolean, requiresShipping: Boolean, measurement: InventoryItemMeasurementInput
}
input ProductVariantSetInput {
  id: ID, optionValues: [VariantOptionValueInput!]!, price: Money, compareAtPrice: Money, sku: String,
  barcode: String, position: Int, inventoryItem: InventoryItemInput
}
input FileSetInput { id: ID, originalSource: String, alt: String, contentType: FileContentType, filename: String }
input MetafieldInput { id: ID, namespace: String, key: String, value: String, type: String }
input ProductSetInput {
  title: String, descriptionHtml: String, handle: String, vendor: String, productType: String,
  status: ProductStatus, tags: [String!], productOptions: [OptionSetInput!], variants: [ProductVariantSetInput!],
  files: [FileSetInput!], metafields: [MetafieldInput!]
}
input ProductDeleteInput { id: ID! }
input StagedUploadInput {
  resource: StagedUploadTargetGenerateUploadResource!, filename: String!, mimeType: String!,
  httpMethod: StagedUploadHttpMethodType
}
input ProductBundleComponentOptionSelectionInput { componentOptionId: ID!, name: String!, values: [String!]! }
input ProductBundleComponentQuantityOptionValueInput { name: String!, quantity: Int! }
input ProductBundleComponentQuantityOptionInput { name: String!, values: [ProductBundleComponentQuantityOptionValueInput!]! }
input ProductBundleComponentInput {
  quantity: Int, productId: ID!, optionSelections: [ProductBundleComponentOptionSelectionInput!]!,
  quantityOption: ProductBundleComponentQuantityOptionInput
}
input ProductBundleCreateInput { title: String!, components: [ProductBundleComponentInput!]! }
input ProductBundleUpdateInput { productId: ID!, title: String, components: [ProductBundleComponentInput!] }
input InventoryQuantityInput { inventoryItemId: ID!, locationId: ID!, quantity: Int!, changeFromQuantity: Int }
input InventorySetQuantitiesInput {
  name: String!, reason: String!, referenceDocumentUri: String, quantities: [InventoryQuantityInput!]!
}

interface Node { id: ID! }
interface Media { id: ID!, alt: String }

type PageInfo { hasNextPage: Boolean!, hasPreviousPage: Boolean!, startCursor: String, endCursor: String }
type Weight { unit: WeightUnit!, value: Float! }
type InventoryItemMeasurement { id: ID!, weight: Weight }
type InventoryQuantity { id: ID!, name: String!, quantity: Int! }
type Location implements Node { id: ID!, name: String!, isActive: Boolean! }
type LocationConnection { nodes: [Location!]!, pageInfo: PageInfo! }
type InventoryLevel implements Node { id: ID!, location: Location!, quantities(names: [String!]!): [InventoryQuantity!]! }
type InventoryLevelConnection { nodes: [InventoryLevel!]!, pageInfo: PageInfo! }
type InventoryItem implements Node {
  id: ID!, sku: String, tracked: Boolean!, requiresShipping: Boolean!, measurement: InventoryItemMeasurement!,
  inventoryLevels(first: Int, after: String): InventoryLevelConnection!
}
type SelectedOption { name: String!, value: String! }
type ProductVariant implements Node {
  id: ID!, sku: String, price: Money!, barcode: String, position: Int!, inventoryQuantity: Int,
  selectedOptions: [SelectedOption!]!, inventoryItem: InventoryItem!
}
type ProductVariantConnection { nodes: [ProductVariant!]!, pageInfo: PageInfo! }
type Image { id: ID, url: URL!, altText: String }
type MediaImageOriginalSource { url: URL }
type MediaImage implements Media & Node { id: ID!, alt: String, image: Image, originalSource: MediaImageOriginalSource }
type MediaConnection { nodes: [Media!]!, pageInfo: PageInfo! }
type ProductOption { id: ID!, name: String!, position: Int!, values: [String!]! }
type Metafield implements Node { id: ID!, namespace: String!, key: String!, value: String!, type: String! }
type Product implements Node {
  id: ID!, handle: String!, title: String!, descriptionHtml: HTML!, vendor: String!, productType: String!,
  status: ProductStatus!, tags: [String!]!, createdAt: DateTime!, updatedAt: DateTime!,
  options(first: Int): [ProductOption!]!, metafield(namespace: String, key: String!): Metafield,
  variants(first: Int, after: String): ProductVariantConnection!, media(first: Int, after: String): MediaConnection!,
  bundleComponents(first: Int, after: String): ProductBundleComponentConnection!
}
type ProductBundleComponent { componentProduct: Product!, quantity: Int }
type ProductBundleComponentConnection { nodes: [ProductBundleComponent!]!, pageInfo: PageInfo! }
interface ProductOperation { product: Product, status: ProductOperationStatus! }
type ProductBundleMutationUserError { code: ProductBundleMutationUserErrorCode, field: [String!], message: String! }
type ProductBundleOperation implements Node & ProductOperation {
  id: ID!, product: Product, status: ProductOperationStatus!, userErrors: [ProductBundleMutationUserError!]!
}
type ProductBundleCreatePayload { productBundleOperation: ProductBundleOperation, userErrors: [UserError!]! }
type ProductBundleUpdatePayload { productBundleOperation: ProductBundleOperation, userErrors: [UserError!]! }
type ProductConnection { nodes: [Product!]!, pageInfo: PageInfo! }
type UserError { field: [String!], message: String! }
type ProductSetUserError { field: [String!], message: String!, code: ProductSetUserErrorCode }
type ProductSetPayload { product: Product, userErrors: [ProductSetUserError!]! }
type ProductDeletePayload { deletedProductId: ID, userErrors: [UserError!]! }
type InventoryChange {
  name: String!, delta: Int!, quantityAfterChange: Int, item: InventoryItem, location: Location
}
type InventoryAdjustmentGroup {
  id: ID!, createdAt: DateTime!, reason: String!, referenceDocumentUri: String, changes: [InventoryChange!]!
}
type InventorySetQuantitiesUserError {
  field: [String!], message: String!, code: InventorySetQuantitiesUserErrorCode
}
type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup, userErrors: [InventorySetQuantitiesUserError!]!
}
type Shop { name: String! }
enum CountPrecision { AT_LEAST EXACT }
type Count { count: Int!, precision: CountPrecision! }
type StagedUploadParameter { name: String!, value: String! }
type StagedMediaUploadTarget { url: URL, resourceUrl: URL, parameters: [StagedUploadParameter!]! }
type StagedUploadsCreatePayload { stagedTargets: [StagedMediaUploadTarget!], userErrors: [UserError!]! }
type BulkOperation implements Node {
  id: ID!, status: BulkOperationStatus!, type: BulkOperationType!, errorCode: BulkOperationErrorCode,
  createdAt: DateTime!, completedAt: DateTime, objectCount: UnsignedInt64!, rootObjectCount: UnsignedInt64!,
  fileSize: UnsignedInt64, url: URL, partialDataUrl: URL, query: String!
}
type BulkMutationUserError { field: [String!], message: String!, code: BulkMutationErrorCode }
type BulkOperationRunMutationPayload { bulkOperation: BulkOperation, userErrors: [BulkMutationUserError!]! }
type QueryRoot {
  shop: Shop!
  products(first: Int, after: String, query: String, sortKey: ProductSortKeys): ProductConnection!
  product(id: ID!): Product
  productByIdentifier(identifier: ProductIdentifierInput!): Product
  locations(first: Int, after: String): LocationConnection!
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  bulkOperation(id: ID!): BulkOperation
  productVariantsCount(query: String, limit: Int): Count
  productOperation(id: ID!): ProductOperation
}
type Mutation {
  productSet(input: ProductSetInput!, synchronous: Boolean, identifier: ProductSetIdentifiers): ProductSetPayload
  productDelete(input: ProductDeleteInput!, synchronous: Boolean): ProductDeletePayload
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
  stagedUploadsCreate(input: [StagedUploadInput!]!): StagedUploadsCreatePayload
  bulkOperationRunMutation(mutation: String!, stagedUploadPath: String!, clientIdentifier: String): BulkOperationRunMutationPayload
  productBundleCreate(input: ProductBundleCreateInput!): ProductBundleCreatePayload
  productBundleUpdate(input: ProductBundleUpdateInput!): ProductBundleUpdatePayload
}
"""
SCHEMA: Final = build_schema(SCHEMA_SDL)
IDEMPOTENT: Final = cast(GraphQLDirective, SCHEMA.get_directive("idempotent"))

router = APIRouter(prefix=f"/storefront/admin/api/{GRAPHQL_VERSION}", tags=["storefront"])
#: Where the shop's files live: the staged upload target and bulk operation results (signed URLs on Shopify).
files_router = APIRouter(prefix="/storefront", tags=["storefront"])


class GraphQLRequest(BaseModel):
    query: str
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # noqa: N815  # the wire name


def gid(kind: str, number: int | str) -> str:
    return f"gid://shopify/{kind}/{number}"


def parse_gid(value: Any, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    text = str(value or "")
    tail = text[len(prefix):] if text.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def _error(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, **extensions}}


@dataclass
class _Request:
    """What the resolvers of one request share: its transaction, and whether an idempotent answer was replayed."""

    conn: Connection
    replayed: bool = False
    state: Any = None
    base_url: str = ""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


# --------------------------------------------------------------------------------------------------- productSet


def _user_error(path: list[str], message: str, code: str | None = "INVALID_INPUT") -> dict[str, Any]:
    return {"field": path, "message": message, "code": code}


def _rest_product(data: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """``ProductSetInput`` as the REST product document ``save_product`` writes, variant and image ids carried
    over from ``current`` (variants matched by their option values, as Shopify does, else by SKU)."""
    doc: dict[str, Any] = {}
    for rest, name in (("title", "title"), ("body_html", "descriptionHtml"), ("vendor", "vendor"),
                       ("product_type", "productType"), ("handle", "handle")):
        if name in data:
            doc[rest] = data[name]
    if data.get("status") is not None:
        doc["status"] = str(data["status"]).lower()
    if "tags" in data:
        doc["tags"] = ", ".join(data["tags"] or [])
    options = [str(o.get("name")) for o in data.get("productOptions") or []]
    if "productOptions" in data:
        doc["options"] = [{"name": o.get("name"), "values": [v.get("name") for v in o.get("values") or []]}
                          for o in data["productOptions"] or []]
    else:
        options = [str(o.get("name")) for o in (current or {}).get("options") or []]
    if "variants" in data:
        old = (current or {}).get("variants") or []
        by_options = {tuple(v.get(f"option{i}") for i in (1, 2, 3)): v for v in old}
        by_sku = {v.get("sku"): v for v in old if v.get("sku")}
        variants = []
        for v in data["variants"] or []:
            values = {str(o.get("optionName")): o.get("name") for o in v.get("optionValues") or []}
            item = v.get("inventoryItem") or {}
            variant: dict[str, Any] = {f"option{i}": values.get(name) for i, name in enumerate(options[:3], start=1)}
            match = by_options.get(tuple(variant.get(f"option{i}") for i in (1, 2, 3))) or by_sku.get(item.get("sku"))
            if match:
                # As Shopify's productSet: a listed variant's omitted fields keep their values; a null clears one
                variant.update({k: match[k] for k in ("sku", "price", "barcode", "weight", "weight_unit",
                                                      "requires_shipping", "tracked") if k in match})
                variant["id"], variant["inventory_item_id"] = match["id"], match["inventory_item_id"]
            for key, value in (("sku", item.get("sku")), ("price", v.get("price"))):
                if value is not None:
                    variant[key] = value
            if "barcode" in v:
                variant["barcode"] = v["barcode"]
            for key, name in (("requires_shipping", "requiresShipping"), ("tracked", "tracked")):
                if item.get(name) is not None:  # as Shopify: left out keeps the item's setting
                    variant[key] = bool(item[name])
            weight = (item.get("measurement") or {}).get("weight")
            if weight:
                unit = {g: r for r, g in WEIGHT_UNITS.items()}[weight["unit"]]
                variant.update(weight=weight["value"], weight_unit=unit)
            variants.append(variant)
        doc["variants"] = variants
    if "metafields" in data:
        doc["metafields"] = [dict(m) for m in data["metafields"] or []]
    if "files" in data:
        old_images = {i.get("src"): i for i in (current or {}).get("images") or []}
        doc["images"] = [{"src": f.get("originalSource"), "alt": f.get("alt"),
                          **({"id": old_images[f.get("originalSource")]["id"]}
                             if f.get("originalSource") in old_images else {})}
                         for f in data["files"] or []]
    return doc


def _input_problems(data: dict[str, Any], current: dict[str, Any] | None) -> list[dict[str, Any]]:
    problems = []
    names = [o.get("name") for o in (data.get("productOptions") if "productOptions" in data
                                     else (current or {}).get("options")) or []]
    if len(names) > 3:
        problems.append(_user_error(["input", "productOptions"], "A product can have at most 3 options.",
                                    "OPTIONS_OVER_LIMIT"))
    for i, v in enumerate(data.get("variants") or []):
        unknown = [o.get("optionName") for o in v.get("optionValues") or [] if o.get("optionName") not in names]
        if unknown:
            problems.append(_user_error(["input", "variants", str(i), "optionValues"],
                                        f"Option does not exist: {unknown[0]}", "OPTION_DOES_NOT_EXIST"))
        if v.get("price") is not None:
            try:
                price = float(v["price"])
            except (TypeError, ValueError):
                price = float("nan")
            if not price >= 0:  # NaN included
                problems.append(_user_error(["input", "variants", str(i), "price"],
                                            f"Price is invalid: {v['price']!r}", "INVALID_VARIANT"))
    for i, f in enumerate(data.get("files") or []):
        if not f.get("originalSource"):
            problems.append(_user_error(["input", "files", str(i), "originalSource"], "can't be blank", "MISSING_FIELD_REQUIRED"))
    return problems


def _cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _position(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise GraphQLError("Invalid cursor.", extensions={"code": "BAD_REQUEST"}) from None


def _page_size(first: int | None) -> int:
    if first is None:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
    if first < 0 or first > MAX_PAGE:
        raise GraphQLError(f"The first argument must be between 0 and {MAX_PAGE}.", extensions={"code": "BAD_REQUEST"})
    return first


def _connection(items: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
    """A page of ``items`` (a short list already in memory: a product's variants or media, levels)."""
    size, start = _page_size(first), int(_position(after) or 0)
    page = items[start:start + size]
    return {"nodes": page, "pageInfo": {
        "hasNextPage": start + len(page) < len(items), "hasPreviousPage": start > 0,
        "startCursor": _cursor(start) if page else None, "endCursor": _cursor(start + len(page)) if page else None}}


def _levels(conn: Connection, item: int) -> list[dict[str, Any]]:
    t, loc = db.storefront_inventory_level, db.storefront_location
    rows = conn.execute(select(t.c.location_id, t.c.available, loc.c.name).join(loc, loc.c.id == t.c.location_id)
                        .where(t.c.inventory_item_id == item).order_by(t.c.location_id)).all()
    return [{"id": f"gid://shopify/InventoryLevel/{r.location_id}?inventory_item_id={item}",
             "location": _location(r.location_id, r.name),
             "quantities": lambda _info, names, available=r.available, at=r.location_id: [
                 {"id": f"gid://shopify/InventoryQuantity/{at}?inventory_item_id={item}&name={n}", "name": n,
                  "quantity": available} for n in names if n in ("available", "on_hand")]} for r in rows]


def _location(location_id: int, name: str) -> dict[str, Any]:
    return {"__typename": "Location", "id": gid("Location", location_id), "name": name, "isActive": True}


def _inventory_item(conn: Connection, item: int, variant: dict[str, Any]) -> dict[str, Any]:
    unit = WEIGHT_UNITS.get(str(variant.get("weight_unit") or ""))
    weight = {"value": float(variant["weight"]), "unit": unit} if unit and variant.get("weight") is not None else None
    return {"__typename": "InventoryItem", "id": gid("InventoryItem", item), "sku": variant.get("sku"),
            # Shopify's defaults for a new item: it needs shipping and (in this shop) its stock is tracked
            "tracked": variant.get("tracked", True), "requiresShipping": variant.get("requires_shipping", True),
            "measurement": {"id": gid("InventoryItemMeasurement", item), "weight": weight},
            "inventoryLevels": lambda _info, first=None, after=None: _connection(_levels(conn, item), first, after)}


def _graphql_product(doc: dict[str, Any], conn: Connection) -> dict[str, Any]:
    options = [o.get("name") for o in doc.get("options") or []]
    variants = [{
        "__typename": "ProductVariant", "id": gid("ProductVariant", v["id"]), "sku": v.get("sku"),
        "price": v.get("price") or "0.00", "barcode": v.get("barcode"), "position": v.get("position") or n,
        "selectedOptions": [{"name": name, "value": v.get(f"option{i}")} for i, name in enumerate(options[:3], 1)
                            if v.get(f"option{i}") is not None],
        "inventoryItem": _inventory_item(conn, v["inventory_item_id"], v),
        "inventoryQuantity": lambda _info, item=v["inventory_item_id"]: sum(
            lv["quantities"](None, ["available"])[0]["quantity"] for lv in _levels(conn, item)),
    } for n, v in enumerate(doc.get("variants") or [], start=1)]
    media = [{"__typename": "MediaImage", "id": gid("MediaImage", i["id"]), "alt": i.get("alt"),
              "image": {"id": gid("ProductImage", i["id"]), "url": i.get("src"), "altText": i.get("alt")},
              "originalSource": {"url": i.get("src")}} for i in doc.get("images") or []]
    metafields = {(m.get("namespace"), m.get("key")): m for m in doc.get("metafields") or []}

    def metafield(_info: Any, key: str, namespace: str | None = None) -> dict[str, Any] | None:
        m = metafields.get((namespace, key))
        return None if m is None else {"id": gid("Metafield", f"{doc['id']}-{namespace}-{key}"),
                                       "namespace": namespace, "key": key, "value": str(m.get("value")),
                                       "type": m.get("type") or "single_line_text_field"}

    tags = doc.get("tags")
    return {
        "__typename": "Product", "id": gid("Product", doc["id"]), "handle": doc["handle"],
        "title": doc.get("title") or "", "descriptionHtml": doc.get("body_html") or "",
        "vendor": doc.get("vendor") or "", "productType": doc.get("product_type") or "",
        "status": str(doc.get("status") or "active").upper(),
        "tags": [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else list(tags or []),
        "createdAt": doc.get("created_at"), "updatedAt": doc.get("updated_at"),
        "options": lambda _info, first=None: [
            {"id": gid("ProductOption", f"{doc['id']}-{i}"), "name": o.get("name"), "position": i,
             "values": [str(x) for x in o.get("values") or []]}
            for i, o in enumerate((doc.get("options") or [])[:first], start=1)],
        "metafield": metafield,
        "variants": lambda _info, first=None, after=None: _connection(variants, first, after),
        "media": lambda _info, first=None, after=None: _connection(media, first, after),
        "bundleComponents": lambda _info, first=None, after=None: _connection(
            [{"componentProduct": _product_by(conn, c["product_id"]), "quantity": c.get("quantity")}
             for c in doc.get("bundle_components") or []], first, after),
    }


# ------------------------------------------------------------------------------------------------------ reads

_TERM: Final = re.compile(r"(\w+):(>=|<=|>|<)?(\"[^\"]*\"|'[^']*'|[^\s()]+)")


def _search(query: Any, text: str | None) -> Any:
    """``query`` narrowed by Shopify's search syntax, the part the sandbox knows: ``handle:``, ``status:`` and
    ``updated_at:`` (with ``>=``, ``>``, ``<=``, ``<``), terms joined by ``AND`` (or a space), alternatives of
    one field by ``OR``. Other fields are ignored, as Shopify ignores fields it does not filter on."""
    t = db.storefront_product
    alternatives: dict[str, list[str]] = {}
    for clause in re.split(r"\s+AND\s+", text or ""):
        for name, op, raw in _TERM.findall(clause):
            value = raw[1:-1] if raw[:1] in "'\"" else raw
            if name == "updated_at":
                at = parse_ts(value, "updated_at")
                column = t.c.updated_at
                query = query.where({">=": column >= at, ">": column > at, "<=": column <= at,
                                     "<": column < at, "": column == at}[op])
            elif name in ("handle", "status"):
                alternatives.setdefault(name, []).append(value.lower() if name == "status" else value)
    for name, values in alternatives.items():
        query = query.where((t.c.handle if name == "handle" else t.c.status).in_(values))
    return query


def _products(info: GraphQLResolveInfo, first: int | None = None, after: str | None = None,
              query: str | None = None, sortKey: str | None = None) -> dict[str, Any]:  # noqa: N803
    req: _Request = info.context
    t = db.storefront_product
    size = _page_size(first)
    after_id = int(_position(after) or 0)
    rows = req.conn.execute(_search(select(t.c.doc).where(t.c.id > after_id), query)
                            .order_by(t.c.id).limit(size + 1)).all()
    docs = [dict(r.doc) for r in rows[:size]]
    nodes = [_graphql_product(d, req.conn) for d in docs]
    return {"nodes": nodes, "pageInfo": {
        "hasNextPage": len(rows) > size, "hasPreviousPage": after_id > 0,
        "startCursor": _cursor(docs[0]["id"] - 1) if docs else None,
        "endCursor": _cursor(docs[-1]["id"]) if docs else None}}


def _product_by(conn: Connection, product_id: int | None = None, handle: str | None = None) -> dict[str, Any] | None:
    t = db.storefront_product
    if product_id is not None:
        row = conn.execute(select(t.c.doc).where(t.c.id == product_id)).first()
    elif handle:
        row = conn.execute(select(t.c.doc).where(t.c.handle == handle)).first()
    else:
        return None
    return _graphql_product(dict(row.doc), conn) if row else None


def _product(info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:  # noqa: A002
    return _product_by(info.context.conn, parse_gid(id, "Product"))


def _product_by_identifier(info: GraphQLResolveInfo, identifier: dict[str, Any]) -> dict[str, Any] | None:
    if identifier.get("id"):
        return _product_by(info.context.conn, parse_gid(identifier["id"], "Product"))
    return _product_by(info.context.conn, handle=identifier.get("handle"))


def _locations(info: GraphQLResolveInfo, first: int | None = None, after: str | None = None) -> dict[str, Any]:
    t = db.storefront_location
    rows = info.context.conn.execute(select(t).order_by(t.c.id)).all()
    return _connection([_location(r.id, r.name) for r in rows], first, after)


def _node_of(conn: Connection, ref: str) -> dict[str, Any] | None:
    kind = ref.removeprefix("gid://shopify/").split("/", 1)[0]
    if kind == "Product":
        return _product_by(conn, parse_gid(ref, "Product"))
    if kind == "InventoryItem":
        item = parse_gid(ref, "InventoryItem")
        ix = db.storefront_variant_index
        row = conn.execute(select(ix.c.product_id, ix.c.variant_id).where(ix.c.inventory_item_id == item)).first()
        if row is None or item is None:
            return None
        doc = conn.execute(select(db.storefront_product.c.doc).where(db.storefront_product.c.id == row.product_id)
                           ).first()
        variant: dict[str, Any] = next((v for v in (doc.doc if doc else {}).get("variants") or [] if v.get("id") == row.variant_id),
                       {})
        return _inventory_item(conn, item, variant)
    if kind == "Location":
        t = db.storefront_location
        loc = conn.execute(select(t).where(t.c.id == parse_gid(ref, "Location"))).first()
        return _location(loc.id, loc.name) if loc else None
    return None


def _nodes(info: GraphQLResolveInfo, ids: list[str]) -> list[dict[str, Any] | None]:
    if len(ids) > MAX_PAGE:
        raise GraphQLError(f"The ids argument accepts at most {MAX_PAGE} ids.", extensions={"code": "BAD_REQUEST"})
    return [_node_of(info.context.conn, ref) for ref in ids]


def _node(info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:  # noqa: A002
    return _node_of(info.context.conn, id)


def _product_delete(info: GraphQLResolveInfo, input: dict[str, Any],  # noqa: A002
                    synchronous: bool | None = None) -> dict[str, Any]:
    req: _Request = info.context
    product_id = parse_gid(input.get("id"), "Product")
    t, ix = db.storefront_product, db.storefront_variant_index
    if product_id is None or req.conn.execute(select(t.c.id).where(t.c.id == product_id)).first() is None:
        return {"deletedProductId": None, "userErrors": [{"field": ["id"], "message": "Product does not exist"}]}
    req.conn.execute(t.delete().where(t.c.id == product_id))
    req.conn.execute(ix.delete().where(ix.c.product_id == product_id))
    return {"deletedProductId": gid("Product", product_id), "userErrors": []}


def _variant_throttle(req: _Request, doc: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """Shopify's variant creation throttle: once a store holds ``storefront_variant_threshold`` variants, at most
    ``storefront_variant_daily_limit`` new ones a day (UTC). Counts the variants this write would create and,
    when they fit, books them against today's allowance."""
    if req.state is None:
        return None
    settings = req.state.settings
    new = sum(1 for v in doc["variants"] if not v.get("id")) if "variants" in doc else int(current is None)
    if not new:
        return None
    held = (req.conn.execute(select(func.count()).select_from(db.storefront_variant_index)).scalar() or 0) \
        + settings.storefront_variants_offset
    if held < settings.storefront_variant_threshold:
        return None
    day = req.now.date().isoformat()
    with req.state.write_lock:
        booked = req.state.storefront_variants_created.setdefault(day, 0)
        if booked + new > settings.storefront_variant_daily_limit:
            return _user_error(["input", "variants"], "Daily variant creation limit reached. Please try again "
                               "later. See https://help.shopify.com/api/getting-started/api-call-limit for more "
                               "information about rate limits and how to avoid them.", None)
        req.state.storefront_variants_created[day] = booked + new
    return None


def _product_set(info: GraphQLResolveInfo, input: dict[str, Any],  # noqa: A002  # the schema's name
                 identifier: dict[str, Any] | None = None, synchronous: bool | None = None) -> dict[str, Any]:
    req: _Request = info.context
    t = db.storefront_product
    key = (identifier or {}).get("handle") or input.get("handle")
    by_id = parse_gid((identifier or {}).get("id"), "Product")
    if by_id is not None:
        row = req.conn.execute(select(t.c.doc).where(t.c.id == by_id)).first()
        if row is None:
            return {"product": None, "userErrors": [_user_error(["identifier", "id"], "Product does not exist",
                                                                "PRODUCT_DOES_NOT_EXIST")]}
    elif key:
        row = req.conn.execute(select(t.c.doc).where(t.c.handle == str(key))).first()
    else:
        return {"product": None, "userErrors": [_user_error(["identifier"], "A handle or id is required.")]}
    current = dict(row.doc) if row else None
    problems = _input_problems(input, current)
    if problems:
        return {"product": None, "userErrors": problems}
    doc = _rest_product(input, current)
    if key and "handle" not in doc:
        doc["handle"] = key
    refused = _variant_throttle(req, doc, current)
    if refused:
        return {"product": None, "userErrors": [refused]}
    try:
        saved = save_product(req.conn, doc, current)
    except HTTPException as exc:  # the REST validation's 422, as GraphQL user errors on the input's fields
        errors: Any = exc.detail.get("errors") if isinstance(exc.detail, dict) else exc.detail
        if not isinstance(errors, dict):
            errors = {"base": [str(errors)]}
        return {"product": None, "userErrors": [
            _user_error(["input", PRODUCT_FIELDS.get(name, name)], "; ".join(map(str, messages)),
                        "HANDLE_NOT_UNIQUE" if name == "handle" else "INVALID_PRODUCT")
            for name, messages in errors.items()]}
    return {"product": _graphql_product(saved, req.conn), "userErrors": []}


# ------------------------------------------------------------------------------------- inventorySetQuantities


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _set_quantities(info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    req: _Request = info.context
    key = (get_directive_values(IDEMPOTENT, info.field_nodes[0], info.variable_values) or {}).get("key")
    if not key:
        raise GraphQLError("The @idempotent directive is required for this mutation.",
                           extensions={"code": "IDEMPOTENCY_KEY_REQUIRED"})
    store = db.storefront_idempotency
    stored_key = f"graphql:inventorySetQuantities:{key}"
    fingerprint = _fingerprint(input)
    seen = req.conn.execute(select(store.c.body).where(store.c.key == stored_key)).first()
    if seen is not None:
        if seen.body.get("fingerprint") != fingerprint:
            raise GraphQLError("This idempotency key was already used with different arguments.",
                               extensions={"code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"})
        req.replayed = True
        return dict(seen.body["payload"])
    payload = _apply_quantities(req, input)
    req.conn.execute(store.insert().values(key=stored_key, status_code=200, created_at=req.now,
                                           body={"fingerprint": fingerprint, "payload": payload}))
    return payload


def _apply_quantities(req: _Request, data: dict[str, Any]) -> dict[str, Any]:
    """All quantities or none: any user error leaves every level as it was."""
    quantities = data.get("quantities") or []
    errors: list[dict[str, Any]] = []
    if data.get("name") not in ("available", "on_hand"):
        errors.append(_user_error(["input", "name"], "The quantity name must be 'available' or 'on_hand'.",
                                  "INVALID_NAME"))
    if len(quantities) > MAX_QUANTITIES:
        errors.append(_user_error(["input", "quantities"], f"At most {MAX_QUANTITIES} quantities per call.", None))
    locations = {r.id for r in req.conn.execute(select(db.storefront_location.c.id))}
    ix, t = db.storefront_variant_index, db.storefront_inventory_level
    parsed = [(parse_gid(q.get("inventoryItemId"), "InventoryItem"), parse_gid(q.get("locationId"), "Location"))
              for q in quantities]
    items = [i for i, _ in parsed if i is not None]
    known = {r.inventory_item_id for r in req.conn.execute(
        select(ix.c.inventory_item_id).where(ix.c.inventory_item_id.in_(items)))} if items else set()
    levels = {(r.inventory_item_id, r.location_id): r.available for r in req.conn.execute(
        select(t.c.inventory_item_id, t.c.location_id, t.c.available).where(t.c.inventory_item_id.in_(items)))
    } if items else {}
    seen: set[tuple[int | None, int | None]] = set()
    for n, (q, (item, location)) in enumerate(zip(quantities, parsed, strict=True)):
        path = ["input", "quantities", str(n)]
        if item is None or item not in known:
            errors.append(_user_error([*path, "inventoryItemId"], "The specified inventory item could not be found.",
                                      "INVALID_INVENTORY_ITEM"))
        elif location is None or location not in locations:
            errors.append(_user_error([*path, "locationId"], "The specified location could not be found.",
                                      "INVALID_LOCATION"))
        elif (item, location) in seen:
            errors.append(_user_error(path, "The inventory item and location appear more than once.",
                                      "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"))
        elif int(q["quantity"]) < 0 and data.get("name") == "on_hand":
            errors.append(_user_error([*path, "quantity"], "On-hand quantity cannot be negative.",
                                      "INVALID_QUANTITY_NEGATIVE"))
        elif "changeFromQuantity" not in q:
            # 2026-04: every quantity says what it changes from, or null to opt out of the check
            errors.append(_user_error([*path, "changeFromQuantity"], "changeFromQuantity is required; send null to "
                                      "opt out of the compare check.", "COMPARE_QUANTITY_REQUIRED"))
        elif q["changeFromQuantity"] is not None and q["changeFromQuantity"] != levels.get((item, location), 0):
            errors.append(_user_error([*path, "changeFromQuantity"], "The changeFromQuantity argument no longer "
                                      "matches the persisted quantity.", "CHANGE_FROM_QUANTITY_STALE"))
        seen.add((item, location))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    changes = []
    for q, (item, location) in zip(quantities, parsed, strict=True):
        assert item is not None and location is not None
        quantity, before = int(q["quantity"]), levels.get((item, location))
        if before == quantity:
            continue
        where = (t.c.inventory_item_id == item, t.c.location_id == location)
        if before is None:
            req.conn.execute(t.insert().values(inventory_item_id=item, location_id=location, available=quantity,
                                               updated_at=req.now))
        else:
            req.conn.execute(t.update().where(*where).values(available=quantity, updated_at=req.now))
        changes.append({"name": data["name"], "delta": quantity - (before or 0), "quantityAfterChange": quantity,
                        "item": {"id": gid("InventoryItem", item), "sku": None},
                        "location": {"id": gid("Location", location)}})
    group = {"id": gid("InventoryAdjustmentGroup", _fingerprint(changes)[:12]), "createdAt": iso(req.now), "reason": data.get("reason"),
             "referenceDocumentUri": data.get("referenceDocumentUri"), "changes": changes}
    return {"inventoryAdjustmentGroup": group if changes else None, "userErrors": []}


# ------------------------------------------------------------------------------------------ bulk operations
#
# Shopify's bulk import: the variables of each call, one JSON object a line, are uploaded to a staged target, then
# ``bulkOperationRunMutation`` runs the mutation once per line in the background, free of the cost bucket, and
# leaves a JSONL file of answers (``{"data": ..., "__lineNumber": n}``) at the operation's ``url``. The sandbox
# serves the staged target and the result file itself (``/storefront/_staged/...``, ``/storefront/_bulk/...``)
# and keeps both in memory; one bulk mutation runs at a time per shop, as on Shopify.

BULK_ROUTE: Final = "/storefront/_bulk"
STAGED_ROUTE: Final = "/storefront/_staged"


@dataclass
class BulkStore:
    """The shop's staged uploads and bulk operations (in memory: they expire on Shopify too)."""

    uploads: dict[str, bytes] = field(default_factory=dict)
    operations: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[int, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1
    #: product bundle operations (asynchronous on Shopify: the mutation answers with an operation in ``CREATED``;
    #: it is ``ACTIVE`` at the first ``productOperation`` read and ``COMPLETE`` from the second, when its work is
    #: done, with the product or the background job's ``userErrors``)
    bundle_operations: dict[int, dict[str, Any]] = field(default_factory=dict)


def bulk_store(state: Any) -> BulkStore:
    store = getattr(state, "storefront_bulk", None)
    if store is None:
        store = state.storefront_bulk = BulkStore()
    return store


def _staged_uploads_create(info: GraphQLResolveInfo, input: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: A002
    req: _Request = info.context
    targets = []
    for item in input:
        key = f"tmp/bulk/{uuid.uuid4().hex}/{item['filename']}"
        targets.append({"url": f"{req.base_url}{STAGED_ROUTE}/{key}", "resourceUrl": None,
                        "parameters": [{"name": "key", "value": key},
                                       {"name": "content_type", "value": item["mimeType"]}]})
    return {"stagedTargets": targets, "userErrors": []}


def _bulk_view(op: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {**{k: v for k, v in op.items() if not k.startswith("_")},
            "url": f"{base_url}{BULK_ROUTE}/{op['_number']}.jsonl" if op["status"] == "COMPLETED" else None}


def _bulk_run_mutation(info: GraphQLResolveInfo, mutation: str, stagedUploadPath: str,  # noqa: N803
                       clientIdentifier: str | None = None) -> dict[str, Any]:
    req: _Request = info.context
    store = bulk_store(req.state)

    def refused(message: str, code: str, path: str) -> dict[str, Any]:
        return {"bulkOperation": None, "userErrors": [{"field": [path], "message": message, "code": code}]}

    try:
        document = parse(mutation)
    except GraphQLError as exc:
        return refused(f"Invalid mutation: {exc.message}", "INVALID_MUTATION", "mutation")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.MUTATION or validate(SCHEMA, document) \
            or len(operations[0].selection_set.selections) != 1:
        return refused("The mutation must be one valid mutation with one top-level field.", "INVALID_MUTATION",
                       "mutation")
    with store.lock:
        if stagedUploadPath not in store.uploads:
            return refused("The staged upload file does not exist.", "NO_SUCH_FILE", "stagedUploadPath")
        if any(op["status"] in ("CREATED", "RUNNING") for op in store.operations.values()):
            return refused("A bulk mutation operation for this app and shop is already in progress.",
                           "OPERATION_IN_PROGRESS", "mutation")
        number, store.next_id = store.next_id, store.next_id + 1
        op = {"_number": number, "id": gid("BulkOperation", number), "status": "CREATED", "type": "MUTATION",
              "errorCode": None, "createdAt": iso(req.now), "completedAt": None, "objectCount": 0,
              "rootObjectCount": 0, "fileSize": None, "partialDataUrl": None, "query": mutation}
        store.operations[number] = op
        lines = store.uploads[stagedUploadPath]
    threading.Thread(target=_run_bulk, args=(req.state, store, number, document, lines), daemon=True,
                     name=f"bulk-{number}").start()
    return {"bulkOperation": _bulk_view(op, req.base_url), "userErrors": []}


def _run_bulk(state: Any, store: BulkStore, number: int, document: DocumentNode, lines: bytes) -> None:
    op = store.operations[number]
    op["status"] = "RUNNING"
    out: list[str] = []
    try:
        for n, line in enumerate(lines.decode("utf-8").splitlines()):
            if not line.strip():
                continue
            try:
                variables = json.loads(line)
            except ValueError:
                out.append(json.dumps({"errors": [{"message": "Invalid JSON on this line."}], "__lineNumber": n}))
                continue
            with state.write_lock, state.engine.begin() as conn:
                result = execute_sync(SCHEMA, document, root_value=ROOT, context_value=_Request(conn, state=state),
                                      variable_values=variables)
                for error in result.errors or []:
                    if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
                        raise error.original_error
            answer: dict[str, Any] = {"data": result.data, "__lineNumber": n}
            if result.errors:
                answer["errors"] = [e.formatted for e in result.errors]
            out.append(json.dumps(answer))
            op["objectCount"] += 1
            op["rootObjectCount"] += 1
    except Exception:  # noqa: BLE001  # a database failure: the operation fails, as Shopify's would
        op.update(status="FAILED", errorCode="INTERNAL_SERVER_ERROR", completedAt=iso(datetime.now(UTC)))
        return
    body = ("\n".join(out) + "\n").encode() if out else b""
    store.results[number] = body
    op.update(status="COMPLETED", fileSize=len(body), completedAt=iso(datetime.now(UTC)))


def _variants_count(info: GraphQLResolveInfo, query: str | None = None, limit: int | None = None) -> dict[str, Any]:
    req: _Request = info.context
    held = (req.conn.execute(select(func.count()).select_from(db.storefront_variant_index)).scalar() or 0) \
        + (req.state.settings.storefront_variants_offset if req.state is not None else 0)
    return {"count": held, "precision": "EXACT"}


def _bulk_operation(info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:  # noqa: A002
    req: _Request = info.context
    op = bulk_store(req.state).operations.get(parse_gid(id, "BulkOperation") or -1)
    return _bulk_view(op, req.base_url) if op else None


@files_router.put("/_staged/{path:path}", include_in_schema=False)
async def staged_upload(path: str, request: Request, state: State) -> Response:
    """The staged upload target: a signed URL on Shopify (no admin token), here the sandbox itself."""
    bulk_store(state).uploads[path] = await request.body()
    return Response(status_code=200)


@files_router.get("/_bulk/{number}.jsonl", include_in_schema=False)
def bulk_result(number: int, state: State) -> Response:
    body = bulk_store(state).results.get(number)
    if body is None:
        raise HTTPException(404, "Not Found")
    return Response(body, media_type="application/jsonl")


# ------------------------------------------------------------------------------ productBundleCreate / Update

#: Shopify's documented limits of a product fixed bundle: at most 30 components (the "Add a product fixed bundle"
#: guide), a component quantity of at most 2,000 (``ProductBundleComponentInput.quantity``).
MAX_BUNDLE_COMPONENTS: Final = 30
MAX_COMPONENT_QUANTITY: Final = 2000


def _operation_view(op: dict[str, Any], conn: Connection) -> dict[str, Any]:
    product = _product_by(conn, op["product_id"]) if op.get("product_id") else None
    return {"__typename": "ProductBundleOperation", "id": gid("ProductBundleOperation", op["number"]),
            "status": op["status"], "product": product, "userErrors": list(op["errors"])}


def _component_shape_problems(components: list[dict[str, Any]], path: list[str]) -> list[dict[str, Any]]:
    """What the mutation itself refuses (its payload's ``UserError``s, before any operation is started)."""
    if not components:
        return [{"field": [*path], "message": "At least one component is required."}]
    problems = []
    if len(components) > MAX_BUNDLE_COMPONENTS:
        problems.append({"field": [*path], "message": f"A bundle can have at most {MAX_BUNDLE_COMPONENTS} "
                                                      "components."})
    for i, c in enumerate(components):
        quantity, option = c.get("quantity"), c.get("quantityOption")
        if quantity is not None and option is not None:
            problems.append({"field": [*path, str(i), "quantityOption"],
                             "message": "quantityOption can only be used if quantity isn't set."})
        if quantity is not None and not 1 <= quantity <= MAX_COMPONENT_QUANTITY:
            problems.append({"field": [*path, str(i), "quantity"],
                             "message": f"Quantity must be between 1 and {MAX_COMPONENT_QUANTITY}."})
    return problems


def _start_bundle(info: GraphQLResolveInfo, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    req: _Request = info.context
    problems = []
    if kind == "create" and not str(data.get("title") or "").strip():
        problems.append({"field": ["input", "title"], "message": "Title can't be blank."})
    if kind == "create" or data.get("components") is not None:
        problems += _component_shape_problems(list(data.get("components") or []), ["input", "components"])
    if problems:
        return {"productBundleOperation": None, "userErrors": problems}
    store = bulk_store(req.state)
    with store.lock:
        number = len(store.bundle_operations) + 1
        op = store.bundle_operations[number] = {"number": number, "kind": kind, "input": data, "status": "CREATED",
                                         "product_id": parse_gid(data.get("productId"), "Product"), "errors": []}
    return {"productBundleOperation": _operation_view(op, req.conn), "userErrors": []}


def _bundle_create(info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    return _start_bundle(info, "create", input)


def _bundle_update(info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    return _start_bundle(info, "update", input)


def _bundle_job_problems(conn: Connection, op: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The background job's refusals (``ProductBundleMutationUserError``) and, when none, the components to save."""
    data, t = op["input"], db.storefront_product
    errors: list[dict[str, Any]] = []
    if op["kind"] == "update":
        row = conn.execute(select(t.c.doc).where(t.c.id == op["product_id"])).first() if op["product_id"] else None
        if row is None:
            return [{"code": "PRODUCT_DOES_NOT_EXIST", "field": ["input", "productId"],
                     "message": "Product does not exist."}], []
    saved = []
    for i, c in enumerate(data.get("components") or []):
        where = ["input", "components", str(i)]
        number = parse_gid(c.get("productId"), "Product")
        row = conn.execute(select(t.c.doc).where(t.c.id == number)).first() if number is not None else None
        if row is None:
            errors.append({"code": "PRODUCT_DOES_NOT_EXIST", "field": [*where, "productId"],
                           "message": "Product does not exist."})
            continue
        component = dict(row.doc)
        if component.get("bundle_components"):
            errors.append({"code": "INVALID_INPUT", "field": [*where, "productId"],
                           "message": "A bundle can't be a component of another bundle."})
            continue
        if number == op["product_id"]:
            errors.append({"code": "INVALID_INPUT", "field": [*where, "productId"],
                           "message": "A bundle can't be a component of itself."})
            continue
        options = {gid("ProductOption", f"{component['id']}-{n}"): o
                   for n, o in enumerate(component.get("options") or [], start=1)}
        chosen = {s.get("componentOptionId") for s in c.get("optionSelections") or []}
        for s in c.get("optionSelections") or []:
            option = options.get(s.get("componentOptionId"))
            if option is None:
                errors.append({"code": "INVALID_INPUT", "field": [*where, "optionSelections"],
                               "message": f"Option does not exist: {s.get('componentOptionId')}"})
            elif not s.get("values") or set(s["values"]) - {str(v) for v in option.get("values") or []}:
                errors.append({"code": "INVALID_INPUT", "field": [*where, "optionSelections"],
                               "message": f"Invalid option values for {option.get('name')}: {s.get('values')}"})
        if set(options) - chosen:
            errors.append({"code": "INVALID_INPUT", "field": [*where, "optionSelections"],
                           "message": "Every option of the component product must be selected."})
        if any(len(s.get("values") or []) > 1 for s in c.get("optionSelections") or []):
            # the sandbox models single-variant bundles only (one value per option); Shopify would make a
            # consolidated option on the parent
            errors.append({"code": "INVALID_INPUT", "field": [*where, "optionSelections"],
                           "message": "The sandbox models bundles of one variant: select one value per option."})
        quantity = c.get("quantity")
        saved.append({"product_id": number, "quantity": 1 if quantity is None else quantity})
    return errors, saved


def _run_bundle_job(req: _Request, op: dict[str, Any]) -> None:
    errors, components = _bundle_job_problems(req.conn, op)
    op["status"] = "COMPLETE"
    if errors:
        op["errors"] = errors
        if op["kind"] == "create":
            op["product_id"] = None
        return
    data, t = op["input"], db.storefront_product
    if op["kind"] == "create":
        base = slugify(data["title"]) or "bundle"
        handle, n = base, 1
        while req.conn.execute(select(t.c.id).where(t.c.handle == handle)).first() is not None:
            handle, n = f"{base}-{n}", n + 1
        saved = save_product(req.conn, {"title": data["title"], "handle": handle, "status": "draft",
                                        "bundle_components": components}, None)
        op["product_id"] = saved["id"]
        return
    current = dict(req.conn.execute(select(t.c.doc).where(t.c.id == op["product_id"])).one().doc)
    change: dict[str, Any] = {}
    if data.get("title"):
        change["title"] = data["title"]
    if data.get("components") is not None:  # replaces, not adds to, the current components
        change["bundle_components"] = components
    save_product(req.conn, change, current)


def _product_operation(info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:  # noqa: A002
    req: _Request = info.context
    number = parse_gid(id, "ProductBundleOperation")
    store = bulk_store(req.state)
    op = store.bundle_operations.get(number) if number is not None else None
    if op is None:
        return None
    with req.state.write_lock, store.lock:
        if op["status"] == "CREATED":
            op["status"] = "ACTIVE"
        elif op["status"] == "ACTIVE":
            _run_bundle_job(req, op)
    return _operation_view(op, req.conn)


ROOT: Final = {"productSet": _product_set, "productDelete": _product_delete,
               "inventorySetQuantities": _set_quantities, "shop": lambda _info: {"name": "Catalog Sync sandbox"},
               "products": _products, "product": _product, "productByIdentifier": _product_by_identifier,
               "locations": _locations, "node": _node, "nodes": _nodes, "bulkOperation": _bulk_operation,
               "stagedUploadsCreate": _staged_uploads_create, "productVariantsCount": _variants_count, "bulkOperationRunMutation": _bulk_run_mutation,
               "productBundleCreate": _bundle_create, "productBundleUpdate": _bundle_update,
               "productOperation": _product_operation}


# --------------------------------------------------------------------------------------------------- endpoint


def query_cost(document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any] | None,
               data: dict[str, Any] | None = None) -> int:
    """Shopify's documented cost of ``operation``, read off the schema: scalars and enums 0, objects 1, a
    ``...Connection`` 2 plus its nodes times a node's cost, a list asked for by ``ids`` one node per id, a mutation
    field 10 plus its payload's selection. Without ``data`` the nodes are those asked for (``first``/``last``):
    the requested cost; with it, those returned: the actual cost."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    values = variables or {}

    def fields(selection_set: Any, parent: Any) -> list[tuple[FieldNode, Any]]:
        out: list[tuple[FieldNode, Any]] = []
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                out.append((node, parent))
            elif isinstance(node, InlineFragmentNode | FragmentSpreadNode):
                frag = node if isinstance(node, InlineFragmentNode) else fragments[node.name.value]
                kind = SCHEMA.get_type(frag.type_condition.name.value) if frag.type_condition else parent
                out.extend(fields(frag.selection_set, kind))
        return out

    def arg(node: FieldNode, name: str) -> Any:
        found = next((a for a in node.arguments or () if a.name.value == name), None)
        return value_from_ast_untyped(found.value, values) if found else None

    def selection(selection_set: Any, parent: Any, value: Any, actual: bool) -> int:
        total = 0
        for node, kind in fields(selection_set, parent):
            if node.name.value.startswith("__") or not isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
                continue
            child = value.get((node.alias or node.name).value) if actual and isinstance(value, dict) else None
            total += field_cost(node, kind.fields[node.name.value], child, actual)
        return total

    def field_cost(node: FieldNode, definition: Any, value: Any, actual: bool) -> int:
        named = get_named_type(definition.type)
        if node.selection_set is None or not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        if named.name.endswith("Connection"):
            inner = next(((n, k) for n, k in fields(node.selection_set, named) if n.name.value == "nodes"), None)
            node_type = get_named_type(named.fields["nodes"].type)
            if inner is None:
                return CONNECTION_COST
            if actual:
                items = (value or {}).get((inner[0].alias or inner[0].name).value) or []
                return CONNECTION_COST + sum(1 + selection(inner[0].selection_set, node_type, i, True) for i in items)
            size = arg(node, "first") or arg(node, "last") or 0
            return CONNECTION_COST + int(size) * (1 + selection(inner[0].selection_set, node_type, None, False))
        if is_list_type(get_nullable_type(definition.type)):
            items = value if actual else [None] * len(arg(node, "ids") or [None])
            return sum(1 + selection(node.selection_set, named, i, actual) for i in items or [])
        return 1 + selection(node.selection_set, named, value, actual)

    actual = data is not None
    if operation.operation is OperationType.MUTATION:
        root = SCHEMA.mutation_type
        assert root is not None
        return sum(MUTATION_COST + selection(n.selection_set, get_named_type(root.fields[n.name.value].type),
                                             (data or {}).get((n.alias or n.name).value), actual)
                   for n, _ in fields(operation.selection_set, root))
    return selection(operation.selection_set, SCHEMA.query_type, data, actual)


@router.post("/graphql.json", summary="GraphQL Admin API: productSet and inventorySetQuantities")
def graphql_endpoint(
    body: GraphQLRequest,
    http: Request,
    response: Response,
    state: State,
    token: Annotated[str | None, Depends(token_header)],
) -> dict[str, Any]:
    token = check_token(token, state)
    try:
        document = parse(body.query)
    except GraphQLError as exc:
        return {"errors": [exc.formatted]}
    problems = validate(SCHEMA, document)
    if problems:
        return {"errors": [p.formatted for p in problems]}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (body.operationName is None or (d.name and d.name.value == body.operationName))]
    if len(operations) != 1:
        return {"errors": [_error("Select exactly one operation (operationName).", "BAD_REQUEST")]}
    cost = query_cost(document, operations[0], body.variables)
    if cost > MAX_QUERY_COST:
        return {"errors": [_error(f"Query cost is {cost}, which exceeds the single query max cost limit "
                                  f"({MAX_QUERY_COST}).", "MAX_COST_EXCEEDED", cost=cost,
                                  maxCost=MAX_QUERY_COST)]}
    admitted, throttle = state.storefront_graphql_call(token, cost)
    if not admitted:
        return {"errors": [_error("Throttled", "THROTTLED")],
                "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": None,
                                        "throttleStatus": throttle}}}
    mutation = operations[0].operation is OperationType.MUTATION
    with state.write_lock if mutation else contextlib.nullcontext(), state.engine.begin() as conn:
        request = _Request(conn, state=state, base_url=str(http.base_url).rstrip("/"))
        result = execute_sync(SCHEMA, document, root_value=ROOT, context_value=request,
                              variable_values=body.variables, operation_name=body.operationName)
        for error in result.errors or []:
            if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
                raise error.original_error  # a bug or a database failure: nothing of this request is kept (500)
    actual = min(cost, query_cost(document, operations[0], body.variables, result.data or {}))
    # Shopify admits on the requested cost and keeps only the actual one: the difference is refunded
    throttle = state.storefront_graphql_refund(token, cost - actual)
    extensions = {"cost": {"requestedQueryCost": cost, "actualQueryCost": actual, "throttleStatus": throttle}}
    if request.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    answer: dict[str, Any] = {"data": result.data, "extensions": extensions}
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
    return answer
