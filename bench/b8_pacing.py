"""Benchmark 8: how well the storefront client paces itself on Shopify's GraphQL cost bucket.

A long publish (``productSet`` batches of 10-variant products, several threads sharing one access token) against
a sandbox shop in its own process, on the standard plan (1,000 points restoring 100 a second) and on Plus (10,000,
1,000 a second). Figures per plan: the share of the restore rate the publish used, and the share of answers that
were THROTTLED. Target: >= 80 % of the restore rate with < 1 % THROTTLED.

The share of the restore rate is (points charged - the bucket's size) / (seconds x restore rate): the bucket starts
full, and those first points are a one-off burst, not a rate. Points charged are the shop's ``actualQueryCost``.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Result, base_args, emit
from bench.sandbox_proc import SandboxProcess

RATE_TARGET = 0.80
THROTTLED_TARGET = 0.01
VARIANTS = 10


def _product(n: int) -> dict[str, Any]:
    sizes = [str(k) for k in range(VARIANTS)]
    return {"handle": f"pace-{n}", "title": f"Pacing {n}", "status": "active",
            "options": [{"name": "Size", "values": sizes}],
            "variants": [{"sku": f"PACE-{n}-{k}", "option1": k, "price": "10.00"} for k in sizes]}


def run_plan(workdir: Path, plan: str, seconds: float, threads: int) -> dict[str, Any]:
    from catalog_sync.connectors import ClientOptions
    from catalog_sync.connectors.storefront import StorefrontClient

    sandbox = SandboxProcess(workdir, f"sandbox-{plan}").start(plan=plan)
    try:
        shop = StorefrontClient(f"{sandbox.url}/storefront", sandbox.credentials["storefront"]["access_token"],
                                ClientOptions(max_concurrency=threads), plan=plan)
        counter = iter(range(10**9))
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        failures: list[str] = []
        written: list[int] = []

        def publish() -> None:
            while time.monotonic() < deadline:
                with lock:
                    batch = [_product(next(counter)) for _ in range(29)]  # one request's worth (34 points each)
                results = shop.upsert_products(batch, existing={})
                failures.extend(r.message or "" for r in results if not r.ok)
                written.append(sum(1 for r in results if r.ok))

        started = time.monotonic()
        workers = [threading.Thread(target=publish) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
        rate, size = shop.plan.restore_rate, shop.plan.maximum_available
        return {
            "seconds": round(elapsed, 1), "requests": shop.graphql_requests, "throttled": shop.throttled_answers,
            "points_charged": shop.points_used, "products": sum(written), "failed_products": len(failures),
            "restore_rate_share": round((shop.points_used - size) / (elapsed * rate), 3),
            "throttled_share": round(shop.throttled_answers / max(shop.graphql_requests, 1), 4),
            "waited_s": round(shop.throttled_seconds, 1),
        }
    finally:
        sandbox.stop()


def main() -> None:
    parser = base_args(__doc__)
    parser.add_argument("--seconds", type=float, help="length of each plan's publish (default 120; quick 30)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--plans", nargs="+", default=["standard", "plus"])
    args = parser.parse_args()
    seconds = args.seconds or (30.0 if args.quick else 120.0)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp:
        for plan in args.plans:
            figures[plan] = run_plan(Path(tmp), plan, seconds, args.threads)
            print(plan, figures[plan], flush=True)
    held = all(f["restore_rate_share"] >= RATE_TARGET and f["throttled_share"] < THROTTLED_TARGET
               for f in figures.values())
    flat = {f"{plan}_{k}": v for plan, f in figures.items() for k, v in f.items()
            if k in ("restore_rate_share", "throttled_share", "requests")}
    emit(Result("pacing", "storefront GraphQL pacing on the cost bucket", {"seconds": seconds,
                                                                          "threads": args.threads},
                {**flat, "by_plan": figures}, f">= {RATE_TARGET:.0%} of restore rate, < {THROTTLED_TARGET:.0%} "
                "THROTTLED", held))


if __name__ == "__main__":
    main()
