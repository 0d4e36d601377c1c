"""Serve the app with uvicorn, in this process or in uvicorn's supervisor of worker processes, with
what uvicorn lacks: a deadline on request headers, a SO_REUSEPORT socket per worker, TCP_NODELAY on
accepted connections, one kept-alive Milvus Lite server for all workers, and shared metrics and keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from api.settings import Settings
from api.vectors.lite import LiteError, LiteKeeper, is_lite_file

log = logging.getLogger(__name__)
APP = "api.app:create_app"
BACKLOG = 2048
HEADER_TIMEOUT_S = 10.0  # a request's headers, from its first byte (HeaderDeadline)


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's HTTP protocol, closing a connection whose request headers take over HEADER_TIMEOUT_S:
    uvicorn's idle timeout ends at a request's first byte, so a trickling client held a worker forever."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self.transport.close)

    def on_headers_complete(self) -> None:
        self._header_deadline.cancel()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.cancel()
        super().connection_lost(exc)


class ServeError(OSError):
    """The server could not start (port taken, Milvus Lite not startable); shown as any OSError is."""


def listen_socket(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """Return a TCP socket bound to host:port; IPPROTO_TCP makes asyncio set TCP_NODELAY on what it
    accepts, or keep-alive requests wait for delayed ACKs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    if listen:
        sock.listen(BACKLOG)
    return sock


class WorkerSocket(socket.socket):
    """What uvicorn hands each worker process, unpickled there as a SO_REUSEPORT listener of its own: on
    one shared socket a worker's loop accepts every waiting connection, and the load runs at its pace."""

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        host, port = self.getsockname()[:2]
        return partial(listen_socket, reuse_port=True), (host, port)


def worker_socket(host: str, port: int) -> WorkerSocket:
    """Return the socket to hand uvicorn's workers, bound but not listening (nobody accepts on it); the
    port is first bound alone, so that one in use by any other server is refused."""
    with listen_socket(host, port, listen=False) as probe:
        port = probe.getsockname()[1]
    held = listen_socket(host, port, reuse_port=True, listen=False)
    return WorkerSocket(fileno=held.detach())


def uvicorn_config(
    settings: Settings,
    app: str | Callable[[], Any],
    *,
    workers: int = 1,
    log_config: dict[str, Any] | None = None,
    access_log: bool = False,
) -> uvicorn.Config:
    """Return uvicorn's config for the app factory `app`, believing X-Forwarded-For only from the
    proxies the settings name (uvicorn's default believes any process on 127.0.0.1)."""
    return uvicorn.Config(
        app,
        factory=True,
        workers=workers,
        log_config=log_config,
        access_log=access_log,
        backlog=BACKLOG,
        http=HeaderDeadline,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    log_config: dict[str, Any] | None,
    access_log: bool,
    app: str = APP,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve the app factory `app` until interrupted, calling on_ready (from a thread) once it answers;
    a port taken raises ServeError before anything starts."""
    sock = listen_socket(host, port) if workers <= 1 else worker_socket(host, port)
    if on_ready is not None:
        _when_answering(host, sock.getsockname()[1], on_ready)
    config = uvicorn_config(settings, app, workers=workers, log_config=log_config, access_log=access_log)
    if workers <= 1:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once shut down
            uvicorn.Server(config).run(sockets=[sock])
        return
    if not settings.has_session_secret:  # read by the workers' Settings
        os.environ["MOVIEREC_SESSION_SECRET"] = secrets.token_urlsafe(32)
    if not settings.has_token_secret:  # the same for the user tokens' key
        os.environ["MOVIEREC_TOKEN_SECRET"] = secrets.token_urlsafe(32)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(sock.close)
        if settings.metrics_dir is None:  # the workers' prometheus_client reads it from the environment
            metrics = tempfile.TemporaryDirectory(prefix="movierec-metrics-", ignore_cleanup_errors=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = cleanup.enter_context(metrics)
        if is_lite_file(settings.resolved_milvus_uri):
            try:
                lite = LiteKeeper(Path(settings.resolved_milvus_uri).resolve())
            except LiteError as error:
                raise ServeError(str(error)) from None
            cleanup.callback(lite.stop)
            os.environ["MOVIEREC_MILVUS_URI"] = lite.server.uds_path  # read by the workers' Settings
        Multiprocess(config, sockets=[sock]).run()


def _when_answering(host: str, port: int, callback: Callable[[], None], timeout_s: float = 600) -> None:
    """Call `callback` from a thread once GET /healthz answers on the port, which comes seconds after
    binding it (the workers load the model)."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://[{local}]:{port}/healthz" if ":" in local else f"http://{local}:{port}/healthz"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy

    def wait() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with direct.open(url, timeout=2) as response:
                    if response.status == 200:
                        callback()
                        return
            except OSError:  # refused until a worker listens
                pass
            time.sleep(0.1)

    threading.Thread(target=wait, name="movierec-ready", daemon=True).start()
