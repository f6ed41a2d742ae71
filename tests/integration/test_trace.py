"""Issue #7's ``explain_sku`` and ``catalog-sync explain`` against the published sandbox.

Shares the published baseline of ``test_republish`` and injects each failure mode on SKUs of its own (gear items
and the MP01 family), so the two modules never trace each other's damage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from catalog_sync.cli import main
from catalog_sync.flows import republish
from catalog_sync.flows.systems import Systems
from catalog_sync.trace import CHAIN, UnknownSku, explain_sku
from tests.integration.test_republish import published_baseline

SHAPE = {"sku", "systems", "chain", "broken_link", "verdict", "last_diagnosis", "dead_letters",
         "held_changes", "channels"}
SYSTEMS = {"erp", "pim", "dam", "supplier", "storefront", "shopper_page"}


@pytest.fixture(scope="module")
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return published_baseline(request.config, tmp_path_factory)


@pytest.fixture
def systems(published: Any, airflow_connections: Any) -> Iterator[Systems]:
    airflow_connections(published.url)  # for the CLI, which builds its own from the Airflow connections
    bundle = Systems.from_base_url(published.url, published.credentials)
    yield bundle
    bundle.close()


def assert_shape(result: dict[str, Any]) -> None:
    assert set(result) == SHAPE
    assert set(result["systems"]) == SYSTEMS
    assert [c["link"] for c in result["chain"]] == list(CHAIN)
    assert all(set(c) == {"link", "ok", "detail"} and c["detail"] for c in result["chain"])
    first = next((c["link"] for c in result["chain"] if not c["ok"]), None)
    assert result["broken_link"] == first
    assert isinstance(result["verdict"], str) and result["sku"] in result["verdict"]
    if result["systems"]["shopper_page"] is not None:
        assert set(result["systems"]["shopper_page"]) == {"status", "cache", "has_image"}


def test_a_healthy_variant_and_simple_product_hold_at_every_link(systems: Systems, hub_url: str) -> None:
    for sku in ("MH01-XS-Black", "24-MB01"):
        result = explain_sku(sku, systems, hub_url)
        assert_shape(result)
        assert all(c["ok"] for c in result["chain"]), result["chain"]
        assert result["broken_link"] is None and result["last_diagnosis"] is None
        assert result["dead_letters"] == [] and result["held_changes"] == []
        page = result["systems"]["shopper_page"]
        assert page["status"] == 200 and page["has_image"] is True
        assert result["systems"]["storefront"]["status"] == "active"
    # A variant is looked up through its parent's storefront product.
    variant = explain_sku("MH01-XS-Black", systems, hub_url)
    assert variant["systems"]["storefront"]["handle"] == "chaz-kangeroo-hoodie"
    assert variant["systems"]["erp"]["parent_lifecycle_status"] == "active"


def test_a_parent_is_traced_through_its_product_model(systems: Systems, hub_url: str) -> None:
    result = explain_sku("MH01", systems, hub_url)
    assert_shape(result)
    assert result["systems"]["pim"]["kind"] == "product_model"
    assert result["systems"]["storefront"]["handle"] == "chaz-kangeroo-hoodie"
    assert result["chain"][0]["ok"] and result["chain"][2]["ok"]  # ERP active, PIM agrees


CASES = [
    ("erp_pre_active_with_approved_seasonal_images", ["24-MB05"], "erp_lifecycle", "pre-active"),
    ("dam_valid_from_in_future", ["24-MB06"], "dam_assets", "embargoed"),
    ("orphan_assets", ["24-MB02"], "dam_assets", "orphan"),
    ("pim_cached_draft_while_erp_active", ["24-WB02"], "pim_vs_erp", "draft"),
    ("supplier_stale_inactive_flag", ["24-WB03"], "supplier_writeback", "inactive"),
    ("storefront_stale_cached_page", ["24-UG01"], "shopper_page", "cached"),
]


@pytest.mark.parametrize(("scenario", "skus", "link", "word"), CASES, ids=[c[0] for c in CASES])
def test_each_broken_case_names_its_link(scenario: str, skus: list[str], link: str, word: str, published: Any,
                                         systems: Systems, hub_url: str) -> None:
    (sku,) = published.scenario(scenario, skus)["skus"]
    result = explain_sku(sku, systems, hub_url)
    assert_shape(result)
    assert result["broken_link"] == link, result["chain"]
    broken = next(c for c in result["chain"] if c["link"] == link)
    assert word in broken["detail"] and word in result["verdict"]


def test_variants_left_behind_show_at_the_variant(published: Any, systems: Systems, hub_url: str) -> None:
    changes = published.scenario("variants_left_behind", ["MP01"])["changes"]
    variant = next(c["sku"] for c in changes if c["erp"].get("role") == "variant")
    result = explain_sku(variant, systems, hub_url)
    assert result["systems"]["erp"]["lifecycle_status"] == "active"  # the variant itself still looks sellable
    assert result["systems"]["erp"]["parent_lifecycle_status"] == "seasonal-hold"
    assert result["broken_link"] == "erp_lifecycle" and "MP01" in result["chain"][0]["detail"]


def test_the_last_diagnosis_and_open_dead_letters_come_from_the_hub(
    published: Any, systems: Systems, hub_url: str
) -> None:
    (sku,) = published.scenario("supplier_stale_inactive_flag", ["24-WB04"])["skus"]
    result = republish.run({"skus": [sku], "dry_run": False}, systems, run_id="trace-hub", hub_url=hub_url)
    trace = explain_sku(sku, systems, hub_url)
    assert trace["broken_link"] is None
    assert trace["last_diagnosis"]["load_id"] == result["load_id"]
    assert trace["last_diagnosis"]["broken_link"] == "supplier_writeback"
    assert [(d["reason_kind"], d["source_system"]) for d in trace["dead_letters"]] == [("ownership", "supplier")]


def test_no_secret_reaches_the_result(published: Any, systems: Systems, hub_url: str) -> None:
    text = json.dumps(explain_sku("24-MB01", systems, hub_url), default=str)
    secrets = [v for creds in published.credentials.values() for v in creds.values()]
    assert secrets and not [s for s in secrets if s in text]


def test_unknown_sku(systems: Systems, hub_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownSku):
        explain_sku("NO-SUCH-SKU", systems, hub_url)
    assert main(["explain", "NO-SUCH-SKU"]) == 2
    assert "no system knows SKU 'NO-SUCH-SKU'" in capsys.readouterr().err


def test_cli_text_and_json(published: Any, systems: Systems, hub_url: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    (sku,) = published.scenario("pim_cached_draft_while_erp_active", ["24-WB05"])["skus"]
    assert main(["explain", sku]) == 0  # a broken chain is an answer, not a failure
    text = capsys.readouterr().out
    assert f"SKU {sku}" in text and "Verdict:" in text
    assert "✗ pim_vs_erp" in text and "<- first broken link" in text and "✓ erp_lifecycle" in text
    rows = [line for line in text.splitlines() if line.startswith("  ✓") or line.startswith("  ✗")]
    assert len(rows) == len(CHAIN) and len({line.index(line.split()[2]) for line in rows}) == 1  # aligned
    assert main(["explain", sku, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert_shape(data)
    assert data["broken_link"] == "pim_vs_erp" and data["systems"]["pim"]["enabled"] is False


def test_cli_text_of_a_consistent_sku_says_so_in_words(published: Any, systems: Systems, hub_url: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A SKU that holds at every link, with a clean diagnosis: a sentence, never "broken link None"."""
    sku = "24-MB01"
    result = republish.run({"skus": [sku]}, systems, run_id="trace-consistent", hub_url=hub_url)  # a dry run
    assert main(["explain", sku]) == 0
    text = capsys.readouterr().out
    assert "None" not in text, text
    assert "  Broken link: none, consistent from the ERP to the shopper page" in text
    assert (f"Last diagnosis: run {result['load_id']} (dry run), broken link: none, consistent from the ERP to "
            "the shopper page") in text
    assert "Supplier submissions pending (0)" in text


