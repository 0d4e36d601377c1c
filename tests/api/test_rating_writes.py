"""Every write of a user's ratings bumps their ratings version, through the one module that writes
ratings (api/ratings/writes.py): the API's rate and delete, and the import. (The dashboard writes
no ratings.) A kept list's fingerprint reads that version, so none of them can leave a list current."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from api.dataimport.service import import_dataset
from api.db import LOCK_RETRY, from_epoch, make_async_engine, make_engine, make_session_factory, run_on
from api.ratings.models import Rating
from api.ratings.writes import upsert_rating_columns
from api.users.models import User
from ml.movielens.format import Ratings
from ml.movielens.layouts import load_ml1m
from tests.api.conftest import GraphQL, Stack
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]
WRITES = ROOT / "api" / "ratings" / "writes.py"
# Statements that change the ratings table, through the ORM, Core or SQL text, and the table handed
# to any helper (a batch writer, say) other than a count.
RATING_WRITE = re.compile(
    r"(insert|update|delete)\(\s*Rating\b|session\.add(_all)?\(\s*Rating\(|(?<!count\()Rating\.__table__"
    r"|(INSERT\s+INTO|UPDATE|DELETE\s+FROM|REPLACE\s+INTO)\s+`?ratings\b",
    re.IGNORECASE,
)


def _versions(sessions: sessionmaker, user_ids: list[int]) -> dict[int, int]:
    with sessions() as session:
        rows = session.execute(select(User.id, User.ratings_version).where(User.id.in_(user_ids)))
        return {user_id: version for user_id, version in rows}


def test_no_other_module_writes_ratings() -> None:
    writers = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("api", "admin", "ml")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != WRITES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RATING_WRITE.search(line)
    ]
    assert writers == []
    assert RATING_WRITE.search(WRITES.read_text(encoding="utf-8"))  # the pattern sees a real write


def test_rate_and_delete_through_the_api_bump_the_version(gql: GraphQL, stack: Stack) -> None:
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    user, movie = stack.dataset.users[50].id, stack.dataset.movies[250].id
    rate = "mutation($u: Int!, $m: Int!, $r: Float!) { rateMovie(userId: $u, movieId: $m, rating: $r) { rating } }"
    delete = "mutation($u: Int!, $m: Int!) { deleteRating(userId: $u, movieId: $m) }"
    start = _versions(sessions, [user])[user]
    gql.data(rate, u=user, m=movie, r=4)
    assert _versions(sessions, [user])[user] == start + 1
    gql.data(rate, u=user, m=movie, r=2)  # a changed rating
    assert _versions(sessions, [user])[user] == start + 2
    gql.data(delete, u=user, m=movie)
    assert _versions(sessions, [user])[user] == start + 3
    assert gql.error_code(delete, u=user, m=movie) == "NOT_FOUND"  # nothing changed: rolled back
    assert _versions(sessions, [user])[user] == start + 3
    engine.dispose()


def test_an_import_bumps_every_user_it_writes_ratings_for(session: Session, sample_dir: Path) -> None:
    dataset = load_ml1m(sample_dir)
    import_dataset(session=session, dataset=dataset)
    raters = sorted({int(u) for u in dataset.ratings.user_id.tolist()})
    first = dict(session.execute(select(User.id, User.ratings_version)).all())
    import_dataset(session=session, dataset=dataset)
    second = dict(session.execute(select(User.id, User.ratings_version)).all())
    assert [u for u in first if second[u] != first[u]] == raters
    assert all(second[u] == first[u] + 1 for u in raters)


def test_ratings_written_as_columns_replace_and_add(session: Session, sample_dir: Path) -> None:
    """The import's columns path on each database: existing ratings replaced, new ones added, half
    stars and times kept exactly, every user concerned bumped, over more than one statement."""
    dataset = load_ml1m(sample_dir)
    import_dataset(session=session, dataset=dataset)
    r, n = dataset.ratings, 300
    before = dict(session.execute(select(User.id, User.ratings_version)).all())
    # Every user rates every movie: all existing pairs are replaced, the other pairs are added.
    users = np.array([u.id for u in dataset.users], dtype=np.int32)
    movies = np.array([m.id for m in dataset.movies], dtype=np.int32)
    pairs = np.array(np.meshgrid(users, movies)).T.reshape(-1, 2)
    assert len(pairs) > 2 * 1_000 and len(pairs) > len(r)
    stars = (np.arange(len(pairs)) % 10 + 1).astype(np.float32) / 2
    times = 978_300_000 + np.arange(len(pairs), dtype=np.int64)
    upsert_rating_columns(
        session=session, ratings=Ratings(pairs[:, 0], pairs[:, 1], stars, times), batch_size=1_000
    )
    stored = {
        (u, m): (s, t)
        for u, m, s, t in session.execute(
            select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.rated_at)
        )
    }
    assert len(stored) == len(pairs)
    for i in range(0, len(pairs), len(pairs) // n):
        assert stored[(int(pairs[i, 0]), int(pairs[i, 1]))] == (float(stars[i]), from_epoch(int(times[i])))
    after = dict(session.execute(select(User.id, User.ratings_version)).all())
    assert all(after[u] == before[u] + 1 for u in users.tolist())


def _table(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO t (id, n) VALUES (:id, 0)"), [{"id": i} for i in range(1, 41)])
    return make_session_factory(engine)


def _write(url: str, work: Callable[[Session], None], on_error: Callable[[], None], **options: Any) -> None:
    """Run work as the app runs a write (api.db.run_on), calling on_error on every statement that fails."""

    async def write() -> None:
        engine = make_async_engine(url, **options)
        event.listen(engine.sync_engine, "handle_error", lambda _context: on_error())
        try:
            await run_on(AsyncSession(engine), work, write=True)
        finally:
            await engine.dispose()

    asyncio.run(write())


def test_a_write_that_loses_a_lock_conflict_runs_again(database_factory: DatabaseFactory) -> None:
    """A real conflict on each database: on SQLite another connection holds the write lock past the
    busy timeout; on MySQL two transactions lock two rows in opposite orders (a deadlock, one of
    them rolled back). The transaction that lost runs again and succeeds."""
    url = database_factory.new_url()
    sqlite = database_factory.backend == "sqlite"
    sessions = _table(url)
    tries: list[int] = []
    failures: list[int] = []
    holder = make_engine(url).connect()  # its first statement begins its transaction (IMMEDIATE on SQLite)
    # Rows 2-40: a heavier transaction than the one that runs again, so MySQL rolls that one back.
    holder.execute(text("UPDATE t SET n = n + 1 WHERE id >= 2"))
    row_1_taken = threading.Event()

    def close_the_cycle() -> None:
        """On MySQL, once the first try holds row 1: the holder asks for row 1 too (the deadlock),
        gets it when the loser gives it up, and commits. One thread uses the holder's connection."""
        if row_1_taken.wait(timeout=30):
            holder.execute(text("UPDATE t SET n = n + 1 WHERE id = 1"))
        holder.commit()

    def failed() -> None:
        failures.append(1)
        if sqlite:  # the first try lost the lock at its BEGIN: the holder lets it go only now
            holder.commit()

    def work(session: Session) -> None:
        tries.append(1)
        session.execute(text("UPDATE t SET n = n + 10 WHERE id = 1"))
        if len(tries) == 1:
            row_1_taken.set()
        session.execute(text("UPDATE t SET n = n + 10 WHERE id = 2"))  # waits for the holder

    other = threading.Thread(target=close_the_cycle)
    if not sqlite:
        other.start()
    _write(url, work, failed, **({"connect_args": {"timeout": 0.05}} if sqlite else {}))
    if not sqlite:
        other.join()
    holder.close()
    assert failures and len(tries) >= (1 if sqlite else 2)
    with sessions() as session:
        assert {i: n for i, n in session.execute(text("SELECT id, n FROM t WHERE id <= 3"))} == {
            1: 10 if sqlite else 11,
            2: 11,
            3: 1,
        }


