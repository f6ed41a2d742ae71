"""The PIM, in the shape of Akeneo PIM Community Edition 7's REST API v1: OAuth2 password grant, products and
product models (search filters, both paginations, collection PATCH), over the catalog structure of
``catalog_sync_sandbox.pim_structure``, against which every write is validated as Akeneo validates it.

Known differences from Akeneo are listed in docs/sandbox-api.md: among them, a variant product's GET shows its own
values only (no inheritance), attribute levels of family variants and axis values are not enforced, and a refresh
token stays valid until it expires rather than being rotated.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Table, and_, func, not_, or_, select

from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, aware, error, iso
from catalog_sync_sandbox.pim_structure import (
    API,
    COLLECTION_TYPE,
    Invalid,
    Structure,
    collection_patch,
    json_body,
    single_patch,
)
from catalog_sync_sandbox.pim_structure import router as structure_router
from catalog_sync_sandbox.state import SandboxState

PRODUCT_KEYS: Final = {"identifier", "enabled", "family", "categories", "parent", "values", "groups",
                       "associations", "quantified_associations", "created", "updated", "_links"}
MODEL_KEYS: Final = {"code", "family", "family_variant", "parent", "categories", "values", "associations",
                     "quantified_associations", "created", "updated", "_links"}
TEXT_MAX: Final = 255
TEXTAREA_MAX: Final = 65535
IDENTIFIER_MAX: Final = 255
#: What Akeneo refuses in a product identifier or a product model code: commas, semicolons, line breaks and
#: non-breaking spaces (a slash, "?", "#", "%" or a space are allowed, so clients must encode them in URLs).
FORBIDDEN_IN_IDENTIFIER: Final = re.compile(r"[,;\r\n\u00a0]")
#: Akeneo's date format in the created/updated filters of products and product models (akeneo-docs/filter.md).
FILTER_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

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
    """Akeneo's limits (https://api.akeneo.com/documentation/good-practices.html): at most ``pim_max_concurrent``
    API calls in flight per PIM connection (every token of one client id counts together) and
    ``pim_instance_max_concurrent`` on the instance, at most ``pim_rate_per_s`` a second on the instance; 429 with
    Retry-After beyond. A call whose token the PIM never issued is left to the bearer check (401), uncounted."""

    def __init__(self, app: Callable[..., Awaitable[None]], state_getter: Callable[[], SandboxState]) -> None:
        self.app = app
        self.state_getter = state_getter

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API):
            await self.app(scope, receive, send)
            return
        auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        state = self.state_getter()
        connection = state.pim_connection(token) if token else None
        if connection is None:
            await self.app(scope, receive, send)
            return
        retry_after = state.pim_enter(connection)
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
            state.pim_leave(connection)


# -------------------------------------------------------------------------------------------- answer shapes
def _ts_akeneo(value: datetime | None) -> str | None:
    text = iso(value.replace(microsecond=0) if value is not None else None)
    return text.replace("Z", "+00:00") if text else None


def product_doc(row: Any) -> dict[str, Any]:
    return {"identifier": row.identifier, "enabled": bool(row.enabled), "family": row.family,
            "categories": row.categories or [], "groups": [], "parent": row.parent, "values": row.values or {},
            "associations": row.associations or {}, "quantified_associations": {},
            "created": _ts_akeneo(row.created), "updated": _ts_akeneo(row.updated)}


def model_doc(row: Any) -> dict[str, Any]:
    return {"code": row.code, "family": row.family, "family_variant": row.family_variant, "parent": row.parent,
            "categories": row.categories or [], "values": row.values or {},
            "created": _ts_akeneo(row.created), "updated": _ts_akeneo(row.updated)}


def _now() -> datetime:
    # Akeneo keeps dates to the second; so does the sandbox, so "updated" filters compare as Akeneo's do.
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------------------------------------------- search
def _filter_time(value: Any, prop: str) -> datetime:
    if not isinstance(value, str) or not FILTER_DATE.match(value):
        raise error(422, f'Property "{prop}" expects a string with the format "yyyy-mm-dd hh:mm:ss" as data, '
                         f'"{value}" given.', errors=[{"property": prop, "message": "expects yyyy-mm-dd hh:mm:ss"}])
    # the server's time zone, which is UTC here (as on Akeneo's SaaS)
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _unsupported(prop: str, op: Any) -> Exception:
    return error(422, f'Filter on property "{prop}" is not supported or does not support operator "{op}".',
                 errors=[{"property": prop, "message": f'unsupported operator "{op}"'}])


def _string_list(value: Any, prop: str, op: str, cap: int | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(422, f'Property "{prop}" expects an array of strings as data with the operator "{op}".')
    if cap is not None and len(value) > cap:
        raise error(422, f'Property "{prop}" with the operator "{op}" takes at most {cap} values, {len(value)} '
                         'given.')
    return value


def _date_clause(column: Any, op: str, value: Any, prop: str) -> Any:
    if op == ">":
        return column > _filter_time(value, prop)
    if op == "<":
        return column < _filter_time(value, prop)
    if op in ("=", "!="):  # "during the given day", per akeneo-docs/filter.md
        start = _filter_time(value, prop).replace(hour=0, minute=0, second=0)
        same_day = and_(column >= start, column < start + timedelta(days=1))
        return same_day if op == "=" else not_(same_day)
    if op in ("BETWEEN", "NOT BETWEEN"):
        if not isinstance(value, list) or len(value) != 2:
            raise error(422, f'Property "{prop}" expects an array of two dates with the operator "{op}".')
        between = column.between(_filter_time(value[0], prop), _filter_time(value[1], prop))
        return between if op == "BETWEEN" else not_(between)
    if op == "SINCE LAST N DAYS":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise error(422, f'Property "{prop}" expects a positive integer with the operator "{op}".')
        return column >= datetime.now(UTC) - timedelta(days=value)
    raise _unsupported(prop, op)


def _categorised(conn: Connection, table: Table, key: str, test: Callable[[set[str]], bool]) -> list[str]:
    # categories are a JSON list per row; the sandbox scans them rather than speaking each database's JSON dialect
    return [getattr(r, key) for r in conn.execute(select(table.c[key], table.c.categories))
            if test(set(r.categories or []))]


def _filters(conn: Connection, table: Table, key: str, search: str | None, structure: Structure) -> list[Any]:
    """SQL clauses for an Akeneo ``search`` on products (``key == "identifier"``) or product models (``"code"``),
    with the properties and operators akeneo-docs/filter.md lists for each; anything else is refused."""
    if not search:
        return []
    try:
        spec = json.loads(search)
    except ValueError:
        raise error(400, "Search query parameter should be valid JSON.") from None
    if not isinstance(spec, dict):
        raise error(422, "Search query parameter has to be an array.")
    models = key == "code"
    clauses: list[Any] = []
    for prop, conditions in spec.items():
        if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
            raise error(422, f'Structure of filter "{prop}" should respect this structure: '
                             f'{{"{prop}":[{{"operator": "my_operator", "value": "my_value"}}]}}')
        for cond in conditions:
            op = str(cond.get("operator", ""))
            value = cond.get("value")
            if prop == "identifier":  # products: the identifier attribute; product models: their code
                column = table.c[key]
                if op in ("IN", "NOT IN"):
                    clause = column.in_(_string_list(value, prop, op, 100))
                    clauses.append(clause if op == "IN" else not_(clause))
                elif models:
                    raise _unsupported(prop, op)
                elif op in ("=", "!="):
                    clauses.append(column == str(value) if op == "=" else column != str(value))
                elif op == "STARTS WITH":
                    clauses.append(column.startswith(str(value), autoescape=True))
                elif op == "CONTAINS":
                    clauses.append(column.contains(str(value), autoescape=True))
                elif op == "DOES NOT CONTAIN":
                    clauses.append(not_(column.contains(str(value), autoescape=True)))
                elif op in ("EMPTY", "NOT EMPTY"):
                    clauses.append(column.is_(None) if op == "EMPTY" else column.is_not(None))
                else:
                    raise _unsupported(prop, op)
            elif prop in ("updated", "created"):
                clauses.append(_date_clause(table.c[prop], op, value, prop))
            elif prop == "enabled" and not models:
                if op not in ("=", "!=") or not isinstance(value, bool):
                    raise _unsupported(prop, op) if op not in ("=", "!=") else error(
                        422, 'Property "enabled" expects a boolean as data.')
                clauses.append(table.c.enabled == (value if op == "=" else not value))
            elif prop == "family":
                if op in ("IN", "NOT IN"):
                    clause = table.c.family.in_(_string_list(value, prop, op))
                    clauses.append(clause if op == "IN" else or_(not_(clause), table.c.family.is_(None)))
                elif op in ("EMPTY", "NOT EMPTY"):
                    clauses.append(table.c.family.is_(None) if op == "EMPTY" else table.c.family.is_not(None))
                else:
                    raise _unsupported(prop, op)
            elif prop == "parent":
                if op == "IN":
                    clauses.append(table.c.parent.in_(_string_list(value, prop, op)))
                elif op == "=" and not models:  # descendants; the sandbox's models have one level
                    clauses.append(table.c.parent == str(value))
                elif op in ("EMPTY", "NOT EMPTY"):
                    clauses.append(table.c.parent.is_(None) if op == "EMPTY" else table.c.parent.is_not(None))
                else:
                    raise _unsupported(prop, op)
            elif prop == "categories":
                if op in ("IN", "NOT IN", "IN OR UNCLASSIFIED"):
                    wanted = set(_string_list(value, prop, op))
                    unknown = sorted(wanted - set(structure.categories))
                    if unknown:
                        raise error(422, f'Property "categories" expects a list of valid category codes. The '
                                         f'category "{unknown[0]}" does not exist.')

                    def classified(cats: set[str], op: str = op, wanted: set[str] = wanted) -> bool:
                        if op == "IN":
                            return bool(cats & wanted)
                        if op == "NOT IN":
                            return not cats & wanted
                        return not cats or bool(cats & wanted)  # IN OR UNCLASSIFIED

                    clauses.append(table.c[key].in_(_categorised(conn, table, key, classified)))
                elif op == "UNCLASSIFIED":
                    clauses.append(table.c[key].in_(_categorised(conn, table, key, lambda cats: not cats)))
                else:
                    raise _unsupported(prop, op)
            else:
                raise _unsupported(prop, op)
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
    base = str(request.url).split("?", 1)[0]
    params = {k: v for k, v in request.query_params.items() if k not in {"search_after", "page"}}
    out: dict[str, Any] = {}
    with state.engine.connect() as conn:
        clauses = _filters(conn, table, key, search, Structure.load(conn) if search else Structure())
        query = select(table).where(and_(*clauses)) if clauses else select(table)
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
                out["items_count"] = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
        else:
            raise error(422, f'Pagination type "{pagination_type}" does not exist (page or search_after).')
    items = []
    for r in rows:
        item = doc(r)
        item["_links"] = {"self": {"href": f"{base}/{quote(getattr(r, key), safe='')}"}}
        items.append(item)
    return {"_links": links, **out, "_embedded": {"items": items}}


# --------------------------------------------------------------------------------------------- validation
def _amount(value: Any) -> Decimal | None:
    """A number Akeneo takes as an amount (a JSON number or a numeric string), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _number_problem(attr: dict[str, Any], number: Decimal) -> str | None:
    if attr.get("decimals_allowed") is False and number != number.to_integral_value():
        return "This value should be an integer."
    if attr.get("negative_allowed") is False and number < 0:
        return "This value should be greater than or equal to 0."
    return None


