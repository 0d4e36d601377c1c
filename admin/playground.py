"""The dashboard's playground: a user's ratings and recommendations, a movie's similar movies and a
title search, through the same services as the GraphQL resolvers (recommendations: the pipeline)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from admin.views import render, state_of
from api.errors import ServiceError
from api.ids import MAX_ID, parse_id
from api.movies.service import genres_by_movie, search_movies
from api.movies.titles import display_title
from api.ratings.service import latest_records
from api.recommend.pipeline import recommend_user
from api.recommend.service import Recommended, similar_movies
from api.users.service import get_user

RECENT, RECOMMENDED, SIMILAR, FOUND = 20, 10, 10, 20  # rows of each list
SEARCH_MAX = 200  # characters of a title search, as the GraphQL movies(search:) query allows


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
    active = await state.active_model()
    context: dict[str, Any] = {"user_id": user_id, "movie_id": movie_id, "q": q, "raw": raw}
    context["active_id"] = active.version_id if active else None
    recs: list[Recommended] | None = None
    if user_id is not None:
        try:
            model = (await state.serving_model(user_id)).model
            recs = await recommend_user(
                run=state.run, sources=state.sources, model=model, user_id=user_id, limit=RECOMMENDED
            )
        except ServiceError as error:
            errors.append(str(error))
    similar: list[Recommended] = []
    if movie_id is not None:
        try:
            model = (await state.serving_model()).model
            similar = context["similar"] = await similar_movies(
                run=state.run, sources=state.sources, model=model, movie_id=movie_id, limit=SIMILAR
            )
        except ServiceError as error:
            errors.append(str(error))

    def read(session: Session) -> set[int]:
        """Add the ratings, rater, search and genres to the context; return the ids of the movies shown."""
        ids: set[int] = set() if movie_id is None else {movie_id, *(r.movie_id for r in similar)}
        if user_id is not None and recs is not None:
            recent = latest_records(session=session, user_id=user_id, limit=RECENT)
            context.update(recent=recent, recommended=recs, rater=get_user(session=session, user_id=user_id))
            ids.update(r.movie_id for r in recent)
            ids.update(m for r in recs for m in [r.movie_id, *r.because])
        if q:
            # One more than shown: whether there are more.
            found = [m.id for m, _ in search_movies(session=session, search=q, first=FOUND)]
            context.update(found=found[:FOUND], more_found=len(found) > FOUND)
            ids.update(found[:FOUND])
        context["genres"] = genres_by_movie(session=session, ids=list(ids))
        return ids

    records = await state.titles.get_many(state.run, list(await state.run(read)))
    # Display titles without the year MovieLens appends: the page shows the year beside them.
    context["movies"] = {
        i: replace(r, title=display_title(r.title).removesuffix(f" ({r.year})")) for i, r in records.items()
    }
    return render(request, "playground.html", status_code=status, errors=errors, **context)


def _id_param(raw: str, label: str, errors: list[str]) -> int | None:
    """Return the id in a query parameter, or None when empty or (adding a message to errors) not an id."""
    value = parse_id(raw)
    if raw and value is None:
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        errors.append(f"{label} “{shown}” is not an id: enter a whole number from 1 to {MAX_ID}.")
    return value
