"""Small HTTP helpers shared by the sandbox tests (real requests against the running sandbox)."""

from __future__ import annotations

from typing import Any

import requests


def erp(sb: Any) -> dict[str, str]:
    return {"X-Api-Key": sb.credentials["erp"]["api_key"]}


def dam(sb: Any) -> dict[str, str]:
    return {"X-Api-Key": sb.credentials["dam"]["api_key"]}


def supplier(sb: Any) -> dict[str, str]:
    return {"X-Api-Key": sb.credentials["supplier"]["api_key"]}


def shop(sb: Any) -> dict[str, str]:
    return {"X-Shopify-Access-Token": sb.credentials["storefront"]["access_token"]}


def pim_token(sb: Any) -> dict[str, Any]:
    c = sb.credentials["pim"]
    r = requests.post(f"{sb.url}/pim/api/oauth/v1/token", auth=(c["client_id"], c["client_secret"]),
                      json={"grant_type": "password", "username": c["username"], "password": c["password"]},
                      timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def pim(sb: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {pim_token(sb)['access_token']}"}


def pim_all(sb: Any, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every item of a PIM list, following _links.next with search_after pagination."""
    url: str | None = f"{sb.url}/pim/api/rest/v1/{path}"
    query: dict[str, Any] | None = {"pagination_type": "search_after", "limit": 100, **params}
    items: list[dict[str, Any]] = []
    while url:
        r = requests.get(url, params=query, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["_embedded"]["items"])
        url, query = body["_links"].get("next", {}).get("href"), None
    return items


def erp_all(sb: Any, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        q = {"limit": 1000, **params, **({"after_sku": after} if after else {})}
        r = requests.get(f"{sb.url}/erp/{path}", params=q, headers=erp(sb), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body[key])
        after = body["next_after_sku"]
        if not after:
            return out
