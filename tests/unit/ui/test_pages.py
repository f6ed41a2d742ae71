"""The Catalog Sync pages show the right figures from a hub seeded with known rows, safely."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.unit.ui.conftest import bearer
from tests.unit.ui.seed import SCRIPT

PREFIX = "/catalog-sync"
ESCAPED_SCRIPT = "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"


@pytest.fixture
def admin(client: Any, tokens: dict[str, str]) -> Any:
    """The test client, signed in as admin through the UI's cookie."""
    client.cookies.set("_token", tokens["admin"])
    return client


# --- data quality -----------------------------------------------------------------------------------------------


def test_quality_figures(admin: Any, seeded_hub: dict[str, Any]) -> None:
    data = admin.get(f"{PREFIX}/api/quality").json()
    assert list(data["kpis"]) == ["completeness", "accuracy", "timeliness", "first_time_pass_rate"]
    assert [p["value"] for p in data["kpis"]["completeness"]] == [0.90, 0.95]  # oldest first
    gates = {g["gate"]: g for g in data["gates"]}
    assert (gates["products_l1_schema"]["rows_checked"], gates["products_l1_schema"]["rows_quarantined"]) == (
        150,
        0,
    )
    assert (gates["products_l2_content"]["rows_checked"], gates["products_l2_content"]["rows_passed"]) == (
        150,
        137,
    )
    assert gates["products_l2_content"]["rows_quarantined"] == 13
    assert gates["products_l2_content"]["runs"] == 2
    assert [(layer["layer"], layer["rows_quarantined"]) for layer in data["layers"]] == [(1, 0), (2, 13)]
    top = data["failing_expectations"]
    assert [(e["expectation"], e["rows"], e["runs"]) for e in top] == [
        ("expect_column_values_to_not_be_null:name", 9, 2),
        ("expect_column_values_to_match_regex:upc", 4, 1),
    ]
    assert top[1]["critical"] is True


def test_quality_page_renders_charts_and_numbers(admin: Any, seeded_hub: dict[str, Any]) -> None:
    resp = admin.get(f"{PREFIX}/quality")
    html = resp.text
    assert resp.headers["content-security-policy"].startswith("default-src 'none'")
    assert "<script" not in html  # the pages carry no script at all
    assert '<div class="big" data-testid="kpi-completeness">95.0%</div>' in html
    # Timeliness is a lag in seconds, not a share: 0.5 s, never "50.0%".
    assert '<div class="big" data-testid="kpi-timeliness">0.50 s</div>' in html
    assert '<div class="big" data-testid="kpi-first_time_pass_rate">75.0%</div>' in html
    assert html.count("<polyline") == 4
    assert "expect_column_values_to_not_be_null:name" in html
    assert ">137<" in html and ">13<" in html


def test_quality_page_on_an_empty_hub(admin: Any, hub_url: str) -> None:
    html = admin.get(f"{PREFIX}/quality").text
    assert "No KPI has been measured yet" in html
    assert "No expectation has failed." in html


# --- runs -------------------------------------------------------------------------------------------------------


def test_run_report(admin: Any, seeded_hub: dict[str, Any]) -> None:
    data = admin.get(f"{PREFIX}/api/runs/nightly-1").json()
    assert data["totals"] == {
        "rows_checked": 200,
        "rows_passed": 190,
        "rows_quarantined": 10,
        "gates_failed": 0,
    }
    assert [g["gate"] for g in data["gates"]] == ["products_l1_schema", "products_l2_content"]
    assert data["kpis"]["completeness"] == 0.90
    assert data["dead_letters"] == [{"reason_kind": "gate", "status": "open", "count": 1}]
    assert data["run"]["details"]["password"] == "***"
    assert data["data_docs"]["built"] is False
    html = admin.get(f"{PREFIX}/runs/nightly-1").text
    assert "Data Docs not built yet" in html
    assert "hunter2" not in html
    assert '<th>timeliness</th><td class="num">1.00 s</td>' in html  # seconds, not "100.0%"
    assert '<th>completeness</th><td class="num">90.0%</td>' in html


def test_run_page_dead_letter_figures_agree_with_its_list(admin: Any, seeded_hub: dict[str, Any]) -> None:
    """A run whose letters are findings about records its hop delivered (``hop=None``): the hop shows 0
    dead-lettered, the page's dead-letter figure shows the letters listed below it, each labelled."""
    from catalog_sync.engine.run import RunContext

    ctx = RunContext.open("seasonal_republish", load_id="republish-1", hub_url=seeded_hub["hub_url"])
    ctx.count("pim->storefront", read=2, delivered=2)
    ctx.dead_letter([{"entity": "product", "record_key": sku, "source_system": "supplier",
                      "target_system": "pim", "reason_kind": "ownership", "reason": "stale lifecycle flag"}
                     for sku in ("MH01-XS-Black", "MH01-S-Black")], hop=None)
    ctx.finish()

    data = admin.get(f"{PREFIX}/api/runs/republish-1").json()
    assert data["run"]["records_dead_lettered"] == 0  # the hop lost nothing: both records were delivered
    assert data["dead_letter_totals"] == {"written": 2, "open": 2}
    assert sum(d["count"] for d in data["dead_letters"]) == 2
    html = admin.get(f"{PREFIX}/runs/republish-1").text
    assert 'dead-lettered on a hop <b data-testid="hop-dead-lettered">0</b>' in html
    assert 'written by this run <b data-testid="dead-letters-written">2</b>' in html
    assert 'still open <b data-testid="dead-letters-open">2</b>' in html
    assert 'data-testid="dead-letters-note"' in html
    assert "Dead letters of this run (2, 2 open)" in html

    # A letter counted on its hop: both figures say 1, and no note explains a difference.
    other = RunContext.open("seasonal_republish", load_id="republish-2", hub_url=seeded_hub["hub_url"])
    other.count("pim->storefront", read=1)
    other.dead_letter([{"entity": "product", "record_key": "WJ01-S-Red", "source_system": "pim",
                        "target_system": "storefront", "reason_kind": "api", "reason": "HTTP 422"}],
                      hop="pim->storefront")
    other.finish()
    agreeing = admin.get(f"{PREFIX}/runs/republish-2").text
    assert 'dead-lettered on a hop <b data-testid="hop-dead-lettered">1</b>' in agreeing
    assert 'written by this run <b data-testid="dead-letters-written">1</b>' in agreeing
    assert 'data-testid="dead-letters-note"' not in agreeing


