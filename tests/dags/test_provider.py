"""The package as an Airflow provider: its provider info, and what Airflow's ProvidersManager makes of it."""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from catalog_sync.airflow import hooks
from catalog_sync.airflow.provider import PACKAGE_NAME, STOREFRONT_API_VERSION, get_provider_info
from catalog_sync.connectors.storefront import GRAPHQL_VERSION

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINT_GROUP = "apache_airflow_provider"
#: What pyproject.toml declares under [project.entry-points.apache_airflow_provider].
ENTRY_POINT = "catalog_sync.airflow.provider:get_provider_info"


def _airflow_schema(name: str) -> dict[str, Any]:
    import airflow

    return json.loads((Path(airflow.__file__).parent / name).read_text(encoding="utf-8"))


def _by_type() -> dict[str, dict[str, Any]]:
    return {entry["connection-type"]: entry for entry in get_provider_info()["connection-types"]}


def test_provider_info_validates_against_airflows_schemas() -> None:
    info = get_provider_info()
    jsonschema.validate(info, _airflow_schema("provider_info.schema.json"))
    # The stricter provider.yaml schema is the one that spells out conn-fields and ui-field-behaviour.
    strict = _airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], strict)
    assert info["package-name"] == PACKAGE_NAME == "catalog-sync"  # Airflow refuses a mismatch with the dist


def test_each_connection_type_maps_to_its_hook() -> None:
    types = _by_type()
    # the five systems and the CDN, and the declared sales channel's (governance/channels.yaml)
    assert set(types) == {hook.conn_type for hook in hooks.HOOKS.values()} | {hooks.AdobeCommerceHook.conn_type}
    channel = types[hooks.AdobeCommerceHook.conn_type]
    assert channel["hook-class-name"] == "catalog_sync.airflow.hooks.AdobeCommerceHook"
    assert channel["hook-name"] == hooks.AdobeCommerceHook.hook_name and "source_map" in channel["conn-fields"]
    for hook in hooks.HOOKS.values():
        entry = types[hook.conn_type]
        assert entry["hook-class-name"] == f"{hook.__module__}.{hook.__qualname__}"
        assert entry["hook-name"] == hook.hook_name
        assert hook.conn_type == f"catalog_sync_{hook.system.value}"
        assert "path_prefix" in entry["conn-fields"]


def test_form_fields_per_system() -> None:
    types = _by_type()
    for system in ("erp", "dam", "supplier"):
        behaviour = types[f"catalog_sync_{system}"]["ui-field-behaviour"]
        assert behaviour["hidden-fields"] == ["login"]
        assert behaviour["relabeling"]["password"] == "API key"
    pim = types["catalog_sync_pim"]
    assert "login" not in pim["ui-field-behaviour"]["hidden-fields"]
    assert set(pim["ui-field-behaviour"]["relabeling"]) >= {"login", "password"}
    assert pim["conn-fields"]["client_secret"]["schema"]["format"] == "password"
    assert "format" not in pim["conn-fields"]["client_id"]["schema"]
    storefront = types["catalog_sync_storefront"]
    assert storefront["ui-field-behaviour"]["hidden-fields"] == ["login"]
    assert storefront["ui-field-behaviour"]["relabeling"]["password"] == "Admin access token"
    assert storefront["conn-fields"]["api_version"]["schema"]["default"] == STOREFRONT_API_VERSION
    assert STOREFRONT_API_VERSION == GRAPHQL_VERSION
    assert STOREFRONT_API_VERSION in hooks.STOREFRONT_API_VERSIONS


def test_airflow_settings_only_name_registered_connection_types() -> None:
    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text(encoding="utf-8"))["airflow"]
    registered = set(_by_type())
    unknown = {c["conn_id"]: c["conn_type"] for c in settings["connections"] if c["conn_type"] not in registered}
    assert unknown == {}, f"airflow_settings.yaml names connection types no provider registers: {unknown}"
    by_id = {c["conn_id"]: c["conn_type"] for c in settings["connections"]}
    channel = hooks.AdobeCommerceHook
    assert by_id == {h.default_conn_name: h.conn_type
                     for h in (*hooks.HOOKS.values(), channel)}  # type: ignore[attr-defined]


def test_pyproject_entry_point_names_get_provider_info() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project.get("entry-points", {}).get(ENTRY_POINT_GROUP)
    if declared is None:
        pytest.skip("pyproject.toml does not declare the apache_airflow_provider entry point yet")
    assert declared == {"provider_info": ENTRY_POINT}


