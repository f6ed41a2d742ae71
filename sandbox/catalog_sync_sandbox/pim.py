"""The PIM, in the shape of Akeneo's REST API v1: OAuth2 password grant, products, product models, batch PATCH.

Simplifications (see docs/adr/0002): one channel (``ecommerce``), the locales of ``domain.LOCALES``, a fixed
attribute catalog (``seed.PIM_ATTRIBUTES``), a variant product's GET shows its own values only (no inheritance),
and a refresh token stays valid until it expires rather than being rotated.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Table, and_, not_, select

from catalog_sync.domain import CHANNEL, LOCALES, LifecycleStatus
from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, aware, error, iso
from catalog_sync_sandbox.seed import PIM_ATTRIBUTES
from catalog_sync_sandbox.state import SandboxState

API: Final = "/pim/api/rest/v1"
COLLECTION_TYPE: Final = "application/vnd.akeneo.collection+json"
PRODUCT_KEYS: Final = {"identifier", "enabled", "family", "categories", "parent", "values", "groups",
                       "associations", "created", "updated", "_links"}
MODEL_KEYS: Final = {"code", "family", "family_variant", "parent", "categories", "values", "associations",
                     "created", "updated", "_links"}
TEXT_MAX: Final = 255
TEXTAREA_MAX: Final = 65535

basic = HTTPBasic(auto_error=False, scheme_name="pimClient")
bearer = HTTPBearer(auto_error=False, scheme_name="pimBearer")
token_router = APIRouter(prefix="/pim/api/oauth/v1", tags=["pim"])


class TokenRequest(BaseModel):
    grant_type: str = Field(description='"password" or "refresh_token"')
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    expires_in: int
    token_type: str = "bearer"
    scope: str | None = None
    refresh_token: str


def _issue(state: SandboxState, conn: Connection, client_id: str, username: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    access, refresh = secrets.token_hex(20), secrets.token_hex(20)
    lifetime = state.settings.token_lifetime_s
    conn.execute(db.pim_token.insert(), [
        {"token": access, "kind": "access", "client_id": client_id, "username": username,
         "expires_at": now + timedelta(seconds=lifetime)},
        {"token": refresh, "kind": "refresh", "client_id": client_id, "username": username,
         "expires_at": now + timedelta(seconds=state.settings.refresh_token_lifetime_s)},
    ])
    return {"access_token": access, "expires_in": lifetime, "token_type": "bearer", "scope": None,
            "refresh_token": refresh}


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


@token_router.post("/token", response_model=TokenResponse, summary="OAuth2 token: password or refresh_token grant")
def token(
    body: TokenRequest,
    client: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    state: State,
) -> dict[str, Any]:
    creds = state.credentials["pim"]
    if client is None or not (_same(client.username, creds["client_id"])
                              and _same(client.password, creds["client_secret"])):
        raise error(401, "The client credentials are invalid.")
    with state.write_lock, state.engine.begin() as conn:
        if body.grant_type == "password":
            if not (_same(body.username, creds["username"]) and _same(body.password, creds["password"])):
                raise error(401, "Your authentication is invalid.")
            return _issue(state, conn, client.username, creds["username"])
        if body.grant_type == "refresh_token":
            row = conn.execute(select(db.pim_token).where(
                db.pim_token.c.token == (body.refresh_token or ""), db.pim_token.c.kind == "refresh")).first()
            if row is None or aware(row.expires_at) <= datetime.now(UTC):  # type: ignore[operator]
                raise error(401, "Refresh token is invalid or has expired.")
            return _issue(state, conn, client.username, row.username)
    raise error(400, f'Unsupported grant_type "{body.grant_type}" (password or refresh_token).')


def bearer_auth(
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    state: State,
) -> str:
    if cred is None or cred.scheme.lower() != "bearer":
        raise error(401, "Authentication is required.")
    with state.engine.connect() as conn:
        row = conn.execute(select(db.pim_token.c.expires_at).where(
            db.pim_token.c.token == cred.credentials, db.pim_token.c.kind == "access")).first()
    if row is None:
        raise error(401, "The access token provided is invalid.")
    if aware(row.expires_at) <= datetime.now(UTC):  # type: ignore[operator]
        raise error(401, "The access token provided has expired.")
    return cred.credentials


router = APIRouter(prefix=API, tags=["pim"], dependencies=[Depends(bearer_auth)])


# ------------------------------------------------------------------------------------------- concurrency cap
Scope = MutableMapping[str, Any]


class PimLimitsMiddleware:
    """At most ``pim_max_concurrent`` requests in flight per token, and ``pim_rate_per_s`` per second: 429 beyond."""

    def __init__(self, app: Callable[..., Awaitable[None]], state_getter: Callable[[], SandboxState]) -> None:
        self.app = app
        self.state_getter = state_getter

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API):
            await self.app(scope, receive, send)
            return
        auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token:
            await self.app(scope, receive, send)
            return
        state = self.state_getter()
        retry_after = state.pim_enter(token)
        if retry_after is not None:
            body = json.dumps({"code": 429, "message": "Too many requests."}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(max(1, round(retry_after))).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            state.pim_leave(token)


# ------------------------------------------------------------------------------------------------ schemas
class Value(BaseModel):
    locale: str | None = None
    scope: str | None = None
    data: Any = None


class Link(BaseModel):
    href: str


class Product(BaseModel):
    identifier: str
    enabled: bool
    family: str | None = None
    categories: list[str] = []
    groups: list[str] = []
    parent: str | None = None
    values: dict[str, list[Value]] = {}
    created: str | None = None
    updated: str | None = None


class ProductModel(BaseModel):
    code: str
    family: str | None = None
    family_variant: str | None = None
    parent: str | None = None
    categories: list[str] = []
    values: dict[str, list[Value]] = {}
    created: str | None = None
    updated: str | None = None


class ProductList(BaseModel):
    links: dict[str, Link] = Field(alias="_links")
    embedded: dict[str, list[Product]] = Field(alias="_embedded")
    current_page: int | None = None
    items_count: int | None = None


class ProductModelList(BaseModel):
    links: dict[str, Link] = Field(alias="_links")
    embedded: dict[str, list[ProductModel]] = Field(alias="_embedded")
    current_page: int | None = None
    items_count: int | None = None


def _ts_akeneo(value: datetime | None) -> str | None:
    text = iso(value)
    return text.replace("Z", "+00:00") if text else None


def product_doc(row: Any) -> dict[str, Any]:
    return {"identifier": row.identifier, "enabled": bool(row.enabled), "family": row.family,
            "categories": row.categories or [], "groups": [], "parent": row.parent, "values": row.values or {},
            "created": _ts_akeneo(row.created), "updated": _ts_akeneo(row.updated)}


def model_doc(row: Any) -> dict[str, Any]:
    return {"code": row.code, "family": row.family, "family_variant": row.family_variant, "parent": row.parent,
            "categories": row.categories or [], "values": row.values or {},
            "created": _ts_akeneo(row.created), "updated": _ts_akeneo(row.updated)}


# ---------------------------------------------------------------------------------------------------- search
def _akeneo_time(value: Any, prop: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise error(422, f'Property "{prop}" expects a string with the format "yyyy-mm-dd hh:mm:ss" as data, '
                         f'"{value}" given.') from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(table: Table, key: str, search: str | None) -> list[Any]:
    if not search:
        return []
    try:
        spec = json.loads(search)
    except ValueError:
        raise error(400, "Search query parameter should be valid JSON.") from None
    if not isinstance(spec, dict):
        raise error(422, "Search query parameter has to be an array.")
    clauses: list[Any] = []
    for prop, conditions in spec.items():
        if not isinstance(conditions, list):
            raise error(422, f'Structure of filter "{prop}" should respect this structure: '
                             f'{{"{prop}":[{{"operator": "my_operator", "value": "my_value"}}]}}')
        for cond in conditions:
            op = str(cond.get("operator", "")).upper() if isinstance(cond, dict) else ""
            value = cond.get("value") if isinstance(cond, dict) else None
            if prop == "updated" and op in {">", "<"}:
                ts = _akeneo_time(value, prop)
                clauses.append(table.c.updated > ts if op == ">" else table.c.updated < ts)
            elif prop == "updated" and op == "BETWEEN" and isinstance(value, list) and len(value) == 2:
                clauses.append(table.c.updated.between(_akeneo_time(value[0], prop), _akeneo_time(value[1], prop)))
            elif prop == "enabled" and op in {"=", "!="} and isinstance(value, bool) and "enabled" in table.c:
                clauses.append(table.c.enabled == (value if op == "=" else not value))
            elif prop in {"identifier", "code"} and prop == key and op in {"IN", "NOT IN"} and isinstance(value, list):
                clause = table.c[key].in_([str(v) for v in value])
                clauses.append(clause if op == "IN" else not_(clause))
            elif prop == "parent" and op == "IN" and isinstance(value, list):
                clauses.append(table.c.parent.in_([str(v) for v in value]))
            elif prop == "parent" and op in {"EMPTY", "NOT EMPTY"}:
                clauses.append(table.c.parent.is_(None) if op == "EMPTY" else table.c.parent.is_not(None))
            else:
                raise error(422, f'Filter on property "{prop}" is not supported or does not support operator '
                                 f'"{op}".')
    return clauses


def _page(
    request: Request,
    state: SandboxState,
    table: Table,
    key: str,
    doc: Callable[[Any], dict[str, Any]],
    pagination_type: str,
    limit: int,
    page: int,
    search: str | None,
    search_after: str | None,
    with_count: bool,
) -> dict[str, Any]:
    if limit > state.settings.pim_page_max:
        raise error(422, f"You cannot request more than {state.settings.pim_page_max} items.")
    clauses = _filters(table, key, search)
    query = select(table).where(and_(*clauses)) if clauses else select(table)
    base = str(request.url).split("?", 1)[0]
    params = {k: v for k, v in request.query_params.items() if k not in {"search_after", "page"}}
    out: dict[str, Any] = {}
    with state.engine.connect() as conn:
        if pagination_type == "search_after":
            if search_after:
                query = query.where(table.c[key] > search_after)
            rows = conn.execute(query.order_by(table.c[key]).limit(limit + 1)).all()
            more = len(rows) > limit
            rows = rows[:limit]
            links = {"self": {"href": str(request.url)}, "first": {"href": f"{base}?{urlencode(params)}"}}
            if more and rows:
                links["next"] = {"href": f"{base}?{urlencode({**params, 'search_after': getattr(rows[-1], key)})}"}
        elif pagination_type == "page":
            if page < 1:
                raise error(422, "page must be at least 1")
            rows = conn.execute(query.order_by(table.c[key]).offset((page - 1) * limit).limit(limit + 1)).all()
            more = len(rows) > limit
            rows = rows[:limit]
            links = {"self": {"href": str(request.url)},
                     "first": {"href": f"{base}?{urlencode({**params, 'page': 1})}"}}
            if page > 1:
                links["previous"] = {"href": f"{base}?{urlencode({**params, 'page': page - 1})}"}
            if more:
                links["next"] = {"href": f"{base}?{urlencode({**params, 'page': page + 1})}"}
            out["current_page"] = page
            if with_count:
                from sqlalchemy import func

                out["items_count"] = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
        else:
            raise error(422, f'Pagination type "{pagination_type}" does not exist (page or search_after).')
    items = []
    for r in rows:
        item = doc(r)
        item["_links"] = {"self": {"href": f"{base}/{getattr(r, key)}"}}
        items.append(item)
    return {"_links": links, **out, "_embedded": {"items": items}}


# --------------------------------------------------------------------------------------------- validation
class Invalid(Exception):
    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


def _amount(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        Decimal(str(value))
    except InvalidOperation:
        return False
    return isinstance(value, str)


def check_values(values: Any) -> list[dict[str, str]]:
    """Errors in an Akeneo ``values`` object, one per bad attribute or entry (empty when valid)."""
    if not isinstance(values, dict):
        return [{"property": "values", "message": "Property \"values\" expects an object."}]
    errors: list[dict[str, str]] = []
    for attr, entries in values.items():
        spec = PIM_ATTRIBUTES.get(attr)
        if spec is None:
            errors.append({"property": attr, "message": f'The {attr} attribute does not exist in the attribute '
                                                        f'catalog.'})
            continue
        kind, localizable, scopable = spec
        if not isinstance(entries, list):
            errors.append({"property": attr, "message": f'Property "{attr}" expects an array of values.'})
            continue
        for entry in entries:
            if not isinstance(entry, dict) or "data" not in entry:
                errors.append({"property": attr, "message": "A value needs the keys locale, scope and data."})
                continue
            locale, scope, data = entry.get("locale"), entry.get("scope"), entry["data"]
            if localizable and locale not in LOCALES:
                errors.append({"property": attr, "message": f'Attribute "{attr}" expects an existing and activated '
                                                            f'locale, "{locale}" given.'})
            elif not localizable and locale is not None:
                errors.append({"property": attr, "message": f'Attribute "{attr}" does not expect a locale, '
                                                            f'"{locale}" given.'})
            if scopable and scope != CHANNEL:
                errors.append({"property": attr, "message": f'Attribute "{attr}" expects an existing scope, '
                                                            f'"{scope}" given.'})
            elif not scopable and scope is not None:
                errors.append({"property": attr, "message": f'Attribute "{attr}" does not expect a scope, '
                                                            f'"{scope}" given.'})
            if data is None:
                continue
            problem = _data_problem(attr, kind, data)
            if problem:
                errors.append({"property": attr, "message": problem})
    return errors


def _data_problem(attr: str, kind: str, data: Any) -> str | None:
    if kind in {"text", "textarea", "simpleselect"}:
        if not isinstance(data, str):
            return f'Property "{attr}" expects a string as data, "{type(data).__name__}" given.'
        limit = TEXT_MAX if kind == "text" else TEXTAREA_MAX
        if len(data) > limit and kind != "simpleselect":
            return f"This value is too long. It should have {limit} characters or less."
        if attr == "lifecycle_status" and data not in {s.value for s in LifecycleStatus}:
            return f'Property "lifecycle_status" expects a valid option code. The option "{data}" does not exist.'
    elif kind == "price_collection":
        if not isinstance(data, list) or not all(
            isinstance(p, dict) and _amount(p.get("amount")) and isinstance(p.get("currency"), str) for p in data
        ):
            return f'Property "{attr}" expects an array of {{"amount", "currency"}} objects as data.'
    elif kind == "asset_collection":
        if not isinstance(data, list) or not all(isinstance(a, str) for a in data):
            return f'Property "{attr}" expects an array of asset codes as data.'
    elif kind == "metric":
        if not (isinstance(data, dict) and _amount(data.get("amount")) and isinstance(data.get("unit"), str)):
            return f'Property "{attr}" expects an array with the keys "amount" and "unit" as data.'
    return None


def merge_values(current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Akeneo PATCH semantics: values merge by (attribute, locale, scope); ``data: null`` removes one."""
    merged = {attr: list(entries) for attr, entries in current.items()}
    for attr, entries in incoming.items():
        kept = merged.get(attr, [])
        for entry in entries:
            slot = (entry.get("locale"), entry.get("scope"))
            kept = [e for e in kept if (e.get("locale"), e.get("scope")) != slot]
            if entry.get("data") is not None:
                kept.append({"locale": entry.get("locale"), "scope": entry.get("scope"), "data": entry["data"]})
        if kept:
            merged[attr] = kept
        else:
            merged.pop(attr, None)
    return merged


