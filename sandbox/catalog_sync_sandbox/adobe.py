"""Adobe Commerce (Magento 2.4) admin REST API, the part a catalog channel uses, under ``/adobe_commerce/rest``.

Shapes are those of Adobe's published admin schema (``../shared/specs/adobe-commerce-2.4.9-admin-rest.json``);
behaviour follows Adobe's REST documentation:

* integration token auth, ``Authorization: Bearer <access token>`` (developer.adobe.com/commerce/webapi/
  get-started/authentication/gs-authentication-token/); a missing or wrong token is a 401 with Magento's error body
  ``{"message": "The consumer isn't authorized to access %resources.", "parameters": {"resources": ...}}``;
* store scope in the path, ``/rest/<store_code>/V1/...`` (``/rest/V1/...`` is the default store view, ``all`` the
  admin scope); an unknown store code is left in the path by Magento and so matches no route (404);
* products by SKU (``POST /V1/products``, ``PUT/GET /V1/products/{sku}``), configurable children
  (``POST /V1/configurable-products/{sku}/child``), attribute options, media gallery entries with base64 content
  (developer.adobe.com/commerce/webapi/rest/tutorials/image/new/), their update and removal
  (``PUT`` and ``DELETE /V1/products/{sku}/media/{entryId}``), store views and store configs;
* base prices, ``POST /V1/products/base-prices`` (``BasePriceStorage``): the valid items are saved and the failed
  ones answered as a list of ``{"message", "parameters"}`` (an unknown SKU or one without a price of its own, a
  negative price, an unknown store);
* Inventory (MSI) source items, ``POST /V1/inventory/source-items`` and ``source-items-delete``
  (developer.adobe.com/commerce/webapi/rest/inventory/manage-source-items/): the whole request is validated and
  refused with ``"Validation Failed"`` and one error per bad item;
* asynchronous bulk writes (developer.adobe.com/commerce/webapi/rest/use-rest/asynchronous-web-endpoints/ and
  .../tutorials/bulk-configurable-product/): ``POST /rest/<store>/async/bulk/V1/products``,
  ``PUT .../async/bulk/V1/products/bySku``, ``POST .../async/bulk/V1/configurable-products/bySku/child`` take an
  array of operations and answer 202 with ``bulk_uuid`` and one ``request_items`` line per operation (accepted, or
  rejected when its parameters cannot be read); bulk status (developer.adobe.com/commerce/webapi/rest/use-rest/
  operation-status-endpoints/): ``GET /V1/bulk/{uuid}/status`` and ``/detailed-status``, operation status 1
  complete, 2 failed retriably, 3 failed not retriably, 4 open, 5 rejected.

Magento runs accepted operations in a message-queue consumer. The sandbox's consumer is deterministic: a bulk's
operations stay open (4) for the first :data:`CONSUMER_LAG_READS` status reads and are all run, in id order, on
the next read; each then holds status 1 with ``Service execution success ...`` or 3 with the validation message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State
from catalog_sync_sandbox.state import SandboxState

PREFIX: Final = "/adobe_commerce/rest"
router = APIRouter(prefix=PREFIX, tags=["adobe_commerce"])

#: Operations stay open for this many status reads before the consumer runs them.
CONSUMER_LAG_READS: Final = 1

#: Store views as ``GET /V1/store/storeViews`` lists them (the admin store included, as Magento does), with the
#: locale each store config holds.
STORES: Final[tuple[dict[str, Any], ...]] = (
    {"id": 0, "code": "admin", "name": "Admin", "website_id": 0, "store_group_id": 0, "is_active": 1},
    {"id": 1, "code": "default", "name": "Default Store View", "website_id": 1, "store_group_id": 1, "is_active": 1},
    {"id": 2, "code": "fr", "name": "French Store View", "website_id": 1, "store_group_id": 1, "is_active": 1},
    {"id": 3, "code": "de", "name": "German Store View", "website_id": 1, "store_group_id": 1, "is_active": 1},
)
LOCALE_OF_STORE: Final[dict[str, str]] = {"admin": "en_US", "default": "en_US", "fr": "fr_FR", "de": "de_DE"}
STORE_CODES: Final[frozenset[str]] = frozenset(s["code"] for s in STORES)
#: Inventory sources (MSI): the default source plus one per ERP location of the demo.
SOURCES: Final[frozenset[str]] = frozenset({"default", "dc_east", "dc_west", "store_nyc"})
ATTRIBUTE_SETS: Final[frozenset[int]] = frozenset({4})  # "Default"
PRODUCT_TYPES: Final[frozenset[str]] = frozenset({"simple", "virtual", "configurable"})
#: Global select attributes usable as configurable options, with their options (ids as Luma's sample data has them).
_COLORS = ("Black", "Blue", "Brown", "Gray", "Green", "Lavender", "Multi", "Orange", "Purple", "Red", "White",
           "Yellow")
_SIZES = ("XS", "S", "M", "L", "XL", "28", "29", "30", "31", "32", "33", "34", "36")
ATTRIBUTES: Final[dict[str, dict[str, Any]]] = {
    "color": {"attribute_id": 93, "options": {label: 49 + i for i, label in enumerate(_COLORS)}},
    "size": {"attribute_id": 144, "options": {label: 166 + i for i, label in enumerate(_SIZES)}},
}
ATTRIBUTE_BY_ID: Final[dict[int, str]] = {a["attribute_id"]: code for code, a in ATTRIBUTES.items()}
#: Attributes a store view may override (store scope); everything else is global or website scope.
STORE_SCOPED: Final[frozenset[str]] = frozenset({
    "name", "description", "short_description", "meta_title", "meta_description", "meta_keyword", "url_key",
})
IMAGE_ROLES: Final[frozenset[str]] = frozenset({"image", "small_image", "thumbnail", "swatch_image"})
IMAGE_MIME: Final[frozenset[str]] = frozenset({"image/jpeg", "image/png", "image/gif"})

NOT_FOUND: Final = "The product that was requested doesn't exist. Verify the product and try again."
NO_IMAGES: Final = "There are no images associated with this product."
NO_SUCH_IMAGE: Final = "No image with the provided ID was found. Verify the ID and try again."
EMPTY: Final = 'The "%1" attribute value is empty. Set the attribute and try again.'
RESOURCES: Final[dict[str, str]] = {
    "products": "Magento_Catalog::products",
    "stores": "Magento_Backend::store",
    "inventory": "Magento_InventoryApi::source_edit",
    "bulk": "Magento_Logging::system_magento_logging_bulk_operations",
}
TOPIC_SAVE_POST: Final = "async.magento.catalog.api.productrepositoryinterface.save.post"
TOPIC_SAVE_PUT: Final = "async.magento.catalog.api.productrepositoryinterface.save.put"
TOPIC_ADD_CHILD: Final = "async.magento.configurableproduct.api.linkmanagementinterface.addchild.post"
SUCCESS: Final[dict[str, str]] = {
    TOPIC_SAVE_POST: "Service execution success Magento\\Catalog\\Model\\ProductRepository\\Interceptor::save",
    TOPIC_SAVE_PUT: "Service execution success Magento\\Catalog\\Model\\ProductRepository\\Interceptor::save",
    TOPIC_ADD_CHILD: "Service execution success "
                     "Magento\\ConfigurableProduct\\Model\\LinkManagement\\Interceptor::addChild",
}


class MagentoError(Exception):
    """A refusal in Magento's error shape: ``message`` with ``%name`` or ``%1`` placeholders and their values."""

    def __init__(self, status: int, message: str, parameters: dict[str, Any] | list[Any] | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameters = parameters
        self.errors = errors

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        if self.parameters is not None:
            out["parameters"] = self.parameters
        return out

    def rendered(self) -> str:
        """The message with its placeholders filled in, as the bulk status's ``result_message`` carries it."""
        text = self.message
        if isinstance(self.parameters, dict):
            for name, value in self.parameters.items():
                text = text.replace(f"%{name}", str(value))
        elif isinstance(self.parameters, list):
            for i, value in enumerate(self.parameters, 1):
                text = text.replace(f"%{i}", str(value))
        return text

    def http(self) -> HTTPException:
        return HTTPException(self.status, self.body())


def _required(field: str) -> MagentoError:
    return MagentoError(400, '"%fieldName" is required. Enter and try again.', {"fieldName": field})


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------------ scope and auth
def _authorize(request: Request, state: SandboxState, resource: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = state.credentials["adobe_commerce"]["access_token"]
    if scheme.lower() != "bearer" or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise MagentoError(401, "The consumer isn't authorized to access %resources.",
                           {"resources": RESOURCES[resource]}).http()


def _store(request: Request) -> str:
    """The store code of the path: ``default`` when absent, ``all`` for the admin scope; unknown ones match no
    route, as in Magento (its path processor only strips a known store code)."""
    code = str(request.path_params.get("store_code", "default"))
    if code != "all" and code not in STORE_CODES:
        raise HTTPException(404, {"message": "Request does not match any route."})
    return code


def _route(method: str, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``path`` both bare (``/rest/V1/...``) and under a store code (``/rest/<store_code>/V1/...``)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, fn, methods=[method], **kwargs)
        router.add_api_route("/{store_code}" + path, fn, methods=[method], include_in_schema=False, **kwargs)
        return fn

    return register


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise MagentoError(400, "Decoding error: %1", ["Syntax error"]).http() from None


# --------------------------------------------------------------------------------------------------- catalog model
def _custom(product: dict[str, Any]) -> dict[str, Any]:
    """custom_attributes as a mapping (Magento's list of {attribute_code, value})."""
    out: dict[str, Any] = {}
    for item in product.get("custom_attributes") or []:
        if not isinstance(item, dict) or "attribute_code" not in item or "value" not in item:
            raise MagentoError(400, '"%fieldName" is required. Enter and try again.', {"fieldName": "attribute_code"})
        out[str(item["attribute_code"])] = item["value"]
    return out


def _check_types(product: Any) -> dict[str, Any]:
    """The checks Magento's parameter deserializer makes (before any business rule): an object of known types."""
    if not isinstance(product, dict):
        raise _required("product")
    numbers = {"price": (int, float), "weight": (int, float), "attribute_set_id": (int,), "status": (int,),
               "visibility": (int,)}
    for name, types in numbers.items():
        value = product.get(name)
        if value is None:
            continue
        if isinstance(value, str):  # Magento casts numeric strings
            try:
                value = float(value) if float in types else int(value)
            except ValueError:
                raise MagentoError(400, 'The "%value" value\'s type is invalid. The "%type" type was expected. '
                                   "Verify and try again.",
                                   {"value": product[name], "type": "float" if float in types else "int"}) from None
            product[name] = value
        if isinstance(value, bool) or not isinstance(value, types):
            raise MagentoError(400, 'The "%value" value\'s type is invalid. The "%type" type was expected. '
                               "Verify and try again.", {"value": value, "type": types[0].__name__})
    if "sku" in product and not isinstance(product["sku"], str):
        raise MagentoError(400, 'The "%value" value\'s type is invalid. The "%type" type was expected. '
                           "Verify and try again.", {"value": product["sku"], "type": "string"})
    return product


def _load(conn: Any, sku: str) -> dict[str, Any] | None:
    row = conn.execute(select(db.adobe_product).where(db.adobe_product.c.sku == sku)).mappings().first()
    return dict(row) if row else None


def save_product(conn: Any, state: SandboxState, product: Any, store: str, sku_in_path: str | None = None) -> dict:
    """ProductRepository::save: create or update by SKU at ``store`` scope; returns the product as GET shows it."""
    product = _check_types(product)
    if sku_in_path is not None:
        product.setdefault("sku", sku_in_path)
    sku = str(product.get("sku") or "").strip()
    if not sku:
        raise MagentoError(400, EMPTY, ["sku"])
    if len(sku) > 64:
        raise MagentoError(400, "SKU length should be %1 characters maximum.", [64])
    custom = _custom(product)
    existing = _load(conn, sku)
    now = _now()
    scope_values = store not in ("all", "admin") and existing is not None
    if existing is None:
        type_id = product.get("type_id") or "simple"
        if type_id not in PRODUCT_TYPES:
            raise MagentoError(400, 'Invalid value of "%value" provided for the %fieldName field.',
                               {"value": type_id, "fieldName": "type_id"})
        for field, label in (("name", "Product Name"), ("attribute_set_id", "Attribute Set")):
            if product.get(field) in (None, ""):
                raise MagentoError(400, EMPTY, [label])
        if type_id != "configurable" and product.get("price") is None:
            raise MagentoError(400, EMPTY, ["Price"])
    else:
        type_id = product.get("type_id") or existing["type_id"]
        if type_id != existing["type_id"] and type_id not in PRODUCT_TYPES:
            raise MagentoError(400, 'Invalid value of "%value" provided for the %fieldName field.',
                               {"value": type_id, "fieldName": "type_id"})
    set_id = product.get("attribute_set_id")
    if set_id is not None and set_id not in ATTRIBUTE_SETS:
        raise MagentoError(400, 'The attribute set with "%1" ID doesn\'t exist.', [set_id])
    for code, value in custom.items():
        if code in ATTRIBUTES and str(value) not in {str(v) for v in ATTRIBUTES[code]["options"].values()}:
            raise MagentoError(400, 'Invalid value of "%value" provided for the %fieldName field.',
                               {"value": value, "fieldName": code})
    ext = product.get("extension_attributes") or {}
    options = ext.get("configurable_product_options")
    links = ext.get("configurable_product_links")
    if (options or links) and type_id != "configurable":
        raise MagentoError(400, "The product with SKU \"%1\" isn't configurable.", [sku])
    if options is not None:
        options = _check_options(options)
    data = dict(existing["data"]) if existing else {}
    store_values = {k: dict(v) for k, v in (existing["store_values"] if existing else {}).items()}
    top = {k: v for k, v in product.items() if k not in ("custom_attributes", "extension_attributes",
                                                         "media_gallery_entries", "id", "created_at", "updated_at")}
    if scope_values:
        # a store-view save writes store-scoped values for that view and global values everywhere (Magento's
        # well-known behaviour: only store-scoped attributes can differ per view)
        view = store_values.setdefault(store, {})
        for k, v in {**top, **custom}.items():
            if k in STORE_SCOPED:
                view[k] = v
            elif k != "sku":
                _put(data, k, v)
    else:
        for k, v in {**top, **custom}.items():
            _put(data, k, v)
    data["sku"] = sku
    data["type_id"] = type_id
    if "website_ids" in ext:
        data["website_ids"] = [int(w) for w in ext["website_ids"]]
    children = list(existing["children"] or []) if existing else []
    if links is not None:
        by_id = {r.entity_id: r for r in conn.execute(select(db.adobe_product.c.entity_id, db.adobe_product.c.sku,
                                                             db.adobe_product.c.data, db.adobe_product.c.type_id))}
        wanted = []
        for link in links:
            row = by_id.get(int(link))
            if row is None or row.type_id == "configurable":
                raise MagentoError(400, 'The product with "%1" ID doesn\'t exist or isn\'t a simple product.',
                                   [link])
            wanted.append(row.sku)
        children = wanted
    stored_options = options if options is not None else (existing["options"] if existing else None)
    _check_children(conn, stored_options, children)
    values = {"type_id": type_id, "data": data, "store_values": store_values, "options": stored_options,
              "children": children, "updated_at": now}
    if existing is None:
        (entity_id,) = db.next_ids(conn, "adobe_product")
        conn.execute(db.adobe_product.insert().values(sku=sku, entity_id=entity_id, created_at=now, **values))
    else:
        conn.execute(db.adobe_product.update().where(db.adobe_product.c.sku == sku).values(**values))
    return render_product(conn, sku, store)


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        data.pop(key, None)
    else:
        data[key] = value


def _check_options(options: Any) -> list[dict[str, Any]]:
    if not isinstance(options, list):
        raise _required("configurable_product_options")
    out = []
    for position, option in enumerate(options):
        try:
            attribute_id = int(option.get("attribute_id"))
        except (TypeError, ValueError, AttributeError):
            raise _required("attribute_id") from None
        code = ATTRIBUTE_BY_ID.get(attribute_id)
        if code is None:
            raise MagentoError(400, 'Provided attribute can not be used with configurable product.')
        values = option.get("values") or []
        if not values:
            raise MagentoError(400, 'Option values are not specified.')
        known = set(ATTRIBUTES[code]["options"].values())
        for value in values:
            if not isinstance(value, dict) or value.get("value_index") not in known:
                raise MagentoError(400, 'Invalid value of "%value" provided for the %fieldName field.',
                                   {"value": (value or {}).get("value_index") if isinstance(value, dict) else value,
                                    "fieldName": "value_index"})
        out.append({"id": 300 + attribute_id, "attribute_id": str(attribute_id),
                    "label": option.get("label") or code.title(), "position": option.get("position", position),
                    "values": [{"value_index": v["value_index"]} for v in values]})
    return out


def _check_children(conn: Any, options: list[dict[str, Any]] | None, children: list[str]) -> None:
    if not children:
        return
    codes = [ATTRIBUTE_BY_ID[int(o["attribute_id"])] for o in options or []]
    for child in children:
        row = _load(conn, child)
        if row is None:
            raise MagentoError(404, NOT_FOUND)
        for code in codes:
            if row["data"].get(code) in (None, ""):
                raise MagentoError(400, 'The child product doesn\'t have the "%1" attribute value. Verify the value '
                                   "and try again.", [code])


def add_child(conn: Any, parent_sku: str, child_sku: Any) -> bool:
    """LinkManagement::addChild."""
    if not isinstance(child_sku, str) or not child_sku:
        raise _required("childSku")
    parent = _load(conn, parent_sku)
    child = _load(conn, child_sku)
    if parent is None or child is None:
        raise MagentoError(404, NOT_FOUND)
    if parent["type_id"] != "configurable":
        raise MagentoError(400, "The product with SKU \"%1\" isn't configurable.", [parent_sku])
    children = list(parent["children"] or [])
    if child_sku in children:
        raise MagentoError(400, "The product is already attached.")
    _check_children(conn, parent["options"], [child_sku])
    conn.execute(db.adobe_product.update().where(db.adobe_product.c.sku == parent_sku)
                 .values(children=[*children, child_sku], updated_at=_now()))
    return True


def render_product(conn: Any, sku: str, store: str) -> dict[str, Any]:
    row = _load(conn, sku)
    if row is None:
        raise MagentoError(404, NOT_FOUND)
    data = dict(row["data"])
    if store not in ("all", "admin"):
        data.update(row["store_values"].get(store, {}))
    top_fields = ("sku", "name", "attribute_set_id", "price", "status", "visibility", "type_id", "weight")
    product: dict[str, Any] = {"id": row["entity_id"], **{k: data[k] for k in top_fields if k in data},
                               "created_at": _magento_time(row["created_at"]),
                               "updated_at": _magento_time(row["updated_at"])}
    ext: dict[str, Any] = {"website_ids": data.get("website_ids", [1])}
    if row["type_id"] == "configurable":
        ids = {r.sku: r.entity_id for r in conn.execute(select(db.adobe_product.c.sku, db.adobe_product.c.entity_id)
                                                        .where(db.adobe_product.c.sku.in_(row["children"] or [])))}
        ext["configurable_product_options"] = [{**o, "product_id": row["entity_id"]} for o in row["options"] or []]
        ext["configurable_product_links"] = [ids[c] for c in row["children"] or [] if c in ids]
    product["extension_attributes"] = ext
    product["product_links"] = []
    product["options"] = []
    product["media_gallery_entries"] = [
        r.entry for r in conn.execute(select(db.adobe_media.c.entry).where(db.adobe_media.c.sku == sku)
                                      .order_by(db.adobe_media.c.id))]
    product["tier_prices"] = []
    product["custom_attributes"] = [{"attribute_code": k, "value": str(v)} for k, v in data.items()
                                    if k not in top_fields and k != "website_ids"]
    return product


def _magento_time(value: datetime | None) -> str:
    value = value or _now()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------------------------- routes: products
@_route("GET", "/V1/store/storeViews", summary="Retrieve list of all stores")
def store_views(request: Request, state: State) -> list[dict[str, Any]]:
    _store(request)
    _authorize(request, state, "stores")
    return [dict(s) for s in STORES]


@_route("GET", "/V1/store/storeConfigs", summary="Store configs (locale, currency) of every store view")
def store_configs(request: Request, state: State) -> list[dict[str, Any]]:
    _store(request)
    _authorize(request, state, "stores")
    base = "http://adobe-commerce.sandbox.invalid/"
    return [{"id": s["id"], "code": s["code"], "website_id": s["website_id"], "locale": LOCALE_OF_STORE[s["code"]],
             "base_currency_code": "USD", "default_display_currency_code": "USD", "timezone": "UTC",
             "weight_unit": "lbs", "base_url": base, "base_link_url": base, "base_static_url": base + "static/",
             "base_media_url": base + "media/", "secure_base_url": base, "secure_base_link_url": base,
             "secure_base_static_url": base + "static/", "secure_base_media_url": base + "media/"}
            for s in STORES if s["id"]]


def _attribute(code: str) -> dict[str, Any]:
    attribute = ATTRIBUTES.get(code)
    if attribute is None:
        raise MagentoError(404, 'The attribute with a "%1" attributeCode doesn\'t exist. Verify the attribute and '
                           "try again.", [code]).http()
    return attribute


def _options(attribute: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"label": " ", "value": ""}] + [{"label": label, "value": str(v)}
                                            for label, v in attribute["options"].items()]


@_route("GET", "/V1/products/attributes/{attributeCode}", summary="A product attribute, its options included")
def attribute(attributeCode: str, request: Request, state: State) -> dict[str, Any]:  # noqa: N803
    _store(request)
    _authorize(request, state, "products")
    found = _attribute(attributeCode)
    return {"attribute_id": found["attribute_id"], "attribute_code": attributeCode, "frontend_input": "select",
            "entity_type_id": "4", "is_required": False, "scope": "global", "is_user_defined": True,
            "default_frontend_label": attributeCode.title(), "frontend_labels": [], "backend_type": "int",
            "options": _options(found)}


@_route("GET", "/V1/products/attributes/{attributeCode}/options", summary="Options of a select attribute")
def attribute_options(attributeCode: str, request: Request, state: State) -> list[dict[str, Any]]:  # noqa: N803
    _store(request)
    _authorize(request, state, "products")
    return _options(_attribute(attributeCode))


@_route("POST", "/V1/products", summary="Create product")
async def create_product(request: Request, state: State) -> Any:
    store = _store(request)
    _authorize(request, state, "products")
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("product"), dict):
        raise _required("product").http()
    try:
        with state.write_lock, state.engine.begin() as conn:
            return save_product(conn, state, body["product"], store)
    except MagentoError as exc:
        raise exc.http() from None


