"""Mutations through the real app: users, ratings and movies, and their effect on recommendations."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.db import make_engine
from ml.movielens.format import OCCUPATIONS
from tests.api.conftest import GraphQL, Stack

CREATE_USER = """mutation($g: String!) { createUser(input: {gender: $g, age: 25, occupation: 12, zipCode: "02139"}) {
    id gender age occupation zipCode } }"""
RATE = "mutation($u: Int!, $m: Int!, $r: Float!) { rateMovie(userId: $u, movieId: $m, rating: $r) { rating ratedAt movie { id } } }"
RECS = (
    "query($u: Int!) { recommendations(userId: $u, limit: 10) { score source movie { id } because { id } } }"
)


def _new_user(gql: GraphQL) -> int:
    user: int = gql.data(CREATE_USER, g="F")["createUser"]["id"]
    return user


def test_a_user_without_ratings_gets_the_most_rated_movies_marked_as_such(gql: GraphQL) -> None:
    created = gql.data(CREATE_USER, g="M")["createUser"]
    assert (created["gender"], created["age"], created["occupation"]) == ("M", 25, "programmer")
    query = "query($u: Int!) { recommendations(userId: $u, limit: 10) { score source because { id } movie { ratingsCount } } }"
    recs = gql.data(query, u=created["id"])["recommendations"]
    assert len(recs) == 10 and all(r["because"] == [] and r["source"] == "popularity" for r in recs)
    counts = [r["movie"]["ratingsCount"] for r in recs]
    assert counts == sorted(counts, reverse=True) and recs[0]["score"] == 1.0
    most = gql.data("{ movies(first: 100) { nodes { ratingsCount } } }")["movies"]["nodes"]
    assert counts[0] >= max(n["ratingsCount"] for n in most)


@pytest.mark.parametrize(
    "input_",
    [
        '{gender: "X", age: 25, occupation: 1, zipCode: "1"}',
        '{gender: "F", age: 3, occupation: 1, zipCode: "1"}',
        '{gender: "F", age: 25, occupation: 21, zipCode: "1"}',
        '{gender: "F", age: 25, occupation: 1, zipCode: "; DROP"}',
    ],
)
def test_bad_user_input_is_refused(gql: GraphQL, input_: str) -> None:
    assert gql.error_code(f"mutation {{ createUser(input: {input_}) {{ id }} }}") == "BAD_USER_INPUT"


def test_a_new_rating_changes_the_next_recommendations_at_once(gql: GraphQL, stack: Stack) -> None:
    user = _new_user(gql)
    before = [r["movie"]["id"] for r in gql.data(RECS, u=user)["recommendations"]]
    for movie in stack.dataset.movies[40:45]:
        assert gql.data(RATE, u=user, m=movie.id, r=5)["rateMovie"]["rating"] == 5
    after = gql.data(RECS, u=user)["recommendations"]
    assert [r["movie"]["id"] for r in after] != before
    assert {r["source"] for r in after} == {"model"}
    rated = {m.id for m in stack.dataset.movies[40:45]}
    assert not {r["movie"]["id"] for r in after} & rated
    assert {b["id"] for r in after for b in r["because"]} <= rated


def test_rating_again_updates_and_delete_removes(gql: GraphQL, stack: Stack) -> None:
    user = _new_user(gql)
    movie = stack.dataset.movies[7].id
    gql.data(RATE, u=user, m=movie, r=2)
    gql.data(RATE, u=user, m=movie, r=4)
    ratings = gql.data("query($u: Int!) { user(id: $u) { ratings { nodes { movieId rating } } } }", u=user)
    assert ratings["user"]["ratings"]["nodes"] == [{"movieId": movie, "rating": 4}]
    assert gql.data("mutation($u: Int!, $m: Int!) { deleteRating(userId: $u, movieId: $m) }", u=user, m=movie)
    ratings = gql.data("query($u: Int!) { user(id: $u) { ratings { nodes { movieId } } } }", u=user)
    assert ratings["user"]["ratings"]["nodes"] == []
    again = "mutation($u: Int!, $m: Int!) { deleteRating(userId: $u, movieId: $m) }"
    assert gql.error_code(again, u=user, m=movie) == "NOT_FOUND"


@pytest.mark.parametrize(
    ("rating", "code"),
    [(0, "BAD_USER_INPUT"), (6, "BAD_USER_INPUT"), (-1, "BAD_USER_INPUT"), (4.3, "BAD_USER_INPUT"),
     (0.25, "BAD_USER_INPUT"), (5.5, "BAD_USER_INPUT")],
)  # fmt: skip
def test_ratings_outside_half_stars_are_refused(gql: GraphQL, stack: Stack, rating: float, code: str) -> None:
    user = _new_user(gql)
    assert gql.error_code(RATE, u=user, m=stack.dataset.movies[0].id, r=rating) == code
    nodes = gql.data("query($u: Int!) { user(id: $u) { ratings { nodes { movieId } } } }", u=user)
    assert nodes["user"]["ratings"]["nodes"] == []


def test_half_stars_are_kept_and_read_back(gql: GraphQL, stack: Stack) -> None:
    user = _new_user(gql)
    movies = [m.id for m in stack.dataset.movies[10:13]]
    for movie, stars in zip(movies, (0.5, 3.5, 5), strict=True):
        assert gql.data(RATE, u=user, m=movie, r=stars)["rateMovie"]["rating"] == stars
    nodes = gql.data("query($u: Int!) { user(id: $u) { ratings { nodes { movieId rating } } } }", u=user)
    assert sorted((n["movieId"], n["rating"]) for n in nodes["user"]["ratings"]["nodes"]) == [
        (movies[0], 0.5),
        (movies[1], 3.5),
        (movies[2], 5.0),
    ]
    recs = gql.data("query($u: Int!) { recommendations(userId: $u) { movie { id } } }", u=user)
    assert len(recs["recommendations"]) == 10
    # what the next training reads: the half stars, not truncated
    from api.db import make_engine, make_session_factory
    from api.versions.training_data import load_training_data

    engine = make_engine(stack.settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        ratings = load_training_data(session=session).ratings
    engine.dispose()
    mine = ratings.user_id == user
    assert sorted(zip(ratings.movie_id[mine].tolist(), ratings.rating[mine].tolist(), strict=True)) == [
        (movies[0], 0.5),
        (movies[1], 3.5),
        (movies[2], 5.0),
    ]


def test_rating_unknown_users_or_movies_is_not_found(gql: GraphQL, stack: Stack) -> None:
    assert gql.error_code(RATE, u=999999, m=stack.dataset.movies[0].id, r=3) == "NOT_FOUND"
    assert gql.error_code(RATE, u=stack.dataset.users[0].id, m=999999, r=3) == "NOT_FOUND"


def test_a_created_movie_is_recommendable_at_once(gql: GraphQL, stack: Stack) -> None:
    query = """mutation { createMovie(input: {title: "Brand New Picture (2001)", year: 2001, genres: ["Sci-Fi", "Drama"]})
        { id title year genres averageRating ratingsCount } }"""
    movie = gql.data(query)["createMovie"]
    assert (movie["year"], movie["genres"], movie["ratingsCount"], movie["averageRating"]) == (
        2001,
        ["Drama", "Sci-Fi"],
        0,
        None,
    )
    similar = gql.data(
        "query($m: Int!) { similarMovies(movieId: $m, limit: 5) { movie { id } } }", m=movie["id"]
    )
    assert len(similar["similarMovies"]) == 5
    # Recommendations restricted to its year can reach it: it is in the active collection.
    user = _new_user(gql)
    gql.data(RATE, u=user, m=stack.dataset.movies[0].id, r=4)  # a rating, so the model ranks for them
    recs = gql.data(
        "query($u: Int!) { recommendations(userId: $u, limit: 100, yearFrom: 2001, yearTo: 2001) { movie { id } } }",
        u=user,
    )["recommendations"]
    assert movie["id"] in {r["movie"]["id"] for r in recs}


def test_created_movie_input_is_validated(gql: GraphQL) -> None:
    assert gql.error_code('mutation { createMovie(input: {title: "  "}) { id } }') == "BAD_USER_INPUT"
    assert (
        gql.error_code('mutation { createMovie(input: {title: "X", genres: ["Bogus"]}) { id } }')
        == "BAD_USER_INPUT"
    )
    assert (
        gql.error_code('mutation { createMovie(input: {title: "X", year: 3000}) { id } }') == "BAD_USER_INPUT"
    )
    control = "mutation($t: String!) { createMovie(input: {title: $t}) { id } }"
    assert gql.error_code(control, t="Bad\u0000Title") == "BAD_USER_INPUT"
    assert gql.error_code(control, t="\u200b") == "BAD_USER_INPUT"
    long_title = "x" * 256
    assert (
        gql.error_code(f'mutation {{ createMovie(input: {{title: "{long_title}"}}) {{ id }} }}')
        == "BAD_USER_INPUT"
    )


def test_a_user_without_demographics_is_created_read_as_unknown_and_served(
    gql: GraphQL, stack: Stack
) -> None:
    created = gql.data("mutation { createUser(input: {}) { id gender age occupationId occupation zipCode } }")
    user = created["createUser"]
    assert {k: v for k, v in user.items() if k != "id"} == dict.fromkeys(
        ("gender", "age", "occupationId", "occupation", "zipCode")
    )
    partial = gql.data("mutation { createUser(input: {age: 35}) { gender age occupation } }")["createUser"]
    assert partial == {"gender": None, "age": 35, "occupation": None}
    assert gql.error_code('mutation { createUser(input: {gender: "X"}) { id } }') == "BAD_USER_INPUT"
    for movie in stack.dataset.movies[20:24]:
        gql.data(RATE, u=user["id"], m=movie.id, r=4.5)
    recs = gql.data("query($u: Int!) { recommendations(userId: $u) { source movie { id } } }", u=user["id"])
    assert len(recs["recommendations"]) == 10 and {r["source"] for r in recs["recommendations"]} == {"model"}
    visitor = gql.data(
        "query($r: [RatedMovieInput!]!) { recommendationsForProfile(ratedMovies: $r) { movie { id } } }",
        r=[{"movieId": m.id, "rating": 5} for m in stack.dataset.movies[:3]],
    )
    assert len(visitor["recommendationsForProfile"]) == 10


def test_an_occupation_a_dataset_named_is_listed_taken_and_served(gql: GraphQL, stack: Stack) -> None:
    """An occupation beyond ML-1M's, as an import adds one: the API takes it, names it, and the model
    (which never saw it) serves the user as one whose occupation it does not know."""
    engine = make_engine(stack.settings.resolved_database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO occupations (id, name) VALUES (30000, 'lighthouse keeper')"))
    engine.dispose()
    listed = gql.data("{ occupations { id name } }")["occupations"]
    assert [o["name"] for o in listed[:21]] == list(OCCUPATIONS) and listed[-1]["id"] == 30000
    created = gql.data("mutation { createUser(input: {occupation: 30000}) { id occupationId occupation } }")
    user = created["createUser"]
    assert (user["occupationId"], user["occupation"]) == (30000, "lighthouse keeper")
    rated = [{"movieId": m.id, "rating": 5} for m in stack.dataset.movies[:3]]
    query = "query($r: [RatedMovieInput!]!) { recommendationsForProfile(occupation: 30000, ratedMovies: $r) { score } }"
    assert len(gql.data(query, r=rated)["recommendationsForProfile"]) == 10
    error = gql("mutation { createUser(input: {occupation: 30001}) { id } }")["errors"][0]
    assert error["message"] == (
        "occupation must be an occupation id (0-20, 30000; the occupations query names them), or left out"
    )
