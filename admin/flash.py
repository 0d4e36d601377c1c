"""One-time messages after a POST (the page it redirects to shows them once), kept in the signed
session cookie: a link cannot put words on a dashboard page, as an `?error=` parameter could."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request

KEY = "flash"
Kind = Literal["ok", "error"]


def flash(request: Request, kind: Kind, text: str) -> None:
    request.session[KEY] = [kind, text]


def take_flash(request: Request) -> tuple[str, str] | None:
    """Return the message waiting for this page, once; None if there is none."""
    value = request.session.pop(KEY, None)
    if isinstance(value, list) and len(value) == 2 and value[0] in ("ok", "error"):
        return value[0], str(value[1])
    return None
