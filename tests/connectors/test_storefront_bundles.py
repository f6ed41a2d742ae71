"""Shopify product fixed bundles through the storefront client, over real HTTP to the sandbox shop:
``productBundleCreate`` / ``productBundleUpdate`` polled through ``productOperation``, the bundle then priced with
``productSet``; what Shopify refuses (unknown, nested or missing components) fails the bundle alone, with
Shopify's message and code."""

from __future__ import annotations

from typing import Any

from catalog_sync.connectors import Disposition, Outcome
from catalog_sync.connectors.storefront import BUNDLE_CREATE, BUNDLE_OPERATION, StorefrontClient


def _shop(sandbox: Any) -> StorefrontClient:
    sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    shop = StorefrontClient(f"{sandbox.url}/storefront", sandbox.credentials["storefront"]["access_token"])
    shop._sleep = lambda _s: None  # type: ignore[method-assign]  # the polls' backoff, not waited out here
    return shop


def _simple(shop: StorefrontClient, handle: str, price: str = "10.00") -> int:
    (result,) = shop.upsert_products([{"handle": handle, "title": handle.title(), "status": "active",
                                       "variants": [{"sku": handle.upper(), "price": price}]}])
    assert result.ok and result.response is not None, result.message
    return int(result.response["id"])


def _bundle(handle: str, price: str) -> dict[str, Any]:
    return {"handle": handle, "title": "Yoga kit", "status": "active", "body_html": "<p>Kit</p>",
            "variants": [{"sku": handle.upper(), "price": price}]}


def test_a_fixed_bundle_is_created_priced_and_its_components_replaced_on_update(fresh_sandbox: Any) -> None:
    shop = _shop(fresh_sandbox)
    mat, strap, block = (_simple(shop, h) for h in ("mat", "strap", "block"))
    sent: list[str] = []
    real = shop.graphql

    def recording(query: str, variables: Any, cost: float | None = None) -> Any:
        sent.append(query.split("(")[0].split()[-1])
        return real(query, variables, cost)

    shop.graphql = recording  # type: ignore[method-assign]
    created = shop.upsert_bundle(_bundle("yoga-kit", "45.00"), [(mat, 1), (strap, 2)])
    assert created.outcome is Outcome.OK and created.message == "created", created.message
    # asynchronous: the operation was polled (CREATED, then ACTIVE, then COMPLETE) before the price was set
    assert sent == ["ComponentOptions", "BundleCreate", "BundleOperation", "BundleOperation", "Product",
                    "ProductSet"]
    found = shop.find_by_handle("yoga-kit")
    assert found is not None and found["id"] == created.response["id"]  # type: ignore[index]
    assert [(v["sku"], v["price"]) for v in found["variants"]] == [("YOGA-KIT", "45.00")]
    assert shop.bundle_components(found["id"]) == [{"handle": "mat", "quantity": 1},
                                                   {"handle": "strap", "quantity": 2}]
    # an update replaces the components (it does not add to them) and keeps the bundle's id
    updated = shop.upsert_bundle(_bundle("yoga-kit", "49.00"), [(mat, 1), (block, 1)], product_id=found["id"])
    assert updated.ok, updated.message
    again = shop.find_by_handle("yoga-kit")
    assert again is not None and again["id"] == found["id"] and again["variants"][0]["price"] == "49.00"
    assert shop.bundle_components(found["id"]) == [{"handle": "mat", "quantity": 1},
                                                   {"handle": "block", "quantity": 1}]


