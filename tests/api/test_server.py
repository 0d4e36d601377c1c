"""`movierec serve`: listening sockets that keep TCP_NODELAY, and uvicorn's workers sharing one Milvus
(Lite, or a server), one session key and one set of metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from milvus_lite.server_manager import server_manager_instance
from prometheus_client.mmap_dict import MmapedDict
from sqlalchemy import select

from api.db import make_engine, make_session_factory
from api.server import ServeError, listen_socket, worker_socket
from api.settings import Settings
from api.vectors.store import VectorStore
from api.versions.activation import activate
from api.versions.training import run_training
from ml.movielens.synthetic import write_synthetic
from tests.api.conftest import TINY, build_stack, make_settings
from tests.conftest import DatabaseFactory, upgrade
from tests.milvus import MilvusServer, milvus_lite_pids

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


def test_each_worker_listens_on_a_socket_of_its_own_and_connections_are_spread() -> None:
    held = worker_socket("127.0.0.1", 0)
    port = held.getsockname()[1]
    # What each worker process gets from uvicorn (it pickles the sockets it hands them).
    workers = [pickle.loads(pickle.dumps(held)) for _ in range(2)]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:
        accepted = []
        for listener in workers:
            assert listener.getsockname()[1] == port and listener.fileno() != held.fileno()
            listener.setblocking(False)
            count = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    listener.accept()[0].close()
                    count += 1
            accepted.append(count)
        # The kernel hashes each connection to one socket: all 32 on one has odds of 2**-31.
        assert sum(accepted) == 32 and min(accepted) > 0, accepted
        with pytest.raises(ServeError, match="cannot listen"):  # a second server on the port
            worker_socket("127.0.0.1", port)
    finally:
        for sock in (*clients, *workers, held):
            sock.close()


def _post(url: str, query: str, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, json.dumps({"query": query}).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as response:
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


@contextmanager
def serving(
    settings: Settings, tmp_path: Path, command: tuple[str, ...] = ("serve",), output: list[str] | None = None
) -> Iterator[str]:
    """Run `movierec serve --workers 2` (or another command that serves) on the settings; yield its
    base URL once ready and its banner printed (from a thread of its own, which may come after /readyz
    answers), then stop it with SIGTERM, check that it stopped cleanly and append what it printed (its
    worker processes too) to `output`."""
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
        "MOVIEREC_TOKEN_SECRET": "",
        "MOVIEREC_RATE_LIMIT_ADDRESS": "",  # these tests send bursts from one address
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *command, "--port", str(port), "--workers", "2"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        for line in server.stdout or ():
            lines.append(line.decode())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready = None
        deadline = time.monotonic() + 300  # `movierec up` trains first
        while ready is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    ready = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.5)
        while ready is not None and not any("(2 workers)" in line for line in lines):
            if time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(0.1)
        if ready is None:
            server.kill()
            server.wait(timeout=60)
            reader.join(timeout=10)
            pytest.fail("never ready:\n" + "".join(lines)[-5000:])
        assert ready == {"status": "ready", "checks": {"database": "ok", "model": "ok", "milvus": "ok"}}
        yield f"http://127.0.0.1:{port}"
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        reader.join(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
        printed = "".join(lines)
    assert server.returncode == 0, printed
    assert "(2 workers)" in printed
    if output is not None:
        output.append(printed)


def _on_every_worker(url: str, query: str, metrics: Path, key: str | None = None) -> list[dict]:
    """Send query on concurrent connections until both workers have answered some (uvicorn's
    workers take turns on the shared socket only as they happen to be free); return every answer."""
    answers: list[dict] = []
    before = _requests_by_worker(metrics)
    with ThreadPoolExecutor(16) as pool:
        for _ in range(25):
            answers += pool.map(lambda _: _post(f"{url}/graphql", query, key), range(16))
            now = _requests_by_worker(metrics)
            if len(now) == 2 and all(now[w] > before.get(w, 0) for w in now):
                return answers
    raise AssertionError(f"one worker answered every request: {now}")


@pytest.mark.slow
def test_two_workers_share_one_milvus_lite_and_one_session_key_and_stop_cleanly(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    stack = build_stack(database_factory, tmp_path, train=True)
    settings = stack.settings
    # This process started a Lite server for the file while building the stack; the service needs it.
    server_manager_instance.release_server(settings.resolved_milvus_uri)
    with serving(settings, tmp_path) as url:
        user = stack.dataset.users[0].id
        # Both workers answer, each from the one Lite.
        query = f"{{ recommendations(userId: {user}) {{ movie {{ id }} }} }}"
        answers = _on_every_worker(url, query, tmp_path / "metrics", stack.api_key)
        assert all("errors" not in a for a in answers)
        assert len({json.dumps(a) for a in answers}) == 1  # every worker gives the same list
        assert len(answers[0]["data"]["recommendations"]) == 10
        # One scrape, whichever worker answers it, counts the requests of both.
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        counted = re.search(
            r'^movierec_graphql_requests_total\{operation="recommendations",status="ok"\} ([\d.]+)$',
            scraped,
            re.M,
        )
        assert counted and float(counted.group(1)) == len(answers), scraped
        # Signed in once, still signed in whichever worker takes each new connection.
        with httpx.Client(base_url=url, limits=httpx.Limits(max_keepalive_connections=0)) as browser:
            token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/admin/login").text)
            assert token
            browser.post("/admin/login", data={"password": "test-password-1", "csrf_token": token.group(1)})
            pages = [browser.get("/admin/") for _ in range(20)]
        assert [p.status_code for p in pages] == [200] * 20
        assert all("csrf_token" in p.text for p in pages)
    assert not list(tmp_path.glob(".milvus.db.lock")), "the Lite server was not released"


def _recommended(answers: list[dict]) -> list[list[int]]:
    assert all("errors" not in a for a in answers), [a["errors"] for a in answers if "errors" in a]
    return [[r["movie"]["id"] for r in a["data"]["recommendations"]] for a in answers]


def _until_every_worker_serves(url: str, version: int, metrics: Path) -> None:
    """Wait until both workers have read that version is active (each re-reads it every second)."""
    deadline = time.monotonic() + 30
    while True:
        answers = _on_every_worker(url, "{ modelInfo { version } }", metrics)
        if {a["data"]["modelInfo"]["version"] for a in answers} == {version}:
            return
        assert time.monotonic() < deadline, "the workers did not switch to the activated version"
        time.sleep(0.5)


# On MySQL only, as deployed: the Milvus server is the subject. Two workers on SQLite are tested on
# Milvus Lite above, and activations on SQLite in test_versions.py and test_activations.py.
@pytest.mark.milvus_server
@pytest.mark.parametrize("database_factory", [pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True)
def test_two_workers_serve_from_a_milvus_server_through_creations_activations_and_a_rollback(
    database_factory: DatabaseFactory, tmp_path: Path, milvus_server: MilvusServer
) -> None:
    stack = build_stack(database_factory, tmp_path, train=True, milvus_uri=milvus_server.uri)
    settings, first = stack.settings, stack.version_id
    assert first is not None
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    second = run_training(
        sessions=sessions, model_dir=settings.resolved_model_dir, config=TINY, started_by="tests",
        progress_bar=False,
    )  # fmt: skip
    store = VectorStore(milvus_server.uri)
    metrics = tmp_path / "metrics"
    user = stack.dataset.users[0].id
    filtered = f"""{{ recommendations(userId: {user}, limit: 5, genres: ["Drama"], yearFrom: 1990) {{
        movie {{ id year genres }} }} }}"""
    newest = f"{{ recommendations(userId: {user}, limit: 5, yearFrom: 2100) {{ movie {{ id }} }} }}"
    default = f"{{ recommendations(userId: {user}) {{ movie {{ id }} }} }}"
    try:
        with serving(settings, tmp_path) as url:
            answers = _on_every_worker(url, filtered, metrics, stack.api_key)
            assert len({json.dumps(a) for a in answers}) == 1
            found = [r["movie"] for r in answers[0]["data"]["recommendations"]]
            assert len(found) == 5
            assert all("Drama" in m["genres"] and m["year"] >= 1990 for m in found)
            assert _recommended(_on_every_worker(url, newest, metrics, stack.api_key))[0] == []

            # A created movie is recommendable at once, whichever worker answers next.
            created = _post(
                f"{url}/graphql",
                'mutation { createMovie(input: {title: "Made for the server test", year: 2100,'
                ' genres: ["Drama"]}) { id } }',
                stack.api_key,
            )
            movie = created["data"]["createMovie"]["id"]
            assert set(map(tuple, _recommended(_on_every_worker(url, newest, metrics, stack.api_key)))) == {
                (movie,)
            }
            before = _recommended(_on_every_worker(url, default, metrics, stack.api_key))
            assert len(set(map(tuple, before))) == 1

            # Another version: its collection is built on the server, the created movie in it.
            activate(sessions=sessions, store=store, version_id=second)
            _until_every_worker_serves(url, second, metrics)
            assert set(map(tuple, _recommended(_on_every_worker(url, newest, metrics, stack.api_key)))) == {
                (movie,)
            }
            assert (
                len(set(map(tuple, _recommended(_on_every_worker(url, default, metrics, stack.api_key)))))
                == 1
            )

            # Rolling back reuses the first version's collection and gives its answers again.
            activate(sessions=sessions, store=store, version_id=first)
            _until_every_worker_serves(url, first, metrics)
            assert set(map(tuple, _recommended(_on_every_worker(url, default, metrics, stack.api_key)))) == {
                tuple(before[0])
            }
            assert store.count(f"movies_v{first}") == store.count(f"movies_v{second}")
    finally:
        for version in (first, second):
            if store.exists(f"movies_v{version}"):  # the server is the test session's, shared
                store.drop(f"movies_v{version}")
        store.close()


@pytest.mark.slow
def test_up_serves_from_one_milvus_lite_server_and_leaves_none_running(tmp_path: Path) -> None:
    """Milvus Lite runs one server per file: the one `up` used to build the collection stops before the
    one the workers share starts."""
    sample_dir = write_synthetic(tmp_path / "data", users=120, movies=300, ratings_per_user=(20, 60), seed=7)
    settings = make_settings(f"sqlite:///{tmp_path / 'up.db'}", tmp_path)
    db_file = Path(settings.resolved_milvus_uri).resolve()
    with serving(settings, tmp_path, ("up", "--source", str(sample_dir))) as url:
        assert len(milvus_lite_pids(db_file)) == 1
        assert "movies_v1" in json.dumps(_post(f"{url}/graphql", "{ modelInfo { collection } }"))
    deadline = time.monotonic() + 10  # the server stops once the lock `up` held is released
    while milvus_lite_pids(db_file) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not milvus_lite_pids(db_file)


@pytest.mark.milvus_server
def test_up_runs_the_demo_on_a_milvus_server_unchanged(tmp_path: Path, milvus_server: MilvusServer) -> None:
    # Enough movies for the default training's evaluation (99 sampled unrated movies per user).
    sample_dir = write_synthetic(tmp_path / "data", users=120, movies=300, ratings_per_user=(20, 60), seed=7)
    settings = make_settings(f"sqlite:///{tmp_path / 'up.db'}", tmp_path, milvus_server.uri)
    store = VectorStore(milvus_server.uri)
    try:
        with serving(settings, tmp_path, ("up", "--source", str(sample_dir))) as url:
            answer = _post(f"{url}/graphql", "{ modelInfo { version collection } }")["data"]["modelInfo"]
            key = (tmp_path / "demo-api-key").read_text().strip()  # what `up` printed, in development
            user = _post(f"{url}/graphql", "{ users(first: 1) { edges { node { id } } } }", key)
            user_id = user["data"]["users"]["edges"][0]["node"]["id"]
            recs = _post(
                f"{url}/graphql", f"{{ recommendations(userId: {user_id}) {{ movie {{ id }} }} }}", key
            )
            assert (
                "users"
                in _post(f"{url}/graphql", "{ users(first: 1) { nodes { id } } }")["errors"][0]["path"]
            )
            assert len(_recommended([recs])[0]) == 10
            assert store.count(answer["collection"]) == 300  # the sample's movies, on the server
    finally:
        for name in store._client.list_collections():
            if name.startswith("movies_v"):  # the server is the test session's, shared
                store.drop(name)
        store.close()


@pytest.mark.slow
def test_fifty_concurrent_ratings_on_two_workers_all_succeed(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    """50 ratings at once of one user's one movie, then 50 of different users, through both
    workers: no error (lock conflicts are run again), one row, and every write counted once in
    the users' ratings versions (none lost, none doubled)."""
    from api.ratings.models import Rating
    from api.users.models import User

    stack = build_stack(database_factory, tmp_path, train=True)
    server_manager_instance.release_server(stack.settings.resolved_milvus_uri)
    engine = make_engine(stack.settings.resolved_database_url)
    users = [u.id for u in stack.dataset.users[:50]]
    movie = stack.dataset.movies[-1].id

    def versions() -> dict[int, int]:
        with engine.connect() as connection:
            rows = connection.execute(select(User.id, User.ratings_version).where(User.id.in_(users)))
            return {user: version for user, version in rows}

    rate = "mutation {{ rateMovie(userId: {u}, movieId: {m}, rating: {r}) {{ rating }} }}"
    before = versions()
    with serving(stack.settings, tmp_path) as url, ThreadPoolExecutor(50) as pool:

        def post(user: int, stars: int) -> dict:
            return _post(f"{url}/graphql", rate.format(u=user, m=movie, r=stars), stack.api_key)

        one_user = list(pool.map(lambda n: post(users[0], n % 5 + 1), range(50)))
        many = list(pool.map(lambda u: post(u, 4), users))
    assert [a for a in one_user + many if "errors" in a] == []
    after = versions()
    assert after[users[0]] - before[users[0]] == 51  # 50 of its own, then one more among the many
    assert all(after[u] - before[u] == 1 for u in users[1:])
    with engine.connect() as connection:
        rows = connection.execute(
            select(Rating.user_id, Rating.rating).where(Rating.movie_id == movie, Rating.user_id.in_(users))
        ).all()
    assert sorted(u for u, _ in rows) == sorted(users)  # one row each
    assert dict(rows)[users[0]] == 4  # the last write acknowledged, after all 50 of the first burst
    engine.dispose()


