"""Sign-in with the settings' password, a signed session cookie, and a CSRF token on every POST."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import delete
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from admin.models import AdminSession
from api.db import utcnow
from api.settings import Settings

CSRF_KEY = "csrf"
SID_KEY = "sid"  # the server-side session (admin_sessions) this cookie belongs to
SESSION_HOURS = 8  # from sign-in, however active: a session never outlives this


def open_session(session: Session) -> str:
    """Record a new signed-in session and return its id (for the cookie); expired ones go."""
    sid, now = secrets.token_urlsafe(32), utcnow()
    session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    session.add(
        AdminSession(id_sha256=_sha(sid), created_at=now, expires_at=now + timedelta(hours=SESSION_HOURS))
    )
    return sid


def session_alive(session: Session, sid: str) -> bool:
    row = session.get(AdminSession, _sha(sid))
    return row is not None and row.expires_at > utcnow()


def close_session(session: Session, sid: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.id_sha256 == _sha(sid)))


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


class RequireLogin:
    """Sends every request but the sign-in page and static files to sign-in while nobody is signed in.

    A cookie is signed in only while its server-side session lives: sign-out deletes it, and it ends
    SESSION_HOURS after sign-in, so a copy of the cookie is worth nothing after either."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope) if scope["type"] == "http" else None
        path = request.url.path.removeprefix(scope.get("root_path", "")) if request else ""
        if request is not None and not path.startswith("/static/"):  # static files are anyone's
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