def test_what_shopify_refuses_fails_the_bundle_alone_with_its_message(fresh_sandbox: Any) -> None:
    shop = _shop(fresh_sandbox)
    mat = _simple(shop, "mat")
    kit = shop.upsert_bundle(_bundle("kit", "20.00"), [(mat, 1)])
    assert kit.ok
    # a bundle as a component of a bundle: the background job refuses it (INVALID_INPUT)
    nested = shop.upsert_bundle(_bundle("kit-of-kits", "30.00"), [(mat, 1), (kit.response["id"], 1)])  # type: ignore[index]
    assert (nested.outcome, nested.disposition) == (Outcome.FAILED, Disposition.DEAD_LETTER)
    assert "can't be a component of another bundle" in (nested.message or "") and "INVALID_INPUT" in (
        nested.message or "")
    assert shop.find_by_handle("kit-of-kits") is None
    # a component the shop does not hold: refused before anything is sent
    ghost = shop.upsert_bundle(_bundle("ghost-kit", "5.00"), [(999_999, 1)])
    assert ghost.outcome is Outcome.FAILED and "Product does not exist" in (ghost.message or "")
    # beyond Shopify's limits: no components, a quantity over 2,000
    assert "at least one component" in (shop.upsert_bundle(_bundle("empty", "1.00"), []).message or "")
    assert "outside 1..2000" in (shop.upsert_bundle(_bundle("many", "1.00"), [(mat, 2001)]).message or "")
    # a component with several variants: not one this connector bundles
    tee = shop.upsert_products([{"handle": "tee", "title": "Tee", "options": [{"name": "Size", "values": ["S", "M"]}],
                                 "variants": [{"sku": "T-S", "option1": "S"}, {"sku": "T-M", "option1": "M"}]}])[0]
    several = shop.upsert_bundle(_bundle("tee-kit", "9.00"), [(tee.response["id"], 1)])  # type: ignore[index]
    assert several.outcome is Outcome.FAILED and "several variants" in (several.message or "")


def test_the_sandbox_refuses_as_shopify_does(fresh_sandbox: Any) -> None:
    """The mutations' own refusals (payload ``userErrors``) and the background job's (the operation's, with
    ``ProductBundleMutationUserErrorCode``), read straight off the GraphQL answers."""
    shop = _shop(fresh_sandbox)
    mat = _simple(shop, "mat")
    empty = shop.graphql(BUNDLE_CREATE, {"input": {"title": "Empty", "components": []}}).body["data"]
    assert empty["productBundleCreate"]["productBundleOperation"] is None
    assert empty["productBundleCreate"]["userErrors"] == [
        {"field": ["input", "components"], "message": "At least one component is required."}]

    def finished(components: list[dict[str, Any]]) -> dict[str, Any]:
        answer = shop.graphql(BUNDLE_CREATE, {"input": {"title": "Kit", "components": components}}).body["data"]
        op = answer["productBundleCreate"]["productBundleOperation"]
        assert op["status"] == "CREATED" and op["product"] is None
        statuses = []
        while op["status"] != "COMPLETE":
            op = shop.graphql(BUNDLE_OPERATION, {"id": op["id"]}).body["data"]["productOperation"]
            statuses.append(op["status"])
        assert statuses == ["ACTIVE", "COMPLETE"]
        return op

    unknown = finished([{"productId": "gid://shopify/Product/1", "quantity": 1, "optionSelections": []}])
    assert unknown["product"] is None and unknown["userErrors"] == [
        {"code": "PRODUCT_DOES_NOT_EXIST", "field": ["input", "components", "0", "productId"],
         "message": "Product does not exist."}]
    (sized,) = shop.upsert_products([{"handle": "sized", "title": "Sized", "options": [{"name": "Size", "values": ["L"]}],
                                      "variants": [{"sku": "SIZED-L", "option1": "L"}]}])
    ref = f"gid://shopify/Product/{sized.response['id']}"  # type: ignore[index]
    # every option of a component is to be selected, with values it has
    unselected = finished([{"productId": ref, "quantity": 1, "optionSelections": []}])
    assert [e["code"] for e in unselected["userErrors"]] == ["INVALID_INPUT"]
    option = f"gid://shopify/ProductOption/{sized.response['id']}-1"  # type: ignore[index]
    wrong = finished([{"productId": ref, "quantity": 1, "optionSelections": [
        {"componentOptionId": option, "name": "Size", "values": ["XL"]}]}])
    assert [e["code"] for e in wrong["userErrors"]] == ["INVALID_INPUT"]
    made = finished([{"productId": ref, "quantity": 3, "optionSelections": [
        {"componentOptionId": option, "name": "Size", "values": ["L"]}]},
                     {"productId": f"gid://shopify/Product/{mat}", "quantity": 1, "optionSelections": []}])
    assert made["userErrors"] == [] and made["product"]["id"].startswith("gid://shopify/Product/")
    unknown_op = shop.graphql(BUNDLE_OPERATION, {"id": "gid://shopify/ProductBundleOperation/999"}).body["data"]
    assert unknown_op["productOperation"] is None
