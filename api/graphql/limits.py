"""Depth, alias and cost limits (docs/api.md gives the cost model), checked before the rest of
validation. Each fragment is added up once and reused at every spread, so the work is linear in the
document however many times fragments spread each other. Depth and aliases count as Strawberry's
QueryDepthLimiter and MaxAliasesLimiter do."""

from __future__ import annotations

from dataclasses import dataclass, replace

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from api.graphql.pagination import MAX_PAGE

MAX_DEPTH = 8
MAX_ALIASES = 30
MAX_COST = 2_000
SEARCH_COST = 20  # a field that searches Milvus, against 1 for any other
SIMILAR_UNDER_LIST = 10
SEARCHES = frozenset({"recommendations", "recommendationsForProfile", "similarMovies", "similar"})
# List fields and the item count their default arguments give (first: 20, limit: 10).
LISTS = {"movies": 20, "users": 20, "ratings": 20, "recommendations": 10, "recommendationsForProfile": 10,
         "similarMovies": 10, "similar": 10, "because": 2}  # fmt: skip
# Counts stop here: far over every limit, and numbers this small stay cheap to multiply and print.
CEILING = 10**12


@dataclass(slots=True)
class Totals:
    """What a selection set adds up to, resolved once."""

    cost: int = 0
    similar: int = 0  # the most items a `similar` in it is resolved for; 0 without one
    aliases: int = 0
    depth: int = 0  # the level of its deepest selection, its own selections being at 0

    def add(self, other: Totals, items: int, level: int | None) -> None:
        """Add a fragment's totals, spread `items` times at `level` (None: not counted for depth)."""
        self.cost = min(self.cost + items * other.cost, CEILING)
        self.similar = max(self.similar, min(items * other.similar, CEILING))
        self.aliases = min(self.aliases + other.aliases, CEILING)
        if level is not None:
            self.depth = max(self.depth, level + other.depth)


Spread = tuple[str, int, int | None]  # a fragment's name, the items it is resolved for, its level


def check_limits(document: DocumentNode) -> list[GraphQLError]:
    """Return an error for each limit the document's operations go over; none when within them."""
    errors: list[GraphQLError] = []
    aliases = 0
    problem: str | None = None  # the first reason to refuse on cost; one is enough
    for operation, totals in operation_totals(document):
        if totals.depth > MAX_DEPTH:
            name = operation.name.value if operation.name else "anonymous"
            errors.append(GraphQLError(f"'{name}' exceeds maximum operation depth of {MAX_DEPTH}", operation))
        aliases = min(aliases + totals.aliases, CEILING)
        problem = problem or cost_problem(totals)
    if aliases > MAX_ALIASES:
        errors.append(GraphQLError(f"{shown(aliases)} aliases found. Allowed: {MAX_ALIASES}"))
    if problem is not None:
        errors.append(GraphQLError(problem))
    return errors


def cost_problem(totals: Totals) -> str | None:
    """Return why an operation costs too much, or None."""
    if totals.similar > SIMILAR_UNDER_LIST:
        return (
            f"the query costs too much: similar under a list of {shown(totals.similar, 'up to ')} movies "
            f"(at most {SIMILAR_UNDER_LIST}); ask similarMovies for the movies you show"
        )
    if totals.cost > MAX_COST:
        return (
            f"the query costs {shown(totals.cost)}, more than {MAX_COST}: ask for fewer items or less nesting"
        )
    return None


def shown(count: int, exact: str = "") -> str:
    """Return a count as a message says it: after `exact` when below CEILING, else as over CEILING."""
    return f"over {CEILING}" if count >= CEILING else f"{exact}{count}"


def operation_totals(document: DocumentNode) -> list[tuple[OperationDefinitionNode, Totals]]:
    """Return each operation with its totals, those of the fragments it spreads added. Each fragment is
    read once; a spread that closes a cycle adds nothing (validation refuses cycles after the limits)."""
    own = {
        d.name.value: own_totals(d.selection_set)
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    done: dict[str, Totals] = {}
    for root in own:
        # Depth first without recursion: a fragment is added up once every fragment it spreads is.
        path = {} if root in done else {root: iter(own[root][1])}
        while path:
            name, spreads = next(reversed(path.items()))
            for spread, _, _ in spreads:
                if spread in own and spread not in done and spread not in path:
                    path[spread] = iter(own[spread][1])
                    break
            else:
                path.popitem()
                done[name] = combine(*own[name], done)
    return [
        (d, combine(*own_totals(d.selection_set), done))
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]


def combine(totals: Totals, spreads: list[Spread], done: dict[str, Totals]) -> Totals:
    """Return the totals with those of the fragments spread added (unknown ones add nothing)."""
    result = replace(totals)
    for name, items, level in spreads:
        if name in done:
            result.add(done[name], items, level)
    return result


def own_totals(selection_set: SelectionSetNode) -> tuple[Totals, list[Spread]]:
    """Return the totals of a definition's selections, its spreads left out, and the spreads."""
    totals = Totals()
    spreads: list[Spread] = []
    stack: list[tuple[SelectionSetNode, int, int | None]] = [(selection_set, 1, 0)]
    while stack:
        selections, items, level = stack.pop()
        for selection in selections.selections:
            if level is not None:
                totals.depth = max(totals.depth, level)
            if isinstance(selection, FieldNode):
                name = selection.name.value
                totals.cost = min(totals.cost + items * (SEARCH_COST if name in SEARCHES else 1), CEILING)
                if name == "similar":
                    totals.similar = max(totals.similar, items)
                if selection.alias:
                    totals.aliases += 1
                if selection.selection_set:
                    below = None if level is None or name.startswith("__") else level + 1
                    stack.append((selection.selection_set, min(items * list_size(selection), CEILING), below))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, items, level))
            elif isinstance(selection, FragmentSpreadNode):
                spreads.append((selection.name.value, items, level))
    return totals, spreads


def list_size(field: FieldNode) -> int:
    """Return how many items a field can resolve to: 1 unless it is a list, else its `first` or `limit`
    when written, MAX_PAGE when a variable (validation runs before variables are known), its default."""
    if field.name.value not in LISTS:
        return 1
    for argument in field.arguments or ():
        if argument.name.value in ("first", "limit"):
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(0, min(int(value.value), MAX_PAGE)) if len(value.value) < 12 else MAX_PAGE
            return MAX_PAGE  # a variable: the most it can be
    return LISTS[field.name.value]
