"""What recommendations are made of (filters, searches, reasons, popular movies), and the queries for
an anonymous profile and for movies similar to a movie; a user's go through api/recommend/pipeline.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import Run
from api.errors import BadUserInput, NotFound
from api.metrics import STAGE
from api.movies.models import Movie
from api.movies.service import check_genre_names, genre_names
from api.ratings.service import check_stars
from api.recommend.popular import Popularity, Snapshot
from api.users.service import check_gender_and_age, check_occupation
from api.vectors.filters import MAX_YEAR, MIN_YEAR, FilterError, build_filter
from api.vectors.store import Hit, VectorStore
from api.versions.registry import ActiveModel
from ml.serving import HistoryItem, UserFeatures

LIKED = 4  # stars from which a rated movie can explain a recommendation ("because you liked")
BECAUSE_MAX = 2
PROFILE_MAX_RATINGS = 200


@dataclass(frozen=True)
class Recommended:
    movie_id: int
    score: float
    because: list[int] = field(default_factory=list)
    source: str = "model"  # "model", or "popularity" for someone with no ratings yet


@dataclass(frozen=True)
class Filters:
    genres: Sequence[str] | None = None
    year_from: int | None = None
    year_to: int | None = None


NO_FILTERS = Filters()

# Ranks users' vectors (users, dim) to each one's top KEPT_LIMIT movies but its rated ones (kept.py).
RankMany = Callable[[npt.NDArray[np.float32], Sequence[set[int]]], list[list[Hit]]]


@dataclass(frozen=True)
class Sources:
    """What recommendations are answered from, built once (AppState.sources; keep_lists builds its own)."""

    store: VectorStore
    popular: Popularity
    use_kept: bool = True  # answer from kept lists, and compute lists to keep
    keep: Callable[[list[dict[str, object]]], None] | None = None  # stores computed lists
    # Ranks default requests in one go, in a worker thread: keep_lists runs on an event loop of its
    # own, where the store's asyncio client (made on the app's loop) must not be used.
    rank_many: RankMany | None = None


def popular_movies(
    *, snapshot: Snapshot, limit: int, filters: Filters, exclude: set[int]
) -> list[Recommended]:
    """Return the most-rated movies that pass the filters, scored by their share of the top count:
    for someone without a rating, as demographics alone rank worse than popularity."""
    _check_years(filters)
    genres = check_genre_names(filters.genres, snapshot.genre_names) if filters.genres else None
    rows = snapshot.top(
        limit, genres=genres, year_from=filters.year_from, year_to=filters.year_to, exclude=exclude
    )
    top = rows[0][1] if rows else 1
    return [Recommended(movie_id, round(n / top, 6), [], "popularity") for movie_id, n in rows]


def _check_years(filters: Filters) -> None:
    for name, value in (("yearFrom", filters.year_from), ("yearTo", filters.year_to)):
        if value is not None and not MIN_YEAR <= value <= MAX_YEAR:
            raise BadUserInput(f"{name} must be a year between {MIN_YEAR} and {MAX_YEAR}")
    if filters.year_from is not None and filters.year_to is not None and filters.year_from > filters.year_to:
        raise BadUserInput("yearFrom must not be after yearTo")


async def recommend_for_profile(
    *,
    run: Run,
    sources: Sources,
    model: ActiveModel,
    gender: str | None,
    age: int | None,
    occupation: int | None,
    rated: Sequence[tuple[int, float]],
    limit: int,
    filters: Filters = NO_FILTERS,
) -> list[Recommended]:
    """Return top movies for a visitor described by demographics and (movie, stars) in the order rated;
    without a rating, the most-rated movies, as demographics alone rank worse than popularity."""
    check_gender_and_age(gender, age)
    if len(rated) > PROFILE_MAX_RATINGS:
        raise BadUserInput(f"ratedMovies holds at most {PROFILE_MAX_RATINGS} ratings")
    for _movie_id, stars in rated:
        check_stars(stars, "every rating")
    ids = [m for m, _ in rated]

    def check(session: Session) -> set[str]:
        if occupation is not None:
            check_occupation(session=session, occupation=occupation)
        if not ids:
            return set()
        known = set(session.execute(select(Movie.id).where(Movie.id.in_(ids))).scalars())
        missing = [m for m in ids if m not in known]
        if missing:
            raise NotFound(f"movie {missing[0]} does not exist")
        return set(genre_names(session=session)) if filters.genres else set()

    known_genres = await run(check)
    if not rated:
        snapshot = await sources.popular.snapshot()
        return popular_movies(snapshot=snapshot, limit=limit, filters=filters, exclude=set())
    expr = search_filter(filters, known_genres, set(ids))
    now = int(time.time())
    history = [HistoryItem(m, s, now - (len(rated) - i)) for i, (m, s) in enumerate(rated)]
    vector = model.model.encode_user(UserFeatures(gender, age, occupation, None, None), history)
    liked = [m for m, s in reversed(rated) if s >= LIKED]
    with STAGE.labels("vector_search").time():
        chosen = await sources.store.search(model.collection, vector, limit=limit, expr=expr)
    return explain(chosen, liked, await movie_vectors(sources.store, model, to_explain(chosen, liked)))


async def similar_movies(
    *, run: Run, sources: Sources, model: ActiveModel, movie_id: int, limit: int
) -> list[Recommended]:
    """Return the movies whose vectors are closest to the movie's own."""
    if not await run(lambda session: session.get(Movie, movie_id) is not None):
        raise NotFound(f"movie {movie_id} does not exist")
    vector = (await movie_vectors(sources.store, model, [movie_id])).get(movie_id)
    if vector is None:
        raise NotFound(f"movie {movie_id} has no vector in the active model")
    hits = await sources.store.search(model.collection, vector, limit=limit + 1)
    return [Recommended(h.movie_id, h.score) for h in hits if h.movie_id != movie_id][:limit]


