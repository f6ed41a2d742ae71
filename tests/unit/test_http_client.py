"""The shared HTTP client against a scripted local server: retries, Retry-After, classification, redaction."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog_sync.connectors.http import (
    CLASSIFICATION,
    ApiKeyAuth,
    Attempt,
    AuthError,
    ClientOptions,
    ConfigurationError,
    Disposition,
    FailureKind,
    HttpClient,
    HttpResult,
    RecordError,
    Redactor,
    RetryPolicy,
    TransientError,
    classify,
    parse_retry_after,
    path_segment,
    redact,
    require_keys,
)

SECRET = "sk-live-7f3a9c2e1b"

#: One scripted answer: (status, headers, body) or a callable that writes to the handler itself.
Step = tuple[int, dict[str, str], bytes] | Callable[[BaseHTTPRequestHandler], None]


class Script:
    """Per-path queues of answers; the last answer of a queue repeats. Counts hits and in-flight requests."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Step]] = {}
        self.hits: dict[str, int] = {}
        self.headers_seen: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def next(self, path: str) -> Step:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            queue = self.routes.get(path) or [(404, {}, b'{"message": "no route"}')]
            return queue.pop(0) if len(queue) > 1 else queue[0]


def make_handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?")[0]
            with script.lock:
                script.headers_seen.append(dict(self.headers))
                script.in_flight += 1
                script.max_in_flight = max(script.max_in_flight, script.in_flight)
            try:
                step = script.next(path)
                if callable(step):
                    step(self)
                    return
                status, headers, body = step
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                with script.lock:
                    script.in_flight -= 1

        do_GET = do_POST = do_PUT = do_PATCH = _serve

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def ok(body: object, **headers: str) -> Step:
    return (200, dict(headers), json.dumps(body).encode())


