"""The users the demo page offers to start from: an active user (many ratings, so the model's list) and
the newest user without ratings (the popular movies). Each is read by one statement over a bounded part
of an index, and a process keeps the answer for MAX_AGE_S: however large the data, a page load costs at
most a few index reads."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from api.ratings.models import Rating
from api.state import AppState
from api.users.models import User

SAMPLE_RATINGS = 100_000  # "an active user" is the most active among the first ratings in key order
NEWEST_USERS = 1_000  # "a user without ratings" is looked for among the newest users
MAX_AGE_S = 60.0


@dataclass(frozen=True)
class Starter:
    kind: str  # "active" or "unrated"
    user_id: int
    ratings: int


def read_starters(*, session: Session) -> list[Starter]:
    """Return an active user and the newest user without ratings, each when there is one."""
    first = select(Rating.user_id).order_by(Rating.user_id).limit(SAMPLE_RATINGS).subquery()
    counted = func.count().label("n")
    most = session.execute(
        select(first.c.user_id, counted)
        .group_by(first.c.user_id)
        .order_by(counted.desc(), first.c.user_id)
        .limit(1)
    ).first()
    starters = []
    if most is not None:
        # The sample may end inside the user's ratings: count them all, through the user's index.
        total = session.execute(select(func.count()).where(Rating.user_id == most.user_id)).scalar_one()
        starters.append(Starter("active", most.user_id, total))
    newest = select(User.id).order_by(User.id.desc()).limit(NEWEST_USERS).subquery()
    rated = exists().where(Rating.user_id == newest.c.id)
    unrated = session.execute(select(newest.c.id).where(~rated).order_by(newest.c.id.desc()).limit(1))
    if (user_id := unrated.scalar()) is not None:
        starters.append(Starter("unrated", user_id, 0))
    return starters


class Starters:
    """The process's starters, read again once they are MAX_AGE_S old, by one request at a time."""

    def __init__(self) -> None:
        self._starters: list[Starter] = []
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def get(self, state: AppState) -> list[Starter]:
        if time.monotonic() - self._read_at < MAX_AGE_S:
            return self._starters
        async with self._lock:  # the requests arriving meanwhile wait for this one's answer
            if time.monotonic() - self._read_at >= MAX_AGE_S:
                self._starters = await state.run(lambda s: read_starters(session=s))
                self._read_at = time.monotonic()
        return self._starters