def _data_problem(code: str, attr: dict[str, Any], data: Any, structure: Structure) -> str | None:
    kind = attr["type"]
    if kind in ("pim_catalog_text", "pim_catalog_textarea", "pim_catalog_identifier"):
        if not isinstance(data, str):
            return f'Property "{code}" expects a string as data, "{type(data).__name__}" given.'
        limit = attr.get("max_characters") or (TEXTAREA_MAX if kind == "pim_catalog_textarea" else TEXT_MAX)
        if len(data) > limit:
            return f"This value is too long. It should have {limit} characters or less."
    elif kind == "pim_catalog_simpleselect":
        if not isinstance(data, str):
            return f'Property "{code}" expects a string as data, "{type(data).__name__}" given.'
        if data.lower() not in structure.options.get(code, set()):
            return f'Property "{code}" expects a valid code. The option "{data}" does not exist.'
    elif kind == "pim_catalog_multiselect":
        if not isinstance(data, list) or not all(isinstance(o, str) for o in data):
            return f'Property "{code}" expects an array of option codes as data.'
        missing = [o for o in data if o.lower() not in structure.options.get(code, set())]
        if missing:
            return f'Property "{code}" expects valid codes. The option "{missing[0]}" does not exist.'
    elif kind == "pim_catalog_boolean":
        if not isinstance(data, bool):
            return f'Property "{code}" expects a boolean as data, "{type(data).__name__}" given.'
    elif kind == "pim_catalog_number":
        number = _amount(data)
        if number is None:
            return f'Property "{code}" expects a numeric as data, "{data}" given.'
        return _number_problem(attr, number)
    elif kind == "pim_catalog_date":
        try:
            date.fromisoformat(str(data)[:10])
        except ValueError:
            return f'Property "{code}" expects a string with the format "yyyy-mm-dd" as data, "{data}" given.'
    elif kind == "pim_catalog_metric":
        if not isinstance(data, dict) or set(data) - {"amount", "unit"} or "unit" not in data:
            return f'Property "{code}" expects an array with the keys "amount" and "unit" as data.'
        number = _amount(data.get("amount"))
        if number is None:
            return f'Property "{code}" expects a numeric amount, "{data.get("amount")}" given.'
        family = attr.get("metric_family") or ""
        if data.get("unit") not in structure.units.get(family, set()):
            return (f'The unit "{data.get("unit")}" does not exist or does not belong to the default metric family '
                    f'of the given attribute "{code}".')
        return _number_problem(attr, number)
    elif kind == "pim_catalog_price_collection":
        if not isinstance(data, list) or not all(isinstance(p, dict) and {"amount", "currency"} >= set(p)
                                                 and "currency" in p for p in data):
            return f'Property "{code}" expects an array of objects with the keys "amount" and "currency" as data.'
        for price in data:
            currency = price.get("currency")
            if currency not in structure.currencies:
                return (f'Property "{code}" expects a valid currency. The currency "{currency}" does not exist, '
                        f'"{currency}" given.')
            if currency not in structure.active_currencies:
                return f'The currency "{currency}" is not activated: no channel uses it.'
            number = _amount(price.get("amount"))
            if number is None and price.get("amount") is not None:
                return f'Property "{code}" expects a numeric amount, "{price.get("amount")}" given.'
            if number is not None:
                problem = _number_problem(attr, number)
                if problem:
                    return problem
    elif kind in ("pim_catalog_image", "pim_catalog_file"):
        if not isinstance(data, str):
            return f'Property "{code}" expects a file path as data.'
    return None


