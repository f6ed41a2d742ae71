"""Faults switched on per system at run time: 5xx, 429 storms, latency, timeouts, malformed records, dropped pages.

Implemented as one pure ASGI middleware so that it can do what a real flaky network or proxy does and a FastAPI
route cannot: answer slowly, or send half a body and cut the connection. Every random draw comes from a
``random.Random(seed)`` per system, and each request draws the same number of values whatever happens, so a given
seed and request sequence always meets the same faults.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, Field, field_validator

from catalog_sync.domain import System

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The systems faults can be switched on for: the five (and the CDN), plus the second sales channel, which is not a
#: ``System`` of the flows yet (catalog_sync.connectors.adobe_commerce).
SYSTEMS: Final[tuple[str, ...]] = (*(s.value for s in System), "adobe_commerce")
#: List keys, in the order they are looked for, of every paged answer the sandbox gives.
LIST_KEYS: Final[tuple[str, ...]] = (
    "items", "products", "assets", "submissions", "changes", "stock", "prices", "product_models",
)
ID_KEYS: Final[tuple[str, ...]] = ("identifier", "code", "sku", "id", "seq")


class RateLimitStorm(BaseModel):
    every: int = Field(5, ge=1, description="every Nth request to the system gets 429")
    retry_after: float = Field(1, ge=0, description="seconds announced in Retry-After")


class FaultConfig(BaseModel):
    """One system's faults; every rate is a probability per request (per record for ``malformed_rate``)."""

    error_rate: float = Field(0.0, ge=0, le=1, description="share of requests answered with a server error")
    error_statuses: list[int] = Field(
        default_factory=lambda: [500, 502, 503], min_length=1,
        description="the server errors drawn from, evenly (e.g. [503] for a system in maintenance throughout)",
    )
    rate_limit_storm: RateLimitStorm | None = None
    latency_ms: int = Field(0, ge=0, le=600_000, description="added to every request")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="share of requests that sleep timeout_s first")
    timeout_s: float = Field(30.0, ge=0, le=3600)
    malformed_rate: float = Field(
        0.0, ge=0, le=1, description="share of records in list pages corrupted (identifier dropped or a string in "
        "a number field)"
    )
    drop_mid_page_rate: float = Field(
        0.0, ge=0, le=1, description="share of GET answers cut after half the body (connection closed)"
    )
    seed: int = 0

    @field_validator("error_statuses")
    @classmethod
    def _server_errors(cls, statuses: list[int]) -> list[int]:
        wrong = [s for s in statuses if not 500 <= s <= 599]
        if wrong:
            raise ValueError(f"error_statuses must be server errors (500-599), not {wrong}")
        return statuses


@dataclass
class _Decision:
    storm: RateLimitStorm | None = None
    error_status: int | None = None
    latency_s: float = 0.0
    timeout_s: float = 0.0
    corrupt: random.Random | None = None
    malformed_rate: float = 0.0
    drop: bool = False

    @property
    def names(self) -> list[str]:
        out = []
        if self.storm:
            out.append("rate_limit_storm")
        if self.error_status:
            out.append("error")
        if self.timeout_s:
            out.append("timeout")
        if self.drop:
            out.append("drop_mid_page")
        return out


class FaultRegistry:
    """Per-system fault configuration and its seeded random stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, FaultConfig] = {}
        self._rngs: dict[str, random.Random] = {}
        self._counts: dict[str, int] = {}

    def get(self, system: str) -> FaultConfig | None:
        return self._configs.get(system)

    def set(self, system: str, config: FaultConfig) -> None:
        with self._lock:
            self._configs[system] = config
            self._rngs[system] = random.Random(config.seed)
            self._counts[system] = 0

    def clear(self, system: str | None = None) -> None:
        with self._lock:
            for name in [system] if system else list(self._configs):
                self._configs.pop(name, None)
                self._rngs.pop(name, None)
                self._counts.pop(name, None)

    def all(self) -> dict[str, FaultConfig]:
        return dict(self._configs)

    def decide(self, system: str, method: str) -> _Decision | None:
        with self._lock:
            config = self._configs.get(system)
            if config is None:
                return None
            rng = self._rngs[system]
            self._counts[system] += 1
            count = self._counts[system]
            # always draw the same five values, so one fault firing never shifts another's sequence
            r_error, r_status, r_timeout, r_drop, r_corrupt = (rng.random() for _ in range(5))
        decision = _Decision(latency_s=config.latency_ms / 1000)
        storm = config.rate_limit_storm
        if storm is not None and count % storm.every == 0:
            decision.storm = storm
        elif r_error < config.error_rate:
            decision.error_status = config.error_statuses[int(r_status * len(config.error_statuses))]
        if r_timeout < config.timeout_rate:
            decision.timeout_s = config.timeout_s
        if method == "GET":
            decision.drop = r_drop < config.drop_mid_page_rate
            if config.malformed_rate:
                decision.malformed_rate = config.malformed_rate
                decision.corrupt = random.Random(int(r_corrupt * 2**53))
        return decision


def _system_of(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in SYSTEMS else None


def corrupt_records(body: Any, rng: random.Random, rate: float) -> int:
    """Corrupt records of the first list found in a JSON page; returns how many were corrupted."""
    records: Any = None
    if isinstance(body, dict):
        embedded = body.get("_embedded")
        if isinstance(embedded, dict) and isinstance(embedded.get("items"), list):
            records = embedded["items"]
        else:
            records = next((body[k] for k in LIST_KEYS if isinstance(body.get(k), list)), None)
    if not records:
        return 0
    hit = 0
    for record in records:
        if not isinstance(record, dict) or rng.random() >= rate:
            continue
        numbers = [k for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)]
        key = next((k for k in ID_KEYS if k in record), None)
        if numbers and (key is None or rng.random() < 0.5):
            record[numbers[0]] = "not-a-number"
        elif key is not None:
            del record[key]
        else:
            continue
        hit += 1
    return hit


class FaultMiddleware:
    """Applies the configured faults to requests under ``/erp``, ``/pim``, ``/dam``, ``/storefront``, ``/supplier``."""

    def __init__(self, app: ASGIApp, registry_getter: Callable[[], FaultRegistry]) -> None:
        self.app = app
        self.registry_getter = registry_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        system = _system_of(scope["path"])
        decision = self.registry_getter().decide(system, scope["method"]) if system else None
        if decision is None:
            await self.app(scope, receive, send)
            return
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.timeout_s:
            await asyncio.sleep(decision.timeout_s)
        if decision.storm is not None:
            await _json(send, 429, {"code": 429, "message": "Too many requests (injected rate-limit storm)."},
                        [(b"retry-after", _num(decision.storm.retry_after))])
            return
        if decision.error_status is not None:
            await _json(send, decision.error_status,
                        {"code": decision.error_status, "message": "Injected server error."}, [])
            return
        if not decision.drop and decision.corrupt is None:
            await self.app(scope, receive, send)
            return

        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        is_json = any(k.lower() == b"content-type" and b"json" in v for k, v in headers)
        if decision.corrupt is not None and is_json and start.get("status") == 200:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if doc is not None and corrupt_records(doc, decision.corrupt, decision.malformed_rate):
                body = json.dumps(doc).encode("utf-8")
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
        if decision.drop and len(body) > 1:
            # half the promised bytes, then return without finishing: the server closes the connection
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            return
        await send({"type": "http.response.body", "body": body})


def _num(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else f"{value:.3f}").encode()


async def _json(send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
    })
    await send({"type": "http.response.body", "body": body})
