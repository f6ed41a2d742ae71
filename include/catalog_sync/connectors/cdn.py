"""CDN connector: the cache in front of the storefront's product pages, read as shoppers read it and purged
through Fastly's API.

Shoppers do not get a product page from the storefront itself: a CDN caches each page per URL and serves that
copy until its TTL runs out, whatever the storefront's admin API has changed since. The CDN service tags each
product page with a surrogate key (``product-<handle>`` unless configured otherwise), so one purge call
invalidates every cached page of the products a run changed.

Purging follows Fastly's API (https://www.fastly.com/documentation/reference/api/purging/):

* the API token in the ``Fastly-Key`` header (a token with the ``purge_select`` scope);
* ``POST /service/{service_id}/purge`` with the keys, space-separated, in a ``Surrogate-Key`` header: at most
  256 keys a call, answered with each key's purge id;
* ``POST /purge/{host}/{path}``: one URL, the cached URL without its scheme, answered ``{"status": "ok", "id"}``.

The pages themselves are read from the shop's public address (``site_url``), with no credentials: what a
shopper's browser gets, including the CDN's ``X-Cache`` and ``Age`` headers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from catalog_sync.connectors.credentials import CdnCredentials, coerce
from catalog_sync.connectors.http import (
    ApiKeyAuth,
    ClientOptions,
    ConfigurationError,
    ConnectorError,
    HttpClient,
    HttpResult,
    MalformedResponse,
    path_segment,
    require_keys,
)
from catalog_sync.domain import System

#: Fastly purges at most this many surrogate keys in one call.
KEYS_PER_PURGE: Final = 256
#: How the CDN service tags a product's page, unless the connection says otherwise.
DEFAULT_SURROGATE_KEY: Final = "product-{handle}"


@dataclass(frozen=True)
class ShopperPage:
    """The product page a shopper is served. ``cache`` is the CDN's ``X-Cache`` (``HIT`` | ``MISS``), ``age`` the
    seconds a cached copy has been held (``Age``); both None when the page came without them."""

    status: int
    html: str
    cache: str | None
    age: int | None


class _Site(HttpClient):
    """The shop's public pages: no credentials, since a shopper has none."""

    system = System.CDN.value


class CdnClient(HttpClient):
    """Fastly's purge API for one service, plus the shop's pages as the CDN serves them.

    Build with ``CdnClient("https://api.fastly.com", CdnCredentials(token, service_id),
    site_url="https://shop.example.com")``; without ``site_url`` the client purges but cannot read pages.
    """

    system = System.CDN.value

    def __init__(
        self,
        base_url: str,
        credentials: CdnCredentials | Mapping[str, Any],
        options: ClientOptions | None = None,
        *,
        site_url: str | None = None,
        surrogate_key_format: str = DEFAULT_SURROGATE_KEY,
        **kwargs: Any,
    ) -> None:
        creds = coerce(CdnCredentials, credentials)
        if not creds.service_id:
            raise ConfigurationError("cdn: no service id configured (the Fastly service that caches the pages)")
        if "{handle}" not in surrogate_key_format:
            raise ConfigurationError(f"cdn: surrogate key format {surrogate_key_format!r} must contain {{handle}}")
        super().__init__(base_url, ApiKeyAuth(creds.api_token, "Fastly-Key"), options, **kwargs)
        self.service_id = creds.service_id
        self.surrogate_key_format = surrogate_key_format
        self.site = _Site(site_url, None, options) if site_url else None

    def close(self) -> None:
        if self.site is not None:
            self.site.close()
        super().close()

    # ------------------------------------------------------------------------------------------------- pages

    def surrogate_key(self, handle: str) -> str:
        """The key the CDN tags the page of the product ``handle`` with."""
        key = self.surrogate_key_format.format(handle=handle)
        if not key or any(c.isspace() for c in key):
            # keys travel space-separated in one header: a key with a space would purge two wrong ones
            raise ConfigurationError(f"cdn: surrogate key {key!r} for handle {handle!r} is empty or holds a space")
        return key

    def page_url(self, handle: str) -> str:
        """Where shoppers get the product page of ``handle``."""
        return self._site().url(f"products/{path_segment(handle)}")

    def shopper_page(self, handle: str) -> ShopperPage:
        """The product page of ``handle`` as the CDN serves it now (a miss fills its cache, as a visit would)."""
        result = self._site().request("GET", f"products/{path_segment(handle)}", expect=(200, 404), parse="text",
                                      authenticate=False)
        age = result.headers.get("Age")
        return ShopperPage(result.status, str(result.body or result.content.decode("utf-8", "replace")),
                           result.headers.get("X-Cache"), int(age) if age and age.isdigit() else None)

    def _site(self) -> HttpClient:
        if self.site is None:
            raise ConfigurationError("cdn: no site_url configured, so the shop's pages cannot be read")
        return self.site

    # ------------------------------------------------------------------------------------------------ purges

    def purge_keys(self, keys: Sequence[str]) -> dict[str, str]:
        """Purge every page tagged with any of ``keys``; returns each key's purge id.

        :data:`KEYS_PER_PURGE` keys to a call. When a later call fails, the raised error's ``partial_results``
        holds the ``(key, purge id)`` pairs of the calls that went through.
        """
        wanted = list(dict.fromkeys(keys))
        done: dict[str, str] = {}
        for start in range(0, len(wanted), KEYS_PER_PURGE):
            batch = wanted[start:start + KEYS_PER_PURGE]
            try:
                result = self.request("POST", f"service/{path_segment(self.service_id)}/purge",
                                      headers={"Surrogate-Key": " ".join(batch)}, validate=_purged(batch))
            except ConnectorError as exc:
                exc.partial_results = list(done.items())
                raise
            done.update({key: str(result.body[key]) for key in batch})
        return done

    def purge_pages(self, handles: Sequence[str]) -> dict[str, str]:
        """Purge the cached pages of the products ``handles``; returns each handle's purge id."""
        keys = {handle: self.surrogate_key(handle) for handle in handles}
        ids = self.purge_keys(list(keys.values()))
        return {handle: ids[key] for handle, key in keys.items()}

    def purge_url(self, url: str) -> str:
        """Purge one cached URL; returns the purge id."""
        target = url.split("://", 1)[-1]  # Fastly names the cached URL by host and path, without the scheme
        if "/" not in target:
            raise ConfigurationError(f"cdn: {url!r} names no page (expected host/path)")
        result = self.request("POST", "purge/" + quote(target, safe="/:@"), validate=require_keys("id"))
        return str(result.body["id"])


def _purged(keys: Sequence[str]) -> Callable[[HttpResult], None]:
    """A ``validate`` callback: a bulk purge answers a purge id for every key it was sent."""

    def check(result: HttpResult) -> None:
        if not isinstance(result.body, dict) or any(key not in result.body for key in keys):
            raise MalformedResponse(f"the purge answer lacks the purge id of some of its {len(keys)} keys")

    return check


__all__ = ["DEFAULT_SURROGATE_KEY", "KEYS_PER_PURGE", "CdnClient", "ShopperPage"]
