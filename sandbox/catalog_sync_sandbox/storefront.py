"""The storefront, in the shape of the Shopify Admin REST API (2025-01), plus the page a shopper sees.

The admin API meters calls with a leaky bucket per access token (``X-Shopify-Shop-Api-Call-Limit``) and answers
429 with ``Retry-After`` when it is full. The product page served here is the origin's: rendered from the current
product on every request. Shoppers get it through the CDN (``catalog_sync_sandbox.cdn``), whose cache is what
admin writes do not invalidate.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from catalog_sync.catalog.magento import slugify
from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, iso, parse_ts
from catalog_sync_sandbox.state import SandboxState

VERSION: Final = "2025-01"
ADMIN: Final = f"/storefront/admin/api/{VERSION}"
STATUSES: Final = ("active", "draft", "archived")
token_header = APIKeyHeader(name="X-Shopify-Access-Token", auto_error=False, scheme_name="shopifyAccessToken")


def shopify_error(status: int, errors: Any, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, {"errors": errors}, headers=headers)


def check_token(token: str | None, state: SandboxState) -> str:
    """The admin access token, or Shopify's 401."""
    expected = state.credentials["storefront"]["access_token"]
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise shopify_error(401, "[API] Invalid API key or access token (unrecognized login or wrong password)")
    return token


def admin_auth(
    response: Response,
    token: Annotated[str | None, Depends(token_header)],
    state: State,
) -> str:
    token = check_token(token, state)
    admitted, level, wait = state.storefront_call(token)
    limit = f"{level}/{state.settings.storefront_bucket_size}"
    if not admitted:
        raise shopify_error(429, "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                                 "uninterrupted service.",
                            {"Retry-After": f"{max(wait, 0.001):.3f}", "X-Shopify-Shop-Api-Call-Limit": limit})
    response.headers["X-Shopify-Shop-Api-Call-Limit"] = limit
    return token


router = APIRouter(prefix=ADMIN, tags=["storefront"], dependencies=[Depends(admin_auth)])
shop_router = APIRouter(prefix="/storefront", tags=["storefront"])


class Variant(BaseModel):
    id: int | None = None
    product_id: int | None = None
    sku: str | None = None
    price: str | None = None
    barcode: str | None = None
    option1: str | None = None
    option2: str | None = None
    option3: str | None = None
    position: int | None = None
    inventory_item_id: int | None = None
    inventory_quantity: int | None = None
    weight: float | None = None
    weight_unit: str | None = None
    requires_shipping: bool | None = None


class Image(BaseModel):
    id: int | None = None
    product_id: int | None = None
    src: str
    alt: str | None = None
    position: int | None = None
    variant_ids: list[int] = []


class Option(BaseModel):
    name: str
    values: list[str] = []


class Product(BaseModel):
    id: int | None = None
    title: str | None = None
    body_html: str | None = None
    handle: str | None = None
    vendor: str | None = None
    product_type: str | None = None
    status: str | None = Field(None, description="active | draft | archived")
    tags: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    options: list[Option] | None = None
    variants: list[Variant] | None = None
    images: list[Image] | None = None
    metafields: list[dict[str, Any]] | None = None


class ProductEnvelope(BaseModel):
    product: Product


class ProductsEnvelope(BaseModel):
    products: list[Product]


class InventorySet(BaseModel):
    location_id: int
    inventory_item_id: int
    available: int


class InventoryLevel(BaseModel):
    inventory_item_id: int
    location_id: int
    available: int
    updated_at: str | None = None


class InventoryLevelEnvelope(BaseModel):
    inventory_level: InventoryLevel


