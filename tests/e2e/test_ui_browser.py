"""Catalog Sync pages in a real browser, inside a real Airflow api-server: what a person sees and can do.

Run with ``python -m pytest tests/e2e -m e2e -s`` (Chromium from ``scripts/install_test_tools.sh``); screenshots
are written to ``test-artifacts/screenshots/``. The tests share one logged-in browser and run in file order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import E2E_RUN_ID, AirflowServer
from tests.unit.ui.seed import SCRIPT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def page(browser_context: Any) -> Any:
    """One tab for the whole module; any JavaScript dialog (an executed injected script) fails the test."""
    tab = browser_context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield tab
    assert dialogs == [], f"a page ran injected script: {dialogs}"
    tab.close()


def login(page: Any, server: AirflowServer, username: str, password: str, next_path: str) -> None:
    """Sign in through Airflow's own login page, as a person would."""
    page.goto(f"{server.url}/auth/login?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}", timeout=20_000)


def token(server: AirflowServer, username: str, password: str) -> str:
    resp = httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": password}, timeout=10
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["access_token"])


def test_anonymous_visitor_is_asked_to_sign_in(
    page: Any, airflow_server: AirflowServer, screenshots: Path
) -> None:
    resp = page.goto(f"{airflow_server.url}/catalog-sync/quality")
    assert resp.status == 401
    assert page.locator("h1").inner_text() == "Sign in required"
    page.screenshot(path=str(screenshots / "00-anonymous.png"))
    api = httpx.get(f"{airflow_server.url}/catalog-sync/api/dead-letters", timeout=10)
    assert api.status_code == 401


def test_quality_overview(page: Any, airflow_server: AirflowServer, screenshots: Path) -> None:
    login(page, airflow_server, "admin", "admin", "/catalog-sync/quality")
    assert page.locator("h1").inner_text() == "Data quality"
    assert page.get_by_test_id("kpi-completeness").inner_text() == "95.0%"
    assert page.get_by_test_id("kpi-timeliness").inner_text() == "0.50 s"  # seconds, not a share
    assert page.locator(".kpi svg polyline").count() == 4
    gate = page.locator('#gates tr[data-gate="products_l2_content"] td')
    assert [gate.nth(i).inner_text() for i in (6, 7, 8)] == ["150", "137", "13"]
    top = page.locator("#failing tbody tr").first
    assert "expect_column_values_to_not_be_null:name" in top.inner_text()
    assert top.locator("td").nth(1).inner_text() == "9"
    assert page.locator("header .who").inner_text() == "Signed in as admin"
    page.screenshot(path=str(screenshots / "01-quality.png"), full_page=True)


