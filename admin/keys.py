"""The dashboard's API keys page: list, create (the key is shown once), revoke."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin.auth import checked_form
from admin.views import render, state_of
from api.access.gate import KEY_CACHE_S
from api.access.keys import create_key, list_keys, revoke_key
from api.access.scopes import SCOPES
from api.errors import ServiceError


async def page(request: Request, *, created: str | None = None, error: str | None = None) -> Response:
    state = state_of(request)

    def read() -> list[dict[str, object]]:
        with state.sessions() as session:
            return [
                {"key_id": k.key_id, "name": k.name, "scopes": k.scopes, "created_at": k.created_at,
                 "last_used_at": k.last_used_at, "revoked_at": k.revoked_at}
                for k in list_keys(session=session)
            ]  # fmt: skip

    keys = await run_in_threadpool(read)
    status = 400 if error else 200
    return render(request, "keys.html", status_code=status, keys=keys, scopes=SCOPES, created=created,
                  error=error, cache_s=KEY_CACHE_S)  # fmt: skip


async def create(request: Request) -> Response:
    form = await checked_form(request)
    state = state_of(request)
    name = form.get("name")
    scopes = [s for s in form.getlist("scope") if isinstance(s, str)]

    def add() -> str:
        with state.sessions.begin() as session:
            return create_key(session=session, name=name if isinstance(name, str) else "", scopes=scopes)[1]

    try:
        key = await run_in_threadpool(add)
    except ServiceError as error:
        return await page(request, error=str(error))
    return await page(request, created=key)  # shown this once; never stored in the clear


async def revoke(request: Request) -> Response:
    await checked_form(request)
    state = state_of(request)
    key_id = request.path_params["key_id"]

    def stop() -> None:
        with state.sessions.begin() as session:
            revoke_key(session=session, key_id=key_id)

    try:
        await run_in_threadpool(stop)
    except ServiceError as error:
        return await page(request, error=str(error))
    return RedirectResponse(request.url_for("admin:keys").path, status_code=303)