def check_values(values: Any, structure: Structure) -> list[dict[str, Any]]:
    """Errors in an Akeneo ``values`` object, one per bad attribute or entry (empty when valid)."""
    if not isinstance(values, dict):
        return [{"property": "values", "message": 'Property "values" expects an object.'}]
    errors: list[dict[str, Any]] = []
    active = structure.active_locales

    def add(attr: str, message: str, locale: Any = None, scope: Any = None) -> None:
        errors.append({"property": "values", "message": message, "attribute": attr, "locale": locale,
                       "scope": scope})

    for code, entries in values.items():
        attr = structure.attributes.get(code)
        if attr is None:
            add(code, f"The {code} attribute does not exist in your PIM.")
            continue
        if not isinstance(entries, list):
            add(code, f'Property "{code}" expects an array of values.')
            continue
        for entry in entries:
            if not isinstance(entry, dict) or "data" not in entry or set(entry) - {"locale", "scope", "data",
                                                                                     "linked_data"}:
                add(code, f'Property "{code}" expects an array with the keys "locale", "scope" and "data".')
                continue
            locale, scope, data = entry.get("locale"), entry.get("scope"), entry["data"]
            if attr["localizable"]:
                if locale is None:
                    add(code, f'Attribute "{code}" expects a locale, none given.', locale, scope)
                elif locale not in active:
                    add(code, f'Attribute "{code}" expects an existing and activated locale, "{locale}" given.',
                        locale, scope)
                elif scope is not None and locale not in (structure.channels.get(scope) or {}).get("locales", []):
                    add(code, f'Attribute "{code}" expects a locale activated for the channel "{scope}", '
                              f'"{locale}" given.', locale, scope)
            elif locale is not None:
                add(code, f'Attribute "{code}" does not expect a locale, "{locale}" given.', locale, scope)
            if attr["scopable"]:
                if scope is None:
                    add(code, f'Attribute "{code}" expects a channel code, none given.', locale, scope)
                elif scope not in structure.channels:
                    add(code, f'Attribute "{code}" expects an existing scope, "{scope}" given.', locale, scope)
            elif scope is not None:
                add(code, f'Attribute "{code}" does not expect a scope, "{scope}" given.', locale, scope)
            if data is None:
                continue  # erases the value
            problem = _data_problem(code, attr, data, structure)
            if problem:
                add(code, problem, locale, scope)
    return errors


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