def test_pages_sit_in_airflow_navigation(page: Any, airflow_server: AirflowServer, screenshots: Path) -> None:
    page.goto(f"{airflow_server.url}/")
    link = page.get_by_role("link", name="Data quality")
    link.wait_for(timeout=20_000)
    assert (link.get_attribute("href") or "").endswith("/plugin/catalog-sync-quality")
    # Airflow's navigation is a React app: a click that lands while it re-renders the menu (it does once the
    # plugin list arrives) can be swallowed, so click again until the address changes; the page must still get there.
    for _ in range(3):
        link.click()
        try:
            page.wait_for_url("**/plugin/catalog-sync-quality", wait_until="commit", timeout=10_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried, then checked below
            continue
    assert page.url.endswith("/plugin/catalog-sync-quality"), page.url
    frame = page.frame_locator("iframe").first
    assert frame.locator("h1").inner_text(timeout=20_000) == "Data quality"
    page.screenshot(path=str(screenshots / "02-airflow-nav.png"))


def test_run_report_and_data_docs(page: Any, airflow_server: AirflowServer, screenshots: Path) -> None:
    page.goto(f"{airflow_server.url}/catalog-sync/runs/nightly-1")
    assert page.locator("h1").inner_text() == "Run nightly-1"
    assert page.get_by_test_id("rows-checked").inner_text() == "200"
    assert page.get_by_test_id("rows-quarantined").inner_text() == "10"
    assert page.locator("#run-gates tbody tr").count() == 2
    page.screenshot(path=str(screenshots / "03-run.png"), full_page=True)
    docs = page.get_by_role("link", name="Open Data Docs")
    assert docs.get_attribute("href") == "/catalog-sync/runs/nightly-1/data-docs/index.html"
    page.goto(f"{airflow_server.url}/catalog-sync/runs/nightly-1/data-docs/index.html")
    assert page.locator("h1").inner_text() == "GX Data Docs of nightly-1"
    for evil in ("..%2F..%2Fsecret.txt", "%2E%2E/%2E%2E/secret.txt"):
        resp = page.request.get(f"{airflow_server.url}/catalog-sync/runs/nightly-1/data-docs/{evil}")
        assert resp.status in (400, 404) and "top secret" not in resp.text()
    page.goto(f"{airflow_server.url}/catalog-sync/runs/nightly-2")
    assert page.get_by_test_id("data-docs-missing").inner_text() == "Data Docs not built yet"


def test_run_tab_on_the_airflow_dag_run_page(
    page: Any, airflow_server: AirflowServer, screenshots: Path
) -> None:
    resp = httpx.post(
        f"{airflow_server.url}/api/v2/dags/dead_letter_replay/dagRuns",
        json={"dag_run_id": E2E_RUN_ID, "logical_date": None},
        headers={"Authorization": f"Bearer {token(airflow_server, 'admin', 'admin')}"},
        timeout=20,
    )
    assert resp.status_code == 200, resp.text
    page.goto(f"{airflow_server.url}/dags/dead_letter_replay/runs/{E2E_RUN_ID}/plugin/catalog-sync-run")
    frame = page.frame_locator("iframe").first
    assert frame.locator("h1").inner_text(timeout=20_000) == "Run replay-e2e"
    page.screenshot(path=str(screenshots / "04-dag-run-tab.png"))


def test_dead_letters_filter_and_escaped_payload(
    page: Any, airflow_server: AirflowServer, screenshots: Path
) -> None:
    page.goto(f"{airflow_server.url}/catalog-sync/dead-letters")
    assert page.locator("h1").inner_text() == "Dead letters"
    assert page.get_by_test_id("dl-total").inner_text() == "2"  # open ones
    page.select_option("select[name=source_system]", "erp")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**source_system=erp**")
    assert page.get_by_test_id("dl-total").inner_text() == "1"
    assert "WJ01-S-Red" in page.locator("#dead-letters tbody").inner_text()
    page.screenshot(path=str(screenshots / "05-dead-letters.png"), full_page=True)

    letter = airflow_server.dead_letters["MH01-XS-Black"]
    page.goto(f"{airflow_server.url}/catalog-sync/dead-letters/{letter}")
    payload = page.locator("#payload").inner_text()
    assert SCRIPT in payload  # shown as text, not run (the page fixture fails on any dialog)
    assert '"api_key": "***"' in payload and "sekrit-api-value" not in page.content()
    page.screenshot(path=str(screenshots / "06-dead-letter-payload.png"), full_page=True)


def test_discard_and_replay(page: Any, airflow_server: AirflowServer, screenshots: Path) -> None:
    ids = airflow_server.dead_letters
    page.goto(f"{airflow_server.url}/catalog-sync/dead-letters")
    page.check(f"input[name=ids][value='{ids['WJ01-S-Red']}']")
    page.get_by_role("button", name="Discard selected").click()
    assert page.get_by_test_id("action-message").inner_text() == "Discarded 1 dead letter(s)."
    page.goto(f"{airflow_server.url}/catalog-sync/dead-letters?status=discarded")
    row = page.locator(f"#dead-letters tr[data-id='{ids['WJ01-S-Red']}']")
    assert "discarded by admin" in row.inner_text()

    # a whole group (one cause: the PIM's missing name), from its row in "By cause"
    page.goto(f"{airflow_server.url}/catalog-sync/dead-letters")
    group = page.locator(f"#dead-letter-groups tr[data-member='{ids['MH01-XS-Black']}']")
    assert "name" in group.inner_text()
    group.get_by_role("button", name=f"replay group {ids['MH01-XS-Black']}").click()
    message = page.get_by_test_id("action-message").inner_text()
    assert message.startswith("Triggered dead_letter_replay run "), message
    page.screenshot(path=str(screenshots / "07-replay.png"))
    # the stand-in DAG is paused here, and the message says so after the run id
    assert "dead_letter_replay is paused in Airflow, so the run waits in the queue" in message, message
    run_id = re.match(r"Triggered dead_letter_replay run (\S+?)\.(?:\s|$)", message).group(1)  # type: ignore[union-attr]
    run = httpx.get(
        f"{airflow_server.url}/api/v2/dags/dead_letter_replay/dagRuns/{run_id}",
        headers={"Authorization": f"Bearer {token(airflow_server, 'admin', 'admin')}"},
        timeout=10,
    ).json()
    assert run["conf"] == {"dead_letter_ids": [ids["MH01-XS-Black"]]}


#: What a person fills in on each manual DAG's Airflow trigger form (Param -> text); the rest stays as shown.
FORMS: dict[str, dict[str, str]] = {
    "seasonal_republish": {"skus": "MH01-XS-Black"},
    "sync_rollback": {"load_id": "cold_data_nightly:scheduled__2026-12-01T02:00:00+00:00"},
}


@pytest.mark.parametrize("dag_id", sorted(FORMS))
def test_a_manual_dag_triggers_from_airflows_form_with_what_a_person_fills(
    page: Any, airflow_server: AirflowServer, screenshots: Path, dag_id: str
) -> None:
    login(page, airflow_server, "admin", "admin", f"/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    for param, text in FORMS[dag_id].items():
        field = dialog.locator(f"[name=element_{param}]")  # Airflow's form names each field after its Param
        if not field.is_visible():
            dialog.get_by_text("Run Parameters").click()  # the fields sit in a section that may start collapsed
        field.fill(text)
    page.screenshot(path=str(screenshots / f"08-trigger-form-{dag_id}.png"), full_page=True)
    submit = dialog.get_by_role("button", name="Trigger", exact=True)
    assert submit.is_enabled(), "the form refuses what a person filled in"
    submit.click()
    headers = {"Authorization": f"Bearer {token(airflow_server, 'admin', 'admin')}"}
    runs: list[dict[str, Any]] = []
    for _ in range(40):  # the run Airflow created from the form (an earlier form's toast may still be showing)
        runs = httpx.get(f"{airflow_server.url}/api/v2/dags/{dag_id}/dagRuns", headers=headers,
                         timeout=10).json()["dag_runs"]
        if runs:
            break
        page.wait_for_timeout(500)
    # The run Airflow stored is the oracle; its toast ("Dag Run Triggered") lasts a few seconds and may be gone by now.
    assert len(runs) == 1 and runs[0]["run_type"] == "manual", runs
    conf = runs[0]["conf"]
    if dag_id == "seasonal_republish":
        assert conf["skus"] == ["MH01-XS-Black"] and conf["dry_run"] is True, conf
    else:
        assert conf["load_id"] == FORMS[dag_id]["load_id"], conf


def test_sku_trace(page: Any, airflow_server: AirflowServer, screenshots: Path) -> None:
    page.goto(f"{airflow_server.url}/catalog-sync/trace")
    page.fill("input[name=sku]", "MH01-XS-Black")
    page.get_by_role("button", name="Trace").click()
    page.wait_for_url("**sku=MH01-XS-Black")
    assert "its hero image is not approved in the DAM" in page.get_by_test_id("verdict").inner_text()
    first = page.locator("#chain li.first")
    assert first.count() == 1 and first.get_attribute("data-link") == "dam_assets"
    assert page.locator("#chain li.broken").count() == 3
    assert "Hoodie " + SCRIPT in page.locator(".systems").inner_text()
    assert "notified the DAM team" in page.locator("#diagnosis").inner_text()
    page.screenshot(path=str(screenshots / "08-trace.png"), full_page=True)


def test_reconciliation_drift(page: Any, airflow_server: AirflowServer, screenshots: Path) -> None:
    page.goto(f"{airflow_server.url}/catalog-sync/drift")
    assert page.locator("h1").inner_text() == "Reconciliation drift"
    assert page.get_by_test_id("drift-total").inner_text() == "3"
    name_row = page.locator('#drift-attributes tr[data-attribute="name"] td')
    assert [name_row.nth(i).inner_text() for i in range(4)] == ["name", "2", "0", "2"]
    assert "Owner " + SCRIPT in page.locator("#drift-records").inner_text()
    page.screenshot(path=str(screenshots / "09-drift.png"), full_page=True)


def test_viewer_may_look_but_not_act(
    page: Any, browser_context: Any, airflow_server: AirflowServer, screenshots: Path
) -> None:
    browser_context.clear_cookies()
    login(page, airflow_server, "viewer", "viewer", "/catalog-sync/dead-letters")
    assert page.locator("header .who").inner_text() == "Signed in as viewer"
    assert page.get_by_role("button", name="Discard selected").count() == 0
    assert "not replay or discard" in page.locator("main").inner_text()
    page.screenshot(path=str(screenshots / "10-viewer.png"))
    resp = page.request.post(
        f"{airflow_server.url}/catalog-sync/api/dead-letters/discard",
        data={"ids": [airflow_server.dead_letters["MH01-XS-Black"]]},
    )
    assert resp.status == 403
