"""The demo story `make run` tells (``catalog_sync_sandbox.story``): each claim its guide makes is checked here.

On a published Luma catalog of its own, the story breaks its SKUs, the nightly runs as a delta on the baseline's
hub (as the second nightly of `make run` does), and then: the trace shows each failure where the guide says,
the dead letters hold only the records really wrong, and a seasonal republish over the story's SKUs (dry run,
then real) leaves each one consistent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync import reliability as R
from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter
from catalog_sync.trace import explain_sku
from catalog_sync_sandbox import story
from tests.integration.test_republish import published_baseline, run


@pytest.fixture(scope="module")
def told(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = published_baseline(request.config, tmp_path_factory, "-story")
    parts = story.inject(server.scenario)
    systems = Systems.from_base_url(server.url, server.credentials)
    previous = os.environ.get("CATALOG_SYNC_HUB_URL")
    os.environ["CATALOG_SYNC_HUB_URL"] = server.baseline_hub  # the cold steps read the process's default hub
    try:
        night = R.run_cold(systems, "after-the-story", hub_url=server.baseline_hub)
    finally:
        if previous is None:
            os.environ.pop("CATALOG_SYNC_HUB_URL", None)
        else:
            os.environ["CATALOG_SYNC_HUB_URL"] = previous
    yield {"server": server, "parts": {p["scenario"]: p for p in parts}, "night": night, "systems": systems,
           "guide": story.guide(parts, "http://127.0.0.1:8080")}
    systems.close()


def test_the_nightly_after_the_story_succeeds_and_the_guide_names_every_sku(told: dict[str, Any]) -> None:
    assert told["night"].status == "success" and told["night"].unreconciled() == []
    for part in told["parts"].values():
        assert part["skus"] and all(sku in told["guide"] for sku in part["skus"])
    assert "seasonal_republish" in told["guide"] and "/catalog-sync/dead-letters" in told["guide"]


@pytest.mark.parametrize(("scenario", "link"), [
    ("erp_pre_active_with_approved_seasonal_images", "erp_lifecycle"),
    ("pim_cached_draft_while_erp_active", "pim_vs_erp"),
    ("storefront_stale_cached_page", "shopper_page"),
])
def test_the_trace_shows_each_break_the_guide_names(told: dict[str, Any], scenario: str, link: str) -> None:
    for sku in told["parts"][scenario]["skus"]:
        assert explain_sku(sku, told["systems"])["broken_link"] == link, sku


def test_the_expired_licence_came_down_with_the_nightly(told: dict[str, Any]) -> None:
    (sku,) = told["parts"]["dam_rights_expired"]["skus"]
    trace = explain_sku(sku, told["systems"])
    expired = [a for a in trace["systems"]["dam"] if a["hidden_because"] and "rights" in a["hidden_because"]]
    assert expired and not any(a["linked_in_pim"] for a in expired), trace["systems"]["dam"]
    assert trace["broken_link"] is None, trace["chain"]


def test_dead_letters_hold_only_the_stale_supplier_flags(told: dict[str, Any]) -> None:
    night_id = told["night"].load_id
    with session_scope(told["server"].baseline_hub) as s:
        letters = s.execute(select(DeadLetter.record_key, DeadLetter.reason).where(
            DeadLetter.load_id == night_id, DeadLetter.status == "open")).all()
    flagged = set(told["parts"]["supplier_stale_inactive_flag"]["skus"])
    drafts = set(told["parts"]["pim_cached_draft_while_erp_active"]["skus"])
    (expired,) = told["parts"]["dam_rights_expired"]["skus"]
    by_key = dict(letters)
    # each letter is a record really wrong, with a reason a person reads: the refused supplier flags, the PIM's
    # stale draft copies, the approved asset whose licence is over, and the variants the pre-active parent strands
    assert flagged | drafts <= set(by_key), letters
    assert all("owned by erp; supplier may not write it" in by_key[s] for s in flagged)
    assert all("The PIM must not sell an item the ERP has not activated" in by_key[s] for s in drafts)
    asset = [k for k, r in letters if "usage rights expired" in r]
    assert len(asset) == 1 and (told["systems"].dam.get_asset(asset[0]) or {}).get("sku") == expired
    story_skus = {s for p in told["parts"].values() for s in p["skus"]}
    stranded = set(by_key) - story_skus - set(asset)
    assert all("variant_lifecycle_matches_parent" in by_key[s] for s in stranded), letters


def test_a_republish_dry_run_then_a_real_one_repairs_the_story(told: dict[str, Any], hub_url: str) -> None:
    systems = told["systems"]
    skus = sorted({sku for name, part in told["parts"].items() for sku in part["skus"]
                   if name != "supplier_stale_inactive_flag"})
    _, dry = run(systems, hub_url, skus, dry_run=True, tag="story-dry")
    assert {sku for sku, d in dry.items() if d.get("broken_link")} >= set(
        told["parts"]["pim_cached_draft_while_erp_active"]["skus"])
    run(systems, hub_url, skus, dry_run=False, tag="story-real")
    left = {sku: explain_sku(sku, systems)["broken_link"] for sku in skus}
    assert {sku for sku, link in left.items() if link} == set(), left

    # the consistency gate's letters about the PIM's stale drafts (entity "products", as the gate names it) replay
    # once the PIM is repaired, and close
    from catalog_sync.flows import replay

    with session_scope(told["server"].baseline_hub) as s:
        ids = list(s.scalars(select(DeadLetter.id).where(
            DeadLetter.load_id == told["night"].load_id, DeadLetter.status == "open",
            DeadLetter.expectation == "products.l2.lifecycle_erp_matches_pim")).all())
    assert ids
    previous = os.environ.get("CATALOG_SYNC_HUB_URL")
    os.environ["CATALOG_SYNC_HUB_URL"] = told["server"].baseline_hub
    try:
        done = replay.replay(ids, systems, by="tester", run_id="story-replay", hub_url=told["server"].baseline_hub)
    finally:
        if previous is None:
            os.environ.pop("CATALOG_SYNC_HUB_URL", None)
        else:
            os.environ["CATALOG_SYNC_HUB_URL"] = previous
    assert sorted(done["replayed"]) == sorted(ids), done