def test_a_conflict_is_not_run_again_forever(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    _table(url)
    holder = make_engine(url).connect()
    holder.execute(text("UPDATE t SET n = 2 WHERE id = 40"))  # holds SQLite's write lock
    failures: list[int] = []

    def work(session: Session) -> None:
        session.execute(text("UPDATE t SET n = 1"))

    with pytest.raises(OperationalError, match="locked"):
        _write(url, work, lambda: failures.append(1), connect_args={"timeout": 0.01})
    assert len(failures) == LOCK_RETRY["stop"].max_attempt_number
    holder.close()


def test_a_failed_write_leaves_nothing_and_returns_its_connection(database_factory: DatabaseFactory) -> None:
    url = database_factory.new_url()
    sessions = _table(url)

    def work(session: Session) -> None:
        session.execute(text("UPDATE t SET n = 5"))
        raise ValueError("the work failed after a statement")

    async def write() -> int:
        engine = make_async_engine(url, pool_size=1, max_overflow=0)
        try:
            with pytest.raises(ValueError):
                await run_on(AsyncSession(engine), work, write=True)
            return engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    assert asyncio.run(write()) == 0
    with sessions() as session:
        assert set(session.execute(text("SELECT n FROM t")).scalars()) == {0}


@pytest.mark.mysql
def test_a_write_whose_connection_is_killed_fails_as_the_database_and_returns_it(
    mysql_admin_url: str, tmp_path: Path
) -> None:
    """The server ends the write's connection between its statements: the error is SQLAlchemy's (an
    outage to the API), the pool gets the connection back, and the next write succeeds."""
    factory = DatabaseFactory("mysql", tmp_path, mysql_admin_url)
    url = factory.new_url()
    sessions = _table(url)
    killer = make_engine(url)

    def work(session: Session) -> None:
        session.execute(text("UPDATE t SET n = 5 WHERE id = 1"))
        own = session.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        with killer.connect() as connection:
            connection.execute(text(f"KILL {int(own)}"))

    async def write() -> int:
        engine = make_async_engine(url, pool_size=1, max_overflow=0)
        try:
            with pytest.raises(DBAPIError):
                await run_on(AsyncSession(engine), work, write=True)
            checked_out = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            second = text("UPDATE t SET n = 7 WHERE id = 2")
            await run_on(AsyncSession(engine), lambda session: session.execute(second), write=True)
            return int(checked_out)
        finally:
            await engine.dispose()

    assert asyncio.run(write()) == 0
    killer.dispose()
    with sessions() as session:
        assert dict(session.execute(text("SELECT id, n FROM t WHERE id <= 2")).all()) == {1: 0, 2: 7}
    factory.drop_all()
