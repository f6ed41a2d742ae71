"""The demo story `make run` tells: a few SKUs put into the failure modes Catalog Sync exists for, then a guide.

After the first nightly every SKU is consistent, which shows nothing. The story breaks a handful of them the way
real catalogs break (each a sandbox scenario, played through the systems' own write paths), the nightly runs
again, and the guide says where each shows up and how to repair it: the SKU trace, the dead letters, the quality
page, and a seasonal republish (dry run first, then real).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

#: (scenario, what the nightly does about it, where to look): in the order the guide tells them.
STORY: Final[tuple[tuple[str, str], ...]] = (
    ("erp_pre_active_with_approved_seasonal_images",
     "The nightly leaves them alone: the ERP owns the lifecycle and still says pre-active. The trace names the "
     "ERP as the first broken link; the republish can activate them only if its activate_erp repair is allowed."),
    ("pim_cached_draft_while_erp_active",
     "The nightly does not touch the PIM's lifecycle copy of an unchanged item, so these stay off the "
     "storefront. The republish's dry run names the PIM; its real run refreshes the copy from the ERP."),
    ("supplier_stale_inactive_flag",
     "The nightly refuses the supplier's lifecycle flag (the ERP owns the lifecycle) and dead-letters it with "
     "that reason: the records on the dead-letter page that are the supplier's to fix."),
    ("dam_rights_expired",
     "The nightly reads the changed asset, finds its licence over, and takes the image off the PIM and the "
     "storefront, purging the page. The trace shows the image as hidden, with the date its rights ended."),
    ("storefront_stale_cached_page",
     "Nothing in the nightly changed this page, so the CDN keeps serving the old price. The trace shows the "
     "cached page; the republish purges it and checks the live page."),
)


#: The nights between the first one (the whole catalog) and the story's: what changed in the systems during each
#: day, as sandbox scenarios, and what the night makes of it. Each night is a delta on the one before, so the KPIs
#: (completeness, accuracy, first-time pass rate) move from night to night and the Data quality charts show a line.
HISTORY: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("night_2", ("description_breaks_channel_rules",),
     "Merchandisers edit product copy; three descriptions break the channel's rules (far too long, a <script> "
     "tag, empty). The business-rules gate quarantines them, so completeness and first-time pass rate dip."),
    ("night_3", ("uom_spelling_variants", "vendor_name_variants"),
     "The ERP sends units and vendor names spelled several ways; the nightly normalises them and everything "
     "passes."),
)


def history(scenario: Callable[[str], dict[str, Any]], nightly: Callable[[str], None],
            nights: int = len(HISTORY), tag: str = "") -> list[dict[str, Any]]:
    """The first ``nights`` nights of :data:`HISTORY`, in order: each day's changes (``scenario(name)``), then the
    night (``nightly(run_id)``, which waits for the run; ``tag`` ends each run id, so a second demo's runs get ids
    of their own); what each did."""
    told = []
    for night, names, what in HISTORY[:nights]:
        changed = [{"scenario": name, "skus": scenario(name)["skus"]} for name in names]
        run_id = f"manual__demo_{night}{tag}"
        print(f"{night}: {'; '.join(c['scenario'] + ' ' + ', '.join(c['skus']) for c in changed)}", flush=True)
        nightly(run_id)
        told.append({"night": night, "run_id": run_id, "changes": changed, "what": what})
    return told


def inject(scenario: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Run each scenario of :data:`STORY` (``scenario(name)`` runs one through the sandbox's control API, as
    ``SandboxServer.scenario`` does); what each did, in order."""
    told = []
    for name, after in STORY:
        result = scenario(name)
        told.append({"scenario": name, "symptom": result["symptom"], "skus": result["skus"], "nightly": after})
    return told


def guide(told: list[dict[str, Any]], ui: str) -> str:
    """The text printed after the nightly: per failure mode its SKUs, what the nightly did, and where to look."""
    lines = ["", "The demo story: SKUs put into the failure modes Catalog Sync exists for.", ""]
    every: list[str] = []
    for n, part in enumerate(told, 1):
        skus = part["skus"]
        every.extend(s for s in skus if s not in every)
        lines += [f"{n}. {part['scenario']}: {', '.join(skus)}",
                  *_wrap(f"What happened: {part['symptom']}"),
                  *_wrap(f"After the nightly: {part['nightly']}"),
                  f"   Trace: {ui}/catalog-sync/trace?sku={skus[0]}   (or: catalog-sync explain {skus[0]})", ""]
    lines += [
        "Where to look next:",
        f"  Dead letters      {ui}/catalog-sync/dead-letters   (grouped by cause; only records really wrong)",
        f"  Quality           {ui}/catalog-sync/quality",
        "  Repair            in Airflow, trigger seasonal_republish from its form with these SKUs:",
        f"                    {json.dumps(every)}",
        "                    first as it comes (dry run: it diagnoses and writes nothing), then with Dry run off.",
        "                    Trace a SKU again afterwards: each link holds.",
        "",
    ]
    return "\n".join(lines)


def _wrap(text: str, width: int = 116) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent="   ", subsequent_indent="   ")


def save(told: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(told, indent=2))


def load(path: Path) -> list[dict[str, Any]]:
    told: list[dict[str, Any]] = json.loads(path.read_text())
    return told
