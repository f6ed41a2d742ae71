"""The storefront client and the sandbox shop held to Shopify's published GraphQL Admin schema (2026-04).

* The sandbox's SDL is a subset of the published one: every type, field, argument and enum value it declares
  exists there with the same type.
* Every GraphQL document the client sends (collected by running it against the sandbox), with the variables it
  sent, validates against the published schema, and its requested cost is within the 1,000-point limit.
* A drifted document (one sending ``ignoreCompareQuantity``, gone in 2026-04) fails that validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from catalog_sync.connectors.shopify_cost import MAX_QUERY_COST, requested_cost
from catalog_sync.connectors.storefront import (
    BULK_PRODUCT_SET,
    SET_QUANTITIES,
    LevelWrite,
    StorefrontClient,
    product_set_input,
)
from catalog_sync.flows.systems import Systems
from tests.contract.conftest import spec_path

SPEC = "shopify-admin-2026-04.graphql"


@cache
def _published(path: str) -> GraphQLSchema:
    with open(path, encoding="utf-8") as handle:
        return build_schema(handle.read())


@pytest.fixture(scope="module")
def published() -> GraphQLSchema:
    return _published(str(spec_path(SPEC)))


def problems_of(schema: GraphQLSchema, query: str, variables: Mapping[str, Any]) -> list[str]:
    """Why ``query`` with ``variables`` would be refused by ``schema`` (empty when it would not)."""
    document = parse(query)
    found = [e.message for e in validate(schema, document)]
    if found:
        return found
    for operation in (d for d in document.definitions if isinstance(d, OperationDefinitionNode)):
        coerced = get_variable_values(schema, operation.variable_definitions or [], dict(variables))
        if isinstance(coerced, list):
            found.extend(e.message for e in coerced)
    return found


def test_sandbox_schema_is_a_subset_of_the_published_one(published: GraphQLSchema) -> None:
    from catalog_sync_sandbox.storefront_graphql import SCHEMA

    gaps: list[str] = []
    for name, kind in SCHEMA.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        real = published.type_map.get(name)
        if real is None or type(real) is not type(kind):
            gaps.append(f"type {name}: {'absent' if real is None else type(real).__name__}")
            continue
        if isinstance(kind, GraphQLEnumType):
            gaps.extend(f"enum {name}.{v}" for v in kind.values if v not in real.values)  # type: ignore[attr-defined]
        elif isinstance(kind, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in kind.fields.items():
                real_field = real.fields.get(field_name)  # type: ignore[attr-defined]
                if real_field is None or str(real_field.type) != str(field.type):
                    gaps.append(f"{name}.{field_name}: {field.type} vs "
                                f"{real_field.type if real_field else 'absent'}")
                    continue
                for arg_name, arg in getattr(field, "args", {}).items():
                    real_arg = real_field.args.get(arg_name)
                    if real_arg is None or str(real_arg.type) != str(arg.type):
                        gaps.append(f"{name}.{field_name}({arg_name}): {arg.type} vs "
                                    f"{real_arg.type if real_arg else 'absent'}")
            if isinstance(kind, GraphQLObjectType):
                ours = {i.name for i in kind.interfaces}
                gaps.extend(f"{name} implements {i}" for i in ours - {i.name for i in real.interfaces})  # type: ignore[attr-defined]
        elif not isinstance(kind, GraphQLScalarType | GraphQLUnionType):
            gaps.append(f"{name}: unexpected kind {type(kind).__name__}")
    for directive in SCHEMA.directives:
        real_directive = published.get_directive(directive.name)
        if real_directive is None:
            gaps.append(f"@{directive.name}: absent")
        else:
            gaps.extend(f"@{directive.name}({a})" for a, arg in directive.args.items()
                        if a not in real_directive.args or str(real_directive.args[a].type) != str(arg.type))
    assert not gaps, "the sandbox declares what Shopify 2026-04 does not:\n" + "\n".join(gaps)
    assert SCHEMA.query_type is not None and SCHEMA.query_type.name == published.query_type.name  # type: ignore[union-attr]


def _recorded_session(sandbox: Any) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every (query, variables, cost extension) the client sends in a session that uses each of its operations."""
    sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    systems = Systems.from_base_url(sandbox.url, sandbox.credentials)
    shop: StorefrontClient = systems.storefront
    sent: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    real = shop.graphql

    def recording(query: str, variables: Mapping[str, Any], cost: float | None = None) -> Any:
        result = real(query, variables, cost)
        sent.append((query, dict(variables), (result.body.get("extensions") or {}).get("cost") or {}))
        return result

    shop.graphql = recording  # type: ignore[method-assign]
    sizes = [str(n) for n in range(30)]  # more variants than a product read asks for: the rest are paged
    tee = {"handle": "contract-tee", "title": "Tee", "status": "active", "tags": "tops, sale", "vendor": "Luma",
           "body_html": "<p>Soft</p>", "product_type": "Tops", "options": [{"name": "Size", "values": sizes}],
           "variants": [{"sku": f"CT-{s}", "option1": s, "price": "10.00", "barcode": "012345678905",
                         "weight": 0.2, "weight_unit": "kg"} for s in sizes],
           "images": [{"src": f"https://cdn.example/tee-{n}.jpg", "alt": f"view {n}"} for n in range(12)],
           "metafields": [{"namespace": "catalog_sync", "key": "sku", "value": "CT",
                           "type": "single_line_text_field"}]}
    try:
        locations = shop.locations()
        created = shop.upsert_products([tee, {**tee, "handle": "contract-mug", "title": "Mug"}])
        assert all(r.ok for r in created)
        assert shop.upsert_product({"handle": "contract-tee", "title": "Tee v2"}).ok
        found = shop.find_by_handle("contract-tee")
        assert found is not None and len(found["variants"]) == 30 and len(found["images"]) == 12
        assert found["metafields"] == [{"namespace": "catalog_sync", "key": "sku", "value": "CT"}]
        assert shop.get_product(found["id"]) is not None
        assert [p for page in shop.iter_products(updated_at_min="2020-01-01T00:00:00Z", status="active")
                for p in page.records]
        item = found["variants"][0]["inventory_item_id"]
        written = shop.set_inventory_levels([LevelWrite("a", "CT-0", locations[0]["id"], item, 4, 1)])
        assert [r.ok for r in written] == [True]
        assert shop.inventory_levels([item]) == [
            {"inventory_item_id": item, "location_id": locations[0]["id"], "available": 4}]
        assert shop.delete_product(found["id"]).ok
        assert shop.variant_count() >= 30
        shop.bulk_threshold, shop.bulk_poll_s = 2, 0.05  # a first load: creates go out as one bulk operation
        bulk = shop.upsert_products([{**tee, "handle": f"contract-bulk-{n}"} for n in range(2)], existing={})
        assert all(r.ok for r in bulk) and len(shop.bulk_operations) == 1
        # a product fixed bundle: created, polled, priced, its components replaced, read back
        shop._sleep = lambda _s: None  # type: ignore[method-assign]
        parts = [r.response["id"] for r in shop.upsert_products(  # type: ignore[index]
            [{"handle": f"contract-part-{n}", "title": f"Part {n}", "variants": [{"sku": f"CP-{n}", "price": "2.00"}]}
             for n in range(2)])]
        kit = {"handle": "contract-kit", "title": "Kit", "status": "active", "variants": [{"sku": "CK", "price": "3.00"}]}
        made = shop.upsert_bundle(kit, [(parts[0], 1), (parts[1], 2)])
        assert made.ok, made.message
        assert shop.upsert_bundle(kit, [(parts[1], 1)], product_id=made.response["id"]).ok  # type: ignore[index]
        assert shop.bundle_components(made.response["id"]) == [  # type: ignore[index]
            {"handle": "contract-part-1", "quantity": 1}]
    finally:
        systems.close()
    return sent