def test_run_lookup_from_airflow_run(admin: Any, seeded_hub: dict[str, Any]) -> None:
    params = {"dag_id": "nightly_product_sync", "run_id": "scheduled__2025-03-02T02:00:00+00:00"}
    resp = admin.get(f"{PREFIX}/run-lookup", params=params, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"{PREFIX}/runs/nightly-2"
    assert admin.get(f"{PREFIX}/api/run-lookup", params=params).json() == {"load_id": "nightly-2"}
    missing = admin.get(f"{PREFIX}/run-lookup", params={"dag_id": "x", "run_id": "y"})
    assert missing.status_code == 404 and "recorded no Catalog Sync run" in missing.text
    assert admin.get(f"{PREFIX}/runs/no-such-run").status_code == 404


def test_data_docs_are_served(admin: Any, data_docs: Path) -> None:
    html = admin.get(f"{PREFIX}/runs/nightly-1").text
    assert f'href="{PREFIX}/runs/nightly-1/data-docs/index.html"' in html
    resp = admin.get(f"{PREFIX}/runs/nightly-1/data-docs/index.html")
    assert resp.status_code == 200 and "GX Data Docs nightly-1" in resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert (
        admin.get(f"{PREFIX}/runs/nightly-1/data-docs/validations/v.html").text == "<html>validation</html>"
    )
    not_built = admin.get(f"{PREFIX}/runs/nightly-2/data-docs/index.html")
    assert not_built.status_code == 404 and "not built yet" in not_built.text


def test_data_docs_of_a_load_id_with_colon_and_plus_are_found(admin: Any, seeded_hub: dict[str, Any]) -> None:
    """The folder the docs builder writes (``quality.docs.docs_dir``) is the one the run page looks in, for a load
    id holding characters a folder name cannot (an Airflow run id's ``:`` and ``+``)."""
    from urllib.parse import quote

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import SyncRun
    from catalog_sync.quality.docs import docs_dir
    from tests.unit.ui.seed import T0

    load_id = "seasonal_republish-manual__2025-03-03T10:00:00+00:00"
    with session_scope(seeded_hub["hub_url"]) as s:
        s.add(SyncRun(load_id=load_id, flow="seasonal_republish", dag_id="seasonal_republish",
                      run_id="manual__2025-03-03T10:00:00+00:00", status="success", started_at=T0,
                      ended_at=T0))
    written = docs_dir(load_id)
    (written / "validations").mkdir(parents=True)
    (written / "index.html").write_text("<html><body><h1>GX Data Docs seasonal</h1></body></html>")
    (written / "validations" / "v.html").write_text("<html>seasonal validation</html>")

    assert admin.get(f"{PREFIX}/api/runs/{quote(load_id, safe='')}").json()["data_docs"]["built"] is True
    html = admin.get(f"{PREFIX}/runs/{quote(load_id, safe='')}").text
    assert "not built yet" not in html
    link = f"{PREFIX}/runs/{quote(load_id, safe='')}/data-docs/index.html"
    assert f'href="{link}"' in html
    resp = admin.get(link)
    assert resp.status_code == 200 and "GX Data Docs seasonal" in resp.text
    assert admin.get(link.replace("index.html", "validations/v.html")).text == "<html>seasonal validation</html>"


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_data_docs_a_task_built_are_served_from_the_store_alone(admin: Any, seeded_hub: dict[str, Any], kind: str,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs task renders into the shared state store; the UI (the api-server, another machine) serves them
    with the local state folder gone, each file with its content type."""
    import shutil
    import uuid

    from catalog_sync import config, store
    from catalog_sync.quality import docs
    from catalog_sync.quality.gate import run_gate
    from tests.unit.quality._quality_cases import NOW, PRODUCTS_L0

    if kind == "memory":
        monkeypatch.setenv("CATALOG_SYNC_STORE_URL", f"memory://ui-docs-{uuid.uuid4().hex}")
    result = run_gate(PRODUCTS_L0.frame(), "products.l0", layer=0, entity="products", enforce=False, now=NOW)
    docs.save_validation("nightly-1", result)
    docs.build_data_docs("nightly-1")
    shutil.rmtree(config.state_dir())
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(tmp_path / "another-machine"))
    try:
        assert admin.get(f"{PREFIX}/api/runs/nightly-1").json()["data_docs"]["built"] is True
        index = admin.get(f"{PREFIX}/runs/nightly-1/data-docs/index.html")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert "products.l0" in index.text
        css = [p for p in (docs.docs_dir("nightly-1") / "static" / "styles").iterdir() if p.name.endswith(".css")]
        rel = css[0].path.removeprefix(docs.docs_dir("nightly-1").path + "/")
        styles = admin.get(f"{PREFIX}/runs/nightly-1/data-docs/{rel}")
        assert styles.status_code == 200 and styles.headers["content-type"].startswith("text/css")
        assert styles.content == store.read_bytes(css[0])
        assert store.local_leftovers() == []
    finally:
        if kind == "memory":
            store.remove_tree(store.store_root())


def test_the_run_page_shows_every_batch_of_a_gate_checked_in_batches(admin: Any, seeded_hub: dict[str, Any]) -> None:
    """A gate that checked its delta in batches saved one validation result per batch: the Data Docs render each,
    and the run page says how many a gate has."""
    from catalog_sync.quality import docs
    from catalog_sync.quality.gate import run_gate
    from tests.unit.quality._quality_cases import NOW, PRODUCTS_L0

    frame = PRODUCTS_L0.frame()
    for part, rows in enumerate((frame.iloc[:5], frame.iloc[5:10], frame.iloc[10:]), start=1):
        result = run_gate(rows, "products.l0", layer=0, entity="products", enforce=False, now=NOW)
        result.gate = "products_l2_content"  # the seeded run's gate
        docs.save_validation("nightly-1", result, part=part)
    index = docs.build_data_docs("nightly-1")
    assert all(docs.validation_name("products_l2_content", n) in index.read_text() for n in (2, 3))
    data = admin.get(f"{PREFIX}/api/runs/nightly-1").json()
    assert data["data_docs"]["validations"] == {"products_l2_content": 3}
    html = admin.get(f"{PREFIX}/runs/nightly-1").text
    assert "3 validation results" in html and "validated in 3 batches" in html
    # saving a first batch again (a retried gate) drops the later batches of the attempt before
    docs.save_validation("nightly-1", result, part=1)
    assert docs.validation_counts("nightly-1") == {"products_l2_content": 1}


@pytest.mark.parametrize(
    "path",
    [
        "nightly-1/data-docs/..%2F..%2Fsecret.txt",
        "nightly-1/data-docs/%2E%2E/%2E%2E/secret.txt",
        "nightly-1/data-docs/validations/..%2F..%2F..%2Fsecret.txt",
        "nightly-1/data-docs/%2Fetc%2Fpasswd",
        "nightly-1/data-docs/..%5C..%5Csecret.txt",
        "..%2Fsecret.txt/data-docs/x",
        "nightly-1/data-docs/escape/secret.txt",
    ],
)
def test_data_docs_refuse_traversal(admin: Any, data_docs: Path, path: str) -> None:
    (data_docs / "escape").symlink_to(data_docs.parent.parent, target_is_directory=True)
    resp = admin.get(f"{PREFIX}/runs/{path}")
    assert resp.status_code in (400, 404), resp.status_code
    assert "top secret" not in resp.text and "root:" not in resp.text


# --- dead letters -----------------------------------------------------------------------------------------------


def test_dead_letter_filters(admin: Any, seeded_hub: dict[str, Any]) -> None:
    def keys(**params: Any) -> list[str]:
        body = admin.get(f"{PREFIX}/api/dead-letters", params=params).json()
        assert body["total"] == len(body["items"])
        return sorted(i["record_key"] for i in body["items"])

    assert keys() == ["MH01-XS-Black", "WJ01-S-Red"]  # open by default
    assert keys(status="") == ["IMG-1", "MH01-XS-Black", "WJ01-S-Red"]
    assert keys(status="discarded") == ["IMG-1"]
    assert keys(source_system="erp") == ["WJ01-S-Red"]
    assert keys(target_system="storefront", reason_kind="gate") == ["MH01-XS-Black"]
    assert keys(gate_layer="2") == ["MH01-XS-Black"]
    assert keys(gate_layer="not-a-number") == []
    assert keys(expectation="expect_column_values_to_not_be_null:name") == ["MH01-XS-Black"]
    assert keys(load_id="nightly-2") == ["WJ01-S-Red"]
    page = admin.get(f"{PREFIX}/dead-letters", params={"source_system": "erp"}).text
    assert '<span data-testid="dl-total">1</span>' in page
    assert "WJ01-S-Red" in page and "MH01-XS-Black</a>" not in page


def _unit_letters(hub_url: str, n: int) -> list[int]:
    """``n`` open letters of one cause (an ERP unit the reference table lacks), on top of the seeded ones."""
    from sqlalchemy import select

    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import DeadLetter

    with session_scope(hub_url) as s:
        repo.dead_letter(s, [{"load_id": "nightly-2", "flow": "nightly_product_sync", "entity": "item",
                              "record_key": f"UOM-{i:03d}", "source_system": "erp", "target_system": "pim",
                              "reason_kind": "gate", "gate_layer": 2, "expectation": "uom_in_reference",
                              "reason": f"unit 'BX{i}' is not in the unit reference table", "payload": {}}
                             for i in range(n)])
        s.flush()
        return list(s.scalars(select(DeadLetter.id).where(DeadLetter.record_key.like("UOM-%"))
                              .order_by(DeadLetter.id)))


def test_dead_letters_are_grouped_by_cause_and_paginated(admin: Any, seeded_hub: dict[str, Any]) -> None:
    ids = _unit_letters(seeded_hub["hub_url"], 60)
    page = admin.get(f"{PREFIX}/dead-letters").text
    assert '<span data-testid="dl-total">62</span>' in page
    groups = page[page.index('id="dead-letter-groups"'):page.index("<h2>Letters</h2>")]
    # the 60 letters of one cause lead, counted once, with one of their reasons as the example
    assert groups.index(">60</a>") < groups.index(">1</a>")
    assert f'data-member="{ids[0]}"' in groups and "is not in the unit reference table" in groups
    assert "Replay all 60" in groups and "Discard all 60" in groups
    # 50 a page by default: page 1 of 2, a next link and no previous one; page 2 has the rest and a way back
    assert "page 1 of 2" in page and "next page" in page and "previous page" not in page
    assert page.count('<tr data-id="') == 50
    second = admin.get(f"{PREFIX}/dead-letters", params={"offset": 50, "limit": 50}).text
    assert second.count('<tr data-id="') == 12 and "page 2 of 2" in second and "previous page" in second


def test_a_group_is_discarded_whole_and_only_its_open_letters(admin: Any, seeded_hub: dict[str, Any]) -> None:
    ids = _unit_letters(seeded_hub["hub_url"], 5)
    form = {"member": str(ids[2]), "action": "discard", "back": "?status=open", "status": "open"}
    resp = admin.post(f"{PREFIX}/dead-letters/group-action", data=form, headers={"Origin": "http://testserver"})
    assert resp.status_code == 200, resp.text
    assert "Discarded 5 dead letter(s)." in resp.text
    left = admin.get(f"{PREFIX}/api/dead-letters").json()
    assert sorted(i["record_key"] for i in left["items"]) == ["MH01-XS-Black", "WJ01-S-Red"]  # other causes stay
    again = admin.post(f"{PREFIX}/api/dead-letters/group/discard", json={"member": ids[0], "filters": {}})
    assert again.status_code == 409 and "No letter of this group is open" in again.json()["message"]
    # a group named by a letter without an expectation matches only letters without one
    other = admin.post(f"{PREFIX}/api/dead-letters/group/discard",
                       json={"member": seeded_hub["dead_letters"]["WJ01-S-Red"], "filters": {"status": "open"}})
    assert other.status_code == 200 and other.json()["count"] == 1
    assert [i["record_key"] for i in admin.get(f"{PREFIX}/api/dead-letters").json()["items"]] == ["MH01-XS-Black"]
    assert admin.post(f"{PREFIX}/api/dead-letters/group/discard", json={"member": 10**9}).status_code == 404


def test_a_group_larger_than_one_action_says_what_is_left(
    admin: Any, seeded_hub: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog_sync.ui import app as ui_app

    monkeypatch.setattr(ui_app, "MAX_ACTION_IDS", 4)
    ids = _unit_letters(seeded_hub["hub_url"], 6)
    first = admin.post(f"{PREFIX}/api/dead-letters/group/discard", json={"member": ids[0], "filters": {}})
    body = first.json()
    assert first.status_code == 200 and body["count"] == 4 and body["ids"] == ids[:4]
    assert "2 more open letter(s) of this group are left" in body["message"]
    second = admin.post(f"{PREFIX}/api/dead-letters/group/discard", json={"member": ids[0], "filters": {}}).json()
    assert second["ids"] == ids[4:] and "more open letter" not in second["message"]


def test_payload_is_escaped_and_secrets_redacted(admin: Any, seeded_hub: dict[str, Any]) -> None:
    letter = seeded_hub["dead_letters"]["MH01-XS-Black"]
    resp = admin.get(f"{PREFIX}/dead-letters/{letter}")
    assert resp.status_code == 200
    assert SCRIPT not in resp.text
    assert ESCAPED_SCRIPT in resp.text
    assert "sekrit-api-value" not in resp.text and "&#34;api_key&#34;: &#34;***&#34;" in resp.text
    data = admin.get(f"{PREFIX}/api/dead-letters/{letter}").json()
    assert data["payload"] == {"sku": "MH01-XS-Black", "description": SCRIPT, "api_key": "***"}


def test_discard_through_the_form_is_recorded(admin: Any, seeded_hub: dict[str, Any]) -> None:
    ids = seeded_hub["dead_letters"]
    form = {
        "ids": [str(ids["MH01-XS-Black"]), str(ids["IMG-1"])],
        "action": "discard",
        "back": "?status=open",
    }
    resp = admin.post(f"{PREFIX}/dead-letters/action", data=form, headers={"Origin": "http://testserver"})
    assert resp.status_code == 200, resp.text
    assert "Discarded 1 dead letter(s)." in resp.text  # IMG-1 was already discarded
    letter = admin.get(f"{PREFIX}/api/dead-letters/{ids['MH01-XS-Black']}").json()
    assert (letter["status"], letter["resolved_by"]) == ("discarded", "admin")
    again = admin.post(f"{PREFIX}/api/dead-letters/discard", json={"ids": [ids["MH01-XS-Black"]]})
    assert again.status_code == 409


def test_discard_through_the_json_api(
    client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]
) -> None:
    letter = seeded_hub["dead_letters"]["WJ01-S-Red"]
    resp = client.post(
        f"{PREFIX}/api/dead-letters/discard", json={"ids": [letter]}, headers=bearer(tokens["operator"])
    )
    assert resp.status_code == 200 and resp.json()["count"] == 1
    body = client.get(f"{PREFIX}/api/dead-letters/{letter}", headers=bearer(tokens["operator"])).json()
    assert body["resolved_by"] == "operator"
    bad = client.post(
        f"{PREFIX}/api/dead-letters/discard", json={"ids": ["x"]}, headers=bearer(tokens["operator"])
    )
    assert bad.status_code == 422


class FakeAirflowApi:
    """Stands in for Airflow's REST API (``POST /api/v2/dags/{dag_id}/dagRuns``, ``GET /api/v2/dags/{dag_id}``) and
    records the triggers it got."""

    def __init__(self, dag_exists: bool, paused: bool = False) -> None:
        self.dag_exists, self.paused = dag_exists, paused
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"dag_id": request.url.path.rsplit("/", 1)[-1], "is_paused": self.paused})
        self.requests.append(request)
        if not self.dag_exists:
            return httpx.Response(
                404, json={"detail": "The Dag with dag_id: `dead_letter_replay` was not found"}
            )
        return httpx.Response(
            200, json={"dag_run_id": "manual__2025-03-03T00:00:00+00:00", "state": "queued"}
        )


def test_replay_triggers_the_dag_as_the_caller(
    make_client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]
) -> None:
    api = FakeAirflowApi(dag_exists=True)
    client = make_client(replay_transport=httpx.MockTransport(api))
    ids = seeded_hub["dead_letters"]
    wanted = [ids["MH01-XS-Black"], ids["WJ01-S-Red"], ids["IMG-1"]]
    resp = client.post(
        f"{PREFIX}/api/dead-letters/replay", json={"ids": wanted}, headers=bearer(tokens["operator"])
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["dag_run_id"] == "manual__2025-03-03T00:00:00+00:00"
    (sent,) = api.requests
    assert str(sent.url) == "http://testserver/api/v2/dags/dead_letter_replay/dagRuns"
    assert sent.headers["authorization"] == f"Bearer {tokens['operator']}"
    body = json.loads(sent.content)
    assert body["conf"] == {
        "dead_letter_ids": sorted([ids["MH01-XS-Black"], ids["WJ01-S-Red"]])
    }  # open ones only
    assert body["logical_date"] is None


def test_replay_when_the_dag_does_not_exist(
    make_client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]
) -> None:
    client = make_client(replay_transport=httpx.MockTransport(FakeAirflowApi(dag_exists=False)))
    client.cookies.set("_token", tokens["admin"])
    letter = seeded_hub["dead_letters"]["MH01-XS-Black"]
    resp = client.post(
        f"{PREFIX}/dead-letters/action",
        data={"ids": str(letter), "action": "replay"},
        headers={"Referer": f"http://testserver{PREFIX}/dead-letters"},
    )
    assert resp.status_code == 404
    assert "does not exist in Airflow (yet)" in resp.text
    assert client.get(f"{PREFIX}/api/dead-letters/{letter}").json()["status"] == "open"


# --- SKU trace --------------------------------------------------------------------------------------------------


def trace_result(sku: str) -> dict[str, Any]:
    """The shape the lead's ``explain_sku`` returns, with the DAM link broken."""
    return {
        "sku": sku,
        "systems": {
            "erp": {"sku": sku, "lifecycle_status": "active", "password": "erp-secret"},
            "pim": {"sku": sku, "name": "Hoodie " + SCRIPT, "enabled": True},
            "dam": [{"asset_id": "A1", "status": "in_review", "role": "hero"}],
            "supplier": [],
            "storefront": None,
            "shopper_page": {"status": 404, "cache": "MISS", "has_image": False},
        },
        "chain": [
            {"link": "erp_lifecycle", "ok": True, "detail": "active since 2025-02-01"},
            {"link": "dam_assets", "ok": False, "detail": "hero image A1 is still in review"},
            {"link": "pim_vs_erp", "ok": True, "detail": "consistent"},
            {"link": "storefront_feed", "ok": False, "detail": "not in the feed"},
            {"link": "shopper_page", "ok": False, "detail": "404"},
            {"link": "supplier_writeback", "ok": True, "detail": "nothing to write back"},
        ],
        "broken_link": "dam_assets",
        "verdict": f"{sku} is held back: its hero image is not approved in the DAM.",
        "last_diagnosis": {
            "load_id": "seasonal-1",
            "broken_link": "dam_assets",
            "actions": ["notified DAM team"],
        },
        "dead_letters": [
            {
                "id": 7,
                "source_system": "pim",
                "target_system": "storefront",
                "reason_kind": "gate",
                "expectation": "hero_image_approved",
                "reason": "no approved hero",
                "load_id": "nightly-2",
            }
        ],  # fmt: skip
    }


def test_trace_renders_the_chain_and_systems(
    admin: Any, hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", trace_result)
    html = admin.get(f"{PREFIX}/trace", params={"sku": "MH01-XS-Black"}).text
    assert "MH01-XS-Black is held back: its hero image is not approved in the DAM." in html
    assert 'class="broken first" data-link="dam_assets"' in html
    assert html.count("first broken link") == 1
    assert 'class="broken " data-link="storefront_feed"' in html
    assert "Hoodie " + ESCAPED_SCRIPT in html and SCRIPT not in html
    assert "erp-secret" not in html
    assert "hero_image_approved" in html and "notified DAM team" in html
    assert f'href="{PREFIX}/runs/seasonal-1/runbook" data-testid="diagnosis-runbook"' in html
    data = admin.get(f"{PREFIX}/api/trace", params={"sku": "MH01-XS-Black"}).json()
    assert data["broken_link"] == "dam_assets" and data["systems"]["erp"]["password"] == "***"


def consistent_trace_result(sku: str) -> dict[str, Any]:
    """A SKU that holds at every link, with no pending supplier submission and a clean last diagnosis."""
    result = trace_result(sku)
    result["systems"]["storefront"] = {"handle": "chaz-kangeroo-hoodie", "status": "active"}
    result["systems"]["shopper_page"] = {"status": 200, "cache": "HIT", "has_image": True}
    result["chain"] = [{**c, "ok": True} for c in result["chain"]]
    result["broken_link"] = None
    result["verdict"] = f"{sku} is on the storefront."
    result["last_diagnosis"] = {"load_id": "seasonal-2", "broken_link": None, "dry_run": True}
    result["dead_letters"] = []
    return result


def test_a_consistent_trace_says_so_and_no_supplier_submission_is_not_an_error(
    admin: Any, hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", consistent_trace_result)
    html = admin.get(f"{PREFIX}/trace", params={"sku": "MH01-XS-Black"}).text
    assert "first broken link" not in html.lower()
    assert "Broken link: none, consistent from the ERP to the shopper page." in html
    assert "Run seasonal-2:" in html and "broken link: none, consistent from the ERP to the shopper page" in html
    # No pending supplier submission is the normal case: shown plainly, not in the error style.
    assert '<p class="muted" data-testid="empty-supplier-portals">none pending</p>' in html
    assert 'class="bad">none' not in html
    assert "None" not in html.split('id="diagnosis"')[0]
    # An empty DAM is still a fault.
    broken = trace_result("MH01-XS-Black")
    broken["systems"]["dam"] = []
    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", lambda sku: broken)
    html = admin.get(f"{PREFIX}/trace", params={"sku": "MH01-XS-Black"}).text
    assert 'class="bad" data-testid="empty-dam-assets">none</td>' in html
    assert "First broken link: <b" in html


def test_the_trace_shows_images_rights_and_the_diagnosis_in_words(
    admin: Any, hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = trace_result("MH01-XS-Black")
    src = "http://dam.example/renditions/A2-ecommerce.jpg"
    result["systems"]["dam"] = [{
        "asset_id": "A2", "role": "gallery", "status": "approved", "valid_from": "2026-01-01T00:00:00+00:00",
        "valid_to": None, "rights_expires_at": "2026-11-30T00:00:00+00:00", "rights_regions": ["US", "CA"],
        "linked_in_pim": False, "showable": False, "hidden_because": "usage rights expired 2026-11-30", "src": src}]
    result["systems"]["storefront"] = {"handle": "chaz-hoodie", "status": "active", "images": [src]}
    result["systems"]["pim"]["asset_links"] = ["A1", "A2"]
    result["last_diagnosis"] = {"load_id": "seasonal-3", "broken_link": "dam_assets", "dry_run": True, "findings": [
        {"link": "dam_assets", "detail": "gallery image A2's usage rights expired", "repair": "dam_links"}],
        "actions": [{"repair": "dam_links", "target": "MH01-XS-Black", "system": "pim", "status": "planned",
                     "detail": "unlink A2"}]}
    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", lambda sku: result)
    html = admin.get(f"{PREFIX}/trace", params={"sku": "MH01-XS-Black"}).text
    row = html[html.index('<tr data-asset="A2">'):].split("</tr>")[0]
    # thumbnails and asset links go through the UI, which fetches DAM files with the DAM's credentials
    proxied = f"{PREFIX}/trace/image?{urlencode({'src': src})}"
    assert f'<img src="{escape(proxied)}"' in row and f'<a href="{escape(proxied)}">A2</a>' in row
    assert "until 2026-11-30T00:00 · US, CA" in row and "no: usage rights expired 2026-11-30" in row
    assert 'data-testid="storefront-images">1 image, in gallery order:' in html and "A1, A2" in html
    assert src not in html.split('data-testid="storefront-images"')[1].split("</td>")[0].replace(
        escape(urlencode({"src": src})), "")  # no raw DAM address as text or as an image the browser would fetch
    diagnosis = html[html.index('id="diagnosis"'):]
    assert "The repair it would make" in diagnosis and "dam links" in diagnosis and "unlink A2" in diagnosis
    assert "A dry run: it diagnosed and wrote nothing." in diagnosis and "{" not in diagnosis.split("</div>")[0]


def test_trace_thumbnails_come_from_the_dam_with_its_credentials_and_nothing_else_does(
    admin: Any, hub_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DAM rendition needs the DAM's key (the browser has none): the UI fetches it through the DAM connection.
    Any other address, even on the DAM's host, is never fetched with that key: the browser is sent there."""
    from tests.conftest import airflow_connection_env

    for name, value in airflow_connection_env(sandbox.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CATALOG_SYNC_SYSTEMS_URL", raising=False)
    asset = next(iter(httpx.get(f"{sandbox.url}/dam/api/assets", params={"per_page": 1}, timeout=10, headers={
        "X-Api-Key": sandbox.credentials["dam"]["api_key"]}).json()["assets"]))
    src = asset["renditions"]["ecommerce"]
    assert httpx.get(src, timeout=10).status_code == 401  # what a browser gets on its own
    image = admin.get(f"{PREFIX}/trace/image", params={"src": src})
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert image.content == httpx.get(src, timeout=10, headers={
        "X-Api-Key": sandbox.credentials["dam"]["api_key"]}).content
    elsewhere = f"{sandbox.url}/erp/api/items"  # same host, not the DAM: the DAM's key must not go there
    away = admin.get(f"{PREFIX}/trace/image", params={"src": elsewhere}, follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == elsewhere
    assert admin.get(f"{PREFIX}/trace/image", params={"src": "javascript:alert(1)"},
                     follow_redirects=False).status_code == 404


def test_trace_without_configured_systems_names_the_connection(admin: Any, hub_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_CATALOG_SYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("CATALOG_SYNC_SYSTEMS_URL", raising=False)
    resp = admin.get(f"{PREFIX}/trace", params={"sku": "MH01-XS-Black"})
    assert resp.status_code == 502
    assert "ConfigurationError" in resp.text and "catalog_sync_erp" in resp.text
    assert "sandbox" not in resp.text
    assert admin.get(f"{PREFIX}/api/trace", params={"sku": "X"}).status_code == 502
    assert admin.get(f"{PREFIX}/trace").status_code == 200  # the empty form still works


def test_trace_when_explain_fails(admin: Any, hub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(sku: str) -> dict[str, Any]:
        raise ConnectionError("PIM unreachable")

    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", explode)
    resp = admin.get(f"{PREFIX}/trace", params={"sku": "MH01-XS-Black"})
    assert resp.status_code == 502 and "ConnectionError: PIM unreachable" in resp.text


# --- drift ------------------------------------------------------------------------------------------------------


def test_drift_of_the_latest_weekly_run(admin: Any, seeded_hub: dict[str, Any]) -> None:
    data = admin.get(f"{PREFIX}/api/drift").json()
    assert data["run"]["load_id"] == "weekly-new"
    assert data["total"] == 3
    assert data["kinds"] == ["drift", "missing"]
    assert data["by_attribute"] == [
        {"attribute": "name", "total": 2, "kinds": {"drift": 2, "missing": 0}},
        {"attribute": "weight", "total": 1, "kinds": {"drift": 0, "missing": 1}},
    ]
    assert "OLD-1" not in {r["record_key"] for r in data["records"]}
    only = admin.get(f"{PREFIX}/api/drift", params={"attribute": "weight"}).json()
    assert [(r["record_key"], r["kind"]) for r in only["records"]] == [("MH01-XS-Black", "missing")]
    html = admin.get(f"{PREFIX}/drift").text
    assert '<b data-testid="drift-total">3</b>' in html
    assert ESCAPED_SCRIPT in html and SCRIPT not in html


def test_drift_before_any_reconciliation(admin: Any, hub_url: str) -> None:
    assert "No weekly reconciliation has run yet." in admin.get(f"{PREFIX}/drift").text


def test_drift_page_offers_a_reconciliation_to_those_allowed_and_triggers_it_as_them(
    make_client: Any, tokens: dict[str, str], hub_url: str
) -> None:
    api = FakeAirflowApi(dag_exists=True)
    client = make_client(replay_transport=httpx.MockTransport(api))
    client.cookies.set("_token", tokens["operator"])
    page = client.get(f"{PREFIX}/drift").text
    assert "compares each attribute with its owner system" in page and "Run a reconciliation now" in page
    resp = client.post(f"{PREFIX}/drift/reconcile", data={"apply_deletions": "true"},
                       headers={"Origin": "http://testserver"})
    assert resp.status_code == 200, resp.text
    assert "Triggered weekly_reconciliation run manual__2025-03-03T00:00:00+00:00." in resp.text
    (sent,) = api.requests
    assert str(sent.url) == "http://testserver/api/v2/dags/weekly_reconciliation/dagRuns"
    assert sent.headers["authorization"] == f"Bearer {tokens['operator']}"
    assert json.loads(sent.content)["conf"] == {"apply_deletions": True}
    # a viewer reads the page, is told what it takes, and cannot trigger it
    client.cookies.set("_token", tokens["viewer"])
    page = client.get(f"{PREFIX}/drift").text
    assert "Run a reconciliation now" not in page and "needs the right to trigger" in page
    refused = client.post(f"{PREFIX}/drift/reconcile", data={"apply_deletions": "false"},
                          headers={"Origin": "http://testserver"})
    assert refused.status_code == 403 and len(api.requests) == 1


def test_a_run_triggered_on_a_paused_dag_says_it_waits(make_client: Any, tokens: dict[str, str], hub_url: str
                                                       ) -> None:
    """A paused DAG keeps a triggered run queued (`make run` leaves weekly_reconciliation paused): the page says so
    and how to let it start, rather than a bare "Triggered"."""
    client = make_client(replay_transport=httpx.MockTransport(FakeAirflowApi(dag_exists=True, paused=True)))
    client.cookies.set("_token", tokens["operator"])
    resp = client.post(f"{PREFIX}/drift/reconcile", data={"apply_deletions": "false"},
                       headers={"Origin": "http://testserver"})
    assert resp.status_code == 200, resp.text
    assert "weekly_reconciliation is paused in Airflow, so the run waits in the queue: unpause the DAG" in resp.text


def test_drift_page_lists_the_storefronts_showable_drift_and_its_repair(admin: Any, seeded_hub: dict[str, Any]
                                                                        ) -> None:
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import SyncRun

    with session_scope(seeded_hub["hub_url"]) as s:
        s.get(SyncRun, "weekly-new").details = {
            "showable": {"checked_at": "2026-06-07T03:20:00+00:00", "region": "US", "skus": 2,
                         "by_problem": {"hidden": 1, "order": 1},
                         "drifted": [{"sku": "MH01-XS-Black", "problems": {"order": True}},
                                     {"sku": "WJ01-S-Red", "problems": {"hidden": [
                                         {"asset_id": "AST-9", "why": "usage rights expired 2026-06-01"}]}}]},
            "showable_repairs": {"planned": 2, "applied": True, "reason": None,
                                 "load_id": "seasonal_republish:weekly-new:showable",
                                 "repaired": {"read": 2, "delivered": 2, "unchanged": 0, "dead_lettered": 0}}}
    data = admin.get(f"{PREFIX}/api/drift").json()
    assert data["showable"]["skus"] == 2 and data["showable_repairs"]["repaired"]["delivered"] == 2
    html = admin.get(f"{PREFIX}/drift").text
    assert '<b data-testid="showable-drift">2</b>' in html and "hidden 1, order 1" in html
    assert "usage rights expired 2026-06-01" in html and "AST-9" in html
    assert "Repaired by" in html and "seasonal_republish:weekly-new:showable" in html


def test_drift_page_of_a_run_without_the_showable_check(admin: Any, seeded_hub: dict[str, Any]) -> None:
    assert admin.get(f"{PREFIX}/api/drift").json()["showable"] is None
    assert "did not check the storefront against the showable rule" in admin.get(f"{PREFIX}/drift").text


# --- launch runbook ---------------------------------------------------------------------------------------------


def _seed_republish(hub_url: str) -> str:
    """A seasonal republish run with two SKUs: one repaired (PIM state and cache), one left to a person."""
    from catalog_sync.flows import runbook
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import Diagnosis, SyncRun

    ok_chain = [{"link": link, "ok": True, "detail": f"{link} fine"} for link in runbook.ORDER]
    repaired = runbook.build(
        {"sku": "24-MB06", "root_sku": "24-MB06", "handle": "joust-duffle-bag", "broken_link": "pim_vs_erp",
         "findings": [{"link": "pim_vs_erp", "detail": "the PIM says draft, the ERP active", "repair": "pim_state",
                       "target": "24-MB06"}]},
        [{"repair": "pim_state", "target": "24-MB06", "system": "pim", "status": "done",
          "detail": "lifecycle_status: draft -> active"},
         {"repair": "cache", "target": "joust-duffle-bag", "system": "cdn", "status": "done", "detail": "purge p-1"},
         {"repair": "verify", "target": "24-MB06", "system": "storefront", "status": "holds",
          "detail": "24-MB06 is consistent from the ERP to the shopper page; nothing holds it back."}],
        outcome="delivered", dry_run=False,
        after={"chain": ok_chain, "verdict": "24-MB06 is consistent from the ERP to the shopper page."})
    manual = runbook.build(
        {"sku": "24-WG03", "root_sku": "24-WG03", "handle": "sprite-foam-roller", "broken_link": "erp_lifecycle",
         "findings": [{"link": "erp_lifecycle", "detail": f"pre-active in the ERP {SCRIPT}",
                       "repair": "activate_erp", "target": "24-WG03"}]},
        [{"repair": "activate_erp", "target": "24-WG03", "system": "", "status": "not_allowed",
          "detail": "repair activate_erp was not allowed for this run"}],
        outcome="dead_lettered", dry_run=False,
        after={"chain": [{**c, "ok": c["link"] != "erp_lifecycle"} for c in ok_chain],
               "verdict": "24-WG03 is held back at the erp lifecycle link."})
    with session_scope(hub_url) as s:
        s.add(SyncRun(load_id="seasonal_republish:aw26", flow="seasonal_republish", dag_id="seasonal_republish",
                      run_id="manual__aw26", status="success",
                      details={"season": "AW26", "dry_run": False, "repairs": ["pim_state", "cache"]}))
        for book in (repaired, manual):
            s.add(Diagnosis(load_id="seasonal_republish:aw26", sku=book["sku"], broken_link=book["first_broken"],
                            findings=[], actions=[], dry_run=False, runbook=book))
    return "seasonal_republish:aw26"


def test_the_launch_runbook_page_is_linked_from_the_run_and_reads_as_tables_and_words(
    admin: Any, seeded_hub: dict[str, Any]
) -> None:
    load_id = _seed_republish(seeded_hub["hub_url"])
    run_html = admin.get(f"{PREFIX}/runs/{load_id}").text
    assert 'data-testid="runbook-link"' in run_html and "/runs/seasonal_republish%3Aaw26/runbook" in run_html
    assert 'data-testid="runbook-link"' not in admin.get(f"{PREFIX}/runs/nightly-1").text

    resp = admin.get(f"{PREFIX}/runs/{load_id}/runbook")
    assert resp.status_code == 200
    html = resp.text
    # The SKU a person must act on comes first, with its step in words, naming the system.
    assert html.index('data-sku="24-WG03"') < html.index('data-sku="24-MB06"')
    assert "In the ERP, decide whether 24-WG03 is sold this season" in html
    assert 'data-testid="runbook-manual">1<' in html
    # Each repair by name and in words, its effect, and the live-page check after the repairs.
    assert "align the PIM&#39;s lifecycle and enabled flag with the ERP" in html and "(pim_state)" in html
    assert "purge the page from the CDN&#39;s cache" in html and "lifecycle_status: draft -&gt; active" in html
    assert "Live page check (joust-duffle-bag)" in html
    assert "<table class=\"runbook\">" in html and html.count('<tr data-link="erp_lifecycle">') == 2
    # No raw JSON, and what came from the systems is escaped.
    assert '{"' not in html and "'link':" not in html
    assert SCRIPT not in html and ESCAPED_SCRIPT in html

    data = admin.get(f"{PREFIX}/api/runs/{load_id}/runbook").json()
    assert data["totals"] == {"skus": 2, "repaired": 1, "held_all_along": 0, "need_a_person": 1, "manual_steps": 1,
                              "repairs_made": 2, "live_pages_ok": 2}
    # Only a seasonal republish has one; another run's page says so.
    assert "only a seasonal republish writes a launch runbook" in admin.get(f"{PREFIX}/runs/nightly-1/runbook").text
    assert admin.get(f"{PREFIX}/runs/no-such-run/runbook").status_code == 404
