"""Benchmark 11's side figure: what a whole run's keys cost in memory, held as a dict, a set or a KeySet.

``python -m bench.b11_keyset dict|set|keyset [--keys N]`` adds N keys shaped like the catalog's SKUs (default
1,000,000; a price each for ``dict`` and ``keyset``) to one structure in this process and prints its peak resident
set over the interpreter's. Run one kind a process: the peak of a process never comes down.
"""

from __future__ import annotations

import argparse
import resource


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["dict", "set", "keyset"])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    from catalog_sync.engine.keys import KeySet

    base = _rss_mb()
    skus = (f"MH{i:07d}-XS-Black" for i in range(args.keys))
    probe = "MH0000005-XS-Black"
    if args.kind == "dict":
        prices = {sku: 19.99 + i % 100 for i, sku in enumerate(skus)}
        found = probe in prices and len(prices) == args.keys
    elif args.kind == "set":
        keys = set(skus)
        found = probe in keys and len(keys) == args.keys
    else:
        hashed = KeySet()
        for i, sku in enumerate(skus):
            hashed.add(sku, 19.99 + i % 100)
        found = probe in hashed and len(hashed) == args.keys
    print(f"{args.kind}: {args.keys:,} keys, peak {_rss_mb() - base:.0f} MB over the interpreter's {base:.0f} MB "
          f"(lookups {'right' if found else 'WRONG'})")
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())
