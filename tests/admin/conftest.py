"""A whole stack for dashboard tests (database with synthetic data, an active tiny model, Milvus Lite) and
a signed-in client."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient

from api.app import create_app
from api.db import make_engine, make_session_factory
from api.settings import Settings
from api.versions.models import ModelVersion
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory

PASSWORD = "test-password-1"  # tests.api.conftest.make_settings
# One short epoch of the smallest sensible model: the dashboard's runs in tests take seconds.
TINY_FORM = {
    "epochs": "1",
    "learning_rate": "0.005",
    "embedding_dim": "16",
    "hidden_dim": "32",
    "output_dim": "32",
    "batch_size": "128",
    "patience": "1",
    "seed": "1",
}


@pytest.fixture(scope="session")
def admin_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return build_stack(database_factory, tmp_path_factory.mktemp("admin"), train=True)


@pytest.fixture
def client(admin_stack: Stack) -> Iterator[TestClient]:
    """Yield a client of the whole app (lifespan running), signed out."""
    with TestClient(create_app(admin_stack.settings), follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def sign_in(client: TestClient, password: str = PASSWORD) -> str:
    """Sign in and return the session's CSRF token."""
    token = csrf_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"password": password, "csrf_token": token})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/admin/").text)


@pytest.fixture
def signed_in(client: TestClient) -> tuple[TestClient, str]:
    return client, sign_in(client)


def wait_finished(stack: Stack, version_id: int, timeout: float = 240.0) -> ModelVersion:
    """Return the version once its training has ended (succeeded or failed)."""
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with sessions() as session:
                version = session.get(ModelVersion, version_id)
                assert version is not None
                if version.status in ("succeeded", "failed"):
                    session.expunge(version)
                    return version
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError(f"version {version_id} still training after {timeout} s")


def version_id_of(location: str) -> int:
    match = re.search(r"/admin/runs/(\d+)$", location)
    assert match, location
    return int(match.group(1))


def model_dir_of(stack: Stack) -> Path:
    return stack.settings.resolved_model_dir


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """Serve the app on the settings with uvicorn on a free local port, in a thread; yield its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