def test_every_document_the_client_sends_is_valid_2026_04_within_the_cost_limit(
        published: GraphQLSchema, fresh_sandbox: Any) -> None:
    sent = _recorded_session(fresh_sandbox)
    operations = {parse(q).definitions[0].name.value for q, _, _ in sent}  # type: ignore[attr-defined]
    assert {"Locations", "ProductSet", "ProductsByHandle", "Product", "MoreVariants", "MoreMedia", "Products",
            "SetQuantities", "Levels", "ProductDelete", "VariantsCount", "StagedUpload", "BulkRun",
            "BulkOperation", "ComponentOptions", "BundleCreate", "BundleUpdate", "BundleOperation",
            "BundleComponents"} <= operations
    for query, variables, cost in sent:
        assert problems_of(published, query, variables) == [], query
        computed = requested_cost(query, variables)
        assert computed <= MAX_QUERY_COST, query
        # the sandbox, reading the cost off its schema, charges what the client computed from the document
        assert cost.get("requestedQueryCost") == computed, query


def test_the_bulk_operations_line_mutation_is_valid_2026_04(published: GraphQLSchema) -> None:
    """The mutation a bulk operation runs once per staged JSONL line, with the variables of one line."""
    product = {"handle": "bulk-tee", "title": "Tee", "status": "active", "tags": "a",
               "options": [{"name": "Size", "values": ["S"]}],
               "variants": [{"sku": "BT-S", "option1": "S", "price": "1.00", "weight": 1, "weight_unit": "kg"}],
               "images": [{"src": "https://cdn.example/b.jpg", "alt": "b"}],
               "metafields": [{"namespace": "catalog_sync", "key": "sku", "value": "BT", "type": "single_line_text_field"}]}
    line = {"input": product_set_input(product, None), "identifier": {"handle": "bulk-tee"}}
    assert problems_of(published, BULK_PRODUCT_SET, line) == []


def test_a_drifted_document_fails_validation(published: GraphQLSchema) -> None:
    lv = LevelWrite("a", "SKU", 1, 2, 3, 4)
    good = StorefrontClient.set_quantities_variables([lv])
    assert problems_of(published, SET_QUANTITIES, good) == []
    # the 2025 way of waiving the compare check: a field 2026-04 no longer has
    drifted = {**good, "input": {**good["input"], "ignoreCompareQuantity": True}}
    assert any("ignoreCompareQuantity" in p for p in problems_of(published, SET_QUANTITIES, drifted))
    old_field = SET_QUANTITIES.replace("quantityAfterChange", "quantityAfterChange compareQuantity")
    assert problems_of(published, old_field, good)