@_route("PUT", "/V1/products/{sku}", summary="Create or update a product by SKU")
async def put_product(sku: str, request: Request, state: State) -> Any:
    store = _store(request)
    _authorize(request, state, "products")
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("product"), dict):
        raise _required("product").http()
    if body["product"].get("sku") not in (None, sku):
        raise MagentoError(400, "The sku in the URL and the body differ.").http()
    try:
        with state.write_lock, state.engine.begin() as conn:
            return save_product(conn, state, body["product"], store, sku_in_path=sku)
    except MagentoError as exc:
        raise exc.http() from None


#: ``searchCriteria`` query keys the product list reads (the names of ``GET /V1/products`` in the schema, and the
#: ``filter_groups``/``sort_orders`` spelling Magento's deserializer accepts too).
_CRITERIA = re.compile(r"^searchCriteria(?:\[(filterGroups|filter_groups)\]\[(\d+)\]\[filters\]\[(\d+)\]"
                       r"\[(field|value|conditionType|condition_type)\]|\[(sortOrders|sort_orders)\]\[(\d+)\]"
                       r"\[(field|direction)\]|\[(pageSize|currentPage)\])$")
#: Fields the sandbox's product list can filter and sort by (Magento takes any attribute; see docs/sandbox-api.md).
_LIST_FIELDS: Final[frozenset[str]] = frozenset({"sku", "entity_id"})


