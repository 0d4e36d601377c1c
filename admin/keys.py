"""The dashboard's API keys page: list, create (the key is shown once), revoke."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from admin.auth import checked_form
from admin.views import redirect, render, state_of
from api.access.keys import KEY_CACHE_S, create_key, list_keys, revoke_key
from api.access.scopes import SCOPES
from api.errors import ServiceError


async def page(request: Request, *, created: str | None = None, error: str | None = None) -> Response:
    keys = await state_of(request).run(lambda s: list_keys(session=s))  # rows stay readable after
    return render(request, "keys.html", status_code=400 if error else 200, keys=keys, scopes=SCOPES,
                  created=created, error=error, cache_s=KEY_CACHE_S)  # fmt: skip


async def create(request: Request) -> Response:
    form = await checked_form(request)
    name = form.get("name")
    name = name if isinstance(name, str) else ""
    scopes = [s for s in form.getlist("scope") if isinstance(s, str)]
    try:
        _, key = await state_of(request).run(
            lambda s: create_key(session=s, name=name, scopes=scopes), write=True
        )
    except ServiceError as error:
        return await page(request, error=str(error))
    return await page(request, created=key)  # shown this once; never stored in the clear


async def revoke(request: Request) -> Response:
    await checked_form(request)
    key_id = request.path_params["key_id"]
    try:
        await state_of(request).run(lambda s: revoke_key(session=s, key_id=key_id), write=True)
    except ServiceError as error:
        return await page(request, error=str(error))
    return redirect(request, "admin:keys")