def _identifier_problem(value: Any, name: str) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.strip():
        return {"property": name, "message": "This value should not be blank."}
    if len(value) > IDENTIFIER_MAX:
        return {"property": name, "message": f"This value is too long. It should have {IDENTIFIER_MAX} characters "
                                             "or less."}
    if FORBIDDEN_IN_IDENTIFIER.search(value):
        return {"property": name, "message": "This field should not contain any comma, semicolon, line break or "
                                             "non-breaking space."}
    if value != value.strip():
        return {"property": name, "message": "This field should not start or end with a space."}
    return None


def _check_common(doc: dict[str, Any], allowed: set[str], structure: Structure) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise Invalid(f'Property "{unknown[0]}" does not exist. Check the expected format on the API '
                      f'documentation.', [{"property": u, "message": "This property does not exist."}
                                          for u in unknown])
    if "categories" in doc:
        cats = doc["categories"]
        if not (isinstance(cats, list) and all(isinstance(c, str) for c in cats)):
            raise Invalid('Property "categories" expects an array of strings as data.',
                          [{"property": "categories", "message": "expects an array of strings"}])
        unknown_cats = [c for c in cats if c not in structure.categories]
        if unknown_cats:
            raise Invalid(f'Property "categories" expects a valid category code. The category does not exist, '
                          f'"{unknown_cats[0]}" given.',
                          [{"property": "categories", "message": f'The category "{c}" does not exist.'}
                           for c in unknown_cats])
    for name in ("family", "parent", "family_variant"):
        if name in doc and doc[name] is not None and not isinstance(doc[name], str):
            raise Invalid(f'Property "{name}" expects a string as data.',
                          [{"property": name, "message": "expects a string"}])
    family = doc.get("family")
    if family is not None and family not in structure.families:
        raise Invalid(f'Property "family" expects a valid family code. The family does not exist, "{family}" given.',
                      [{"property": "family", "message": f'The family "{family}" does not exist.'}])
    errors = check_values(doc.get("values", {}), structure)
    if errors:
        raise Invalid("Validation failed.", errors)