def _check_top(doc: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise Invalid(f'Property "{unknown[0]}" does not exist. Check the expected format on the API '
                      f'documentation.', [{"property": u, "message": "unknown property"} for u in unknown])
    if "categories" in doc and not (isinstance(doc["categories"], list)
                                    and all(isinstance(c, str) for c in doc["categories"])):
        raise Invalid('Property "categories" expects an array of strings as data.',
                      [{"property": "categories", "message": "expects an array of strings"}])
    for name in ("family", "parent", "family_variant"):
        if name in doc and doc[name] is not None and not isinstance(doc[name], str):
            raise Invalid(f'Property "{name}" expects a string as data.',
                          [{"property": name, "message": "expects a string"}])
    errors = check_values(doc.get("values", {}))
    if errors:
        raise Invalid("Validation failed.", errors)


def upsert_product(conn: Connection, doc: Any, identifier: str | None = None) -> int:
    """Validate and write one product; returns 201 (created) or 204 (updated or unchanged); raises :class:`Invalid`."""
    if not isinstance(doc, dict):
        raise Invalid("Invalid json message received")
    ident = doc.get("identifier", identifier)
    if identifier is not None and ident != identifier:
        raise Invalid(f'The identifier "{ident}" provided in the request body must match the identifier '
                      f'"{identifier}" provided in the url.')
    if not isinstance(ident, str) or not ident.strip():
        raise Invalid('Property "identifier" is required and must be a non-empty string.',
                      [{"property": "identifier", "message": "This value should not be blank."}])
    _check_top(doc, PRODUCT_KEYS)
    if "enabled" in doc and not isinstance(doc["enabled"], bool):
        raise Invalid('Property "enabled" expects a boolean as data.',
                      [{"property": "enabled", "message": "expects a boolean"}])
    if doc.get("parent"):
        if conn.execute(select(db.pim_product_model.c.code).where(
                db.pim_product_model.c.code == doc["parent"])).first() is None:
            raise Invalid(f'Property "parent" expects a valid parent code. The parent product model does not '
                          f'exist, "{doc["parent"]}" given.', [{"property": "parent", "message": "unknown"}])
    t = db.pim_product
    row = conn.execute(select(t).where(t.c.identifier == ident)).first()
    now = datetime.now(UTC)
    if row is None:
        conn.execute(t.insert().values(
            identifier=ident, enabled=doc.get("enabled", True), family=doc.get("family"), parent=doc.get("parent"),
            categories=doc.get("categories", []), values=merge_values({}, doc.get("values", {})),
            created=now, updated=now))
        return 201
    new = {
        "enabled": doc.get("enabled", bool(row.enabled)),
        "family": doc.get("family", row.family),
        "parent": doc.get("parent", row.parent),
        "categories": doc.get("categories", row.categories),
        "values": merge_values(row.values or {}, doc.get("values", {})),
    }
    old = {"enabled": bool(row.enabled), "family": row.family, "parent": row.parent, "categories": row.categories,
           "values": row.values}
    if new != old:  # Akeneo leaves "updated" alone when a PATCH changes nothing
        conn.execute(t.update().where(t.c.identifier == ident).values(**new, updated=now))
    return 204


def upsert_model(conn: Connection, doc: Any, code: str | None = None) -> int:
    if not isinstance(doc, dict):
        raise Invalid("Invalid json message received")
    ident = doc.get("code", code)
    if code is not None and ident != code:
        raise Invalid(f'The code "{ident}" provided in the request body must match the code "{code}" provided '
                      f'in the url.')
    if not isinstance(ident, str) or not ident.strip():
        raise Invalid('Property "code" is required and must be a non-empty string.',
                      [{"property": "code", "message": "This value should not be blank."}])
    _check_top(doc, MODEL_KEYS)
    t = db.pim_product_model
    row = conn.execute(select(t).where(t.c.code == ident)).first()
    now = datetime.now(UTC)
    if row is None:
        if not doc.get("family_variant"):
            raise Invalid('Property "family_variant" is required to create a product model.',
                          [{"property": "family_variant", "message": "This value should not be blank."}])
        conn.execute(t.insert().values(
            code=ident, family=doc.get("family"), family_variant=doc["family_variant"], parent=doc.get("parent"),
            categories=doc.get("categories", []), values=merge_values({}, doc.get("values", {})),
            created=now, updated=now))
        return 201
    new = {"family": doc.get("family", row.family), "family_variant": doc.get("family_variant", row.family_variant),
           "parent": doc.get("parent", row.parent), "categories": doc.get("categories", row.categories),
           "values": merge_values(row.values or {}, doc.get("values", {}))}
    old = {"family": row.family, "family_variant": row.family_variant, "parent": row.parent,
           "categories": row.categories, "values": row.values}
    if new != old:
        conn.execute(t.update().where(t.c.code == ident).values(**new, updated=now))
    return 204


# ------------------------------------------------------------------------------------------------- routes
COLLECTION_BODY = {"requestBody": {"required": True, "content": {COLLECTION_TYPE: {"schema": {
    "type": "string", "description": "one JSON object per line, at most 100 lines"}}}},
    "responses": {"200": {"description": "one status line per item", "content": {COLLECTION_TYPE: {"schema": {
        "type": "string",
        "description": 'lines of {"line", "identifier"|"code", "status_code", "message"?, "errors"?}'}}}},
        "413": {"description": "more lines than the batch limit"},
        "415": {"description": "wrong Content-Type"}}}
SINGLE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
               "responses": {"201": {"description": "created"}, "204": {"description": "updated"},
                             "422": {"description": "invalid: message and errors"}}}


