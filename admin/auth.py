"""Sign-in and out with the settings' password (throttled), a signed session cookie whose server-side
session can end, and a CSRF token on every POST."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from admin.models import AdminSession, SignInFailures
from admin.views import redirect, render, state_of
from api.db import utcnow
from api.settings import Settings

log = logging.getLogger(__name__)
CSRF_KEY = "csrf"
SID_KEY = "sid"  # the server-side session (admin_sessions) this cookie belongs to
SESSION_HOURS = 8  # from sign-in, however active: a session never outlives this
DEVICE_COOKIE = "movierec_admin_device"
DEVICE_DAYS = 90
ATTEMPTS, WINDOW = 5, timedelta(minutes=5)  # failed sign-ins of one key, then it waits out the window


def open_session(session: Session, key: str) -> str:
    """Record a new signed-in session, clearing expired ones and the key's failures; return its id."""
    sid, now = secrets.token_urlsafe(32), utcnow()
    session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    session.execute(delete(SignInFailures).where(SignInFailures.key == key))
    expires = now + timedelta(hours=SESSION_HOURS)
    session.add(AdminSession(id_sha256=_sha(sid), created_at=now, expires_at=expires))
    return sid


def session_alive(session: Session, sid: str) -> bool:
    row = session.get(AdminSession, _sha(sid))
    return row is not None and row.expires_at > utcnow()


def _sha(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


async def checked_form(request: Request) -> FormData:
    """Return the POST's form after checking its CSRF token against the session's (403 otherwise)."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get(CSRF_KEY)
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
    return form


def password_problem(settings: Settings) -> str | None:
    """Return why nobody can sign in, or None when a password is set."""
    if not settings.admin_password.get_secret_value().strip():
        return "Sign-in is disabled: set MOVIEREC_ADMIN_PASSWORD and restart the service."
    return None


def retry_after(session: Session, key: str) -> int:
    """Return the seconds a key must wait, ATTEMPTS failures in WINDOW (0: it may try now)."""
    row = session.get(SignInFailures, key)
    if row is None or row.failures < ATTEMPTS:
        return 0
    left = row.window_started + WINDOW - utcnow()
    return max(0, int(left.total_seconds()) + 1)


def count_failure(session: Session, key: str) -> None:
    """Count a failed sign-in (in the caller's transaction, locking the key's row)."""
    now = utcnow()
    row = session.get(SignInFailures, key, with_for_update=True)
    if row is None:
        session.add(SignInFailures(key=key, failures=1, window_started=now))
    elif row.window_started + WINDOW <= now:
        row.failures, row.window_started = 1, now
    else:
        row.failures += 1


async def login(request: Request) -> Response:
    """The sign-in page; its POST signs in or counts a failure, throttled for every worker (rows in the
    database) per browser with a device cookie (signed, given at sign-in), else per address: a guesser
    behind the operators' shared proxy blocks only browsers that never signed in (OWASP's device cookie)."""
    state = state_of(request)
    problem = password_problem(state.settings)
    if request.method != "POST":
        return render(request, "login.html", problem=problem)
    form = await checked_form(request)
    devices: TimestampSigner = request.app.state.devices
    address = request.client.host if request.client else "?"
    device = None
    with contextlib.suppress(BadSignature):
        device = devices.unsign(request.cookies.get(DEVICE_COOKIE, ""), max_age=DEVICE_DAYS * 86400).decode()
    key = f"device:{device}" if device else f"address:{address}"[:100]
    if wait := await state.run(lambda s: retry_after(s, key)):
        error = f"Too many failed sign-ins; try again in {wait} s."
        response = render(request, "login.html", status_code=429, error=error)
        response.headers["Retry-After"] = str(wait)
        return response
    if problem:
        return render(request, "login.html", status_code=403, problem=problem)
    password = form.get("password")
    expected = state.settings.admin_password.get_secret_value().encode()
    if not isinstance(password, str) or not hmac.compare_digest(password.encode(), expected):
        log.warning("dashboard: failed sign-in from %s", address)
        with contextlib.suppress(IntegrityError):  # two first failures at once: one is counted
            await state.run(lambda s: count_failure(s, key), write=True)
        return render(request, "login.html", status_code=401, error="Wrong password.")
    sid = await state.run(lambda s: open_session(s, key), write=True)
    request.session.clear()  # a fresh session, whose CSRF token the next page makes (admin.app._context)
    request.session[SID_KEY] = sid
    target = request.query_params.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = request.url_for("admin:overview").path
    response = RedirectResponse(target, status_code=303)
    # This browser has signed in: from now on its failures are counted apart from its address's.
    cookie = devices.sign(device or secrets.token_urlsafe(16)).decode()
    response.set_cookie(
        DEVICE_COOKIE, cookie, max_age=DEVICE_DAYS * 86400, path="/admin", httponly=True, samesite="strict",
        secure=state.settings.environment == "production",
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    await checked_form(request)
    sid = request.session[SID_KEY]  # RequireLogin lets only a signed-in session post here
    gone = delete(AdminSession).where(AdminSession.id_sha256 == _sha(sid))  # and every copy of its cookie
    await state_of(request).run(lambda s: s.execute(gone), write=True)
    request.session.clear()
    return redirect(request, "admin:login")


class RequireLogin:
    """Sends every request but the sign-in page and static files to sign-in unless its cookie's server-side
    session lives: sign-out, or SESSION_HOURS after sign-in, ends it for every copy of the cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        path = request.url.path.removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and not path.startswith("/static/"):  # static files are anyone's
            sid = request.session.get(SID_KEY)  # the cookie is signed: only sign-in put it there
            if sid is not None and not await request.state.movierec.run(lambda s: session_alive(s, sid)):
                request.session.clear()
                sid = None
            if sid is None and path not in ("/login", "/login/"):
                response = Response("sign in first", status_code=401)
                if request.method == "GET":
                    # A path, not an absolute URL: nothing taken from the Host header a client sent.
                    target = request.url_for("admin:login").path + "?" + urlencode({"next": request.url.path})
                    response = RedirectResponse(target, status_code=303)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