ASSOCIATION_TARGETS: Final = ("products", "product_models", "groups")


def merge_associations(conn: Connection, current: dict[str, Any] | None, incoming: Any,
                       structure: Structure) -> dict[str, Any]:
    """Akeneo's ``associations`` checked and merged: each association type must exist, each associated product or
    product model too (no group exists here); a PATCH replaces the lists it sends, per type, and keeps the rest."""
    if not isinstance(incoming, dict):
        raise Invalid('Property "associations" expects an array as data.',
                      [{"property": "associations", "message": "expects an object keyed by association type"}])
    merged = {code: dict(lists) for code, lists in (current or {}).items()}
    for code, lists in incoming.items():
        if code not in structure.association_types:
            raise Invalid(f'Property "associations" expects a valid association type code. The association type '
                          f'does not exist, "{code}" given.',
                          [{"property": "associations", "message": f'The association type "{code}" does not exist.'}])
        if not isinstance(lists, dict) or set(lists) - set(ASSOCIATION_TARGETS) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists.values()):
            raise Invalid(f'Property "associations" expects an array with the keys "products", "product_models" '
                          f'and "groups" as data for the association type "{code}".',
                          [{"property": "associations", "message": "expects arrays of codes"}])
        for target, table, key, what, noun in (
                ("products", db.pim_product, "identifier", "product identifier", "product"),
                ("product_models", db.pim_product_model, "code", "product model code", "product model")):
            wanted = lists.get(target) or []
            found = set(conn.execute(select(table.c[key]).where(table.c[key].in_(wanted))).scalars())
            missing = [x for x in wanted if x not in found]
            if missing:
                raise Invalid(f'Property "associations" expects a valid {what}. The {noun} does not exist, '
                              f'"{missing[0]}" given.',
                              [{"property": "associations", "message": f'"{m}" does not exist.'} for m in missing])
        if lists.get("groups"):
            raise Invalid(f'Property "associations" expects a valid group code. The group does not exist, '
                          f'"{lists["groups"][0]}" given.', [{"property": "associations", "message": "unknown group"}])
        slot = merged.setdefault(code, {t: [] for t in ASSOCIATION_TARGETS})
        slot.update({t: list(dict.fromkeys(v)) for t, v in lists.items()})
    return merged


