"""The only writes of the ratings table: the API's rate and delete, and the import, go through here.

Each write bumps the ratings version of every user whose ratings it changes, in the same
transaction: the fingerprint of a user's kept recommendations reads that version, so no write
can leave a kept list looking current (tests/api/test_rating_writes.py holds every other module to
this). The bump comes before the rating is touched: the user's row lock is then taken before the
rating's foreign-key check asks for a shared one, so concurrent raters of one user queue instead
of deadlocking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from api.dataimport.upsert import upsert_statement
from api.ratings.models import Rating
from api.users.models import User

BUMP_CHUNK = 1_000  # users per UPDATE


def upsert_ratings(
    *,
    session: Session,
    rows: Sequence[dict[str, Any]],
    batch_size: int = 20_000,
    report: Callable[[int], Any] | None = None,
) -> None:
    """Insert or replace ratings (user_id, movie_id, rating, rated_at), in the caller's transaction."""
    _bump(session, sorted({row["user_id"] for row in rows}))
    connection = session.connection()
    statement = upsert_statement(
        connection, Rating.__table__, ["user_id", "movie_id"], ["rating", "rated_at"]
    )
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        connection.execute(statement, list(chunk))
        if report is not None:
            report(len(chunk))


def delete_rating_row(*, session: Session, user_id: int, movie_id: int) -> bool:
    """Delete the user's rating of the movie in the caller's transaction; return whether it existed
    (when it did not, the caller rolls back, bump included)."""
    _bump(session, [user_id])
    result = session.execute(delete(Rating).where(Rating.user_id == user_id, Rating.movie_id == movie_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _bump(session: Session, user_ids: Sequence[int]) -> None:
    for start in range(0, len(user_ids), BUMP_CHUNK):
        session.execute(
            update(User)
            .where(User.id.in_(user_ids[start : start + BUMP_CHUNK]))
            .values(ratings_version=User.ratings_version + 1)
            .execution_options(synchronize_session=False)
        )
