"""A/B experiments through the real app: each user served by their arm's version, every list recorded
as an impression, feedback checked against what was shown, and a restart that keeps both."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker
from starlette.testclient import TestClient

from api.app import create_app
from api.db import make_engine, make_session_factory, utcnow
from api.errors import BadUserInput, Conflict, NotFound
from api.experiments.impressions import ImpressionRecorder, prune
from api.experiments.models import Feedback, Impression
from api.experiments.service import promote_treatment, start_experiment, stop_experiment
from api.ratings.models import Rating
from api.recommend.kept import keep_treatment_lists, keep_version_lists
from api.vectors.store import VectorStore
from api.versions.activation import activate
from api.versions.models import Activation, Experiment
from api.versions.registry import arm_of
from api.versions.service import active_version
from tests.api.conftest import GraphQL, Stack, build_stack, train_or_copy
from tests.conftest import DatabaseFactory

RECOMMEND = "query($u: Int!) { recommendations(userId: $u) { movie { id } modelVersion impressionId } }"
FEEDBACK = (
    "mutation($u: Int!, $i: ID!, $m: Int!, $k: FeedbackKind!) "
    "{ recordFeedback(userId: $u, impressionId: $i, movieId: $m, kind: $k) { impressionId movieId kind } }"
)
USERS = range(1, 41)


@pytest.fixture(scope="module")
def lab(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("experiments")
    stack = build_stack(database_factory, root, train=True)
    engine = make_engine(stack.settings.resolved_database_url)
    lab = Lab(stack, make_session_factory(engine), root)
    lab.treatment = train_or_copy(lab.sessions, stack.settings, database_factory.backend, root)
    yield lab
    engine.dispose()


class Lab:
    """A stack of its own (experiments change who is served what), a second succeeded version to
    treat with, and the app started and stopped around each use."""

    def __init__(self, stack: Stack, sessions: sessionmaker, root: Path) -> None:
        self.stack, self.sessions, self.root = stack, sessions, root
        self.treatment = 0

    def start(self, **options: Any) -> Experiment:
        store = VectorStore(self.stack.settings.resolved_milvus_uri)
        try:
            return start_experiment(
                sessions=self.sessions, store=store, treatment_version_id=self.treatment, **options
            )
        finally:
            store.close()

    def stop_running(self) -> None:
        with contextlib.suppress(NotFound):
            stop_experiment(sessions=self.sessions, by="tests")

    def app(self, **settings: Any) -> TestClient:
        return TestClient(create_app(self.stack.settings.model_copy(update=settings)))

    def count(self, model: type[Impression] | type[Feedback], **where: Any) -> int:
        query = select(func.count()).select_from(model).filter_by(**where)
        with self.sessions() as session:
            return session.scalar(query) or 0

    def wait_for_impressions(self, n: int) -> list[Impression]:
        """Return the impressions once n are written (the writer task runs beside the requests)."""
        deadline = time.monotonic() + 10
        while self.count(Impression) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.sessions() as session:
            return list(session.scalars(select(Impression)))


@pytest.fixture
def experiment(lab: Lab) -> Iterator[Experiment]:
    lab.stop_running()
    yield lab.start(treatment_share=0.5, name="tests")
    lab.stop_running()


def _recommend(gql: GraphQL, user_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = gql.data(RECOMMEND, u=user_id)["recommendations"]
    return items


def test_each_user_is_served_by_their_arms_version_and_every_list_is_recorded(
    lab: Lab, experiment: Experiment
) -> None:
    control = lab.stack.version_id
    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        served = {user_id: _recommend(gql, user_id) for user_id in USERS}
    arms = {u: arm_of(u, experiment.salt, 0.5) for u in USERS}
    assert set(arms.values()) == {"control", "treatment"}
    for user_id, items in served.items():
        expected = lab.treatment if arms[user_id] == "treatment" else control
        assert items and {i["modelVersion"] for i in items} == {expected}
        assert len({i["impressionId"] for i in items}) == 1
    rows = {row.id: row for row in lab.wait_for_impressions(len(USERS)) if row.experiment_id == experiment.id}
    assert len(rows) == len(USERS)
    for user_id, items in served.items():
        row = rows[int(items[0]["impressionId"])]
        assert (row.user_id, row.arm) == (user_id, arms[user_id])
        assert row.version_id == items[0]["modelVersion"]
        assert row.movie_ids == ",".join(str(i["movie"]["id"]) for i in items)


def test_a_users_arm_is_stable_independent_between_experiments_and_near_its_share() -> None:
    users = range(1, 20_001)
    first = [arm_of(u, "salt-one", 0.3) for u in users]
    assert first == [arm_of(u, "salt-one", 0.3) for u in users]
    assert 0.28 < first.count("treatment") / len(first) < 0.32
    second = [arm_of(u, "salt-two", 0.3) for u in users]
    both = sum(a == b == "treatment" for a, b in zip(first, second, strict=True)) / len(first)
    assert 0.08 < both < 0.10  # independent splits: 0.3 × 0.3 of users treated by both


def test_feedback_is_checked_against_the_impression_it_names(lab: Lab, experiment: Experiment) -> None:
    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        items = _recommend(gql, 3)
        impression, shown = items[0]["impressionId"], items[0]["movie"]["id"]
        not_shown = next(m for m in range(1, 400) if m not in {i["movie"]["id"] for i in items})
        assert gql.error_code(FEEDBACK, u=3, i="123456789", m=shown, k="CLICK") == "NOT_FOUND"
        assert gql.error_code(FEEDBACK, u=3, i="not-an-id", m=shown, k="CLICK") == "NOT_FOUND"
        assert gql.error_code(FEEDBACK, u=3, i="9" * 40, m=shown, k="CLICK") == "NOT_FOUND"
        assert gql.error_code(FEEDBACK, u=3, i=impression, m=not_shown, k="CLICK") == "BAD_USER_INPUT"
        assert gql.error_code(FEEDBACK, u=4, i=impression, m=shown, k="CLICK") == "FORBIDDEN"
        assert gql.error_code(FEEDBACK, u=3, i=impression, m=shown, k="LIKE") == "GRAPHQL_VALIDATION_FAILED"
        token = gql.data("mutation { issueUserToken(userId: 4) { token } }")["issueUserToken"]["token"]
        as_four = GraphQL(client, token)
        assert as_four.error_code(FEEDBACK, u=3, i=impression, m=shown, k="CLICK") == "FORBIDDEN"
        assert GraphQL(client, None).error_code(FEEDBACK, u=3, i=impression, m=shown, k="CLICK") == (
            "UNAUTHENTICATED"
        )
        assert lab.count(Feedback, impression_id=int(impression)) == 0
        token = gql.data("mutation { issueUserToken(userId: 3) { token } }")["issueUserToken"]["token"]
        recorded = GraphQL(client, token).data(FEEDBACK, u=3, i=impression, m=shown, k="WATCH")
    assert recorded["recordFeedback"] == {"impressionId": impression, "movieId": shown, "kind": "WATCH"}
    with lab.sessions() as session:
        row = session.scalars(select(Feedback).filter_by(impression_id=int(impression))).one()
    assert (row.user_id, row.movie_id, row.kind) == (3, shown, "watch")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"treatment_share": 0.0}, BadUserInput, "between 0 and 1"),
        ({"treatment_share": 1.0}, BadUserInput, "between 0 and 1"),
        ({"treatment_share": -0.5}, BadUserInput, "between 0 and 1"),
        ({"treatment_share": 0.5, "treatment_version_id": 999}, NotFound, "version 999 does not exist"),
        ({"treatment_share": 0.5, "treatment_version_id": "active"}, BadUserInput, "is the active one"),
        ({"treatment_share": 0.5, "ends_at": "past"}, BadUserInput, "in the future"),
    ],
)
def test_an_experiment_that_cannot_run_is_refused_with_its_reason(
    lab: Lab, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    lab.stop_running()
    if options.get("treatment_version_id") == "active":
        options["treatment_version_id"] = lab.stack.version_id
    if options.get("ends_at") == "past":
        options["ends_at"] = utcnow() - timedelta(minutes=1)
    store = VectorStore(lab.stack.settings.resolved_milvus_uri)
    try:
        with pytest.raises(error, match=message):
            start_experiment(
                sessions=lab.sessions, store=store, **{"treatment_version_id": lab.treatment, **options}
            )
    finally:
        store.close()
    assert lab.count(Experiment, is_running=True) == 0


def test_a_second_experiment_is_refused_while_one_runs_and_one_past_its_end_closes(
    lab: Lab, experiment: Experiment
) -> None:
    with pytest.raises(Conflict, match=f"experiment {experiment.id} is running"):
        lab.start(treatment_share=0.2)
    with lab.sessions.begin() as session:
        row = session.get(Experiment, experiment.id)
        assert row is not None
        row.ends_at = utcnow() - timedelta(seconds=1)
    again = lab.start(treatment_share=0.2)
    with lab.sessions() as session:
        ended = session.get(Experiment, experiment.id)
        assert ended is not None and ended.is_running is None and ended.outcome == "ended"
    assert again.is_running


def test_a_restart_keeps_every_user_in_their_arm_and_loses_no_impression_or_feedback(
    lab: Lab, experiment: Experiment
) -> None:
    before = lab.count(Impression)
    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        first = {u: _recommend(gql, u) for u in USERS}
        for u, items in first.items():
            gql.data(FEEDBACK, u=u, i=items[0]["impressionId"], m=items[0]["movie"]["id"], k="CLICK")
    # The app has shut down: what it had queued is written, and the feedback was written as asked.
    assert lab.count(Impression) == before + len(USERS)
    assert lab.count(Feedback, kind="click") >= len(USERS)
    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        second = {u: _recommend(gql, u) for u in USERS}
    for u in USERS:
        assert first[u][0]["modelVersion"] == second[u][0]["modelVersion"]
    assert lab.count(Impression) == before + 2 * len(USERS)


def test_a_full_queue_drops_the_impression_and_counts_it_without_failing_the_answer(
    lab: Lab, experiment: Experiment
) -> None:
    dropped = REGISTRY.get_sample_value("movierec_impressions_total", {"outcome": "dropped"}) or 0.0
    before = lab.count(Impression)
    with lab.app(impression_queue=0) as client:
        items = _recommend(GraphQL(client, lab.stack.api_key), 5)
    assert items and all(i["impressionId"] is None for i in items)
    assert REGISTRY.get_sample_value("movierec_impressions_total", {"outcome": "dropped"}) == dropped + 1
    assert lab.count(Impression) == before


def test_visitors_and_similar_movies_are_served_by_the_active_version_and_not_recorded(
    lab: Lab, experiment: Experiment
) -> None:
    before = lab.count(Impression)
    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        similar = gql.data("{ similarMovies(movieId: 1, limit: 3) { modelVersion impressionId } }")
        visitor = gql.data(
            "{ recommendationsForProfile(ratedMovies: [{movieId: 1, rating: 5}], limit: 3) "
            "{ modelVersion impressionId } }"
        )
    for items in (similar["similarMovies"], visitor["recommendationsForProfile"]):
        assert items and all(i == {"modelVersion": lab.stack.version_id, "impressionId": None} for i in items)
    assert lab.count(Impression) == before


def test_old_impressions_are_pruned_with_their_feedback(lab: Lab) -> None:
    old, new = utcnow() - timedelta(days=91), utcnow()
    with lab.sessions.begin() as session:
        for id_, shown_at in ((7_000_001, old), (7_000_002, new)):
            session.add(Impression(id=id_, user_id=1, version_id=1, movie_ids="1,2", shown_at=shown_at))
        session.flush()
        session.add(Feedback(impression_id=7_000_001, user_id=1, movie_id=1, kind="click"))
    with lab.sessions.begin() as session:
        assert prune(session, retention_days=90) >= 1
    assert lab.count(Impression, id=7_000_001) == 0 and lab.count(Feedback, impression_id=7_000_001) == 0
    assert lab.count(Impression, id=7_000_002) == 1


def test_promoting_the_treatment_activates_it_in_the_history_and_ends_the_experiment(
    lab: Lab, experiment: Experiment
) -> None:
    control = lab.stack.version_id
    store = VectorStore(lab.stack.settings.resolved_milvus_uri)
    try:
        promote_treatment(sessions=lab.sessions, store=store, by="tests")
        with lab.sessions() as session:
            active = active_version(session=session)
            ended = session.get(Experiment, experiment.id)
            newest = session.scalars(select(Activation).order_by(Activation.id.desc()).limit(1)).one()
            assert active is not None and active.id == lab.treatment
            assert ended is not None and ended.is_running is None
            assert ended.outcome == f"version {lab.treatment} activated by tests"
            assert (newest.version_id, newest.previous_version_id) == (lab.treatment, control)
    finally:
        assert control is not None
        activate(sessions=lab.sessions, store=store, version_id=control, by="tests")
        store.close()


def test_stopping_the_writer_mid_batch_still_writes_that_batch_and_the_rest() -> None:
    """At shutdown the writer task is cancelled: a batch it was writing must finish, not be lost."""

    async def shut_down_while_writing() -> tuple[list[int | None], list[int]]:
        started, release = asyncio.Event(), asyncio.Event()
        written: list[int] = []

        async def write(rows: list[dict[str, object]]) -> None:
            started.set()
            await release.wait()
            written.extend(int(row["id"]) for row in rows)  # type: ignore[call-overload]

        recorder = ImpressionRecorder(write, capacity=10)
        shown = {"user_id": 1, "version_id": 1, "movie_ids": [1, 2], "experiment_id": None, "arm": None}
        ids = [recorder.record(**shown) for _ in range(3)]  # type: ignore[arg-type]
        writer = asyncio.create_task(recorder.run())
        await started.wait()
        ids.append(recorder.record(**shown))  # type: ignore[arg-type]  # queued behind the batch
        writer.cancel()
        release.set()
        await asyncio.gather(writer, return_exceptions=True)
        await recorder.close()
        return ids, written

    ids, written = asyncio.run(shut_down_while_writing())
    assert None not in ids and sorted(written) == sorted(ids)  # type: ignore[type-var]


def test_a_movie_created_during_an_experiment_is_searchable_in_both_arms_collections(
    lab: Lab, experiment: Experiment
) -> None:
    with lab.app() as client:
        created = GraphQL(client, lab.stack.api_key).data(
            'mutation { createMovie(input: {title: "Both Arms", year: 2001, genres: ["Drama"]}) { id } }'
        )["createMovie"]["id"]
    store = VectorStore(lab.stack.settings.resolved_milvus_uri)
    try:
        for version in (lab.stack.version_id, lab.treatment):
            assert created in store.vectors(f"movies_v{version}", [created])
    finally:
        store.close()


def test_treatment_users_lists_are_kept_at_the_start_and_answer_their_first_request(
    lab: Lab, experiment: Experiment
) -> None:
    store = VectorStore(lab.stack.settings.resolved_milvus_uri)
    try:
        stored = keep_treatment_lists(sessions=lab.sessions, store=store, experiment_id=experiment.id)
    finally:
        store.close()
    with lab.sessions() as session:
        raters = set(session.scalars(select(Rating.user_id).distinct()))
    treated = sorted(u for u in raters if arm_of(u, experiment.salt, 0.5) == "treatment")
    assert stored == len(treated)
    kept = REGISTRY.get_sample_value("movierec_recommendation_answers_total", {"source": "kept"}) or 0.0
    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        for user_id in treated[:5]:
            assert {i["modelVersion"] for i in _recommend(gql, user_id)} == {lab.treatment}
    assert REGISTRY.get_sample_value("movierec_recommendation_answers_total", {"source": "kept"}) == kept + 5


def test_keeping_the_active_versions_lists_in_an_experiment_keeps_only_the_controls_users(
    lab: Lab, experiment: Experiment
) -> None:
    store = VectorStore(lab.stack.settings.resolved_milvus_uri)
    try:
        assert lab.stack.version_id is not None
        stored = keep_version_lists(sessions=lab.sessions, store=store, version_id=lab.stack.version_id)
    finally:
        store.close()
    with lab.sessions() as session:
        raters = set(session.scalars(select(Rating.user_id).distinct()))
    assert stored == sum(arm_of(u, experiment.salt, 0.5) == "control" for u in raters) < len(raters)


def test_feedback_on_an_impression_another_process_is_still_writing_is_recorded(
    lab: Lab, experiment: Experiment
) -> None:
    """With several workers a click may reach one before the worker that served the list has written
    its impression: the mutation looks again for a moment instead of answering NOT_FOUND."""
    impression_id = 8_000_001

    def serve_elsewhere() -> None:
        time.sleep(0.05)
        with lab.sessions.begin() as session:
            session.add(
                Impression(id=impression_id, user_id=6, version_id=1, movie_ids="1,2,3", shown_at=utcnow())
            )

    with lab.app() as client:
        gql = GraphQL(client, lab.stack.api_key)
        writer = threading.Thread(target=serve_elsewhere)
        writer.start()
        try:
            recorded = gql.data(FEEDBACK, u=6, i=str(impression_id), m=2, k="CLICK")["recordFeedback"]
        finally:
            writer.join()
    assert recorded["movieId"] == 2 and lab.count(Feedback, impression_id=impression_id) == 1


def test_stopping_the_writer_while_a_batch_gathers_writes_that_batch() -> None:
    async def shut_down_while_gathering() -> tuple[list[int | None], list[int]]:
        written: list[int] = []

        async def write(rows: list[dict[str, object]]) -> None:
            written.extend(int(row["id"]) for row in rows)  # type: ignore[call-overload]

        recorder = ImpressionRecorder(write, capacity=10)
        shown = {"user_id": 1, "version_id": 1, "movie_ids": [1, 2], "experiment_id": None, "arm": None}
        ids = [recorder.record(**shown) for _ in range(2)]  # type: ignore[arg-type]
        writer = asyncio.create_task(recorder.run())
        while recorder.queue.qsize() == 2:  # the writer has taken the first and waits for more
            await asyncio.sleep(0)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        assert written == []  # nothing was written before the shutdown
        await recorder.close()
        return ids, written

    ids, written = asyncio.run(shut_down_while_gathering())
    assert None not in ids and sorted(written) == sorted(ids)  # type: ignore[type-var]