#: Each names, raw, another record or a collection: MH01 with a query string or fragment, or the ERP's item list.
AWKWARD_SKUS = ["MH01?x=1", "MH01#top", "MH01/", "MH01%", "MH01 x", "../items"]


@pytest.mark.parametrize("sku", AWKWARD_SKUS)
def test_a_sku_with_reserved_characters_is_never_answered_with_another_record(
    sku: str, systems: Systems, hub_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UnknownSku):
        explain_sku(sku, systems, hub_url)
    assert main(["explain", sku]) == 2  # through the Airflow connections, as an operator runs it
    assert f"no system knows SKU {sku!r}" in capsys.readouterr().err


def test_a_sku_with_a_slash_is_traced_to_its_own_record(
    published: Any, systems: Systems, hub_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sku = "24-MB01/GIFT"
    created = systems.erp.put_item({"sku": sku, "product_type": "simple", "lifecycle_status": "pre-active",
                                    "vendor_name": "Gift Wrap Company"})
    assert created.ok
    try:
        result = explain_sku(sku, systems, hub_url)
        assert_shape(result)
        assert result["systems"]["erp"]["sku"] == sku
        assert result["systems"]["erp"]["vendor_name"] == "Gift Wrap Company"
        assert result["systems"]["pim"] is None and result["broken_link"] == "erp_lifecycle"
        assert main(["explain", sku, "--json"]) == 0
        out = capsys.readouterr().out
        document = out[out.index("\n{") + 1:] if not out.startswith("{") else out  # after Airflow's own log lines
        assert json.loads(document)["systems"]["erp"]["lifecycle_status"] == "pre-active"
        plain = explain_sku("24-MB01", systems, hub_url)  # the SKU it extends keeps its own record
        assert plain["systems"]["erp"]["sku"] == "24-MB01"
        assert plain["systems"]["erp"]["vendor_name"] != "Gift Wrap Company"
    finally:
        gone = requests.delete(f"{published.url}/erp/items/{quote(sku, safe='')}",
                               headers={"X-Api-Key": published.credentials["erp"]["api_key"]}, timeout=10)
        assert gone.status_code == 204
