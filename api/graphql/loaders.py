"""DataLoaders, built per operation: every relation is fetched in one statement per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.orm import Session
from strawberry.dataloader import DataLoader

from api.movies.service import (
    MovieCatalogue,
    MovieRecord,
    RatingStats,
    genres_by_movie,
    rating_stats_by_movie,
)
from api.users.models import User
from api.users.service import occupation_names, users_by_ids

K = TypeVar("K")
V = TypeVar("V")


def _loader(
    session: Session, fetch: Callable[..., dict[int, V]], default: Callable[[], V | None]
) -> DataLoader:
    async def load(keys: Sequence[int]) -> list[V | None]:
        found = fetch(session=session, ids=list(keys))
        return [found.get(k, default()) for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, session: Session, catalogue: MovieCatalogue) -> None:
        self.movie: DataLoader[int, MovieRecord | None] = _loader(session, catalogue.get_many, lambda: None)
        self.genres: DataLoader[int, list[str]] = _loader(session, genres_by_movie, list)
        self.rating_stats: DataLoader[int, RatingStats] = _loader(
            session, rating_stats_by_movie, lambda: RatingStats(None, 0)
        )
        self.user: DataLoader[int, User | None] = _loader(session, users_by_ids, lambda: None)
        self._session = session
        self._occupations: dict[int, str] | None = None

    def occupation_name(self, occupation_id: int) -> str:
        if self._occupations is None:
            self._occupations = occupation_names(session=self._session)
        return self._occupations.get(occupation_id, "")