# ------------------------------------------------------------------------------------ real provider discovery


def _clear_entry_point_caches() -> None:
    from airflow._shared.module_loading import _get_grouped_entry_points
    from airflow.sdk._shared.module_loading import _get_grouped_entry_points as _sdk_grouped

    _get_grouped_entry_points.cache_clear()
    _sdk_grouped.cache_clear()


@pytest.fixture
def installed_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A ``catalog-sync`` distribution on sys.path declaring the entry point as pyproject.toml does, and fresh
    ProvidersManager singletons (the previous ones are put back afterwards)."""
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    dist_info = tmp_path / "catalog_sync-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE_NAME}\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nprovider_info = {ENTRY_POINT}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for manager in (ProvidersManager, ProvidersManagerTaskRuntime):
        monkeypatch.setattr(manager, "_instance", None)
        monkeypatch.setattr(manager, "_initialized", False)
    _clear_entry_point_caches()
    yield
    _clear_entry_point_caches()


@pytest.mark.usefixtures("installed_provider")
def test_providers_manager_discovers_the_types_and_their_forms(caplog: pytest.LogCaptureFixture) -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    caplog.set_level(logging.WARNING)
    manager = ProvidersManager()
    assert PACKAGE_NAME in manager.providers
    assert manager.providers[PACKAGE_NAME].version == "0.1.0"
    ui = {meta.connection_type: meta for meta in manager.iter_connection_type_hook_ui_metadata()}
    widgets = manager._connection_form_widgets_from_metadata
    for hook in hooks.HOOKS.values():
        meta = ui[hook.conn_type]
        assert meta.hook_class_name == f"{hook.__module__}.{hook.__qualname__}"
        assert meta.hook_name == hook.hook_name
        assert meta.field_behaviour is not None, hook.conn_type  # passed Airflow's field-behaviour schema
        assert f"extra__{hook.conn_type}__path_prefix" in widgets
    pim_secret = widgets["extra__catalog_sync_pim__client_secret"]
    assert pim_secret.is_sensitive and pim_secret.field_name == "client_secret"
    assert not widgets["extra__catalog_sync_pim__client_id"].is_sensitive
    assert ui["catalog_sync_erp"].field_behaviour["hidden_fields"] == ["login"]
    # The task runtime imports each hook: its class must agree with the provider info (else None, or a warning).
    runtime = ProvidersManagerTaskRuntime()
    assert PACKAGE_NAME in runtime.providers
    for hook in hooks.HOOKS.values():
        info = runtime.hooks[hook.conn_type]
        assert info is not None and info.connection_type == hook.conn_type
        assert info.connection_id_attribute_name == "conn_id"
    complaints = [r.getMessage() for r in caplog.records
                  if r.levelno >= logging.WARNING and "catalog" in r.getMessage().lower()]
    assert complaints == []


@pytest.mark.usefixtures("installed_provider")
def test_the_ui_connection_form_metadata_carries_the_fields() -> None:
    """What the API server hands the connection form (``/ui/connections/hook_meta``)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    try:
        forms = {meta.connection_type: meta for meta in HookMetaService.hook_meta_data()}
    finally:
        HookMetaService.hook_meta_data.cache_clear()
    pim = forms["catalog_sync_pim"]
    assert set(pim.extra_fields or {}) == {"path_prefix", "client_id", "client_secret"}
    assert pim.extra_fields["client_secret"]["schema"]["format"] == "password"
    assert pim.standard_fields.login.title == "Username (Akeneo user)"
    assert not pim.standard_fields.login.hidden
    storefront = forms["catalog_sync_storefront"]
    assert storefront.standard_fields.login.hidden
    assert storefront.standard_fields.password.title == "Admin access token"
    assert storefront.extra_fields["api_version"]["value"] == STOREFRONT_API_VERSION
    for system in ("erp", "dam", "supplier"):
        form = forms[f"catalog_sync_{system}"]
        assert form.standard_fields.login.hidden and form.standard_fields.password.title == "API key"


@pytest.mark.usefixtures("installed_provider")
def test_a_connection_of_each_type_gets_its_hook() -> None:
    from airflow.sdk import Connection

    for hook in hooks.HOOKS.values():
        built = Connection(conn_id="some_id", conn_type=hook.conn_type).get_hook()
        assert type(built) is hook and built.conn_id == "some_id"
