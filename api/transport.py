"""What every HTTP request goes through before the app: bounds on its body, the reading of a JSON body,
and the headers every response carries."""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Refused

CLOSE = {"connection": "close"}  # the rest of a refused body is never read


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413, and one not all received within `seconds`
    of its first read with 408.

    A Content-Length over the limit is refused unread; a chunked body is counted as the app reads it.
    The deadline covers the whole body, not each read, or a client trickling bytes holds it forever.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float) -> None:
        self.app, self.max_bytes, self.seconds = app, max_bytes, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = Refused(
            413, "PAYLOAD_TOO_LARGE", f"request body larger than {self.max_bytes} bytes", CLOSE
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await too_large.response()(scope, receive, send)
            return
        received, deadline, complete, started = 0, 0.0, False, False

        async def bounded_receive() -> Message:
            nonlocal received, deadline, complete
            if complete:  # after the body: waiting for a disconnect has no deadline
                return await receive()
            deadline = deadline or asyncio.get_running_loop().time() + self.seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                late = f"request body not received within {self.seconds:g} s"
                raise Refused(408, "REQUEST_TIMEOUT", late, CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large
                complete = not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except Refused as refused:
            if started:  # an answer is on its way already: nothing better to do than drop the connection
                raise
            await refused.response()(scope, receive, send)


class NotJSON(ValueError):
    """A request body that is not JSON: the message says what is wrong, and at which byte."""


def load_json(data: str | bytes) -> object:
    """Return the JSON value of a request body; raise NotJSON saying what is wrong with one that is not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise NotJSON(json_problem(data, error)) from None


def json_problem(data: str | bytes, error: orjson.JSONDecodeError) -> str:
    """Return what is wrong with a body orjson refused: orjson says only "not valid UTF-8" for any bad
    byte, and places its other errors by character."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"the request body is not UTF-8: {bad.reason} at byte {bad.start}"
    if not text.strip():
        return "the request body is empty"
    return f"the request body is not valid JSON: {error.msg} at byte {len(text[: error.pos].encode())}"


class SecurityHeaders:
    """Adds the headers every response should carry, a Content-Security-Policy among them."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    )
    # The app's own origin only: no inline script or style, no eval.
    CSP = b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    # GraphiQL (development only) also needs the fonts its stylesheet embeds as data: URLs. The <style>
    # its dialogs add to lock the page's scroll is refused, harmlessly: the page never scrolls.
    GRAPHIQL_CSP = CSP + b"; font-src 'self' data:"

    def __init__(self, app: ASGIApp, *, graphiql: bool) -> None:
        self.app = app
        self.csp = (b"content-security-policy", self.GRAPHIQL_CSP if graphiql else self.CSP)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS, self.csp]
            await send(message)

        await self.app(scope, receive, send_with_headers)
