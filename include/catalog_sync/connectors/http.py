"""The HTTP mechanics every connector shares: session, auth, concurrency cap, retries and failure classification.

One table, :data:`CLASSIFICATION`, decides what happens to every failure a connector can meet:

* ``RETRY`` — transient: timeouts, dropped connections, truncated or malformed bodies, 408, 429 and 5xx. The
  client retries with exponential backoff and full jitter, honouring ``Retry-After``; when attempts run out it
  raises :class:`TransientError` (the task fails and Airflow retries it later).
* ``FAIL_FAST`` — configuration or credentials are wrong (400 on a request shape, 401 after a token refresh, 403,
  404 of an endpoint, 413...). Retrying cannot help and hides the problem, so the client raises
  :class:`ConfigurationError` / :class:`AuthError` at once and the run alerts.
* ``DEAD_LETTER`` — one record's data is bad (a per-item 422, a record failing its stream schema). The client
  raises :class:`RecordError` carrying the record key; callers catch it, dead-letter that record and carry on.

Secrets never leave this module in clear: every error message and every ``on_attempt`` report goes through a
:class:`Redactor` that knows the client's credentials.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)


class Disposition(StrEnum):
    """What the caller must do with a failure."""

    RETRY = "retry"
    FAIL_FAST = "fail_fast"
    DEAD_LETTER = "dead_letter"


class FailureKind(StrEnum):
    """Failures that are not an HTTP status code."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, or dropped before or during the body
    MALFORMED_BODY = "malformed_body"  # a 2xx whose body cannot be parsed: a truncated page, a garbled proxy answer
    AUTH_EXPIRED = "auth_expired"  # 401 once more after the token was refreshed
    ITEM_REJECTED = "item_rejected"  # one line of a batch answered 422
    RECORD_INVALID = "record_invalid"  # one record read from a system fails its stream schema


#: The classification table. Keys are HTTP status codes or :class:`FailureKind` values; :func:`classify` falls back
#: to RETRY for any other 5xx and FAIL_FAST for any other 4xx.
CLASSIFICATION: Final[Mapping[int | FailureKind, Disposition]] = {
    # transient: the same request can succeed later
    408: Disposition.RETRY,  # the server timed out waiting for us
    425: Disposition.RETRY,  # too early (replay protection); later is fine
    429: Disposition.RETRY,  # rate limit or concurrency limit; Retry-After says when
    500: Disposition.RETRY,
    502: Disposition.RETRY,
    503: Disposition.RETRY,
    504: Disposition.RETRY,
    FailureKind.TIMEOUT: Disposition.RETRY,
    FailureKind.CONNECTION: Disposition.RETRY,
    FailureKind.MALFORMED_BODY: Disposition.RETRY,  # never half-consume a page: read it again whole
    # configuration or credentials: retrying hides a broken deployment
    400: Disposition.FAIL_FAST,  # the request shape is wrong: a bug or a changed API, not the record
    401: Disposition.FAIL_FAST,  # only reached after one token refresh was tried (see AuthStrategy)
    403: Disposition.FAIL_FAST,
    404: Disposition.FAIL_FAST,  # of an endpoint; a record lookup declares 404 as an expected answer instead
    405: Disposition.FAIL_FAST,
    406: Disposition.FAIL_FAST,
    413: Disposition.FAIL_FAST,  # batch larger than the destination accepts: the batch size is misconfigured
    415: Disposition.FAIL_FAST,
    FailureKind.AUTH_EXPIRED: Disposition.FAIL_FAST,
    # one record's data is bad: dead-letter it, keep the batch going
    409: Disposition.DEAD_LETTER,  # the record conflicts with the target's state (duplicate handle, SKU...)
    422: Disposition.DEAD_LETTER,
    FailureKind.ITEM_REJECTED: Disposition.DEAD_LETTER,
    FailureKind.RECORD_INVALID: Disposition.DEAD_LETTER,
}


def classify(failure: int | FailureKind) -> Disposition:
    """The disposition of one failure: an HTTP status code (>= 400) or a :class:`FailureKind`."""
    if failure in CLASSIFICATION:
        return CLASSIFICATION[failure]
    if isinstance(failure, int) and failure >= 500:
        return Disposition.RETRY
    return Disposition.FAIL_FAST


# --------------------------------------------------------------------------------------------------- exceptions


class ConnectorError(Exception):
    """Base of every connector failure. The message is already redacted."""

    disposition: Disposition = Disposition.FAIL_FAST

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.system = system
        self.method = method
        self.path = path
        self.status = status
        self.attempts = attempts
        #: Per-record results of a write that stopped half way, so the engine can still audit what was done.
        self.partial_results: list[Any] = []


