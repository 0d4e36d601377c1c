"""Recommendations through the real app: ranking, filters, explanations, and the no-model case."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool
from starlette.testclient import TestClient

from api.app import create_app
from tests.api.conftest import GraphQL, Stack, build_stack
from tests.conftest import DatabaseFactory

GUARD_S = 60  # only ends a test that would otherwise hang
RECS = "query($u: Int!, $n: Int!) { recommendations(userId: $u, limit: $n) { score movie { id genres year } because { id } } }"


def _rated(stack: Stack, user_id: int) -> dict[int, int]:
    r = stack.dataset.ratings
    mask = r.user_id == user_id
    return dict(zip(r.movie_id[mask].tolist(), r.rating[mask].tolist(), strict=True))


def test_recommendations_are_ranked_unrated_and_explained(gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[10].id
    recs = gql.data(RECS, u=user, n=10)["recommendations"]
    assert len(recs) == 10
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    rated = _rated(stack, user)
    assert not {r["movie"]["id"] for r in recs} & set(rated)
    liked = {m for m, stars in rated.items() if stars >= 4}
    because = [b["id"] for r in recs for b in r["because"]]
    assert because and set(because) <= liked
    assert all(len(r["because"]) <= 2 for r in recs)


def test_excluding_rated_movies_can_be_turned_off(gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[11].id
    query = (
        "query($u: Int!) { recommendations(userId: $u, limit: 100, excludeRated: false) { movie { id } } }"
    )
    ids = {r["movie"]["id"] for r in gql.data(query, u=user)["recommendations"]}
    assert ids & set(_rated(stack, user))


def test_genre_and_year_filters_hold_for_every_result(gql: GraphQL, stack: Stack) -> None:
    query = """query($u: Int!) { recommendations(userId: $u, limit: 20, genres: ["Comedy", "Drama"],
        yearFrom: 1960, yearTo: 1990) { movie { genres year } } }"""
    recs = gql.data(query, u=stack.dataset.users[0].id)["recommendations"]
    assert recs
    for r in recs:
        assert {"Comedy", "Drama"} & set(r["movie"]["genres"])
        assert 1960 <= r["movie"]["year"] <= 1990


@pytest.mark.parametrize(
    "arguments",
    [
        'genres: ["Comedy\\"]) or movie_id > 0 or ARRAY_CONTAINS_ANY(genres, [\\"x"]',
        'genres: ["Horror) or (1"]',
        "yearFrom: 1990, yearTo: 1980",
        "yearFrom: -4",
    ],
)
def test_filter_injection_and_nonsense_are_bad_user_input(gql: GraphQL, arguments: str) -> None:
    assert gql.error_code(f"{{ recommendations(userId: 1, {arguments}) {{ score }} }}") == "BAD_USER_INPUT"


def test_unknown_user_is_not_found(gql: GraphQL) -> None:
    assert gql.error_code("{ recommendations(userId: 424242) { score } }") == "NOT_FOUND"


def test_user_field_recommendations_equal_the_top_level_query(gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[3].id
    top = gql.data(RECS, u=user, n=5)["recommendations"]
    nested = gql.data(
        "query($u: Int!) { user(id: $u) { recommendations(limit: 5) { movie { id } } } }", u=user
    )
    assert [r["movie"]["id"] for r in nested["user"]["recommendations"]] == [r["movie"]["id"] for r in top]


def test_a_failing_field_leaves_the_connections_of_its_cancelled_siblings_sound(
    gql: GraphQL, stack: Stack
) -> None:
    """A field that fails beside others nulls the whole answer, and GraphQL cancels the siblings
    still reading the database on the event loop (api.db.run_on): their connections, mid-statement,
    must leave the pool rather than serve the next request (on MySQL it then read the rest of the
    cancelled answer: UNAVAILABLE)."""
    invalidated: list[object] = []

    def count(connection: object, *_: object) -> None:
        invalidated.append(connection)

    event.listen(Pool, "invalidate", count)
    try:
        for user in range(1, 31):
            siblings = " ".join(
                f"r{i}: recommendations(userId: {user + i}) {{ score movie {{ title }} because {{ id }} }}"
                for i in range(4)
            )
            failing = f"{{ {siblings} similarMovies(movieId: {user}) {{ score }} bad: recommendations(userId: {user}, limit: 0) {{ score }} }}"
            assert gql.error_code(failing) == "BAD_USER_INPUT"
            after = gql.data(
                "query($u: Int!) { recommendations(userId: $u) { score } user(id: $u) { id } }", u=user
            )
            assert len(after["recommendations"]) == 10 and after["user"] == {"id": user}
    finally:
        event.remove(Pool, "invalidate", count)
    assert invalidated  # siblings were cancelled mid-read, so the case above happened


def test_operations_that_look_for_the_active_model_at_once_all_answer(
    client: TestClient, stack: Stack
) -> None:
    """The registry's look at the active version holds a thread lock while it reads the database:
    operations awaiting it at once must not wait for each other on the event loop (a deadlock)."""
    state = client.app_state["movierec"]
    gql = GraphQL(client, stack.api_key)
    state.models.check_interval = 0  # every operation looks again
    try:
        with ThreadPoolExecutor(8) as pool:
            users = [user.id for user in stack.dataset.users[:16]]
            pending = [pool.submit(gql.data, RECS, u=user, n=5) for user in users]
            answers = [future.result(timeout=GUARD_S) for future in pending]
    finally:
        state.models.check_interval = 1.0
    assert all(len(answer["recommendations"]) == 5 for answer in answers)


def test_similar_movies_are_closest_first_and_exclude_the_movie(gql: GraphQL, stack: Stack) -> None:
    movie = stack.dataset.movies[0].id
    data = gql.data(
        "query($m: Int!) { similarMovies(movieId: $m, limit: 5) { score movie { id } } "
        "movie(id: $m) { similar(limit: 5) { movie { id } } } }",
        m=movie,
    )
    ids = [r["movie"]["id"] for r in data["similarMovies"]]
    assert len(ids) == 5 and movie not in ids
    assert [r["movie"]["id"] for r in data["movie"]["similar"]] == ids
    scores = [r["score"] for r in data["similarMovies"]]
    assert scores == sorted(scores, reverse=True)
    assert gql.error_code("{ similarMovies(movieId: 999999) { score } }") == "NOT_FOUND"


def test_profile_recommendations_follow_the_visitors_ratings(gql: GraphQL, stack: Stack) -> None:
    query = """query($rated: [RatedMovieInput!]!) { recommendationsForProfile(gender: "F", age: 25,
        occupation: 4, ratedMovies: $rated, limit: 10) { movie { id } because { id } } }"""
    liked = [m.id for m in stack.dataset.movies[:3]]
    recs = gql.data(query, rated=[{"movieId": m, "rating": 5} for m in liked])["recommendationsForProfile"]
    assert len(recs) == 10 and not {r["movie"]["id"] for r in recs} & set(liked)
    assert {b["id"] for r in recs for b in r["because"]} <= set(liked)
    other = gql.data(query, rated=[{"movieId": m.id, "rating": 5} for m in stack.dataset.movies[-3:]])
    assert [r["movie"]["id"] for r in other["recommendationsForProfile"]] != [r["movie"]["id"] for r in recs]
    cold_query = query.replace("because { id }", "source")
    cold = gql.data(cold_query, rated=[])["recommendationsForProfile"]
    assert len(cold) == 10 and {r["source"] for r in cold} == {"popularity"}


@pytest.mark.parametrize(
    ("profile", "rated"),
    [
        ('gender: "X", age: 25, occupation: 1', "[]"),
        ('gender: "F", age: 26, occupation: 1', "[]"),
        ('gender: "F", age: 25, occupation: 99', "[]"),
        ('gender: "F", age: 25, occupation: 1', "[{movieId: 1, rating: 9}]"),
    ],
)
def test_profile_input_is_validated(gql: GraphQL, profile: str, rated: str) -> None:
    query = f"{{ recommendationsForProfile({profile}, ratedMovies: {rated}) {{ score }} }}"
    assert gql.error_code(query) == "BAD_USER_INPUT"


def test_model_info_reports_the_active_version(gql: GraphQL, stack: Stack) -> None:
    info = gql.data(
        "{ modelInfo { version trainedAt collection hrAt10 ndcgAt10 fullHrAt10 fullNdcgAt10 recallAt20 metrics } }"
    )["modelInfo"]
    assert info["version"] == stack.version_id
    assert info["collection"] == f"movies_v{stack.version_id}"
    assert info["trainedAt"].endswith("Z")
    assert 0.0 <= info["hrAt10"] <= 1.0 and info["metrics"]["hr@10"] == info["hrAt10"]
    m = info["metrics"]
    assert (info["fullHrAt10"], info["fullNdcgAt10"]) == (m["recall@10"], m["full_ndcg@10"])
    # full ranking is harder than 99 sampled negatives, and Recall@20 holds every hit of the top 10
    assert info["fullHrAt10"] <= info["hrAt10"] and info["fullHrAt10"] <= info["recallAt20"]


def test_recommendations_are_the_exact_top_inner_products_of_the_user_tower(
    gql: GraphQL, stack: Stack
) -> None:
    from ml.serving import HistoryItem, LoadedModel, UserFeatures

    model = LoadedModel.load(stack.settings.resolved_model_dir / f"v{stack.version_id}")
    user = stack.dataset.users[20]
    r = stack.dataset.ratings
    mask = r.user_id == user.id
    history = [
        HistoryItem(int(m), int(s), int(t))
        for m, s, t in zip(r.movie_id[mask], r.rating[mask], r.timestamp[mask], strict=True)
    ]
    history = sorted(history, key=lambda h: (h.timestamp, h.movie_id))[-model.history_length :]
    vector = model.encode_user(
        UserFeatures(user.gender, user.age, user.occupation, user.zip_code, user.id), history
    )
    scores = model.movie_vectors @ vector
    scores[np.isin(model.movie_ids, r.movie_id[mask])] = -np.inf
    expected = model.movie_ids[np.argsort(-scores)[:5]].tolist()

    recs = gql.data(RECS, u=user.id, n=5)["recommendations"]
    assert [x["movie"]["id"] for x in recs] == expected
    assert [x["score"] for x in recs] == pytest.approx(np.sort(scores)[::-1][:5].tolist(), abs=1e-4)


@pytest.fixture(scope="module")
def untrained_client(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphQL]:
    stack = build_stack(database_factory, Path(tmp_path_factory.mktemp("untrained")), train=False)
    with TestClient(create_app(stack.settings)) as client:
        yield GraphQL(client, stack.api_key)


def test_without_a_model_recommendations_say_model_not_ready(untrained_client: GraphQL) -> None:
    gql = untrained_client
    assert gql.error_code("{ recommendations(userId: 1) { score } }") == "MODEL_NOT_READY"
    assert gql.data("{ modelInfo { version } }")["modelInfo"] is None
    assert gql.data("{ movie(id: 1) { id } }")["movie"]["id"] == 1
    ready = untrained_client.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["model"] == "no active model"
