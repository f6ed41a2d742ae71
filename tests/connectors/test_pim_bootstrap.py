"""``catalog-sync pim bootstrap`` over real HTTP against the sandbox PIM, which starts as a fresh Akeneo."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog_sync.cli import main
from catalog_sync.connectors import PimClient
from catalog_sync.domain import LIFECYCLE_OPTION_CODES
from catalog_sync.governance.pim_bootstrap import BootstrapError, bootstrap
from catalog_sync.governance.pim_model import DEFAULT_PATH, load_pim_model, parse_pim_model


@pytest.fixture
def fresh_pim(fresh_sandbox: Any) -> Iterator[PimClient]:
    """A client on a sandbox PIM just installed: no attribute but sku, no family, one channel on en_US."""
    fresh_sandbox.reset()
    with PimClient(f"{fresh_sandbox.url}/pim", fresh_sandbox.credentials["pim"]) as pim:
        yield pim


def _model_with(change: Any) -> Any:
    doc = copy.deepcopy(yaml.safe_load(DEFAULT_PATH.read_text()))
    change(doc)
    return parse_pim_model(doc)


def test_bootstrap_creates_the_declared_structure_and_a_second_run_changes_nothing(fresh_pim: PimClient) -> None:
    planned = bootstrap(fresh_pim, dry_run=True)
    assert planned.dry_run and planned.changes
    assert [a["code"] for a in fresh_pim.list_structure("attributes")] == ["sku"]  # a dry run writes nothing

    first = bootstrap(fresh_pim)
    assert [str(c) for c in first.changes] == [str(c) for c in planned.changes]
    made = {(c.kind, c.code, c.action) for c in first.changes}
    model = load_pim_model()
    assert {("attribute", code, "create") for code in model.attributes} <= made
    assert ("attribute_option", "lifecycle_status.pre_active", "create") in made
    assert ("family_variant", "top_by_size_color", "create") in made
    assert ("channel", "ecommerce", "update") in made  # the installation's channel gains fr_FR and de_DE
    assert any("Weight" in line and "POUND" in line for line in first.checked)

    weight = fresh_pim.get_structure("attributes/weight") or {}
    assert (weight["type"], weight["metric_family"], weight["default_metric_unit"]) == (
        "pim_catalog_metric", "Weight", "POUND")
    options = {o["code"] for o in fresh_pim.list_structure("attributes/lifecycle_status/options")}
    assert options == set(LIFECYCLE_OPTION_CODES.values())
    channel = fresh_pim.get_structure("channels/ecommerce") or {}
    assert channel["locales"][:3] == ["en_US", "fr_FR", "de_DE"] and channel["category_tree"] == "master"
    assert fresh_pim.family_variant_axes("top")["top_by_size_color"] == ["size", "color"]

    second = bootstrap(fresh_pim)
    assert second.changes == [] and second.as_dict()["changes"] == 0


def test_bootstrap_keeps_what_the_pim_team_added(fresh_pim: PimClient) -> None:
    bootstrap(fresh_pim)
    [made] = fresh_pim.patch_structure("attributes", [
        {"code": "care_instructions", "type": "pim_catalog_textarea", "group": "marketing"}])
    assert made.ok, made.message
    family = fresh_pim.get_structure("families/top") or {}
    [grown] = fresh_pim.patch_structure("families", [
        {"code": "top", "attributes": [*family["attributes"], "care_instructions"],
         "labels": {"fr_FR": "Hauts"}}])
    assert grown.ok, grown.message
    assert bootstrap(fresh_pim).changes == []
    family = fresh_pim.get_structure("families/top") or {}
    assert "care_instructions" in family["attributes"] and family["labels"]["fr_FR"] == "Hauts"


def test_bootstrap_names_what_it_cannot_create_or_change(fresh_pim: PimClient) -> None:
    bootstrap(fresh_pim)
    with pytest.raises(BootstrapError, match="no locale zz_ZZ"):
        bootstrap(fresh_pim, _model_with(lambda d: d["channel"]["locales"].append("zz_ZZ")))
    with pytest.raises(BootstrapError, match="no currency ZZZ"):
        bootstrap(fresh_pim, _model_with(lambda d: d["channel"]["currencies"].append("ZZZ")))
    with pytest.raises(BootstrapError, match="Weight.*no unit STONE"):
        bootstrap(fresh_pim, _model_with(lambda d: d["measurement_families"]["Weight"].append("STONE")))

    def upc_as_number(doc: Any) -> None:
        doc["attributes"]["upc"]["type"] = "pim_catalog_number"

    with pytest.raises(BootstrapError, match="upc.*type"):
        bootstrap(fresh_pim, _model_with(upc_as_number))

    def other_axes(doc: Any) -> None:
        doc["family_variants"]["by_size_color"]["axes"] = ["color", "size"]

    with pytest.raises(BootstrapError, match="top_by_size_color"):
        bootstrap(fresh_pim, _model_with(other_axes))
    assert bootstrap(fresh_pim).changes == []  # nothing was half-changed by the refused runs


def test_the_command_bootstraps_the_configured_pim(fresh_sandbox: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps(fresh_sandbox.credentials))
    monkeypatch.setenv("CATALOG_SYNC_SYSTEMS_URL", fresh_sandbox.url)
    monkeypatch.setenv("CATALOG_SYNC_CREDENTIALS_FILE", str(creds))
    fresh_sandbox.reset()
    assert main(["pim", "bootstrap", "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out
    planned = json.loads(out[out.index("{\n"):])  # log lines a test run's logging setup may print come first
    assert planned["dry_run"] and planned["changes"] > 0
    assert main(["pim", "bootstrap"]) == 0
    out = capsys.readouterr().out
    assert "create attribute lifecycle_status" in out and f"pim bootstrap: {planned['changes']} changes" in out
    assert main(["pim", "bootstrap"]) == 0
    assert capsys.readouterr().out.strip().endswith("pim bootstrap: 0 changes")
    bad = tmp_path / "model.yaml"
    bad.write_text(DEFAULT_PATH.read_text().replace("options_from: lifecycle_status",
                                                    "options: [pre-active]"))
    assert main(["pim", "bootstrap", "--model", str(bad)]) == 2
    assert "pre-active" in capsys.readouterr().err