class TransientError(ConnectorError):
    """The system kept failing transiently until the attempts ran out."""

    disposition = Disposition.RETRY


class ConfigurationError(ConnectorError):
    """The request cannot succeed as configured (bad shape, unknown endpoint, batch too large...)."""

    disposition = Disposition.FAIL_FAST


class AuthError(ConfigurationError):
    """Credentials are missing, wrong, or not allowed to do this."""


class RecordError(ConnectorError):
    """One record's data is bad; dead-letter it and continue with the others."""

    disposition = Disposition.DEAD_LETTER

    def __init__(self, record_key: str, reason: str, *, record: Any = None, **kwargs: Any) -> None:
        super().__init__(f"record {record_key!r}: {reason}", **kwargs)
        self.record_key = record_key
        self.reason = reason
        self.record = record


# ---------------------------------------------------------------------------------------------------- redaction

#: Headers whose values are credentials wherever they appear.
SENSITIVE_HEADERS: Final[frozenset[str]] = frozenset(
    {"authorization", "x-api-key", "x-shopify-access-token", "fastly-key", "proxy-authorization", "cookie",
     "set-cookie"}
)
_MASK: Final[str] = "***"
# Catch credentials we were not told about: bearer tokens and key=value pairs with a secret-sounding key.
_PATTERNS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|password|api_key|apikey|token)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\"'&\s,}]+"
    ),
)


class Redactor:
    """Masks known secrets and anything that looks like a credential in text bound for a log or an error."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Register more secrets (a freshly issued token, say). Very short values are ignored: masking every
        ``a`` in a message would make it unreadable while protecting nothing."""
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)  # longest first: a secret may contain another
        for secret in secrets:
            text = text.replace(secret, _MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) + _MASK) if m.lastindex else _MASK, text)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``headers`` with credential headers masked."""
        return {k: (_MASK if k.lower() in SENSITIVE_HEADERS else self(v)) for k, v in headers.items()}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """One-off redaction of ``text`` against ``secrets`` and the generic credential patterns."""
    return Redactor(secrets)(text)


# ------------------------------------------------------------------------------------------------- request paths

#: Segments every URL resolver treats as "this folder" and "the parent folder" (RFC 3986, section 5.2.4).
_DOT_SEGMENTS: Final[frozenset[str]] = frozenset({".", ".."})


def path_segment(value: object) -> str:
    """``value`` as exactly one URL path segment, for an identifier placed in a request path.

    Every character outside the unreserved set is percent-encoded (``quote(value, safe="")``): a SKU holding
    ``/``, ``?``, ``#``, ``%`` or a space then addresses its own record, where raw it would reach another path, a
    query string or a fragment of the API (``MH01?x=1`` read as ``MH01``, ``../items`` as the item list).

    ``""``, ``.`` and ``..`` are refused with :class:`RecordError`: no encoding keeps them one segment (``.`` is
    unreserved, so HTTP clients decode ``%2E`` back and then resolve the dot segment), so no record can be
    addressed by them and sending them would address a collection instead.
    """
    text = str(value)
    if text == "" or text in _DOT_SEGMENTS:
        raise RecordError(text or "<empty>", "an identifier that cannot name a single URL path segment")
    return quote(text, safe="")


# ------------------------------------------------------------------------------------------------ retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS architecture blog): attempt n waits U(0, min(cap, base*2^(n-1))).

    A ``Retry-After`` answer is honoured as a floor, with up to ``base`` seconds of jitter on top so that clients
    throttled together do not all come back in the same instant; one longer than ``max_retry_after`` is not
    waited out (the attempt fails as transient and the task is retried later by the scheduler).

    Being throttled (a 429, or a GraphQL THROTTLED answer, with the wait the system asked for) is flow control,
    not failure: when several processes share one budget (a storefront app's cost bucket is per app and shop, not
    per client), the system, not this client, knows when the next request fits. Such answers do not use up
    ``max_attempts``; they are waited out for up to ``max_throttled_wait`` seconds in total per request, after which
    the request fails as transient like any other.
    """

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    max_throttled_wait: float = 300.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) when the server gave no hint."""
        return rng.uniform(0.0, min(self.cap, self.base * (2 ** (attempt - 1))))

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is None:
            return self.backoff(attempt, rng)
        return retry_after + rng.uniform(0.0, min(self.cap, self.base))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date. None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# ------------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, reported to ``on_attempt`` for the audit trail and the time-waiting-on-systems metric."""

    system: str
    method: str
    path: str
    status: int | None  # None when no answer came back (timeout, connection dropped)
    attempt: int
    elapsed: float  # seconds spent in the request itself
    error: str | None = None  # FailureKind or "http_<status>" when the attempt failed
    waited: float = 0.0  # seconds of backoff slept after this attempt before the next one


