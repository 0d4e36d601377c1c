"""The dashboard's POSTs on versions: train, train again, activate, drop an orphaned collection. Each
checks the CSRF token; a ServiceError goes back with its message (admin.views.refused)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from admin import forms
from admin.auth import checked_form
from admin.service import collections
from admin.views import redirect, state_of
from admin.worker import start_training
from api.errors import BadUserInput, ServiceError
from api.recommend.kept import keep_in_background
from api.versions.activation import activate
from api.versions.service import get_version
from ml.config import TrainConfig

log = logging.getLogger(__name__)
BY = "dashboard:admin"  # one shared password, so one operator name


async def retrain(request: Request) -> Response:
    config = forms.parse(await checked_form(request))
    version_id = await run_in_threadpool(
        start_training, state=state_of(request), config=config, started_by=BY
    )
    return redirect(request, "admin:run", version_id=version_id)


async def rerun(request: Request) -> Response:
    """Train a new version with the hyperparameters of an earlier run (any outcome)."""
    await checked_form(request)
    state = state_of(request)
    version_id = request.path_params["version_id"]
    params = await state.run(lambda s: get_version(session=s, version_id=version_id).params)
    config = TrainConfig.from_dict(params)
    new_id = await run_in_threadpool(start_training, state=state, config=config, started_by=BY)
    ok = f"Training version {new_id} with the settings of version {version_id}."
    return redirect(request, "admin:run", ok=ok, version_id=new_id)


async def activate_version(request: Request) -> Response:
    await checked_form(request)
    state = state_of(request)
    version_id = request.path_params["version_id"]
    # Building a collection takes seconds: off the event loop, which keeps serving the API.
    await run_in_threadpool(
        activate, sessions=state.sessions, store=state.store, version_id=version_id, by=BY
    )
    state.models.invalidate()
    # Until the new version's lists exist, requests compute; they are ready in seconds to a minute.
    keep_in_background(sessions=state.sessions, store=state.store, version_id=version_id)
    ok = f"Version {version_id} is active. Its users' lists are being kept (below)."
    return redirect(request, "admin:overview", ok=ok)


async def drop_collection(request: Request) -> Response:
    """Drop a collection no succeeded version owns (checked again here, not taken from the form)."""
    await checked_form(request)
    state = state_of(request)
    name = request.path_params["name"]

    def drop(session: Session) -> None:
        found = collections(session=session, store=state.store)
        if found is None:
            raise ServiceError("Milvus did not answer; nothing was dropped.")
        if not any(c.name == name and c.role == "orphaned" for c in found):
            raise BadUserInput(f"{name} is not an orphaned collection; nothing was dropped.")
        state.store.drop(name)

    await state.run_blocking(drop)
    log.info("dashboard: dropped orphaned collection %s", name)
    return redirect(request, "admin:overview", ok=f"Dropped the orphaned collection {name}.")