def check_quantified(incoming: Any, structure: Structure) -> None:
    """``quantified_associations`` name quantified association types only; Community Edition has none (their
    ``is_quantified`` is Serenity-only), so anything but an empty object is refused with the type it names."""
    if not isinstance(incoming, dict):
        raise Invalid('Property "quantified_associations" expects an array as data.',
                      [{"property": "quantified_associations", "message": "expects an object"}])
    for code in incoming:
        known = code in structure.association_types
        raise Invalid(f'Property "quantified_associations" expects a valid quantified association type code. '
                      f'The association type {"is not quantified" if known else "does not exist"}, "{code}" given.',
                      [{"property": "quantified_associations", "message": f'"{code}" is no quantified association '
                                                                          "type."}])


def upsert_product(conn: Connection, doc: Any, identifier: str | None = None,
                   structure: Structure | None = None) -> int:
    """Validate and write one product; returns 201 (created) or 204 (updated or unchanged); raises :class:`Invalid`."""
    if not isinstance(doc, dict):
        raise Invalid("Invalid json message received")
    structure = structure or Structure.load(conn)
    ident = doc.get("identifier", identifier)
    if identifier is not None and ident != identifier:
        raise Invalid(f'The identifier "{ident}" provided in the request body must match the identifier '
                      f'"{identifier}" provided in the url.')
    problem = _identifier_problem(ident, "identifier")
    if problem:
        raise Invalid(f'Property "identifier": {problem["message"]}', [problem])
    _check_common(doc, PRODUCT_KEYS, structure)
    if "enabled" in doc and not isinstance(doc["enabled"], bool):
        raise Invalid('Property "enabled" expects a boolean as data.',
                      [{"property": "enabled", "message": "expects a boolean"}])
    if doc.get("groups"):
        raise Invalid(f'Property "groups" expects a valid group code. The group does not exist, '
                      f'"{doc["groups"][0]}" given.', [{"property": "groups", "message": "unknown group"}])
    t = db.pim_product
    row = conn.execute(select(t).where(t.c.identifier == ident)).first()
    if "quantified_associations" in doc:
        check_quantified(doc["quantified_associations"], structure)
    current_associations = (row.associations if row is not None else None) or {}
    associations = (merge_associations(conn, current_associations, doc["associations"], structure)
                    if "associations" in doc else current_associations)
    parent = doc.get("parent", row.parent if row is not None else None)
    family = doc.get("family", row.family if row is not None else None)
    if parent:
        model = conn.execute(select(db.pim_product_model.c.family).where(
            db.pim_product_model.c.code == parent)).first()
        if model is None:
            raise Invalid(f'Property "parent" expects a valid parent code. The parent product model does not '
                          f'exist, "{parent}" given.', [{"property": "parent", "message": "unknown"}])
        if family is None:
            family = model.family  # a variant product takes its parent's family
        elif family != model.family:
            raise Invalid(f'The variant product family must be the same as its parent\'s: "{model.family}", '
                          f'"{family}" given.', [{"property": "family", "message": "differs from the parent's"}])
    now = _now()
    if row is None:
        conn.execute(t.insert().values(
            identifier=ident, enabled=doc.get("enabled", True), family=family, parent=parent,
            categories=doc.get("categories", []), values=merge_values({}, doc.get("values", {})),
            associations=associations, created=now, updated=now))
        return 201
    new = {
        "enabled": doc.get("enabled", bool(row.enabled)),
        "family": family,
        "parent": parent,
        "categories": doc.get("categories", row.categories),
        "values": merge_values(row.values or {}, doc.get("values", {})),
        "associations": associations,
    }
    old = {"enabled": bool(row.enabled), "family": row.family, "parent": row.parent, "categories": row.categories,
           "values": row.values, "associations": row.associations or {}}
    if new != old:  # Akeneo leaves "updated" alone when a PATCH changes nothing
        conn.execute(t.update().where(t.c.identifier == ident).values(**new, updated=now))
    return 204


