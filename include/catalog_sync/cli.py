"""The ``catalog-sync`` command line.

Each feature area registers its own sub-commands from a small ``cli`` module of its own; this file only builds
the top-level parser, so adding a command never touches another area's code. Other installed distributions add
commands through the ``catalog_sync.commands`` entry-point group (the sandbox's ``catalog-sync sandbox ...`` is one,
present only where the sandbox is installed); the product never imports them by name.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

#: Modules exposing ``register(subparsers)``; each adds its sub-commands and sets ``func`` on them.
COMMAND_MODULES = [
    "catalog_sync.hub.cli",
    "catalog_sync.ops_cli",
    "catalog_sync.pim_cli",
    "catalog_sync.reconcile_cli",
    "catalog_sync.trace_cli",
]

#: Entry-point group through which other distributions add ``register(subparsers)`` functions.
PLUGIN_GROUP = "catalog_sync.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catalog-sync",
        description="Catalog Sync: keep ERP, PIM, DAM, storefront and supplier portals in step.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load()(subparsers)
    return parser


class UserError(Exception):
    """A mistake the user can fix (bad argument, missing file); printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    from catalog_sync import config

    parser = build_parser()
    args = parser.parse_args(argv)
    config.adopt_local_airflow_home()  # before anything imports Airflow
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for noisy in ("alembic", "great_expectations", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from catalog_sync.connectors import ConfigurationError

    try:
        result = args.func(args)
    except (UserError, ConfigurationError) as exc:
        print(f"catalog-sync: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
