"""The five external systems, and the CDN in front of the shop's pages when there is one, as one bundle of
connector clients, however they were configured.

DAG tasks, the command line and the UI build the bundle from the same Airflow connections
(``catalog_sync.airflow.systems``); tests and scripts may build it from a base URL and explicit credentials. Flows
only ever receive a ``Systems``, so they never touch Airflow. The CDN is optional: without one, ``cdn`` is None,
shoppers get the storefront's own pages, and a flow that would purge a page records that it did not.
``channels`` holds the clients of the declared sales channels beyond the storefront
(``catalog_sync/governance/channels.yaml``), by channel name, when they are configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    #: Declared sales channel name -> its client (an ``AdobeCommerceClient``); those not configured are absent.
    channels: dict[str, Any] = field(default_factory=dict)

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
        CDN at ``/cdn`` (its pages at ``/cdn/edge``) when ``credentials`` has some for it, and each declared sales
        channel at ``/<channel>`` when ``credentials`` has some under its name. The storefront's
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
                   make(System.SUPPLIER), cdn, channels=_channel_clients(root, credentials, options, on_attempt))

    def close(self) -> None:
        for client in (self.erp, self.pim, self.dam, self.storefront, self.supplier, self.cdn,
                       *self.channels.values()):
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()


def _channel_clients(root: str, credentials: Mapping[str, Any], options: ClientOptions | None,
                     on_attempt: AttemptCallback | None) -> dict[str, Any]:
    """A client per declared channel that ``credentials`` has an entry for, at ``<root>/<channel>``. The sandbox's
    consumer runs a bulk on its next status read, so its bulks are polled from 50 ms on."""
    from catalog_sync.connectors.adobe_commerce import AdobeCommerceClient, PollPolicy
    from catalog_sync.governance.channels import load_channels

    out: dict[str, Any] = {}
    for channel in load_channels().channels.values():
        if credentials.get(channel.name):
            opts = options or ClientOptions()
            if on_attempt is not None:
                opts = ClientOptions(**{**opts.__dict__, "on_attempt": on_attempt})
            out[channel.name] = AdobeCommerceClient(f"{root}/{channel.name}", credentials[channel.name], opts,
                                                    poll=PollPolicy(first=0.05, cap=1.0))
    return out
