"""The Adobe Commerce connector against the sandbox's Adobe Commerce, over real HTTP: products through the async bulk
endpoints and their status polled to the end, children linked, media, MSI source items, store-view values, a
refused token and a channel that is down."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from catalog_sync.connectors import (
    Attempt,
    AuthError,
    ClientOptions,
    ConfigurationError,
    Outcome,
    RetryPolicy,
)
from catalog_sync.connectors.adobe_commerce import (
    AdobeCommerceClient,
    BulkStillOpen,
    ChannelUnavailable,
    PollPolicy,
    dead_letters,
)
from catalog_sync.connectors.adobe_mapping import (
    MagentoCatalog,
    canonical_to_magento_product,
    magento_media_entry,
    magento_store_values,
    stock_to_source_items,
)
from catalog_sync.connectors.http import Disposition, RecordError, TransientError

#: Configurable attributes of the channel (Luma's attribute ids).
ATTRIBUTES = {"color": 93, "size": 144}
SOURCES = {"DC-EAST": "dc_east", "DC-WEST": "dc_west"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A sandbox of its own: the channel starts empty, so no catalog is loaded."""
    from catalog_sync_sandbox.server import SandboxServer

    folder: Path = tmp_path_factory.mktemp("adobe-sandbox")
    sandbox = SandboxServer(f"sqlite:///{folder / 'sandbox.sqlite'}").start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sb(server: Any) -> Iterator[Any]:
    server.reset()
    try:
        yield server
    finally:
        server.clear_faults("adobe_commerce")


def make_client(sb: Any, attempts: list[Attempt] | None = None, token: str | None = None,
                **kw: Any) -> AdobeCommerceClient:
    options = ClientOptions(retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.05), read_timeout=10,
                            on_attempt=attempts.append if attempts is not None else None, **kw)
    creds = token if token is not None else sb.credentials["adobe_commerce"]
    return AdobeCommerceClient(f"{sb.url}/adobe_commerce", creds, options, poll=PollPolicy(first=0.01, cap=0.05,
                                                                                          timeout=5))


def family() -> list[dict[str, Any]]:
    """A configurable hoodie in two variants, then a simple bag, as canonical records."""
    parent = {"sku": "MH01", "parent_sku": None, "product_type": "configurable", "axes": ["size", "color"],
              "name": "Chaz Kangeroo Hoodie", "description": "<p>Ideal for cold-weather training.</p>",
              "url_key": "chaz-kangeroo-hoodie", "lifecycle_status": "active",
              "translations": {"fr_FR": {"name": "Sweat Chaz Kangourou", "description": "<p>Pour le froid.</p>"}}}
    variants = [{"sku": f"MH01-{size}-{color}", "parent_sku": "MH01", "product_type": "simple", "size": size,
                 "color": color, "name": f"Chaz Kangeroo Hoodie-{size}-{color}", "reference_price": 52.0,
                 "weight": 1.0, "lifecycle_status": "active"}
                for size, color in (("S", "Black"), ("M", "Black"), ("M", "Gray"))]
    bag = {"sku": "24-MB01", "parent_sku": None, "product_type": "simple", "name": "Joust Duffle Bag",
           "reference_price": 34.0, "weight": 2.5, "lifecycle_status": "active"}
    return [parent, *variants, bag]


def catalog(client: AdobeCommerceClient) -> MagentoCatalog:
    return client.catalog(("color", "size"), SOURCES)


def test_the_catalog_is_read_from_the_channel(sb: Any) -> None:
    with make_client(sb) as client:
        views = client.store_views()
        assert {v["code"] for v in views} >= {"admin", "default", "fr", "de"}
        found = catalog(client)
    assert found.store_of_locale == {"en_US": "default", "fr_FR": "fr", "de_DE": "de"}
    assert found.attribute_ids == ATTRIBUTES
    assert found.option_ids["color"]["Black"] == 49 and found.option_ids["size"]["M"] == 168
    assert "" not in found.option_ids["color"] and " " not in found.option_ids["color"]