class Recorder:
    """Stands in for time.sleep and collects on_attempt reports."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.attempts: list[Attempt] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def client(base: str, rec: Recorder, *, attempts: int = 4, read_timeout: float = 2.0, cap: int = 4) -> HttpClient:
    options = ClientOptions(
        read_timeout=read_timeout,
        connect_timeout=1.0,
        max_concurrency=cap,
        retry=RetryPolicy(max_attempts=attempts, base=0.01, cap=0.05, max_retry_after=30),
        on_attempt=rec.attempts.append,
        seed=1,
    )
    return HttpClient(base, ApiKeyAuth(SECRET), options, sleep=rec.sleep)


# ----------------------------------------------------------------------------------------------- pure pieces


def test_backoff_is_full_jitter_within_exponential_bound() -> None:
    policy = RetryPolicy(base=0.5, cap=4.0)
    rng = random.Random(42)
    for attempt, bound in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(400)]
        assert all(0.0 <= s <= bound for s in samples)
        # full jitter spreads over the whole window, not just near the bound
        assert min(samples) < bound * 0.1 and max(samples) > bound * 0.9


def test_retry_after_is_a_floor_with_bounded_jitter() -> None:
    policy = RetryPolicy(base=0.2, cap=10.0)
    rng = random.Random(0)
    delays = [policy.delay(3, 2.0, rng) for _ in range(200)]
    assert all(2.0 <= d <= 2.2 for d in delays)


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (408, Disposition.RETRY),
        (429, Disposition.RETRY),
        (500, Disposition.RETRY),
        (503, Disposition.RETRY),
        (599, Disposition.RETRY),  # unlisted 5xx
        (FailureKind.TIMEOUT, Disposition.RETRY),
        (FailureKind.CONNECTION, Disposition.RETRY),
        (FailureKind.MALFORMED_BODY, Disposition.RETRY),
        (400, Disposition.FAIL_FAST),
        (401, Disposition.FAIL_FAST),
        (403, Disposition.FAIL_FAST),
        (404, Disposition.FAIL_FAST),
        (413, Disposition.FAIL_FAST),
        (418, Disposition.FAIL_FAST),  # unlisted 4xx
        (FailureKind.AUTH_EXPIRED, Disposition.FAIL_FAST),
        (422, Disposition.DEAD_LETTER),
        (FailureKind.ITEM_REJECTED, Disposition.DEAD_LETTER),
        (FailureKind.RECORD_INVALID, Disposition.DEAD_LETTER),
    ],
)
def test_classification_table(failure: int | FailureKind, expected: Disposition) -> None:
    assert classify(failure) is expected


def test_every_failure_kind_is_in_the_table() -> None:
    assert set(FailureKind) <= set(CLASSIFICATION)


def test_redaction_masks_known_secrets_and_credential_patterns() -> None:
    r = Redactor([SECRET, "abc"])  # "abc" is too short to mask safely
    text = (
        f"key {SECRET} failed; Authorization: Bearer eyJhbGciOi.J9xyz; "
        '{"access_token": "tok123456", "password":"hunter22"} client_secret=s3cr3tvalue&x=1 abc'
    )
    out = r(text)
    for secret in (SECRET, "eyJhbGciOi.J9xyz", "tok123456", "hunter22", "s3cr3tvalue"):
        assert secret not in out
    assert "abc" in out and "x=1" in out and "failed" in out
    assert r.headers({"X-Api-Key": "whatever", "Accept": "application/json"}) == {
        "X-Api-Key": "***",
        "Accept": "application/json",
    }
    assert redact(f"url?api_key={SECRET}") == "url?api_key=***"


def test_client_repr_and_auth_repr_hide_the_key() -> None:
    c = HttpClient("http://127.0.0.1:1/x", ApiKeyAuth(SECRET))
    assert SECRET not in repr(c) and SECRET not in repr(c.auth)


# ------------------------------------------------------------------------------------------ over real HTTP


def test_auth_header_pooling_and_plain_success(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items"] = [ok({"items": [1, 2]})]
    rec = Recorder()
    with client(base, rec) as c:
        for _ in range(3):
            assert c.get_json("items") == {"items": [1, 2]}
    assert script.headers_seen[0]["X-Api-Key"] == SECRET
    assert [a.status for a in rec.attempts] == [200, 200, 200]
    assert rec.sleeps == []
    result = client(base, rec).request("GET", "items")
    assert result.headers["content-type"] == result.headers["Content-Type"] == "application/json"


def test_5xx_is_retried_then_succeeds(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items"] = [(503, {}, b"busy"), (502, {}, b"bad gateway"), ok({"items": []})]
    rec = Recorder()
    assert client(base, rec).get_json("items") == {"items": []}
    assert script.hits["/api/items"] == 3
    assert [(a.status, a.attempt, a.error) for a in rec.attempts] == [
        (503, 1, "http_503"),
        (502, 2, "http_502"),
        (200, 3, None),
    ]
    assert len(rec.sleeps) == 2 and all(0 <= s <= 0.05 for s in rec.sleeps)


@pytest.mark.parametrize("as_date", [False, True])
def test_429_retry_after_is_honoured(server: tuple[str, Script], as_date: bool) -> None:
    base, script = server
    value = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True) if as_date else "3"
    script.routes["/api/items"] = [(429, {"Retry-After": value}, b'{"message": "slow down"}'), ok({"ok": 1})]
    rec = Recorder()
    assert client(base, rec).get_json("items") == {"ok": 1}
    assert len(rec.sleeps) == 1
    low = 3.0 if not as_date else 3.5  # an HTTP date has 1 s resolution and the clock moves on
    assert low <= rec.sleeps[0] <= 5.01 + 0.01
    assert rec.attempts[0].waited == rec.sleeps[0]


def test_retry_after_beyond_the_limit_is_not_waited_out(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items"] = [(429, {"Retry-After": "3600"}, b"{}")]
    rec = Recorder()
    with pytest.raises(TransientError):
        client(base, rec).get_json("items")
    assert rec.sleeps == [] and script.hits["/api/items"] == 1


def test_exhausted_retries_raise_transient_error_without_secrets(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items"] = [(500, {}, f'{{"error": "bad key {SECRET}"}}'.encode())]
    rec = Recorder()
    with pytest.raises(TransientError) as info:
        client(base, rec, attempts=3).get_json("items")
    assert script.hits["/api/items"] == 3
    assert info.value.attempts == 3 and info.value.status == 500
    assert info.value.disposition is Disposition.RETRY
    assert SECRET not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(("status", "exc"), [(400, ConfigurationError), (403, AuthError), (404, ConfigurationError)])
def test_configuration_failures_fail_fast(server: tuple[str, Script], status: int, exc: type[Exception]) -> None:
    base, script = server
    script.routes["/api/items"] = [(status, {}, b'{"message": "nope"}')]
    with pytest.raises(exc) as info:
        client(base, Recorder()).get_json("items")
    assert script.hits["/api/items"] == 1
    assert info.value.disposition is Disposition.FAIL_FAST  # type: ignore[attr-defined]


def test_expected_404_is_an_answer(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items/X"] = [(404, {}, b'{"message": "unknown"}')]
    assert client(base, Recorder()).request("GET", "items/X", expect=(200, 404)).status == 404


def test_422_on_a_record_write_is_a_record_error(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items/A-1"] = [(422, {}, b'{"errors": {"price": ["must be positive"]}}')]
    with pytest.raises(RecordError) as info:
        client(base, Recorder()).request("PUT", "items/A-1", json_body={"price": -1}, record_key="A-1")
    assert info.value.record_key == "A-1" and "must be positive" in info.value.reason
    assert info.value.disposition is Disposition.DEAD_LETTER
    assert script.hits["/api/items/A-1"] == 1


def test_401_refreshes_credentials_once_then_fails_fast(server: tuple[str, Script]) -> None:
    base, script = server
    expired = (401, {}, b'{"code": 401, "message": "The access token provided has expired."}')
    script.routes["/api/ok-after-refresh"] = [expired, ok({"fine": True})]
    script.routes["/api/always-401"] = [expired]

    class Refreshing(ApiKeyAuth):
        refreshes = 0

        def on_unauthorized(self, client: HttpClient, result: HttpResult, sent: object) -> bool:
            type(self).refreshes += 1
            return True

    rec = Recorder()
    c = HttpClient(base, Refreshing(SECRET), ClientOptions(retry=RetryPolicy(base=0.01, cap=0.01)), sleep=rec.sleep)
    assert c.get_json("ok-after-refresh") == {"fine": True}
    assert Refreshing.refreshes == 1
    with pytest.raises(AuthError, match="after a token refresh"):
        c.get_json("always-401")
    assert Refreshing.refreshes == 2 and script.hits["/api/always-401"] == 2


def _drop_mid_body(handler: BaseHTTPRequestHandler) -> None:
    """Promise 2000 bytes, send a few, then cut the connection: a page dropped half way."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "2000")
    handler.end_headers()
    handler.wfile.write(b'{"items": [{"sku": "A"}, {"sk')
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def test_connection_dropped_mid_page_is_retried_never_half_consumed(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items"] = [_drop_mid_body, ok({"items": [{"sku": "A"}, {"sku": "B"}]})]
    rec = Recorder()
    assert client(base, rec).get_json("items") == {"items": [{"sku": "A"}, {"sku": "B"}]}
    assert rec.attempts[0].error == FailureKind.CONNECTION and rec.attempts[0].status is None
    assert script.hits["/api/items"] == 2


def test_malformed_and_incomplete_bodies_are_retried(server: tuple[str, Script]) -> None:
    base, script = server
    script.routes["/api/items"] = [(200, {}, b'{"items": [1, 2'), ok({"other": 1}), ok({"items": [1, 2]})]
    rec = Recorder()
    body = client(base, rec).request("GET", "items", validate=require_keys("items")).body
    assert body == {"items": [1, 2]}
    assert [a.error for a in rec.attempts] == [FailureKind.MALFORMED_BODY, FailureKind.MALFORMED_BODY, None]


def test_read_timeout_is_retried(server: tuple[str, Script]) -> None:
    base, script = server

    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.6)
        ok({"late": True})  # never sent: the client has given up on this attempt

    script.routes["/api/items"] = [slow, ok({"items": []})]
    rec = Recorder()
    assert client(base, rec, read_timeout=0.2).get_json("items") == {"items": []}
    assert rec.attempts[0].error == FailureKind.TIMEOUT


