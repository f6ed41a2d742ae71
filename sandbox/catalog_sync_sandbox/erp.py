"""The ERP: item master, stock per location, live prices, an ordered change feed, webhooks and a CSV export."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Row, func, select

from catalog_sync.domain import LifecycleStatus
from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, api_key_auth, error, iso, parse_ts
from catalog_sync_sandbox.state import SandboxState

router = APIRouter(prefix="/erp", tags=["erp"], dependencies=[Depends(api_key_auth("erp"))])

Topic = Literal["stock", "price", "item"]
TOPICS: tuple[Topic, ...] = ("stock", "price", "item")


class Weight(BaseModel):
    value: float | None = None
    unit: str | None = None


class Dimensions(BaseModel):
    length: float | None = None
    width: float | None = None
    height: float | None = None
    unit: str | None = None


class Money(BaseModel):
    amount: float | None = None
    currency: str | None = None


#: What an item is (catalog_sync.domain.ITEM_TYPES, Magento's product types).
ItemType = Literal["simple", "configurable", "virtual", "downloadable", "bundle", "grouped", "giftcard"]


class Component(BaseModel):
    """One line of a kit's bill of materials: an item and how many of it the kit holds."""

    sku: str
    quantity: float = Field(gt=0)


class Item(BaseModel):
    sku: str
    parent_sku: str | None = None
    product_type: Literal["configurable", "simple"]
    item_type: ItemType | None = Field(None, description="what the item is; null reads as its product_type")
    components: list[Component] | None = Field(None, description="a kit's (bundle, grouped) items and quantities")
    kit_pricing: Literal["fixed", "dynamic"] | None = Field(None, description="a bundle's pricing")
    lifecycle_status: LifecycleStatus
    upc: str | None = None
    product_group: str | None = None
    uom: str | None = Field(None, description='as the ERP spells it: "EA", "each", "ea", "PR"...')
    weight: Weight | None = None
    dimensions: Dimensions | None = None
    country_of_origin: str | None = None
    vendor_name: str | None = None
    reference_price: Money | None = None
    description: str | None = Field(None, description="short ERP text")
    updated_at: str


class ItemWrite(BaseModel):
    """An upsert: fields left out keep their current value (or their default for a new item)."""

    parent_sku: str | None = None
    product_type: Literal["configurable", "simple"] | None = None
    item_type: ItemType | None = None
    components: list[Component] | None = None
    kit_pricing: Literal["fixed", "dynamic"] | None = None
    lifecycle_status: LifecycleStatus | None = None
    upc: str | None = None
    product_group: str | None = None
    uom: str | None = None
    weight: Weight | None = None
    dimensions: Dimensions | None = None
    country_of_origin: str | None = None
    vendor_name: str | None = None
    reference_price: Money | None = None
    description: str | None = None


class ItemPage(BaseModel):
    items: list[Item]
    next_after_sku: str | None


class StockLevel(BaseModel):
    sku: str
    location: str
    quantity: int
    updated_at: str


class StockPage(BaseModel):
    stock: list[StockLevel]
    next_after_sku: str | None


class Price(BaseModel):
    sku: str
    price: float
    currency: str
    updated_at: str


class PricePage(BaseModel):
    prices: list[Price]
    next_after_sku: str | None


class Change(BaseModel):
    seq: int
    topic: Topic
    sku: str
    data: dict[str, Any]
    committed_at: str


class ChangePage(BaseModel):
    changes: list[Change]
    last_seq: int = Field(description="the feed's head when the page was read")


class WebhookIn(BaseModel):
    url: str
    topics: list[Topic] = Field(default_factory=lambda: list(TOPICS))


class Webhook(BaseModel):
    id: str
    url: str
    topics: list[str]
    created_at: str | None = None
    deliveries: list[dict[str, Any]] | None = Field(None, description="the last delivery attempts, newest last")


def item_dict(row: Row[Any] | Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "sku": m["sku"],
        "parent_sku": m["parent_sku"],
        "product_type": m["product_type"],
        "item_type": m["item_type"],
        "components": m["components"],
        "kit_pricing": m["kit_pricing"],
        "lifecycle_status": m["lifecycle_status"],
        "upc": m["upc"],
        "product_group": m["product_group"],
        "uom": m["uom"],
        "weight": {"value": m["weight"], "unit": m["weight_unit"]},
        "dimensions": {"length": m["length"], "width": m["width"], "height": m["height"], "unit": m["dimension_unit"]},
        "country_of_origin": m["country_of_origin"],
        "vendor_name": m["vendor_name"],
        "reference_price": {"amount": m["reference_price"], "currency": m["currency"]},
        "description": m["description"],
        "updated_at": iso(m["updated_at"]),
    }


