"""What every HTTP request goes through before the app: bounds on its body, and the headers every
response carries."""

from __future__ import annotations

import asyncio

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