async def _collection(request: Request, state: SandboxState, key: str,
                      write: Callable[[Connection, Any], int]) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != COLLECTION_TYPE:
        raise error(415, f'The "Content-Type" header is missing or wrong: "{COLLECTION_TYPE}" is expected.')
    raw = (await request.body()).decode("utf-8", errors="replace")
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) > state.settings.pim_batch_max:
        raise error(413, f"Too many resources to process, {state.settings.pim_batch_max} is the maximum allowed.")

    def run() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with state.write_lock:
            for n, text in enumerate(lines, start=1):
                try:
                    doc = json.loads(text)
                except ValueError:
                    out.append({"line": n, "status_code": 400, "message": "Invalid json message received"})
                    continue
                ident = doc.get(key) if isinstance(doc, dict) else None
                result: dict[str, Any] = {"line": n, key: ident}
                try:
                    # one transaction per line: a bad item never undoes a good one
                    with state.engine.begin() as conn:
                        result["status_code"] = write(conn, doc)
                except Invalid as exc:
                    result["status_code"] = 422
                    result["message"] = exc.message
                    if exc.errors:
                        result["errors"] = exc.errors
                out.append(result)
        return out

    from starlette.concurrency import run_in_threadpool

    results = await run_in_threadpool(run)
    body = "\n".join(json.dumps(r) for r in results)
    return Response(body, status_code=200, media_type=COLLECTION_TYPE)


