"""Faults: MySQL stopping under the running app. The test starts a MariaDB server of its own (never
the shared one other tests use), stops it mid-run and starts it again."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from tests.api.conftest import GraphQL, build_stack
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

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
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
        assert client.get("/readyz").status_code == 200
        rated = gql.data(
            "query($u: Int!) { user(id: $u) { ratings(first: 100) { nodes { movieId rating } } } }", u=user
        )
        stored = {n["movieId"] for n in rated["user"]["ratings"]["nodes"] if n["rating"] == 4}
        assert set(acknowledged) <= stored
    factory.drop_all()


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
