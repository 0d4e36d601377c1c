"""A whole stack for dashboard tests (database with synthetic data, an active tiny model, Milvus Lite) and
a signed-in client; a stack with a second version for experiments, and impressions recorded in one."""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from starlette.testclient import TestClient

from api.app import create_app
from api.db import make_engine, make_session_factory, utcnow
from api.experiments.models import Feedback, Impression
from api.movies.models import Movie
from api.ratings.models import Rating
from api.settings import Settings
from api.users.models import User
from api.versions.models import Experiment, ModelVersion
from tests.api.conftest import Stack, build_stack, train_or_copy
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


def two_versions_stack(factory: DatabaseFactory, root: Path) -> Stack:
    """Return a stack of its own whose active version has a second succeeded version beside it, to be
    an experiment's treatment: experiments and promotions there are seen by no other test."""
    stack = build_stack(factory, root, train=True)
    engine = make_engine(stack.settings.resolved_database_url)
    train_or_copy(make_session_factory(engine), stack.settings, factory.backend, root)
    engine.dispose()
    return stack


def other_version(sessions: sessionmaker) -> int:
    """Return a succeeded version that is not the active one (promotions swap them)."""
    with sessions() as session:
        query = select(ModelVersion.id).where(
            ModelVersion.status == "succeeded", ModelVersion.is_active.is_(None)
        )
        version_id = session.scalars(query.order_by(ModelVersion.id)).first()
    assert version_id is not None
    return int(version_id)


SHOWN = 10  # movies in each recorded impression


def record_results(
    sessions: sessionmaker, experiment_id: int, *, arm_of_user: dict[int, str] | None = None
) -> None:
    """Record two days of impressions for every user, as if served in the experiment: by default odd
    users in treatment, even ones in control (an even split); treatment users follow about 3 impressions
    of 4 with a click, control users 1 of 4. One control user rates a shown movie 3 stars (not positive)."""
    with sessions.begin() as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        users = list(session.scalars(select(User.id).order_by(User.id)))
        movies = list(session.scalars(select(Movie.id).order_by(Movie.id).limit(SHOWN)))
        arms = arm_of_user or {u: "treatment" if u % 2 else "control" for u in users}
        versions = {"control": experiment.control_version_id, "treatment": experiment.treatment_version_id}
        now = utcnow()
        clicks = []
        for user_id, arm in arms.items():
            for day, shown_at in enumerate((now - timedelta(days=1), now)):
                impression = Impression(
                    id=secrets.randbits(63), user_id=user_id, experiment_id=experiment_id, arm=arm,
                    version_id=versions[arm], movie_ids=",".join(map(str, movies)), shown_at=shown_at,
                )  # fmt: skip
                session.add(impression)
                if arm == "treatment":  # every user's first list, half the users' second
                    followed = day == 0 or user_id % 4 == 1
                else:  # half the users' first list
                    followed = day == 0 and user_id % 4 == 0
                if followed:
                    clicks.append((impression, user_id, shown_at))
        session.flush()  # the impressions before the feedback that refers to them
        for impression, user_id, shown_at in clicks:
            session.add(
                Feedback(impression_id=impression.id, user_id=user_id, movie_id=movies[0], kind="click",
                         at=shown_at + timedelta(minutes=1))
            )  # fmt: skip
        rater = next(u for u, arm in arms.items() if arm == "control")
        rated = set(session.scalars(select(Rating.movie_id).where(Rating.user_id == rater)))
        movie_id = next(m for m in movies if m not in rated)
        session.add(Rating(user_id=rater, movie_id=movie_id, rating=3.0, rated_at=now + timedelta(minutes=2)))
