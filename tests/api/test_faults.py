"""Faults: MySQL stopping under the running app, or killed under load. The tests start a MariaDB server
of their own (never the shared one other tests use), stop or kill it mid-run and start it again."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.testclient import TestClient

from api.access import keys
from api.app import create_app
from api.db import make_engine
from api.graphql.errors import code_and_message
from api.ratings.models import Rating
from tests.api.conftest import GraphQL, Stack, build_stack, make_settings
from tests.conftest import DatabaseFactory
from tests.milvus import milvus_lite_pids

MARIADBD = shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or ""
INSTALL_DB = shutil.which("mariadb-install-db") or ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnMariaDB:
    """A throwaway MariaDB server in a temporary data directory, on a port of its own."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={root / 'data'}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.root / 'data'}", "--user=root", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.root / 'sock'}", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError("the test's MariaDB did not start")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
            self.process = None


@pytest.fixture(scope="module")
def own_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnMariaDB]:
    if not (MARIADBD and INSTALL_DB):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mariadbd and mariadb-install-db are needed for the fault tests")
        pytest.skip("mariadbd is not installed")
    server = OwnMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.mark.mysql
def test_mysql_outage_fails_fast_then_recovers_without_restart(
    own_mariadb: OwnMariaDB, tmp_path: Path
) -> None:
    factory = DatabaseFactory("mysql", tmp_path, own_mariadb.url)
    stack = build_stack(factory, tmp_path, train=True)
    rate = "mutation($u: Int!, $m: Int!) { rateMovie(userId: $u, movieId: $m, rating: 4) { rating } }"
    recs = "query($u: Int!) { recommendations(userId: $u, limit: 5) { movie { id } } }"
    user = stack.dataset.users[0].id
    acknowledged = []
    with TestClient(create_app(stack.settings)) as client:
        gql = GraphQL(client, stack.api_key)
        for movie in stack.dataset.movies[200:210]:
            gql.data(rate, u=user, m=movie.id)
            acknowledged.append(movie.id)
        assert len(gql.data(recs, u=user)["recommendations"]) == 5

        own_mariadb.stop()
        started = time.monotonic()
        assert gql.error_code(recs, u=user) == "UNAVAILABLE"
        assert gql.error_code(rate, u=user, m=stack.dataset.movies[220].id) == "UNAVAILABLE"
        assert time.monotonic() - started < 15  # two requests, each failing within the timeouts
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == "unavailable"

        own_mariadb.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = gql(recs, u=user)
            if "errors" not in body:
                break
            time.sleep(0.5)
        assert len(body["data"]["recommendations"]) == 5, body
        # Readiness answers from checks made at most once a second: ready within a few of them.
        deadline = time.monotonic() + 10
        while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.status_code == 200, ready.json()
        rated = gql.data(
            "query($u: Int!) { user(id: $u) { ratings(first: 100) { nodes { movieId rating } } } }", u=user
        )
        stored = {n["movieId"] for n in rated["user"]["ratings"]["nodes"] if n["rating"] == 4}
        assert set(acknowledged) <= stored
    factory.drop_all()


RATE = "mutation($u: Int!, $m: Int!) { rateMovie(userId: $u, movieId: $m, rating: 4) { rating } }"
RECS = "query($u: Int!) { recommendations(userId: $u, limit: 5) { movie { id } } }"


class Load:
    """Clients rating and asking for recommendations with the API key, and reading the catalogue
    anonymously, each in a thread of its own, until stopped; every answer is kept."""

    def __init__(self, client: TestClient, stack: Stack, clients: int = 4) -> None:
        self.client, self.stack = client, stack
        self.answers: list[tuple[int, list[str]]] = []  # HTTP status, error codes
        self.acknowledged: set[tuple[int, int]] = set()  # (user, movie) rated 4 and answered so
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _run(self, n: int) -> None:
        user = self.stack.dataset.users[20 + n].id
        movies = [m.id for m in self.stack.dataset.movies[100 + 30 * n : 130 + 30 * n]]
        keyed = {"authorization": f"Bearer {self.stack.api_key}"}
        turn = 0
        while not self.stopped.is_set():
            movie = movies[turn % len(movies)]
            turn += 1
            for body, headers in (
                ({"query": RATE, "variables": {"u": user, "m": movie}}, keyed),
                ({"query": RECS, "variables": {"u": user}}, keyed),
                ({"query": "{ genres }"}, {}),
            ):
                response = self.client.post("/graphql", json=body, headers=headers)
                try:
                    codes = [e["extensions"]["code"] for e in response.json().get("errors", [])]
                except ValueError:  # not JSON: uvicorn's own 500
                    codes = ["not JSON"]
                self.answers.append((response.status_code, codes))
                if body["query"] is RATE and response.status_code == 200 and not codes:
                    self.acknowledged.add((user, movie))


