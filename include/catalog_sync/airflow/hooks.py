"""Thin, stateless Airflow hooks: each turns one Airflow connection into a ``catalog_sync.connectors`` client.

Connection types: the package is an Airflow provider (``catalog_sync.airflow.provider``), so each system has
its own connection type, with its own form in the Airflow UI. The conn ids are ``catalog_sync_<system>``:

==============================  ===========================  ============================================
connection type                 hook                         credential fields
==============================  ===========================  ============================================
``catalog_sync_erp``            :class:`ErpHook`             password = API key (login hidden)
``catalog_sync_pim``            :class:`PimHook`             login/password = Akeneo user; ``client_id``,
                                                             ``client_secret`` = Akeneo API connection
``catalog_sync_dam``            :class:`DamHook`             password = API key (login hidden)
``catalog_sync_storefront``     :class:`StorefrontHook`      password = admin access token (login hidden);
                                                             ``api_version``, ``plan``, ``location_map``
``catalog_sync_supplier``       :class:`SupplierHook`        password = API key (login hidden)
``catalog_sync_cdn``            :class:`CdnHook`             password = Fastly API token (login hidden);
                                                             ``service_id``, ``site_url``
==============================  ===========================  ============================================

The CDN is optional: without a ``catalog_sync_cdn`` connection the flows record each page purge as skipped.

Adobe Commerce, the second sales channel (``catalog_sync_adobe_commerce``, :class:`AdobeCommerceHook`: password =
the integration's access token; ``source_map``), is not one of the systems above: it is a declared channel
(``governance/channels.yaml`` names its connection), which the nightly's ``publish_channel_<name>`` task builds
through ``catalog_sync.airflow.tasks.channel_client``.

Fields (``extra.*`` are keys of the connection's extra JSON):

* ``schema``: ``http`` or ``https`` (default ``http``); ``host``; ``port`` (empty: the scheme's default).
* ``extra.path_prefix``: the system's root under the host (``/erp`` on the sandbox, empty on a real system).
* ``extra.api_version`` (storefront only, default ``2026-04``): the Shopify Admin API version the connection
  is meant for. The client does not switch versions: it speaks GraphQL Admin ``2026-04`` only
  (``catalog_sync.connectors.storefront``), and any other value is a ConfigurationError naming the connection.
* ``extra.plan`` (storefront only, default ``standard``): the shop's Shopify plan (``standard``, ``advanced``,
  ``plus``, ``enterprise``), whose GraphQL bucket the client paces itself on until the shop reports its own.
* ``extra.location_map`` (storefront only): ERP location code -> Shopify location GID or name, e.g.
  ``{"DC-EAST": "gid://shopify/Location/1"}``; stock of an ERP location it leaves out is dead-lettered.
* ``extra.service_id``, ``extra.site_url`` (CDN only): the Fastly service that caches the shop's pages, and the
  shop's public base URL its product pages are read from (``<site_url>/products/<handle>``);
  ``extra.surrogate_key_format`` (default ``product-{handle}``): how that service tags a product's page.
* Optional tuning in ``extra`` (the JSON box of the form): ``connect_timeout``, ``read_timeout``,
  ``max_concurrency``, ``page_size``, ``batch_size``, ``max_attempts``, ``backoff_base``, ``backoff_cap``.

The hooks read the fields, not the type: a connection of the former ``http`` type with the same fields keeps
working. Field-by-field tables with examples: ``docs/connections.md``.

The hooks hold no client between calls: every ``get_conn`` builds a fresh one from the current connection, so a
rotated secret takes effect on the next task without a restart.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from catalog_sync.airflow.provider import STOREFRONT_API_VERSION
from catalog_sync.connectors import (
    CLIENTS,
    ApiKeyCredentials,
    AttemptCallback,
    CdnCredentials,
    ClientOptions,
    ConfigurationError,
    PimCredentials,
    RetryPolicy,
    StorefrontCredentials,
)
from catalog_sync.connectors.shopify_cost import plan as plan_named
from catalog_sync.connectors.storefront import API_VERSION
from catalog_sync.domain import System

#: The Shopify Admin API versions the storefront client speaks: REST (reads, single writes), GraphQL (bulk writes).
STOREFRONT_API_VERSIONS = (API_VERSION,)


def base_url_of(conn: Any) -> str:
    """The system root URL of an Airflow connection: ``schema://host:port`` + ``extra.path_prefix``."""
    host = (conn.host or "").strip()
    if not host:
        raise ConfigurationError(f"connection {conn.conn_id!r} has no host")
    if "://" in host:  # someone pasted a URL into the host field: take it as it is
        root = host.rstrip("/")
    else:
        scheme = (conn.schema or "http").lower()
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"connection {conn.conn_id!r}: schema must be http or https, got {scheme!r}")
        root = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    prefix = str(conn.extra_dejson.get("path_prefix") or "").strip("/")
    return f"{root}/{prefix}" if prefix else root