AttemptCallback = Callable[[Attempt], None]


@dataclass(frozen=True)
class ClientOptions:
    """Tunables shared by every connector; each connector adds its own defaults (batch size, page size)."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_concurrency: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    page_size: int | None = None  # None: the connector's default
    batch_size: int | None = None  # None: the destination's maximum
    on_attempt: AttemptCallback | None = None
    user_agent: str = "catalog-sync/0.1"
    seed: int | None = None  # fixes the jitter, for tests


@dataclass(frozen=True)
class HttpResult:
    """A fully read answer. ``body`` is the parsed JSON (or None); ``content`` the raw bytes."""

    status: int
    headers: Mapping[str, str]
    body: Any
    content: bytes
    url: str
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class AuthStrategy(Protocol):
    """How a client proves who it is; see ``ApiKeyAuth`` and ``pim.AkeneoOAuth``."""

    def apply(self, client: HttpClient, headers: dict[str, str]) -> None:
        """Add credentials to an outgoing request's headers (fetching or refreshing a token if needed)."""

    def on_unauthorized(self, client: HttpClient, result: HttpResult, sent: Mapping[str, str]) -> bool:
        """Called on a 401 to the request sent with headers ``sent``. True when credentials were renewed (or
        will be by the next ``apply``) and the request is worth sending once more."""


class ApiKeyAuth:
    """A static key in a header (ERP, DAM, supplier portal: ``X-Api-Key``; Shopify: ``X-Shopify-Access-Token``)."""

    def __init__(self, key: str, header: str = "X-Api-Key") -> None:
        if not key:
            raise AuthError(f"no credential configured for header {header}")
        self._key = key
        self.header = header

    def __repr__(self) -> str:
        return f"ApiKeyAuth(header={self.header!r}, key=***)"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._key,)

    def apply(self, client: HttpClient, headers: dict[str, str]) -> None:
        headers[self.header] = self._key

    def on_unauthorized(self, client: HttpClient, result: HttpResult, sent: Mapping[str, str]) -> bool:
        return False  # a static key cannot be renewed