def item_columns(write: dict[str, Any]) -> dict[str, Any]:
    """The table columns an :class:`ItemWrite` (as a dict with unset fields removed) sets."""
    cols: dict[str, Any] = {}
    for key in ("parent_sku", "product_type", "item_type", "components", "kit_pricing", "lifecycle_status", "upc",
                "product_group", "uom", "country_of_origin", "vendor_name", "description"):
        if key in write:
            value = write[key]
            cols[key] = value.value if isinstance(value, LifecycleStatus) else value
    if write.get("weight") is not None:
        cols.update(weight=write["weight"].get("value"), weight_unit=write["weight"].get("unit"))
    if write.get("dimensions") is not None:
        d = write["dimensions"]
        cols.update(length=d.get("length"), width=d.get("width"), height=d.get("height"), dimension_unit=d.get("unit"))
    if write.get("reference_price") is not None:
        cols.update(reference_price=write["reference_price"].get("amount"),
                    currency=write["reference_price"].get("currency"))
    return cols


#: Item types that are kits: a bill of materials of other items, never a stock unit of their own.
KIT_TYPES: Final = frozenset({"bundle", "grouped"})


def kit_problem(conn: Connection, sku: str, item: dict[str, Any]) -> str | None:
    """Why the ERP refuses ``item``'s kit fields (as an ERP refuses a bill of materials naming an item it does not
    hold), or None. ``item`` is the row as it would be written."""
    kind = item.get("item_type") or item.get("product_type")
    components = item.get("components")
    if components is not None and kind not in KIT_TYPES:
        return f"a {kind} item has no components: only a bundle or a grouped item is a kit"
    if item.get("kit_pricing") is not None and kind != "bundle":
        return f"a {kind} item has no kit pricing: only a bundle is priced fixed or from its components"
    skus = [str(c.get("sku")) for c in components or []]
    if sku in skus:
        return "a kit cannot hold itself"
    if len(set(skus)) != len(skus):
        return "a kit lists one component twice"
    t = db.erp_item
    found = {r.sku: r for r in conn.execute(select(t.c.sku, t.c.product_type, t.c.item_type).where(t.c.sku.in_(skus)))}
    for component in skus:
        row = found.get(component)
        if row is None:
            return f"component {component!r} is not an item of this ERP"
        if (row.item_type or row.product_type) in KIT_TYPES | {"configurable"}:
            return (f"component {component!r} is a {row.item_type or row.product_type} item; a kit is made of "
                    "simple, virtual or downloadable items")
    return None


