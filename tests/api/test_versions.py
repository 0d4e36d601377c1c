"""Model versions: activation switches atomically, deletion cleans up and protects the active one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from api.db import make_engine, make_session_factory
from api.errors import BadUserInput
from api.vectors.store import VectorStore
from api.versions.activation import activate, delete_version
from api.versions.models import ModelVersion
from api.versions.service import collection_name
from api.versions.training import run_training
from tests.api.conftest import TINY, build_stack
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]


def test_activate_switch_and_delete(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    stack = build_stack(database_factory, tmp_path, train=True)
    first = stack.version_id
    assert first is not None
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    store = VectorStore(stack.settings.resolved_milvus_uri)
    try:
        second = run_training(sessions=sessions, model_dir=stack.settings.resolved_model_dir,
                              config=TINY, started_by="tests", progress_bar=False)  # fmt: skip
        with sessions() as session:
            assert session.get(ModelVersion, first).is_active  # training never changes the active version
        activate(sessions=sessions, store=store, version_id=second)
        with sessions() as session:
            active = (
                session.execute(select(ModelVersion.id).where(ModelVersion.is_active.is_(True)))
                .scalars()
                .all()
            )
        assert active == [second]
        assert store.count(collection_name(second)) == store.count(collection_name(first))

        with pytest.raises(BadUserInput, match="active"):
            delete_version(sessions=sessions, store=store, version_id=second)
        artifact = stack.settings.resolved_model_dir / f"v{first}"
        assert artifact.is_dir()
        delete_version(sessions=sessions, store=store, version_id=first)
        assert not store.exists(collection_name(first)) and not artifact.exists()
        with sessions() as session:
            assert session.get(ModelVersion, first) is None
        assert store.exists(collection_name(second))
    finally:
        store.close()
        engine.dispose()


def test_a_failed_version_cannot_be_activated(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    stack = build_stack(database_factory, tmp_path, train=False)
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        failed = ModelVersion(status="failed", params={}, error="boom")
        session.add(failed)
        session.flush()
        failed_id = failed.id
    store = VectorStore(stack.settings.resolved_milvus_uri)
    try:
        with pytest.raises(BadUserInput, match="failed"):
            activate(sessions=sessions, store=store, version_id=failed_id)
        with sessions() as session:
            assert (
                session.execute(select(ModelVersion).where(ModelVersion.is_active.is_(True))).first() is None
            )
    finally:
        store.close()
        engine.dispose()


def test_a_train_command_stopped_by_sigterm_fails_its_version_as_interrupted(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    """A service manager stops `movierec train` with SIGTERM: the version is failed as interrupted,
    not left running, where it would refuse the dashboard's retrain until the service restarted."""
    stack = build_stack(database_factory, tmp_path, train=False)
    env = {
        **os.environ,
        "MOVIEREC_DATABASE_URL": stack.settings.resolved_database_url,
        "MOVIEREC_VAR_DIR": str(tmp_path / "var"),
        "MOVIEREC_MILVUS_URI": str(tmp_path / "milvus.db"),
    }
    # Batches of 2: an epoch of thousands of steps, so the run is still training when the signal comes.
    command = ["train", "--epochs", "50", "--batch-size", "2", "--no-activate", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *command], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    deadline = time.monotonic() + 120
    while True:
        with sessions() as session:
            version = session.scalar(select(ModelVersion))
        if version is not None and "step" in (version.progress or {}):
            break
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    with sessions() as session:
        stopped = session.get(ModelVersion, version.id)
    engine.dispose()
    assert process.returncode == 1 and "Traceback" not in err, err
    assert stopped is not None and stopped.status == "failed" and stopped.outcome == "interrupted"
    assert stopped.error == "interrupted: the command was stopped (SIGTERM)"
