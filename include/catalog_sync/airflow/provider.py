"""The ``apache_airflow_provider`` entry point: registers one Airflow connection type per external system.

Airflow calls :func:`get_provider_info` in every component (scheduler, API server, workers) when it lists the
installed providers, so this module is plain data and imports nothing heavy; the hooks themselves are imported
only when a connection of their type is used.

The connection form of each type (extra fields; relabelled, hidden and placeholder-filled standard fields) is
declared here, under ``conn-fields`` and ``ui-field-behaviour``: that is what the Airflow 3.3 UI reads, without
importing the hook. The older hook classmethods ``get_connection_form_widgets``/``get_ui_field_behaviour`` are
deprecated since Airflow 3.2 and not consulted when these keys are present, so the hooks do not define them.
Field meanings: ``docs/connections.md``.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

#: The distribution name; Airflow refuses provider info whose ``package-name`` differs from it.
PACKAGE_NAME: Final = "catalog-sync"
INTEGRATION: Final = "Catalog Sync"
HOOKS_MODULE: Final = "catalog_sync.airflow.hooks"

#: The Shopify Admin API version a new storefront connection is set up for (the GraphQL bulk-write version).
STOREFRONT_API_VERSION: Final = "2026-04"

_NULLABLE_STRING: Final = ["string", "null"]
_PATH_PREFIX: Final = {
    "label": "Path prefix",
    "description": "The system's root under the host: /erp, /pim... on the sandbox; empty on a real system.",
    "schema": {"type": _NULLABLE_STRING},
}


def _connection_type(
    system: str,
    hook_class: str,
    hook_name: str,
    *,
    password_label: str,
    login_label: str | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``connection-types`` entry. ``login_label=None`` hides the login (systems that take only a key)."""
    relabeling = {"schema": "Scheme (http or https)", "password": password_label}
    hidden = []
    if login_label is None:
        hidden.append("login")
    else:
        relabeling["login"] = login_label
    return {
        "connection-type": f"catalog_sync_{system}",
        "hook-class-name": f"{HOOKS_MODULE}.{hook_class}",
        "hook-name": hook_name,
        "conn-fields": {"path_prefix": _PATH_PREFIX, **(fields or {})},
        "ui-field-behaviour": {
            "hidden-fields": hidden,
            "relabeling": relabeling,
            "placeholders": {"schema": "https", "host": f"{system}.example.com"},
        },
    }


CONNECTION_TYPES: Final[list[dict[str, Any]]] = [
    _connection_type("erp", "ErpHook", "Catalog Sync ERP", password_label="API key"),
    _connection_type(
        "pim",
        "PimHook",
        "Catalog Sync PIM (Akeneo)",
        login_label="Username (Akeneo user)",
        password_label="Password (Akeneo user)",
        fields={
            "client_id": {
                "label": "Client ID",
                "description": "The client id of the Akeneo API connection.",
                "schema": {"type": _NULLABLE_STRING},
            },
            "client_secret": {
                "label": "Client secret",
                "description": "The secret of the Akeneo API connection.",
                "schema": {"type": _NULLABLE_STRING, "format": "password"},
            },
        },
    ),
    _connection_type("dam", "DamHook", "Catalog Sync DAM", password_label="API key"),
    _connection_type(
        "storefront",
        "StorefrontHook",
        "Catalog Sync storefront (Shopify)",
        password_label="Admin access token",
        fields={
            "api_version": {
                "label": "API version",
                "description": "The Shopify Admin API version; must be one the storefront client speaks.",
                "schema": {"type": _NULLABLE_STRING, "default": STOREFRONT_API_VERSION,
                           "pattern": r"^\d{4}-\d{2}$"},
            },
            "plan": {
                "label": "Shopify plan",
                "description": "The shop's plan, whose GraphQL cost bucket the client paces itself on: standard "
                               "(1,000 points, 100/s), advanced (2,000, 200/s), plus (10,000, 1,000/s), enterprise "
                               "(20,000, 2,000/s).",
                "schema": {"type": _NULLABLE_STRING, "default": "standard",
                           "enum": ["standard", "advanced", "plus", "enterprise", None]},
            },
            "location_map": {
                "label": "Location map",
                "description": "JSON object: ERP location code -> Shopify location GID or name, e.g. "
                               '{"DC-EAST": "gid://shopify/Location/1"}. Stock of an unmapped ERP location is '
                               "dead-lettered.",
                "schema": {"type": _NULLABLE_STRING},
            },
        },
    ),
    _connection_type("supplier", "SupplierHook", "Catalog Sync supplier portal", password_label="API key"),
    _connection_type(
        "cdn",
        "CdnHook",
        "Catalog Sync CDN (Fastly)",
        password_label="API token (purge)",
        fields={
            "service_id": {
                "label": "Service ID",
                "description": "The Fastly service that caches the shop's product pages.",
                "schema": {"type": _NULLABLE_STRING},
            },
            "site_url": {
                "label": "Shop URL",
                "description": "The shop's public base URL; product pages are read at <shop URL>/products/<handle>.",
                "schema": {"type": _NULLABLE_STRING},
            },
        },
    ),
    # a declared sales channel (governance/channels.yaml names the connection), not one of the five systems
    _connection_type(
        "adobe_commerce",
        "AdobeCommerceHook",
        "Catalog Sync sales channel (Adobe Commerce)",
        password_label="Integration access token",
        fields={
            "source_map": {
                "label": "Source map",
                "description": "JSON object: ERP location code -> Adobe Commerce inventory (MSI) source code, e.g. "
                               '{"DC-EAST": "dc_east"}. Stock of an unmapped ERP location is dead-lettered.',
                "schema": {"type": _NULLABLE_STRING},
            },
        },
    ),
]


def _version() -> str | None:
    try:
        return version(PACKAGE_NAME)
    except PackageNotFoundError:  # imported from a source tree that is not installed
        return None


def get_provider_info() -> dict[str, Any]:
    """The provider info Airflow validates against its ``provider_info.schema.json``."""
    info: dict[str, Any] = {
        "package-name": PACKAGE_NAME,
        "name": INTEGRATION,
        "description": "Catalog Sync: connection types and hooks for the ERP, PIM, DAM, storefront and supplier "
        "portal that the product-data sync reads from and writes to, and the CDN in front of the shop's pages.",
        "integrations": [{"integration-name": INTEGRATION, "tags": ["service"]}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [HOOKS_MODULE]}],
        "connection-types": copy.deepcopy(CONNECTION_TYPES),  # callers may change their copy, not the table
    }
    current = _version()
    if current:
        info["versions"] = [current]
    return info

