"""Connector logic against a small in-test fake (Akeneo token lifecycle, collection lines, pagination shapes).

The shared contract suite (``test_contract.py``) runs the same clients against the real sandbox; this file pins
behaviour the sandbox only shows under faults, with exact control over every answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from catalog_sync.connectors import (
    AuthError,
    ClientOptions,
    DamClient,
    ErpClient,
    Outcome,
    PimClient,
    PimCredentials,
    ReadResult,
    RecordError,
    RetryPolicy,
    StorefrontClient,
)
from catalog_sync.connectors.http import Disposition, HttpClient, TransientError
from catalog_sync.connectors.shopify_cost import requested_cost

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Fake:
    """Routes are ``(method, path) -> fn(query, body, headers) -> Reply``."""

    routes: dict[tuple[str, str], Callable[[dict[str, list[str]], bytes, dict[str, str]], Reply]] = field(
        default_factory=dict
    )
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    base: str = ""


@pytest.fixture
def fake() -> Iterator[Fake]:
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            state.calls.append((self.command, parts.path, dict(self.headers)))
            route = state.routes.get((self.command, parts.path))
            status, headers, payload = route(parse_qs(parts.query), body, dict(self.headers)) if route else (
                404, {}, b"{}")
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def j(status: int, body: Any, **headers: str) -> Reply:
    return status, dict(headers), json.dumps(body).encode()


FAST = ClientOptions(retry=RetryPolicy(max_attempts=3, base=0.001, cap=0.002), read_timeout=2)
PIM_CREDS = PimCredentials("cid", "client-secret-xyz", "julia", "password-abc")


class AkeneoFake:
    """Token grants with a configurable lifetime; products that 401 "expired" once a token is too old."""

    def __init__(self, fake: Fake, lifetime: int = 3600) -> None:
        self.lifetime = lifetime
        self.grants: list[str] = []
        self.valid: set[str] = set()
        self.expire_next = False
        fake.routes[("POST", "/pim/api/oauth/v1/token")] = self.token
        fake.routes[("GET", "/pim/api/rest/v1/products")] = self.products
        fake.routes[("PATCH", "/pim/api/rest/v1/products")] = self.patch
        self.base = fake.base

    def token(self, q: dict, body: bytes, h: dict) -> Reply:
        if h.get("Authorization") != "Basic Y2lkOmNsaWVudC1zZWNyZXQteHl6":  # cid:client-secret-xyz
            return j(401, {"code": 401, "message": "bad client"})
        grant = json.loads(body)
        if grant["grant_type"] == "password" and grant["password"] != "password-abc":
            return j(400, {"code": 400, "message": "bad user"})
        self.grants.append(grant["grant_type"])
        tok = f"tok{len(self.grants)}"
        self.valid = {tok}  # issuing a new token expires the old one
        return j(200, {"access_token": tok, "expires_in": self.lifetime, "token_type": "bearer", "scope": None,
                       "refresh_token": f"ref{len(self.grants)}"})

    def _auth(self, h: dict) -> Reply | None:
        tok = h.get("Authorization", "").removeprefix("Bearer ")
        if tok not in self.valid or self.expire_next:
            self.expire_next = False
            self.valid.discard(tok)
            return j(401, {"code": 401, "message": "The access token provided has expired."})
        return None

    def products(self, q: dict, body: bytes, h: dict) -> Reply:
        if (denied := self._auth(h)) is not None:
            return denied
        after = int(q.get("search_after", ["0"])[0])
        limit = int(q["limit"][0])
        items = [{"identifier": f"P{i}", "values": {}, "updated": "2026-01-01T00:00:00+00:00", "enabled": True,
                  "categories": [], "parent": None} for i in range(after + 1, min(after + limit, 5) + 1)]
        if after == 0:
            items.append({"identifier": "BROKEN", "values": "not-an-object"})  # malformed record, same page
        links: dict[str, Any] = {"self": {"href": "x"}}
        if after + limit < 5:
            links["next"] = {"href": f"{self.base}/pim/api/rest/v1/products?pagination_type=search_after"
                                     f"&limit={limit}&search_after={after + limit}"}
        return j(200, {"_links": links, "_embedded": {"items": items}})

    def patch(self, q: dict, body: bytes, h: dict) -> Reply:
        if (denied := self._auth(h)) is not None:
            return denied
        assert h["Content-Type"] == "application/vnd.akeneo.collection+json"
        lines = []
        for n, raw in enumerate(body.decode().splitlines(), start=1):
            item = json.loads(raw)
            if "name" not in item.get("values", {}):
                lines.append({"line": n, "identifier": item["identifier"], "status_code": 422,
                              "message": "Validation failed.",
                              "errors": [{"property": "values", "message": "name is required"}]})
            else:
                lines.append({"line": n, "identifier": item["identifier"], "status_code": 201})
        return 200, {}, "\n".join(json.dumps(x) for x in lines).encode()


def test_pim_pages_follow_links_and_isolate_malformed_records(fake: Fake) -> None:
    AkeneoFake(fake)
    pim = PimClient(f"{fake.base}/pim", PIM_CREDS, ClientOptions(page_size=2, retry=FAST.retry))
    result = ReadResult.collect(pim.iter_products(updated_after="2026-01-01 00:00:00"))
    assert [r["identifier"] for r in result.records] == ["P1", "P2", "P3", "P4", "P5"]
    assert result.pages == 3
    assert [(e.record_key, e.disposition) for e in result.errors] == [("BROKEN", Disposition.DEAD_LETTER)]
    first = [c for c in fake.calls if c[1].endswith("/products")][0]
    assert first[2]["Authorization"] == "Bearer tok1"


def test_pim_token_refreshes_reactively_once_then_fails_fast(fake: Fake) -> None:
    akeneo = AkeneoFake(fake)
    pim = PimClient(f"{fake.base}/pim", PIM_CREDS, FAST)
    assert pim.get_product("P1") is None  # the fake has no such product; the call obtained a token
    akeneo.expire_next = True
    assert len(ReadResult.collect(pim.iter_products()).records) == 5
    assert akeneo.grants == ["password", "refresh_token"]
    # the token endpoint now refuses everything: a 401 after refresh is an AuthError, never a retry storm
    fake.routes[("POST", "/pim/api/oauth/v1/token")] = lambda q, b, h: j(401, {"message": "revoked"})
    akeneo.expire_next = True
    with pytest.raises(AuthError) as info:
        ReadResult.collect(pim.iter_products())
    assert "client-secret-xyz" not in str(info.value) and "password-abc" not in str(info.value)


def test_pim_token_refreshes_proactively_before_expiry(fake: Fake) -> None:
    akeneo = AkeneoFake(fake, lifetime=1)  # renewed at 0.9 s: every call after that gets a fresh token
    clock = [0.0]
    pim = PimClient(f"{fake.base}/pim", PIM_CREDS, FAST)
    pim.oauth._clock = lambda: clock[0]
    ReadResult.collect(pim.iter_products())
    per_read = len([c for c in fake.calls if c[1].endswith("/products")])  # pages, re-reads of BROKEN included
    clock[0] = 5.0
    ReadResult.collect(pim.iter_products())
    assert akeneo.grants == ["password", "refresh_token"]
    used = [c[2]["Authorization"] for c in fake.calls if c[1].endswith("/products")]
    # renewed before the request, not after a 401: the second read sends exactly what the first did, all with
    # the new token, and no request is sent twice for want of a token
    assert used == ["Bearer tok1"] * per_read + ["Bearer tok2"] * per_read


def test_pim_collection_patch_reports_each_line_and_batches_by_100(fake: Fake) -> None:
    AkeneoFake(fake)
    pim = PimClient(f"{fake.base}/pim", PIM_CREDS, FAST)
    good = [{"identifier": f"G{i}", "values": {"name": [{"locale": "en_US", "scope": None, "data": "x"}]}}
            for i in range(150)]
    bad = {"identifier": "NO-NAME", "values": {}}
    results = pim.upsert_products([*good[:60], bad, {"values": {}}, *good[60:]])
    assert len(results) == 152
    patches = [c for c in fake.calls if c[0] == "PATCH"]
    assert len(patches) == 2  # 151 sendable lines -> 100 + 51
    failed = {r.key: r for r in results if r.outcome is Outcome.FAILED}
    assert set(failed) == {"NO-NAME", "<no identifier>"}
    assert failed["NO-NAME"].status == 422 and "name is required" in (failed["NO-NAME"].message or "")
    assert failed["NO-NAME"].disposition is Disposition.DEAD_LETTER and failed["NO-NAME"].sent == bad
    assert sum(r.ok for r in results) == 150


def test_pim_cut_off_collection_answer_is_resent(fake: Fake) -> None:
    akeneo = AkeneoFake(fake)
    answers = iter([(200, {}, b'{"line": 1, "identifier": "A", "status_code": 204}'), None])

    def flaky(q: dict, body: bytes, h: dict) -> Reply:
        reply = next(answers, None)
        return reply if reply is not None else akeneo.patch(q, body, h)

    fake.routes[("PATCH", "/pim/api/rest/v1/products")] = flaky
    pim = PimClient(f"{fake.base}/pim", PIM_CREDS, FAST)
    items = [{"identifier": k, "values": {"name": []}} for k in ("A", "B")]
    assert [r.status for r in pim.upsert_products(items)] == [201, 201]
    assert len([c for c in fake.calls if c[0] == "PATCH"]) == 2


def test_erp_keyset_pages_and_record_error_for_one_bad_item(fake: Fake) -> None:
    skus = ["A", "B", "C", "D", "E"]

    def items(q: dict, body: bytes, h: dict) -> Reply:
        assert h["X-Api-Key"] == "erp-key-123"
        after = q.get("after_sku", [""])[0]
        rest = [s for s in skus if s > after][: int(q["limit"][0])]
        rows: list[Any] = [{"sku": s, "product_type": "simple", "lifecycle_status": "active", "updated_at": "t"}
                           for s in rest]
        if "C" in rest:
            rows[rest.index("C")]["lifecycle_status"] = "zombie"
        nxt = rest[-1] if rest and rest[-1] != skus[-1] else None
        return j(200, {"items": rows, "next_after_sku": nxt})

    fake.routes[("GET", "/erp/items")] = items
    erp = ErpClient(f"{fake.base}/erp", "erp-key-123", ClientOptions(page_size=2, retry=FAST.retry))
    result = ReadResult.collect(erp.iter_items())
    assert [r["sku"] for r in result.records] == ["A", "B", "D", "E"]
    assert [e.record_key for e in result.errors] == ["C"] and result.pages == 3


def test_erp_item_write_422_is_a_failed_result_not_an_exception(fake: Fake) -> None:
    fake.routes[("PUT", "/erp/items/X")] = lambda q, b, h: j(422, {"detail": "upc must be 12 digits"})
    erp = ErpClient(f"{fake.base}/erp", "erp-key-123", FAST)
    result = erp.put_item({"sku": "X", "upc": "1"})
    assert result.outcome is Outcome.FAILED and result.disposition is Disposition.DEAD_LETTER
    assert result.status == 422 and "12 digits" in (result.message or "")


def test_dam_download_checksum_mismatch_is_retried_then_dead_lettered(fake: Fake) -> None:
    import hashlib

    content = b"\xff\xd8jpegbytes"
    sent = iter([b"\xff\xd8jpeg", content])
    fake.routes[("GET", "/dam/api/assets/7/binary")] = lambda q, b, h: (200, {"Content-Type": "image/jpeg"},
                                                                        next(sent, b"corrupt"))
    dam = DamClient(f"{fake.base}/dam", "dam-key-123", FAST)
    asset = {"id": 7, "checksum": hashlib.sha256(content).hexdigest()}
    assert dam.download(asset) == content
    with pytest.raises(RecordError) as info:
        dam.download(asset)
    assert info.value.record_key == "7" and "checksum" in info.value.reason


def test_storefront_cursor_pagination_and_cost_bucket_pacing(fake: Fake) -> None:
    def node(n: int, handle: str, status: str) -> dict:
        return {"id": f"gid://shopify/Product/{n}", "handle": handle, "status": status, "tags": [], "options": [],
                "variants": {"nodes": [], "pageInfo": {"hasNextPage": False}}, "media": {"nodes": []}}

    pages = {None: ([node(1, "a", "ACTIVE")], "abc"), "abc": ([node(2, "b", "DRAFT")], None)}
    seen: list[dict] = []
    answers = iter(["throttled"] + ["ok"] * 5)

    def graphql(q: dict, body: bytes, h: dict) -> Reply:
        request = json.loads(body)
        seen.append(request)
        cost = requested_cost(request["query"], request["variables"])
        if next(answers) == "throttled":
            return j(200, {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                           "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": None,
                                                   "throttleStatus": {"maximumAvailable": 1000.0,
                                                                      "currentlyAvailable": cost - 50,
                                                                      "restoreRate": 100.0}}}})
        rows, nxt = pages[request["variables"]["after"]]
        status = {"maximumAvailable": 1000.0, "currentlyAvailable": 10.0, "restoreRate": 100.0}
        return j(200, {"data": {"products": {"nodes": rows, "pageInfo": {"hasNextPage": bool(nxt), "endCursor": nxt}}},
                       "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": 12,
                                               "throttleStatus": status}}})

    fake.routes[("POST", "/storefront/admin/api/2026-04/graphql.json")] = graphql
    slept: list[float] = []
    shop = StorefrontClient(f"{fake.base}/storefront", "shpat_tok_123", FAST, sleep=slept.append)
    pages_read = list(shop.iter_products(updated_at_min="2026-01-01T00:00:00Z"))
    assert [p.records[0]["handle"] for p in pages_read] == ["a", "b"]
    assert [p.records[0]["id"] for p in pages_read] == [1, 2] and pages_read[1].records[0]["status"] == "draft"
    assert [p.cursor for p in pages_read] == ["abc", None]
    assert all(r["variables"]["query"] == "updated_at:>='2026-01-01T00:00:00Z'" for r in seen)
    # the THROTTLED answer was retried once its points were back, and counted
    assert shop.throttled_answers == 1 and shop.graphql_requests == 3
    # the shop said 10 points were left: the next page waited until its requested cost was back in the bucket
    cost = requested_cost(seen[-1]["query"], seen[-1]["variables"])
    assert cost <= 1000 and any(abs(s - (cost - 10) / 100.0) < 0.05 for s in slept)
    assert shop.throttled_seconds >= (cost - 10) / 100.0 - 0.05



def test_throttling_is_waited_out_without_using_up_the_retry_budget(fake: Fake) -> None:
    """A budget shared with other processes (a Shopify app's cost bucket) throttles a client more often than its
    error retries allow: the waits the system asks for are flow control, bounded in total, not failures."""
    answers = iter([429] * 7 + [200])
    fake.routes[("GET", "/shared")] = lambda q, b, h: (j(next(answers), {"n": 1}, **{"Retry-After": "0.02"}))
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=3, base=0.001, cap=0.002, max_throttled_wait=5.0)
    client = HttpClient(fake.base, options=ClientOptions(retry=policy, read_timeout=2), sleep=slept.append)
    assert client.get_json("/shared") == {"n": 1}  # 7 throttles > 3 attempts, all waited out
    assert len(slept) == 7 and all(s >= 0.02 for s in slept)

    # past the throttle budget it is a transient failure like any other, after the ordinary attempts
    fake.routes[("GET", "/shared")] = lambda q, b, h: j(429, {}, **{"Retry-After": "0.02"})
    tight = HttpClient(fake.base, options=ClientOptions(retry=RetryPolicy(max_attempts=3, base=0.001, cap=0.002,
                                                                          max_throttled_wait=0.1), read_timeout=2),
                       sleep=slept.append)
    with pytest.raises(TransientError, match="gave up after 3 attempt"):
        tight.get_json("/shared")
