"""GraphQL types for movies and recommended movies, and the resolver of a recommendation service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from api.graphql.context import Info
from api.graphql.pagination import check_bound
from api.movies import titles
from api.movies.models import Movie as MovieRow
from api.movies.service import MovieRecord
from api.recommend.service import Recommended, similar_movies


@strawberry.type(description="A movie of the catalogue.")
class Movie:
    id: int
    title: str = strawberry.field(
        description="Title as in MovieLens, year included, e.g. 'Toy Story (1995)'."
    )
    year: int | None = strawberry.field(description="Release year parsed from the title.")

    @strawberry.field(
        description="The title as people read it: MovieLens's trailing articles put back in front, "
        "e.g. 'A League of Their Own (1992)' for 'League of Their Own, A (1992)'."
    )
    def display_title(self) -> str:
        return titles.display_title(self.title)

    @classmethod
    def from_row(cls, row: MovieRow | MovieRecord) -> Movie:
        return cls(id=row.id, title=row.title, year=row.year)

    @strawberry.field(description="Genre names, alphabetically.")
    async def genres(self, info: Info) -> list[str]:
        return await info.context.loaders.genres.load(self.id)

    @strawberry.field(description="Mean star rating, or null when nobody has rated it.")
    async def average_rating(self, info: Info) -> float | None:
        return (await info.context.loaders.rating_stats.load(self.id)).average

    @strawberry.field(description="How many users rated it.")
    async def ratings_count(self, info: Info) -> int:
        return (await info.context.loaders.rating_stats.load(self.id)).count

    @strawberry.field(description="Movies whose vectors are closest to this one's in the active model.")
    async def similar(self, info: Info, limit: int = 10) -> list[Recommendation]:
        return await recommend(info, similar_movies, movie_id=self.id, limit=limit)


@strawberry.type(description="A recommended movie, its score and why.")
class Recommendation:
    movie: Movie
    score: float = strawberry.field(
        description="Inner product of the user and movie vectors (higher is better)."
    )
    source: str = strawberry.field(
        description="model: ranked by the two-tower model; popularity: the most-rated movies, "
        "for someone with no ratings yet (demographics alone rank worse than popularity)"
    )
    model_version: int = strawberry.field(description="The model version that produced the list.")
    impression_id: strawberry.ID | None = strawberry.field(
        description="The list's impression, for recordFeedback: set on a user's recommendations "
        "(null elsewhere, or when the service could not record it)."
    )
    because_ids: strawberry.Private[list[int]]
    movies: strawberry.Private[dict[int, MovieRecord]]

    @strawberry.field(description="Up to two of the user's highly rated movies closest to this one.")
    def because(self) -> list[Movie]:
        """Built only when asked for: most queries do not."""
        return [Movie.from_row(self.movies[m]) for m in self.because_ids if m in self.movies]


async def recommend(
    info: Info, service: Callable[..., Awaitable[list[Recommended]]], *, limit: int, **arguments: Any
) -> list[Recommendation]:
    """Return the top `limit` movies of a recommendation service (api.recommend), with their titles; a
    user's list is served by their arm's model in an experiment, and recorded as an impression."""
    state = info.context.state
    limit = check_bound(limit, "limit")  # before the model is awaited: a bad limit is the client's error
    user_id = arguments.get("user_id")
    model, experiment, arm = await state.serving_model(user_id)
    found = await service(run=info.context.run, sources=state.sources, model=model, limit=limit, **arguments)
    impression = None
    if user_id is not None:
        impression = state.impressions.record(
            user_id=user_id,
            version_id=model.version_id,
            movie_ids=[r.movie_id for r in found],
            experiment_id=experiment.id if experiment else None,
            arm=arm,
        )
    ids = {r.movie_id for r in found} | {m for r in found for m in r.because}
    movies = await state.titles.get_many(info.context.run, list(ids))
    return [
        Recommendation(
            # "(removed)": deleted from the database since its vector was indexed
            movie=Movie.from_row(movies.get(r.movie_id) or MovieRecord(r.movie_id, "(removed)", None)),
            score=round(r.score, 6),
            source=r.source,
            model_version=model.version_id,
            impression_id=None if impression is None else strawberry.ID(str(impression)),
            because_ids=r.because,
            movies=movies,
        )
        for r in found
    ]
