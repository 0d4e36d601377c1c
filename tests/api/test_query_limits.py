"""The depth, alias and cost limits (api.graphql.limits) count ordinary documents as before, refuse at
the same bounds, and read each selection of a document once however its fragments spread."""

from __future__ import annotations

import pytest
from graphql import FragmentDefinitionNode, parse, validate
from strawberry.extensions.max_aliases import count_fields_with_alias
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from api.graphql.limits import MAX_ALIASES, MAX_COST, MAX_DEPTH, check_limits, operation_totals
from api.graphql.schema import build_schema
from tests.api.conftest import SelectionReads, fan_out, selection_count

# Ordinary documents and their cost under the cost model of api/graphql/limits.py, as counted by the
# rule that walked every fragment at every spread.
ORDINARY = [
    ("{ movie(id: 1) { title } }", 2),
    ("{ movies(first: 10) { nodes { id similar(limit: 10) { score movie { title } } } } }", 521),
    ("{ recommendations(userId: 1, limit: 20) { score movie { id title genres averageRating } because { id } } }", 200),
    ("query($n: Int!) { movies(first: $n) { nodes { id title } } }", 301),
    ("{ user(id: 1) { ratings { nodes { rating movie { title genres } } } } }", 102),
    ("{ movies(first: 5) { nodes { ...Card similar(limit: 3) { movie { ...Card } } } } } fragment Card on Movie { id title ...Stats } fragment Stats on Movie { averageRating ratingsCount }", 201),
    ("{ a: movie(id: 1) { ... on Movie { t: title } } b: movie(id: 2) { title } }", 4),
    ("{ __schema { types { name fields { name type { name ofType { name ofType { name ofType { name ofType { name } } } } } } } } }", 15),
    ("{ movies(first: 1000000000000000) { nodes { id } } movies(first: -3) { nodes { id } } }", 202),
    ("fragment F on Movie { similar { movie { title } } } { movies(first: 10) { nodes { ...F } } }", 411),
    ("{ users(first: 100) { nodes { ratings(first: 100) { nodes { movie { similar(limit: 100) { score } } } } } } }", 1_220_201),
]  # fmt: skip


@pytest.mark.parametrize(("document", "cost"), ORDINARY)
def test_ordinary_documents_cost_nest_and_alias_as_before(document: str, cost: int) -> None:
    """Cost as the cost model says; depth and aliases as Strawberry's own limiters count them."""
    parsed = parse(document)
    [(operation, totals)] = operation_totals(parsed)
    depths: dict[str, int] = {}
    validate(
        build_schema()._schema, parsed, [depth_validator(99, should_ignore=None, callback=depths.update)]
    )
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    assert totals.cost == cost
    assert totals.depth == depths["anonymous"]
    assert totals.aliases == count_fields_with_alias(operation, fragments)


def nested(depth: int) -> str:
    """Return a document of cheap fields nested `depth` levels below its first."""
    pairs = (depth - 1) // 2  # similar { movie { ... } }: two levels each
    leaf = "id" if depth % 2 else "similar(limit: 1) { score }"
    return "{ movie(id: 1) {" + " similar(limit: 1) { movie {" * pairs + f" {leaf} " + "} } " * pairs + "} }"


def aliases(count: int) -> str:
    return " ".join(f"a{i}: genres" for i in range(count))


@pytest.mark.parametrize(
    ("within", "over", "message"),
    [
        (nested(MAX_DEPTH), nested(MAX_DEPTH + 1), "'anonymous' exceeds maximum operation depth of 8"),
        (f"{{ {aliases(30)} }}", f"{{ {aliases(31)} }}", "31 aliases found. Allowed: 30"),
        # Aliases of every operation count, a fragment's once per spread.
        (f"query A {{ {aliases(15)} }} query B {{ {aliases(15)} }}", f"query A {{ {aliases(16)} }} query B {{ {aliases(15)} }}", "31 aliases found"),
        (f"{{ ...A ...A }} fragment A on Query {{ {aliases(15)} }}", f"{{ ...A ...A genres: genres }} fragment A on Query {{ {aliases(15)} }}", "31 aliases found"),
        # 1 for movies, 100 for nodes, 100 for each id, 1 for each genres.
        ("{ movies(first: 100) { nodes { " + "id " * 18 + "} } " + "genres " * 99 + "}",
         "{ movies(first: 100) { nodes { " + "id " * 18 + "} } " + "genres " * 100 + "}", "the query costs 2001, more than 2000"),
        ("{ movies(first: 10) { nodes { similar(limit: 1) { score } } } }",
         "{ movies(first: 11) { nodes { similar(limit: 1) { score } } } }", "similar under a list of up to 11 movies"),
    ],
)  # fmt: skip
def test_limits_refuse_at_the_same_bounds(within: str, over: str, message: str) -> None:
    assert check_limits(parse(within)) == []
    [error] = check_limits(parse(over))
    assert message in error.message
    assert (MAX_DEPTH, MAX_ALIASES, MAX_COST) == (8, 30, 2_000)


@pytest.mark.parametrize(
    ("document", "errors"),
    [
        (fan_out(60), ["the query costs over 1000000000000, more than 2000"]),
        (fan_out(60, leaf="a: __typename"), ["over 1000000000000 aliases found", "the query costs over"]),
        # Under a page of 0 nothing costs: the limits pass it and the rest of validation reads it.
        (fan_out(60, "{ movies(first: 0) { nodes { ...F0 } } }", "Movie", "similar { score }"), []),
        ("{ ...Missing genres }", []),  # an unknown fragment: validation says so after the limits
        (
            "{ ...A } fragment A on Query { genres ...B } fragment B on Query { ...A }",
            [],
        ),  # a cycle: likewise
    ],
)
def test_limits_read_each_selection_once(
    document: str, errors: list[str], selection_reads: SelectionReads
) -> None:
    selections = selection_count(document)
    parsed = parse(document)
    selection_reads.start(stop=10 * selections)
    found = check_limits(parsed)
    assert selection_reads.count == selections
    assert len(found) == len(errors)
    assert all(expected in error.message for expected, error in zip(errors, found, strict=True))
