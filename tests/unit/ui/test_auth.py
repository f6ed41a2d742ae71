"""Every Catalog Sync route demands an Airflow user; acting on dead letters demands the right to trigger DAGs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.ui.conftest import bearer

PREFIX = "/catalog-sync"
#: Query strings a route needs to do its work (not to pass authentication, which comes first).
QUERIES = {
    "/run-lookup": "?dag_id=nightly_product_sync&run_id=scheduled__2025-03-01T02:00:00%2B00:00",
    "/api/run-lookup": "?dag_id=nightly_product_sync&run_id=scheduled__2025-03-01T02:00:00%2B00:00",
    "/api/trace": "?sku=MH01-XS-Black",
    "/trace": "?sku=MH01-XS-Black",
    "/trace/image": "?src=https%3A%2F%2Fcdn.example%2Fhoodie.jpg",
}


def concrete_routes(letter_id: int) -> list[tuple[str, str]]:
    """(method, URL) of every route of the app, with sample path parameters filled in."""
    from starlette.routing import Route

    from catalog_sync.ui.app import create_app

    values = {
        "load_id": "nightly-1",
        "file_path": "index.html",
        "letter_id": str(letter_id),
        "action": "discard",
    }
    out = []
    for route in create_app().routes:
        if not isinstance(route, Route) or route.path.startswith(("/openapi", "/docs", "/redoc")):
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], route.path)
        for method in sorted(route.methods or []):
            if method != "HEAD":
                out.append((method, PREFIX + path + QUERIES.get(route.path, "")))
    return out


@pytest.fixture
def fake_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stands in for the configured systems' trace so the trace routes have something to render (and for their
    DAM, which holds no file at the thumbnail's address: the browser is sent there)."""
    monkeypatch.setattr("catalog_sync.airflow.systems.dam_image", lambda src: None)
    monkeypatch.setattr("catalog_sync.airflow.systems.explain_configured", lambda sku: {
        "sku": sku,
        "systems": {
            "erp": None,
            "pim": None,
            "dam": [],
            "supplier": [],
            "storefront": None,
            "shopper_page": None,
        },
        "chain": [],
        "broken_link": None,
        "verdict": "ok",
        "last_diagnosis": None,
        "dead_letters": [],
    })


def test_every_route_is_listed(seeded_hub: dict[str, Any]) -> None:
    routes = concrete_routes(1)
    paths = {url.split("?")[0] for _, url in routes}
    assert len(routes) >= 18
    assert {f"{PREFIX}/quality", f"{PREFIX}/api/quality", f"{PREFIX}/dead-letters/action"} <= paths


def test_anonymous_gets_401_everywhere(client: Any, seeded_hub: dict[str, Any]) -> None:
    for method, url in concrete_routes(seeded_hub["dead_letters"]["MH01-XS-Black"]):
        resp = client.request(method, url, follow_redirects=False)
        assert resp.status_code == 401, (method, url, resp.status_code)
        if "/api/" in url:
            assert resp.json()["detail"]
        else:
            assert "Sign in required" in resp.text
            assert 'href="/auth/login?next=' in resp.text


def test_forged_and_revoked_tokens_get_401(
    client: Any, tokens: dict[str, str], airflow_auth: Any, seeded_hub: dict[str, Any]
) -> None:
    token = tokens["admin"]
    assert client.get(f"{PREFIX}/api/quality", headers=bearer(token)).status_code == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get(f"{PREFIX}/api/quality", headers=bearer(forged)).status_code == 401
    client.cookies.set("_token", "not-a-jwt")
    assert client.get(f"{PREFIX}/quality").status_code == 401
    client.cookies.clear()
    # What Airflow's logout does (auth_manager.revoke_token), written directly: Airflow's own path swallows
    # any error into a log warning, and a revocation that silently did not happen would prove nothing here.
    import jwt
    from airflow.models.revoked_token import RevokedToken

    claims = jwt.decode(token, options={"verify_signature": False})
    RevokedToken.revoke(claims["jti"], datetime.fromtimestamp(claims["exp"], tz=UTC))
    assert client.get(f"{PREFIX}/api/quality", headers=bearer(token)).status_code == 401


def test_authenticated_user_gets_every_read_route(
    client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any], data_docs: Any, fake_trace: None
) -> None:
    for method, url in concrete_routes(seeded_hub["dead_letters"]["MH01-XS-Black"]):
        if method != "GET":
            continue
        resp = client.get(url, headers=bearer(tokens["viewer"]), follow_redirects=False)
        expected = 303 if url.split("?")[0] in (f"{PREFIX}/", f"{PREFIX}/run-lookup", f"{PREFIX}/trace/image") else 200
        assert resp.status_code == expected, (url, resp.status_code, resp.text[:300])


def test_ui_session_cookie_is_accepted(
    client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]
) -> None:
    client.cookies.set("_token", tokens["viewer"])
    resp = client.get(f"{PREFIX}/dead-letters")
    assert resp.status_code == 200
    assert "Signed in as viewer" in resp.text


def test_viewer_may_not_discard_or_replay(
    client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]
) -> None:
    letter = seeded_hub["dead_letters"]["MH01-XS-Black"]
    for action in ("discard", "replay"):
        resp = client.post(
            f"{PREFIX}/api/dead-letters/{action}", json={"ids": [letter]}, headers=bearer(tokens["viewer"])
        )
        assert resp.status_code == 403, resp.text
        assert "may not trigger" in resp.json()["detail"]
    page = client.get(f"{PREFIX}/dead-letters", headers=bearer(tokens["viewer"])).text
    assert "Discard selected" not in page
    assert 'name="ids"' not in page
    # nothing changed
    body = client.get(f"{PREFIX}/api/dead-letters/{letter}", headers=bearer(tokens["viewer"])).json()
    assert body["status"] == "open"


def test_operator_may_act(client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]) -> None:
    page = client.get(f"{PREFIX}/dead-letters", headers=bearer(tokens["operator"])).text
    assert "Discard selected" in page


def test_cross_site_form_post_is_refused(
    client: Any, tokens: dict[str, str], seeded_hub: dict[str, Any]
) -> None:
    letter = seeded_hub["dead_letters"]["MH01-XS-Black"]
    form = {"ids": str(letter), "action": "discard"}
    client.cookies.set("_token", tokens["admin"])
    evil = client.post(f"{PREFIX}/dead-letters/action", data=form, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    no_origin = client.post(f"{PREFIX}/dead-letters/action", data=form)
    assert no_origin.status_code == 403
    as_text = client.post(
        f"{PREFIX}/api/dead-letters/discard",
        content=f'{{"ids": [{letter}]}}',
        headers={"Content-Type": "text/plain"},
    )
    assert as_text.status_code == 415
    still_open = client.get(f"{PREFIX}/api/dead-letters/{letter}").json()
    assert still_open["status"] == "open"