@pytest.mark.mysql
def test_mysql_killed_under_load_is_unavailable_never_a_500_and_loses_no_write(
    own_mariadb: OwnMariaDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyed and anonymous requests while the server is killed: every failure is UNAVAILABLE (HTTP 503
    for a key that must be read again, as every KEY_CACHE_S), none is a 500, and every rating the API
    acknowledged is stored once the server is back."""
    monkeypatch.setattr(keys, "KEY_CACHE_S", 0.05)  # keys are read again during the outage
    factory = DatabaseFactory("mysql", tmp_path, own_mariadb.url)
    stack = build_stack(factory, tmp_path, train=True)
    app = create_app(stack.settings)
    with TestClient(app, raise_server_exceptions=False) as client, Load(client, stack) as load:
        time.sleep(2)
        own_mariadb.stop(signal.SIGKILL)
        time.sleep(3)
        own_mariadb.start()
        keyed = GraphQL(client, stack.api_key).headers
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = {"query": RECS, "variables": {"u": stack.dataset.users[0].id}}
            answer = client.post("/graphql", json=body, headers=keyed)
            if answer.status_code == 200 and "errors" not in answer.json():
                break
            time.sleep(0.5)
        time.sleep(1)  # the load goes on a while on the recovered server
    failures = [(status, codes) for status, codes in load.answers if status != 200 or codes]
    assert failures, "the load saw no outage"
    assert not [f for f in failures if f[0] == 500]
    assert all(
        status in (200, 503) and codes and set(codes) == {"UNAVAILABLE"} for status, codes in failures
    ), {(status, tuple(codes)) for status, codes in failures}
    assert any(status == 503 for status, _ in failures)  # a key read during the outage
    assert load.answers[-1] == (200, [])
    engine = make_engine(stack.settings.resolved_database_url)
    with engine.connect() as connection:
        stored = {
            (user, movie)
            for user, movie in connection.execute(
                select(Rating.user_id, Rating.movie_id).where(Rating.rating == 4)
            )
        }
    engine.dispose()
    assert load.acknowledged and load.acknowledged <= stored
    factory.drop_all()


@pytest.mark.slow
def test_milvus_lite_dying_is_unavailable_or_recovered_never_a_500(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    stack = build_stack(database_factory, tmp_path, train=True)
    recs = "query($u: Int!) { recommendations(userId: $u, limit: 5) { movie { id } } }"
    user = stack.dataset.users[1].id
    # Every request must reach Milvus: nothing kept from the one before.
    settings = stack.settings.model_copy(update={"kept_lists": False})
    with TestClient(create_app(settings)) as client:
        gql = GraphQL(client, stack.api_key)
        before = [r["movie"]["id"] for r in gql.data(recs, u=user)["recommendations"]]
        db_file = Path(stack.settings.resolved_milvus_uri).resolve()
        pids = milvus_lite_pids(db_file)
        assert pids, "the app's Milvus Lite server process was not found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        # The next request either reconnects (restarting Milvus Lite) or says UNAVAILABLE; never a 500.
        body = gql(recs, u=user)
        if "errors" in body:
            assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        deadline = time.monotonic() + 30
        while "errors" in body and time.monotonic() < deadline:
            time.sleep(0.5)
            body = gql(recs, u=user)
        assert [r["movie"]["id"] for r in body["data"]["recommendations"]] == before
        assert client.get("/readyz").json()["checks"]["milvus"] == "ok"
        assert milvus_lite_pids(db_file) and set(milvus_lite_pids(db_file)).isdisjoint(pids)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OperationalError("SELECT 1", {}, Exception("server has gone away")), "UNAVAILABLE"),
        (InterfaceError("SELECT 1", {}, Exception("connection closed")), "UNAVAILABLE"),
        (PoolTimeout("QueuePool limit reached"), "UNAVAILABLE"),
        (TimeoutError(), "UNAVAILABLE"),  # api.db.run_on's
        (IntegrityError("INSERT", {}, Exception("duplicate entry")), "INTERNAL_SERVER_ERROR"),
        (ProgrammingError("SELECT", {}, Exception("no such column")), "INTERNAL_SERVER_ERROR"),
    ],
)
def test_only_a_database_out_of_reach_is_unavailable(error: Exception, code: str) -> None:
    """An outage answers UNAVAILABLE; the database's other errors are bugs and are answered as such."""
    assert code_and_message(GraphQLError("failed", original_error=error))[0] == code


def test_the_api_starts_before_its_database_is_migrated_and_says_it_is_not_ready(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    with TestClient(create_app(make_settings(database_factory.new_url(), tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        answer = client.post("/graphql", json={"query": "{ genres }"}).json()
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"]  # a code, no traceback