def search_filter(filters: Filters, known_genres: set[str], exclude: set[int]) -> str:
    """Return the Milvus filter of a search, or raise BadUserInput for filters out of range."""
    _check_years(filters)
    try:
        # Excluded ids are integers from our own database; Milvus filters them cheaper than a bigger top-k.
        return build_filter(
            genres=filters.genres,
            known_genres=known_genres,
            year_from=filters.year_from,
            year_to=filters.year_to,
            exclude_ids=sorted(exclude),
        )
    except FilterError as error:
        raise BadUserInput(str(error)) from None


def to_explain(hits: Sequence[Hit], liked: list[int]) -> list[int]:
    """Return the movies whose vectors explain() reads: none without a liked movie."""
    return [h.movie_id for h in hits] + liked if liked else []


def explain(
    hits: Sequence[Hit], liked: list[int], vectors: dict[int, npt.NDArray[np.float32]]
) -> list[Recommended]:
    """Return the hits as recommendations, each with up to two liked movies whose vectors are
    closest to it (`vectors` holds those of the hits and the liked movies)."""
    liked = [m for m in liked if m in vectors]
    reasons: dict[int, list[int]] = {}
    if liked:
        liked_matrix = np.stack([vectors[m] for m in liked])  # (n_liked, dim)
        for hit in hits:
            if hit.movie_id in vectors:
                similarity = liked_matrix @ vectors[hit.movie_id]  # (n_liked,)
                best = np.argsort(-similarity)[:BECAUSE_MAX]
                reasons[hit.movie_id] = [liked[i] for i in best if similarity[i] > 0]
    return [Recommended(h.movie_id, h.score, reasons.get(h.movie_id, [])) for h in hits]


async def movie_vectors(
    store: VectorStore, model: ActiveModel, movie_ids: list[int]
) -> dict[int, npt.NDArray[np.float32]]:
    """Return movie vectors from the loaded model; Milvus, in a worker thread, holds only those of
    movies created after training."""
    found = {m: v for m in movie_ids if (v := model.vector_of(m)) is not None}
    missing = [m for m in dict.fromkeys(movie_ids) if m not in found]
    if missing:
        found.update(await to_thread.run_sync(store.vectors, model.collection, missing))
    return found
