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

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, cast

from fastapi import APIRouter, Depends, Response
from graphql import (
    GraphQLDirective,
    GraphQLError,
    GraphQLResolveInfo,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from graphql.execution.values import get_directive_values
from pydantic import BaseModel
from sqlalchemy import Connection, select
from starlette.exceptions import HTTPException

from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, iso
from catalog_sync_sandbox.storefront import check_token, save_product, token_header

GRAPHQL_VERSION: Final = "2026-04"
MAX_QUERY_COST: Final = 1000
MUTATION_COST: Final = 10
MAX_QUANTITIES: Final = 250
#: REST weight units and their GraphQL names.
WEIGHT_UNITS: Final = {"g": "GRAMS", "kg": "KILOGRAMS", "oz": "OUNCES", "lb": "POUNDS"}
#: REST product fields (as ``save_product`` names them) and their ``ProductSetInput`` names.
PRODUCT_FIELDS: Final = {"title": "title", "body_html": "descriptionHtml", "vendor": "vendor",
                         "product_type": "productType", "handle": "handle", "status": "status", "tags": "tags",
                         "options": "productOptions", "variants": "variants", "images": "files",
                         "metafields": "metafields"}

SCHEMA_SDL: Final = """
directive @idempotent(key: String!) on FIELD

scalar DateTime
scalar Decimal
scalar URL

enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum WeightUnit { GRAMS KILOGRAMS OUNCES POUNDS }
enum FileContentType { EXTERNAL_VIDEO FILE IMAGE MODEL_3D VIDEO }

input ProductSetIdentifiers { id: ID, handle: String }
input OptionValueSetInput { name: String }
input OptionSetInput { name: String, position: Int, values: [OptionValueSetInput!] }
input VariantOptionValueInput { optionName: String, name: String }
input WeightInput { value: Float!, unit: WeightUnit! }
input InventoryItemMeasurementInput { weight: WeightInput }
input InventoryItemInput { sku: String, tracked: Boolean, measurement: InventoryItemMeasurementInput }
input ProductVariantSetInput {
  id: ID, optionValues: [VariantOptionValueInput!]!, price: Decimal, compareAtPrice: Decimal, barcode: String,
  position: Int, inventoryItem: InventoryItemInput
}
input FileSetInput { originalSource: String, alt: String, contentType: FileContentType, filename: String }
input MetafieldInput { namespace: String, key: String!, value: String!, type: String }
input ProductSetInput {
  title: String, descriptionHtml: String, handle: String, vendor: String, productType: String,
  status: ProductStatus, tags: [String!], productOptions: [OptionSetInput!], variants: [ProductVariantSetInput!],
  files: [FileSetInput!], metafields: [MetafieldInput!]
}
input InventoryQuantityInput { inventoryItemId: ID!, locationId: ID!, quantity: Int!, compareQuantity: Int }
input InventorySetQuantitiesInput {
  name: String!, reason: String!, referenceDocumentUri: String, ignoreCompareQuantity: Boolean,
  quantities: [InventoryQuantityInput!]!
}

type InventoryItem { id: ID!, sku: String }
type Location { id: ID! }
type ProductVariant {
  id: ID!, sku: String, price: Decimal, barcode: String, position: Int, inventoryItem: InventoryItem!
}
type ProductVariantConnection { nodes: [ProductVariant!]! }
type Image { id: ID!, url: URL!, altText: String }
type ImageConnection { nodes: [Image!]! }
type Product {
  id: ID!, handle: String!, title: String!, status: ProductStatus!, updatedAt: DateTime!,
  variants(first: Int): ProductVariantConnection!, images(first: Int): ImageConnection!
}
type ProductSetUserError { field: [String!], message: String!, code: String }
type ProductSetPayload { product: Product, userErrors: [ProductSetUserError!]! }
type InventoryChange {
  name: String!, delta: Int!, quantityAfterChange: Int, item: InventoryItem, location: Location
}
type InventoryAdjustmentGroup {
  createdAt: DateTime!, reason: String!, referenceDocumentUri: String, changes: [InventoryChange!]!
}
type InventorySetQuantitiesUserError { field: [String!], message: String!, code: String }
type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup, userErrors: [InventorySetQuantitiesUserError!]!
}
type Shop { name: String! }
type Query { shop: Shop! }
type Mutation {
  productSet(input: ProductSetInput!, identifier: ProductSetIdentifiers, synchronous: Boolean = true): ProductSetPayload
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
}
"""
SCHEMA: Final = build_schema(SCHEMA_SDL)
IDEMPOTENT: Final = cast(GraphQLDirective, SCHEMA.get_directive("idempotent"))

router = APIRouter(prefix=f"/storefront/admin/api/{GRAPHQL_VERSION}", tags=["storefront"])


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
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


# --------------------------------------------------------------------------------------------------- productSet


def _user_error(path: list[str], message: str, code: str = "INVALID") -> dict[str, Any]:
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
            for key, value in (("sku", item.get("sku")), ("price", v.get("price")), ("barcode", v.get("barcode"))):
                if value is not None:
                    variant[key] = value
            weight = (item.get("measurement") or {}).get("weight")
            if weight:
                unit = {g: r for r, g in WEIGHT_UNITS.items()}[weight["unit"]]
                variant.update(weight=weight["value"], weight_unit=unit)
            match = by_options.get(tuple(variant.get(f"option{i}") for i in (1, 2, 3))) or by_sku.get(variant.get("sku"))
            if match:
                variant["id"], variant["inventory_item_id"] = match["id"], match["inventory_item_id"]
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
        problems.append(_user_error(["input", "productOptions"], "A product can have at most 3 options."))
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
            problems.append(_user_error(["input", "files", str(i), "originalSource"], "can't be blank", "BLANK"))
    return problems


def _graphql_product(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": gid("Product", doc["id"]), "handle": doc["handle"], "title": doc.get("title") or "",
        "status": str(doc.get("status") or "active").upper(), "updatedAt": doc.get("updated_at"),
        "variants": {"nodes": [{
            "id": gid("ProductVariant", v["id"]), "sku": v.get("sku"), "price": v.get("price"),
            "barcode": v.get("barcode"), "position": v.get("position"),
            "inventoryItem": {"id": gid("InventoryItem", v["inventory_item_id"]), "sku": v.get("sku")},
        } for v in doc.get("variants") or []]},
        "images": {"nodes": [{"id": gid("ProductImage", i["id"]), "url": i.get("src"), "altText": i.get("alt")}
                             for i in doc.get("images") or []]},
    }


def _product_set(info: GraphQLResolveInfo, input: dict[str, Any],  # noqa: A002  # the schema's name
                 identifier: dict[str, Any] | None = None, synchronous: bool = True) -> dict[str, Any]:
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
    try:
        saved = save_product(req.conn, doc, current)
    except HTTPException as exc:  # the REST validation's 422, as GraphQL user errors on the input's fields
        errors: Any = exc.detail.get("errors") if isinstance(exc.detail, dict) else exc.detail
        if not isinstance(errors, dict):
            errors = {"base": [str(errors)]}
        return {"product": None, "userErrors": [
            _user_error(["input", PRODUCT_FIELDS.get(name, name)], "; ".join(map(str, messages)))
            for name, messages in errors.items()]}
    return {"product": _graphql_product(saved), "userErrors": []}


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
        errors.append(_user_error(["input", "quantities"], f"At most {MAX_QUANTITIES} quantities per call.",
                                  "INVALID_QUANTITIES_LENGTH"))
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
            errors.append(_user_error([*path, "quantity"], "On-hand quantity cannot be negative.", "INVALID_QUANTITY"))
        elif not data.get("ignoreCompareQuantity") and q.get("compareQuantity") != levels.get((item, location), 0):
            errors.append(_user_error([*path, "compareQuantity"], "The compareQuantity argument no longer matches "
                                      "the persisted quantity.", "COMPARE_QUANTITY_STALE"))
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
    group = {"createdAt": iso(req.now), "reason": data.get("reason"),
             "referenceDocumentUri": data.get("referenceDocumentUri"), "changes": changes}
    return {"inventoryAdjustmentGroup": group if changes else None, "userErrors": []}


ROOT: Final = {"productSet": _product_set, "inventorySetQuantities": _set_quantities,
               "shop": lambda _info: {"name": "Catalog Sync sandbox"}}


# --------------------------------------------------------------------------------------------------- endpoint


def _cost(operation: OperationDefinitionNode) -> int:
    fields = len(operation.selection_set.selections)
    return MUTATION_COST * fields if operation.operation is OperationType.MUTATION else fields


@router.post("/graphql.json", summary="GraphQL Admin API: productSet and inventorySetQuantities")
def graphql_endpoint(
    body: GraphQLRequest,
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
    cost = _cost(operations[0])
    if cost > MAX_QUERY_COST:
        return {"errors": [_error(f"Query cost is {cost}, which exceeds the single query max cost limit "
                                  f"({MAX_QUERY_COST}).", "MAX_COST_EXCEEDED", cost=cost,
                                  maxCost=MAX_QUERY_COST)]}
    admitted, throttle = state.storefront_graphql_call(token, cost)
    extensions = {"cost": {"requestedQueryCost": cost, "actualQueryCost": cost if admitted else None,
                           "throttleStatus": throttle}}
    if not admitted:
        return {"errors": [_error("Throttled", "THROTTLED")], "extensions": extensions}
    with state.write_lock, state.engine.begin() as conn:
        request = _Request(conn)
        result = execute_sync(SCHEMA, document, root_value=ROOT, context_value=request,
                              variable_values=body.variables, operation_name=body.operationName)
        for error in result.errors or []:
            if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
                raise error.original_error  # a bug or a database failure: nothing of this request is kept (500)
    if request.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    answer: dict[str, Any] = {"data": result.data, "extensions": extensions}
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
    return answer
