"""The record of activations and of the kept-lists job each starts: who, when, and how it went."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.db import make_engine, make_session_factory
from api.recommend.kept import Superseded, keep_version_lists
from api.vectors.store import VectorStore
from api.versions.activation import activate
from api.versions.jobs import activations
from api.versions.training import run_training
from tests.api.conftest import TINY, build_stack
from tests.conftest import DatabaseFactory


def test_switches_are_recorded_with_their_kept_lists_job(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    stack = build_stack(database_factory, tmp_path, train=True)
    first = stack.version_id
    assert first is not None
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    store = VectorStore(stack.settings.resolved_milvus_uri)
    try:
        second = run_training(sessions=sessions, model_dir=stack.settings.resolved_model_dir,
                              config=TINY, started_by="tests", progress_bar=False)  # fmt: skip
        activate(sessions=sessions, store=store, version_id=second, by="dashboard:admin")
        activate(sessions=sessions, store=store, version_id=second, by="cli:again")  # no switch
        stored = keep_version_lists(sessions=sessions, store=store, version_id=second)
        with sessions() as session:
            newest = activations(session=session)[0]
            assert (newest.version_id, newest.previous_version_id, newest.activated_by) == (
                second,
                first,
                "dashboard:admin",
            )
            assert newest.kept_status == "succeeded" and newest.kept_error is None
            assert newest.kept_done == newest.kept_total == len(stack.dataset.users) >= stored > 0
            assert newest.kept_finished_at is not None and newest.kept_updated_at is not None
            assert [a.activated_by for a in activations(session=session)].count("cli:again") == 0

        # Switched back before the second version's lists were kept: its job stops, and says why.
        activate(sessions=sessions, store=store, version_id=first, by="dashboard:admin")
        with pytest.raises(Superseded, match=f"version {first} became active"):
            keep_version_lists(sessions=sessions, store=store, version_id=second)
        with sessions() as session:
            by_version = {a.version_id: a for a in reversed(activations(session=session))}
            assert by_version[second].kept_status == "superseded"
            assert by_version[first].previous_version_id == second

        # A job that fails in the background leaves its error where the dashboard reads it.
        shutil.rmtree(stack.settings.resolved_model_dir / f"v{first}")
        with pytest.raises(Exception):  # noqa: B017 - whatever loading a deleted model raises
            keep_version_lists(sessions=sessions, store=store, version_id=first)
        with sessions() as session:
            failed = activations(session=session)[0]
            assert failed.version_id == first and failed.kept_status == "failed"
            assert failed.kept_error and failed.kept_finished_at is not None
    finally:
        store.close()
        engine.dispose()
