"""`movierec serve`: listening sockets that keep TCP_NODELAY, and uvicorn's workers sharing one Milvus
Lite, one session key and one set of metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from milvus_lite.server_manager import server_manager_instance
from prometheus_client.mmap_dict import MmapedDict

from api.server import ServeError, listen_socket
from tests.api.conftest import build_stack
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_accepted_connections_get_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY only when the listener says IPPROTO_TCP; without it every keep-alive
    request after the first waits ~40 ms for a delayed ACK."""
    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen: list[int] = []

    async def run() -> None:
        async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(run())
    assert seen and seen[0] != 0


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServeError, match=r"cannot listen on 127\.0\.0\.1"):
            listen_socket("127.0.0.1", taken.getsockname()[1])


def _post(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _requests_by_worker(metrics: Path) -> dict[str, float]:
    """Return the GraphQL requests each worker counted in its own file of the multiprocess directory."""
    return {
        path.stem: sum(
            value
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
            if key.startswith('["movierec_graphql_requests"')  # a counter's name without _total
        )
        for path in metrics.glob("counter_*.db")
    }


def test_two_workers_share_one_milvus_lite_and_one_session_key_and_stop_cleanly(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    stack = build_stack(database_factory, tmp_path, train=True)
    settings = stack.settings
    # This process started a Lite server for the file while building the stack; the service needs it.
    server_manager_instance.release_server(settings.resolved_milvus_uri)
    port = _free_port()
    env = {
        **os.environ,
        # Development with no session key: the supervisor generates one key for all the workers.
        "MOVIEREC_ENVIRONMENT": "development",
        "MOVIEREC_DATABASE_URL": settings.resolved_database_url,
        "MOVIEREC_MILVUS_URI": settings.resolved_milvus_uri,
        "MOVIEREC_MODEL_DIR": str(settings.resolved_model_dir),
        "MOVIEREC_VAR_DIR": str(tmp_path),
        "MOVIEREC_ADMIN_PASSWORD": "test-password-1",
        "MOVIEREC_SESSION_SECRET": "",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        ready = None
        deadline = time.monotonic() + 120
        while ready is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    ready = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert ready == {"status": "ready", "checks": {"database": "ok", "model": "ok", "milvus": "ok"}}
        user = stack.dataset.users[0].id
        # Concurrent connections until both workers have answered some (uvicorn's workers take turns
        # on the shared socket only as they happen to be free); each answers from the one Lite.
        query = f"{{ recommendations(userId: {user}) {{ movie {{ id }} }} }}"
        answers: list[dict] = []
        with ThreadPoolExecutor(16) as pool:
            for _ in range(25):
                answers += pool.map(lambda _: _post(f"http://127.0.0.1:{port}/graphql", query), range(16))
                answered_by = _requests_by_worker(tmp_path / "metrics")
                if len(answered_by) == 2 and all(answered_by.values()):
                    break
        assert len(answered_by) == 2 and all(answered_by.values()), answered_by
        assert all("errors" not in a for a in answers)
        assert len({json.dumps(a) for a in answers}) == 1  # every worker gives the same list
        assert len(answers[0]["data"]["recommendations"]) == 10
        # One scrape, whichever worker answers it, counts the requests of both.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        counted = re.search(
            r'^movierec_graphql_requests_total\{operation="recommendations",status="ok"\} ([\d.]+)$',
            scraped,
            re.M,
        )
        assert counted and float(counted.group(1)) == len(answers), scraped
        # Signed in once, still signed in whichever worker takes each new connection.
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_keepalive_connections=0)
        ) as browser:
            token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/admin/login").text)
            assert token
            browser.post("/admin/login", data={"password": "test-password-1", "csrf_token": token.group(1)})
            pages = [browser.get("/admin/") for _ in range(20)]
        assert [p.status_code for p in pages] == [200] * 20
        assert all("csrf_token" in p.text for p in pages)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert "(2 workers)" in output
    assert not list(tmp_path.glob(".milvus.db.lock")), "the Lite server was not released"