@pytest.mark.slow
def test_a_killed_milvus_lite_is_started_again_and_no_worker_exits(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    """kill -9 of the Lite server under two workers: requests fail fast with UNAVAILABLE (or are
    answered), `serve` starts the server again on the same socket, the workers reconnect, and the
    service stops cleanly at the end."""
    if database_factory.backend == "mysql":
        pytest.skip("a Milvus Lite fault: the database does not matter")
    stack = build_stack(database_factory, tmp_path, train=True)
    db_file = Path(stack.settings.resolved_milvus_uri).resolve()
    server_manager_instance.release_server(stack.settings.resolved_milvus_uri)
    user = stack.dataset.users[2].id
    # Filtered: computed every time, so every request searches Milvus.
    query = f'{{ recommendations(userId: {user}, limit: 5, genres: ["Drama"]) {{ movie {{ id }} }} }}'
    with serving(stack.settings, tmp_path) as url:
        before = _post(f"{url}/graphql", query, stack.api_key)
        assert "errors" not in before
        killed = milvus_lite_pids(db_file)
        assert len(killed) == 1
        os.kill(killed[0], signal.SIGKILL)
        answers = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = _post(f"{url}/graphql", query, stack.api_key)  # within _post's 10 s, or it raises
            answers.append(answer)
            if "errors" not in answer and milvus_lite_pids(db_file):
                break
            time.sleep(0.5)
        codes = {e["extensions"]["code"] for a in answers for e in a.get("errors", [])}
        assert codes <= {"UNAVAILABLE"}, answers
        assert answers[-1] == before  # the same answer from the server started again
        assert milvus_lite_pids(db_file) and milvus_lite_pids(db_file) != killed


@pytest.mark.slow
def test_the_banner_comes_once_the_api_answers(tmp_path: Path) -> None:
    """The port is bound seconds before a worker has loaded Paddle: a banner printed then sent
    people to a port that refused them."""
    url = f"sqlite:///{tmp_path / 'movierec.db'}"
    upgrade(url)
    port = _free_port()
    env = {
        **os.environ,
        "MOVIEREC_ENVIRONMENT": "development",
        "MOVIEREC_DATABASE_URL": url,
        "MOVIEREC_VAR_DIR": str(tmp_path),
        "MOVIEREC_MILVUS_URI": str(tmp_path / "milvus.db"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(180, server.kill)  # a banner that never comes fails, not hangs
    watchdog.start()
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "serving GraphQL" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        watchdog.cancel()
        server.send_signal(signal.SIGTERM)
        errors = server.communicate(timeout=60)[1]
    # a normal start and stop is not a warning (two workers once logged "WARNING … serving with 2 workers")
    assert not [line for line in errors.splitlines() if "WARNING" in line or "Traceback" in line], errors


def _status_of(settings: Settings, version_id: int, timeout: float = 240.0) -> str:
    """Return a version's status once its training has ended."""
    from api.versions.models import ModelVersion

    engine = make_engine(settings.resolved_database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with make_session_factory(engine)() as session:
                version = session.get(ModelVersion, version_id)
                if version is not None and version.status in ("succeeded", "failed"):
                    return version.status
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError(f"version {version_id} still training after {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("database_factory", ["sqlite"], indirect=True)  # the worker's output is the subject
def test_a_dashboard_retrain_prints_its_errors_and_no_paddle_notice(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    """The training worker process prints what the service prints: a run that succeeds adds no line of
    Paddle's (ccache, PIR), and one that fails still prints its error, in the worker's log format."""
    stack = build_stack(database_factory, tmp_path, train=True)
    server_manager_instance.release_server(stack.settings.resolved_milvus_uri)
    form = {"epochs": "1", "embedding_dim": "8", "hidden_dim": "16", "output_dim": "16", "batch_size": "64"}
    output: list[str] = []
    with serving(stack.settings, tmp_path, output=output) as url, httpx.Client(base_url=url) as browser:

        def retrain() -> int:
            token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/admin/").text)
            assert token
            started = browser.post("/admin/retrain", data={**form, "csrf_token": token.group(1)})
            assert started.status_code == 303, started.text
            found = re.search(r"/runs/(\d+)", started.headers["location"])
            assert found
            return int(found.group(1))

        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/admin/login").text)
        assert token
        browser.post("/admin/login", data={"password": "test-password-1", "csrf_token": token.group(1)})
        first = retrain()
        assert _status_of(stack.settings, first) == "succeeded"
        # The next version's directory is taken: that run trains, then fails to save with its error.
        (stack.settings.resolved_model_dir / f"v{first + 1}").mkdir()
        assert retrain() == first + 1
        assert _status_of(stack.settings, first + 1) == "failed"
    printed = output[0]
    assert f"train-worker ERROR training run {first + 1} failed" in printed, printed  # its own log format
    assert f"FileExistsError: {stack.settings.resolved_model_dir / f'v{first + 1}'} exists" in printed, (
        printed
    )
    assert "ccache" not in printed and "PIR" not in printed, printed
