"""What an operator does around versions, through the real app: activate (asked, confirmed,
recorded), watch the kept lists, compare runs, train again, clean orphaned collections, and pages
that only say what the service says."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, replace

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.db import make_engine, make_session_factory
from api.vectors.store import VectorStore
from api.versions.training import run_training
from tests.admin.conftest import csrf_of, sign_in, version_id_of, wait_finished
from tests.api.conftest import TINY, Stack, build_stack
from tests.conftest import DatabaseFactory


def _second_version(stack: Stack, **changes: object) -> int:
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        return run_training(sessions=make_session_factory(engine), model_dir=stack.settings.resolved_model_dir,
                            config=replace(TINY, **changes), started_by="tests",
                            progress_bar=False)  # fmt: skip
    finally:
        engine.dispose()


def _kept_status(client: TestClient) -> str:
    page = client.get("/admin/").text
    match = re.search(r'id="kept-status">([^<]+)<', page)
    assert match, page
    return match.group(1)


@pytest.fixture(scope="module")
def own_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own: these tests switch its active version."""
    return build_stack(database_factory, tmp_path_factory.mktemp("operations"), train=True)


def test_activation_is_confirmed_recorded_and_its_kept_lists_watched(own_stack: Stack) -> None:
    first = own_stack.version_id
    second = _second_version(own_stack, seed=5)
    with TestClient(create_app(own_stack.settings), follow_redirects=False) as client:
        token = sign_in(client)
        run_page = client.get(f"/admin/runs/{second}").text
        assert 'data-confirm="Activate version' in run_page  # admin.js asks before it submits
        done = client.post(f"/admin/runs/{second}/activate", data={"csrf_token": token})
        assert done.headers["location"] == "/admin/"
        overview = client.get("/admin/").text
        assert f"Version {second} is active." in overview and 'role="status"' in overview
        assert f"Version {second} is active." not in client.get("/admin/").text  # said once
        deadline = time.monotonic() + 120
        while (status := _kept_status(client)) == "running":
            assert time.monotonic() < deadline, "the kept lists never finished"
            time.sleep(0.3)
        assert status == "succeeded"
        users = len(own_stack.dataset.users)
        assert f"{users:,} of {users:,} users" in client.get("/admin/").text
        history = client.get("/admin/activations").text
        assert f"Version {first} → " in history and f">Version {second}</a>" in history
        assert "dashboard:admin" in history and "succeeded" in history


def test_the_serving_collection_is_shown_loaded_after_a_release(own_stack: Stack) -> None:
    with TestClient(create_app(own_stack.settings), follow_redirects=False) as client:
        sign_in(client)
        name = re.search(r'id="collection-name">([^<]+)<', client.get("/admin/").text)
        assert name
        store = VectorStore(own_stack.settings.resolved_milvus_uri)
        try:
            store.release(name.group(1))  # as after a restart of Milvus Lite, or a roll-back
            page = client.get("/admin/").text
        finally:
            store.close()
    assert re.search(r'id="collection-load">loaded<', page), page
    assert "NotLoad" not in page


def test_orphaned_collections_are_listed_and_only_they_can_be_dropped(own_stack: Stack) -> None:
    store = VectorStore(own_stack.settings.resolved_milvus_uri)
    try:
        store.create("movies_v9999", dim=8)
        with TestClient(create_app(own_stack.settings), follow_redirects=False) as client:
            token = sign_in(client)
            page = client.get("/admin/").text
            row = page.split('data-collection="movies_v9999"')[1].split("</tr>")[0]
            assert "orphaned" in row and "/admin/collections/movies_v9999/drop" in row
            active = re.search(
                r'data-collection="(movies_v\d+)">\s*<td>[^<]*</td>\s*<td>.*?</td>\s*<td>active<', page, re.S
            )
            assert active, page
            refused = client.post(f"/admin/collections/{active.group(1)}/drop", data={"csrf_token": token})
            assert "is not an orphaned collection" in client.get(refused.headers["location"]).text
            assert store.exists(active.group(1))
            client.post("/admin/collections/movies_v9999/drop", data={"csrf_token": token})
            assert "Dropped the orphaned collection movies_v9999." in client.get("/admin/").text
            assert not store.exists("movies_v9999")
    finally:
        if store.exists("movies_v9999"):
            store.drop("movies_v9999")
        store.close()


