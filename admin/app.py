"""The admin dashboard as a Starlette app, mounted at /admin by api.app.create_app."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from itsdangerous import TimestampSigner
from jinja2 import pass_context
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from admin import actions, auth, experiments, keys, playground, views
from admin.auth import CSRF_KEY, SESSION_HOURS, SID_KEY, RequireLogin
from admin.worker import reap_interrupted, stop_training
from api.db import utcnow
from api.errors import ServiceError
from api.settings import Settings
from api.versions.service import SHOWN_METRICS

HERE = Path(__file__).resolve().parent


def _context(request: Request) -> dict[str, Any]:
    return {
        "csrf_token": request.session.setdefault(CSRF_KEY, secrets.token_urlsafe(32)),  # made at first use
        "signed_in": SID_KEY in request.session,  # RequireLogin has cleared a session that ended
        "flash": request.session.pop(views.FLASH_KEY, None),  # shown once
        "now": utcnow(),  # naive UTC, as the database's stamps
    }


def _stars(rating: float) -> str:
    """Return five star symbols for 0.5-5 stars: full ones, a half one (½), then empty ones."""
    full, half = int(rating), rating % 1 >= 0.5
    return "★" * full + "½" * half + "☆" * (5 - full - half)


@pass_context
def _path_for(context: dict[str, Any], name: str, /, **path_params: Any) -> str:
    """The templates' url_for: a path, so that no link carries the Host header a client sent."""
    return context["request"].url_for(name, **path_params).path


def build_templates() -> Jinja2Templates:
    templates = Jinja2Templates(HERE / "templates", context_processors=[_context])
    templates.env.filters.update(
        duration=views.duration, stars=_stars, curves=views.curves_of, waiting=views.waiting_for
    )
    templates.env.globals.update(url_for=_path_for, metric_names=SHOWN_METRICS)
    return templates


def create_admin(settings: Settings) -> Starlette:
    """Return the dashboard app; every route but sign-in and static files needs a signed-in session."""
    routes = [
        Route("/", views.overview, name="overview"),
        Route("/login", auth.login, name="login", methods=["GET", "POST"]),
        Route("/logout", auth.logout, name="logout", methods=["POST"]),
        Route("/retrain", actions.retrain, name="retrain", methods=["POST"]),
        Route("/runs", views.runs, name="runs"),
        Route("/activations", views.activation_history, name="activations"),
        Route("/runs/{version_id:int}/rerun", actions.rerun, name="rerun", methods=["POST"]),
        Route("/compare", views.compare, name="compare"),
        Route("/collections/{name}/drop", actions.drop_collection, name="drop_collection", methods=["POST"]),
        Route("/runs/{version_id:int}", views.run, name="run"),
        Route("/runs/{version_id:int}/progress", views.run_progress, name="run_progress"),
        Route("/runs/{version_id:int}/activate", actions.activate_version, name="activate", methods=["POST"]),
        Route("/experiments", experiments.page, name="experiments"),
        Route("/experiments/start", experiments.start, name="experiment_start", methods=["POST"]),
        Route("/experiments/stop", experiments.stop, name="experiment_stop", methods=["POST"]),
        Route("/experiments/promote", experiments.promote, name="experiment_promote", methods=["POST"]),
        Route("/playground", playground.page, name="playground"),
        Route("/keys", keys.page, name="keys", methods=["GET"]),
        Route("/keys", keys.create, name="keys_create", methods=["POST"]),
        Route("/keys/{key_id}/revoke", keys.revoke, name="keys_revoke", methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    secret = settings.session_secret.get_secret_value()
    if not settings.has_session_secret:  # development only (Settings refuse it elsewhere)
        secret = secrets.token_urlsafe(32)
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="movierec_admin",
            max_age=SESSION_HOURS * 3600,
            path="/admin",
            same_site="lax",
            https_only=settings.environment == "production",
        ),
        Middleware(RequireLogin),
    ]
    handlers = {404: views.not_found, ServiceError: views.refused}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.templates = build_templates()
    app.state.devices = TimestampSigner(secret, salt="movierec-admin-device")  # admin.auth.login
    return app


on_startup = reap_interrupted
on_shutdown = stop_training  # uvicorn re-raises SIGTERM after shutdown, so atexit would not stop them
