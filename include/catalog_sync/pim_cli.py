"""``catalog-sync pim bootstrap``: create or update the PIM structure the mapping needs, from ``pim_model.yaml``.

The PIM is the one configured for this environment (the ``catalog_sync_pim`` Airflow connection, or
``CATALOG_SYNC_SYSTEMS_URL`` with ``CATALOG_SYNC_CREDENTIALS_FILE``), as for every other command. Run it once on a
new Akeneo before the first nightly, and again after the model changes; a run that finds nothing to do says
"0 changes".
"""

from __future__ import annotations

import argparse
import json

from catalog_sync.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    pim = subparsers.add_parser("pim", help="the PIM's catalog structure")
    commands = pim.add_subparsers(dest="pim_command", metavar="PIM_COMMAND", required=True)
    boot = commands.add_parser(
        "bootstrap", help="create or update the attributes, options, families, family variants, categories and "
                          "channel the mapping needs (idempotent)")
    boot.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    boot.add_argument("--model", help="a PIM model file other than the packaged governance/pim_model.yaml")
    boot.add_argument("--json", action="store_true", help="print the report as JSON")
    boot.set_defaults(func=_bootstrap)


def _bootstrap(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.systems import configured_systems
    from catalog_sync.governance.pim_bootstrap import BootstrapError, bootstrap
    from catalog_sync.governance.pim_model import PimModelError, load_pim_model

    try:
        model = load_pim_model(args.model)
    except PimModelError as exc:
        raise UserError(str(exc)) from None
    systems = configured_systems(command_line=True)
    try:
        report = bootstrap(systems.pim, model, dry_run=args.dry_run)
    except BootstrapError as exc:
        raise UserError(f"pim bootstrap: {exc}") from None
    finally:
        systems.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    for line in report.checked:
        print(f"checked {line}")
    for change in report.changes:
        print(("would " if report.dry_run else "") + str(change))
    plural = "" if len(report.changes) == 1 else "s"
    print(f"pim bootstrap: {len(report.changes)} change{plural}{' (dry run)' if report.dry_run else ''}")
    return 0