def test_concurrency_cap_bounds_requests_in_flight(server: tuple[str, Script]) -> None:
    base, script = server

    def slowish(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.05)
        body = b"{}"
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    script.routes["/api/items"] = [slowish]
    c = client(base, Recorder(), cap=2)
    threads = [threading.Thread(target=c.get_json, args=("items",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert script.hits["/api/items"] == 8
    assert script.max_in_flight == 2


def test_links_off_the_base_origin_are_refused() -> None:
    c = HttpClient("http://127.0.0.1:9/pim/", ApiKeyAuth(SECRET))
    assert c.url("http://127.0.0.1:9/pim/api?x=1") == "http://127.0.0.1:9/pim/api?x=1"
    assert c.url("api/rest/v1/products") == "http://127.0.0.1:9/pim/api/rest/v1/products"
    with pytest.raises(ConfigurationError):
        c.url("http://evil.example/steal")


def test_path_segment_encodes_every_reserved_character_and_refuses_dot_segments() -> None:
    assert path_segment("MH01-XS-Black") == "MH01-XS-Black"
    assert path_segment("A/B?c=1#d% e") == "A%2FB%3Fc%3D1%23d%25%20e"
    assert path_segment(4711) == "4711"
    # the encoded segment stays one segment when joined onto the base URL
    client = HttpClient("http://erp.example.com/erp")
    assert client.url(f"items/{path_segment('../items')}") == "http://erp.example.com/erp/items/..%2Fitems"
    for bad in ("", ".", ".."):
        with pytest.raises(RecordError):
            path_segment(bad)
