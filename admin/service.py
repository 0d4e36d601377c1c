"""What the dashboard reads: catalogue counts, health, and the active version's collection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.dataimport.service import count_rows
from api.db import utcnow
from api.ratings.models import Rating
from api.vectors.store import CollectionStats, VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counts:
    users: int
    movies: int
    ratings: int
    ratings_last_day: int


def counts(*, session: Session) -> Counts:
    """Return the catalogue's sizes and the ratings of the last 24 hours."""
    since = utcnow() - timedelta(days=1)
    total = count_rows(session=session)
    return Counts(
        users=total.users,
        movies=total.movies,
        ratings=total.ratings,
        ratings_last_day=session.execute(
            select(func.count()).select_from(Rating).where(Rating.rated_at >= since)
        ).scalar_one(),
    )


def database_ok(*, session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "unavailable"
        log.warning("dashboard: database check failed: %s", error)
        return False
    return True


def collection_stats(*, store: VectorStore, name: str | None) -> CollectionStats | None:
    """Return the collection's figures, or None when there is none or Milvus cannot say."""
    if not name:
        return None
    try:
        return store.stats(name)
    except Exception as error:  # shown as "unavailable" on the page
        log.warning("dashboard: stats of collection %s failed: %s", name, error)
        return None
