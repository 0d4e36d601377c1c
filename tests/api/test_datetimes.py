"""Every DateTime the API returns has one form: UTC to the second, with a Z. The fields are found by
walking the schema, so a new DateTime field fails here until a query below reads it."""

from __future__ import annotations

import re

from graphql import GraphQLInterfaceType, GraphQLObjectType, get_named_type

from api.graphql.schema import build_schema
from tests.api.conftest import GraphQL, Stack

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def datetime_fields() -> set[str]:
    """Return every field of the schema whose type is DateTime (in a list or not), as "Type.field"."""
    schema = build_schema(introspection=True)._schema
    return {
        f"{name}.{field_name}"
        for name, named in schema.type_map.items()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and not name.startswith("__")
        for field_name, field in named.fields.items()
        if get_named_type(field.type).name == "DateTime"
    }


def read_every_datetime(gql: GraphQL, stack: Stack) -> dict[str, list[str]]:
    """Return the values the API gives for each DateTime field: stamps it imported and ones it made."""
    user = gql.data(
        'mutation { createUser(input: {gender: "F", age: 25, occupation: 1, zipCode: "1"}) { id } }'
    )
    user_id = user["createUser"]["id"]
    movie = stack.dataset.movies[3].id
    rated = gql.data(
        "mutation($u: Int!, $m: Int!) { rateMovie(userId: $u, movieId: $m, rating: 4) { ratedAt } }",
        u=user_id,
        m=movie,
    )
    # Taken back at once: the shared stack's movie keeps the ratings its data gave it (a test reads its
    # count), and its users with ratings those of the data (a test keeps each one's list).
    gql.data("mutation($u: Int!, $m: Int!) { deleteRating(userId: $u, movieId: $m) }", u=user_id, m=movie)
    imported = gql.data("{ user(id: 1) { ratings(first: 3) { nodes { ratedAt } } } }")["user"]["ratings"][
        "nodes"
    ]
    shown = gql.data(
        "query($u: Int!) { recommendations(userId: $u) { impressionId movie { id } } }", u=user_id
    )["recommendations"][0]
    feedback = gql.data(
        "mutation($u: Int!, $i: ID!, $m: Int!) { recordFeedback(userId: $u, impressionId: $i, movieId: $m, kind: CLICK) { recordedAt } }",
        u=user_id, i=shown["impressionId"], m=shown["movie"]["id"],
    )  # fmt: skip
    token = gql.data("mutation($u: Int!) { issueUserToken(userId: $u) { expiresAt } }", u=user_id)
    dataset = gql.data("{ dataset { importedAt } }")["dataset"]
    return {
        "Rating.ratedAt": [rated["rateMovie"]["ratedAt"], *(n["ratedAt"] for n in imported)],
        "ModelInfo.trainedAt": [gql.data("{ modelInfo { trainedAt } }")["modelInfo"]["trainedAt"]],
        "Feedback.recordedAt": [feedback["recordFeedback"]["recordedAt"]],
        "UserToken.expiresAt": [token["issueUserToken"]["expiresAt"]],
        "Dataset.importedAt": [dataset["importedAt"]],
    }


def test_every_datetime_is_utc_to_the_second(gql: GraphQL, stack: Stack) -> None:
    values = read_every_datetime(gql, stack)
    assert set(values) == datetime_fields()  # a DateTime field not read above must be added
    for field, stamps in values.items():
        assert stamps and all(isinstance(s, str) and STAMP.fullmatch(s) for s in stamps), (field, stamps)
