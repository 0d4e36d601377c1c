"""Kept lists: computed ahead for every user, they answer exactly what computing would, and only while
nothing they were computed from has changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import sessionmaker

from api.db import make_engine, make_session_factory
from api.ratings.models import Rating
from api.ratings.service import rate_movie
from api.recommend.kept import KEPT_LIMIT, keep_lists
from api.recommend.models import KeptList
from api.recommend.service import recommend_for_user
from api.vectors.store import VectorStore
from api.versions.registry import ModelRegistry
from tests.api.conftest import GraphQL, Stack

RECS = "query($u: Int!, $n: Int!) { recommendations(userId: $u, limit: $n) { score movie { id } because { id } } }"


def _kept_answers() -> float:
    return REGISTRY.get_sample_value("movierec_recommendation_cache_total", {"result": "kept"}) or 0.0


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> Iterator[sessionmaker]:
    engine = make_engine(stack.settings.resolved_database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def kept(stack: Stack, sessions: sessionmaker) -> Iterator[int]:
    """Keep every user's list for the active version; remove them after the module (the stack is shared)."""
    store = VectorStore(stack.settings.resolved_milvus_uri)
    with sessions() as session:
        model = ModelRegistry().get(session)
    assert model is not None
    seen: list[tuple[int, int]] = []
    stored = keep_lists(sessions=sessions, store=store, model=model, progress=lambda *p: seen.append(p))
    store.close()
    assert seen[-1][0] == seen[-1][1]  # progress reached every user
    yield stored
    with sessions.begin() as session:
        session.execute(delete(KeptList))


def _computed(
    stack: Stack, sessions: sessionmaker, user_id: int, limit: int
) -> list[tuple[int, float, list[int]]]:
    """Return the user's recommendations computed now, without any kept list or memo."""
    store = VectorStore(stack.settings.resolved_milvus_uri)
    with sessions() as session:
        found = recommend_for_user(
            session=session, store=store, active=ModelRegistry().get(session), user_id=user_id, limit=limit
        )
    store.close()
    return [(r.movie_id, round(r.score, 6), r.because) for r in found]


def _ids(rows: list[dict]) -> list[tuple[int, float, list[int]]]:
    return [(r["movie"]["id"], r["score"], [b["id"] for b in r["because"]]) for r in rows]


def test_every_user_with_ratings_gets_a_list(kept: int, stack: Stack, sessions: sessionmaker) -> None:
    with sessions() as session:
        raters = session.execute(select(func.count(func.distinct(Rating.user_id)))).scalar_one()
        lengths = {len(items) for items in session.execute(select(KeptList.items)).scalars()}
    assert kept == raters
    assert len(lengths) >= 1 and max(lengths) > 2  # JSON text of KEPT_LIMIT items


@pytest.mark.parametrize("limit", [1, 10, KEPT_LIMIT])
def test_a_kept_answer_is_what_computing_returns(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker, limit: int
) -> None:
    user = stack.dataset.users[40].id
    before = _kept_answers()
    answered = _ids(gql.data(RECS, u=user, n=limit)["recommendations"])
    assert _kept_answers() == before + 1
    assert answered == _computed(stack, sessions, user, limit)
    assert len(answered) == limit


def test_more_than_kept_or_filters_are_computed(kept: int, gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[41].id
    before = _kept_answers()
    gql.data(RECS, u=user, n=KEPT_LIMIT + 1)
    genre = stack.dataset.movies[0].genres[0]
    gql.data(
        "query($u: Int!, $g: [String!]) { recommendations(userId: $u, genres: $g) { movie { id } } }",
        u=user, g=[genre],
    )  # fmt: skip
    gql.data("query($u: Int!) { recommendations(userId: $u, excludeRated: false) { movie { id } } }", u=user)
    assert _kept_answers() == before


def test_a_new_rating_makes_the_list_stale_at_once(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker
) -> None:
    user = stack.dataset.users[42].id
    first = [r[0] for r in _ids(gql.data(RECS, u=user, n=10)["recommendations"])]
    with sessions.begin() as session:  # another process: its own engine and transaction
        rate_movie(session=session, user_id=user, movie_id=first[0], rating=5)
    before = _kept_answers()
    after = _ids(gql.data(RECS, u=user, n=10)["recommendations"])
    assert _kept_answers() == before  # computed, not kept
    assert first[0] not in [r[0] for r in after]
    assert after == _computed(stack, sessions, user, 10)


def test_a_list_of_another_catalogue_is_not_used(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker
) -> None:
    user = stack.dataset.users[43].id
    with sessions.begin() as session:  # as if computed before the newest movie was added
        session.execute(
            update(KeptList).where(KeptList.user_id == user).values(newest_movie=KeptList.newest_movie - 1)
        )
    before = _kept_answers()
    gql.data(RECS, u=user, n=10)
    assert _kept_answers() == before