def upsert_item(state: SandboxState, sku: str, cols: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Insert or update one item and emit its ``item`` change; used by the API and by the scenarios."""
    now = now or datetime.now(UTC)
    with state.write_lock:
        with state.engine.begin() as conn:
            exists = conn.execute(select(db.erp_item).where(db.erp_item.c.sku == sku)).first()
            if {"item_type", "components", "kit_pricing"} & set(cols):
                merged = {**(dict(exists._mapping) if exists else {"product_type": "simple"}), **cols}
                problem = kit_problem(conn, sku, merged)
                if problem:
                    raise error(422, f"Item {sku}: {problem}")
            if exists:
                conn.execute(db.erp_item.update().where(db.erp_item.c.sku == sku).values(**cols, updated_at=now))
            else:
                row = {"product_type": "simple", "lifecycle_status": LifecycleStatus.DRAFT.value, **cols}
                conn.execute(db.erp_item.insert().values(sku=sku, **row, updated_at=now))
            item = item_dict(conn.execute(select(db.erp_item).where(db.erp_item.c.sku == sku)).one())
            change = state.emit_change(conn, "item", sku, item, now)
        state.committed([change])
    return item


def set_price(state: SandboxState, sku: str, price: float, currency: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    with state.write_lock:
        with state.engine.begin() as conn:
            if conn.execute(select(db.erp_item.c.sku).where(db.erp_item.c.sku == sku)).first() is None:
                raise error(404, f"Item {sku} does not exist.")
            updated = conn.execute(
                db.erp_price.update().where(db.erp_price.c.sku == sku)
                .values(price=price, currency=currency, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(db.erp_price.insert().values(sku=sku, price=price, currency=currency, updated_at=now))
            data = {"sku": sku, "price": price, "currency": currency, "updated_at": iso(now)}
            change = state.emit_change(conn, "price", sku, {"price": price, "currency": currency}, now)
        state.committed([change])
    return data


@router.get("/items", response_model=ItemPage, summary="Items in SKU order (keyset pages)")
def list_items(
    state: State,
    updated_since: Annotated[str | None, Query(description="only items updated at or after this instant")] = None,
    after_sku: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> dict[str, Any]:
    if limit > state.settings.erp_page_max:
        raise error(400, f"limit must be at most {state.settings.erp_page_max}")
    query = select(db.erp_item).order_by(db.erp_item.c.sku).limit(limit)
    if updated_since:
        query = query.where(db.erp_item.c.updated_at >= parse_ts(updated_since, "updated_since"))
    if after_sku:
        query = query.where(db.erp_item.c.sku > after_sku)
    with state.engine.connect() as conn:
        items = [item_dict(r) for r in conn.execute(query)]
    return {"items": items, "next_after_sku": items[-1]["sku"] if len(items) == limit else None}


def _items_csv(state: SandboxState) -> Iterator[str]:
    columns = ["sku", "parent_sku", "product_type", "lifecycle_status", "upc", "product_group", "uom", "weight",
               "weight_unit", "length", "width", "height", "dimension_unit", "country_of_origin", "vendor_name",
               "reference_price", "currency", "description", "updated_at"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(columns)
    after = ""
    while True:
        with state.engine.connect() as conn:
            rows = conn.execute(
                select(db.erp_item).where(db.erp_item.c.sku > after).order_by(db.erp_item.c.sku).limit(2000)
            ).all()
        for r in rows:
            m = r._mapping
            writer.writerow([iso(m[c]) if c == "updated_at" else ("" if m[c] is None else m[c]) for c in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < 2000:
            return
        after = rows[-1].sku


@router.get(
    "/items.csv",
    summary="Legacy CSV export of all items (';'-separated, header row)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def items_csv(state: State) -> StreamingResponse:
    return StreamingResponse(_items_csv(state), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="items.csv"'})


@router.get("/items/{sku:path}", response_model=Item, responses={404: {"description": "unknown SKU"}})
def get_item(sku: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        row = conn.execute(select(db.erp_item).where(db.erp_item.c.sku == sku)).first()
    if row is None:
        raise error(404, f"Item {sku} does not exist.")
    return item_dict(row)


@router.put("/items/{sku:path}", response_model=Item, summary="Upsert an item (emits an item change)")
def put_item(sku: str, body: ItemWrite, state: State) -> dict[str, Any]:
    return upsert_item(state, sku, item_columns(body.model_dump(exclude_unset=True)))


@router.delete("/items/{sku:path}", status_code=204, responses={404: {"description": "unknown SKU"}},
               summary="Delete an item with its stock and price (emits an item change with data.deleted)")
def delete_item(sku: str, state: State) -> None:
    """The ERP retiring a SKU for good; only the weekly reconciliation may propagate this downstream."""
    now = datetime.now(UTC)
    with state.write_lock:
        with state.engine.begin() as conn:
            if conn.execute(select(db.erp_item.c.sku).where(db.erp_item.c.sku == sku)).first() is None:
                raise error(404, f"Item {sku} does not exist.")
            conn.execute(db.erp_stock.delete().where(db.erp_stock.c.sku == sku))
            conn.execute(db.erp_price.delete().where(db.erp_price.c.sku == sku))
            conn.execute(db.erp_item.delete().where(db.erp_item.c.sku == sku))
            change = state.emit_change(conn, "item", sku, {"sku": sku, "deleted": True}, now)
        state.committed([change])


def _sku_page(state: SandboxState, table: Any, sku: str | None, after_sku: str | None, limit: int) -> tuple[
        list[Any], str | None]:
    if limit > state.settings.erp_page_max:
        raise error(400, f"limit must be at most {state.settings.erp_page_max}")
    with state.engine.connect() as conn:
        if sku is not None:
            skus = [sku]
        else:
            q = select(table.c.sku).distinct().order_by(table.c.sku).limit(limit)
            if after_sku:
                q = q.where(table.c.sku > after_sku)
            skus = list(conn.execute(q).scalars())
        order = [table.c.sku, table.c.location] if "location" in table.c else [table.c.sku]
        rows = conn.execute(select(table).where(table.c.sku.in_(skus)).order_by(*order)).all() if skus else []
    nxt = skus[-1] if sku is None and len(skus) == limit else None
    return list(rows), nxt


@router.get("/stock", response_model=StockPage, summary="Stock per location; a page holds all locations of its SKUs")
def list_stock(
    state: State,
    sku: str | None = None,
    after_sku: str | None = None,
    limit: Annotated[int, Query(ge=1, description="SKUs per page")] = 500,
) -> dict[str, Any]:
    rows, nxt = _sku_page(state, db.erp_stock, sku, after_sku, limit)
    return {"stock": [{"sku": r.sku, "location": r.location, "quantity": r.quantity, "updated_at": iso(r.updated_at)}
                      for r in rows], "next_after_sku": nxt}


class QuantityIn(BaseModel):
    quantity: int


@router.put("/stock/{sku:path}/{location}", response_model=StockLevel, summary="Set stock (emits a stock change)")
def put_stock(sku: str, location: str, body: QuantityIn, state: State) -> dict[str, Any]:
    now = datetime.now(UTC)
    with state.write_lock:
        with state.engine.begin() as conn:
            if conn.execute(select(db.erp_item.c.sku).where(db.erp_item.c.sku == sku)).first() is None:
                raise error(404, f"Item {sku} does not exist.")
            t = db.erp_stock
            updated = conn.execute(
                t.update().where(t.c.sku == sku, t.c.location == location).values(quantity=body.quantity,
                                                                                  updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(t.insert().values(sku=sku, location=location, quantity=body.quantity, updated_at=now))
            change = state.emit_change(conn, "stock", sku, {"location": location, "quantity": body.quantity}, now)
        state.committed([change])
    return {"sku": sku, "location": location, "quantity": body.quantity, "updated_at": iso(now)}


@router.get("/prices", response_model=PricePage, summary="Live prices in SKU order (keyset pages), or one SKU's")
def list_prices(
    state: State,
    sku: str | None = None,
    after_sku: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> dict[str, Any]:
    rows, nxt = _sku_page(state, db.erp_price, sku, after_sku, limit)
    return {"prices": [{"sku": r.sku, "price": r.price, "currency": r.currency, "updated_at": iso(r.updated_at)}
                       for r in rows], "next_after_sku": nxt}


class PriceIn(BaseModel):
    price: float = Field(ge=0)
    currency: str = Field("USD", min_length=3, max_length=3)


@router.put("/prices/{sku:path}", response_model=Price, summary="Set the live price (emits a price change)")
def put_price(sku: str, body: PriceIn, state: State) -> dict[str, Any]:
    return set_price(state, sku, body.price, body.currency)


@router.get("/changes", response_model=ChangePage, summary="The change feed after seq N (gap-free, commit order)")
def list_changes(
    state: State,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> dict[str, Any]:
    if limit > state.settings.erp_page_max:
        raise error(400, f"limit must be at most {state.settings.erp_page_max}")
    t = db.erp_change
    with state.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.seq > after).order_by(t.c.seq).limit(limit)).all()
        last = conn.execute(select(func.max(t.c.seq))).scalar() or 0
    return {
        "changes": [{"seq": r.seq, "topic": r.topic, "sku": r.sku, "data": r.data, "committed_at": iso(r.committed_at)}
                    for r in rows],
        "last_seq": last,
    }


@router.post("/webhooks", status_code=201, response_model=Webhook, summary="Subscribe a URL to change topics")
def create_webhook(body: WebhookIn, state: State) -> dict[str, Any]:
    if not body.url.startswith(("http://", "https://")):
        raise error(422, "url must be an http(s) URL")
    created = datetime.now(UTC)
    hook: dict[str, Any] = {"id": uuid.uuid4().hex[:16], "url": body.url, "topics": list(body.topics)}
    with state.write_lock, state.engine.begin() as conn:
        conn.execute(db.erp_webhook.insert().values(**hook, created_at=created))
    return {**hook, "created_at": iso(created)}


@router.get("/webhooks", response_model=list[Webhook])
def list_webhooks(state: State) -> list[dict[str, Any]]:
    with state.engine.connect() as conn:
        rows = conn.execute(select(db.erp_webhook).order_by(db.erp_webhook.c.created_at)).all()
    return [{"id": r.id, "url": r.url, "topics": r.topics, "created_at": iso(r.created_at)} for r in rows]


@router.get("/webhooks/{hook_id}", response_model=Webhook)
def get_webhook(hook_id: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        r = conn.execute(select(db.erp_webhook).where(db.erp_webhook.c.id == hook_id)).first()
    if r is None:
        raise error(404, f"Webhook {hook_id} does not exist.")
    deliveries = [d for d in state.webhooks.deliveries if d["subscription"] == hook_id]
    return {"id": r.id, "url": r.url, "topics": r.topics, "created_at": iso(r.created_at), "deliveries": deliveries}


@router.delete("/webhooks/{hook_id}", status_code=204)
def delete_webhook(hook_id: str, state: State) -> None:
    with state.write_lock, state.engine.begin() as conn:
        if not conn.execute(db.erp_webhook.delete().where(db.erp_webhook.c.id == hook_id)).rowcount:
            raise error(404, f"Webhook {hook_id} does not exist.")




# ------------------------------------------------------------------------------------------- reference tables
#: The ERP's reference tables served at /erp/units and /erp/countries. Our ERP is a modelled system with no
#: published API, so the shapes are ours: a unit is its code, kind (count, weight or length) and the spellings
#: clerks use for it; a country is its ISO 3166-1 alpha-2 code, alpha-3 code and names.
ReferenceTable = Literal["units", "countries"]
_TABLE_NAME: Final[dict[str, str]] = {"units": "unit", "countries": "country"}


class Unit(BaseModel):
    code: str = Field(min_length=1, max_length=32)
    kind: Literal["count", "weight", "length"]
    aliases: list[str] = Field(default_factory=list)


class UnitWrite(BaseModel):
    kind: Literal["count", "weight", "length"]
    aliases: list[str] = Field(default_factory=list)


class Country(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{2}$")
    alpha3: str = Field(pattern=r"^[A-Z]{3}$")
    names: list[str] = Field(default_factory=list)


class CountryWrite(BaseModel):
    alpha3: str = Field(pattern=r"^[A-Z]{3}$")
    names: list[str] = Field(default_factory=list)


def standard_reference(table: ReferenceTable) -> dict[str, dict[str, Any]]:
    """The table as the ERP ships it: what the hub was seeded with (catalog_sync.refdata.gate_seed)."""
    from catalog_sync.refdata import gate_seed

    return gate_seed()[_TABLE_NAME[table]]


def reference_rows(state: SandboxState, table: ReferenceTable) -> list[dict[str, Any]]:
    rows = dict(standard_reference(table))
    with state.engine.connect() as conn:
        for r in conn.execute(select(db.erp_reference).where(db.erp_reference.c.table_name == _TABLE_NAME[table])):
            if r.retired:
                rows.pop(r.code, None)
            else:
                rows[r.code] = dict(r.attributes)
    return [{"code": code, **attrs} for code, attrs in sorted(rows.items())]


def _put_reference(state: SandboxState, table: ReferenceTable, code: str, attributes: dict[str, Any] | None) -> None:
    values = {"attributes": attributes or {}, "retired": attributes is None, "updated_at": datetime.now(UTC)}
    key = (db.erp_reference.c.table_name == _TABLE_NAME[table]) & (db.erp_reference.c.code == code)
    with state.write_lock, state.engine.begin() as conn:
        if conn.execute(db.erp_reference.update().where(key).values(**values)).rowcount == 0:
            conn.execute(db.erp_reference.insert().values(table_name=_TABLE_NAME[table], code=code, **values))


@router.get("/units", summary="The units of measure the ERP books in")
def list_units(state: State) -> dict[str, list[Unit]]:
    return {"units": [Unit(**row) for row in reference_rows(state, "units")]}


@router.put("/units/{code}", response_model=Unit, summary="Add or change a unit of measure (ERP administration)")
def put_unit(code: str, body: UnitWrite, state: State) -> dict[str, Any]:
    if not 0 < len(code) <= 32:
        raise error(422, "a unit code has 1 to 32 characters")
    _put_reference(state, "units", code, body.model_dump())
    return {"code": code, **body.model_dump()}


@router.delete("/units/{code}", status_code=204, responses={404: {"description": "unknown unit"}},
               summary="Retire a unit of measure")
def delete_unit(code: str, state: State) -> None:
    if code not in {r["code"] for r in reference_rows(state, "units")}:
        raise error(404, f"Unit {code} does not exist.")
    _put_reference(state, "units", code, None)


@router.get("/countries", summary="The countries of origin the ERP knows")
def list_countries(state: State) -> dict[str, list[Country]]:
    return {"countries": [Country(**row) for row in reference_rows(state, "countries")]}


@router.put("/countries/{code}", response_model=Country, summary="Add or change a country (ERP administration)")
def put_country(code: str, body: CountryWrite, state: State) -> dict[str, Any]:
    if not (len(code) == 2 and code.isascii() and code.isupper() and code.isalpha()):
        raise error(422, "a country code is an ISO 3166-1 alpha-2 code (two capital letters)")
    _put_reference(state, "countries", code, body.model_dump())
    return {"code": code, **body.model_dump()}
