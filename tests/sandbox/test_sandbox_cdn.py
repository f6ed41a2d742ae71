"""The CDN in front of the storefront's pages (edge cache, Fastly-shaped purge API) over real HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from .helpers import shop

ADMIN = "/storefront/admin/api/2025-01"


def fastly(sb: Any) -> dict[str, str]:
    return {"Fastly-Key": sb.credentials["cdn"]["api_token"]}


def _publish(sb: Any, handle: str, title: str) -> int:
    product = {"title": title, "body_html": "<p>Warm</p>", "handle": handle, "status": "active",
               "variants": [{"sku": f"{handle.upper()}-1", "price": "52.00"}]}
    answer = requests.post(f"{sb.url}{ADMIN}/products.json", json={"product": product}, headers=shop(sb), timeout=10)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["product"]["id"])


def _rename(sb: Any, product_id: int, title: str) -> None:
    answer = requests.put(f"{sb.url}{ADMIN}/products/{product_id}.json", json={"product": {"title": title}},
                          headers=shop(sb), timeout=10)
    assert answer.status_code == 200


def page(sb: Any, handle: str) -> requests.Response:
    return requests.get(f"{sb.url}/cdn/edge/products/{handle}", timeout=10)


def test_the_edge_caches_the_origin_page_and_goes_stale_after_an_admin_write(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    pid = _publish(sb, "chaz", "Chaz Hoodie")
    first = page(sb, "chaz")
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS" and "Chaz Hoodie" in first.text
    assert "Surrogate-Key" not in first.headers  # a CDN keeps its tags to itself
    _rename(sb, pid, "Renamed Hoodie")
    stale = page(sb, "chaz")
    assert stale.headers["X-Cache"] == "HIT" and "Age" in stale.headers
    assert "Renamed Hoodie" not in stale.text  # the storefront changed, shoppers do not see it
    assert "Renamed Hoodie" in requests.get(f"{sb.url}/storefront/products/chaz", timeout=10).text  # the origin does
    sb.settings(render_cache_ttl_s=0)  # once its TTL runs out the copy is fetched again
    assert "Renamed Hoodie" in page(sb, "chaz").text
    assert page(sb, "no-such-product").status_code == 404


def test_a_bulk_purge_by_surrogate_key_refreshes_only_the_tagged_pages(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    service = sb.credentials["cdn"]["service_id"]
    chaz, other = _publish(sb, "chaz", "Chaz Hoodie"), _publish(sb, "other", "Other Tee")
    page(sb, "chaz"), page(sb, "other")
    _rename(sb, chaz, "Renamed Hoodie")
    _rename(sb, other, "Renamed Tee")
    purged = requests.post(f"{sb.url}/cdn/service/{service}/purge", timeout=10,
                           headers={**fastly(sb), "Surrogate-Key": "product-chaz product-nowhere"})
    assert purged.status_code == 200
    assert set(purged.json()) == {"product-chaz", "product-nowhere"} and all(purged.json().values())
    fresh = page(sb, "chaz")
    assert fresh.headers["X-Cache"] == "MISS" and "Renamed Hoodie" in fresh.text
    assert page(sb, "other").headers["X-Cache"] == "HIT"  # not tagged with a purged key
    # the same purge with the keys in a JSON body, and the one-key form
    by_body = requests.post(f"{sb.url}/cdn/service/{service}/purge", json={"surrogate_keys": ["product-other"]},
                            headers=fastly(sb), timeout=10)
    assert list(by_body.json()) == ["product-other"] and "Renamed Tee" in page(sb, "other").text
    one = requests.post(f"{sb.url}/cdn/service/{service}/purge/product-other", headers=fastly(sb), timeout=10)
    assert one.json()["status"] == "ok" and one.json()["id"] and page(sb, "other").headers["X-Cache"] == "MISS"


def test_a_url_purge_refreshes_that_page(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    pid = _publish(sb, "chaz", "Chaz Hoodie")
    page(sb, "chaz")
    _rename(sb, pid, "Renamed Hoodie")
    cached_url = f"{urlsplit(sb.url).netloc}/cdn/edge/products/chaz"  # host and path, as Fastly names it
    answer = requests.post(f"{sb.url}/cdn/purge/{cached_url}", headers=fastly(sb), timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert "Renamed Hoodie" in page(sb, "chaz").text


def test_the_purge_api_refuses_bad_tokens_unknown_services_and_oversized_purges(sandbox: Any) -> None:
    service = sandbox.credentials["cdn"]["service_id"]
    url = f"{sandbox.url}/cdn/service/{service}/purge"
    for headers in ({}, {"Fastly-Key": "not-the-token"}):
        refused = requests.post(url, headers={**headers, "Surrogate-Key": "product-x"}, timeout=10)
        assert refused.status_code == 401 and refused.json()["msg"]
    unknown = requests.post(f"{sandbox.url}/cdn/service/NoSuchService/purge", timeout=10,
                            headers={**fastly(sandbox), "Surrogate-Key": "product-x"})
    assert unknown.status_code == 404 and "NoSuchService" in unknown.json()["detail"]
    too_many = " ".join(f"product-{n}" for n in range(257))
    assert requests.post(url, headers={**fastly(sandbox), "Surrogate-Key": too_many}, timeout=10).status_code == 400
    assert requests.post(url, headers=fastly(sandbox), timeout=10).status_code == 400  # no keys at all
