"""Bounds on what a client sends: body size however it is framed, body time, header time."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message

from api import server
from api.app import create_app
from api.settings import Settings
from api.state import AppState
from api.transport import BodyLimit
from tests.api.conftest import Stack


async def _echo_length(request: Request) -> JSONResponse:
    return JSONResponse({"length": len(await request.body())})


def _limited(max_bytes: int = 1024, seconds: float = 5.0) -> Starlette:
    """An app reading whole bodies behind BodyLimit, as api.app.create_app places it."""
    return Starlette(
        routes=[Route("/", _echo_length, methods=["POST"])],
        middleware=[Middleware(BodyLimit, max_bytes=max_bytes, seconds=seconds)],
    )


def _call(
    app: Starlette, headers: list[tuple[bytes, bytes]], chunks: list[bytes], pause: float = 0.0
) -> dict:
    """Send the chunks as one request's body (pause seconds before each) and return the status, the
    response body and how many chunks the app read."""
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    sent: list[Message] = []
    read = 0

    async def receive() -> Message:
        nonlocal read
        if read == len(chunks):
            await asyncio.sleep(3600)  # the client stays, sending nothing more
        await asyncio.sleep(pause)
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": sent[0]["status"], "body": body.decode(), "chunks_read": read}


def test_a_chunked_body_is_counted_as_it_is_read() -> None:
    """Without Content-Length nothing could be refused up front: reading stops past the limit."""
    answer = _call(_limited(), [], [b"x" * 512] * 100)
    assert answer["status"] == 413 and "PAYLOAD_TOO_LARGE" in answer["body"]
    assert answer["chunks_read"] == 3  # 1,536 bytes: the first chunk over 1,024


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    answer = _call(_limited(), [(b"content-length", b"5000")], [b"x" * 5000])
    assert (answer["status"], answer["chunks_read"]) == (413, 0)
    assert _call(_limited(), [(b"content-length", b"-1")], [b""])["status"] == 413


def test_a_body_within_the_limits_reaches_the_app() -> None:
    answer = _call(_limited(), [], [b"x" * 300] * 3, pause=0.01)
    assert answer["status"] == 200 and answer["body"] == '{"length":900}'


def test_a_trickled_body_times_out_as_a_whole() -> None:
    """A byte every 0.1 s never leaves a read waiting long; the deadline is for the whole body."""
    started = time.monotonic()
    answer = _call(_limited(seconds=0.5), [], [b"x"] * 1000, pause=0.1)
    assert answer["status"] == 408 and "REQUEST_TIMEOUT" in answer["body"]
    assert time.monotonic() - started < 5 and answer["chunks_read"] < 10


@contextmanager
def served(settings: Settings | None, app: Callable[[], Any]) -> Iterator[int]:
    """Serve the app factory with uvicorn in a thread, configured as `movierec serve` does (default
    settings when None); yield its port."""
    sock = server.listen_socket("127.0.0.1", 0)
    config = server.uvicorn_config(settings or Settings(environment="development"), app)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not instance.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert instance.started, "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        instance.should_exit = True
        thread.join(timeout=30)


def _request(body: bytes, headers: bytes = b"") -> bytes:
    return (
        b"POST /graphql HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        + headers
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _answer(client: socket.socket, until: bytes) -> bytes:
    """Read from the connection until `until` arrives (headers and body may come in several reads)."""
    client.settimeout(10)
    answer = b""
    while until not in answer:
        chunk = client.recv(65536)
        assert chunk, f"closed after {answer[:200]!r}"
        answer += chunk
    return answer


@pytest.fixture
def header_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(server, "HEADER_TIMEOUT_S", 0.5)
    with served(None, lambda: Starlette(routes=[Route("/", lambda _r: JSONResponse({"ok": True}))])) as port:
        yield port


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    connection.settimeout(seconds)
    try:
        return connection.recv(1024) == b""
    except TimeoutError:
        return False


def test_slow_headers_close_the_connection(header_server: int) -> None:
    with socket.create_connection(("127.0.0.1", header_server)) as idle:  # says nothing at all
        with socket.create_connection(("127.0.0.1", header_server)) as slow:
            for part in (b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"X-Slow: 1\r\n"):
                slow.sendall(part)  # a header line every 0.2 s, never the blank line
                time.sleep(0.2)
            assert _closed_within(slow, 3)
        assert _closed_within(idle, 3)


def test_prompt_requests_on_a_kept_alive_connection_are_served(header_server: int) -> None:
    with socket.create_connection(("127.0.0.1", header_server)) as client:
        for _ in range(3):
            client.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            _answer(client, b'{"ok":true}')
            time.sleep(0.6)  # longer than the header deadline, between requests: not a slow request


def test_an_operation_is_cancelled_when_its_client_leaves(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through uvicorn and the whole app: the client sends a query, then closes its connection while
    the query runs; the operation's awaits are cancelled instead of running to the end."""
    events: list[str] = []

    async def slow_active_model(self: AppState) -> None:
        events.append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    monkeypatch.setattr(AppState, "active_model", slow_active_model)
    with served(stack.settings, lambda: create_app(stack.settings)) as port:
        deadline = time.monotonic() + 60
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(_request(b'{"query": "{ modelInfo { version } }"}'))
            while "started" not in events and time.monotonic() < deadline:
                time.sleep(0.02)
        while "cancelled" not in events and time.monotonic() < deadline:
            time.sleep(0.02)
    assert events == ["started", "cancelled"]


def test_slow_bodies_hold_no_one_else_up(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through uvicorn and the whole app: 16 connections trickling request bodies (what held every
    admission slot of a worker before) while another client's requests are answered at once; the
    trickling ones get 408 when their body deadline passes."""
    settings = stack.settings.model_copy(update={"body_timeout_s": 2.0})
    slow: list[socket.socket] = []
    with served(settings, lambda: create_app(settings)) as port:
        try:
            for _ in range(16):
                connection = socket.create_connection(("127.0.0.1", port))
                connection.sendall(_request(b" " * 100)[:-92])  # 8 of its 100 bytes
                slow.append(connection)
            with socket.create_connection(("127.0.0.1", port)) as client:
                for _ in range(3):
                    client.sendall(_request(b'{"query": "{ genres }"}'))
                    assert _answer(client, b"Drama").startswith(b"HTTP/1.1 200")
            for connection in slow:
                assert _answer(connection, b"REQUEST_TIMEOUT").startswith(b"HTTP/1.1 408")
        finally:
            for connection in slow:
                connection.close()


def test_x_forwarded_for_is_believed_only_from_the_proxies_named(stack: Stack) -> None:
    """A process beside the service sending X-Forwarded-For cannot pose as many addresses: the
    address limit counts the connection's address unless MOVIEREC_FORWARDED_ALLOW_IPS names it."""
    query = b'{"query": "{ genres }"}'
    for allowed, statuses in (("", [200, 200, 429, 429]), ("127.0.0.1", [200, 200, 200, 200])):
        settings = stack.settings.model_copy(
            update={"rate_limit_address": "2/minute", "forwarded_allow_ips": allowed}
        )
        with served(settings, lambda s=settings: create_app(s)) as port:
            seen = []
            for n in range(4):
                with socket.create_connection(("127.0.0.1", port)) as client:
                    client.sendall(_request(query, f"X-Forwarded-For: 10.9.0.{n}\r\n".encode()))
                    seen.append(int(_answer(client, b"\r\n\r\n").split(b" ")[1]))
            assert seen == statuses, allowed
