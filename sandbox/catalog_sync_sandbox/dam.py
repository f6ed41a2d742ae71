"""The DAM: assets linked to SKUs (or orphaned), with rights, validity windows, versions and binaries.

The binary is the real photograph where the catalog shipped one and a generated PNG otherwise, with the checksum
and pixel size the metadata announces. The ``ecommerce`` and ``thumbnail`` renditions are links to that original
(the sandbox does not resize); ``square``, the large square image a second sales channel takes, is a generated
square PNG derived from the asset's checksum (the sandbox has no image library to crop with), so its bytes differ
from the original's and a test can tell which rendition a channel was sent.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select

from catalog_sync.domain import AssetRole, AssetStatus
from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, api_key_auth, error, iso, parse_ts
from catalog_sync_sandbox.images import ImageBlob, placeholder_png
from catalog_sync_sandbox.state import SandboxState

router = APIRouter(prefix="/dam/api", tags=["dam"], dependencies=[Depends(api_key_auth("dam"))])
RENDITIONS = ("ecommerce", "thumbnail", "square")
#: Edge of the ``square`` rendition, in pixels.
SQUARE_EDGE = 400


class Asset(BaseModel):
    id: str
    sku: str | None = Field(description="SKU or variant SKU; null for an orphan")
    role: AssetRole
    status: AssetStatus
    valid_from: str | None
    valid_to: str | None
    rights_expires_at: str | None
    rights_regions: list[str]
    version: int
    renditions: dict[str, str]
    checksum: str = Field(description="sha256 of the binary, hex")
    width: int
    height: int
    filename: str
    updated_at: str


class AssetPage(BaseModel):
    assets: list[Asset]
    page: int
    per_page: int
    total: int
    next_page: int | None


class AssetWrite(BaseModel):
    """Fields to change; a new ``filename`` is a new version of the asset (a re-upload)."""

    sku: str | None = None
    role: AssetRole | None = None
    status: AssetStatus | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    rights_expires_at: str | None = None
    rights_regions: list[str] | None = None
    filename: str | None = None


class AssetVersion(BaseModel):
    version: int
    checksum: str
    width: int
    height: int
    filename: str
    status: str
    replaced_at: str | None


def asset_doc(row: Any, base: str) -> dict[str, Any]:
    href = f"{base}/dam/api/assets/{row.id}/binary"
    return {
        "id": row.id, "sku": row.sku, "role": row.role, "status": row.status,
        "valid_from": iso(row.valid_from), "valid_to": iso(row.valid_to),
        "rights_expires_at": iso(row.rights_expires_at), "rights_regions": row.rights_regions or [],
        "version": row.version, "renditions": {r: f"{href}?rendition={r}" for r in RENDITIONS},
        "checksum": row.checksum, "width": row.width, "height": row.height, "filename": row.filename,
        "updated_at": iso(row.updated_at),
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/assets", response_model=AssetPage, summary="Assets by (updated_at, id); page numbers from 1")
def list_assets(
    request: Request,
    state: State,
    updated_since: Annotated[str | None, Query(description="only assets updated at or after this instant")] = None,
    sku: str | None = None,
    ids: Annotated[str | None, Query(description="only these assets (comma-separated ids)")] = None,
    window_edge_after: Annotated[str | None, Query(
        description="with window_edge_until: only assets whose valid_from, valid_to or rights_expires_at lies "
                    "after this instant and at or before window_edge_until (what became showable or stopped being "
                    "so in between)")] = None,
    window_edge_until: Annotated[str | None, Query(description="see window_edge_after")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1)] = 100,
) -> dict[str, Any]:
    if per_page > state.settings.dam_page_max:
        raise error(400, f"per_page must be at most {state.settings.dam_page_max}")
    t = db.dam_asset
    clauses = []
    if updated_since:
        clauses.append(t.c.updated_at >= parse_ts(updated_since, "updated_since"))
    if sku:
        clauses.append(t.c.sku == sku)
    if ids:
        clauses.append(t.c.id.in_([i.strip() for i in ids.split(",") if i.strip()]))
    if (window_edge_after is None) != (window_edge_until is None):
        raise error(400, "window_edge_after and window_edge_until go together")
    if window_edge_after is not None and window_edge_until is not None:
        after = parse_ts(window_edge_after, "window_edge_after")
        until = parse_ts(window_edge_until, "window_edge_until")
        clauses.append(or_(*((col > after) & (col <= until)
                             for col in (t.c.valid_from, t.c.valid_to, t.c.rights_expires_at))))
    with state.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(*clauses)).scalar() or 0
        rows = conn.execute(select(t).where(*clauses).order_by(t.c.updated_at, t.c.id)
                            .offset((page - 1) * per_page).limit(per_page)).all()
    base = _base(request)
    return {"assets": [asset_doc(r, base) for r in rows], "page": page, "per_page": per_page, "total": total,
            "next_page": page + 1 if page * per_page < total else None}


def _get(state: SandboxState, asset_id: str) -> Any:
    with state.engine.connect() as conn:
        row = conn.execute(select(db.dam_asset).where(db.dam_asset.c.id == asset_id)).first()
    if row is None:
        raise error(404, f"Asset {asset_id} does not exist.")
    return row


@router.get("/assets/{asset_id:path}/binary", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def asset_binary(
    asset_id: str,
    state: State,
    rendition: Literal["original", "ecommerce", "thumbnail", "square"] = "original",
) -> Response:
    row = _get(state, asset_id)
    if rendition == "square":
        square = _square(row.checksum)
        return Response(square.data, media_type=square.content_type, headers={
            "ETag": f'"{square.checksum}"',
            "Content-Disposition": f'inline; filename="{row.filename.rsplit(".", 1)[0]}-square.png"'})
    with state.engine.connect() as conn:
        blob = conn.execute(select(db.dam_blob).where(db.dam_blob.c.checksum == row.checksum)).first()
    if blob is None:
        raise error(404, f"Asset {asset_id} has no binary.")
    return Response(blob.data, media_type=blob.content_type, headers={
        "ETag": f'"{row.checksum}"', "Content-Disposition": f'inline; filename="{row.filename}"'})


@functools.lru_cache(maxsize=256)
def _square(checksum: str) -> ImageBlob:
    """The ``square`` rendition of the file whose checksum this is: the same file always gives the same bytes."""
    return placeholder_png(f"{checksum}/square", (SQUARE_EDGE, SQUARE_EDGE))


@router.get("/assets/{asset_id:path}/versions", response_model=list[AssetVersion],
            summary="Earlier versions, oldest first, then the current one")
def asset_versions(asset_id: str, state: State) -> list[dict[str, Any]]:
    row = _get(state, asset_id)
    v = db.dam_asset_version
    with state.engine.connect() as conn:
        old = conn.execute(select(v).where(v.c.asset_id == asset_id).order_by(v.c.version)).all()
    out = [{"version": o.version, "checksum": o.checksum, "width": o.width, "height": o.height,
            "filename": o.filename, "status": o.status, "replaced_at": iso(o.replaced_at)} for o in old]
    out.append({"version": row.version, "checksum": row.checksum, "width": row.width, "height": row.height,
                "filename": row.filename, "status": row.status, "replaced_at": None})
    return out


# Declared after the binary and versions routes: an asset id may hold an encoded "/", so this route takes the rest
# of the path and would otherwise answer ".../binary" as an asset of that name.
@router.get("/assets/{asset_id:path}", response_model=Asset)
def get_asset(asset_id: str, request: Request, state: State) -> dict[str, Any]:
    return asset_doc(_get(state, asset_id), _base(request))


def write_asset(state: SandboxState, asset_id: str, changes: dict[str, Any]) -> None:
    """Create or change one asset (used by the API, the scenarios and repairs); a new filename is a new version."""
    now = datetime.now(UTC)
    cols: dict[str, Any] = {}
    for key in ("sku", "role", "status", "rights_regions"):
        if key in changes:
            value = changes[key]
            cols[key] = value.value if hasattr(value, "value") else value
    for key in ("valid_from", "valid_to", "rights_expires_at"):
        if key in changes:
            value = changes[key]
            cols[key] = parse_ts(value, key) if isinstance(value, str) else value
    t = db.dam_asset
    with state.write_lock, state.engine.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == asset_id)).first()
        filename = changes.get("filename")
        if filename and (row is None or filename != row.filename):
            image = placeholder_png(f"{asset_id}/{filename}")
            if conn.execute(select(db.dam_blob.c.checksum).where(db.dam_blob.c.checksum == image.checksum)).first() \
                    is None:
                conn.execute(db.dam_blob.insert().values(checksum=image.checksum, content_type=image.content_type,
                                                         data=image.data))
            cols.update(filename=filename, checksum=image.checksum, width=image.width, height=image.height)
            if row is not None:
                conn.execute(db.dam_asset_version.insert().values(
                    asset_id=asset_id, version=row.version, checksum=row.checksum, width=row.width,
                    height=row.height, filename=row.filename, status=row.status, replaced_at=now))
                cols["version"] = row.version + 1
        if row is None:
            if "filename" not in cols:
                raise error(422, "A new asset needs a filename.")
            base: dict[str, Any] = {"sku": None, "role": AssetRole.GALLERY.value, "status": AssetStatus.DRAFT.value,
                    "valid_from": None, "valid_to": None, "rights_expires_at": None, "rights_regions": [],
                    "version": 1}
            conn.execute(t.insert().values(id=asset_id, **{**base, **cols}, updated_at=now))
        else:
            conn.execute(t.update().where(t.c.id == asset_id).values(**cols, updated_at=now))


@router.put("/assets/{asset_id:path}", response_model=Asset, summary="Create or change an asset (link, status, dates)")
def put_asset(asset_id: str, body: AssetWrite, request: Request,
              state: State) -> dict[str, Any]:
    write_asset(state, asset_id, body.model_dump(exclude_unset=True))
    return asset_doc(_get(state, asset_id), _base(request))
