"""The CDN in front of the shop's product pages: an edge cache, and a purge API in the shape of Fastly's.

Shoppers reach a product page through the edge (``/cdn/edge/products/{handle}``). On a miss the edge fetches the
storefront's page (the origin, ``storefront.origin_page``) and caches it per URL path for ``render_cache_ttl_s``,
tagged with the surrogate key ``product-<handle>``, as a CDN service configured to tag product pages would
(Fastly lets a service set ``Surrogate-Key`` on what it caches). Nothing the storefront's admin API does reaches
this cache, so after a write the page shoppers get is stale until its TTL runs out or someone purges it: the
"the admin shows the change, shoppers do not" symptom.

The purge API follows Fastly's (https://www.fastly.com/documentation/reference/api/purging/), token in the
``Fastly-Key`` header:

* ``POST /cdn/service/{service_id}/purge`` with the keys in a ``Surrogate-Key`` header (space-separated) or a JSON
  body ``{"surrogate_keys": [...]}``, at most 256 → ``{key: purge_id}``;
* ``POST /cdn/service/{service_id}/purge/{surrogate_key}`` → ``{"status": "ok", "id": purge_id}``;
* ``POST /cdn/purge/{host}/{path}`` (the cached URL without its scheme) → ``{"status": "ok", "id": purge_id}``.

Errors are Fastly's ``{"msg", "detail"}``. Purging a key or URL nothing is cached under is not an error: the
answer is the same, as on Fastly. Soft purges (``Fastly-Soft-Purge``) are not modelled.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
from sqlalchemy import Connection, select

from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, aware
from catalog_sync_sandbox.state import SandboxState
from catalog_sync_sandbox.storefront import origin_page

PREFIX: Final = "/cdn"
#: Where shoppers' requests land, under the sandbox's base URL.
EDGE: Final = f"{PREFIX}/edge"
#: Fastly refuses more keys in one bulk purge.
MAX_KEYS: Final = 256
key_header = APIKeyHeader(name="Fastly-Key", auto_error=False, scheme_name="fastlyKey")


def fastly_error(status: int, msg: str, detail: str | None = None) -> HTTPException:
    return HTTPException(status, {"msg": msg, **({"detail": detail} if detail else {})})


def api_auth(key: Annotated[str | None, Depends(key_header)], state: State) -> None:
    expected = state.credentials["cdn"]["api_token"]
    if not key or not hmac.compare_digest(key.encode(), expected.encode()):
        raise fastly_error(401, "Provided credentials are missing or invalid")


router = APIRouter(prefix=PREFIX, tags=["cdn"], dependencies=[Depends(api_auth)])
edge_router = APIRouter(prefix=EDGE, tags=["cdn"])


def surrogate_key(handle: str) -> str:
    """The key the service tags a product's page with."""
    return f"product-{handle}"


# ------------------------------------------------------------------------------------------------- cache
def cache_page(conn: Connection, path: str, status: int, html: str, at: datetime, keys: Iterable[str]) -> None:
    """Store one page under its path and keys (the edge on a miss; the scenarios that plant a stale page)."""
    conn.execute(db.cdn_page.delete().where(db.cdn_page.c.path == path))
    conn.execute(db.cdn_surrogate_key.delete().where(db.cdn_surrogate_key.c.path == path))
    conn.execute(db.cdn_page.insert().values(path=path, status_code=status, html=html, cached_at=at))
    conn.execute(db.cdn_surrogate_key.insert(), [{"key": k, "path": path} for k in sorted(set(keys))])


def product_path(handle: str) -> str:
    return f"/products/{handle}"


def _evict(conn: Connection, paths: Iterable[str]) -> None:
    for path in paths:
        conn.execute(db.cdn_page.delete().where(db.cdn_page.c.path == path))
        conn.execute(db.cdn_surrogate_key.delete().where(db.cdn_surrogate_key.c.path == path))