def test_simple_and_configurable_products_are_published_and_linked(sb: Any) -> None:
    records = family()
    with make_client(sb) as client:
        results = client.publish(records, catalog(client))
        assert [(r.key, r.outcome) for r in results] == [(r["sku"], Outcome.OK) for r in records]
        assert all(r.message and r.message.startswith("Service execution success") for r in results)
        parent = client.get_product("MH01")
        child_ids = {client.get_product(r["sku"])["id"] for r in records[1:4]}  # type: ignore[index]
        assert parent is not None and parent["type_id"] == "configurable"
        assert set(parent["extension_attributes"]["configurable_product_links"]) == child_ids
        options = {o["attribute_id"]: sorted(v["value_index"] for v in o["values"])
                   for o in parent["extension_attributes"]["configurable_product_options"]}
        assert options == {"144": [167, 168], "93": [49, 52]}
        variant = client.get_product("MH01-M-Gray")
        assert variant is not None and variant["visibility"] == 1 and variant["price"] == 52.0
        # the same records once more: saved again (an upsert by SKU), links already there are unchanged
        again = client.publish(records, catalog(client))
        assert all(r.ok for r in again)
        assert len(client.get_product("MH01")["extension_attributes"]["configurable_product_links"]) == 3  # type: ignore[index]


def test_operations_stay_open_until_the_consumer_runs_and_are_read_back_by_id(sb: Any) -> None:
    with make_client(sb) as client:
        payloads = [canonical_to_magento_product(r, catalog(client)) for r in family()[4:]]
        submission = client.submit_products(payloads)
        assert submission.keys == {0: "24-MB01"}
        first = client.bulk_status(submission.bulk_uuid)
        assert [op["status"] for op in first["operations_list"]] == [4]  # open: the consumer has not run yet
        (result,) = client.wait_for_bulk(submission)
    assert result.key == "24-MB01" and result.outcome is Outcome.OK


def test_a_refused_operation_surfaces_magentos_message_for_its_sku(sb: Any) -> None:
    with make_client(sb) as client:
        cat = catalog(client)
        good = canonical_to_magento_product(family()[4], cat)
        no_name = {**canonical_to_magento_product({**family()[4], "sku": "24-MB02"}, cat), "name": ""}
        no_price = {k: v for k, v in canonical_to_magento_product({**family()[4], "sku": "24-MB03"}, cat).items()
                    if k != "price"}
        results = client.upsert_products([no_name, good, no_price])
        # and one the endpoint rejects at the door: its parameters cannot be read (a price that is no number)
        rejected = client.upsert_products([{**good, "sku": "24-MB04", "price": "cheap"}])
    by_sku = {r.key: r for r in results + rejected}
    assert by_sku["24-MB01"].outcome is Outcome.OK
    assert by_sku["24-MB02"].outcome is Outcome.FAILED and by_sku["24-MB02"].status == 3
    assert by_sku["24-MB02"].message == 'The "Product Name" attribute value is empty. Set the attribute and try again.'
    assert by_sku["24-MB03"].message == 'The "Price" attribute value is empty. Set the attribute and try again.'
    assert by_sku["24-MB04"].status == 5 and "type is invalid" in (by_sku["24-MB04"].message or "")
    letters = {e.record_key: e.reason for e in dead_letters(results + rejected)}
    assert set(letters) == {"24-MB02", "24-MB03", "24-MB04"}
    assert by_sku["24-MB02"].disposition is Disposition.DEAD_LETTER


def test_records_the_channel_cannot_take_are_dead_lettered_without_a_request(sb: Any) -> None:
    bundle = {"sku": "KIT-1", "product_type": "simple", "item_type": "bundle", "name": "Kit", "reference_price": 9}
    odd = {**family()[1], "sku": "MH01-S-Mauve", "color": "Mauve"}
    attempts: list[Attempt] = []
    with make_client(sb, attempts) as client:
        cat = catalog(client)
        attempts.clear()
        results = client.publish([bundle, odd], cat)
    assert attempts == []
    assert [r.disposition for r in results] == [Disposition.DEAD_LETTER, Disposition.DEAD_LETTER]
    assert "bundle items are not published" in (results[0].message or "")
    assert "'Mauve' is not an option of the attribute 'color'" in (results[1].message or "")


def test_variants_of_a_refused_parent_are_not_left_as_published(sb: Any) -> None:
    parent, *variants = family()[:4]
    with make_client(sb) as client:
        results = client.publish([{**parent, "axes": ["material"]}, *variants], catalog(client))
        assert all(client.get_product(v["sku"]) is not None for v in variants)  # saved, but in no configurable
    assert [r.outcome for r in results] == [Outcome.FAILED] * 4
    assert "no attribute 'material'" in (results[0].message or "")
    assert all((r.message or "").startswith("its parent MH01 was not saved: ") for r in results[1:])
    assert {r.disposition for r in results} == {Disposition.DEAD_LETTER}


