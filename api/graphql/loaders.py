"""DataLoaders, built per operation: a batch in one statement on the operation's session, or TitleCache."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from api.db import Run
from api.movies.service import MovieRecord, TitleCache, genres_by_movie
from api.ratings.service import RatingStats, rating_stats_by_movie
from api.users.service import occupation_names

V = TypeVar("V")


def _loader(run: Run, fetch: Callable[..., dict[int, V]], default: Callable[[], V | None]) -> DataLoader:
    async def load(keys: Sequence[int]) -> list[V | None]:
        found = await run(lambda session: fetch(session=session, ids=list(keys)))
        return [found.get(k, default()) for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, run: Run, titles: TitleCache) -> None:
        async def movies(keys: Sequence[int]) -> list[MovieRecord | None]:
            found = await titles.get_many(run, keys)
            return [found.get(k) for k in keys]

        self.movie: DataLoader[int, MovieRecord | None] = DataLoader(load_fn=movies)
        self.genres: DataLoader[int, list[str]] = _loader(run, genres_by_movie, list)
        self.rating_stats: DataLoader[int, RatingStats] = _loader(
            run, rating_stats_by_movie, lambda: RatingStats(None, 0)
        )
        self.occupation_name: DataLoader[int, str] = _loader(run, occupation_names, str)
