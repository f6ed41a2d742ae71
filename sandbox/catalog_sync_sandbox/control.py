"""``/_sandbox``: reset, load, scenarios, faults and settings. No auth, so it answers loopback clients only."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from catalog_sync.catalog.magento import Catalog, CatalogError, read_catalog
from catalog_sync_sandbox import db, pim_structure
from catalog_sync_sandbox.common import State, error
from catalog_sync_sandbox.faults import SYSTEMS, FaultConfig
from catalog_sync_sandbox.scenarios import ScenarioError, catalogue, run_scenario
from catalog_sync_sandbox.seed import load_catalog
from catalog_sync_sandbox.state import SandboxState


def loopback_only(request: Request) -> None:
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host in {"localhost", "testclient"}
    if not local:
        raise error(403, "The sandbox control API answers loopback clients only.")


router = APIRouter(prefix="/_sandbox", tags=["sandbox control"], dependencies=[Depends(loopback_only)])


class LoadIn(BaseModel):
    catalog: str = Field(description="a Magento 2 export folder or product CSV, on the sandbox's machine")
    scale: int | None = Field(None, ge=1, description="multiply the catalog to this many SKUs")
    reset: bool = Field(True, description="empty every system first")


class ScenarioIn(BaseModel):
    skus: list[str] | None = None


def cached_catalog(state: SandboxState, path: str) -> Catalog:
    """Parse a catalog once per server: a test's fresh sandbox reloads it in well under a second."""
    p = Path(path)
    if not p.exists():
        raise error(422, f"catalog not found: {path}")
    files = sorted(p.glob("*.csv")) if p.is_dir() else [p]
    signature = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    cache: dict[str, tuple[Any, Catalog]] = state.__dict__.setdefault("_catalogs", {})
    hit = cache.get(str(p.resolve()))
    if hit is not None and hit[0] == signature:
        return hit[1]
    try:
        catalog = read_catalog(p)
    except CatalogError as exc:
        raise error(422, str(exc)) from None
    cache[str(p.resolve())] = (signature, catalog)
    return catalog


def reset(state: SandboxState) -> None:
    with state.write_lock:
        db.truncate_all(state.engine)
        with state.engine.begin() as conn:  # an empty PIM is a fresh Akeneo installation, not a blank database
            pim_structure.install(conn)
        state.faults.clear()
        state.reset_limits()
        state.settings = copy.deepcopy(state.startup_settings)
        state.webhooks.deliveries.clear()


@router.post("/reset", summary="Empty every system; faults, limits and settings back to their start-up values")
def post_reset(state: State) -> dict[str, Any]:
    reset(state)
    return {"status": "reset"}


@router.post("/load", summary="Load a catalog into the systems (by ownership)")
def post_load(body: LoadIn, state: State) -> dict[str, Any]:
    catalog = cached_catalog(state, body.catalog)
    with state.write_lock:
        if body.reset:
            reset(state)
        else:
            with state.engine.connect() as conn:
                if conn.execute(select(func.count()).select_from(db.erp_item)).scalar():
                    raise error(409, "the systems are not empty: load with reset, or reset first")
        return load_catalog(state.engine, catalog, body.scale).as_dict()


@router.get("/status", summary="Row counts per table and the ERP change feed's head")
def status(state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in db.metadata.sorted_tables
                  if t.name not in {"dam_blob"}}
        last = conn.execute(select(func.max(db.erp_change.c.seq))).scalar() or 0
    return {"counts": counts, "last_seq": last, "faults": {k: v.model_dump() for k, v in state.faults.all().items()}}


@router.get("/scenarios", summary="Every scenario with the symptom a user would see")
def list_scenarios() -> list[dict[str, str]]:
    return catalogue()


@router.post("/scenarios/{name}", summary="Run a scenario; returns the SKUs it affected and what changed")
async def post_scenario(name: str, state: State, body: Annotated[ScenarioIn | None, Body()] = None) -> dict[str, Any]:
    try:
        return await run_in_threadpool(run_scenario, state, name, body.skus if body else None)
    except ScenarioError as exc:
        raise error(404 if "unknown scenario" in str(exc) else 422, str(exc)) from None


def _system(system: str) -> str:
    if system not in SYSTEMS:
        raise error(404, f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    return system


@router.get("/faults", summary="Faults in force, per system")
def all_faults(state: State) -> dict[str, Any]:
    return {k: v.model_dump() for k, v in state.faults.all().items()}


@router.get("/faults/{system}", response_model=FaultConfig | None)
def get_faults(system: str, state: State) -> FaultConfig | None:
    return state.faults.get(_system(system))


@router.put("/faults/{system}", response_model=FaultConfig, summary="Switch faults on for one system")
def put_faults(system: str, body: FaultConfig, state: State) -> FaultConfig:
    state.faults.set(_system(system), body)
    return body


@router.delete("/faults/{system}", status_code=204, summary="Switch one system's faults off")
def delete_faults(system: str, state: State) -> None:
    state.faults.clear(_system(system))


@router.get("/settings")
def get_settings(state: State) -> dict[str, Any]:
    return state.settings.as_dict()


@router.put("/settings", summary="Change run-time settings (token lifetime, rate limits, cache TTL...)")
def put_settings(changes: Annotated[dict[str, Any], Body()], state: State) -> dict[str, Any]:
    try:
        state.settings.update(changes)
    except ValueError as exc:
        raise error(422, str(exc)) from None
    return state.settings.as_dict()


@router.get("/concurrency", summary="Requests in flight per system: now, the peak since the last reset, refusals")
def get_concurrency(state: State) -> dict[str, dict[str, Any]]:
    return state.concurrency_report()


@router.get("/concurrency/{system}", summary="One system's requests in flight, peak and refusals")
def get_system_concurrency(system: str, state: State) -> dict[str, Any]:
    report = state.concurrency_report()
    if system not in report:
        raise error(404, f"unknown system {system!r}; known: {', '.join(report)}")
    return report[system]


@router.delete("/concurrency", status_code=204, summary="Start counting peaks and refusals afresh")
def delete_concurrency(state: State) -> None:
    for meter in state.concurrency.values():
        meter.reset()


@router.get("/credentials", summary="The credentials this sandbox accepts, per system")
def credentials(state: State) -> dict[str, dict[str, str]]:
    return state.credentials
