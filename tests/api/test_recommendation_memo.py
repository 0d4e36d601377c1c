"""Kept recommendations: a hit equals recomputing, and every change they depend on is seen at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from api.db import make_engine, make_session_factory
from api.errors import NotFound
from api.ratings.service import rate_movie
from api.recommend.freshness import FreshnessBatcher, FreshnessReader
from api.recommend.memo import Entry, RecommendationMemo
from api.users.models import User
from tests.api.conftest import GraphQL, Stack

RECS = (
    "query($u: Int!) { recommendations(userId: $u, limit: 10) { score movie { id title } because { id } } }"
)


def _lookups(result: str) -> float:
    return REGISTRY.get_sample_value("movierec_recommendation_cache_total", {"result": result}) or 0.0


def test_a_repeated_request_is_answered_from_the_memo_with_the_same_list(gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[20].id
    first = gql.data(RECS, u=user)["recommendations"]
    hits = _lookups("hit")
    again = gql.data(RECS, u=user)["recommendations"]
    assert again == first
    assert _lookups("hit") == hits + 1
    # other arguments are another entry
    other = gql.data("query($u: Int!) { recommendations(userId: $u, limit: 3) { movie { id } } }", u=user)
    assert [r["movie"]["id"] for r in other["recommendations"]] == [r["movie"]["id"] for r in first[:3]]


def test_a_rating_written_by_another_process_is_seen_at_once(gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[21].id
    before = [r["movie"]["id"] for r in gql.data(RECS, u=user)["recommendations"]]
    gql.data(RECS, u=user)  # now kept
    # Another API replica or a script: its own engine and transaction, not through this app.
    engine = make_engine(stack.settings.resolved_database_url)
    with make_session_factory(engine).begin() as session:
        for movie_id in before[:3]:
            rate_movie(session=session, user_id=user, movie_id=movie_id, rating=1)
    engine.dispose()
    misses = _lookups("miss")
    after = [r["movie"]["id"] for r in gql.data(RECS, u=user)["recommendations"]]
    assert _lookups("miss") == misses + 1
    assert not set(after) & set(before[:3])  # now rated, so excluded


def test_every_change_to_ratings_bumps_the_users_version(stack: Stack) -> None:
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    user = stack.dataset.users[22].id
    version = select(User.ratings_version).where(User.id == user)
    with sessions() as session:
        start = session.execute(version).scalar_one()
    assert start >= 1  # the import bumped every imported user's
    with sessions.begin() as session:
        rate_movie(session=session, user_id=user, movie_id=stack.dataset.movies[0].id, rating=3)
    with sessions() as session:
        assert session.execute(version).scalar_one() == start + 1
    engine.dispose()


def test_the_memo_forgets_the_least_recently_used_and_a_changed_time_bucket() -> None:
    memo: RecommendationMemo[str] = RecommendationMemo(2)
    same = lambda _newest: 3  # noqa: E731
    memo.put("a", Entry(3, 100, "A"))
    memo.put("b", Entry(3, 100, "B"))
    assert memo.get("a", same) == "A"  # a is now the most recent
    memo.put("c", Entry(3, 100, "C"))
    assert memo.get("b", same) is None and memo.get("a", same) == "A" and len(memo) == 2
    assert memo.get("c", lambda _newest: 4) is None  # the user's gap bucket moved on
    nothing: RecommendationMemo[str] = RecommendationMemo(0)
    nothing.put("a", Entry(3, 100, "A"))
    assert nothing.get("a", same) is None


@pytest.fixture
def reader(stack: Stack) -> Iterator[FreshnessReader]:
    reader = FreshnessReader(stack.settings.resolved_database_url, pool_size=1)
    yield reader
    reader.dispose()


def test_the_freshness_read_names_unknown_users(reader: FreshnessReader, stack: Stack) -> None:
    state = reader.read(stack.dataset.users[0].id)
    assert state.ratings_version >= 1  # the import bumped it
    assert state.newest_movie is not None and state.newest_movie >= max(m.id for m in stack.dataset.movies)
    with pytest.raises(NotFound):
        reader.read(10**9)


def test_the_freshness_read_replaces_a_connection_the_server_closed(
    reader: FreshnessReader, stack: Stack
) -> None:
    if not stack.settings.resolved_database_url.startswith("mysql"):
        pytest.skip("a server-side kill needs a database server")
    user = stack.dataset.users[0].id
    expected = reader.read(user)
    pooled = reader.engine.raw_connection()
    cursor = pooled.cursor()
    cursor.execute("SELECT CONNECTION_ID()")
    (connection_id,) = cursor.fetchone()
    cursor.close()
    pooled.close()  # back in the pool of one, to be handed out next
    other = make_engine(stack.settings.resolved_database_url)
    with other.connect() as connection:
        connection.execute(text(f"KILL {int(connection_id)}"))
    other.dispose()
    assert reader.read(user) == expected


def test_reads_asked_in_the_same_moment_share_one_round_trip(reader: FreshnessReader, stack: Stack) -> None:
    batcher = FreshnessBatcher(reader)
    users = [stack.dataset.users[i].id for i in (0, 1, 1)]

    def batches() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("movierec_freshness_batch_users_count") or 0.0
        return count, REGISTRY.get_sample_value("movierec_freshness_batch_users_sum") or 0.0

    async def ask() -> list[object]:
        return await asyncio.gather(*(batcher.read(u) for u in [*users, 10**9]), return_exceptions=True)

    before = batches()
    *found, unknown = asyncio.run(ask())
    assert batches() == (before[0] + 1, before[1] + 3)  # one read, of three distinct users
    assert found == [reader.read(u) for u in users]
    assert isinstance(unknown, NotFound)
