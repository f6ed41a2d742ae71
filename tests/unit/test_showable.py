"""The one showable rule and the one gallery order (catalog_sync.showable), and the gates reading the DAM's fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from catalog_sync.connectors.dam import ASSETS
from catalog_sync.quality.policy import load_policy
from catalog_sync.quality.suites import GateInputs, assets
from catalog_sync.showable import RULE_FIELDS, gallery, next_change, showable, why_hidden

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def asset(aid: str, **fields: object) -> dict[str, object]:
    return {"id": aid, "role": "gallery", "status": "approved", "valid_from": None, "valid_to": None,
            "rights_expires_at": None, "rights_regions": ["US", "CA"], **fields}


def test_the_rule() -> None:
    assert showable(asset("A"), NOW, "US")
    assert why_hidden(asset("A", status="in_review"), NOW) == "status is 'in_review', not approved"
    assert "embargoed" in str(why_hidden(asset("A", valid_from=(NOW + DAY).isoformat()), NOW))
    assert "validity ended" in str(why_hidden(asset("A", valid_to=NOW.isoformat()), NOW))  # ends are exclusive
    assert "usage rights expired" in str(why_hidden(asset("A", rights_expires_at=(NOW - DAY).isoformat()), NOW))
    assert "not licensed for EU" in str(why_hidden(asset("A"), NOW, "EU"))
    assert showable(asset("A", rights_regions=[]), NOW, "EU")  # no regions listed: no regional limit
    assert "does not parse" in str(why_hidden(asset("A", valid_to="soon"), NOW))


def test_one_gallery_order_with_the_seasonal_picture_first() -> None:
    found = gallery([asset("3", role="swatch"), asset("2", role="hero"), asset("9", role="seasonal"),
                     asset("1", role="gallery"), asset("0", role="hero", rights_expires_at=NOW.isoformat())], NOW)
    assert [a["id"] for a in found] == ["9", "2", "1", "3"]


def test_next_change_is_the_first_window_edge_ahead() -> None:
    edges = [asset("A", rights_expires_at=(NOW + 3 * DAY).isoformat()), asset("B", valid_from=(NOW + DAY).isoformat()),
             asset("C", status="draft", valid_from=(NOW + timedelta(hours=1)).isoformat())]
    assert next_change(edges, NOW) == NOW + DAY


def test_the_rule_and_the_asset_gates_name_only_fields_the_dam_has() -> None:
    dam_fields = set(ASSETS.fields) | {"asset_id"}  # asset_id: the gate's key, the DAM's id
    assert set(RULE_FIELDS) <= dam_fields
    inputs = GateInputs(rules=load_policy().rules, now=NOW, known_skus=frozenset())
    for layer in (0, 1, 2):
        for check in assets.checks(layer, inputs):
            named = set(check.fields) or {c for c in check.columns if not c.startswith("_")}
            assert named <= dam_fields, (check.name, named - dam_fields)