@pytest.mark.slow
def test_runs_compare_side_by_side_and_train_again_with_the_same_settings(own_stack: Stack) -> None:
    other = _second_version(own_stack, seed=9, learning_rate=0.004)
    with TestClient(create_app(own_stack.settings), follow_redirects=False) as client:
        token = sign_in(client)
        page = client.get("/admin/compare", params=[("v", str(own_stack.version_id)), ("v", str(other))]).text
        assert f">Version {own_stack.version_id}</a>" in page and f">Version {other}</a>" in page
        differing = re.findall(r'<tr class="differs">\s*<th scope="row">(\w+)', page)
        assert sorted(differing) == ["learning_rate", "seed"]
        assert "HR@10 (full)" in page and "validation (best epoch)" in page
        with_active = client.get(
            "/admin/compare", params={"v": str(other)}
        ).text  # the other is the active one
        assert 'class="badge">active<' in with_active
        assert client.get("/admin/compare", params={"v": "abc"}).status_code == 404

        again = client.post(f"/admin/runs/{other}/rerun", data={"csrf_token": token})
        new = version_id_of(again.headers["location"])
        assert new != other and "with the settings of version" in client.get(again.headers["location"]).text
        finished = wait_finished(own_stack, new)
        assert finished.params["seed"] == 9 and finished.params["learning_rate"] == 0.004


def test_a_link_cannot_put_words_on_a_page_and_unknown_pages_are_the_dashboard_s(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    client, _ = signed_in
    lie = "Your session expired, enter your password at evil.example"
    for path in ("/admin/", f"/admin/runs/{admin_stack.version_id}"):
        assert lie not in client.get(path, params={"error": lie}).text
    missing = client.get("/admin/runs/987654")
    assert missing.status_code == 404
    assert "<h1>Not found</h1>" in missing.text and "no such model version" in missing.text
    assert 'href="/admin/"' in missing.text and "admin.css" in missing.text
    assert client.get("/admin/no-such-page").status_code == 404


def test_the_overview_links_to_the_metrics(signed_in: tuple[TestClient, str]) -> None:
    client, _ = signed_in
    page = client.get("/admin/").text
    href = re.search(r'<a href="([^"]+)" id="metrics-link"', page)
    assert href and href.group(1) == "../metrics"
    assert (
        "movierec_graphql_requests_total" in client.get("/metrics").text
        or client.get("/metrics").status_code == 200
    )


def test_an_interrupted_run_says_so_and_offers_a_rerun(
    signed_in: tuple[TestClient, str], admin_stack: Stack
) -> None:
    from api.versions.service import fail_version, queue_version

    client, _ = signed_in
    engine = make_engine(admin_stack.settings.resolved_database_url)
    with make_session_factory(engine).begin() as session:
        version = queue_version(session=session, params=asdict(TINY), started_by="tests")
        version.progress = {"percent": 7.0, "epoch": 1, "epochs": 7, "step": 3, "steps": 40}
        fail_version(
            session=session, version_id=version.id, error="interrupted: the service stopped while it trained"
        )
        version_id = version.id
    engine.dispose()
    page = client.get(f"/admin/runs/{version_id}").text
    assert 'id="run-status">interrupted<' in page
    assert f"/admin/runs/{version_id}/rerun" in page
    assert 'class="status interrupted">interrupted<' in client.get("/admin/runs").text
    assert csrf_of(page)


@pytest.mark.parametrize(
    ("status", "updated_ago_s", "shown", "says"),
    [
        ("failed", 5, "failed", "database is locked"),
        ("running", 5, "running", "1,000 of 6,040 users"),
        ("running", 600, "stalled", "the process running it stopped"),
        ("superseded", 5, "superseded", "version 1 became active instead"),
    ],
)
def test_the_kept_lists_card_tells_each_state(status: str, updated_ago_s: int, shown: str, says: str) -> None:
    """A job that failed or died in the background shows on the overview, not only in a log."""
    from datetime import timedelta

    from admin.app import build_templates
    from api.db import utcnow
    from api.versions.models import Activation

    now = utcnow()
    kept = Activation(
        version_id=2, previous_version_id=1, activated_by="dashboard:admin", activated_at=now,
        kept_status=status, kept_done=1000, kept_total=6040, kept_updated_at=now - timedelta(seconds=updated_ago_s),
        kept_finished_at=now if status in ("failed", "superseded") else None,
        kept_error={"failed": "OperationalError: database is locked",
                    "superseded": "version 1 became active instead"}.get(status),
    )  # fmt: skip
    page = (
        build_templates().get_template("_kept.html").render(kept=kept, now=now, url_for=lambda *a, **k: "/x")
    )
    assert f'id="kept-status">{shown}<' in page
    assert says in page