def test_media_entry_is_added_once_with_its_roles(sb: Any) -> None:
    with make_client(sb) as client:
        client.publish(family()[4:], catalog(client))
        entry = magento_media_entry(PNG, "image/png", "24-mb01-hero.png", "Joust Duffle Bag", "hero", 1)
        added = client.add_media("24-MB01", entry)
        assert added.outcome is Outcome.OK and "<image>" in str(added.sent)
        assert client.add_media("24-MB01", entry).outcome is Outcome.UNCHANGED
        (listed,) = client.media("24-MB01")
        assert listed["types"] == ["image", "small_image", "thumbnail"] and listed["file"].endswith("/24-mb01-hero.png")
        broken = client.add_media("24-MB01", {**entry, "label": "broken",
                                              "content": {**entry["content"], "base64_encoded_data": "bm90IGFuIGltYWdl"}})
        missing = client.add_media("NO-SUCH-SKU", entry)
    assert broken.disposition is Disposition.DEAD_LETTER and "MIME type" in (broken.message or "")
    assert missing.status == 404 and "doesn't exist" in (missing.message or "")


def test_source_items_are_upserted_and_a_bad_one_is_dead_lettered_alone(sb: Any) -> None:
    with make_client(sb) as client:
        cat = catalog(client)
        client.publish(family()[4:], cat)
        items, refused = stock_to_source_items(
            [{"sku": "24-MB01", "location": "DC-EAST", "quantity": 7},
             {"sku": "24-MB01", "location": "DC-WEST", "quantity": 0},
             {"sku": "24-MB01", "location": "STORE-NYC", "quantity": 1},
             {"sku": "NO-SUCH-SKU", "location": "DC-EAST", "quantity": 3}], cat)
        assert [e.record_key for e in refused] == ["24-MB01/STORE-NYC"]
        results = client.save_source_items(items)
        assert [(r.key, r.outcome) for r in results] == [
            ("24-MB01/dc_east", Outcome.OK), ("24-MB01/dc_west", Outcome.OK), ("NO-SUCH-SKU/dc_east", Outcome.FAILED)]
        assert results[2].message == 'Validation Failed: Product with SKU "NO-SUCH-SKU" does not exist.'
        stored = requests.get(f"{sb.url}/adobe_commerce/rest/V1/inventory/source-items", timeout=10,
                              headers={"Authorization": f"Bearer {sb.credentials['adobe_commerce']['access_token']}"})
        assert [(i["source_code"], i["quantity"], i["status"]) for i in stored.json()["items"]] == [
            ("dc_east", 7.0, 1), ("dc_west", 0.0, 0)]
        assert all(r.ok for r in client.delete_source_items([items[1]]))


def test_store_view_values_are_written_per_locale_and_leave_the_admin_values(sb: Any) -> None:
    records = family()
    with make_client(sb) as client:
        cat = catalog(client)
        client.publish(records, cat)
        store = cat.store_of_locale["fr_FR"]
        values = magento_store_values(records[0], "fr_FR")
        assert values is not None and magento_store_values(records[0], "de_DE") is None
        result = client.update_store_values(store, "MH01", values)
        assert result.outcome is Outcome.OK and result.key == "MH01@fr"
        assert client.get_product("MH01", "fr")["name"] == "Sweat Chaz Kangourou"  # type: ignore[index]
        assert client.get_product("MH01", "default")["name"] == "Chaz Kangeroo Hoodie"  # type: ignore[index]
        assert client.get_product("MH01")["name"] == "Chaz Kangeroo Hoodie"  # type: ignore[index]
        with pytest.raises(ConfigurationError):  # a store view, not the admin scope
            client.update_store_values("all", "MH01", values)
        # many SKUs at once through the bulk route; a SKU the channel does not hold is created, so it needs a name
        german = [("MH01", {"name": "Chaz Känguru-Kapuzenpullover"}), ("24-MB01", {"name": "Joust Reisetasche"}),
                  ("NEW-1", {"custom_attributes": [{"attribute_code": "url_key", "value": "neu"}]})]
        results = client.upsert_store_values(cat.store_of_locale["de_DE"], german)
        assert [(r.key, r.outcome) for r in results] == [
            ("MH01@de", Outcome.OK), ("24-MB01@de", Outcome.OK), ("NEW-1@de", Outcome.FAILED)]
        assert "attribute value is empty" in (results[2].message or "")
        assert client.get_product("24-MB01", "de")["name"] == "Joust Reisetasche"  # type: ignore[index]
        assert client.get_product("24-MB01", "fr")["name"] == "Joust Duffle Bag"  # type: ignore[index]


def test_a_wrong_token_is_refused_and_never_retried(sb: Any) -> None:
    attempts: list[Attempt] = []
    with make_client(sb, attempts, token="not-the-token") as client, pytest.raises(AuthError) as caught:
        client.store_views()
    assert caught.value.status == 401 and len(attempts) == 1
    assert "not-the-token" not in str(caught.value) and "consumer isn't authorized" in str(caught.value)


