"""PIM connector (Akeneo REST API v1): OAuth2 password grant, search_after pages, collection PATCH per line."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from catalog_sync.connectors.base import Outcome, Page, Stream, WriteResult, nullable, split_records
from catalog_sync.connectors.credentials import PimCredentials, coerce
from catalog_sync.connectors.http import (
    AuthError,
    ClientOptions,
    ConnectorError,
    Disposition,
    FailureKind,
    HttpClient,
    HttpResult,
    MalformedResponse,
    classify,
    path_segment,
    require_keys,
)
from catalog_sync.domain import System

TOKEN_PATH: Final = "api/oauth/v1/token"
REST: Final = "api/rest/v1"
PRODUCTS_PATH: Final = f"{REST}/products"
MODELS_PATH: Final = f"{REST}/product-models"
COLLECTION_TYPE: Final = "application/vnd.akeneo.collection+json"
#: Akeneo's date format for the ``created`` and ``updated`` filters of products and product models
#: (akeneo-docs/filter.md): no "T", no zone, no fraction; the server's time zone (UTC here) is implied.
SEARCH_DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
#: The most codes Akeneo takes in one ``IN`` filter.
MAX_IN_FILTER: Final = 100

_COMMON = {
    "enabled": {"type": "boolean"},
    "family": nullable("string"),
    "categories": {"type": "array"},
    "parent": nullable("string"),
    "values": {"type": "object"},
    "created": nullable("string"),
    "updated": {"type": "string"},
}
PRODUCTS: Final = Stream(
    "products",
    "identifier",
    "updated",
    {"required": ["identifier", "values", "updated"], "properties": {"identifier": {"type": "string"}, **_COMMON}},
)
PRODUCT_MODELS: Final = Stream(
    "product_models",
    "code",
    "updated",
    {
        "required": ["code", "values", "updated"],
        "properties": {
            "code": {"type": "string"},
            "family_variant": nullable("string"),
            **{k: v for k, v in _COMMON.items() if k != "enabled"},
        },
    },
)


class AkeneoOAuth:
    """Akeneo's OAuth2 password grant, with refresh before expiry and once more on an "expired" 401.

    Proactive: a token is renewed when less than ``skew`` seconds of its ``expires_in`` remain, so long reads do
    not hit a 401 half way. Reactive: a 401 (the token was revoked or the clocks disagree) renews it once; a
    second 401 on the same request is an :class:`AuthError` (see ``HttpClient.request``).
    """

    def __init__(self, credentials: PimCredentials, clock: Callable[[], float] = time.monotonic) -> None:
        if not (credentials.client_id and credentials.client_secret and credentials.username):
            raise AuthError("PIM credentials need client_id, client_secret, username and password")
        self.credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_at = 0.0
        #: How many tokens were obtained (grants and refreshes), for tests and metrics.
        self.issued = 0

    def __repr__(self) -> str:
        return f"AkeneoOAuth(client_id={self.credentials.client_id!r}, username={self.credentials.username!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (*self.credentials.secrets, self._access, self._refresh) if s)

    def _basic(self) -> str:
        pair = f"{self.credentials.client_id}:{self.credentials.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _grant(self, client: HttpClient, body: dict[str, Any]) -> None:
        result = client.request(
            "POST", TOKEN_PATH, json_body=body, headers={"Authorization": self._basic()}, authenticate=False,
            validate=require_keys("access_token"),
        )
        token = result.body
        self._access = str(token["access_token"])
        self._refresh = token.get("refresh_token")
        lifetime = float(token.get("expires_in") or 3600)
        # renew with a tenth of the lifetime left (at most a minute): enough for the request in flight to finish
        skew = min(60.0, lifetime * 0.1)
        self._expires_at = self._clock() + lifetime - skew
        client.redactor.add(self._access, self._refresh)
        self.issued += 1

    def _renew(self, client: HttpClient) -> None:
        if self._refresh:
            try:
                self._grant(client, {"grant_type": "refresh_token", "refresh_token": self._refresh})
                return
            except (AuthError, ConnectorError) as exc:
                if exc.disposition is Disposition.RETRY:
                    raise
                # a refresh token expires too; the password grant starts a fresh session
        creds = self.credentials
        self._grant(client, {"grant_type": "password", "username": creds.username, "password": creds.password})

    def apply(self, client: HttpClient, headers: dict[str, str]) -> None:
        with self._lock:
            if self._access is None or self._clock() >= self._expires_at:
                self._renew(client)
            headers["Authorization"] = f"Bearer {self._access}"

    def on_unauthorized(self, client: HttpClient, result: HttpResult, sent: Mapping[str, str]) -> bool:
        with self._lock:
            # Only drop the token this request used: another thread may already have renewed it.
            if sent.get("Authorization") == f"Bearer {self._access}":
                self._access = None
        return True

    def invalidate(self) -> None:
        with self._lock:
            self._access = None


def search_updated_after(since: datetime | str) -> dict[str, Any]:
    """Akeneo ``search`` filter for records updated after ``since`` (a datetime or ISO 8601 text, UTC if naive).

    Akeneo keeps ``updated`` to the second and offers only a strict ``>``: a record written in the same second as
    the cursor, after it was taken, would compare equal and be missed. The filter therefore starts one second
    before the cursor, floored to the second; what it reads again is recognised by its fingerprint downstream.
    """
    if isinstance(since, str):
        since = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    if since.tzinfo is not None:
        since = since.astimezone(UTC).replace(tzinfo=None)
    start = since.replace(microsecond=0) - timedelta(seconds=1)
    return {"updated": [{"operator": ">", "value": start.strftime(SEARCH_DATE_FORMAT)}]}


def identifier_in(codes: Sequence[str]) -> dict[str, Any]:
    """The ``search`` filter for products with these identifiers, or product models with these codes: Akeneo
    filters both on the ``identifier`` property (it has no ``code`` filter for product models), at most
    :data:`MAX_IN_FILTER` values at a time."""
    if len(codes) > MAX_IN_FILTER:
        raise ValueError(f"Akeneo takes at most {MAX_IN_FILTER} values in an IN filter, got {len(codes)}")
    return {"identifier": [{"operator": "IN", "value": [str(c) for c in codes]}]}


def _has_items(result: HttpResult) -> None:
    """A page answer must hold ``_embedded.items``; a cut-off or garbled page is read again."""
    body = result.body
    if not isinstance(body, dict) or not isinstance((body.get("_embedded") or {}).get("items"), list):
        raise MalformedResponse("page answer without _embedded.items")


def _collection_checker(count: int) -> Callable[[HttpResult], None]:
    """A collection PATCH answer must have one JSON line per line sent; fewer means the answer was cut off."""

    def check(result: HttpResult) -> None:
        lines = [ln for ln in result.content.decode("utf-8", "replace").splitlines() if ln.strip()]
        try:
            parsed = [json.loads(ln) for ln in lines]
        except ValueError:
            raise MalformedResponse("a collection answer line is not JSON") from None
        if len(parsed) < count or not all(isinstance(p, dict) for p in parsed):
            raise MalformedResponse(f"collection answer has {len(parsed)} lines for {count} sent")

    return check


class PimClient(HttpClient):
    """Akeneo REST API v1. Build with ``PimClient("http://host:8765/pim", PimCredentials(...))``.

    At most 4 requests are in flight per token (a fifth gets 429), so the concurrency cap defaults to 4.
    """

    system = System.PIM.value
    streams: Final = {s.name: s for s in (PRODUCTS, PRODUCT_MODELS)}
    MAX_PAGE_SIZE: Final = 100
    MAX_BATCH: Final = 100

    def __init__(
        self,
        base_url: str,
        credentials: PimCredentials | Mapping[str, str],
        options: ClientOptions | None = None,
        **kwargs: Any,
    ) -> None:
        creds: PimCredentials = coerce(PimCredentials, credentials)
        options = options or ClientOptions(max_concurrency=4)
        self.oauth = AkeneoOAuth(creds)
        super().__init__(base_url, self.oauth, options, secrets=creds.secrets, **kwargs)

    @property
    def page_size(self) -> int:
        return min(self.options.page_size or self.MAX_PAGE_SIZE, self.MAX_PAGE_SIZE)

    @property
    def batch_size(self) -> int:
        return min(self.options.batch_size or self.MAX_BATCH, self.MAX_BATCH)

    # ----------------------------------------------------------------------------------------------------- reads

    def _search_after(self, path: str, stream: Stream, search: Mapping[str, Any] | None) -> Iterator[Page]:
        first: dict[str, Any] = {"pagination_type": "search_after", "limit": self.page_size}
        if search:
            first["search"] = json.dumps(search, separators=(",", ":"))
        params: dict[str, Any] | None = first
        url: str = path
        offset = 0
        while True:
            body = self.get_json(url, params, validate=_has_items)
            raw = body["_embedded"]["items"]
            good, bad = split_records(stream, raw, self.system, offset, refetch=lambda u=url, p=params: self.get_json(  # type: ignore[misc]  # mypy: lambda default args
                u, p, validate=_has_items)["_embedded"]["items"])
            offset += len(raw)
            nxt = ((body.get("_links") or {}).get("next") or {}).get("href")
            yield Page(stream.name, good, bad, nxt)
            if not nxt:
                return
            url, params = nxt, None  # the link carries the search, the limit and the search_after cursor

    def iter_products(
        self, updated_after: datetime | str | None = None, search: Mapping[str, Any] | None = None
    ) -> Iterator[Page]:
        """Products in ``search_after`` order; ``updated_after`` is the stream's delta read."""
        filters = dict(search or {})
        if updated_after is not None:
            filters.update(search_updated_after(updated_after))
        return self._search_after(PRODUCTS_PATH, PRODUCTS, filters)

    def iter_product_models(
        self, updated_after: datetime | str | None = None, search: Mapping[str, Any] | None = None
    ) -> Iterator[Page]:
        filters = dict(search or {})
        if updated_after is not None:
            filters.update(search_updated_after(updated_after))
        return self._search_after(MODELS_PATH, PRODUCT_MODELS, filters)

    def get_product(self, identifier: str) -> dict[str, Any] | None:
        result = self.request("GET", f"{PRODUCTS_PATH}/{path_segment(identifier)}", expect=(200, 404))
        return None if result.status == 404 else dict(result.body)

    def get_product_model(self, code: str) -> dict[str, Any] | None:
        result = self.request("GET", f"{MODELS_PATH}/{path_segment(code)}", expect=(200, 404))
        return None if result.status == 404 else dict(result.body)

    def family_variant_axes(self, family: str) -> dict[str, list[str]]:
        """The variant axes of each family variant of ``family`` (what a product model's variants vary by)."""
        return {
            item["code"]: [axis for level in item.get("variant_attribute_sets") or [] for axis in level.get("axes", [])]
            for item in self.list_structure(f"families/{path_segment(family)}/variants")
        }

    # ------------------------------------------------------------------------------ catalog structure (bootstrap)

    def list_structure(self, resource: str, search: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a structure list (``attributes``, ``families``, ``families/<code>/variants``, ``channels``,
        ``locales``, ...), following Akeneo's ``page`` pagination links; ``resource`` is relative to the API root
        and already encoded."""
        params: dict[str, Any] | None = {"limit": self.page_size}
        if search:
            params = {**(params or {}), "search": json.dumps(search, separators=(",", ":"))}
        url = f"{REST}/{resource}"
        items: list[dict[str, Any]] = []
        while True:
            body = self.get_json(url, params, validate=_has_items)
            items.extend(dict(item) for item in body["_embedded"]["items"])
            nxt = ((body.get("_links") or {}).get("next") or {}).get("href")
            if not nxt:
                return items
            url, params = nxt, None

    def get_structure(self, resource: str) -> dict[str, Any] | None:
        """One structure item (``channels/ecommerce``...), or None when the PIM has none by that code."""
        result = self.request("GET", f"{REST}/{resource}", expect=(200, 404))
        return None if result.status == 404 else dict(result.body)

    def measurement_families(self) -> list[dict[str, Any]]:
        """Every measurement family with its units (Akeneo answers this list whole, as a JSON array)."""
        body = self.get_json(f"{REST}/measurement-families")
        if not isinstance(body, list):
            raise MalformedResponse("measurement families answer is not a list")
        return [dict(item) for item in body]

    def patch_structure(self, resource: str, items: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Create or update structure items (keyed by ``code``) through the collection PATCH of ``resource``."""
        return self._patch_collection(f"{REST}/{resource}", "code", items)

    # ---------------------------------------------------------------------------------------------------- writes

    def upsert_products(self, products: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Create or update products, ≤100 per collection PATCH; one result per product, in input order."""
        return self._patch_collection(PRODUCTS_PATH, "identifier", products)

    def upsert_product_models(self, models: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Create or update configurable parents (product models, keyed by ``code``)."""
        return self._patch_collection(MODELS_PATH, "code", models)

    def _patch_collection(self, path: str, key: str, items: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        results: list[WriteResult] = []
        batch: list[Mapping[str, Any]] = []
        for item in items:
            identifier = item.get(key)
            if not isinstance(identifier, str) or not identifier:
                # Akeneo would refuse the line anyway; failing it here keeps it out of the batch and the audit clear
                results.append(WriteResult(f"<no {key}>", Outcome.FAILED, None, f"missing {key}", dict(item),
                                           Disposition.DEAD_LETTER))
                continue
            batch.append(item)
            if len(batch) == self.batch_size:
                results.extend(self._send_batch(path, key, batch, results))
                batch = []
        if batch:
            results.extend(self._send_batch(path, key, batch, results))
        return results

    def _send_batch(
        self, path: str, key: str, batch: list[Mapping[str, Any]], done: list[WriteResult]
    ) -> list[WriteResult]:
        payload = "\n".join(json.dumps(item, separators=(",", ":"), default=str) for item in batch)
        try:
            # PATCH is an upsert, so re-sending the whole batch after a cut-off answer changes nothing twice
            result = self.request(
                "PATCH", path, data=payload.encode(), headers={"Content-Type": COLLECTION_TYPE},
                parse="bytes", expect=(200,), validate=_collection_checker(len(batch)),
            )
        except ConnectorError as exc:
            exc.partial_results = list(done)
            raise
        lines = [json.loads(ln) for ln in result.content.decode().splitlines() if ln.strip()]
        by_line = {int(ln.get("line", i + 1)): ln for i, ln in enumerate(lines)}
        out = []
        for n, item in enumerate(batch, start=1):
            answer = by_line.get(n) or {}
            status = answer.get("status_code")
            ident = str(item[key])
            if status in (201, 204):
                out.append(WriteResult(ident, Outcome.OK, status, "created" if status == 201 else "updated",
                                       dict(item), response=answer))
                continue
            message = answer.get("message") or "no answer for this line"
            errors = answer.get("errors") or []
            if errors:
                message += ": " + "; ".join(f"{e.get('property')}: {e.get('message')}" for e in errors)
            disposition = classify(FailureKind.ITEM_REJECTED) if status == 422 else (
                classify(status) if isinstance(status, int) else Disposition.RETRY
            )
            out.append(WriteResult(ident, Outcome.FAILED, status, self.redactor(message), dict(item),
                                   disposition, answer))
        return out