# ------------------------------------------------------------------------------------------------- storage
def _with_quantities(conn: Connection, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [v["inventory_item_id"] for d in docs for v in d.get("variants", []) if v.get("inventory_item_id")]
    totals: dict[int, int] = {}
    if items:
        t = db.storefront_inventory_level
        for row in conn.execute(select(t.c.inventory_item_id, t.c.available).where(t.c.inventory_item_id.in_(items))):
            totals[row.inventory_item_id] = totals.get(row.inventory_item_id, 0) + row.available
    for d in docs:
        for v in d.get("variants", []):
            v["inventory_quantity"] = totals.get(v.get("inventory_item_id"), 0)
    return docs


def _validate(doc: dict[str, Any], creating: bool) -> None:
    errors: dict[str, list[str]] = {}
    if creating and not (isinstance(doc.get("title"), str) and doc["title"].strip()):
        errors["title"] = ["can't be blank"]
    if "status" in doc and doc["status"] not in STATUSES:
        errors["status"] = [f"is not included in the list ({', '.join(STATUSES)})"]
    for key in ("variants", "images", "options"):
        if key in doc and not (isinstance(doc[key], list) and all(isinstance(x, dict) for x in doc[key])):
            errors[key] = ["must be a list of objects"]
    if isinstance(doc.get("variants"), list) and not doc["variants"]:
        errors["variants"] = ["a product needs at least one variant"]
    if errors:
        raise shopify_error(422, errors)


def save_product(conn: Connection, doc: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """Write a product resource (create when ``current`` is None); assigns every id Shopify would."""
    now = datetime.now(UTC)
    _validate(doc, current is None)
    merged = {**(current or {}), **{k: v for k, v in doc.items() if k not in {"id", "created_at", "updated_at"}}}
    if current is None:
        merged["id"] = db.next_ids(conn, "storefront_product", start=7_000_000_001)[0]
        merged["created_at"] = iso(now)
        merged.setdefault("status", "active")
        merged["handle"] = merged.get("handle") or slugify(merged["title"])
        merged.setdefault("variants", [{"title": "Default Title", "option1": "Default Title"}])
    product_id = merged["id"]
    old_variants = {v["id"]: v for v in (current or {}).get("variants", []) if v.get("id")}
    variants = []
    for pos, v in enumerate(merged.get("variants") or [], start=1):
        base = old_variants.get(v.get("id"), {})
        variant = {**base, **{k: val for k, val in v.items() if k != "inventory_quantity"}}
        if not variant.get("id"):
            variant["id"] = db.next_ids(conn, "storefront_variant", start=4_000_000_001)[0]
        if not variant.get("inventory_item_id"):
            variant["inventory_item_id"] = db.next_ids(conn, "storefront_inventory_item", start=5_000_000_001)[0]
        if variant.get("price") is not None:
            variant["price"] = f"{float(variant['price']):.2f}"
        variant.update(product_id=product_id, position=pos)
        variants.append(variant)
    merged["variants"] = variants
    images = []
    for pos, img in enumerate(merged.get("images") or [], start=1):
        image = dict(img)
        if not image.get("id"):
            image["id"] = db.next_ids(conn, "storefront_image", start=3_000_000_001)[0]
        image.update(product_id=product_id, position=pos)
        image.setdefault("variant_ids", [])
        images.append(image)
    merged["images"] = images
    merged["updated_at"] = iso(now)
    t = db.storefront_product
    clash = conn.execute(select(t.c.id).where(t.c.handle == merged["handle"], t.c.id != product_id)).first()
    if clash:
        raise shopify_error(422, {"handle": ["has already been taken"]})
    row = {"handle": merged["handle"], "doc": merged, "status": merged["status"], "updated_at": now}
    if current is None:
        conn.execute(t.insert().values(id=product_id, **row))
    else:
        conn.execute(t.update().where(t.c.id == product_id).values(**row))
    ix = db.storefront_variant_index
    conn.execute(ix.delete().where(ix.c.product_id == product_id))
    conn.execute(ix.insert(), [{"inventory_item_id": v["inventory_item_id"], "variant_id": v["id"],
                                "product_id": product_id, "sku": v.get("sku")} for v in variants])
    return merged


def _load(conn: Connection, product_id: int) -> dict[str, Any]:
    row = conn.execute(select(db.storefront_product.c.doc).where(db.storefront_product.c.id == product_id)).first()
    if row is None:
        raise shopify_error(404, "Not Found")
    return dict(row.doc)


# -------------------------------------------------------------------------------------------------- admin
def _cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _uncursor(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        raise shopify_error(400, {"page_info": ["Invalid value."]}) from None
    if not isinstance(data, dict):
        raise shopify_error(400, {"page_info": ["Invalid value."]})
    return data


@router.get("/products.json", response_model=ProductsEnvelope, response_model_exclude_unset=True,
            summary="Products by id; next page through the Link header (rel=next)")
def list_products(
    request: Request,
    response: Response,
    state: State,
    limit: Annotated[int, Query(ge=1)] = 50,
    page_info: str | None = None,
    ids: str | None = None,
    handle: str | None = None,
    status: str | None = None,
    updated_at_min: str | None = None,
) -> dict[str, Any]:
    if limit > state.settings.storefront_page_max:
        raise shopify_error(400, {"limit": [f"must be at most {state.settings.storefront_page_max}"]})
    if page_info:
        cur = _uncursor(page_info)
        filters, after = cur.get("f", {}), int(cur.get("after", 0))
    else:
        filters = {k: v for k, v in {"ids": ids, "handle": handle, "status": status,
                                     "updated_at_min": updated_at_min}.items() if v}
        after = 0
    t = db.storefront_product
    query = select(t.c.doc).where(t.c.id > after).order_by(t.c.id).limit(limit + 1)
    if filters.get("ids"):
        query = query.where(t.c.id.in_([int(i) for i in str(filters["ids"]).split(",") if i.strip().isdigit()]))
    if filters.get("handle"):
        query = query.where(t.c.handle.in_([h.strip() for h in str(filters["handle"]).split(",")]))
    if filters.get("status"):
        query = query.where(t.c.status.in_([s.strip() for s in str(filters["status"]).split(",")]))
    if filters.get("updated_at_min"):
        query = query.where(t.c.updated_at >= parse_ts(filters["updated_at_min"], "updated_at_min"))
    with state.engine.connect() as conn:
        docs = [dict(r.doc) for r in conn.execute(query)]
        more = len(docs) > limit
        docs = _with_quantities(conn, docs[:limit])
    if more:
        base = str(request.url).split("?", 1)[0]
        nxt = _cursor({"after": docs[-1]["id"], "f": filters})
        response.headers["Link"] = f'<{base}?{urlencode({"limit": limit, "page_info": nxt})}>; rel="next"'
    return {"products": docs}


@router.post("/products.json", status_code=201, response_model=ProductEnvelope, response_model_exclude_unset=True)
def create_product(body: ProductEnvelope, state: State) -> dict[str, Any]:
    doc = body.product.model_dump(exclude_unset=True, mode="json")
    with state.write_lock, state.engine.begin() as conn:
        saved = save_product(conn, doc, None)
        _with_quantities(conn, [saved])
    return {"product": saved}


@router.get("/products/{product_id}.json", response_model=ProductEnvelope, response_model_exclude_unset=True)
def get_product(product_id: int, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        return {"product": _with_quantities(conn, [_load(conn, product_id)])[0]}


@router.put("/products/{product_id}.json", response_model=ProductEnvelope, response_model_exclude_unset=True)
def update_product(product_id: int, body: ProductEnvelope, state: State) -> dict[str, Any]:
    doc = body.product.model_dump(exclude_unset=True, mode="json")
    with state.write_lock, state.engine.begin() as conn:
        saved = save_product(conn, doc, _load(conn, product_id))
        _with_quantities(conn, [saved])
    return {"product": saved}


@router.delete("/products/{product_id}.json", response_model=dict[str, Any])
def delete_product(product_id: int, state: State) -> dict[str, Any]:
    with state.write_lock, state.engine.begin() as conn:
        _load(conn, product_id)
        conn.execute(db.storefront_product.delete().where(db.storefront_product.c.id == product_id))
        ix = db.storefront_variant_index
        conn.execute(ix.delete().where(ix.c.product_id == product_id))
    return {}


@router.get("/locations.json", summary="The shop's locations")
def locations(state: State) -> dict[str, Any]:
    t = db.storefront_location
    with state.engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.id)).all()
    return {"locations": [{"id": r.id, "name": r.name, "active": True} for r in rows]}


def _level(row: Any) -> dict[str, Any]:
    return {"inventory_item_id": row.inventory_item_id, "location_id": row.location_id, "available": row.available,
            "updated_at": iso(row.updated_at)}


@router.get("/inventory_levels.json")
def inventory_levels(
    state: State,
    inventory_item_ids: str | None = None,
    location_ids: str | None = None,
) -> dict[str, Any]:
    if not inventory_item_ids and not location_ids:
        raise shopify_error(422, {"base": ["inventory_item_ids or location_ids is required"]})
    t = db.storefront_inventory_level
    query = select(t).order_by(t.c.inventory_item_id, t.c.location_id)
    if inventory_item_ids:
        query = query.where(t.c.inventory_item_id.in_([int(i) for i in inventory_item_ids.split(",") if i.strip()]))
    if location_ids:
        query = query.where(t.c.location_id.in_([int(i) for i in location_ids.split(",") if i.strip()]))
    with state.engine.connect() as conn:
        return {"inventory_levels": [_level(r) for r in conn.execute(query)]}


@router.post("/inventory_levels/set.json", response_model=InventoryLevelEnvelope,
             summary="Set available stock; replaying an Idempotency-Key returns the first answer")
def set_inventory(
    body: InventorySet,
    response: Response,
    state: State,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    now = datetime.now(UTC)
    answer: dict[str, Any]
    with state.write_lock, state.engine.begin() as conn:
        if idempotency_key:
            seen = conn.execute(select(db.storefront_idempotency).where(
                db.storefront_idempotency.c.key == idempotency_key)).first()
            if seen is not None:
                response.headers["Idempotent-Replayed"] = "true"
                if seen.status_code != 200:
                    raise shopify_error(seen.status_code, seen.body.get("errors"))
                return seen.body
        status, answer = 200, {}
        if conn.execute(select(db.storefront_location.c.id).where(
                db.storefront_location.c.id == body.location_id)).first() is None:
            status, answer = 422, {"errors": {"location_id": ["is unknown"]}}
        elif conn.execute(select(db.storefront_variant_index.c.inventory_item_id).where(
                db.storefront_variant_index.c.inventory_item_id == body.inventory_item_id)).first() is None:
            status, answer = 422, {"errors": {"inventory_item_id": ["is unknown"]}}
        else:
            t = db.storefront_inventory_level
            where = (t.c.inventory_item_id == body.inventory_item_id, t.c.location_id == body.location_id)
            if not conn.execute(t.update().where(*where).values(available=body.available, updated_at=now)).rowcount:
                conn.execute(t.insert().values(inventory_item_id=body.inventory_item_id,
                                               location_id=body.location_id, available=body.available,
                                               updated_at=now))
            answer = {"inventory_level": {"inventory_item_id": body.inventory_item_id,
                                          "location_id": body.location_id, "available": body.available,
                                          "updated_at": iso(now)}}
        if idempotency_key:
            conn.execute(db.storefront_idempotency.insert().values(key=idempotency_key, status_code=status,
                                                                   body=answer, created_at=now))
    if status != 200:
        raise shopify_error(status, answer["errors"])
    return answer


# ------------------------------------------------------------------------------------------------ shopper
def render_page(doc: dict[str, Any] | None) -> tuple[int, str]:
    """The shopper's HTML. Every text is escaped: a product's copy can carry markup (or a script) from upstream."""
    e = html.escape
    if doc is None or doc.get("status") != "active":
        return 404, "<!doctype html><html><head><title>Page not found</title></head><body><h1>Page not found</h1>" \
                    "</body></html>"
    variants = "".join(
        f'<li class="variant" data-sku="{e(str(v.get("sku") or ""))}">{e(str(v.get("option1") or ""))} '
        f'{e(str(v.get("option2") or ""))} <span class="price">{e(str(v.get("price") or ""))}</span></li>'
        for v in doc.get("variants", [])
    )
    images = "".join(f'<img src="{e(str(i.get("src") or ""))}" alt="{e(str(i.get("alt") or ""))}">'
                     for i in doc.get("images", []))
    return 200, (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{e(str(doc.get("title") or ""))}</title></head>'
        f'<body><main class="product" data-product-id="{doc.get("id")}" data-updated-at="'
        f'{e(str(doc.get("updated_at") or ""))}"><h1>{e(str(doc.get("title") or ""))}</h1>'
        f'<p class="vendor">{e(str(doc.get("vendor") or ""))}</p>'
        f'<div class="description">{e(str(doc.get("body_html") or ""))}</div>'
        f'<div class="images">{images}</div><ul class="variants">{variants}</ul></main></body></html>'
    )


def origin_page(state: SandboxState, handle: str) -> tuple[int, str]:
    """The product page as the storefront renders it now: what the CDN fetches on a miss."""
    with state.engine.connect() as conn:
        row = conn.execute(select(db.storefront_product.c.doc).where(db.storefront_product.c.handle == handle)).first()
    return render_page(dict(row.doc) if row else None)


@shop_router.get("/products/{handle}", response_class=HTMLResponse, summary="Product page at the origin (no cache)",
                 responses={404: {"description": "no active product with this handle"}})
def shopper_page(handle: str, state: State) -> HTMLResponse:
    status, page = origin_page(state, handle)
    return HTMLResponse(page, status_code=status)