def test_an_outage_is_retried_then_raised_as_the_channel_being_down(sb: Any) -> None:
    with make_client(sb) as client:
        cat = catalog(client)
        payloads = [canonical_to_magento_product(family()[4], cat)]
    sb.set_faults("adobe_commerce", error_rate=1.0, seed=14)  # every answer 5xx; this seed draws 503 three times
    attempts: list[Attempt] = []
    with make_client(sb, attempts) as client, pytest.raises(ChannelUnavailable) as caught:
        client.upsert_products(payloads)
    assert isinstance(caught.value, TransientError) and caught.value.disposition is Disposition.RETRY
    assert [(a.status, a.error) for a in attempts] == [(503, "http_503")] * 3
    assert caught.value.status == 503
    assert "adobe_commerce: the channel is unavailable" in str(caught.value)
    sb.clear_faults("adobe_commerce")
    with make_client(sb) as client:  # back up: the same write goes through
        assert [r.outcome for r in client.upsert_products(payloads)] == [Outcome.OK]


def test_polling_is_bounded(sb: Any) -> None:
    with make_client(sb) as client:
        submission = client.submit_products([canonical_to_magento_product(family()[4], catalog(client))])
        client.poll = PollPolicy(first=0.01, cap=0.01, timeout=0.0)  # gives up at the first open answer
        with pytest.raises(BulkStillOpen) as caught:
            client.wait_for_bulk(submission)
    assert caught.value.disposition is Disposition.RETRY and caught.value.partial_results == []


def test_the_media_entry_carries_the_image_itself() -> None:
    entry = magento_media_entry(PNG, "image/png", "a.png", "A", "gallery", 3)
    assert base64.b64decode(entry["content"]["base64_encoded_data"]) == PNG and entry["types"] == []


def test_the_client_comes_from_an_airflow_connection(sb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from catalog_sync.airflow.hooks import AdobeCommerceHook

    conn = {"conn_type": "http", "host": "127.0.0.1", "port": int(sb.url.rsplit(":", 1)[1]), "schema": "http",
            "password": sb.credentials["adobe_commerce"]["access_token"],
            "extra": {"path_prefix": "/adobe_commerce", "source_map": SOURCES, "max_attempts": "2"}}
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_ADOBE_COMMERCE", json.dumps(conn))
    hook = AdobeCommerceHook()
    with hook.get_conn() as client:
        assert isinstance(client, AdobeCommerceClient) and client.options.retry.max_attempts == 2
        assert client.catalog(("color",), hook.source_map()).source_of_location == SOURCES
        assert sb.credentials["adobe_commerce"]["access_token"] not in repr(client.auth)
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_ADOBE_COMMERCE",
                       json.dumps({**conn, "extra": {"source_map": ["dc_east"]}}))
    with pytest.raises(ConfigurationError, match="source_map must be a JSON object"):
        AdobeCommerceHook().get_conn()


def test_the_mapping_follows_the_item_and_its_lifecycle() -> None:
    cat = MagentoCatalog(attribute_ids=ATTRIBUTES, option_ids={"color": {"Black": 49}, "size": {"S": 167}})
    ebook = canonical_to_magento_product({"sku": "EB-1", "product_type": "simple", "item_type": "virtual",
                                          "name": "Guide", "reference_price": 9, "weight": 0.5,
                                          "lifecycle_status": "seasonal-hold"}, cat)
    assert ebook["type_id"] == "virtual" and ebook["status"] == 2 and "weight" not in ebook
    assert ebook["visibility"] == 4 and ebook["extension_attributes"] == {"website_ids": [1]}
    variant = canonical_to_magento_product(family()[1], MagentoCatalog(attribute_ids=ATTRIBUTES, option_ids={
        "color": {"Black": 49}, "size": {"S": 167}}))
    assert {a["attribute_code"]: a["value"] for a in variant["custom_attributes"]} == {"color": "49", "size": "167"}
    with pytest.raises(RecordError, match="needs a price"):
        canonical_to_magento_product({**family()[4], "reference_price": None}, cat)


def test_the_sandbox_lists_the_channel_in_its_openapi_document(server: Any) -> None:
    paths = set(requests.get(f"{server.url}/openapi.json", timeout=10).json()["paths"])
    for path in ("/adobe_commerce/rest/V1/products", "/adobe_commerce/rest/async/bulk/V1/products",
                 "/adobe_commerce/rest/V1/bulk/{bulkUuid}/detailed-status", "/adobe_commerce/rest/V1/inventory/source-items"):
        assert path in paths, path
