"""ERP, DAM and supplier portal over real HTTP, against the Luma-loaded sandbox."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import requests

from tests.conftest import LUMA

from .helpers import dam, erp, erp_all, supplier

LUMA_IMAGES = LUMA / "images"


def test_every_api_refuses_a_wrong_key(sandbox: Any) -> None:
    for path in ("/erp/items", "/dam/api/assets", "/supplier/api/submissions"):
        r = requests.get(f"{sandbox.url}{path}", headers={"X-Api-Key": "wrong"}, timeout=10)
        assert r.status_code == 401 and "wrong" not in r.text
    assert requests.get(f"{sandbox.url}/storefront/admin/api/2025-01/products.json", timeout=10).status_code == 401
    assert requests.get(f"{sandbox.url}/pim/api/rest/v1/products", timeout=10).status_code == 401


def test_erp_holds_the_147_parents_and_their_1847_variants_as_master_data(sandbox: Any) -> None:
    items = erp_all(sandbox, "items", "items")
    parents = {i["sku"] for i in items if i["product_type"] == "configurable"}
    variants = [i for i in items if i["parent_sku"]]
    assert len(parents) == 147 and len(variants) == 1847
    assert all(v["parent_sku"] in parents for v in variants)
    item = next(i for i in items if i["sku"] == "MH01-XS-Black")
    assert item["lifecycle_status"] == "active" and item["uom"] == "EA"
    assert item["weight"] == {"value": 1.0, "unit": "lbs"} and item["reference_price"]["amount"] == 52.0
    assert len(item["upc"]) == 12 and item["dimensions"]["unit"] == "in"
    assert len({i["upc"] for i in items}) == len(items)  # no accidental duplicate barcode


def test_erp_keyset_pages_and_filters(sandbox: Any) -> None:
    r = requests.get(f"{sandbox.url}/erp/items", params={"limit": 3}, headers=erp(sandbox), timeout=10).json()
    assert len(r["items"]) == 3 and r["next_after_sku"] == r["items"][-1]["sku"]
    r2 = requests.get(f"{sandbox.url}/erp/items", params={"limit": 3, "after_sku": r["next_after_sku"]},
                      headers=erp(sandbox), timeout=10).json()
    assert r2["items"][0]["sku"] > r["items"][-1]["sku"]
    future = requests.get(f"{sandbox.url}/erp/items", params={"updated_since": "2030-01-01T00:00:00Z"},
                          headers=erp(sandbox), timeout=10).json()
    assert future == {"items": [], "next_after_sku": None}
    assert requests.get(f"{sandbox.url}/erp/items", params={"limit": 1001}, headers=erp(sandbox),
                        timeout=10).status_code == 400
    assert requests.get(f"{sandbox.url}/erp/items/NOPE", headers=erp(sandbox), timeout=10).status_code == 404
    stock = erp_all(sandbox, "stock", "stock")
    assert {s["location"] for s in stock} == {"DC-EAST", "DC-WEST", "STORE-NYC"}
    mh = [s for s in stock if s["sku"] == "MH01-XS-Black"]
    assert sum(s["quantity"] for s in mh) == 100  # the export's qty, spread over the locations
    prices = erp_all(sandbox, "prices", "prices")
    assert {p["sku"]: p["price"] for p in prices}["MH01-XS-Black"] == 52.0


def test_erp_csv_export(sandbox: Any) -> None:
    r = requests.get(f"{sandbox.url}/erp/items.csv", headers=erp(sandbox), timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("sku;parent_sku;product_type;lifecycle_status")
    assert len(lines) == 1 + len(erp_all(sandbox, "items", "items"))


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_erp_writes_feed_a_gap_free_change_log_and_webhooks(fresh_sandbox: Any) -> None:
    sb, h = fresh_sandbox, erp(fresh_sandbox)
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        hook = requests.post(f"{sb.url}/erp/webhooks", headers=h, timeout=10, json={
            "url": f"http://127.0.0.1:{receiver.server_port}/hook", "topics": ["stock", "price"]})
        assert hook.status_code == 201
        assert requests.get(f"{sb.url}/erp/changes", headers=h, timeout=10).json() == {"changes": [], "last_seq": 0}
        assert requests.put(f"{sb.url}/erp/stock/MH01-XS-Black/DC-EAST", json={"quantity": 7}, headers=h,
                            timeout=10).status_code == 200
        assert requests.put(f"{sb.url}/erp/prices/MH01-XS-Black", json={"price": 49.5}, headers=h,
                            timeout=10).json()["price"] == 49.5
        item = requests.put(f"{sb.url}/erp/items/MH01-XS-Black", json={"lifecycle_status": "seasonal-hold"},
                            headers=h, timeout=10).json()
        assert item["lifecycle_status"] == "seasonal-hold" and item["uom"] == "EA"  # untouched fields kept
        feed = requests.get(f"{sb.url}/erp/changes", params={"after": 0}, headers=h, timeout=10).json()
        assert [c["seq"] for c in feed["changes"]] == [1, 2, 3] and feed["last_seq"] == 3
        assert [c["topic"] for c in feed["changes"]] == ["stock", "price", "item"]
        assert feed["changes"][0]["data"] == {"location": "DC-EAST", "quantity": 7}
        after = requests.get(f"{sb.url}/erp/changes", params={"after": 2}, headers=h, timeout=10).json()
        assert [c["seq"] for c in after["changes"]] == [3]
        deadline = time.monotonic() + 5
        while len(_Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [c["seq"] for c in _Receiver.received] == [1, 2]  # "item" was not subscribed
        detail = requests.get(f"{sb.url}/erp/webhooks/{hook.json()['id']}", headers=h, timeout=10).json()
        assert [d["status"] for d in detail["deliveries"]] == [204, 204]
    finally:
        receiver.shutdown()


def test_a_dead_webhook_subscriber_never_blocks_a_write(fresh_sandbox: Any) -> None:
    sb, h = fresh_sandbox, erp(fresh_sandbox)
    requests.post(f"{sb.url}/erp/webhooks", headers=h, json={"url": "http://127.0.0.1:9/gone"}, timeout=10)
    started = time.monotonic()
    for q in range(5):
        assert requests.put(f"{sb.url}/erp/stock/MH01-XS-Black/DC-WEST", json={"quantity": q}, headers=h,
                            timeout=10).status_code == 200
    assert time.monotonic() - started < 2


def test_dam_serves_the_real_luma_photographs_with_true_metadata(sandbox: Any) -> None:
    r = requests.get(f"{sandbox.url}/dam/api/assets", params={"sku": "MH01-XS-Black"}, headers=dam(sandbox),
                     timeout=10).json()
    hero = next(a for a in r["assets"] if a["role"] == "hero")
    assert hero["filename"] == "mh01-black_main.jpg" and hero["status"] == "approved"
    photo = (LUMA_IMAGES / "mh01-black_main.jpg").read_bytes()
    assert hero["checksum"] == hashlib.sha256(photo).hexdigest()
    assert (hero["width"], hero["height"]) == (1274, 1580)
    binary = requests.get(hero["renditions"]["ecommerce"], headers=dam(sandbox), timeout=10)
    assert binary.headers["content-type"] == "image/jpeg" and binary.content == photo


def test_dam_placeholders_are_real_pngs_and_every_photograph_is_reachable(sandbox: Any) -> None:
    assets: list[dict[str, Any]] = []
    page: int | None = 1
    while page:
        body = requests.get(f"{sandbox.url}/dam/api/assets", params={"page": page, "per_page": 500},
                            headers=dam(sandbox), timeout=30).json()
        assets.extend(body["assets"])
        page = body["next_page"]
    assert len(assets) == body["total"]
    photographs = {p.name for p in LUMA_IMAGES.glob("*.jpg")}
    assert photographs <= {a["filename"] for a in assets}
    placeholder = next(a for a in assets if a["filename"] not in photographs)
    png = requests.get(f"{sandbox.url}/dam/api/assets/{placeholder['id']}/binary", headers=dam(sandbox), timeout=10)
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and png.headers["content-type"] == "image/png"
    assert hashlib.sha256(png.content).hexdigest() == placeholder["checksum"]
    assert int.from_bytes(png.content[16:20], "big") == placeholder["width"]


def test_dam_update_versions_and_updated_since(fresh_sandbox: Any) -> None:
    sb, h = fresh_sandbox, dam(fresh_sandbox)
    before = requests.get(f"{sb.url}/dam/api/assets", params={"updated_since": "2026-01-01T00:00:00Z"}, headers=h,
                          timeout=10).json()
    assert before["total"] == 0
    r = requests.put(f"{sb.url}/dam/api/assets/AST-0000001", headers=h, timeout=10,
                     json={"status": "retired", "filename": "mb01-blue-1.jpg", "sku": None})
    assert r.status_code == 200
    asset = r.json()
    assert asset["version"] == 2 and asset["sku"] is None and asset["status"] == "retired"
    versions = requests.get(f"{sb.url}/dam/api/assets/AST-0000001/versions", headers=h, timeout=10).json()
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["filename"] == "mb01-blue-0.jpg"
    changed = requests.get(f"{sb.url}/dam/api/assets", params={"updated_since": "2026-01-01T00:00:00Z"}, headers=h,
                           timeout=10).json()
    assert [a["id"] for a in changed["assets"]] == ["AST-0000001"]


def test_supplier_submissions_and_decisions(fresh_sandbox: Any) -> None:
    sb, h = fresh_sandbox, supplier(fresh_sandbox)
    pending = requests.get(f"{sb.url}/supplier/api/submissions", params={"status": "pending"}, headers=h,
                           timeout=10).json()["submissions"]
    assert pending and all(s["status"] == "pending" and s["lifecycle_flag"] in {"active", "inactive"}
                           for s in pending)
    first = pending[0]
    r = requests.post(f"{sb.url}/supplier/api/submissions/{first['id']}/decision", headers=h, timeout=10,
                      json={"status": "quarantined", "reason": "stale lifecycle flag"})
    assert r.status_code == 200 and r.json()["status"] == "quarantined" and r.json()["decided_at"]
    again = requests.post(f"{sb.url}/supplier/api/submissions/{first['id']}/decision", headers=h, timeout=10,
                          json={"status": "quarantined"})
    assert again.status_code == 200  # a replayed decision is idempotent
    conflict = requests.post(f"{sb.url}/supplier/api/submissions/{first['id']}/decision", headers=h, timeout=10,
                             json={"status": "accepted"})
    assert conflict.status_code == 409
    still = requests.get(f"{sb.url}/supplier/api/submissions", params={"status": "pending", "per_page": 500},
                         headers=h, timeout=10).json()["submissions"]
    assert first["id"] not in {s["id"] for s in still}


def test_the_erp_keeps_kits_and_refuses_a_bill_of_materials_naming_what_it_does_not_hold(fresh_sandbox: Any) -> None:
    """A bundle or grouped item lists its components (SKU, quantity) as an ERP keeps a kit's bill of materials;
    a component the ERP does not hold, a kit inside a kit, or components on an item that is no kit are refused."""
    sb, h = fresh_sandbox, erp(fresh_sandbox)

    def put(sku: str, body: dict[str, Any]) -> requests.Response:
        return requests.put(f"{sb.url}/erp/items/{sku}", json=body, headers=h, timeout=10)

    kit = {"product_type": "simple", "item_type": "bundle", "kit_pricing": "fixed", "lifecycle_status": "active",
           "components": [{"sku": "24-MB01", "quantity": 1}, {"sku": "24-MB04", "quantity": 2}]}
    made = put("KIT-1", kit)
    assert made.status_code == 200, made.text
    assert made.json()["components"] == [{"sku": "24-MB01", "quantity": 1.0}, {"sku": "24-MB04", "quantity": 2.0}]
    assert made.json()["item_type"] == "bundle" and made.json()["kit_pricing"] == "fixed"
    refused = {
        "unknown": put("KIT-2", {**kit, "components": [{"sku": "NOWHERE-1", "quantity": 1}]}),
        "nested": put("KIT-3", {**kit, "components": [{"sku": "KIT-1", "quantity": 1}]}),
        "not a kit": put("24-MB02", {"components": [{"sku": "24-MB01", "quantity": 1}]}),
        "pricing on a grouped item": put("KIT-4", {**kit, "item_type": "grouped"}),
    }
    assert {why: r.status_code for why, r in refused.items()} == dict.fromkeys(refused, 422)
    assert "'NOWHERE-1' is not an item of this ERP" in refused["unknown"].json()["message"]
    assert "is a bundle item" in refused["nested"].json()["message"]
    assert put("KIT-5", {**kit, "components": [{"sku": "24-MB01", "quantity": 0}]}).status_code == 422
