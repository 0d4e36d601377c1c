"""The dashboard's POSTs: sign in and out, start a retrain, activate a version. Each checks the CSRF token."""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin import forms
from admin.auth import SID_KEY, checked_form, close_session, open_session, password_problem
from admin.service import collections
from admin.throttle import DEVICE_COOKIE, DEVICE_DAYS, SignInThrottle
from admin.views import redirect, render, state_of
from admin.worker import start_training
from api.errors import ServiceError
from api.recommend.kept import keep_in_background
from api.versions.activation import activate
from api.versions.service import get_version
from ml.config import TrainConfig

log = logging.getLogger(__name__)
BY = "dashboard:admin"  # one shared password, so one operator name


async def login_page(request: Request) -> Response:
    return render(request, "login.html", problem=password_problem(state_of(request).settings))


async def login(request: Request) -> Response:
    form = await checked_form(request)
    state = state_of(request)
    throttle: SignInThrottle = request.app.state.throttle
    address = request.client.host if request.client else "?"
    device = throttle.device_of(request.cookies.get(DEVICE_COOKIE))
    key = throttle.key(address, device)
    if wait := await state.run(lambda s: throttle.retry_after(s, key)):
        error = f"Too many failed sign-ins; try again in {wait} s."
        response = render(request, "login.html", status_code=429, error=error)
        response.headers["Retry-After"] = str(wait)
        return response
    if problem := password_problem(state.settings):
        return render(request, "login.html", status_code=403, problem=problem)
    password = form.get("password")
    expected = state.settings.admin_password.get_secret_value().encode()
    if not isinstance(password, str) or not hmac.compare_digest(password.encode(), expected):
        log.warning("dashboard: failed sign-in from %s", address)
        with contextlib.suppress(IntegrityError):  # two first failures at once: one is counted
            await state.run(lambda s: throttle.failed(s, key), write=True)
        return render(request, "login.html", status_code=401, error="Wrong password.")

    def signed_in(session: Session) -> str:
        throttle.succeeded(session, key)
        return open_session(session)

    sid = await state.run(signed_in, write=True)
    request.session.clear()  # a fresh session, whose CSRF token the next page makes (admin.app._context)
    request.session[SID_KEY] = sid
    target = request.query_params.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = request.url_for("admin:overview").path
    response = RedirectResponse(target, status_code=303)
    # This browser has signed in: from now on its failures are counted apart from its address's.
    cookie = throttle.device_cookie(device or secrets.token_urlsafe(16))
    response.set_cookie(
        DEVICE_COOKIE, cookie, max_age=DEVICE_DAYS * 86400, path="/admin", httponly=True, samesite="strict",
        secure=state.settings.environment == "production",
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    await checked_form(request)
    sid = request.session[SID_KEY]  # RequireLogin lets only a signed-in session post here
    await state_of(request).run(lambda s: close_session(s, sid), write=True)  # and every copy of its cookie
    request.session.clear()
    return redirect(request, "admin:login")


async def retrain(request: Request) -> Response:
    state = state_of(request)
    try:
        config = forms.parse(await checked_form(request))
        version_id = await run_in_threadpool(start_training, state=state, config=config, started_by=BY)
    except ServiceError as error:
        return redirect(request, "admin:overview", error=str(error))
    return redirect(request, "admin:run", version_id=version_id)


async def rerun(request: Request) -> Response:
    """Train a new version with the hyperparameters of an earlier run (any outcome)."""
    await checked_form(request)
    state = state_of(request)
    version_id = request.path_params["version_id"]
    try:
        params = await state.run(lambda s: get_version(session=s, version_id=version_id).params)
        config = TrainConfig.from_dict(params)
        new_id = await run_in_threadpool(start_training, state=state, config=config, started_by=BY)
    except ServiceError as error:
        return redirect(request, "admin:run", error=str(error), version_id=version_id)
    ok = f"Training version {new_id} with the settings of version {version_id}."
    return redirect(request, "admin:run", ok=ok, version_id=new_id)


async def activate_version(request: Request) -> Response:
    await checked_form(request)
    state = state_of(request)
    version_id = request.path_params["version_id"]
    try:
        # Building a collection takes seconds: off the event loop, which keeps serving the API.
        await run_in_threadpool(
            activate, sessions=state.sessions, store=state.store, version_id=version_id, by=BY
        )
    except ServiceError as error:
        return redirect(request, "admin:run", error=str(error), version_id=version_id)
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

    def drop(session: Session) -> str | None:
        found = collections(session=session, store=state.store)
        if found is None:
            return "Milvus did not answer; nothing was dropped."
        if not any(c.name == name and c.orphaned for c in found):
            return f"{name} is not an orphaned collection; nothing was dropped."
        state.store.drop(name)
        return None

    if problem := await state.run_blocking(drop):
        return redirect(request, "admin:overview", error=problem)
    log.info("dashboard: dropped orphaned collection %s", name)
    return redirect(request, "admin:overview", ok=f"Dropped the orphaned collection {name}.")
