"""The running sandbox's shared state: database engine, run-time settings, limits, write lock, change feed."""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, func, select

from catalog_sync_sandbox import db
from catalog_sync_sandbox.concurrency import METERED, Meter

#: The credentials every fresh sandbox accepts, per system, in the field names of
#: ``catalog_sync.connectors.credentials``. They guard nothing real: the sandbox binds to loopback.
DEFAULT_CREDENTIALS: Final[dict[str, dict[str, str]]] = {
    "erp": {"api_key": "erp-sandbox-key"},
    "pim": {
        "client_id": "catalog_sync",
        "client_secret": "pim-sandbox-secret",
        "username": "catalog_sync",
        "password": "pim-sandbox-password",
    },
    "dam": {"api_key": "dam-sandbox-key"},
    "storefront": {"access_token": "shpat_sandbox_token"},
    "supplier": {"api_key": "supplier-sandbox-key"},
    # a Fastly API token and the id of the service that caches the shop's pages (not a secret)
    "cdn": {"api_token": "cdn-sandbox-token", "service_id": "SbxCdnSrv0CatalogSync1"},
}
#: The second sales channel's credentials (an Adobe Commerce integration's access token, sent as a Bearer token).
#: Apart from DEFAULT_CREDENTIALS, which holds the systems the flows and airflow_settings.yaml configure.
CHANNEL_CREDENTIALS: Final[dict[str, dict[str, str]]] = {
    "adobe_commerce": {"access_token": "adobe-sandbox-integration-token"},
}

#: Shopify plans: GraphQL Admin bucket (points, restored per second) and REST call limit (calls, drained per second).
STOREFRONT_PLANS: Final[dict[str, dict[str, float]]] = {
    "standard": {"storefront_points_max": 1000, "storefront_points_restore_per_s": 100.0,
                 "storefront_bucket_size": 40, "storefront_leak_per_s": 2.0},
    "advanced": {"storefront_points_max": 2000, "storefront_points_restore_per_s": 200.0,
                 "storefront_bucket_size": 80, "storefront_leak_per_s": 4.0},
    "plus": {"storefront_points_max": 10000, "storefront_points_restore_per_s": 1000.0,
             "storefront_bucket_size": 400, "storefront_leak_per_s": 20.0},
    "enterprise": {"storefront_points_max": 20000, "storefront_points_restore_per_s": 2000.0,
                   "storefront_bucket_size": 400, "storefront_leak_per_s": 20.0},
}


