"""The requested cost of a Shopify GraphQL Admin document, computed as Shopify documents it, and the plans' buckets.

Shopify meters the GraphQL Admin API in points (https://shopify.dev/docs/api/usage/rate-limits):

* a scalar or enum field costs 0, an object 1;
* a connection (a field taking ``first``/``last``) costs 2 plus the number of nodes it asks for times the cost of
  one node's selection;
* a mutation field costs 10 (plus what its payload asks for beyond the payload object itself, such as a
  connection of the product it returns);
* a list asked for by ids (``nodes(ids: [...])``) costs one node's selection per id;
* a single request may ask for at most :data:`MAX_QUERY_COST` points (else ``MAX_COST_EXCEEDED``).

The rule is applied to the document alone (no schema is needed): a field with a selection set is an object, one
with ``first`` or ``last`` is a connection. Fragments count in full (an upper bound: Shopify charges what a
fragment could select). This is the cost a request is admitted on; what the bucket finally keeps is the
``actualQueryCost`` Shopify reports in ``extensions.cost``, usually less.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

#: Shopify's single-query limit.
MAX_QUERY_COST: Final = 1000
MUTATION_COST: Final = 10
CONNECTION_COST: Final = 2


@dataclass(frozen=True)
class Plan:
    """A Shopify plan's GraphQL Admin bucket: how many points it holds and how many it restores a second."""

    name: str
    maximum_available: float
    restore_rate: float


#: Buckets by plan (points, points restored per second), as Shopify publishes them.
PLANS: Final[Mapping[str, Plan]] = {
    "standard": Plan("standard", 1000, 100),
    "advanced": Plan("advanced", 2000, 200),
    "plus": Plan("plus", 10000, 1000),
    "enterprise": Plan("enterprise", 20000, 2000),
}


def plan(name: str | None) -> Plan:
    """The plan called ``name`` (default ``standard``); an unknown name is a ValueError naming the known ones."""
    key = (name or "standard").strip().lower()
    if key not in PLANS:
        raise ValueError(f"unknown Shopify plan {name!r} (known: {', '.join(PLANS)})")
    return PLANS[key]


def requested_cost(document: str | DocumentNode, variables: Mapping[str, Any] | None = None,
                   operation_name: str | None = None) -> int:
    """The requested cost of the (named, or only) operation of ``document`` with ``variables``."""
    doc = parse(document) if isinstance(document, str) else document
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)
                  and (operation_name is None or (d.name is not None and d.name.value == operation_name))]
    if len(operations) != 1:
        raise ValueError("the document must hold exactly one operation (or name it)")
    operation = operations[0]
    values = dict(variables or {})
    counter = _Counter(fragments, values)
    if operation.operation is OperationType.MUTATION:
        return sum(MUTATION_COST + counter.selection(f.selection_set) for f in counter.fields(operation.selection_set))
    return counter.selection(operation.selection_set)


class _Counter:
    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode], variables: dict[str, Any]) -> None:
        self.fragments = fragments
        self.variables = variables

    def fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        out: list[FieldNode] = []
        for node in (selection_set.selections if selection_set else ()):
            if isinstance(node, FieldNode):
                out.append(node)
            elif isinstance(node, InlineFragmentNode):
                out.extend(self.fields(node.selection_set))
            elif isinstance(node, FragmentSpreadNode) and node.name.value in self.fragments:
                out.extend(self.fields(self.fragments[node.name.value].selection_set))
        return out

    def argument(self, field: FieldNode, name: str) -> Any:
        for arg in field.arguments or ():
            if arg.name.value == name:
                return value_from_ast_untyped(arg.value, self.variables)
        return None

    def selection(self, selection_set: SelectionSetNode | None) -> int:
        return sum(self.field(f) for f in self.fields(selection_set))

    def field(self, field: FieldNode) -> int:
        if field.selection_set is None:
            return 0  # a scalar or an enum
        size = self.argument(field, "first") or self.argument(field, "last")
        if isinstance(size, int):
            return CONNECTION_COST + size * self.connection_node(field)
        ids = self.argument(field, "ids")
        if isinstance(ids, list):
            return len(ids) * (1 + self.selection(field.selection_set))
        return 1 + self.selection(field.selection_set)

    def connection_node(self, field: FieldNode) -> int:
        """The cost of one node of a connection: what ``nodes`` (or ``edges { node }``) selects, plus the node."""
        per_node = 0
        for child in self.fields(field.selection_set):
            name = child.name.value
            if name == "nodes":
                per_node = max(per_node, 1 + self.selection(child.selection_set))
            elif name == "edges":
                inner = sum(1 + self.selection(g.selection_set) if g.name.value == "node" else self.field(g)
                            for g in self.fields(child.selection_set))
                per_node = max(per_node, inner)
        return per_node


def largest_fitting(build: Callable[[int], tuple[str, Mapping[str, Any]]], upper: int,
                    budget: int = MAX_QUERY_COST) -> int:
    """The largest ``n`` in ``1..upper`` whose document ``build(n)`` (query, variables) costs at most ``budget``;
    0 when even one does not fit. Cost grows with ``n``, so a binary search finds it."""
    low, high, best = 1, max(upper, 0), 0
    while low <= high:
        mid = (low + high) // 2
        query, variables = build(mid)
        if requested_cost(query, variables) <= budget:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best