def upsert_model(conn: Connection, doc: Any, code: str | None = None, structure: Structure | None = None) -> int:
    """Validate and write one product model; 201 or 204; raises :class:`Invalid`."""
    if not isinstance(doc, dict):
        raise Invalid("Invalid json message received")
    structure = structure or Structure.load(conn)
    ident = doc.get("code", code)
    if code is not None and ident != code:
        raise Invalid(f'The code "{ident}" provided in the request body must match the code "{code}" provided '
                      f'in the url.')
    problem = _identifier_problem(ident, "code")
    if problem:
        raise Invalid(f'Property "code": {problem["message"]}', [problem])
    _check_common(doc, MODEL_KEYS, structure)
    t = db.pim_product_model
    row = conn.execute(select(t).where(t.c.code == ident)).first()
    if row is not None:
        for name in ("family", "family_variant"):
            if name in doc and doc[name] != getattr(row, name):
                raise Invalid(f'Property "{name}" cannot be modified, "{doc[name]}" given.',
                              [{"property": name, "message": "This property cannot be changed."}])
    variant_code = doc.get("family_variant", row.family_variant if row is not None else None)
    if not variant_code:
        raise Invalid('Property "family_variant" is required to create a product model.',
                      [{"property": "family_variant", "message": "This value should not be blank."}])
    variant = structure.family_variants.get(variant_code)
    if variant is None:
        raise Invalid(f'Property "family_variant" expects a valid family variant code. The family variant does not '
                      f'exist, "{variant_code}" given.',
                      [{"property": "family_variant", "message": f'The family variant "{variant_code}" does not '
                                                                 'exist.'}])
    family = doc.get("family", row.family if row is not None else variant[0])
    if family != variant[0]:
        raise Invalid(f'The family variant "{variant_code}" belongs to the family "{variant[0]}", not "{family}".',
                      [{"property": "family_variant", "message": "not a variant of this family"}])
    parent = doc.get("parent", row.parent if row is not None else None)
    if parent:
        found = conn.execute(select(t.c.family_variant).where(t.c.code == parent)).first()
        if found is None or found.family_variant != variant_code:
            raise Invalid(f'Property "parent" expects a valid product model with the same family variant, '
                          f'"{parent}" given.', [{"property": "parent", "message": "unknown parent"}])
    now = _now()
    if row is None:
        conn.execute(t.insert().values(
            code=ident, family=family, family_variant=variant_code, parent=parent,
            categories=doc.get("categories", []), values=merge_values({}, doc.get("values", {})),
            created=now, updated=now))
        return 201
    new = {"parent": parent, "categories": doc.get("categories", row.categories),
           "values": merge_values(row.values or {}, doc.get("values", {}))}
    old = {"parent": row.parent, "categories": row.categories, "values": row.values}
    if new != old:
        conn.execute(t.update().where(t.c.code == ident).values(**new, updated=now))
    return 204


def catalog_problems(conn: Connection) -> list[str]:
    """Every stored product and product model checked against the structure as a write would be: an empty list
    means the PIM holds nothing Akeneo could not hold (the seed writes content rows directly, before the structure
    exists; this is how a test shows the bootstrap gave them all a home)."""
    structure = Structure.load(conn)
    problems = []
    for table, key, allowed in ((db.pim_product, "identifier", PRODUCT_KEYS), (db.pim_product_model, "code",
                                                                                 MODEL_KEYS)):
        for row in conn.execute(select(table)):
            doc = product_doc(row) if key == "identifier" else model_doc(row)
            try:
                _check_common({k: v for k, v in doc.items() if k not in {"created", "updated", "groups"}}, allowed,
                              structure)
                if key == "code" and row.family_variant not in structure.family_variants:
                    raise Invalid(f'family variant "{row.family_variant}" does not exist')
            except Invalid as exc:
                details = "; ".join(e.get("message", "") for e in exc.errors[:3])
                problems.append(f"{key} {getattr(row, key)}: {exc.message} {details}".strip())
    return problems


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
SEARCH_HELP = ('JSON, as akeneo-docs/filter.md: identifier IN/NOT IN (product models too), created/updated with '
               '"yyyy-mm-dd hh:mm:ss", enabled, family, parent, categories')