@dataclass
class SandboxSettings:
    """Knobs a test turns at run time through ``PUT /_sandbox/settings`` (for example to force token expiry)."""

    token_lifetime_s: int = 3600
    refresh_token_lifetime_s: int = 14 * 24 * 3600
    #: Akeneo's documented limits: API calls at once per PIM connection and per instance, calls a second per
    #: instance (https://api.akeneo.com/documentation/good-practices.html); 429 beyond.
    pim_max_concurrent: int = 4
    pim_instance_max_concurrent: int = 10
    pim_rate_per_s: int = 100
    storefront_bucket_size: int = 40
    storefront_leak_per_s: float = 2.0
    #: The GraphQL Admin bucket (Shopify standard plan: 1,000 points restoring 100 a second).
    storefront_points_max: int = 1000
    storefront_points_restore_per_s: float = 100.0
    #: Shopify's variant creation throttle: past ``threshold`` variants in the store, at most ``daily_limit`` new
    #: variants a day (UTC). ``storefront_variants_offset`` stands for variants the store holds beyond the
    #: sandbox's own, so a small test can sit just under the threshold.
    storefront_variant_threshold: int = 50_000
    storefront_variant_daily_limit: int = 1000
    storefront_variants_offset: int = 0
    render_cache_ttl_s: int = 300
    webhook_timeout_s: float = 2.0
    erp_page_max: int = 1000
    pim_page_max: int = 100
    pim_batch_max: int = 100
    storefront_page_max: int = 250
    dam_page_max: int = 500

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        for name, value in changes.items():
            current = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"setting {name} needs a non-negative number, got {value!r}")
            setattr(self, name, type(current)(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Bucket:
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)


class SandboxState:
    """Everything the routers share. One per app; thread-safe (sync endpoints run in a thread pool)."""

    def __init__(self, engine: Engine, settings: SandboxSettings | None = None,
                 credentials: dict[str, dict[str, str]] | None = None) -> None:
        from catalog_sync_sandbox.faults import FaultRegistry
        from catalog_sync_sandbox.webhooks import WebhookDispatcher

        self.engine = engine
        self.settings = settings or SandboxSettings()
        #: What a reset returns to: the settings the service was started with (e.g. the storefront plan).
        self.startup_settings = copy.deepcopy(self.settings)
        self.credentials = copy.deepcopy(credentials or DEFAULT_CREDENTIALS)
        for name, channel in CHANNEL_CREDENTIALS.items():
            self.credentials.setdefault(name, dict(channel))
        # one writer at a time: keeps the change feed gap-free and SQLite free of "database is locked"
        self.write_lock = threading.RLock()
        self.faults = FaultRegistry()
        self.webhooks = WebhookDispatcher(self)
        self._limits = threading.Lock()
        #: Requests in flight per system (``catalog_sync_sandbox.concurrency``); the PIM's per connection.
        self.concurrency: dict[str, Meter] = {system: Meter() for system in METERED}
        self._pim_connections: dict[str, str] = {}
        self._pim_window: deque[float] = deque()
        self._buckets: dict[str, _Bucket] = {}
        self._graphql_buckets: dict[str, _Bucket] = {}
        self.storefront_bulk: Any = None
        #: New variants booked against the daily creation allowance, by UTC day (the variant throttle).
        self.storefront_variants_created: dict[str, int] = {}

    # -------------------------------------------------------------------------------------------- limits
    def reset_limits(self) -> None:
        for meter in self.concurrency.values():
            meter.reset()
        with self._limits:
            self._pim_connections.clear()
            self._pim_window.clear()
            self._buckets.clear()
            self._graphql_buckets.clear()
        self.storefront_variants_created.clear()
        self.storefront_bulk = None  # staged uploads and bulk operations (catalog_sync_sandbox.storefront_graphql)

    def pim_connection(self, token: str) -> str | None:
        """The PIM connection (client id) an access token was issued to; None for a token the PIM never issued."""
        with self._limits:
            known = self._pim_connections.get(token)
        if known is not None:
            return known
        with self.engine.connect() as conn:
            client_id = conn.execute(select(db.pim_token.c.client_id).where(
                db.pim_token.c.token == token, db.pim_token.c.kind == "access")).scalar()
        if client_id is None:
            return None
        with self._limits:
            self._pim_connections[token] = str(client_id)
        return str(client_id)

    def pim_enter(self, connection: str) -> float | None:
        """Admit one PIM API call of ``connection``; returns a Retry-After in seconds when it must get 429: a fifth
        call in flight on the connection, an eleventh on the instance, or past the instance's calls a second."""
        if not self.concurrency["pim"].enter(connection, limit=self.settings.pim_max_concurrent,
                                             total_limit=self.settings.pim_instance_max_concurrent):
            return 1.0
        now = time.monotonic()
        with self._limits:
            window = self._pim_window
            while window and now - window[0] >= 1.0:
                window.popleft()
            if self.settings.pim_rate_per_s and len(window) >= self.settings.pim_rate_per_s:
                wait = max(0.001, 1.0 - (now - window[0]))
            else:
                window.append(now)
                return None
        self.concurrency["pim"].leave(connection)
        return wait

    def pim_leave(self, connection: str) -> None:
        self.concurrency["pim"].leave(connection)

    def concurrency_report(self) -> dict[str, dict[str, Any]]:
        """``GET /_sandbox/concurrency``: per system, requests in flight, the peak since the last reset, refusals,
        and the limit the system enforces (None: it enforces none). The PIM's ``connections`` are per client id."""
        out: dict[str, dict[str, Any]] = {}
        for system, meter in self.concurrency.items():
            snap = meter.snapshot()
            keys = snap.pop("keys")
            entry: dict[str, Any] = {**snap, "limit": None}
            if system == "pim":
                entry.update(limit=self.settings.pim_max_concurrent,
                             instance_limit=self.settings.pim_instance_max_concurrent, connections=keys)
            out[system] = entry
        return out

    def storefront_call(self, token: str) -> tuple[bool, int, float]:
        """Leaky bucket per access token: (admitted, level after the call, seconds until one call fits)."""
        size = self.settings.storefront_bucket_size
        leak = self.settings.storefront_leak_per_s
        now = time.monotonic()
        with self._limits:
            bucket = self._buckets.setdefault(token, _Bucket(stamp=now))
            bucket.level = max(0.0, bucket.level - (now - bucket.stamp) * leak)
            bucket.stamp = now
            if bucket.level + 1 > size:
                wait = (bucket.level + 1 - size) / leak if leak else 60.0
                return False, min(size, int(round(bucket.level))), wait
            bucket.level += 1
            return True, int(round(bucket.level)), 0.0

    def storefront_graphql_call(self, token: str, cost: int) -> tuple[bool, dict[str, float]]:
        """Cost-based bucket of the GraphQL Admin API, per access token: (admitted, throttle status).

        A request is admitted when its requested cost is in the bucket (Shopify's rule); sized by
        ``storefront_points_max`` and ``storefront_points_restore_per_s`` (see :data:`STOREFRONT_PLANS`).
        """
        size = float(self.settings.storefront_points_max)
        restore = float(self.settings.storefront_points_restore_per_s)
        now = time.monotonic()
        with self._limits:
            bucket = self._graphql_buckets.setdefault(token, _Bucket(stamp=now))
            bucket.level = max(0.0, bucket.level - (now - bucket.stamp) * restore)
            bucket.stamp = now
            admitted = bucket.level + cost <= size
            if admitted:
                bucket.level += cost
            return admitted, self._throttle_status(bucket, size, restore)

    def storefront_graphql_refund(self, token: str, points: float) -> dict[str, float]:
        """Give back what a request was charged beyond its actual cost; returns the throttle status after."""
        size = float(self.settings.storefront_points_max)
        restore = float(self.settings.storefront_points_restore_per_s)
        now = time.monotonic()
        with self._limits:
            bucket = self._graphql_buckets.setdefault(token, _Bucket(stamp=now))
            bucket.level = max(0.0, bucket.level - (now - bucket.stamp) * restore - max(points, 0.0))
            bucket.stamp = now
            return self._throttle_status(bucket, size, restore)

    @staticmethod
    def _throttle_status(bucket: _Bucket, size: float, restore: float) -> dict[str, float]:
        return {"maximumAvailable": size, "currentlyAvailable": float(int(size - bucket.level)),
                "restoreRate": restore}

    # --------------------------------------------------------------------------------------- change feed
    def emit_change(self, conn: Connection, topic: str, sku: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
        """Append one change inside the caller's transaction; the caller holds :attr:`write_lock`.

        The change is delivered to webhook subscribers only after the caller's commit (see :meth:`committed`).
        """
        seq = (conn.execute(select(func.max(db.erp_change.c.seq))).scalar() or 0) + 1
        row = {"seq": seq, "topic": topic, "sku": sku, "data": data, "committed_at": at}
        conn.execute(db.erp_change.insert().values(**row))
        return {**row, "committed_at": at.isoformat()}

    def committed(self, changes: list[dict[str, Any]]) -> None:
        for change in changes:
            self.webhooks.publish(change)

    def close(self) -> None:
        self.webhooks.stop()
        self.engine.dispose()
