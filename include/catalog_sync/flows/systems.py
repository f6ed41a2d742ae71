"""The five external systems as one bundle of connector clients, however they were configured.

DAG tasks, the command line and the UI build the bundle from the same Airflow connections
(``catalog_sync.airflow.systems``); tests and scripts may build it from a base URL and explicit credentials. Flows
only ever receive a ``Systems``, so they never touch Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from catalog_sync.connectors import (
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


@dataclass
class Systems:
    erp: ErpClient
    pim: PimClient
    dam: DamClient
    storefront: StorefrontClient
    supplier: SupplierClient

    @classmethod
    def from_base_url(
        cls,
        base_url: str,
        credentials: Mapping[str, Any],
        options: ClientOptions | None = None,
        on_attempt: AttemptCallback | None = None,
    ) -> Systems:
        """All five systems under one base URL with a ``/<system>`` prefix each (the sandbox's layout)."""
        root = base_url.rstrip("/")

        def make(system: System) -> Any:
            opts = options or ClientOptions()
            if on_attempt is not None:
                opts = ClientOptions(**{**opts.__dict__, "on_attempt": on_attempt})
            if system is System.PIM and options is None:
                opts = ClientOptions(**{**opts.__dict__, "max_concurrency": 4})
            return build_client(system, f"{root}/{system.value}", credentials[system.value], opts)

        return cls(*(make(s) for s in (System.ERP, System.PIM, System.DAM, System.STOREFRONT, System.SUPPLIER)))

    def close(self) -> None:
        for client in (self.erp, self.pim, self.dam, self.storefront, self.supplier):
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()