def options_of(extra: Mapping[str, Any], on_attempt: AttemptCallback | None = None, **defaults: Any) -> ClientOptions:
    """Client options from a connection's ``extra`` (strings allowed: the UI stores what was typed)."""
    base = ClientOptions(**defaults)
    retry = RetryPolicy(
        max_attempts=int(extra.get("max_attempts", base.retry.max_attempts)),
        base=float(extra.get("backoff_base", base.retry.base)),
        cap=float(extra.get("backoff_cap", base.retry.cap)),
    )
    page_size = extra.get("page_size", base.page_size)
    batch_size = extra.get("batch_size", base.batch_size)
    return ClientOptions(
        connect_timeout=float(extra.get("connect_timeout", base.connect_timeout)),
        read_timeout=float(extra.get("read_timeout", base.read_timeout)),
        max_concurrency=int(extra.get("max_concurrency", base.max_concurrency)),
        retry=retry,
        page_size=int(page_size) if page_size else None,
        batch_size=int(batch_size) if batch_size else None,
        on_attempt=on_attempt,
    )


def credentials_of(system: System, conn: Any) -> Any:
    """The credentials object a system's client expects, read from the connection fields documented above."""
    secret = conn.password or ""
    if system is System.PIM:
        extra = conn.extra_dejson
        return PimCredentials(
            client_id=str(extra.get("client_id") or ""),
            client_secret=str(extra.get("client_secret") or ""),
            username=conn.login or "",
            password=secret,
        )
    if not secret:
        raise ConfigurationError(f"connection {conn.conn_id!r} has no password (the {system} credential)")
    if system is System.STOREFRONT:
        return StorefrontCredentials(secret)
    if system is System.CDN:
        service_id = str(conn.extra_dejson.get("service_id") or "").strip()
        if not service_id:
            raise ConfigurationError(f"connection {conn.conn_id!r} has no service_id (the Fastly service)")
        return CdnCredentials(secret, service_id)
    return ApiKeyCredentials(secret)


def storefront_api_version_of(conn: Any) -> str:
    """The storefront connection's ``extra.api_version`` (default ``2026-04``); refused unless the client speaks it.

    The client's versions are fixed in code, so a connection set up for another version would silently talk to
    an API it was not meant for: better to stop with the connection named.
    """
    wanted = str(conn.extra_dejson.get("api_version") or STOREFRONT_API_VERSION).strip()
    if wanted not in STOREFRONT_API_VERSIONS:
        spoken = " and ".join(STOREFRONT_API_VERSIONS)
        raise ConfigurationError(
            f"connection {conn.conn_id!r}: api_version {wanted!r} is not a Shopify Admin API version the "
            f"storefront client speaks ({spoken})"
        )
    return wanted


def storefront_location_map_of(conn: Any) -> dict[str, str]:
    """The storefront connection's ``extra.location_map``: ERP location code -> Shopify location (its GID or its
    name), as a JSON object (or a JSON string of one). Anything else is a ConfigurationError naming the connection."""
    found = _text_map_of(conn, "location_map")
    if found is None:
        raise ConfigurationError(f"connection {conn.conn_id!r}: location_map must be a JSON object mapping each ERP "
                                 "location code to a Shopify location GID or name")
    return found


