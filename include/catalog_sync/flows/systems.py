"""The five external systems, and the CDN in front of the shop's pages when there is one, as one bundle of
connector clients, however they were configured.

DAG tasks, the command line and the UI build the bundle from the same Airflow connections
(``catalog_sync.airflow.systems``); tests and scripts may build it from a base URL and explicit credentials. Flows
only ever receive a ``Systems``, so they never touch Airflow. The CDN is optional: without one, ``cdn`` is None,
shoppers get the storefront's own pages, and a flow that would purge a page records that it did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from catalog_sync.connectors import (
    CdnClient,
    ClientOptions,
    DamClient,
    ErpClient,
    PimClient,
    StorefrontClient,
    SupplierClient,
    build_client,
)
from catalog_sync.connectors.http import AttemptCallback
from catalog_sync.domain import System

#: ERP location code -> location of the sandbox shop (by name): the layout ``from_base_url`` is for.
SANDBOX_LOCATION_MAP: Final[Mapping[str, str]] = {
    "DC-EAST": "East distribution centre",
    "DC-WEST": "West distribution centre",
    "STORE-NYC": "New York store",
}


@dataclass
class Systems:
    erp: ErpClient
    pim: PimClient
    dam: DamClient
    storefront: StorefrontClient
    supplier: SupplierClient
    cdn: CdnClient | None = None

    @classmethod
    def from_base_url(
        cls,
        base_url: str,
        credentials: Mapping[str, Any],
        options: ClientOptions | None = None,
        on_attempt: AttemptCallback | None = None,
        location_map: Mapping[str, str] | None = None,
    ) -> Systems:
        """All five systems under one base URL with a ``/<system>`` prefix each (the sandbox's layout), and the
        CDN at ``/cdn`` (its pages at ``/cdn/edge``) when ``credentials`` has some for it. The storefront's
        ``location_map`` defaults to the sandbox shop's (:data:`SANDBOX_LOCATION_MAP`)."""
        root = base_url.rstrip("/")

        def make(system: System, **kwargs: Any) -> Any:
            opts = options or ClientOptions()
            if on_attempt is not None:
                opts = ClientOptions(**{**opts.__dict__, "on_attempt": on_attempt})
            if system is System.PIM and options is None:
                opts = ClientOptions(**{**opts.__dict__, "max_concurrency": 4})
            return build_client(system, f"{root}/{system.value}", credentials[system.value], opts, **kwargs)

        cdn = make(System.CDN, site_url=f"{root}/cdn/edge") if credentials.get(System.CDN.value) else None
        storefront = make(System.STOREFRONT,
                          location_map=SANDBOX_LOCATION_MAP if location_map is None else location_map)
        return cls(make(System.ERP), make(System.PIM), make(System.DAM), storefront,
                   make(System.SUPPLIER), cdn)

    def close(self) -> None:
        for client in (self.erp, self.pim, self.dam, self.storefront, self.supplier, self.cdn):
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()
