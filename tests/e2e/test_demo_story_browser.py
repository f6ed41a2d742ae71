"""The demo story `make run` tells, walked in a real browser against a real Airflow (scheduler, executor,
api-server with the Catalog Sync plugin) and the sandbox systems, as a newcomer follows the README's five steps.

Set up as `make run` sets it up, smaller: Luma published by a first nightly (``published_baseline``), the story's
SKUs broken (``catalog_sync_sandbox.story``), then Airflow's scheduler runs ``cold_data_nightly`` once more (its own
scheduled run, a delta on the first night's cursors). Then, in Chromium, signed in as admin:

1. trace a SKU the PIM holds as a cached draft and read the cause;
2. trigger ``seasonal_republish`` from Airflow's trigger form with only the SKUs filled in (a dry run, as the form
   comes), read its diagnosis in the trace, then again with *Dry run* switched off;
3. trace the SKU again: consistent from the ERP to the shopper page;
4. open the nightly's GX Data Docs from its run page;
5. replay the group of dead letters the republish fixed, and see the replay run close them.

A screenshot of each page goes to ``test-artifacts/screenshots/story-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter
from catalog_sync_sandbox import story
from tests.e2e.conftest import CHROMIUM
from tests.integration.airflow_live import UI_USER, LiveAirflow
from tests.integration.test_republish import published_baseline

pytestmark = [pytest.mark.e2e, pytest.mark.airflow_live]

DAGS = ["cold_data_nightly.py", "seasonal_republish.py", "dead_letter_replay.py"]
#: The SKUs a person types into the republish form: every story SKU but the supplier's stale flags (those are the
#: supplier's to fix; the republish has nothing to repair there).
NOT_REPUBLISHED = "supplier_stale_inactive_flag"


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The story told on a published Luma, and Airflow's scheduler having run the nightly after it."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: run scripts/install_test_tools.sh")
    server = published_baseline(request.config, tmp_path_factory, "-story-browser")
    parts = {p["scenario"]: p for p in story.inject(server.scenario)}
    root = tmp_path_factory.mktemp("story-airflow")
    airflow = LiveAirflow(root, DAGS, server.url, {"CATALOG_SYNC_HUB_URL": server.baseline_hub,
                                                   "CATALOG_SYNC_HOME": str(root / "catalog-sync")}, plugins=True)
    airflow.start()
    try:
        airflow.wait_api()
        # unpaused at creation: the scheduler starts the nightly's latest scheduled run by itself
        night = airflow.wait(lambda: next((r for r, kind, _ in airflow.runs("cold_data_nightly")
                                           if kind == "scheduled"), None), 120, "the nightly's scheduled run")
        assert airflow.wait_finished("cold_data_nightly", night, within=300) == "success", airflow.tails()
        yield {"airflow": airflow, "hub": server.baseline_hub, "parts": parts, "night": night,
               "skus": [s for name, p in parts.items() if name != NOT_REPUBLISHED for s in p["skus"]]}
    finally:
        airflow.stop()


@pytest.fixture(scope="module")
def page(browser_context: Any, demo: dict[str, Any]) -> Iterator[Any]:
    tab = browser_context.new_page()
    airflow: LiveAirflow = demo["airflow"]
    tab.goto(f"{airflow.url}/auth/login?next=/catalog-sync/quality")
    tab.fill("input[name=username]", UI_USER[0])
    tab.fill("input[name=password]", UI_USER[1])
    tab.click("button[type=submit]")
    tab.wait_for_url("**/catalog-sync/quality", timeout=20_000)
    yield tab
    tab.close()


def goto(page: Any, url: str) -> None:
    """Open ``url``; a navigation Airflow's React app aborts while it still routes the last page is tried again."""
    for attempt in range(3):
        try:
            page.goto(url)
            return
        except Exception:  # noqa: BLE001 - playwright's Error (net::ERR_ABORTED); retried, then raised
            if attempt == 2:
                raise
            page.wait_for_timeout(1000)


def trace(page: Any, demo: dict[str, Any], sku: str, shot: Path) -> str:
    """The trace page of ``sku`` as a person opens it (the form on the page); its first-broken-link line."""
    goto(page, f"{demo['airflow'].url}/catalog-sync/trace")
    page.fill("input[name=sku]", sku)
    page.get_by_role("button", name="Trace").click()
    page.wait_for_url(f"**sku={sku}")
    page.screenshot(path=str(shot), full_page=True)
    return str(page.get_by_test_id("broken-link").inner_text())


