"""The five external systems as one bundle of connector clients, however they were configured.

DAG tasks build the bundle from Airflow connections (``catalog_sync.airflow.hooks``); the CLI and the tests build it
from a base URL and credentials. Flows only ever receive a ``Systems``.
"""

from __future__ import annotations

import os
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

    @classmethod
    def from_env(cls, on_attempt: AttemptCallback | None = None) -> Systems:
        """For the command line: ``CATALOG_SYNC_SYSTEMS_URL`` (default: the local sandbox) with the sandbox's
        default credentials unless ``CATALOG_SYNC_CREDENTIALS_FILE`` names a JSON file of per-system credentials."""
        import json

        from catalog_sync.sandbox.state import DEFAULT_CREDENTIALS

        url = os.environ.get("CATALOG_SYNC_SYSTEMS_URL", "http://127.0.0.1:8765")
        path = os.environ.get("CATALOG_SYNC_CREDENTIALS_FILE")
        creds: Mapping[str, Any] = DEFAULT_CREDENTIALS
        if path:
            with open(path, encoding="utf-8") as fh:
                creds = json.load(fh)
        return cls.from_base_url(url, creds, on_attempt=on_attempt)

    def close(self) -> None:
        for client in (self.erp, self.pim, self.dam, self.storefront, self.supplier):
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()