def _structure(state: SandboxState) -> Structure:
    with state.engine.connect() as conn:
        return Structure.load(conn)


@router.get("/products", summary="List products (page or search_after pagination)")
def list_products(
    request: Request,
    state: State,
    pagination_type: Annotated[str, Query(description="page | search_after")] = "page",
    limit: Annotated[int, Query(ge=1)] = 10,
    page: int = 1,
    search: Annotated[str | None, Query(description=SEARCH_HELP)] = None,
    search_after: str | None = None,
    with_count: bool = False,
) -> dict[str, Any]:
    return _page(request, state, db.pim_product, "identifier", product_doc, pagination_type, limit, page, search,
                 search_after, with_count)


@router.patch("/products", summary="Create or update up to 100 products (one JSON per line)",
              openapi_extra=COLLECTION_BODY, response_class=Response)
async def patch_products(request: Request, state: State) -> Response:
    structure = _structure(state)  # read once: product writes never change the structure
    return await collection_patch(request, state, "identifier",
                                  lambda conn, doc: upsert_product(conn, doc, structure=structure))


# ``:path`` so that an identifier holding an encoded "/" (%2F), which the server decodes, still names one product
@router.get("/products/{identifier:path}", summary="Get one product (the identifier URL-encoded)")
def get_product(identifier: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        row = conn.execute(select(db.pim_product).where(db.pim_product.c.identifier == identifier)).first()
    if row is None:
        raise error(404, f'Product "{identifier}" does not exist or you do not have permission to access it.')
    return product_doc(row)


@router.patch("/products/{identifier:path}", openapi_extra=SINGLE_BODY, response_class=Response,
              summary="Create (201) or update (204) one product")
async def patch_product(identifier: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    doc = await json_body(request)
    return await run_in_threadpool(single_patch, state, doc, lambda c, d: upsert_product(c, d, identifier),
                                   f"{API}/products/{quote(identifier, safe='')}")


@router.get("/product-models", summary="List product models (configurable parents)")
def list_product_models(
    request: Request,
    state: State,
    pagination_type: Annotated[str, Query()] = "page",
    limit: Annotated[int, Query(ge=1)] = 10,
    page: int = 1,
    search: Annotated[str | None, Query(description=SEARCH_HELP)] = None,
    search_after: str | None = None,
    with_count: bool = False,
) -> dict[str, Any]:
    return _page(request, state, db.pim_product_model, "code", model_doc, pagination_type, limit, page, search,
                 search_after, with_count)


@router.patch("/product-models", summary="Create or update up to 100 product models (one JSON per line)",
              openapi_extra=COLLECTION_BODY, response_class=Response)
async def patch_product_models(request: Request, state: State) -> Response:
    structure = _structure(state)
    return await collection_patch(request, state, "code",
                                  lambda conn, doc: upsert_model(conn, doc, structure=structure))


@router.get("/product-models/{code:path}", summary="Get one product model (the code URL-encoded)")
def get_product_model(code: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        row = conn.execute(select(db.pim_product_model).where(db.pim_product_model.c.code == code)).first()
    if row is None:
        raise error(404, f'Product model "{code}" does not exist or you do not have permission to access it.')
    return model_doc(row)


@router.patch("/product-models/{code:path}", openapi_extra=SINGLE_BODY, response_class=Response,
              summary="Create (201) or update (204) one product model")
async def patch_product_model(code: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    doc = await json_body(request)
    return await run_in_threadpool(single_patch, state, doc, lambda c, d: upsert_model(c, d, code),
                                   f"{API}/product-models/{quote(code, safe='')}")


router.include_router(structure_router)
