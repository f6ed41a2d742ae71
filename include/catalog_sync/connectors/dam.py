"""DAM connector: asset metadata pages, updates, and binary downloads verified against their sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from catalog_sync.connectors.base import Outcome, Page, Stream, WriteResult, nullable, split_records
from catalog_sync.connectors.credentials import ApiKeyCredentials, coerce
from catalog_sync.connectors.http import (
    ApiKeyAuth,
    ClientOptions,
    HttpClient,
    HttpResult,
    MalformedResponse,
    RecordError,
    TransientError,
    path_segment,
    require_keys,
)
from catalog_sync.domain import AssetRole, AssetStatus, System

ASSETS: Final = Stream(
    "assets",
    "id",
    "updated_at",
    {
        "required": ["id", "role", "status", "checksum", "updated_at"],
        "properties": {
            "id": {"type": ["string", "integer"]},
            "sku": nullable("string"),
            "role": {"type": "string", "enum": [r.value for r in AssetRole]},
            "status": {"type": "string", "enum": [s.value for s in AssetStatus]},
            "valid_from": nullable("string"),
            "valid_to": nullable("string"),
            "rights_expires_at": nullable("string"),
            "rights_regions": nullable("array"),
            "version": nullable("integer"),
            "renditions": nullable("object"),
            "checksum": {"type": "string"},
            "width": nullable("integer"),
            "height": nullable("integer"),
            "filename": nullable("string"),
            "updated_at": {"type": "string"},
        },
    },
)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


#: Leading bytes of the image formats a sales channel takes, by media type.
_MAGIC: Final[dict[str, tuple[bytes, ...]]] = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",),
                                              "image/gif": (b"GIF87a", b"GIF89a")}


def image_type(content: bytes) -> str | None:
    """The media type of an image file by its leading bytes (what a channel checks the content against)."""
    return next((mime for mime, heads in _MAGIC.items() if content.startswith(heads)), None)


class DamClient(HttpClient):
    """The DAM's API (``X-Api-Key``). Build with ``DamClient("http://host:8765/dam", "key")``."""

    system = System.DAM.value
    streams: Final = {ASSETS.name: ASSETS}
    DEFAULT_PAGE_SIZE: Final = 100
    #: Asset ids per ``api/assets?ids=`` read (the DAM pages at most 500).
    IDS_PER_READ: Final = 200

    def __init__(
        self, base_url: str, credentials: ApiKeyCredentials | str, options: ClientOptions | None = None, **kwargs: Any
    ) -> None:
        creds = coerce(ApiKeyCredentials, credentials)
        super().__init__(base_url, ApiKeyAuth(creds.api_key, "X-Api-Key"), options, **kwargs)

    def iter_assets(self, updated_since: datetime | str | None = None, page: int = 1, *,
                    window_edges: tuple[datetime, datetime] | None = None) -> Iterator[Page]:
        """Asset metadata, page by page (``next_page``); ``updated_since`` is the stream's delta read.
        ``window_edges=(after, until)``: only assets whose validity or usage-rights window opened or closed in
        between, however long ago they were updated (what the showable-window sweep reads)."""
        per_page = self.options.page_size or self.DEFAULT_PAGE_SIZE
        since = updated_since.isoformat() if isinstance(updated_since, datetime) else updated_since
        offset = 0
        current: int | None = page
        while current is not None:
            params: dict[str, Any] = {"page": current, "per_page": per_page}
            if since:
                params["updated_since"] = since
            if window_edges is not None:
                params["window_edge_after"], params["window_edge_until"] = (t.isoformat() for t in window_edges)
            body = self.get_json("api/assets", params, validate=require_keys("assets", "next_page"))
            good, bad = split_records(ASSETS, body["assets"], self.system, offset, refetch=lambda p=params: self.get_json(  # type: ignore[misc]  # mypy: lambda default args
                "api/assets", p, validate=require_keys("assets", "next_page"))["assets"])
            offset += len(body["assets"])
            current = body.get("next_page")
            yield Page(ASSETS.name, good, bad, current)

    def get_assets(
        self, asset_ids: Iterable[str | int]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, RecordError]]:
        """Many assets by id, :data:`IDS_PER_READ` to a read: (well-formed assets, malformed ones), both by id; an
        id the DAM does not hold is in neither.

        A page with malformed records is read again (``split_records``), so an asset garbled on the way is
        recovered and one malformed at the source is its own :class:`RecordError`. A record garbled past
        recognition (its id lost) names no asset: the ids it may have been are then read one by one.
        """
        wanted = list(dict.fromkeys(str(i) for i in asset_ids))
        found: dict[str, dict[str, Any]] = {}
        errors: dict[str, RecordError] = {}
        for start in range(0, len(wanted), self.IDS_PER_READ):
            batch = wanted[start:start + self.IDS_PER_READ]
            params = {"ids": ",".join(batch), "page": 1, "per_page": len(batch)}
            body = self.get_json("api/assets", params, validate=require_keys("assets"))
            good, bad = split_records(ASSETS, body["assets"], self.system, refetch=lambda p=params: self.get_json(  # type: ignore[misc]  # mypy: lambda default args
                "api/assets", p, validate=require_keys("assets"))["assets"])
            found.update({str(a["id"]): a for a in good})
            errors.update({str(e.record_key): e for e in bad if str(e.record_key) in batch})
            if len(bad) > sum(1 for e in bad if str(e.record_key) in batch):
                for aid in (a for a in batch if a not in found and a not in errors):
                    asset = self.get_asset(aid)
                    if asset is not None:
                        found[aid] = asset
        return found, errors

    def get_asset(self, asset_id: str | int) -> dict[str, Any] | None:
        result = self.request("GET", f"api/assets/{path_segment(asset_id)}", expect=(200, 404))
        return None if result.status == 404 else dict(result.body)

    def download(self, asset: Mapping[str, Any]) -> bytes:
        """The asset's file, verified against its ``checksum``.

        A mismatch is first treated as a damaged transfer and retried; if every attempt disagrees, the DAM's
        own record is wrong (stale checksum or corrupt file), which is that asset's problem: :class:`RecordError`.
        """
        asset_id = str(asset["id"])
        expected = str(asset.get("checksum") or "").lower()
        mismatches: list[str] = []

        def verify(result: HttpResult) -> None:
            actual = sha256(result.content)
            if expected and actual != expected:
                mismatches.append(actual)
                raise MalformedResponse(f"checksum {actual[:12]}... != expected {expected[:12]}...")

        try:
            result = self.request("GET", f"api/assets/{path_segment(asset_id)}/binary", parse="bytes", validate=verify)
        except TransientError as exc:
            if mismatches and len(mismatches) == exc.attempts:
                raise RecordError(asset_id, f"checksum mismatch on all {exc.attempts} downloads",
                                  system=self.system, path=exc.path, status=exc.status) from None
            raise
        return result.content

    def download_rendition(self, asset: Mapping[str, Any], rendition: str) -> tuple[bytes, str]:
        """The bytes of one of the asset's renditions and their media type. The DAM derives a rendition from the
        file, so the asset's ``checksum`` (the original's) does not cover it; an answer that is not an image is
        that asset's problem (:class:`RecordError`)."""
        asset_id = str(asset["id"])
        if rendition not in (asset.get("renditions") or {}):
            raise RecordError(asset_id, f"the DAM offers no {rendition!r} rendition of this asset", system=self.system)
        result = self.request("GET", f"api/assets/{path_segment(asset_id)}/binary", params={"rendition": rendition},
                              parse="bytes", expect=(200, 404), record_key=asset_id)
        if result.status == 404:
            raise RecordError(asset_id, f"the DAM holds no {rendition!r} file of this asset", system=self.system,
                              status=404)
        mime = image_type(result.content)
        if mime is None:
            raise RecordError(asset_id, f"the {rendition!r} rendition is not a JPEG, PNG or GIF image",
                              system=self.system, status=result.status)
        return result.content, mime

    def update_asset(self, asset_id: str | int, fields: Mapping[str, Any]) -> WriteResult:
        """Change an asset's link, status or dates; a refusal of the data is this asset's failure only."""
        key = str(asset_id)
        try:
            result = self.request("PUT", f"api/assets/{path_segment(asset_id)}", json_body=dict(fields), record_key=key)
        except RecordError as exc:
            return WriteResult.failure(key, exc, dict(fields))
        return WriteResult(key, Outcome.OK, result.status, None, dict(fields), response=result.body)