def _int_param(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MagentoError(400, 'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and '
                           "try again.", {"value": value, "type": "int"}) from None


def _search_criteria(request: Request) -> dict[str, Any]:
    """``searchCriteria`` from the query string as Magento's deserializer reads it: the parameter itself is
    required (a bare ``GET /V1/products`` is refused), page numbers are integers, filters in one group are ORed."""
    present = [k for k in request.query_params if k.startswith("searchCriteria")]
    if not present:
        raise _required("searchCriteria")
    groups: dict[int, dict[int, dict[str, str]]] = {}
    orders: dict[int, dict[str, str]] = {}
    page: dict[str, int] = {}
    for key in present:
        value = request.query_params[key]
        m = _CRITERIA.match(key)
        if m is None:
            if key == "searchCriteria" and value == "":
                continue  # ?searchCriteria= : every product, Magento's documented "all" form
            raise MagentoError(400, "sandbox: %1 is not a search criteria parameter", [key])
        if m.group(1):
            field = {"condition_type": "conditionType"}.get(m.group(4), m.group(4))
            groups.setdefault(int(m.group(2)), {}).setdefault(int(m.group(3)), {})[field] = value
        elif m.group(5):
            orders.setdefault(int(m.group(6)), {})[m.group(7)] = value
        else:
            page[m.group(8)] = _int_param(m.group(8), value)
    filter_groups = []
    for g in sorted(groups):
        filters = []
        for f in sorted(groups[g]):
            item = groups[g][f]
            if "field" not in item or "value" not in item:
                raise _required("field" if "field" not in item else "value")
            filters.append({"field": item["field"], "value": item["value"],
                            "condition_type": item.get("conditionType") or "eq"})
        filter_groups.append({"filters": filters})
    sort_orders = [{"field": orders[i].get("field", ""), "direction": (orders[i].get("direction") or "ASC").upper()}
                   for i in sorted(orders)]
    out: dict[str, Any] = {"filter_groups": filter_groups}
    if sort_orders:
        out["sort_orders"] = sort_orders
    if "pageSize" in page:
        out["page_size"] = page["pageSize"]
    if "currentPage" in page:
        out["current_page"] = page["currentPage"]
    return out


def _matches(row: Any, condition: dict[str, str]) -> bool:
    value = str(row.sku if condition["field"] == "sku" else row.entity_id)
    kind, wanted = condition["condition_type"], condition["value"]
    if kind == "eq":
        return value == wanted
    if kind == "in":
        return value in {v.strip() for v in wanted.split(",")}
    if kind == "like":
        return re.fullmatch(re.escape(wanted).replace("%", ".*"), value) is not None
    raise MagentoError(400, "sandbox: condition type %1 is not implemented for the product list", [kind])


@_route("GET", "/V1/products", summary="Get product list (searchCriteria: sku/entity_id filters, paging)")
def list_products(request: Request, state: State) -> Any:
    store = _store(request)
    _authorize(request, state, "products")
    try:
        criteria = _search_criteria(request)
        for group in criteria["filter_groups"]:
            for f in group["filters"]:
                if f["field"] not in _LIST_FIELDS:
                    raise MagentoError(400, "sandbox: the product list filters on sku and entity_id only, not %1",
                                       [f["field"]])
        for order in criteria.get("sort_orders", []):
            if order["field"] not in _LIST_FIELDS or order["direction"] not in ("ASC", "DESC"):
                raise MagentoError(400, "sandbox: the product list sorts by sku or entity_id (ASC/DESC), not %1",
                                   [f"{order['field']} {order['direction']}"])
        with state.engine.connect() as conn:
            rows = list(conn.execute(select(db.adobe_product.c.sku, db.adobe_product.c.entity_id)
                                     .order_by(db.adobe_product.c.entity_id)))
            # filter groups are ANDed, the filters of one group ORed (framework-search-filter-group)
            rows = [r for r in rows if all(any(_matches(r, f) for f in g["filters"])
                                           for g in criteria["filter_groups"])]
            for order in reversed(criteria.get("sort_orders", [])):
                by_sku = order["field"] == "sku"
                rows.sort(key=lambda r: str(r.sku) if by_sku else f"{int(r.entity_id):012d}",
                          reverse=order["direction"] == "DESC")
            total = len(rows)
            size = criteria.get("page_size")
            if size is not None and size > 0:
                # Magento's collection clamps a page past the last one to the last page: the client must stop by
                # total_count, not by an empty page
                last = max(1, -(-total // size))
                current = min(max(1, criteria.get("current_page") or 1), last)
                rows = rows[(current - 1) * size:current * size]
            items = [render_product(conn, r.sku, store) for r in rows]
    except MagentoError as exc:
        raise exc.http() from None
    return {"items": items, "search_criteria": criteria, "total_count": total}


@_route("GET", "/V1/products/{sku}", summary="A product at the path's store scope")
def get_product(sku: str, request: Request, state: State) -> Any:
    store = _store(request)
    _authorize(request, state, "products")
    try:
        with state.engine.connect() as conn:
            return render_product(conn, sku, store)
    except MagentoError as exc:
        raise exc.http() from None


@_route("POST", "/V1/configurable-products/{sku}/child", summary="Link a simple product to a configurable one")
async def configurable_child(sku: str, request: Request, state: State) -> Any:
    _store(request)
    _authorize(request, state, "products")
    body = await _json_body(request)
    try:
        with state.write_lock, state.engine.begin() as conn:
            return add_child(conn, sku, (body or {}).get("childSku") if isinstance(body, dict) else None)
    except MagentoError as exc:
        raise exc.http() from None


# ------------------------------------------------------------------------------------------ routes: base prices
#: Product types whose price BasePriceStorage writes (the ``allowedProductTypes`` Magento's di.xml gives it; a
#: configurable product has no price of its own, its children do).
PRICED_TYPES: Final[frozenset[str]] = frozenset({"simple", "virtual", "bundle", "downloadable"})
STORE_IDS: Final[frozenset[int]] = frozenset(int(s["id"]) for s in STORES)
INVALID_ATTRIBUTE: Final = "Invalid attribute %fieldName = %fieldValue."


def _php_text(value: Any) -> str:
    """A value as PHP casts it into a message parameter: integral floats without a decimal part, None as ''."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _base_price(raw: Any) -> dict[str, Any]:
    """One ``catalog-data-base-price-interface`` as Magento's deserializer reads it: an object whose ``price`` is a
    number (a numeric string is cast), ``store_id`` an integer and ``sku`` a string; a type it cannot cast refuses
    the whole request."""
    if not isinstance(raw, dict):
        raise _required("prices")
    item = {"sku": raw.get("sku"), "price": raw.get("price"), "store_id": raw.get("store_id")}
    for name, cast in (("price", float), ("store_id", int)):
        value = item[name]
        if value is None:
            continue
        try:
            if isinstance(value, bool) or (cast is int and isinstance(value, float) and not value.is_integer()):
                raise ValueError
            item[name] = cast(value)
        except (TypeError, ValueError):
            raise MagentoError(400, 'The "%value" value\'s type is invalid. The "%type" type was expected. '
                               "Verify and try again.",
                               {"value": value, "type": "float" if cast is float else "int"}) from None
    if item["sku"] is not None and not isinstance(item["sku"], str):
        raise MagentoError(400, 'The "%value" value\'s type is invalid. The "%type" type was expected. '
                           "Verify and try again.", {"value": item["sku"], "type": "string"})
    return item


@_route("POST", "/V1/products/base-prices", summary="Add or update product base prices; answers the failed items")
async def save_base_prices(request: Request, state: State) -> Any:
    """BasePriceStorage::update: every item is checked (its SKU exists and is of a type that has a price of its
    own, its price is not negative, its store exists); the failed ones are left out and listed, each as
    ``{"message", "parameters"}`` with the parameters a list of strings, and the others saved. The price
    attribute has Magento's default global scope, so a price saved for any store is the product's price."""
    _store(request)
    _authorize(request, state, "products")
    body = await _json_body(request)
    try:
        if not isinstance(body, dict) or not isinstance(body.get("prices"), list):
            raise _required("prices")
        prices = [_base_price(raw) for raw in body["prices"]]
        failed: list[dict[str, Any]] = []
        with state.write_lock, state.engine.begin() as conn:
            valid: dict[str, float] = {}
            for item in prices:
                sku, price, store_id = item["sku"], item["price"], item["store_id"]
                row = _load(conn, sku) if sku else None
                bad = False
                if row is None or row["type_id"] not in PRICED_TYPES:
                    failed.append({"message": INVALID_ATTRIBUTE, "parameters": ["SKU", _php_text(sku)]})
                    bad = True
                if price is None or price < 0:
                    failed.append({"message": INVALID_ATTRIBUTE, "parameters": ["Price", _php_text(price)]})
                    bad = True
                if store_id not in STORE_IDS:
                    failed.append({"message": f"Requested store is not found. Row ID: SKU = {_php_text(sku)}, "
                                              f"Store ID: {_php_text(store_id)}.",
                                   "parameters": [_php_text(sku), _php_text(store_id)]})
                    bad = True
                if not bad:
                    valid[str(sku)] = float(price)
            for sku, price in valid.items():
                row = _load(conn, sku)
                assert row is not None
                conn.execute(db.adobe_product.update().where(db.adobe_product.c.sku == sku)
                             .values(data={**row["data"], "price": price}, updated_at=_now()))
    except MagentoError as exc:
        raise exc.http() from None
    return failed


# ------------------------------------------------------------------------------------------------ routes: media
@_route("GET", "/V1/products/{sku}/media", summary="Gallery entries of a product")
def list_media(sku: str, request: Request, state: State) -> Any:
    _store(request)
    _authorize(request, state, "products")
    with state.engine.connect() as conn:
        if _load(conn, sku) is None:
            raise MagentoError(404, NOT_FOUND).http()
        return [r.entry for r in conn.execute(select(db.adobe_media.c.entry).where(db.adobe_media.c.sku == sku)
                                              .order_by(db.adobe_media.c.id))]


async def _entry_of(request: Request, state: SandboxState) -> tuple[dict[str, Any], list[str]]:
    """The request's gallery ``entry``, checked (:func:`_check_entry`), and its roles."""
    _store(request)
    _authorize(request, state, "products")
    body = await _json_body(request)
    entry = body.get("entry") if isinstance(body, dict) else None
    types = _check_entry(entry)
    assert isinstance(entry, dict)  # _check_entry refused anything else
    return entry, types


def _check_entry(entry: Any) -> list[str]:
    """The checks Magento's gallery management makes of an entry's fields; its ``types`` when they pass."""
    if not isinstance(entry, dict):
        raise _required("entry")
    for name in ("media_type", "label", "position", "disabled", "types"):
        if name not in entry:
            raise _required(name)
    if entry["media_type"] != "image":
        raise MagentoError(400, "The media type is incorrect. Verify the type and try again.")
    types = entry["types"]
    if not isinstance(types, list) or any(t not in IMAGE_ROLES for t in types):
        raise MagentoError(400, 'Invalid value of "%value" provided for the %fieldName field.',
                           {"value": json.dumps(types), "fieldName": "types"})
    return list(types)


def _check_content(content: Any) -> tuple[bytes, str]:
    """An entry's ``content`` as Magento's image content validator takes it: (the image, its file name)."""
    if not isinstance(content, dict):
        raise MagentoError(400, "The image content is invalid. Verify the content and try again.")
    for name in ("base64_encoded_data", "type", "name"):
        if not content.get(name):
            raise _required(name)
    try:
        raw = base64.b64decode(str(content["base64_encoded_data"]), validate=True)
    except (binascii.Error, ValueError):
        raise MagentoError(400, "The image content must be valid base64 encoded data.") from None
    if content["type"] not in IMAGE_MIME or not _looks_like(raw, str(content["type"])):
        raise MagentoError(400, "The image MIME type is not valid or not supported.")
    return raw, str(content["name"])


def _file_path(name: str) -> str:
    clean = name.rsplit("/", 1)[-1]
    return f"/{clean[:1].lower()}/{clean[1:2].lower() or '_'}/{clean}"


def _release_types(conn: Any, sku: str, types: list[str], keep_id: int) -> None:
    """A role names one image: the entry taking it releases it from the product's other entries."""
    if not types:
        return
    for other in conn.execute(select(db.adobe_media).where(db.adobe_media.c.sku == sku)).mappings():
        kept = [t for t in other["entry"]["types"] if t not in types]
        if other["id"] != keep_id and kept != other["entry"]["types"]:
            conn.execute(db.adobe_media.update().where(db.adobe_media.c.id == other["id"])
                         .values(entry={**other["entry"], "types": kept}))


@_route("POST", "/V1/products/{sku}/media", summary="Create new gallery entry")
async def create_media(sku: str, request: Request, state: State) -> Any:
    try:
        entry, types = await _entry_of(request, state)
        raw, name = _check_content(entry.get("content"))
        with state.write_lock, state.engine.begin() as conn:
            if _load(conn, sku) is None:
                raise MagentoError(404, NOT_FOUND)
            (entry_id,) = db.next_ids(conn, "adobe_media")
            stored = {"id": entry_id, "media_type": "image", "label": entry["label"],
                      "position": int(entry["position"]), "disabled": bool(entry["disabled"]), "types": types,
                      "file": _file_path(name)}
            _release_types(conn, sku, types, entry_id)
            conn.execute(db.adobe_media.insert().values(id=entry_id, sku=sku, entry=stored,
                                                        content_sha256=hashlib.sha256(raw).hexdigest()))
            return entry_id
    except MagentoError as exc:
        raise exc.http() from None


@_route("PUT", "/V1/products/{sku}/media/{entryId}", summary="Update gallery entry")
async def update_media(sku: str, entryId: str, request: Request, state: State) -> Any:  # noqa: N803
    """Magento's ``GalleryManagement::update``: the entry (its ``id`` in the body, else the path's) must be one of
    the product's; its label, position, disabled flag and roles are replaced, and its file when ``content`` comes
    with it. The answer is ``true``."""
    try:
        entry, types = await _entry_of(request, state)
        content = _check_content(entry["content"]) if entry.get("content") is not None else None
        wanted = str(entry.get("id") or entryId)
        with state.write_lock, state.engine.begin() as conn:
            if _load(conn, sku) is None:
                raise MagentoError(404, NOT_FOUND)
            t = db.adobe_media
            row = conn.execute(select(t).where(t.c.sku == sku, t.c.id == int(wanted))).mappings().first() \
                if wanted.isdigit() else None
            if row is None:
                raise MagentoError(404, NO_SUCH_IMAGE)
            stored = {**row["entry"], "label": entry["label"], "position": int(entry["position"]),
                      "disabled": bool(entry["disabled"]), "types": types}
            values: dict[str, Any] = {}
            if content is not None:
                stored["file"] = _file_path(content[1])
                values["content_sha256"] = hashlib.sha256(content[0]).hexdigest()
            _release_types(conn, sku, types, row["id"])
            conn.execute(t.update().where(t.c.id == row["id"]).values(entry=stored, **values))
            return True
    except MagentoError as exc:
        raise exc.http() from None


@_route("DELETE", "/V1/products/{sku}/media/{entryId}", summary="Remove gallery entry")
def delete_media(sku: str, entryId: str, request: Request, state: State) -> Any:  # noqa: N803
    """Magento's ``GalleryManagement::remove``: the product must exist, and so must the entry among its own
    (``NoSuchEntityException``, 404, otherwise); the answer is ``true``."""
    _store(request)
    _authorize(request, state, "products")
    try:
        with state.write_lock, state.engine.begin() as conn:
            if _load(conn, sku) is None:
                raise MagentoError(404, NOT_FOUND)
            t = db.adobe_media
            if conn.execute(select(t.c.id).where(t.c.sku == sku).limit(1)).first() is None:
                raise MagentoError(404, NO_IMAGES)
            found = entryId.isdigit() and conn.execute(
                select(t.c.id).where(t.c.sku == sku, t.c.id == int(entryId))).first() is not None
            if not found:
                raise MagentoError(404, NO_SUCH_IMAGE)
            conn.execute(t.delete().where(t.c.sku == sku, t.c.id == int(entryId)))
            return True
    except MagentoError as exc:
        raise exc.http() from None


def _looks_like(raw: bytes, mime: str) -> bool:
    magic = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",),
             "image/gif": (b"GIF87a", b"GIF89a")}
    return raw.startswith(magic[mime])


# -------------------------------------------------------------------------------------------- routes: inventory
def _source_item_errors(conn: Any, items: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(items, list):
        raise _required("sourceItems")
    errors: list[dict[str, Any]] = []
    good: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            errors.append({"message": '"%field" can not be empty.', "parameters": {"field": "sku"}})
            continue
        sku, source = item.get("sku"), item.get("source_code")
        if not sku:
            errors.append({"message": '"%field" can not be empty.', "parameters": {"field": "sku"}})
        elif not source:
            errors.append({"message": '"%field" can not be empty.', "parameters": {"field": "source_code"}})
        elif source not in SOURCES:
            errors.append({"message": 'Source with code "%code" does not exist.', "parameters": {"code": source}})
        elif _load(conn, str(sku)) is None:
            errors.append({"message": 'Product with SKU "%sku" does not exist.', "parameters": {"sku": sku}})
        else:
            good.append(item)
    return good, errors


def _save_source_item(conn: Any, item: dict[str, Any]) -> None:
    where = (db.adobe_source_item.c.sku == str(item["sku"]),
             db.adobe_source_item.c.source_code == str(item["source_code"]))
    quantity = float(item.get("quantity", 0))
    status = int(item.get("status", 1 if quantity > 0 else 0))
    if conn.execute(select(db.adobe_source_item.c.sku).where(*where)).first():
        conn.execute(db.adobe_source_item.update().where(*where).values(quantity=quantity, status=status))
    else:
        conn.execute(db.adobe_source_item.insert().values(sku=str(item["sku"]), source_code=str(item["source_code"]),
                                                          quantity=quantity, status=status))


def _delete_source_item(conn: Any, item: dict[str, Any]) -> None:
    conn.execute(db.adobe_source_item.delete().where(db.adobe_source_item.c.sku == str(item["sku"]),
                                                     db.adobe_source_item.c.source_code == str(item["source_code"])))


def _number_errors(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors = []
    for item in items:
        quantity = item.get("quantity", 0)
        if not isinstance(quantity, int | float) or isinstance(quantity, bool):
            errors.append({"message": '"%field" should be numeric.', "parameters": {"field": "quantity"}})
        elif item.get("status", 0) not in (0, 1):
            errors.append({"message": '"%field" should be numeric.', "parameters": {"field": "status"}})
    return errors


async def _source_items(request: Request, state: SandboxState, write: Callable[[Any, dict[str, Any]], None],
                        check_numbers: bool) -> list[Any]:
    """Validate every item first and write none when one is bad (Magento answers "Validation Failed" with one
    error per bad item); an empty list (the service returns nothing) when all were written."""
    _store(request)
    _authorize(request, state, "inventory")
    body = await _json_body(request)
    try:
        with state.write_lock, state.engine.begin() as conn:
            items, errors = _source_item_errors(conn, body.get("sourceItems") if isinstance(body, dict) else None)
            if check_numbers:
                errors += _number_errors(items)
            if errors:
                raise MagentoError(400, "Validation Failed", errors=errors)
            for item in items:
                write(conn, item)
    except MagentoError as exc:
        raise exc.http() from None
    return []


@_route("POST", "/V1/inventory/source-items", summary="Save Multiple Source item data")
async def save_source_items(request: Request, state: State) -> Any:
    return await _source_items(request, state, _save_source_item, check_numbers=True)


@_route("POST", "/V1/inventory/source-items-delete", summary="Delete Multiple Source item data")
async def delete_source_items(request: Request, state: State) -> Any:
    return await _source_items(request, state, _delete_source_item, check_numbers=False)


@_route("GET", "/V1/inventory/source-items", summary="Source items (searchCriteria on sku only, in the sandbox)")
def list_source_items(request: Request, state: State) -> Any:
    _store(request)
    _authorize(request, state, "inventory")
    query = select(db.adobe_source_item).order_by(db.adobe_source_item.c.sku, db.adobe_source_item.c.source_code)
    sku = request.query_params.get("searchCriteria[filter_groups][0][filters][0][value]")
    if sku:
        query = query.where(db.adobe_source_item.c.sku == sku)
    with state.engine.connect() as conn:
        items = [dict(r) for r in conn.execute(query).mappings()]
    return {"items": items, "search_criteria": {"filter_groups": []}, "total_count": len(items)}


# ----------------------------------------------------------------------------------------- routes: async bulk
async def _schedule(request: Request, state: SandboxState, topic: str, description: str,
                    read: Callable[[Any], dict[str, Any]]) -> JSONResponse:
    """MassSchedule::publishMass: each item's parameters are read now (rejected if they cannot be); the accepted
    ones wait as open operations for the consumer."""
    store = _store(request)
    _authorize(request, state, "products")
    body = await _json_body(request)
    if not isinstance(body, list):
        raise MagentoError(400, "Request body is expected to be an array of entities.").http()
    bulk_uuid = str(uuid.uuid4())
    items: list[dict[str, Any]] = []
    operations: list[dict[str, Any]] = []
    for i, entity in enumerate(body):
        try:
            params = read(entity)
        except MagentoError as exc:
            items.append({"id": i, "data_hash": None, "status": "rejected", "error_message": exc.rendered(),
                          "error_code": 0})
            operations.append({"id": i, "status": 5, "result_message": exc.rendered(), "error_code": 0,
                               "serialized": json.dumps(entity, sort_keys=True)})
            continue
        serialized = json.dumps({"entity_id": None, "entity_link": "", "meta_information": json.dumps(params)})
        items.append({"id": i, "data_hash": hashlib.sha256(serialized.encode()).hexdigest(), "status": "accepted"})
        operations.append({"id": i, "status": 4, "result_message": None, "error_code": None,
                           "serialized": serialized})
    with state.write_lock, state.engine.begin() as conn:
        conn.execute(db.adobe_bulk.insert().values(uuid=bulk_uuid, description=description, start_time=_now(),
                                                   reads=0))
        for op in operations:
            conn.execute(db.adobe_operation.insert().values(
                bulk_uuid=bulk_uuid, id=op["id"], topic_name=topic, store_code=store,
                serialized_data=op["serialized"], status=op["status"], result_message=op["result_message"],
                error_code=op["error_code"]))
    errors = any(item["status"] == "rejected" for item in items)
    return JSONResponse({"bulk_uuid": bulk_uuid, "request_items": items, "errors": errors}, status_code=202)


def _read_product(entity: Any) -> dict[str, Any]:
    if not isinstance(entity, dict) or not isinstance(entity.get("product"), dict):
        raise _required("product")
    _check_types(dict(entity["product"]))
    return {"product": entity["product"], **({"saveOptions": entity["saveOptions"]} if "saveOptions" in entity
                                             else {})}


def _read_product_by_sku(entity: Any) -> dict[str, Any]:
    params = _read_product(entity)
    if not isinstance(entity.get("sku"), str) or not entity["sku"]:
        raise _required("sku")
    return {"sku": entity["sku"], **params}


def _read_child(entity: Any) -> dict[str, Any]:
    if not isinstance(entity, dict):
        raise _required("sku")
    for name in ("sku", "childSku"):
        if not isinstance(entity.get(name), str) or not entity[name]:
            raise _required(name)
    return {"sku": entity["sku"], "childSku": entity["childSku"]}


@router.post("/async/bulk/V1/products", status_code=202, summary="Bulk: create products (array of {product})")
@router.post("/{store_code}/async/bulk/V1/products", status_code=202, include_in_schema=False)
async def bulk_products(request: Request, state: State) -> JSONResponse:
    return await _schedule(request, state, TOPIC_SAVE_POST, f"Topic {TOPIC_SAVE_POST}", _read_product)


@router.put("/async/bulk/V1/products/bySku", status_code=202, summary="Bulk: save products by SKU")
@router.put("/{store_code}/async/bulk/V1/products/bySku", status_code=202, include_in_schema=False)
async def bulk_products_by_sku(request: Request, state: State) -> JSONResponse:
    return await _schedule(request, state, TOPIC_SAVE_PUT, f"Topic {TOPIC_SAVE_PUT}", _read_product_by_sku)


@router.post("/async/bulk/V1/configurable-products/bySku/child", status_code=202,
             summary="Bulk: link children to configurable products")
@router.post("/{store_code}/async/bulk/V1/configurable-products/bySku/child", status_code=202,
             include_in_schema=False)
async def bulk_children(request: Request, state: State) -> JSONResponse:
    return await _schedule(request, state, TOPIC_ADD_CHILD, f"Topic {TOPIC_ADD_CHILD}", _read_child)


def _consume(conn: Any, state: SandboxState, bulk_uuid: str) -> None:
    """The consumer: every open operation of the bulk, in id order, each in its own transaction (savepoint)."""
    ops = conn.execute(select(db.adobe_operation).where(db.adobe_operation.c.bulk_uuid == bulk_uuid,
                                                        db.adobe_operation.c.status == 4)
                       .order_by(db.adobe_operation.c.id)).mappings().all()
    for op in ops:
        params = json.loads(json.loads(op["serialized_data"])["meta_information"])
        status, message, code = 1, SUCCESS[op["topic_name"]], None
        result: Any = None
        savepoint = conn.begin_nested()
        try:
            if op["topic_name"] == TOPIC_ADD_CHILD:
                result = add_child(conn, params["sku"], params["childSku"])
            else:
                saved = save_product(conn, state, dict(params["product"]), op["store_code"],
                                     sku_in_path=params.get("sku"))
                result = {"id": saved["id"], "sku": saved["sku"]}
            savepoint.commit()
        except MagentoError as exc:
            savepoint.rollback()
            status, message, code = 3, exc.rendered(), 0
        conn.execute(db.adobe_operation.update().where(db.adobe_operation.c.bulk_uuid == bulk_uuid,
                                                       db.adobe_operation.c.id == op["id"])
                     .values(status=status, result_message=message, error_code=code,
                             result_serialized_data=json.dumps(result) if result is not None else None))


def _bulk(request: Request, state: SandboxState, bulk_uuid: str, detailed: bool) -> dict[str, Any]:
    _store(request)
    _authorize(request, state, "bulk")
    with state.write_lock, state.engine.begin() as conn:
        bulk = conn.execute(select(db.adobe_bulk).where(db.adobe_bulk.c.uuid == bulk_uuid)).mappings().first()
        if bulk is None:
            raise MagentoError(404, "Bulk uuid %bulkUuid not exist", {"bulkUuid": bulk_uuid}).http()
        reads = bulk["reads"] + 1
        conn.execute(db.adobe_bulk.update().where(db.adobe_bulk.c.uuid == bulk_uuid).values(reads=reads))
        if reads > CONSUMER_LAG_READS:
            _consume(conn, state, bulk_uuid)
        # Magento does not order operations_list (a recorded answer lists ids 0, 2, 1); the sandbox lists them by
        # status, then id, so a client that reads them by position rather than by id is caught
        ops = conn.execute(select(db.adobe_operation).where(db.adobe_operation.c.bulk_uuid == bulk_uuid)
                           .order_by(db.adobe_operation.c.status, db.adobe_operation.c.id)).mappings().all()
    if detailed:
        listed: list[dict[str, Any]] = [
            {"id": op["id"], "bulk_uuid": bulk_uuid, "topic_name": op["topic_name"],
             "serialized_data": op["serialized_data"], "result_serialized_data": op["result_serialized_data"] or "",
             "status": op["status"], "result_message": op["result_message"] or "", "error_code": op["error_code"] or 0}
            for op in ops]
    else:
        listed = [{"id": op["id"], "status": op["status"], "result_message": op["result_message"] or "",
                   "error_code": op["error_code"] or 0} for op in ops]
    return {"operations_list": listed, "user_type": 1, "bulk_id": bulk_uuid, "description": bulk["description"],
            "start_time": _magento_time(bulk["start_time"]), "user_id": 1, "operation_count": len(ops)}


@_route("GET", "/V1/bulk/{bulkUuid}/status", summary="Bulk summary with each operation's short status")
def bulk_status(bulkUuid: str, request: Request, state: State) -> Any:  # noqa: N803
    return _bulk(request, state, bulkUuid, detailed=False)


@_route("GET", "/V1/bulk/{bulkUuid}/detailed-status", summary="Bulk summary with each operation's full data")
def bulk_detailed_status(bulkUuid: str, request: Request, state: State) -> Any:  # noqa: N803
    return _bulk(request, state, bulkUuid, detailed=True)
