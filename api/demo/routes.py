"""POST /demo/session creates a user when asked and mints a token of the user under DEMO_MINTER, so
its tokens stop working when the demo is switched off; GET /demo/starters names users to start from.
Mounted only when Settings.demo_enabled: anyone can create users and act as any."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from api.access.backend import unavailable
from api.access.tokens import DEMO_MINTER
from api.db import DATABASE_ERRORS
from api.demo.starters import Starters
from api.errors import Refused, ServiceError
from api.ids import MAX_ID
from api.state import AppState
from api.transport import NotJSON, load_json
from api.users import service as users

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 1024  # a newUser body is about 80 bytes
SHAPE = 'send {"userId": N} or {"newUser": {"gender": "F", "age": 25, "occupation": 12, "zipCode": "10001"}}'
STATUS = {"BAD_USER_INPUT": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503}


async def session(request: Request) -> Response:
    """Return a token of the user named, or of a user created from the demographics sent."""
    state: AppState = request.state.movierec
    try:
        # Counted like an anonymous API request of the address, as a new user costs a row.
        await state.access.rates.within("address", request.client.host if request.client else "")
        wanted = _parse(await _json_body(request))
        if isinstance(wanted, int):
            await state.run(lambda s: users.get_user(session=s, user_id=wanted))  # NotFound if none
            user_id = wanted
        else:
            user_id = await state.run(lambda s: users.create_user(session=s, **wanted).id, write=True)
    except Refused as refused:  # AccessRefused too
        return refused.response()
    except ServiceError as error:  # BadUserInput from the user service, NotFound
        return Refused(STATUS.get(error.code, 500), error.code, str(error)).response()
    except DATABASE_ERRORS:
        return unavailable().response()
    # Lives MOVIEREC_TOKEN_TTL_S: the page asks again for an existing user when its token has expired.
    token, expires = state.access.mint(user_id, DEMO_MINTER, state.settings.token_ttl_s)
    expires_at = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")  # as DateTime reads
    body = {"userId": user_id, "token": token, "expiresAt": expires_at}
    return JSONResponse(body, headers={"cache-control": "no-store"})


async def _json_body(request: Request) -> dict[str, Any]:
    """Return the request's JSON object, read up to MAX_BODY_BYTES."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
        # Also what keeps another site's plain form from creating users: JSON needs a CORS preflight.
        raise Refused(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, "PAYLOAD_TOO_LARGE", f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        data = load_json(body)
    except NotJSON as error:
        raise Refused(400, "BAD_REQUEST", str(error)) from None
    if not isinstance(data, dict):
        raise Refused(400, "BAD_REQUEST", "the request body must be a JSON object")
    return data


def _parse(body: dict[str, Any]) -> int | dict[str, Any]:
    """Return the user id asked for, or the demographics of a user to create (create_user's arguments)."""
    if set(body) == {"userId"}:
        return _integer(body["userId"], "userId", 1, MAX_ID)
    new = body.get("newUser")
    if set(body) != {"newUser"} or not isinstance(new, dict):
        raise Refused(400, "BAD_USER_INPUT", SHAPE)
    if set(new) != {"gender", "age", "occupation", "zipCode"}:
        raise Refused(400, "BAD_USER_INPUT", SHAPE)
    if not isinstance(new["gender"], str) or not isinstance(new["zipCode"], str):
        raise Refused(400, "BAD_USER_INPUT", "gender and zipCode must be strings")
    age = _integer(new["age"], "age", 0, 200)
    occupation = _integer(new["occupation"], "occupation", 0, MAX_ID)
    # The service checks each value.
    return {"gender": new["gender"], "age": age, "occupation": occupation, "zip_code": new["zipCode"][:100]}


def _integer(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:  # bool is an int, but not a number here
        raise Refused(400, "BAD_USER_INPUT", f"{name} must be a whole number from {low} to {high}")
    return value


def starters_route(starters: Starters) -> Route:
    """Return GET /starters: the users the page offers to start from, an active one and one without
    ratings, as {"starters": [{"kind": "active", "userId": N, "ratings": N}, ...]}."""

    async def answer(request: Request) -> Response:
        try:
            found = await starters.get(request.state.movierec)
        except DATABASE_ERRORS:
            return unavailable().response()
        body = [{"kind": s.kind, "userId": s.user_id, "ratings": s.ratings} for s in found]
        return JSONResponse({"starters": body}, headers={"cache-control": "no-store"})

    return Route("/starters", answer, methods=["GET"])


def demo_app() -> Router:
    """Return the demo's routes: the session and starters routes and the static page (index.html at
    /demo/)."""
    return Router(
        routes=[
            Route("/session", session, methods=["POST"]),
            starters_route(Starters()),
            Mount("/", app=StaticFiles(directory=STATIC, html=True), name="static"),
        ]
    )