def _single(state: SandboxState, doc: Any, write: Callable[[Connection, Any], int], location: str) -> Response:
    try:
        with state.write_lock, state.engine.begin() as conn:
            status = write(conn, doc)
    except Invalid as exc:
        raise error(422, exc.message, errors=exc.errors) from None
    return Response(status_code=status, headers={"Location": location})


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise error(400, "Invalid json message received") from None


@router.get("/products", response_model=ProductList, response_model_by_alias=True,
            response_model_exclude_unset=True, summary="List products (page or search_after pagination)")
def list_products(
    request: Request,
    state: State,
    pagination_type: Annotated[str, Query(description="page | search_after")] = "page",
    limit: Annotated[int, Query(ge=1)] = 10,
    page: int = 1,
    search: Annotated[str | None, Query(description="JSON: updated >,<,BETWEEN; enabled =,!=; identifier IN; "
                                                     "parent IN, EMPTY, NOT EMPTY")] = None,
    search_after: str | None = None,
    with_count: bool = False,
) -> dict[str, Any]:
    return _page(request, state, db.pim_product, "identifier", product_doc, pagination_type, limit, page, search,
                 search_after, with_count)


@router.patch("/products", summary="Create or update up to 100 products (one JSON per line)",
              openapi_extra=COLLECTION_BODY, response_class=Response)
