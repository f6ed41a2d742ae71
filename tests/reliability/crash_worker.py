"""Run the cold flow up to one step in a process of its own, printing ``WRITE <n>`` after each successful write
to the target of that step, so a test can SIGKILL it in the middle of the step's writes.

    python -m tests.reliability.crash_worker <run_id> <last_step> <systems.json>

``systems.json`` holds ``{"url": ..., "credentials": {...}}``; the hub is ``CATALOG_SYNC_HUB_URL``.
"""

from __future__ import annotations

import json
import sys

from catalog_sync import reliability as R
from catalog_sync.connectors import ClientOptions
from catalog_sync.connectors.http import Attempt
from catalog_sync.flows.systems import Systems

#: Which attempts count as "a write of this step".
WRITES = {"load_pim": ("pim", "PATCH", "/products"), "publish_products": ("storefront", "POST", "/graphql.json")}


def main(run_id: str, last_step: str, config_path: str) -> None:
    config = json.loads(open(config_path, encoding="utf-8").read())
    system, method, path = WRITES[last_step]
    written = 0

    def on_attempt(a: Attempt) -> None:
        nonlocal written
        if (a.system == system and a.method == method and path in a.path and a.status is not None
                and a.status < 300):
            written += 1
            print(f"WRITE {written}", flush=True)

    # small batches (PIM products, storefront products and stock levels): many writes, so the kill lands between
    # two of them
    systems = Systems.from_base_url(config["url"], config["credentials"], ClientOptions(batch_size=5),
                                    on_attempt=on_attempt)
    R.run_cold(systems, run_id, stop_after=last_step)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