def _purge_id(conn: Connection) -> str:
    (n,) = db.next_ids(conn, "cdn_purge")
    return f"{n}-{int(datetime.now(UTC).timestamp())}-{n % 1000:03d}"


def _check_service(state: SandboxState, service_id: str) -> None:
    if not hmac.compare_digest(service_id.encode(), state.credentials["cdn"]["service_id"].encode()):
        raise fastly_error(404, "Record not found", f"Cannot find service '{service_id}'")


def purge_keys(state: SandboxState, keys: list[str]) -> dict[str, str]:
    t = db.cdn_surrogate_key
    with state.write_lock, state.engine.begin() as conn:
        out = {}
        for key in keys:
            paths = list(conn.execute(select(t.c.path).where(t.c.key == key)).scalars())
            _evict(conn, paths)
            out[key] = _purge_id(conn)
    return out


# ------------------------------------------------------------------------------------------------- purge API
class PurgeKeys(BaseModel):
    surrogate_keys: list[str] = []


@router.post("/service/{service_id}/purge", summary="Purge every page tagged with any of the surrogate keys")
def bulk_purge(
    service_id: str,
    state: State,
    body: PurgeKeys | None = None,
    surrogate_key_header: Annotated[str | None, Header(alias="Surrogate-Key")] = None,
) -> dict[str, str]:
    _check_service(state, service_id)
    keys = (surrogate_key_header or "").split() or (body.surrogate_keys if body else [])
    if not keys:
        raise fastly_error(400, "Bad request", "no surrogate keys: send a Surrogate-Key header or surrogate_keys")
    if len(keys) > MAX_KEYS:
        raise fastly_error(400, "Bad request", f"at most {MAX_KEYS} surrogate keys per purge, got {len(keys)}")
    return purge_keys(state, list(dict.fromkeys(keys)))


@router.post("/service/{service_id}/purge/{key}", summary="Purge every page tagged with one surrogate key")
def purge_one_key(service_id: str, key: str, state: State) -> dict[str, str]:
    _check_service(state, service_id)
    return {"status": "ok", "id": purge_keys(state, [key])[key]}


@router.post("/purge/{cached_url:path}", summary="Purge one URL (host and path, without the scheme)")
def purge_url(cached_url: str, state: State) -> dict[str, str]:
    host, _, path = cached_url.partition("/")
    if not host or not path:
        raise fastly_error(400, "Bad request", "expected the cached URL as host/path")
    path = "/" + path.split("?", 1)[0]
    # the sandbox's pages are cached by their path under the edge, whatever host the shopper used
    if path.startswith(EDGE + "/"):
        path = path[len(EDGE):]
    with state.write_lock, state.engine.begin() as conn:
        _evict(conn, [path])
        return {"status": "ok", "id": _purge_id(conn)}


# -------------------------------------------------------------------------------------------------- the edge
@edge_router.get("/products/{handle}", response_class=HTMLResponse, summary="Product page as shoppers get it",
                 responses={404: {"description": "no active product with this handle"}})
def shopper_page(handle: str, state: State) -> HTMLResponse:
    now = datetime.now(UTC)
    path = product_path(handle)
    with state.engine.connect() as conn:
        hit = conn.execute(select(db.cdn_page).where(db.cdn_page.c.path == path)).first()
    if hit is not None:
        cached = aware(hit.cached_at)
        assert cached is not None
        age = now - cached
        if age < timedelta(seconds=state.settings.render_cache_ttl_s):
            return HTMLResponse(hit.html, status_code=hit.status_code,
                                headers={"X-Cache": "HIT", "Age": str(int(age.total_seconds()))})
    status, page = origin_page(state, handle)
    with state.write_lock, state.engine.begin() as conn:
        cache_page(conn, path, status, page, now, [surrogate_key(handle)])
    return HTMLResponse(page, status_code=status, headers={"X-Cache": "MISS", "Age": "0"})