class _Retryable(Exception):
    """Internal: one attempt failed in a way the table says to retry."""

    def __init__(
        self, kind: int | FailureKind, detail: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class MalformedResponse(Exception):
    """Raised by a ``validate`` callback: the body arrived but is not what a complete answer looks like."""


class RetryLater(Exception):
    """Raised by a ``validate`` callback: a 2xx answer that says "throttled" in its body (Shopify's GraphQL API
    does this); retried like a 429 after ``retry_after`` seconds."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


# -------------------------------------------------------------------------------------------------------- client


class HttpClient:
    """A connection-pooled, concurrency-capped, retrying JSON-over-HTTP client for one external system.

    Thread-safe: one instance may serve several worker threads; the semaphore keeps at most
    ``options.max_concurrency`` requests in flight (the PIM refuses a fifth with 429), and the connection pool is
    sized to match so no thread waits on a socket that the cap would let it use.
    """

    system: str = "http"

    def __init__(
        self,
        base_url: str,
        auth: AuthStrategy | None = None,
        options: ClientOptions | None = None,
        *,
        secrets: Iterable[str | None] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{self.system}: base URL must be http(s)://..., got {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self.auth = auth
        self.options = options or ClientOptions()
        self.redactor = Redactor([*secrets, *getattr(auth, "secrets", ())])
        self._sleep = sleep
        self._rng = random.Random(self.options.seed)
        self._rng_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.options.max_concurrency)
        self.session = requests.Session()
        # urllib3 retries are off: every retry decision goes through CLASSIFICATION, and each attempt is reported.
        adapter = HTTPAdapter(
            pool_connections=1, pool_maxsize=self.options.max_concurrency, max_retries=0, pool_block=True
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": self.options.user_agent, "Accept": "application/json"})
        self._origin = urlsplit(self.base_url)[:2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- hooks for subclasses

    def before_request(self) -> None:
        """Called before each attempt, outside the concurrency slot (the storefront slows down here)."""

    def after_response(self, response: requests.Response) -> None:
        """Called after each answer, whatever its status (the storefront reads its call-limit header here)."""

    # ----------------------------------------------------------------------------------------------------- helpers

    def url(self, path: str) -> str:
        """Absolute URL of ``path``, relative to the base URL; an absolute ``path`` must share its origin."""
        if path.startswith(("http://", "https://")):
            if urlsplit(path)[:2] != self._origin:
                # a pagination link to another host would receive our credentials
                raise ConfigurationError(f"{self.system}: refusing to follow a link off {self.base_url}: {path}")
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def _report(self, attempt: Attempt) -> None:
        if self.options.on_attempt is None:
            return
        try:
            self.options.on_attempt(attempt)
        except Exception:  # an audit hook failing must not turn a good request into a failed one
            log.exception("%s: on_attempt callback failed", self.system)

    def _error(
        self, cls: type[ConnectorError], message: str, method: str, path: str, status: int | None, attempts: int
    ) -> ConnectorError:
        return cls(
            self.redactor(f"{self.system}: {method} {path}: {message}"),
            system=self.system,
            method=method,
            path=path,
            status=status,
            attempts=attempts,
        )

    def _snippet(self, content: bytes, limit: int = 300) -> str:
        return self.redactor(content[:limit].decode("utf-8", "replace"))

    # ----------------------------------------------------------------------------------------------------- request

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201, 204),
        parse: str = "json",
        validate: Callable[[HttpResult], None] | None = None,
        record_key: str | None = None,
        authenticate: bool = True,
    ) -> HttpResult:
        """Send one logical request, retrying per :data:`CLASSIFICATION`, and return the fully read answer.

        Args:
            expect: statuses that are answers rather than failures (add 404 to look a record up).
            parse: ``"json"`` (a non-empty body must parse, else the attempt is retried), ``"text"`` or ``"bytes"``.
            validate: extra completeness check on a 2xx answer; raising :class:`MalformedResponse` retries.
            record_key: the record this request writes; a 409/422 then raises :class:`RecordError` for it.
            authenticate: False for the token endpoint itself.
        """
        method = method.upper()
        url = self.url(path)
        display_path = urlsplit(url).path
        policy = self.options.retry
        refreshed = False
        attempt = 0
        throttled_wait = 0.0  # seconds waited out on the system's own word, outside the attempt budget
        last: _Retryable | None = None
        while attempt < policy.max_attempts:
            attempt += 1
            send_headers: dict[str, str] = dict(headers or {})
            if authenticate and self.auth is not None:
                self.auth.apply(self, send_headers)
            self.before_request()
            started = time.monotonic()
            status: int | None = None
            try:
                with self._slots:
                    result = self._send(method, url, params, json_body, data, send_headers, parse)
                status = result.status
                self._check(result, expect, validate)
            except _Retryable as exc:
                elapsed = time.monotonic() - started
                last = exc
                wait = 0.0
                if exc.kind == 429 and exc.retry_after is not None and exc.retry_after <= policy.max_retry_after:
                    with self._rng_lock:
                        wait = policy.delay(attempt, exc.retry_after, self._rng)
                    if throttled_wait + wait <= policy.max_throttled_wait:
                        # throttled on the system's word: flow control, so the retry budget stays whole (each
                        # wait counts at least 50 ms against the throttle budget, so a "retry now" cannot spin)
                        throttled_wait += max(wait, 0.05)
                        self._report(Attempt(self.system, method, display_path, exc.status, attempt, elapsed,
                                             "http_429", wait))
                        log.info("%s: %s %s throttled (%s); waiting %.2fs as the system asked (%.0fs of %.0fs)",
                                 self.system, method, display_path, self.redactor(str(exc)), wait, throttled_wait,
                                 policy.max_throttled_wait)
                        self._sleep(wait)
                        attempt -= 1
                        continue
                    wait = 0.0
                if attempt < policy.max_attempts:
                    if exc.retry_after is not None and exc.retry_after > policy.max_retry_after:
                        self._report(Attempt(self.system, method, display_path, exc.status, attempt, elapsed,
                                             str(exc.kind)))
                        break
                    with self._rng_lock:
                        wait = policy.delay(attempt, exc.retry_after, self._rng)
                kind = exc.kind if isinstance(exc.kind, FailureKind) else f"http_{exc.kind}"
                self._report(Attempt(self.system, method, display_path, exc.status, attempt, elapsed, str(kind), wait))
                log.info(
                    "%s: %s %s attempt %d/%d failed (%s); retrying in %.2fs",
                    self.system, method, display_path, attempt, policy.max_attempts,
                    self.redactor(str(exc)), wait,
                )
                if wait and attempt < policy.max_attempts:
                    self._sleep(wait)
                continue
            elapsed = time.monotonic() - started
            if status == 401 and 401 not in expect:
                self._report(Attempt(self.system, method, display_path, status, attempt, elapsed, "http_401"))
                if authenticate and self.auth is not None and not refreshed and self.auth.on_unauthorized(self, result, send_headers):
                    refreshed = True
                    attempt -= 1  # the refresh is not the system's fault: the retry budget stays whole
                    continue
                raise self._error(
                    AuthError, f"401 unauthorized{' after a token refresh' if refreshed else ''}: "
                    f"{self._snippet(result.content)}", method, display_path, status, attempt,
                )
            if status is not None and status >= 400 and status not in expect:
                self._report(Attempt(self.system, method, display_path, status, attempt, elapsed, f"http_{status}"))
                disposition = classify(status)
                detail = self._snippet(result.content)
                if disposition is Disposition.DEAD_LETTER:
                    if record_key is None:
                        # a record-level refusal on a request that is not about one record means we built it wrong
                        raise self._error(ConfigurationError, f"{status}: {detail}", method, display_path, status,
                                          attempt)
                    raise RecordError(record_key, self.redactor(f"{status}: {detail}"), system=self.system,
                                      method=method, path=display_path, status=status, attempts=attempt)
                cls = AuthError if status in (401, 403) else ConfigurationError
                raise self._error(cls, f"{status}: {detail}", method, display_path, status, attempt)
            self._report(Attempt(self.system, method, display_path, status, attempt, elapsed))
            return result
        assert last is not None
        error = self._error(
            TransientError, f"gave up after {attempt} attempt(s): {last}", method, display_path, last.status, attempt
        )
        raise error

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: bytes | str | None,
        headers: dict[str, str],
        parse: str,
    ) -> HttpResult:
        timeout = (self.options.connect_timeout, self.options.read_timeout)
        try:
            # stream=False reads the whole body here, inside the try: a connection dropped mid-body raises
            # ChunkedEncodingError / ConnectionError (urllib3 enforces Content-Length) and the page is retried whole.
            response = self.session.request(
                method, url, params=params, json=json_body, data=data, headers=headers, timeout=timeout
            )
            content = response.content
        except requests.Timeout as exc:
            raise _Retryable(FailureKind.TIMEOUT, f"timed out: {type(exc).__name__}") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise _Retryable(FailureKind.CONNECTION, f"connection failed: {type(exc).__name__}") from None
        try:
            self.after_response(response)
        except Exception:
            log.exception("%s: after_response hook failed", self.system)
        body: Any = None
        if 200 <= response.status_code < 300:
            if parse == "json" and content.strip():
                try:
                    body = json.loads(content)
                except ValueError:
                    raise _Retryable(
                        FailureKind.MALFORMED_BODY,
                        f"{response.status_code} with an unparseable JSON body ({len(content)} bytes)",
                        status=response.status_code,
                    ) from None
            elif parse == "text":
                body = content.decode(response.encoding or "utf-8", "replace")
        else:
            try:
                body = json.loads(content) if content.strip() else None
            except ValueError:
                body = None
        result = HttpResult(
            status=response.status_code,
            headers=response.headers,  # case-insensitive: servers spell header names as they like
            body=body,
            content=content,
            url=response.url,
            links=dict(response.links),
        )
        if classify(response.status_code) is Disposition.RETRY and response.status_code >= 400:
            raise _Retryable(
                response.status_code,
                f"{response.status_code}: {self._snippet(content, 200)}",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        return result

    @staticmethod
    def _check(result: HttpResult, expect: tuple[int, ...], validate: Callable[[HttpResult], None] | None) -> None:
        if validate is not None and 200 <= result.status < 300 and result.status in expect:
            try:
                validate(result)
            except MalformedResponse as exc:
                raise _Retryable(FailureKind.MALFORMED_BODY, str(exc), status=result.status) from None
            except RetryLater as exc:
                raise _Retryable(429, str(exc), status=result.status, retry_after=exc.retry_after) from None

    # -------------------------------------------------------------------------------------------- conveniences

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request("GET", path, params=params, **kwargs).body


def require_keys(*keys: str) -> Callable[[HttpResult], None]:
    """A ``validate`` callback: the JSON body must be an object holding ``keys`` (a cut-off page fails this)."""

    def check(result: HttpResult) -> None:
        if not isinstance(result.body, dict):
            raise MalformedResponse(f"expected a JSON object, got {type(result.body).__name__}")
        missing = [k for k in keys if k not in result.body]
        if missing:
            raise MalformedResponse(f"answer lacks {missing}")

    return check
