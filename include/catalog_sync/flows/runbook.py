"""The launch runbook of a seasonal republish: per SKU, the propagation path the run validated, link by link.

For each link of the chain, in the order a launch travels (ERP -> PIM -> DAM -> storefront -> CDN and the live
page, then the supplier portal's write-back), the runbook says what was wrong when the run started, what was
changed and by which repair (and whether the system took it), what holds now, and what the flow could not do: the
steps left to a person, in words, naming the system where they are done. The live-page check (what shoppers get
from the CDN after the repairs) has its own line.

Built by ``flows.republish.verify`` from what it already holds (the triage's findings, the repairs' actions and
the verifying re-read); stored with the SKU's ``diagnosis`` row (``runbook``) and shown by the UI's runbook page.
Pure: no system and no hub is read here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from catalog_sync.trace import LINK_SYSTEM

#: The links in the order the runbook lists them: the way a launch propagates.
ORDER: Final[tuple[str, ...]] = ("erp_lifecycle", "pim_vs_erp", "dam_assets", "storefront_feed", "shopper_page",
                                 "supplier_writeback")
LINK_LABEL: Final[dict[str, str]] = {
    "erp_lifecycle": "ERP: lifecycle",
    "pim_vs_erp": "PIM: state against the ERP",
    "dam_assets": "DAM: images and their links",
    "storefront_feed": "Storefront: product",
    "shopper_page": "CDN and live page",
    "supplier_writeback": "Supplier portal: write-back",
}
SYSTEM_NAME: Final[dict[str, str]] = {"erp": "ERP", "pim": "PIM", "dam": "DAM", "storefront": "storefront",
                                      "cdn": "CDN", "supplier": "supplier portal"}
#: The link each repair acts on.
REPAIR_LINK: Final[dict[str, str]] = {
    "activate_erp": "erp_lifecycle", "pim_state": "pim_vs_erp", "dam_dates": "dam_assets", "dam_links": "dam_assets",
    "storefront": "storefront_feed", "cache": "shopper_page", "supplier_quarantine": "supplier_writeback",
}
#: What each repair does, in words.
REPAIR_LABEL: Final[dict[str, str]] = {
    "activate_erp": "activate the item in the ERP",
    "pim_state": "align the PIM's lifecycle and enabled flag with the ERP",
    "dam_dates": "bring the image's valid-from date forward to the launch",
    "dam_links": "relink the approved images",
    "storefront": "republish the product on the storefront",
    "cache": "purge the page from the CDN's cache",
    "supplier_quarantine": "quarantine the supplier submission that contradicts the ERP",
}
#: What a person does when the repair was not made (not allowed, refused, failed).
BY_HAND: Final[dict[str, str]] = {
    "activate_erp": "In the ERP, decide whether {target} is sold this season and set its lifecycle to active (the "
                    "ERP owns it; a seasonal push lifts only draft, pre-active and seasonal-hold items)",
    "pim_state": "In the PIM, set the lifecycle of {target} to the ERP's (or replay its dead letter once the "
                 "ERP -> PIM hop is fixed)",
    "dam_dates": "In the DAM, move the valid-from date of image {target} to the launch (or approve its embargo "
                 "ending later)",
    "dam_links": "In the DAM or the PIM, fix the links of {target}: tag the asset with its SKU, or unlink an image "
                 "that is not showable",
    "storefront": "On the storefront, republish {target} (status, title and images from the PIM and the ERP)",
    "cache": "At the CDN, purge the page {target} (or wait for its cached copy's TTL to run out)",
    "supplier_quarantine": "In the supplier portal, quarantine or reject submission {target} and ask the supplier "
                           "for a current flag",
}
STATUS_WORDS: Final[dict[str, str]] = {
    "done": "changed", "unchanged": "already as wanted", "failed": "failed", "refused": "refused",
    "not_allowed": "not allowed for this run", "skipped": "skipped", "planned": "planned (dry run: not made)",
}
#: Action statuses that leave the step to a person.
LEFT_TO_A_PERSON: Final[frozenset[str]] = frozenset({"failed", "refused", "not_allowed", "skipped"})


def _system(link: str) -> str:
    return "cdn" if link == "shopper_page" else LINK_SYSTEM[link]


def build(diagnosis: Mapping[str, Any], actions: Sequence[Mapping[str, Any]], *, outcome: str, dry_run: bool,
          after: Mapping[str, Any] | None) -> dict[str, Any]:
    """The runbook of one SKU.

    Args:
        diagnosis: the triage's ``{sku, root_sku, handle, broken_link, findings}``.
        actions: what the repairs did on the SKU's behalf (``{repair, target, system, status, detail}``; the
            ``verify`` entry is the verifying re-read), or the planned ones on a dry run.
        outcome: how the SKU ended on the triage hop (delivered, unchanged, dead_lettered).
        dry_run: nothing was written.
        after: the trace of the SKU re-read after the repairs (``explain``), None when it was not re-read
            (a dry run, or nothing was broken: the state found is the state now).
    """
    findings = list(diagnosis.get("findings") or [])
    chain_after = {c["link"]: c for c in (after or {}).get("chain") or []}
    repairs = [a for a in actions if a.get("repair") != "verify"]
    links = []
    manual: list[dict[str, str]] = []
    for link in ORDER:
        was = [f["detail"] for f in findings if f["link"] == link]
        done = [{**a, "label": REPAIR_LABEL.get(str(a["repair"]), str(a["repair"])),
                 "where": SYSTEM_NAME.get(str(a.get("system") or ""), str(a.get("system") or "")),
                 "status_words": STATUS_WORDS.get(str(a["status"]), str(a["status"]))}
                for a in repairs if REPAIR_LINK.get(str(a["repair"])) == link]
        if link in chain_after:
            holds, now = bool(chain_after[link]["ok"]), str(chain_after[link]["detail"])
        elif was:
            holds, now = False, "as found: " + "; ".join(was)
        else:
            holds, now = True, "nothing wrong was found"
        steps = [BY_HAND.get(str(a["repair"]), "Make the change by hand: {target}").format(target=a["target"])
                 + f" ({a['status_words']}: {a['detail']})" for a in done if a["status"] in LEFT_TO_A_PERSON]
        steps += [f"In the {SYSTEM_NAME[_system(link)]}: {f['detail']} (no repair of the flow covers this)"
                  for f in findings if f["link"] == link and not f.get("repair")]
        if not holds and not steps and not dry_run:
            steps.append(f"Still wrong after the run: {now}. Fix it in the {SYSTEM_NAME[_system(link)]}, then run "
                         "the republish again")
        manual += [{"link": link, "label": LINK_LABEL[link], "step": s} for s in steps]
        links.append({"link": link, "label": LINK_LABEL[link], "system": SYSTEM_NAME[_system(link)], "was": was,
                      "repairs": done, "holds": holds, "now": now, "by_hand": steps})
    page = next(x for x in links if x["link"] == "shopper_page")
    checked = next((a for a in actions if a.get("repair") == "verify"), None)
    return {
        "sku": diagnosis["sku"],
        "root_sku": diagnosis.get("root_sku"),
        "handle": diagnosis.get("handle"),
        "outcome": outcome,
        "dry_run": dry_run,
        "first_broken": diagnosis.get("broken_link"),
        "verdict": (after or {}).get("verdict") or (checked or {}).get("detail") or (
            "nothing was broken" if not diagnosis.get("broken_link") else "dry run: nothing was changed"),
        "links": links,
        "live_page": {"holds": page["holds"], "detail": page["now"], "checked_after_repairs": after is not None},
        "by_hand": manual,
    }


__all__ = ["BY_HAND", "LINK_LABEL", "ORDER", "REPAIR_LABEL", "build"]
