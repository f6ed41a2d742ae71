"""The ERP's reference tables (/erp/units, /erp/countries) over real HTTP, and the connector reading them."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from catalog_sync.connectors import ErpClient
from catalog_sync.refdata import gate_seed


def _erp(server: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{server.url}/erp/{path}", timeout=10,
                            headers={"X-Api-Key": server.credentials["erp"]["api_key"]}, **kwargs)


def test_the_erp_ships_the_tables_the_hub_is_seeded_with(sandbox: Any) -> None:
    units = _erp(sandbox, "GET", "units").json()["units"]
    assert {u["code"]: {"kind": u["kind"], "aliases": u["aliases"]} for u in units} == gate_seed()["unit"]
    countries = _erp(sandbox, "GET", "countries").json()["countries"]
    assert {c["code"] for c in countries} == set(gate_seed()["country"])
    assert requests.get(f"{sandbox.url}/erp/units", headers={"X-Api-Key": "wrong"}, timeout=10).status_code == 401


def test_an_administrator_adds_changes_and_retires_units_until_a_reset(fresh_sandbox: Any) -> None:
    assert _erp(fresh_sandbox, "PUT", "units/BAG", json={"kind": "count", "aliases": ["bag"]}).status_code == 200
    assert _erp(fresh_sandbox, "PUT", "units/EA", json={"kind": "count", "aliases": ["each"]}).status_code == 200
    assert _erp(fresh_sandbox, "DELETE", "units/CS").status_code == 204
    assert _erp(fresh_sandbox, "DELETE", "units/CS").status_code == 404
    assert _erp(fresh_sandbox, "PUT", "units/XX", json={"kind": "volume"}).status_code == 422
    assert _erp(fresh_sandbox, "PUT", "countries/usa", json={"alpha3": "USA"}).status_code == 422
    assert _erp(fresh_sandbox, "PUT", "countries/AT", json={"alpha3": "AUT", "names": ["Austria"]}).status_code == 200
    with ErpClient(f"{fresh_sandbox.url}/erp", fresh_sandbox.credentials["erp"]) as client:
        units = {u["code"]: u for u in client.reference_table("units")}
        assert units["BAG"]["aliases"] == ["bag"] and units["EA"]["aliases"] == ["each"] and "CS" not in units
        assert any(c["code"] == "AT" for c in client.reference_table("countries"))
        with pytest.raises(ValueError, match="units and countries"):
            client.reference_table("currencies")
    fresh_sandbox.reset()
    assert "BAG" not in {u["code"] for u in _erp(fresh_sandbox, "GET", "units").json()["units"]}
