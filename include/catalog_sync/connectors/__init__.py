"""Connectors: one client per external system, plus declared streams and pure mappings to the canonical record.

Boundary: nothing in this package imports Airflow; ``catalog_sync.airflow.hooks`` turns Airflow connections into
these clients. Every failure is classified by ``catalog_sync.connectors.http.CLASSIFICATION``.
"""

from __future__ import annotations

from typing import Any, Final

from catalog_sync.connectors.base import Outcome, Page, ReadResult, Stream, WriteResult
from catalog_sync.connectors.cdn import CdnClient
from catalog_sync.connectors.credentials import (
    ApiKeyCredentials,
    CdnCredentials,
    PimCredentials,
    StorefrontCredentials,
)
from catalog_sync.connectors.dam import DamClient
from catalog_sync.connectors.erp import ErpClient
from catalog_sync.connectors.http import (
    CLASSIFICATION,
    Attempt,
    AttemptCallback,
    AuthError,
    ClientOptions,
    ConfigurationError,
    ConnectorError,
    Disposition,
    HttpClient,
    RecordError,
    RetryPolicy,
    TransientError,
    classify,
    redact,
)
from catalog_sync.connectors.pim import PimClient
from catalog_sync.connectors.storefront import StorefrontClient
from catalog_sync.connectors.supplier import SupplierClient
from catalog_sync.domain import System

#: The client class of each system.
CLIENTS: Final[dict[System, type[HttpClient]]] = {
    System.ERP: ErpClient,
    System.PIM: PimClient,
    System.DAM: DamClient,
    System.STOREFRONT: StorefrontClient,
    System.SUPPLIER: SupplierClient,
    System.CDN: CdnClient,
}


def build_client(system: System | str, base_url: str, credentials: Any, options: ClientOptions | None = None,
                 **kwargs: Any) -> Any:
    """A client for ``system`` at ``base_url`` (the system's own root, e.g. ``http://127.0.0.1:8765/erp``);
    ``kwargs`` are the client's own settings (the CDN's ``site_url``)."""
    return CLIENTS[System(system)](base_url, credentials, options, **kwargs)


__all__ = [
    "CLASSIFICATION", "CLIENTS", "ApiKeyCredentials", "Attempt", "AttemptCallback", "AuthError", "CdnClient",
    "CdnCredentials", "ClientOptions", "ConfigurationError",
    "ConnectorError", "DamClient", "Disposition", "ErpClient", "Outcome", "Page", "PimClient", "PimCredentials",
    "ReadResult", "RecordError", "RetryPolicy", "StorefrontClient", "StorefrontCredentials", "Stream",
    "SupplierClient", "TransientError", "WriteResult", "build_client", "classify", "redact",
]
