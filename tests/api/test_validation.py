"""Validation through the app: its work stays linear in the document however its fragments spread
one another, and with introspection off its errors suggest no names of the schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from tests.api.conftest import GraphQL, SelectionReads, Stack, fan_out, selection_count


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (fan_out(11), "QUERY_TOO_EXPENSIVE"),  # 2,048 fields once expanded: costs more than 2,000
        (fan_out(60), "QUERY_TOO_EXPENSIVE"),
        (fan_out(60, leaf="a: __typename"), "QUERY_TOO_EXPENSIVE"),  # and 2^60 aliases
    ],
)
def test_fragment_fan_out_is_refused_having_read_each_selection_a_few_times(
    gql: GraphQL, selection_reads: SelectionReads, document: str, code: str
) -> None:
    """50 bytes a level, 2^levels fields expanded: refused before any rule expands it."""
    selections = selection_count(document)
    selection_reads.start(stop=10 * selections)
    body = gql(document)
    assert selection_reads.count < 10 * selections
    assert body["data"] is None and {e["extensions"]["code"] for e in body["errors"]} == {code}


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (fan_out(10), None),  # 1,024 fields expanded, within every limit: it runs
        # Nothing under a page of 0 costs, so every rule of validation reads it, then the page is refused.
        (
            fan_out(60, "{ movies(first: 0) { nodes { ...F0 } } }", "Movie", "similar { score }"),
            "BAD_USER_INPUT",
        ),
    ],
)
def test_fragment_fan_out_within_the_limits_is_validated_and_run_in_linear_work(
    gql: GraphQL, selection_reads: SelectionReads, document: str, code: str | None
) -> None:
    selections = selection_count(document)
    selection_reads.start(stop=25 * selections)
    body = gql(document)
    assert selection_reads.count < 25 * selections  # each of a dozen readers reads a selection once or twice
    if code is None:
        assert body == {"data": {"__typename": "Query"}}
    else:
        assert [e["extensions"]["code"] for e in body["errors"]] == [code]


def test_fields_of_one_name_compared_pairwise_are_refused_once_the_budget_is_spent(gql: GraphQL) -> None:
    """Fields of one name are compared in pairs (OverlappingFieldsCanBeMerged): 222 copies of one field
    within the token limit would be 25,000 comparisons."""
    refused = gql("{ " + "movie(id: 1) { id } " * 222 + "}")
    assert refused["data"] is None
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_EXPENSIVE"]
    assert gql.data("{ " + "movie(id: 1) { id } " * 20 + "}") == {"movie": {"id": 1}}


def test_unknown_and_cyclic_fragments_are_validation_errors(gql: GraphQL) -> None:
    assert gql.error_code("{ ...Missing }") == "GRAPHQL_VALIDATION_FAILED"
    cycle = "{ ...A } fragment A on Query { genres ...B } fragment B on Query { ...A }"
    assert {e["extensions"]["code"] for e in gql(cycle)["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}


MISSPELLED = [
    ("{ movi(id: 1) { title } }", {}, "'movie'"),  # a field
    ("{ movie(idd: 1) { title } }", {}, "'id'"),  # an argument
    ("query($r: [RatedMovieInpt!]!) { recommendationsForProfile(ratedMovies: $r) { score } }", {"r": []}, "'RatedMovieInput'"),
    ('mutation { createUser(input: {gendr: "F"}) { id } }', {}, "'gender'"),  # an input field, written
    ("mutation($i: CreateUserInput!) { createUser(input: $i) { id } }", {"i": {"gendr": "F"}}, "'gender'"),  # in variables
]  # fmt: skip


@pytest.fixture(scope="module")
def open_gql(stack: Stack) -> Iterator[GraphQL]:
    """Return requests to an app that answers introspection, as in development."""
    settings = stack.settings.model_copy(update={"graphql_introspection": True})
    with TestClient(create_app(settings)) as client:
        yield GraphQL(client, stack.api_key)


@pytest.mark.parametrize(("document", "variables", "name"), MISSPELLED)
def test_errors_suggest_no_names_while_introspection_is_off(
    gql: GraphQL, open_gql: GraphQL, document: str, variables: dict[str, object], name: str
) -> None:
    """Production's default: a stranger learns no field, argument or type name from a typo."""
    messages = [e["message"] for e in gql(document, **variables)["errors"]]
    assert not any("Did you mean" in m or name in m for m in messages), messages
    messages = [e["message"] for e in open_gql(document, **variables)["errors"]]
    assert any("Did you mean" in m and name in m for m in messages), messages