async def patch_products(request: Request, state: State) -> Response:
    return await _collection(request, state, "identifier", lambda conn, doc: upsert_product(conn, doc))


@router.get("/products/{identifier}", response_model=Product)
def get_product(identifier: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        row = conn.execute(select(db.pim_product).where(db.pim_product.c.identifier == identifier)).first()
    if row is None:
        raise error(404, f'Product "{identifier}" does not exist or you do not have permission to access it.')
    return product_doc(row)


@router.patch("/products/{identifier}", openapi_extra=SINGLE_BODY, response_class=Response,
              summary="Create (201) or update (204) one product")
async def patch_product(identifier: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    doc = await _json_body(request)
    return await run_in_threadpool(_single, state, doc, lambda c, d: upsert_product(c, d, identifier),
                                   f"{API}/products/{identifier}")


@router.get("/product-models", response_model=ProductModelList, response_model_by_alias=True,
            response_model_exclude_unset=True, summary="List product models (configurable parents)")
def list_product_models(
    request: Request,
    state: State,
    pagination_type: Annotated[str, Query()] = "page",
    limit: Annotated[int, Query(ge=1)] = 10,
    page: int = 1,
    search: str | None = None,
    search_after: str | None = None,
    with_count: bool = False,
) -> dict[str, Any]:
    return _page(request, state, db.pim_product_model, "code", model_doc, pagination_type, limit, page, search,
                 search_after, with_count)


@router.patch("/product-models", summary="Create or update up to 100 product models (one JSON per line)",
              openapi_extra=COLLECTION_BODY, response_class=Response)
async def patch_product_models(request: Request, state: State) -> Response:
    return await _collection(request, state, "code", lambda conn, doc: upsert_model(conn, doc))


@router.get("/product-models/{code}", response_model=ProductModel)
def get_product_model(code: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        row = conn.execute(select(db.pim_product_model).where(db.pim_product_model.c.code == code)).first()
    if row is None:
        raise error(404, f'Product model "{code}" does not exist or you do not have permission to access it.')
    return model_doc(row)


@router.patch("/product-models/{code}", openapi_extra=SINGLE_BODY, response_class=Response)
async def patch_product_model(code: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    doc = await _json_body(request)
    return await run_in_threadpool(_single, state, doc, lambda c, d: upsert_model(c, d, code),
                                   f"{API}/product-models/{code}")


@router.get("/families/{family}/variants", summary="A family's variants with their axes")
def family_variants(family: str, request: Request, state: State) -> dict[str, Any]:
    t = db.pim_family_variant
    with state.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.family == family).order_by(t.c.code)).all()
    items = [{"code": r.code, "labels": {LOCALES[0]: r.code.replace("_", " ")},
              "variant_attribute_sets": [{"level": 1, "axes": r.axes, "attributes": list(r.axes)}]} for r in rows]
    return {"_links": {"self": {"href": str(request.url)}}, "current_page": 1, "_embedded": {"items": items}}


@router.get("/categories", summary="Category tree (codes, parents, labels)")
def categories(
    request: Request,
    state: State,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    page: Annotated[int, Query(ge=1)] = 1,
) -> dict[str, Any]:
    t = db.pim_category
    with state.engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.code).offset((page - 1) * limit).limit(limit + 1)).all()
    base = str(request.url).split("?", 1)[0]
    links: dict[str, Any] = {"self": {"href": str(request.url)}}
    if len(rows) > limit:
        links["next"] = {"href": f"{base}?{urlencode({'limit': limit, 'page': page + 1})}"}
    items = [{"code": r.code, "parent": r.parent, "labels": r.labels} for r in rows[:limit]]
    return {"_links": links, "current_page": page, "_embedded": {"items": items}}


