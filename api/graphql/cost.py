"""What an operation will cost, estimated from its document before it runs, and refused over budget.

Each field counts 1, a field that searches Milvus counts SEARCH_COST, and everything under a list
counts once per item the list can hold: its `first` or `limit` argument when written in the query,
the largest page (100) when it comes from a variable (validation runs once per document, before
variables are known), the field's default otherwise. `similar` under a list of more than
SIMILAR_UNDER_LIST movies is refused outright: one Milvus search per movie of a page.

    { users(first: 100) { nodes { ratings(first: 100) {
        nodes { movie { similar(limit: 100) { score } } } } } } }

asked for 10,000 searches in 95 bytes; it costs more than 2,000,000 here and is refused.
"""

from __future__ import annotations

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

from api.graphql.pagination import MAX_PAGE

MAX_COST = 2_000
SEARCH_COST = 20  # a field that searches Milvus, against 1 for any other
SIMILAR_UNDER_LIST = 10
SEARCHES = frozenset({"recommendations", "recommendationsForProfile", "similarMovies", "similar"})
# List fields and the item count their default arguments give (first: 20, limit: 10).
LISTS = {"movies": 20, "users": 20, "ratings": 20, "recommendations": 10, "recommendationsForProfile": 10,
         "similarMovies": 10, "similar": 10, "because": 2}  # fmt: skip


class CostLimit(ValidationRule):
    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        document = context.document
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.problem: str | None = None  # the first reason to refuse; one error is enough
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            cost = self.cost(definition.selection_set, 1, frozenset())
            if cost > MAX_COST and self.problem is None:
                self.problem = (
                    f"the query costs {cost}, more than {MAX_COST}: ask for fewer items or less nesting"
                )
        if self.problem is not None:
            context.report_error(GraphQLError(self.problem))

    def cost(self, selections: SelectionSetNode | None, items: int, spread: frozenset[str]) -> int:
        """Return the cost of a selection set resolved `items` times (spread: the fragments above,
        so that a cycle, which validation refuses anyway, ends here)."""
        if selections is None:
            return 0
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                total += items * (SEARCH_COST if name in SEARCHES else 1)
                size = self.list_size(selection) if name in LISTS else 1
                if name == "similar" and items > SIMILAR_UNDER_LIST and self.problem is None:
                    self.problem = (
                        f"the query costs too much: similar under a list of up to {items} movies "
                        f"(at most {SIMILAR_UNDER_LIST}); ask similarMovies for the movies you show"
                    )
                total += self.cost(selection.selection_set, items * size, spread)
            elif isinstance(selection, InlineFragmentNode):
                total += self.cost(selection.selection_set, items, spread)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in spread:
                    total += self.cost(fragment.selection_set, items, spread | {name})
            if total > MAX_COST * 1000:  # far over already: stop counting
                return total
        return total

    @staticmethod
    def list_size(field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value in ("first", "limit"):
                value = argument.value
                if isinstance(value, IntValueNode):
                    return max(0, min(int(value.value), MAX_PAGE)) if len(value.value) < 12 else MAX_PAGE
                return MAX_PAGE  # a variable: the most it can be
        return LISTS[field.name.value]
