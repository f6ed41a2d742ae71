"""``catalog-sync hub ...``: create, upgrade and inspect the hub database."""

from __future__ import annotations

import argparse

from catalog_sync import config


def register(subparsers: argparse._SubParsersAction) -> None:
    hub = subparsers.add_parser("hub", help="the hub database")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True)
    up = hub_sub.add_parser("migrate", help="apply migrations up to head (idempotent)")
    up.add_argument("--url", help="SQLAlchemy URL (default: CATALOG_SYNC_HUB_URL or the embedded SQLite file)")
    up.set_defaults(func=_migrate)
    down = hub_sub.add_parser("downgrade", help="revert migrations down to a revision")
    down.add_argument("revision", nargs="?", default="base")
    down.add_argument("--url")
    down.set_defaults(func=_downgrade)
    where = hub_sub.add_parser("url", help="print the hub database URL (password hidden)")
    where.set_defaults(func=lambda a: print(config.redact_url(config.hub_url())))


def _migrate(args: argparse.Namespace) -> int:
    from catalog_sync.hub.db import migrate

    url = args.url or config.hub_url()
    migrate(url)
    print(f"hub database migrated: {config.redact_url(url)}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from catalog_sync.hub.db import downgrade

    url = args.url or config.hub_url()
    downgrade(url, args.revision)
    print(f"hub database downgraded to {args.revision}: {config.redact_url(url)}")
    return 0
