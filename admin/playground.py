"""The dashboard's playground: a user's ratings and recommendations, a movie's similar movies and a
title search, through the same services as the GraphQL resolvers (recommendations: the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from admin.views import render, state_of
from api.errors import ServiceError
from api.ids import MAX_ID, parse_id
from api.movies.service import MovieRecord, genres_by_movie, list_movies
from api.ratings.service import latest_records
from api.recommend.pipeline import recommend_user
from api.recommend.service import Recommended, similar_movies
from api.users.service import get_user

RECENT, RECOMMENDED, SIMILAR, FOUND = 20, 10, 10, 20  # rows of each list
SEARCH_MAX = 200  # characters of a title search, as the GraphQL movies(search:) query allows


@dataclass(frozen=True)
class Shown:
    """A movie as the page lists it."""

    title: str
    year: int | None
    genres: list[str]


async def page(request: Request) -> Response:
    """Return the playground for the user id, movie id and title search of the query string."""
    state = state_of(request)
    errors: list[str] = []
    raw = {name: request.query_params.get(name, "").strip() for name in ("user_id", "movie_id")}
    user_id = _id_param(raw["user_id"], "User id", errors)
    movie_id = _id_param(raw["movie_id"], "Movie id", errors)
    q = request.query_params.get("q", "").strip()
    if len(q) > SEARCH_MAX:
        errors.append(f"A title search is at most {SEARCH_MAX} characters.")
        q = ""
    status = 400 if errors else 200  # the query string itself is wrong, as opposed to an unknown id

    context: dict[str, Any] = {"user_id": user_id, "movie_id": movie_id, "q": q, "raw": raw}
    active = await state.active_model()
    recs: list[Recommended] | None = None
    if user_id is not None:
        try:
            model = await state.serving_model()
            recs = await recommend_user(
                run=state.run, sources=state.sources, model=model, user_id=user_id, limit=RECOMMENDED
            )
        except ServiceError as error:
            errors.append(str(error))
    similar: list[Recommended] = []
    if movie_id is not None:
        try:
            model = await state.serving_model()
            similar = await similar_movies(
                run=state.run, sources=state.sources, model=model, movie_id=movie_id, limit=SIMILAR
            )
            context["similar"] = similar
        except ServiceError as error:
            errors.append(str(error))

    def read(session: Session) -> tuple[set[int], dict[int, list[str]]]:
        """Fill the context with what the page shows besides the recommendations; return the movies
        shown and their genres."""
        ids: set[int] = set() if movie_id is None else {movie_id, *(r.movie_id for r in similar)}
        if user_id is not None and recs is not None:
            recent = latest_records(session=session, user_id=user_id, limit=RECENT)
            context.update(recent=recent, recommended=recs, rater=get_user(session=session, user_id=user_id))
            ids.update(r.movie_id for r in recent)
            ids.update(m for r in recs for m in [r.movie_id, *r.because])
        if q:
            found = [m.id for m in list_movies(session=session, first=FOUND, search=q)]  # one more: more?
            context.update(found=found[:FOUND], more_found=len(found) > FOUND)
            ids.update(found[:FOUND])
        context["active_id"] = active.version_id if active else None
        return ids, genres_by_movie(session=session, ids=list(ids))

    ids, genres = await state.run(read)
    context["movies"] = _shown(await state.titles.get_many(state.async_engine, list(ids)), genres)
    return render(request, "playground.html", status_code=status, errors=errors, **context)


def _id_param(raw: str, label: str, errors: list[str]) -> int | None:
    """Return the id in a query parameter, or None when empty or (adding a message to errors) not an id."""
    if not raw:
        return None
    value = parse_id(raw)
    if value is None:
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        errors.append(f"{label} “{shown}” is not an id: enter a whole number from 1 to {MAX_ID}.")
    return value


def _shown(records: dict[int, MovieRecord], genres: dict[int, list[str]]) -> dict[int, Shown]:
    """Return the titles (without the year MovieLens appends), years and genres of movies, by id."""
    return {
        movie_id: Shown(
            r.title.removesuffix(f" ({r.year})") if r.year else r.title, r.year, genres.get(movie_id, [])
        )
        for movie_id, r in records.items()
    }