def trigger_republish(page: Any, demo: dict[str, Any], dry_run: bool, shot: Path) -> str:
    """Trigger ``seasonal_republish`` from Airflow's form, filling in only the SKUs (and switching *Dry run* off
    for the real run); the run Airflow created, once it has finished successfully."""
    airflow: LiveAirflow = demo["airflow"]
    before = {r for r, _, _ in airflow.runs("seasonal_republish")}
    goto(page, f"{airflow.url}/dags/seasonal_republish")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    skus = dialog.locator("[name=element_skus]")
    if not skus.is_visible():
        dialog.get_by_text("Run Parameters").click()  # the fields sit in a section that may start collapsed
    skus.fill("\n".join(demo["skus"]))  # the form asks for one SKU per line
    switch = dialog.locator("[name=element_dry_run]")
    assert switch.is_checked(), "the form should start as a dry run"
    if not dry_run:
        dialog.locator("[id='switch:element_dry_run']").click()
        assert not switch.is_checked()
    page.screenshot(path=str(shot), full_page=True)
    submit = dialog.get_by_role("button", name="Trigger", exact=True)
    assert submit.is_enabled(), "the form refuses what a person filled in"
    submit.click()
    run_id = airflow.wait(lambda: next(iter({r for r, _, _ in airflow.runs("seasonal_republish")} - before), None),
                          30, "the run the form created")
    assert airflow.wait_finished("seasonal_republish", run_id, within=240) == "success", airflow.tails()
    return str(run_id)


def test_a_newcomer_walks_the_demo_story(page: Any, demo: dict[str, Any], screenshots: Path) -> None:
    airflow: LiveAirflow = demo["airflow"]
    (sku, *_) = demo["parts"]["pim_cached_draft_while_erp_active"]["skus"]

    # 1. the trace names the broken link and its cause in words
    line = trace(page, demo, sku, screenshots / "story-1-trace-broken.png")
    assert "pim vs erp" in line, line
    assert page.locator("#chain li.first").get_attribute("data-link") == "pim_vs_erp"
    assert "PIM holds lifecycle draft while the ERP says active" in page.get_by_test_id("verdict").inner_text()

    # 2. a dry run from the form: it diagnoses, names the repair it would make, and writes nothing
    trigger_republish(page, demo, dry_run=True, shot=screenshots / "story-2-trigger-dry-run.png")
    assert "pim vs erp" in trace(page, demo, sku, screenshots / "story-3-trace-after-dry-run.png")
    diagnosis = page.locator("#diagnosis").inner_text()
    assert "would" in diagnosis.lower() and "A dry run" in diagnosis, diagnosis

    # 3. the real run repairs it: the trace holds at every link
    trigger_republish(page, demo, dry_run=False, shot=screenshots / "story-4-trigger-real.png")
    line = trace(page, demo, sku, screenshots / "story-5-trace-repaired.png")
    assert "Broken link: none" in line, line
    assert page.locator("#chain li.broken").count() == 0

    # 4. the nightly's run page and its GX Data Docs
    goto(page, f"{airflow.url}/catalog-sync/runs")
    page.get_by_role("link", name=re.compile(re.escape(demo["night"]))).first.click()
    page.wait_for_selector("h1")
    page.screenshot(path=str(screenshots / "story-6-run.png"), full_page=True)
    docs = page.get_by_role("link", name="Open Data Docs")
    href = docs.get_attribute("href")
    assert href and href.endswith("/data-docs/index.html"), href
    goto(page, f"{airflow.url}{href}")
    assert "Data Docs autogenerated using Great Expectations" in page.locator("body").inner_text()
    page.screenshot(path=str(screenshots / "story-7-data-docs.png"), full_page=True)
    # GX draws the index's table with scripts from public CDNs; the validation pages it links are plain HTML
    found = re.findall(r"validations/catalog_sync/products/l2/[^'\"]+?\.html", page.content())
    assert found, "the Data Docs index links no products.l2 validation"
    goto(page, f"{airflow.url}{href.removesuffix('index.html')}{found[0]}")
    text = page.locator("body").inner_text()
    assert "lifecycle_erp_matches_pim" in text or "Failed" in text, text[:1000]
    page.screenshot(path=str(screenshots / "story-7b-data-docs-validation.png"), full_page=True)

    # 5. the PIM's stale-draft letters, now repaired at the source: replay their group and watch them close
    with session_scope(demo["hub"]) as s:
        letters = dict(s.execute(select(DeadLetter.id, DeadLetter.record_key).where(
            DeadLetter.status == "open", DeadLetter.expectation == "products.l2.lifecycle_erp_matches_pim")).all())
    assert sku in letters.values(), letters
    goto(page, f"{airflow.url}/catalog-sync/dead-letters")
    group = page.locator("#dead-letter-groups tr", has=page.locator("code", has_text="lifecycle_erp_matches_pim"))
    member = group.get_attribute("data-member")
    page.screenshot(path=str(screenshots / "story-8-dead-letters.png"), full_page=True)
    group.get_by_role("button", name=f"replay group {member}").click()
    message = page.get_by_test_id("action-message").inner_text()
    assert message.startswith("Triggered dead_letter_replay run "), message
    run_id = re.match(r"Triggered dead_letter_replay run (\S+?)\.(?:\s|$)", message).group(1)  # type: ignore[union-attr]
    assert airflow.wait_finished("dead_letter_replay", run_id, within=180) == "success", airflow.tails()
    with session_scope(demo["hub"]) as s:
        states = dict(s.execute(select(DeadLetter.id, DeadLetter.status).where(
            DeadLetter.id.in_(list(letters)))).all())
    assert set(states.values()) == {"replayed"}, states
    goto(page, f"{airflow.url}/catalog-sync/dead-letters?status=replayed")
    assert sku in page.locator("#dead-letters").inner_text()
    page.screenshot(path=str(screenshots / "story-9-replayed.png"), full_page=True)
