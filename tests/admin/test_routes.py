"""The dashboard through the real app: sign-in, CSRF, overview, one training at a time, failures."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx2
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from admin.app import build_templates
from api.app import create_app
from api.db import make_engine, make_session_factory
from api.vectors.store import CollectionStats
from api.versions.models import ModelVersion
from api.versions.service import active_version, queue_version
from ml.config import TrainConfig
from tests.admin.conftest import PASSWORD, TINY_FORM, csrf_of, sign_in, version_id_of, wait_finished
from tests.api.conftest import Stack

GET_PAGES = [
    "/admin/",
    "/admin/runs",
    "/admin/runs/1",
    "/admin/runs/1/progress",
    "/admin/playground",
    "/admin/keys",
]
POSTS = ["/admin/retrain", "/admin/runs/1/activate", "/admin/logout", "/admin/keys", "/admin/keys/abc/revoke"]


@pytest.mark.parametrize("path", GET_PAGES)
def test_pages_redirect_to_sign_in_when_signed_out(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/admin/login?next={path.replace('/', '%2F')}")


@pytest.mark.parametrize("path", POSTS)
def test_actions_are_refused_when_signed_out(client: TestClient, path: str) -> None:
    token = csrf_of(client.get("/admin/login").text)
    assert client.post(path, data={"csrf_token": token, **TINY_FORM}).status_code == 401


def _from(stack: Stack, address: str) -> TestClient:
    """A client of its own address: failed sign-ins are counted per address, in the database."""
    return TestClient(create_app(stack.settings), follow_redirects=False, client=(address, 50000))


def _try(client: TestClient, password: str) -> httpx2.Response:
    return client.post(
        "/admin/login", data={"password": password, "csrf_token": csrf_of(client.get("/admin/login").text)}
    )


def test_wrong_password_is_refused(admin_stack: Stack) -> None:
    with _from(admin_stack, "10.0.0.1") as client:
        response = _try(client, "nope")
        assert response.status_code == 401 and "Wrong password" in response.text
        assert client.get("/admin/").status_code == 303


def test_repeated_wrong_passwords_are_slowed_down_for_every_worker(admin_stack: Stack) -> None:
    with _from(admin_stack, "10.0.0.2") as one, _from(admin_stack, "10.0.0.2") as other:
        for worker in (one, other, one, other, one):  # two workers, one count
            assert _try(worker, "guess").status_code == 401
        for worker in (one, other):
            blocked = _try(worker, PASSWORD)
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
            assert "Too many failed sign-ins" in blocked.text
            assert worker.get("/admin/").status_code == 303  # even the right password was not let in
    with _from(admin_stack, "10.0.0.3") as elsewhere:
        assert _try(elsewhere, PASSWORD).status_code == 303  # another address is not affected


def test_guessing_from_a_shared_address_does_not_lock_out_an_operator_s_browser(admin_stack: Stack) -> None:
    """Behind a proxy every operator shares one address: a browser that signed in before keeps its
    own count (its device cookie), so someone guessing there locks out only new browsers."""
    with _from(admin_stack, "10.0.0.4") as operator, _from(admin_stack, "10.0.0.4") as guesser:
        assert _try(operator, PASSWORD).status_code == 303
        operator.post("/admin/logout", data={"csrf_token": csrf_of(operator.get("/admin/").text)})
        for _ in range(8):
            assert _try(guesser, "guess").status_code in (401, 429)
        assert _try(guesser, PASSWORD).status_code == 429
        assert _try(operator, PASSWORD).status_code == 303  # the device cookie's own count
        forged = operator.cookies.get("movierec_admin_device", path="/admin") + "x"
        with _from(admin_stack, "10.0.0.4") as faker:
            faker.cookies.set("movierec_admin_device", forged, path="/admin")
            assert _try(faker, PASSWORD).status_code == 429  # a forged device cookie counts as none


def test_sign_in_needs_the_csrf_token(client: TestClient) -> None:
    client.get("/admin/login")
    assert client.post("/admin/login", data={"password": PASSWORD}).status_code == 403
    assert client.get("/admin/").status_code == 303


def test_session_cookie_is_signed_http_only_and_same_site(client: TestClient) -> None:
    token = csrf_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": token})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/admin" in cookie


def test_development_without_a_password_refuses_sign_in(admin_stack: Stack) -> None:
    dev = type(admin_stack.settings).model_validate(
        {**admin_stack.settings.model_dump(), "environment": "development", "admin_password": ""}
    )
    with TestClient(create_app(dev), follow_redirects=False) as client:
        page = client.get("/admin/login")
        assert "set MOVIEREC_ADMIN_PASSWORD" in page.text
        response = client.post("/admin/login", data={"password": "", "csrf_token": csrf_of(page.text)})
        assert response.status_code == 403
        assert client.get("/admin/").status_code == 303


@pytest.mark.parametrize("path", POSTS)
def test_every_post_checks_the_csrf_token(signed_in: tuple[TestClient, str], path: str) -> None:
    client, _token = signed_in
    assert client.post(path, data=TINY_FORM).status_code == 403
    assert client.post(path, data={**TINY_FORM, "csrf_token": "forged"}).status_code == 403
    assert client.get("/admin/").status_code == 200  # still signed in: nothing happened


def test_sign_out_ends_the_session_and_every_copy_of_its_cookie(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    client, token = signed_in
    copied = client.cookies.get("movierec_admin", path="/admin")
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/admin/").status_code == 303
    with TestClient(create_app(admin_stack.settings), follow_redirects=False) as thief:
        thief.cookies.set("movierec_admin", copied, path="/admin")
        assert thief.get("/admin/").status_code == 303  # the copy is worth nothing now


def test_a_session_ends_hours_after_sign_in_however_active(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    from sqlalchemy import update

    from admin.models import AdminSession
    from api.db import utcnow

    client, _ = signed_in
    assert client.get("/admin/").status_code == 200
    engine = make_engine(admin_stack.settings.resolved_database_url)
    with make_session_factory(engine).begin() as session:  # as if signed in 8 hours ago
        session.execute(update(AdminSession).values(expires_at=utcnow()))
    engine.dispose()
    assert client.get("/admin/").status_code == 303


def test_overview_shows_counts_model_collection_and_health(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    client, _ = signed_in
    page = client.get("/admin/").text
    assert f"<dd>{len(admin_stack.dataset.users):,}</dd>" in page
    assert f"<dd>{len(admin_stack.dataset.movies):,}</dd>" in page
    assert f'id="collection-name">movies_v{admin_stack.version_id}<' in page
    assert 'id="collection-dim">32<' in page
    assert "Database: ok" in page and "Milvus: ok" in page
    assert "HR@10 (sampled)" in page and "NDCG@10 (sampled)" in page and "Recall@20 (full)" in page
    assert "HR@10 (full)" in page and "NDCG@10 (full)" in page
    assert f'name="epochs" value="{TrainConfig().epochs}"' in page  # the default, filled in


def test_overview_says_when_the_data_is_the_synthetic_sample(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    client, _ = signed_in
    notice = "The data is the synthetic sample: its titles look real, but its users and ratings are made up."
    assert notice in client.get("/admin/").text  # the stack imported the sample
    engine = make_engine(admin_stack.settings.resolved_database_url)
    real = text(
        "INSERT INTO datasets (id, description, layout, synthetic, users, movies, ratings, imported_at) "
        "VALUES (999, 'MovieLens 1M (official archive)', 'ml-1m', :no, 6040, 3883, 1000209, '2026-12-07 10:00:00')"
    )
    try:
        with engine.begin() as connection:
            connection.execute(real, {"no": False})
        page = client.get("/admin/").text
        assert notice not in page
        assert "Data: MovieLens 1M (official archive), imported 2026-12-07 10:00 UTC." in page
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM datasets WHERE id = 999"))
        engine.dispose()


@pytest.mark.slow
def test_one_training_at_a_time_and_a_failed_run_keeps_the_active_version(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    """A run whose version cannot be saved fails with its error shown; a second start meanwhile is refused."""
    client, token = signed_in
    model_dir = admin_stack.settings.resolved_model_dir
    blocked = model_dir / "blocked"
    blocked.write_text("a file where the worker wants a directory")
    broken = admin_stack.settings.model_copy(update={"model_dir": blocked})
    with TestClient(create_app(broken), follow_redirects=False) as broken_client:
        token = sign_in(broken_client)
        started = broken_client.post("/admin/retrain", data={**TINY_FORM, "csrf_token": token})
        assert started.status_code == 303
        version_id = version_id_of(started.headers["location"])
        second = client.post(
            "/admin/retrain", data={**TINY_FORM, "csrf_token": csrf_of(client.get("/admin/").text)}
        )
        assert second.status_code == 303
        overview = client.get(second.headers["location"]).text
        assert f"model version {version_id} is" in overview and "only one training runs at a time" in overview
        failed = wait_finished(admin_stack, version_id)
    assert failed.status == "failed" and failed.error
    run_page = client.get(f"/admin/runs/{version_id}").text
    assert "failed" in run_page and failed.error.split(":")[0] in run_page
    engine = make_engine(admin_stack.settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        active = active_version(session=session)
        assert active is not None and active.id == admin_stack.version_id
    engine.dispose()
    assert f"/admin/runs/{admin_stack.version_id}" in client.get("/admin/").text.split('id="active-model"')[1]


def test_a_run_whose_worker_died_is_marked_interrupted_at_start(admin_stack: Stack) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    engine = make_engine(admin_stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        version = queue_version(session=session, params={}, started_by="tests")
        version.status = "running"
        version.progress = {"percent": 12.0, "pid": int(dead.stdout), "host": socket.gethostname()}
        version_id = version.id
    with TestClient(create_app(admin_stack.settings)):
        pass
    with sessions() as session:
        row = session.get(ModelVersion, version_id)
        assert row is not None and row.status == "failed" and "interrupted" in (row.error or "")
        assert active_version(session=session).id == admin_stack.version_id  # type: ignore[union-attr]
    engine.dispose()


@pytest.mark.slow
def test_stopping_the_service_interrupts_its_training_and_keeps_the_active_version(
    admin_stack: Stack,
) -> None:
    with TestClient(create_app(admin_stack.settings), follow_redirects=False) as client:
        token = sign_in(client)
        form = {**TINY_FORM, "epochs": "100", "patience": "100", "csrf_token": token}
        started = client.post("/admin/retrain", data=form)
        version_id = version_id_of(started.headers["location"])
        deadline = time.monotonic() + 120
        while not client.get(f"/admin/runs/{version_id}/progress").json()["progress"].get("step"):
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
    stopped = wait_finished(admin_stack, version_id, timeout=30)
    assert stopped.status == "failed" and stopped.outcome == "interrupted"
    assert stopped.error == "interrupted: the service stopped while it trained"
    engine = make_engine(admin_stack.settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        assert active_version(session=session).id == admin_stack.version_id  # type: ignore[union-attr]
    engine.dispose()


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_failed_the_active_version_serves_and_a_new_run_starts(
    admin_stack: Stack,
) -> None:
    import os
    import signal

    with TestClient(create_app(admin_stack.settings), follow_redirects=False) as client:
        token = sign_in(client)
        form = {**TINY_FORM, "epochs": "100", "patience": "100", "csrf_token": token}
        version_id = version_id_of(client.post("/admin/retrain", data=form).headers["location"])
        deadline = time.monotonic() + 120
        while not client.get(f"/admin/runs/{version_id}/progress").json()["progress"].get("step"):
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        engine = make_engine(admin_stack.settings.resolved_database_url)
        with make_session_factory(engine)() as session:
            row = session.get(ModelVersion, version_id)
            assert row is not None and row.progress is not None
            pid = int(row.progress["pid"])  # the worker's own pid, recorded with its progress
        engine.dispose()
        os.kill(pid, signal.SIGKILL)  # kill -9: the worker records nothing
        killed = wait_finished(admin_stack, version_id, timeout=30)
        assert killed.status == "failed"
        recs = client.post("/graphql", json={"query": "{ modelInfo { version } }"}).json()
        assert recs["data"]["modelInfo"]["version"] == admin_stack.version_id
        again = client.post("/admin/retrain", data={**TINY_FORM, "csrf_token": token})
        assert again.status_code == 303 and version_id_of(again.headers["location"]) != version_id
        wait_finished(admin_stack, version_id_of(again.headers["location"]))
    engine = make_engine(admin_stack.settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        assert active_version(session=session).id == admin_stack.version_id  # type: ignore[union-attr]
    engine.dispose()


def test_collection_card_shows_an_index_build_in_progress() -> None:
    # The figures a Milvus server reports while it builds HNSW (tests/api/test_vectors.py reads them).
    stats = CollectionStats(
        name="movies_v9", row_count=120_000, dim=32, metric="IP", index_type="HNSW",
        index_params={"M": "16", "efConstruction": "200"}, load_state="Loaded",
        indexed_rows=100_000, pending_rows=20_000,
    )  # fmt: skip
    page = build_templates().get_template("_collection.html").render(stats=stats, active=True)
    assert "<code>M=16</code> <code>efConstruction=200</code>" in page
    assert "100,000, 20,000 waiting for the index build" in page


def test_no_redirect_or_link_is_built_from_the_host_header(client: TestClient) -> None:
    evil = {"host": "evil.example"}
    assert client.get("/admin/", headers=evil).headers["location"] == "/admin/login?next=%2Fadmin%2F"
    page = client.get("/admin/login", headers=evil).text
    assert "evil.example" not in page
    token = csrf_of(page)
    signed = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": token}, headers=evil)
    assert signed.headers["location"] == "/admin/"
    assert "evil.example" not in client.get("/admin/", headers=evil).text


def test_api_keys_are_created_shown_once_and_revoked(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    client, token = signed_in
    assert client.get("/admin/keys").status_code == 200
    refused = client.post("/admin/keys", data={"csrf_token": token, "name": "shop", "scope": ["nope"]})
    assert refused.status_code == 400 and "scopes must be some of" in refused.text
    assert client.post("/admin/keys", data={"name": "shop", "scope": ["read"]}).status_code == 403  # no CSRF
    page = client.post(
        "/admin/keys", data={"csrf_token": token, "name": "shop", "scope": ["read", "tokens:issue"]}
    )
    assert page.status_code == 200
    match = re.search(r'<code id="new-key">(mrk_([0-9a-f]+)_[^<]+)</code>', page.text)
    assert match, page.text
    key, key_id = match.group(1), match.group(2)
    listed = client.get("/admin/keys").text
    assert key_id in listed and key not in listed  # shown once, never again
    headers = {"authorization": f"Bearer {key}"}
    users = client.post("/graphql", json={"query": "{ users(first: 1) { nodes { id } } }"}, headers=headers)
    assert users.status_code == 200 and "errors" not in users.json()
    revoked = client.post(f"/admin/keys/{key_id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/admin/keys"
    assert "revoked" in client.get("/admin/keys").text
    with TestClient(create_app(admin_stack.settings)) as other_worker:  # one that had not seen the key yet
        assert other_worker.post("/graphql", json={"query": "{ genres }"}, headers=headers).status_code == 401
