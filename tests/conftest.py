"""Shared fixtures: real databases (SQLite and MariaDB/MySQL), migrated by Alembic, and sessions
that roll back after each test."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api.db import make_engine
from api.settings import Settings
from tests.milvus import MilvusServer, ServerFailed

DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
# With pytest-xdist (`make test`), each of these keeps its tests on one worker (--dist loadgroup):
# one Milvus server (idle, it still burns CPU) and one browser start, not one per worker.
ONE_WORKER_MARKERS = ("milvus_server", "browser")
BACKENDS = ("sqlite", "mysql")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = next((m for m in ONE_WORKER_MARKERS if item.get_closest_marker(m)), None)
        if marker is not None:
            item.add_marker(pytest.mark.xdist_group(marker))


def _mysql_admin_url() -> str:
    return os.environ.get("MOVIEREC_TEST_MYSQL_URL", DEFAULT_MYSQL_URL)


def _mysql_unavailable_reason() -> str | None:
    try:
        engine = create_engine(_mysql_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure to reach the server means "unavailable"
        return f"MySQL at {make_url(_mysql_admin_url()).render_as_string()} is unavailable: {error}"
    return None


@pytest.fixture(scope="session")
def mysql_admin_url() -> str:
    """Return the URL of a reachable MySQL server; skip, or fail under CI=true, when there is none."""
    reason = _mysql_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: MySQL tests must run)")
        pytest.skip(reason)
    return _mysql_admin_url()


class DatabaseFactory:
    """Creates empty databases of one backend and drops them at the end of the session."""

    def __init__(self, backend: str, root: Path, admin_url: str | None) -> None:
        self.backend = backend
        self.root = root
        self.admin_url = admin_url
        self.created: list[str] = []

    def new_url(self) -> str:
        """Return the URL of a new, empty database."""
        name = f"movierec_t_{uuid.uuid4().hex[:10]}"
        if self.backend == "sqlite":
            return f"sqlite:///{(self.root / f'{name}.db').as_posix()}"
        assert self.admin_url is not None
        admin = create_engine(self.admin_url)
        with admin.begin() as connection:
            connection.execute(
                text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            )
        admin.dispose()
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.created:
            return
        admin = create_engine(self.admin_url or "")
        with admin.begin() as connection:
            for name in self.created:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(
    scope="session",
    params=[pytest.param(b, marks=[pytest.mark.mysql] if b == "mysql" else []) for b in BACKENDS],
)
def database_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    """Yield a factory of empty databases, once for SQLite and once for MySQL."""
    admin_url = request.getfixturevalue("mysql_admin_url") if request.param == "mysql" else None
    factory = DatabaseFactory(request.param, tmp_path_factory.mktemp("db"), admin_url)
    yield factory
    factory.drop_all()


def upgrade(url: str, revision: str = "head") -> None:
    """Run the project's Alembic migrations on url."""
    from alembic import command

    from api.cli.commands import alembic_config

    config = alembic_config(Settings(database_url=url))
    config.attributes["configure_logger"] = False  # keep Alembic's INFO lines out of captured output
    command.upgrade(config, revision)


@pytest.fixture(scope="session")
def migrated_url(database_factory: DatabaseFactory) -> str:
    """Return the URL of a database migrated to head, shared by the session's tests."""
    url = database_factory.new_url()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@contextlib.contextmanager
def rolled_back(engine: Engine) -> Iterator[Session]:
    """Yield a session inside a transaction that is rolled back at the end."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """Yield a session inside a transaction that is rolled back after the test."""
    with rolled_back(engine) as session:
        yield session


@pytest.fixture
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a directory holding a small synthetic dataset in the ML-1M format."""
    from ml.movielens.synthetic import write_synthetic

    return write_synthetic(
        tmp_path_factory.mktemp("sample"), users=60, movies=80, ratings_per_user=(20, 40), seed=3
    )


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """A Milvus standalone server started once for the test session (idle, it still burns CPU), on
    free ports, stopped at the end by its process group. Skipped when PyPI's milvus package is
    missing, failed instead under CI."""
    import shutil
    import sys

    executable = shutil.which("milvus-server") or str(Path(sys.executable).parent / "milvus-server")
    if not Path(executable).exists():
        message = "milvus-server is missing: `pip install -e '.[dev]'` installs PyPI's milvus package"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = MilvusServer(executable, tmp_path_factory.mktemp("milvus-server"))
    try:
        server.start()
    except ServerFailed as error:
        server.stop()
        pytest.fail(str(error))
    yield server
    server.stop()
