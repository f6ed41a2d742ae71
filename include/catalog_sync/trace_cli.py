"""``catalog-sync explain SKU [--json]``: why a SKU is (or is not) on the storefront, from the command line.

Reads the systems named by ``CATALOG_SYNC_SYSTEMS_URL`` (default: the local sandbox) and the hub. A broken chain
is an answer, not an error: the command exits 0 whatever it finds, and 2 only for a SKU no system knows.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from catalog_sync.cli import UserError

_OK, _BROKEN = "✓", "✗"


def register(subparsers: argparse._SubParsersAction) -> None:
    explain = subparsers.add_parser("explain", help="trace one SKU through ERP, DAM, PIM, storefront and supplier")
    explain.add_argument("sku", help="a SKU, variant SKU or configurable parent")
    explain.add_argument("--json", action="store_true", help="print the trace as JSON (the UI's shape)")
    explain.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.systems import explain_configured
    from catalog_sync.trace import UnknownSku

    try:
        result = explain_configured(args.sku, command_line=True)
    except UnknownSku as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    else:
        print(render_text(result))
    return 0


def _cell(value: Any, width: int = 60) -> str:
    if isinstance(value, Mapping | list):
        value = json.dumps(value, default=str, ensure_ascii=False)
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: Sequence[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"{indent}{k.ljust(width)}  {v}" for k, v in rows]


#: What the trace says when no link of the chain is broken.
CONSISTENT = "broken link: none, consistent from the ERP to the shopper page"


def broken_link_sentence(link: str | None) -> str:
    """The broken link of a trace or a diagnosis as words: never a bare ``None``."""
    return CONSISTENT if link is None else f"first broken link: {link}"


def _channel_lines(channels: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each declared sales channel: the SKU's state there, its last audited write, and what the channel shows now."""
    if not channels:
        return []
    lines = [f"  Sales channels ({len(channels)})"]
    for c in channels:
        state = str(c.get("state")) if c.get("enabled", True) else "disabled in channels.yaml"
        if c.get("open_letters"):
            state += f", {c['open_letters']} open dead letter(s)"
        rows = [("state", state)]
        last = c.get("last_write")
        if last:
            rows.append(("last write", _cell(f"{last.get('outcome')} at {last.get('at')} in {last.get('load_id')}", 100)))
        live = c.get("live")
        if not c.get("configured"):
            rows.append(("on the channel", "not read (no connection configured)"))
        elif live is None:
            rows.append(("on the channel", "no such product"))
        elif "error" in live:
            rows.append(("on the channel", _cell(f"did not answer: {live['error']}", 100)))
        else:
            status = {1: "enabled", 2: "disabled"}.get(live.get("status"), str(live.get("status")))
            rows.append(("on the channel", _cell(f"{live.get('name')!s}, {status}, {live.get('images', 0)} image(s)", 100)))
        lines.append(f"    {c.get('channel')}")
        lines += _table(rows, "      ")
    return lines


def render_text(result: Mapping[str, Any]) -> str:
    """The trace as aligned text: each system's record, the chain with ✓/✗, the verdict."""
    systems = result["systems"]
    lines = [f"SKU {result['sku']}", "", "Systems"]
    for name in ("erp", "pim", "storefront"):
        record = systems.get(name)
        lines.append(f"  {name.upper() if name != 'storefront' else 'Storefront'}")
        if record is None:
            lines.append("    not found")
        else:
            lines += _table([(k, _cell(v)) for k, v in record.items()], "    ")
    page = systems.get("shopper_page")
    lines.append("  Shopper page")
    lines += (["    not fetched"] if page is None else
              _table([("status", str(page["status"])), ("cache", str(page["cache"])),
                      ("has_image", "yes" if page["has_image"] else "no")], "    "))
    lines.append(f"  DAM assets ({len(systems.get('dam') or [])})")
    lines += _table([(str(a.get("asset_id")), _cell({k: v for k, v in a.items() if k != "asset_id"}, 100))
                     for a in systems.get("dam") or []], "    ") or ["    none"]
    lines.append(f"  Supplier submissions pending ({len(systems.get('supplier') or [])})")
    lines += _table([(str(s.get("id")), _cell({k: v for k, v in s.items() if k != "id"}, 100))
                     for s in systems.get("supplier") or []], "    ") or ["    none"]
    lines += _channel_lines(result.get("channels") or [])
    lines += ["", "Chain"]
    width = max(len(c["link"]) for c in result["chain"])
    for c in result["chain"]:
        first = "  <- first broken link" if c["link"] == result.get("broken_link") else ""
        lines.append(f"  {_OK if c['ok'] else _BROKEN} {c['link'].ljust(width)}  {c['detail']}{first}")
    sentence = broken_link_sentence(result.get("broken_link"))
    lines.append(f"  {sentence[:1].upper()}{sentence[1:]}")
    diag = result.get("last_diagnosis")
    if diag:
        lines += ["", f"Last diagnosis: run {diag.get('load_id')} ({'dry run' if diag.get('dry_run') else 'repair run'}), "
                      f"{broken_link_sentence(diag.get('broken_link'))}"]
    letters = result.get("dead_letters") or []
    if letters:
        lines += ["", f"Open dead letters ({len(letters)})"]
        lines += [f"  #{d.get('id')} {d.get('source_system')} -> {d.get('target_system')} {d.get('reason_kind')}: "
                  f"{_cell(d.get('reason'), 100)}" for d in letters]
    held = result.get("held_changes") or []
    if held:
        lines += ["", f"Held by a freeze window ({len(held)}; released by the freeze_release DAG)"]
        lines += [f"  #{h.get('id')} {h.get('window')}: {_cell(h.get('what'), 100)}" for h in held]
    lines += ["", f"Verdict: {result['verdict']}"]
    return "\n".join(lines)
