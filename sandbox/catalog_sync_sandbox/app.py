"""The sandbox service: the five external systems as one FastAPI app over one database.

``create_app(db_url)`` builds it (creating the tables if needed); ``catalog-sync sandbox serve`` runs it with
uvicorn; ``catalog_sync_sandbox.server.SandboxServer`` runs it in a background thread for tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from catalog_sync import config
from catalog_sync_sandbox import (
    adobe,
    cdn,
    control,
    dam,
    db,
    erp,
    pim,
    pim_structure,
    storefront,
    storefront_graphql,
    supplier,
)
from catalog_sync_sandbox.concurrency import CountingMiddleware
from catalog_sync_sandbox.faults import FaultMiddleware
from catalog_sync_sandbox.state import SandboxSettings, SandboxState

DESCRIPTION = """\
Test doubles of the systems Catalog Sync keeps in step: an ERP, a PIM (Akeneo REST API v1 shape), a DAM, a
storefront (Shopify Admin REST API 2025-01 shape, with the GraphQL Admin API's bulk writes `productSet` and
`inventorySetQuantities` at 2026-04), a supplier portal and the CDN in front of the shop's product pages (Fastly's
purge API), Adobe Commerce's admin REST API as a second sales channel (`/adobe_commerce/rest`), plus `/_sandbox` to load catalogs, run failure scenarios and switch faults. The contract is docs/sandbox-api.md.
"""


def create_app(
    db_url: str | None = None,
    *,
    settings: SandboxSettings | None = None,
    credentials: dict[str, dict[str, str]] | None = None,
) -> FastAPI:
    engine = db.make_engine(db_url or config.sandbox_db_url())
    db.create_schema(engine)
    with engine.begin() as conn:
        pim_structure.install(conn)
    state = SandboxState(engine, settings, credentials)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="Catalog Sync sandbox", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.sandbox = state

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        # each system speaks its own error shape ({"code","message"} or Shopify's {"errors"}): pass it through
        body: Any = exc.detail if isinstance(exc.detail, dict) else {"code": exc.status_code, "message": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    for router in (erp.router, pim.token_router, pim.router, dam.router, storefront.router,
                   storefront_graphql.router, storefront_graphql.files_router, storefront.shop_router, supplier.router, cdn.router, cdn.edge_router,
                   adobe.router, control.router):
        app.include_router(router)
    # added last = outermost. The requests in flight are counted (and the PIM's limits applied) outside the
    # faults: an injected latency or timeout holds its request at the system, as a slow answer does.
    app.add_middleware(FaultMiddleware, registry_getter=lambda: app.state.sandbox.faults)
    app.add_middleware(pim.PimLimitsMiddleware, state_getter=lambda: app.state.sandbox)
    app.add_middleware(CountingMiddleware, meters_getter=lambda: app.state.sandbox.concurrency)
    return app
