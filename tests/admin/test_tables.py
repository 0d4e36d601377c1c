"""The compare page's change (B against A, by each figure's direction) and what a run that has trained no
step yet waits for, as the progress feed and the pages say it."""

from __future__ import annotations

import os
import socket

import pytest
from starlette.testclient import TestClient

from admin.views import change_of
from api.app import create_app
from api.db import make_engine, make_session_factory
from api.versions.service import fail_version, mark_running, queue_version, record_progress
from tests.admin.conftest import sign_in
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory


def test_change_is_b_against_a_and_better_by_the_metric_s_direction() -> None:
    hr = change_of("hr@10", 0.40, 0.42)
    assert hr is not None and hr.verdict == "better" and hr.improved
    assert hr.delta == pytest.approx(0.02) and hr.relative == pytest.approx(0.05)
    ndcg = change_of("valid_ndcg@10", 0.25, 0.20)
    assert ndcg is not None and ndcg.verdict == "worse" and ndcg.improved is False
    assert ndcg.relative == pytest.approx(-0.2)
    loss = change_of("loss", 5.0, 4.0)  # lower is better
    assert loss is not None and loss.verdict == "better" and loss.relative == pytest.approx(-0.2)
    slower = change_of("train_seconds", 10.0, 12.0)
    assert slower is not None and slower.verdict == "slower" and slower.improved is False
    from_zero = change_of("recall@20", 0.0, 0.1)
    assert from_zero is not None and from_zero.relative is None and from_zero.verdict == "better"
    same = change_of("hr@10", 0.41670, 0.41672)  # equal at the four decimals shown
    assert same is not None and same.verdict == "no change" and same.improved is None
    assert change_of("hr@10", None, 0.4) is None


@pytest.fixture(scope="module")
def untrained_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own, where a run stays queued with no worker (no other test may start one there)."""
    return build_stack(database_factory, tmp_path_factory.mktemp("waiting"), train=False)


def test_a_run_that_has_trained_no_step_says_what_it_waits_for(untrained_stack: Stack) -> None:
    engine = make_engine(untrained_stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with TestClient(create_app(untrained_stack.settings), follow_redirects=False) as client:
        sign_in(client)
        with sessions.begin() as session:  # as admin.worker.start_training queues it, before its worker runs
            version_id = queue_version(session=session, params={"epochs": 2}, started_by="dashboard:admin").id
        try:
            feed = f"/admin/runs/{version_id}/progress"
            waiting = client.get(feed).json()["waiting"]
            assert waiting.startswith("waiting for the training worker to start · started ")
            assert waiting in client.get("/admin/runs").text
            assert f"Version {version_id} is queued ({waiting})" in client.get("/admin/").text

            worker = {"pid": os.getpid(), "host": socket.gethostname()}
            with sessions.begin() as session:
                mark_running(session=session, version_id=version_id, progress={"percent": 0.0, **worker})
            preparing = client.get(feed).json()["waiting"]
            assert preparing.startswith("reading the ratings and building the model, no training step yet · ")

            step = {
                "epoch": 1,
                "epochs": 2,
                "step": 1,
                "steps": 10,
                "loss": 5.0,
                "percent": 5.0,
                "metrics": {},
            }
            with sessions.begin() as session:
                record_progress(session=session, version_id=version_id, progress={**step, **worker})
            assert client.get(feed).json()["waiting"] is None  # training: its progress says the rest
        finally:
            with sessions.begin() as session:
                fail_version(session=session, version_id=version_id, error="interrupted: the test ended")
    engine.dispose()
