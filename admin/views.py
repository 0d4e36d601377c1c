"""The dashboard's pages: overview, runs, a run, the progress feed and the playground."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from admin import forms
from admin.service import collection_stats, counts, database_ok
from api.errors import ServiceError
from api.ids import parse_id
from api.movies.models import Movie
from api.ratings.service import latest_records
from api.recommend.service import recommend_for_user, similar_movies
from api.state import AppState
from api.versions.models import ModelVersion
from api.versions.service import SHOWN_METRICS, active_version, busy_version, list_versions

METRICS = SHOWN_METRICS


def state_of(request: Request) -> AppState:
    state: AppState = request.state.movierec
    return state


def templates_of(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return templates_of(request).TemplateResponse(
        request, name, {"metric_names": METRICS, **context}, status_code=status_code
    )


def overview(request: Request) -> Response:
    state = state_of(request)
    with state.sessions() as session:
        db_ok = database_ok(session=session)
        active = active_version(session=session) if db_ok else None
        busy = busy_version(session=session) if db_ok else None
        return render(
            request,
            "overview.html",
            counts=counts(session=session) if db_ok else None,
            active=active,
            busy=busy,
            stats=collection_stats(store=state.store, name=active.collection_name if active else None),
            health={"Database": db_ok, "Milvus": state.store.ping()},
            defaults=forms.defaults(),
            fields=forms.FIELDS,
            error=request.query_params.get("error"),
        )


def runs(request: Request) -> Response:
    with state_of(request).sessions() as session:
        return render(request, "runs.html", versions=list_versions(session=session, limit=200))


def run(request: Request) -> Response:
    with state_of(request).sessions() as session:
        version = session.get(ModelVersion, request.path_params["version_id"])
        if version is None:
            raise HTTPException(404, "no such model version")
        return render(request, "run.html", v=version, progress=progress_of(version))


def run_progress(request: Request) -> Response:
    """Return a run's status and progress as JSON, for the page's polling."""
    with state_of(request).sessions() as session:
        version = session.get(ModelVersion, request.path_params["version_id"])
        if version is None:
            raise HTTPException(404, "no such model version")
        return JSONResponse(progress_of(version), headers={"cache-control": "no-store"})


def progress_of(version: ModelVersion) -> dict[str, Any]:
    progress = {k: v for k, v in (version.progress or {}).items() if k not in ("pid", "host")}
    return {
        "id": version.id,
        "status": version.status,
        "error": version.error,
        "metrics": version.metrics,
        "progress": progress,
    }


def playground(request: Request) -> Response:
    state = state_of(request)
    user_id = _int_param(request, "user_id")
    movie_id = _int_param(request, "movie_id")
    context: dict[str, Any] = {"user_id": user_id, "movie_id": movie_id, "error": None}
    with state.sessions() as session:
        active = state.models.get(session)
        try:
            if user_id is not None:
                recent = latest_records(session=session, user_id=user_id, limit=20)
                recs = recommend_for_user(
                    session=session, store=state.store, active=active, user_id=user_id, limit=10
                )
                context["recent"] = recent
                context["recommended"] = recs.found
            if movie_id is not None:
                context["similar"] = similar_movies(
                    session=session, store=state.store, active=active, movie_id=movie_id, limit=10
                )
        except ServiceError as error:
            context["error"] = str(error)
        ids = {r.movie_id for key in ("recent", "recommended", "similar") for r in context.get(key, [])}
        if movie_id is not None:
            ids.add(movie_id)
        context["titles"] = _titles(session, ids)
        context["active_id"] = active.version_id if active else None
    return render(request, "playground.html", **context)


def _titles(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Movie.id, Movie.title).where(Movie.id.in_(ids)))
    return {movie_id: title for movie_id, title in rows}


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "").strip()
    return parse_id(raw)