def _text_map_of(conn: Any, key: str) -> dict[str, str] | None:
    """``extra[key]`` as a JSON object of non-empty texts (or a JSON string of one); None when it is not one."""
    raw = conn.extra_dejson.get(key) or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) and v.strip() for v in raw.values()):
        return None
    return {str(k): str(v).strip() for k, v in raw.items()}


def client_from_connection(system: System, conn: Any, on_attempt: AttemptCallback | None = None,
                           max_concurrency: int | None = None) -> Any:
    """A ready client for ``system`` from an Airflow ``Connection`` (no Airflow call: easy to test).

    ``max_concurrency``: the requests in flight the caller's budget allows (a task's, ``airflow.budgets``); the
    client keeps the lower of it and the connection's own ``extra.max_concurrency``."""
    defaults = {"max_concurrency": 4}
    options = options_of(conn.extra_dejson, on_attempt, **defaults)
    if max_concurrency is not None:
        options = dataclasses.replace(options, max_concurrency=max(1, min(options.max_concurrency, max_concurrency)))
    kwargs: dict[str, Any] = {}
    if system is System.STOREFRONT:
        storefront_api_version_of(conn)
        kwargs["location_map"] = storefront_location_map_of(conn)
        try:
            kwargs["plan"] = plan_named(conn.extra_dejson.get("plan"))
        except ValueError as exc:
            raise ConfigurationError(f"connection {conn.conn_id!r}: {exc}") from None
    if system is System.CDN:
        kwargs["site_url"] = str(conn.extra_dejson.get("site_url") or "").strip() or None
        if conn.extra_dejson.get("surrogate_key_format"):
            kwargs["surrogate_key_format"] = str(conn.extra_dejson["surrogate_key_format"])
    if system is System.ERP and str(conn.extra_dejson.get("item_feed") or "").strip():
        return _file_fed_erp(conn, options)
    return CLIENTS[system](base_url_of(conn), credentials_of(system, conn), options, **kwargs)


def _file_fed_erp(conn: Any, options: Any) -> Any:
    """The ERP connection's extra ``item_feed`` names an inbox of item exports: a folder, or an object-store URL
    read through Airflow's ObjectStoragePath (``item_feed_conn_id`` names the store's connection). Stock, prices
    and the change feed still use the ERP's API when the connection has a host."""
    from catalog_sync.connectors.erp_files import ErpItemFiles, inbox_path

    location = str(conn.extra_dejson["item_feed"]).strip()
    if "://" in location and not location.startswith("file://"):
        from airflow.sdk import ObjectStoragePath

        inbox: Any = ObjectStoragePath(location, conn_id=conn.extra_dejson.get("item_feed_conn_id"))
    else:
        inbox = inbox_path(location)
    api = CLIENTS[System.ERP](base_url_of(conn), credentials_of(System.ERP, conn), options) if conn.host else None
    return ErpItemFiles(inbox, api)


