"""Airflow connections -> connector clients, and airflow_settings.yaml consistency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import Connection

from catalog_sync.airflow.hooks import (
    HOOKS,
    STOREFRONT_API_VERSIONS,
    ErpHook,
    PimHook,
    base_url_of,
    client_from_connection,
    credentials_of,
    storefront_api_version_of,
)
from catalog_sync.connectors import CdnClient, ConfigurationError, DamClient, PimClient, StorefrontClient
from catalog_sync.domain import System

REPO = Path(__file__).resolve().parents[2]


def test_base_url_from_schema_host_port_and_prefix() -> None:
    conn = Connection(conn_id="c", conn_type="http", host="127.0.0.1", port=8765, schema="https",
                      extra=json.dumps({"path_prefix": "/dam/"}))
    assert base_url_of(conn) == "https://127.0.0.1:8765/dam"
    assert base_url_of(Connection(conn_id="c", conn_type="http", host="pim.example.com")) == "http://pim.example.com"
    with pytest.raises(ConfigurationError):
        base_url_of(Connection(conn_id="c", conn_type="http", host="h", schema="ftp"))


def test_pim_connection_becomes_an_oauth_client_without_leaking_secrets() -> None:
    conn = Connection(conn_id="catalog_sync_pim", conn_type="http", host="127.0.0.1", port=8765, login="julia",
                      password="pw-secret-1", extra=json.dumps({"path_prefix": "/pim", "client_id": "cid",
                                                                "client_secret": "cs-secret-2", "max_attempts": "2"}))
    client = client_from_connection(System.PIM, conn)
    assert isinstance(client, PimClient)
    assert client.base_url == "http://127.0.0.1:8765/pim/"
    assert client.oauth.credentials.username == "julia" and client.options.retry.max_attempts == 2
    assert client.options.max_concurrency == 4
    assert "secret" not in repr(client) + repr(client.oauth) + repr(client.oauth.credentials)


def test_api_key_systems_need_a_password() -> None:
    conn = Connection(conn_id="catalog_sync_dam", conn_type="http", host="h", password="k-123")
    assert isinstance(client_from_connection(System.DAM, conn), DamClient)
    with pytest.raises(ConfigurationError):
        client_from_connection(System.ERP, Connection(conn_id="catalog_sync_erp", conn_type="http", host="h"))


def test_hook_reads_the_connection_through_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_STOREFRONT", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": 8765, "schema": "http", "password": "shpat_x123",
         "extra": {"path_prefix": "/storefront"}}))
    client = HOOKS[System.STOREFRONT]().get_conn()
    assert isinstance(client, StorefrontClient)
    assert client.base_url == "http://127.0.0.1:8765/storefront/"


def test_every_system_has_a_hook_and_a_connection_in_airflow_settings() -> None:
    from catalog_sync.airflow.hooks import adobe_commerce_client_from_connection
    from catalog_sync.governance.channels import load_channels

    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text())["airflow"]
    conn_ids = {c["conn_id"] for c in settings["connections"]}
    # the systems' connections, and each declared sales channel's (governance/channels.yaml)
    declared = {c.connection_id: c for c in load_channels().channels.values()}
    assert conn_ids == {h.default_conn_name for h in HOOKS.values()} | set(declared)
    assert set(HOOKS) == set(System)
    pools = {p["pool_name"]: p["pool_slot"] for p in settings["pools"]}
    assert pools["pim_api"] == 4  # Akeneo's calls in flight per connection
    assert set(pools) == {"erp_api", "pim_api", "dam_api", "storefront_api", "storefront_hot",
                          *(c.pool for c in declared.values())}
    for conn in settings["connections"]:
        if conn["conn_id"] in declared:
            channel = declared[conn["conn_id"]]
            built = Connection(conn_id=conn["conn_id"], conn_type=conn["conn_type"], host=conn["conn_host"],
                               port=conn["conn_port"], schema=conn["conn_schema"], password=conn["conn_password"],
                               extra=json.dumps(conn.get("conn_extra") or {}))
            assert adobe_commerce_client_from_connection(built).base_url == f"http://127.0.0.1:8765/{channel.name}/"
            continue
        hook = next(h for h in HOOKS.values() if h.default_conn_name == conn["conn_id"])
        built = Connection(conn_id=conn["conn_id"], conn_type=conn["conn_type"], host=conn["conn_host"],
                           port=conn["conn_port"], schema=conn["conn_schema"], login=conn.get("conn_login"),
                           password=conn.get("conn_password"), extra=json.dumps(conn.get("conn_extra") or {}))
        client = client_from_connection(hook.system, built)
        assert client.base_url == f"http://127.0.0.1:8765/{hook.system.value}/"
    assert ErpHook().conn_id == "catalog_sync_erp" and PimHook("other").conn_id == "other"


def test_airflow_settings_carry_the_sandbox_default_credentials() -> None:
    from catalog_sync_sandbox.state import DEFAULT_CREDENTIALS

    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text())["airflow"]
    by_system = {}
    for conn in settings["connections"]:
        if conn["conn_id"] == "catalog_sync_adobe_commerce":  # a declared channel: its token is the sandbox's
            from catalog_sync_sandbox.state import CHANNEL_CREDENTIALS

            assert conn["conn_password"] == CHANNEL_CREDENTIALS["adobe_commerce"]["access_token"]
            continue
        hook = next(h for h in HOOKS.values() if h.default_conn_name == conn["conn_id"])
        built = Connection(conn_id=conn["conn_id"], conn_type="http", host="h", login=conn.get("conn_login"),
                           password=conn.get("conn_password"), extra=json.dumps(conn.get("conn_extra") or {}))
        by_system[hook.system.value] = credentials_of(hook.system, built)
    for system, fields in DEFAULT_CREDENTIALS.items():
        for name, value in fields.items():
            assert getattr(by_system[system], name) == value, (system, name)


def test_storefront_api_version_must_be_one_the_client_speaks() -> None:
    def storefront(**extra: str) -> Connection:
        return Connection(conn_id="shop_eu", conn_type="catalog_sync_storefront", host="h",
                          password="shpat_1", extra=json.dumps(extra))

    assert storefront_api_version_of(storefront()) == "2026-04"  # the default of the connection form
    for version in STOREFRONT_API_VERSIONS:
        assert isinstance(client_from_connection(System.STOREFRONT, storefront(api_version=version)),
                          StorefrontClient)
    with pytest.raises(ConfigurationError, match=r"'shop_eu'.*'2024-10'"):
        client_from_connection(System.STOREFRONT, storefront(api_version="2024-10"))
    # the REST version the client spoke until 2026-04 is no longer one it speaks
    with pytest.raises(ConfigurationError, match=r"'shop_eu'.*'2025-01'"):
        client_from_connection(System.STOREFRONT, storefront(api_version="2025-01"))
    # Only the storefront has the field: other systems ignore the key.
    dam = Connection(conn_id="d", conn_type="catalog_sync_dam", host="h", password="k",
                     extra=json.dumps({"api_version": "2024-10"}))
    assert isinstance(client_from_connection(System.DAM, dam), DamClient)


def test_storefront_plan_and_location_map_come_from_the_connection() -> None:
    def storefront(**extra: Any) -> Connection:
        return Connection(conn_id="shop_eu", conn_type="catalog_sync_storefront", host="h",
                          password="shpat_1", extra=json.dumps(extra))

    client = client_from_connection(System.STOREFRONT, storefront(
        plan="plus", location_map={"DC-EAST": "gid://shopify/Location/1", "STORE-NYC": "New York store"}))
    assert client.plan.restore_rate == 1000 and client.plan.maximum_available == 10000
    assert client.location_map == {"DC-EAST": "gid://shopify/Location/1", "STORE-NYC": "New York store"}
    as_text = client_from_connection(System.STOREFRONT, storefront(location_map='{"DC-WEST": "West"}'))
    assert as_text.location_map == {"DC-WEST": "West"} and as_text.plan.name == "standard"
    with pytest.raises(ConfigurationError, match="'shop_eu': location_map must be a JSON object"):
        client_from_connection(System.STOREFRONT, storefront(location_map=["DC-EAST"]))
    with pytest.raises(ConfigurationError, match="'shop_eu': unknown Shopify plan 'gold'"):
        client_from_connection(System.STOREFRONT, storefront(plan="gold"))


def test_a_cdn_connection_becomes_a_fastly_client_for_its_service_and_shop() -> None:
    conn = Connection(conn_id="catalog_sync_cdn", conn_type="catalog_sync_cdn", host="api.fastly.com",
                      schema="https", password="fst-token-9", extra=json.dumps({
                          "service_id": "SU1Z0isxPaozGVKXdv0eY", "site_url": "https://shop.example.com/",
                          "surrogate_key_format": "pdp-{handle}"}))
    client = client_from_connection(System.CDN, conn)
    assert isinstance(client, CdnClient) and client.base_url == "https://api.fastly.com/"
    assert client.service_id == "SU1Z0isxPaozGVKXdv0eY" and client.surrogate_key("chaz") == "pdp-chaz"
    assert client.page_url("chaz") == "https://shop.example.com/products/chaz"
    assert "fst-token-9" not in repr(client) + repr(credentials_of(System.CDN, conn))
    no_service = Connection(conn_id="catalog_sync_cdn", conn_type="catalog_sync_cdn", host="api.fastly.com",
                            password="fst-token-9")
    with pytest.raises(ConfigurationError, match="service_id"):
        client_from_connection(System.CDN, no_service)


def test_the_cdn_is_optional_everywhere_the_systems_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog_sync.airflow import tasks
    from catalog_sync.airflow.systems import systems_from_connections
    from tests.conftest import airflow_connection_env

    env = airflow_connection_env("http://127.0.0.1:8765")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for build in (systems_from_connections, tasks.systems):
        with_cdn = build()
        assert isinstance(with_cdn.cdn, CdnClient) and with_cdn.cdn.site is not None
        with_cdn.close()
    monkeypatch.delenv("AIRFLOW_CONN_CATALOG_SYNC_CDN")
    for build in (systems_from_connections, tasks.systems):
        without = build()
        assert without.cdn is None and isinstance(without.storefront, StorefrontClient)
        without.close()
    monkeypatch.delenv("AIRFLOW_CONN_CATALOG_SYNC_DAM")
    with pytest.raises(ConfigurationError, match="catalog_sync_dam"):
        systems_from_connections()
