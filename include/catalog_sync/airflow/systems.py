"""The five systems as configured for this Airflow environment, for code that runs outside a task.

The command line and the UI resolve the systems from the same Airflow connections (or secrets backend) as the DAG
tasks, so one configuration describes five systems on five hosts everywhere. ``CATALOG_SYNC_SYSTEMS_URL`` with
``CATALOG_SYNC_CREDENTIALS_FILE`` (a JSON file of per-system credentials) overrides them with one root for all five
systems, for scripts that run without an Airflow environment. Nothing has a built-in default: a system that is not
configured is a ``ConfigurationError`` naming what to fill in, except the CDN, which a deployment may go without
(``catalog_sync_cdn`` absent, or no ``cdn`` entry in the credentials file: ``Systems.cdn`` is None).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from catalog_sync.airflow.hooks import HOOKS, client_from_connection
from catalog_sync.connectors import AttemptCallback, ConfigurationError
from catalog_sync.domain import System
from catalog_sync.flows.systems import Systems

log = logging.getLogger(__name__)

#: The order of ``Systems``' fields; each one must be configured.
ORDER = (System.ERP, System.PIM, System.DAM, System.STOREFRONT, System.SUPPLIER)


def configured_systems(on_attempt: AttemptCallback | None = None, *, command_line: bool = False) -> Systems:
    """The systems from ``CATALOG_SYNC_SYSTEMS_URL`` when it is set, else from the Airflow connections.

    ``command_line``: the caller is a ``catalog-sync`` command, whose stdout is its result; Airflow's log lines
    then go to stderr.
    """
    url = os.environ.get("CATALOG_SYNC_SYSTEMS_URL")
    if not url:
        return systems_from_connections(on_attempt, command_line=command_line)
    path = os.environ.get("CATALOG_SYNC_CREDENTIALS_FILE")
    if not path:
        raise ConfigurationError(
            "CATALOG_SYNC_SYSTEMS_URL is set but CATALOG_SYNC_CREDENTIALS_FILE is not: name a JSON file with each "
            "system's credentials, or unset CATALOG_SYNC_SYSTEMS_URL to use the Airflow connections")
    try:
        with open(path, encoding="utf-8") as fh:
            creds: Any = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"CATALOG_SYNC_CREDENTIALS_FILE {path!r} cannot be read: {exc}") from None
    missing = [s.value for s in ORDER if not isinstance(creds, Mapping) or not isinstance(creds.get(s.value), Mapping)]
    if missing:
        raise ConfigurationError(f"CATALOG_SYNC_CREDENTIALS_FILE {path!r} has no credentials for {', '.join(missing)}")
    return Systems.from_base_url(url, creds, on_attempt=on_attempt)


def systems_from_connections(on_attempt: AttemptCallback | None = None, *, command_line: bool = False) -> Systems:
    """Each system from its Airflow connection (``catalog_sync_<system>``), looked up as Airflow does outside a task:
    environment variables (``AIRFLOW_CONN_...``), the configured secrets backend, then the metadata database."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    if command_line:
        _airflow_logs_to_stderr()
    clients: list[Any] = []
    for system in ORDER:
        conn_id = HOOKS[system].default_conn_name
        try:
            conn = Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            for client in clients:
                client.close()
            raise ConfigurationError(
                f"the {system.value} is not configured: define the Airflow connection {conn_id!r} (airflow "
                f"connections add, airflow_settings.yaml, or AIRFLOW_CONN_{conn_id.upper()}), or set "
                "CATALOG_SYNC_SYSTEMS_URL and CATALOG_SYNC_CREDENTIALS_FILE") from None
        clients.append(client_from_connection(system, conn, on_attempt))
    erp, pim, dam, storefront, supplier = clients
    channels = _channel_clients(on_attempt)
    try:
        cdn = Connection.get_connection_from_secrets(HOOKS[System.CDN].default_conn_name)
    except AirflowNotFoundException:
        log.info("no Airflow connection %r: pages are read from the storefront and purges are skipped",
                 HOOKS[System.CDN].default_conn_name)
        return Systems(erp, pim, dam, storefront, supplier, channels=channels)
    return Systems(erp, pim, dam, storefront, supplier, client_from_connection(System.CDN, cdn, on_attempt),
                   channels=channels)


def _channel_clients(on_attempt: AttemptCallback | None) -> dict[str, Any]:
    """The declared sales channels whose Airflow connection exists, by name (a channel without one is left out:
    the trace then says it is not configured here)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    from catalog_sync.airflow.hooks import adobe_commerce_client_from_connection
    from catalog_sync.governance.channels import load_channels

    out: dict[str, Any] = {}
    for channel in load_channels().channels.values():
        try:
            conn = Connection.get_connection_from_secrets(channel.connection_id)
        except AirflowNotFoundException:
            continue
        out[channel.name] = adobe_commerce_client_from_connection(conn, on_attempt)
    return out


def _airflow_logs_to_stderr() -> None:
    """Importing Airflow sends its log lines (structlog, and the root logger's handler) to stdout. A command's
    stdout is its result (``--json`` is piped into other tools), so in a ``catalog-sync`` process they go to stderr
    like the command's own log lines. Never called in the API server, whose logging is Airflow's to configure."""
    import structlog

    # The process's own stderr, not whatever object ``sys.stderr`` is bound to now: a caller that swaps it for a
    # while (a test capturing output) would leave the loggers writing to a closed stream after it.
    stderr = sys.__stderr__ or sys.stderr
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=stderr))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(stderr)


#: Largest image the UI fetches from the DAM for a thumbnail (a rendition for the shop is far smaller).
MAX_IMAGE_BYTES = 10 * 1024 * 1024


def dam_image(src: str) -> tuple[bytes, str] | None:
    """The image at ``src`` when it is a file of the configured DAM (which serves its renditions only with its
    credentials), fetched with those credentials: ``(bytes, media type)``. None for any other address (not fetched:
    the DAM's credentials go to the DAM only) and for an answer that is not an image."""
    systems = configured_systems()
    try:
        dam = systems.dam
        if not src.startswith(dam.base_url):
            return None
        result = dam.request("GET", src, parse="bytes", expect=(200,))
    finally:
        systems.close()
    media = str(result.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not media.startswith("image/") or len(result.content) > MAX_IMAGE_BYTES:
        return None
    return result.content, media


def explain_configured(sku: str, hub_url: str | None = None, *, command_line: bool = False) -> dict[str, Any]:
    """``catalog_sync.trace.explain_sku`` over the configured systems: the command line's and the UI's trace."""
    from catalog_sync.trace import explain_sku

    systems = configured_systems(command_line=command_line)
    try:
        return explain_sku(sku, systems, hub_url)
    finally:
        systems.close()