class CatalogSyncHook(BaseHook):
    """Base of the per-system hooks. ``get_conn()`` returns a new client; close it (or use ``with``) when done."""

    conn_name_attr = "conn_id"
    conn_type: ClassVar[str]
    system: ClassVar[System]
    default_conn_name: ClassVar[str]

    def __init__(self, conn_id: str | None = None, on_attempt: AttemptCallback | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self.on_attempt = on_attempt

    def get_conn(self, max_concurrency: int | None = None) -> Any:
        return client_from_connection(self.system, self.get_connection(self.conn_id), self.on_attempt,
                                      max_concurrency)


class ErpHook(CatalogSyncHook):
    system = System.ERP
    default_conn_name = "catalog_sync_erp"
    conn_type = "catalog_sync_erp"
    hook_name = "Catalog Sync ERP"


class PimHook(CatalogSyncHook):
    system = System.PIM
    default_conn_name = "catalog_sync_pim"
    conn_type = "catalog_sync_pim"
    hook_name = "Catalog Sync PIM (Akeneo)"


class DamHook(CatalogSyncHook):
    system = System.DAM
    default_conn_name = "catalog_sync_dam"
    conn_type = "catalog_sync_dam"
    hook_name = "Catalog Sync DAM"


class StorefrontHook(CatalogSyncHook):
    system = System.STOREFRONT
    default_conn_name = "catalog_sync_storefront"
    conn_type = "catalog_sync_storefront"
    hook_name = "Catalog Sync storefront (Shopify)"


class SupplierHook(CatalogSyncHook):
    system = System.SUPPLIER
    default_conn_name = "catalog_sync_supplier"
    conn_type = "catalog_sync_supplier"
    hook_name = "Catalog Sync supplier portal"


class CdnHook(CatalogSyncHook):
    system = System.CDN
    default_conn_name = "catalog_sync_cdn"
    conn_type = "catalog_sync_cdn"
    hook_name = "Catalog Sync CDN (Fastly)"


#: The hook of each system, for code that loops over systems.
HOOKS: dict[System, type[CatalogSyncHook]] = {
    h.system: h for h in (ErpHook, PimHook, DamHook, StorefrontHook, SupplierHook, CdnHook)
}
#: Systems a deployment may go without (``Systems`` holds None for them).
OPTIONAL: frozenset[System] = frozenset({System.CDN})


# ------------------------------------------------------------------------------ the second sales channel (issue #21)
def adobe_commerce_source_map_of(conn: Any) -> dict[str, str]:
    """The Adobe Commerce connection's ``extra.source_map``: ERP location code -> Inventory (MSI) source code, as a
    JSON object (or a JSON string of one). Stock of a location it leaves out is dead-lettered by the mapping."""
    found = _text_map_of(conn, "source_map")
    if found is None:
        raise ConfigurationError(f"connection {conn.conn_id!r}: source_map must be a JSON object mapping each ERP "
                                 "location code to an Adobe Commerce inventory source code")
    return found


def adobe_commerce_client_from_connection(conn: Any, on_attempt: AttemptCallback | None = None,
                                          max_concurrency: int | None = None) -> Any:
    """An ``AdobeCommerceClient`` from an Airflow ``Connection``: password = the integration's access token; host,
    port, schema and ``extra.path_prefix`` as for the five systems; the tuning keys of ``extra`` likewise.
    ``max_concurrency`` (a task's request budget) caps the connection's own figure."""
    from catalog_sync.connectors.adobe_commerce import AdobeCommerceClient
    from catalog_sync.connectors.credentials import AdobeCommerceCredentials

    if not conn.password:
        raise ConfigurationError(f"connection {conn.conn_id!r} has no password (the Adobe Commerce integration's "
                                 "access token)")
    adobe_commerce_source_map_of(conn)  # refuse a malformed map before any request
    options = options_of(conn.extra_dejson, on_attempt, max_concurrency=4)
    if max_concurrency is not None:
        options = dataclasses.replace(options, max_concurrency=min(options.max_concurrency, max_concurrency))
    return AdobeCommerceClient(base_url_of(conn), AdobeCommerceCredentials(conn.password), options)


class AdobeCommerceHook(BaseHook):
    """Adobe Commerce as a sales channel, from the connection ``catalog_sync_adobe_commerce`` (or the one
    ``governance/channels.yaml`` names). Not in :data:`HOOKS`: a channel is declared data, not one of the systems
    every task builds (docs/adr/0017-channels-as-data.md)."""

    conn_name_attr = "conn_id"
    default_conn_name = "catalog_sync_adobe_commerce"
    conn_type = "catalog_sync_adobe_commerce"
    hook_name = "Catalog Sync sales channel (Adobe Commerce)"

    def __init__(self, conn_id: str | None = None, on_attempt: AttemptCallback | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self.on_attempt = on_attempt

    def get_conn(self, max_concurrency: int | None = None) -> Any:
        return adobe_commerce_client_from_connection(self.get_connection(self.conn_id), self.on_attempt,
                                                     max_concurrency)

    def source_map(self) -> dict[str, str]:
        return adobe_commerce_source_map_of(self.get_connection(self.conn_id))
