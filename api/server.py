"""Serve the app in one process or in several worker processes on one port.

Several workers share one listening socket, and a worker accepts a connection only while it holds
no more open connections than the least loaded of the others (their counts are in shared memory).
Left to the kernel, keep-alive connections split unevenly: with uvicorn's `--workers` whichever
worker woke first took all 16 of a load test's connections, and with a socket per worker
(SO_REUSEPORT) the 4-tuple hash split them 11/5 as often as 8/8, and the busier worker's queue set
the p99 (68 ms against 19 ms for an even split, same machine, same minute). Accepted sockets get
TCP_NODELAY: uvicorn's `--workers` listener leaves it off (its proto is 0, and asyncio looks at
that), which costs every keep-alive request after the first a ~40 ms delayed ACK.

With Milvus Lite, which lets one process open its file, this process starts the Lite server and
the workers reach it through its unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import secrets
import select
import signal
import socket
import time
from collections.abc import Callable, MutableSequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import uvicorn

from api.settings import Settings
from api.vectors.store import is_lite_file

log = logging.getLogger(__name__)
APP = "api.app:create_app"
RESTART_PAUSE_S = 1.0  # between a worker's death and its replacement, so a crash loop cannot spin
BACKLOG = 2048
TURN_POLL_S = 0.002  # how often a worker ahead of the others looks again
TURN_MAX_WAIT_S = 0.05  # a waiting connection is taken anyway after this (a sibling may be stuck)


class ServeError(RuntimeError):
    """The server could not start (port taken, Milvus Lite not startable)."""


def listen_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to host:port whose accepted connections get TCP_NODELAY."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


class BalancedServer(uvicorn.Server):
    """A uvicorn server that accepts from a listening socket shared with its sibling workers, only
    while it holds no more connections than the least loaded of them (`loads`, one count each)."""

    def __init__(
        self, config: uvicorn.Config, *, listener: socket.socket, loads: MutableSequence[int], index: int
    ) -> None:
        super().__init__(config)
        self.listener, self.loads, self.index = listener, loads, index
        self._acceptor: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan, and no listener of uvicorn's own
        if self.should_exit:
            return
        config, state = self.config, self.server_state

        def protocol() -> asyncio.Protocol:  # as uvicorn builds its own in startup
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state
            )

        self._acceptor = asyncio.create_task(self._accept(protocol))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._acceptor is not None:
            self._acceptor.cancel()
        self.loads[self.index] = 0
        await super().shutdown(sockets)

    async def _accept(self, protocol: Any) -> None:
        loop = asyncio.get_running_loop()
        self.listener.setblocking(False)
        while True:
            await self._turn()
            try:
                connection, _address = await loop.sock_accept(self.listener)
            except OSError as error:  # out of file descriptors, say: keep serving what is open
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.connect_accepted_socket(protocol, connection)
            self.loads[self.index] = len(self.server_state.connections)

    async def _turn(self) -> None:
        """Return once this worker is among the least loaded, or a connection has waited too long."""
        waited = 0.0
        while True:
            mine = len(self.server_state.connections)
            self.loads[self.index] = mine
            others = [load for i, load in enumerate(self.loads) if i != self.index]
            if not others or mine <= min(others):
                return
            pending = select.select([self.listener], [], [], 0)[0]
            waited = waited + TURN_POLL_S if pending else 0.0
            if waited >= TURN_MAX_WAIT_S:
                return
            await asyncio.sleep(TURN_POLL_S)


def _run_worker(
    app: str,
    sock: socket.socket,
    log_config: dict[str, Any] | None,
    access_log: bool,
    loads: MutableSequence[int] | None = None,
    index: int = 0,
) -> None:
    config = uvicorn.Config(app, factory=True, log_config=log_config, access_log=access_log)
    if loads is None:
        server, sockets = uvicorn.Server(config), [sock]
    else:
        server, sockets = BalancedServer(config, listener=sock, loads=loads, index=index), None
    # uvicorn re-raises Ctrl-C once it has shut down gracefully: nothing is left to do then.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    log_config: dict[str, Any] | None,
    access_log: bool,
    app: str = APP,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve the app factory `app` until interrupted; with workers > 1, restart any worker that dies.

    on_listening is called once the port is bound (a port already taken raises ServeError before).
    """
    sock = listen_socket(host, port)
    if on_listening is not None:
        on_listening()
    if workers <= 1:
        _run_worker(app, sock, log_config, access_log)
        return
    sock.listen(BACKLOG)
    _share_session_secret(settings)
    lite = _start_lite(settings.resolved_milvus_uri)
    try:
        _supervise(app, sock, workers, log_config, access_log, lite)
    finally:
        sock.close()
        if lite is not None:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(lite)


def _share_session_secret(settings: Settings) -> None:
    """Give every worker the same dashboard session key when development generates one: a key per
    worker would sign a cookie that the other workers refuse, signing operators out at random."""
    if not settings.has_session_secret:
        os.environ["MOVIEREC_SESSION_SECRET"] = secrets.token_urlsafe(32)  # read by the workers' Settings


def _start_lite(uri: str) -> str | None:
    """Start the Lite server of a Lite file and point the workers at its socket; None for any other URI."""
    if not is_lite_file(uri):
        return None
    from milvus_lite.server_manager import server_manager_instance

    path = str(Path(uri).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    socket_uri = server_manager_instance.start_and_get_uri(path)
    if socket_uri is None:
        raise ServeError(f"cannot start Milvus Lite on {path} (is another process using it?)")
    os.environ["MOVIEREC_MILVUS_URI"] = socket_uri  # read by the workers' Settings
    return path


def _supervise(
    app: str, sock: socket.socket, workers: int, log_config: dict[str, Any] | None, access_log: bool,
    lite: str | None,
) -> None:  # fmt: skip
    context = multiprocessing.get_context("spawn")
    loads = context.Array("i", workers, lock=False)  # open connections per worker
    stopping = False

    def start(index: int) -> BaseProcess:
        loads[index] = 0
        process = context.Process(
            target=_run_worker, args=(app, sock, log_config, access_log, loads, index), daemon=False
        )
        process.start()
        return process

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start(i) for i in range(workers)]
    log.warning("serving with %d workers (pids %s)", len(processes), [p.pid for p in processes])
    try:
        while not stopping:
            time.sleep(0.5)
            if stopping:  # Ctrl-C reaches the whole process group, the Lite server included
                break
            if lite is not None and not _lite_alive(lite):
                log.error("the Milvus Lite server stopped; stopping the workers")
                raise ServeError("the Milvus Lite server stopped")
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.error("worker %s exited with %s; starting another", process.pid, process.exitcode)
                    time.sleep(RESTART_PAUSE_S)
                    processes[i] = start(i)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # uvicorn finishes in-flight requests and runs the lifespan's shutdown
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _lite_alive(path: str) -> bool:
    from milvus_lite.server_manager import server_manager_instance

    server = server_manager_instance._servers.get(path)  # milvus-lite exposes no status
    return server is not None and server._p is not None and server._p.poll() is None
