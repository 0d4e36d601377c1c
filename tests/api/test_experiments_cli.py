"""`movierec experiments` on a stack of its own (two succeeded versions and a failed one): start,
stop, promote and report, and every refusal as one line and status 1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from api.cli import main
from api.db import make_engine, make_session_factory, utcnow
from api.experiments.models import Feedback, Impression
from api.movies.models import Movie
from api.ratings.models import Rating
from api.settings import Settings
from api.vectors.store import VectorStore
from api.versions.activation import activate
from api.versions.jobs import activations
from api.versions.models import Experiment
from api.versions.service import (
    active_version,
    end_experiment,
    fail_version,
    running_experiment,
    start_version,
)
from tests.api.conftest import build_stack, train_or_copy
from tests.conftest import DatabaseFactory


@dataclass(frozen=True)
class Versions:
    settings: Settings
    sessions: sessionmaker
    control: int  # active
    treatment: int  # succeeded, a copy of the control's training
    failed: int
    catalogue: int  # movies


@pytest.fixture(scope="module")
def versions(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Versions]:
    """A stack whose experiments and promotions no other test's stack sees."""
    root = tmp_path_factory.mktemp("experiments")
    stack = build_stack(database_factory, root, train=True)
    assert stack.version_id is not None
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    treatment = train_or_copy(sessions, stack.settings, database_factory.backend, root)
    with sessions.begin() as session:
        failed = start_version(session=session, params={}, started_by="tests").id
        fail_version(session=session, version_id=failed, error="diverged")
    yield Versions(stack.settings, sessions, stack.version_id, treatment, failed, len(stack.dataset.movies))
    engine.dispose()


@pytest.fixture
def cli(versions: Versions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Versions]:
    """The stack's settings for `movierec`; afterwards no experiment runs and the control is active."""
    monkeypatch.setenv("MOVIEREC_ENVIRONMENT", "development")
    monkeypatch.setenv("MOVIEREC_DATABASE_URL", versions.settings.resolved_database_url)
    monkeypatch.setenv("MOVIEREC_MILVUS_URI", versions.settings.resolved_milvus_uri)
    monkeypatch.setenv("MOVIEREC_MODEL_DIR", str(versions.settings.resolved_model_dir))
    monkeypatch.setenv("MOVIEREC_VAR_DIR", str(tmp_path))
    yield versions
    with versions.sessions.begin() as session:
        if (row := running_experiment(session=session)) is not None:
            end_experiment(session, row, "test over")
        active = active_version(session=session)
    if active is None or active.id != versions.control:
        store = VectorStore(versions.settings.resolved_milvus_uri)
        activate(sessions=versions.sessions, store=store, version_id=versions.control, by="tests")
        store.close()


def run(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> str:
    """Run `movierec experiments ARGS`, which must exit with status; return what it printed (stdout,
    or the one line of stderr of a refusal)."""
    assert main(["experiments", *args]) == status
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if status == 0:
        return out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("movierec: error: "), err
    return lines[0]


def experiment(versions: Versions, experiment_id: int) -> Experiment:
    with versions.sessions() as session:
        row = session.get(Experiment, experiment_id)
        assert row is not None
        return row


def started_id(out: str) -> int:
    match = re.search(r"started experiment (\d+)", out)
    assert match, out
    return int(match.group(1))


def test_start_prints_the_experiment_and_stop_ends_it(
    cli: Versions, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, "start", "--treatment", str(cli.treatment), "--share", "0.25", "--name", "wider towers",
              "--days", "7")  # fmt: skip
    experiment_id = started_id(out)
    assert f"(wider towers): control version {cli.control}, treatment version {cli.treatment}" in out
    assert "for a share of 0.25 of users, until " in out
    row = experiment(cli, experiment_id)
    assert (row.control_version_id, row.treatment_version_id, row.treatment_share) == (
        cli.control,
        cli.treatment,
        0.25,
    )
    assert row.is_running and row.started_by.startswith("cli:")
    assert row.ends_at is not None
    assert abs(row.ends_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=5)
    listed = run(capsys, "list").splitlines()
    assert any(line.startswith(f"* {experiment_id} ") and "wider towers: running" in line for line in listed)

    out = run(capsys, "stop")
    assert (
        f"stopped experiment {experiment_id} (wider towers); version {cli.control} serves every user" in out
    )
    row = experiment(cli, experiment_id)
    assert row.is_running is None and row.stopped_at is not None
    assert row.outcome is not None and row.outcome.startswith("stopped by cli:")
    assert "no experiment is running" in run(capsys, "stop")
    listed = run(capsys, "list").splitlines()
    line = next(line for line in listed if line.startswith(f"  {experiment_id} "))
    assert "wider towers: ended" in line and "stopped by cli:" in line


def test_promote_activates_the_treatment_and_keeps_its_lists(
    cli: Versions, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment_id = started_id(run(capsys, "start", "--treatment", str(cli.treatment)))
    out = run(capsys, "promote")
    assert f"version {cli.treatment} is active: experiment {experiment_id} promoted its treatment" in out
    assert "kept the recommendations of" in out
    row = experiment(cli, experiment_id)
    assert row.is_running is None
    assert row.outcome is not None and row.outcome.startswith(f"version {cli.treatment} activated by cli:")
    with cli.sessions() as session:
        active = active_version(session=session)
        assert active is not None and active.id == cli.treatment
        newest = activations(session=session)[0]
    assert (newest.version_id, newest.previous_version_id) == (cli.treatment, cli.control)
    assert newest.activated_by.startswith("cli:")
    assert newest.kept_status == "succeeded" and newest.kept_done == newest.kept_total > 0


SHARE = "the treatment's share of users must be between 0 and 1 (exclusive), not "
REFUSALS = [
    (["start", "--treatment", "{treatment}", "--share", "0"], SHARE + "0.0"),
    (["start", "--treatment", "{treatment}", "--share", "1"], SHARE + "1.0"),
    (["start", "--treatment", "{treatment}", "--share", "1.5"], SHARE + "1.5"),
    (["start", "--treatment", "9999"], "model version 9999 does not exist"),
    (
        ["start", "--treatment", "{failed}"],
        "model version {failed} is failed; only a succeeded version can serve",
    ),
    (["start", "--treatment", "{control}"], "model version {control} is the active one (the control)"),
    (["start", "--treatment", "{treatment}", "--days", "0"], "the experiment's end must be in the future"),
    (["promote"], "no experiment is running"),
    (["report", "--id", "9999"], "experiment 9999 does not exist"),
    (["start", "--treatment", "{treatment}", "--days", "nan"], "--days nan gives no date to end on"),
    (["start", "--treatment", "{treatment}", "--days", "1e9"], "--days 1e+09 gives no date to end on"),
    (["report", "--window", "0"], "--window is a number of seconds above 0 and at most 31536000 (a year)"),
    (
        ["report", "--window", "99999999999"],
        "--window is a number of seconds above 0 and at most 31536000 (a year)",
    ),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS, ids=[" ".join(args) for args, _ in REFUSALS])
def test_a_refusal_is_its_message_on_one_line_and_status_1(
    cli: Versions, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    ids = {"treatment": cli.treatment, "failed": cli.failed, "control": cli.control}
    with cli.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Experiment))
    line = run(capsys, *(a.format(**ids) for a in args), status=1)
    assert line == f"movierec: error: {message.format(**ids)}"
    with cli.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Experiment)) == before
        active = active_version(session=session)
    assert active is not None and active.id == cli.control


@pytest.mark.parametrize("args", [["start", "--treatment", "99999999999999999999"], ["report", "--id", "-1"]])
def test_an_id_no_column_holds_is_a_usage_error(
    cli: Versions, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["experiments", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"not an id: {args[-1]}" in err and "Traceback" not in err


def test_a_second_experiment_is_refused_while_one_runs(
    cli: Versions, capsys: pytest.CaptureFixture[str]
) -> None:
    first = started_id(run(capsys, "start", "--treatment", str(cli.treatment)))
    line = run(capsys, "start", "--treatment", str(cli.treatment), "--share", "0.1", status=1)
    assert line == f"movierec: error: experiment {first} is running; stop it first (one runs at a time)"
    with cli.sessions() as session:
        running = running_experiment(session=session)
    assert running is not None and running.id == first


def shown_and_followed(cli: Versions, experiment_id: int) -> dict[str, set[int]]:
    """Write one impression per user: control users 1 to 4, one of them clicking (a rate of 1/4);
    treatment users 5 to 8, one clicking, one watching and one rating a movie shown 5 stars (3/4).
    The feedback comes a minute after the impression, the rating two. Return each arm's movies shown."""
    with cli.sessions.begin() as session:
        row = session.get(Experiment, experiment_id)
        assert row is not None
        shown_at = row.started_at + timedelta(minutes=1)
        catalogue = list(session.scalars(select(Movie.id).order_by(Movie.id)))
        rated = set(session.scalars(select(Rating.movie_id).where(Rating.user_id == 7)))
        unrated = next(m for m in reversed(catalogue) if m not in rated)
        movies: dict[str, set[int]] = {"control": set(), "treatment": set()}
        for user in range(1, 9):
            arm = "control" if user <= 4 else "treatment"
            listed = catalogue[3 * user - 3 : 3 * user]  # three movies no other user is shown
            if user == 7:
                listed[0] = unrated
            movies[arm] |= set(listed)
            impression_id = experiment_id * 1000 + user
            session.add(Impression(
                id=impression_id, user_id=user, experiment_id=experiment_id, arm=arm,
                version_id=cli.control if arm == "control" else cli.treatment,
                movie_ids=",".join(map(str, listed)), shown_at=shown_at,
            ))  # fmt: skip
            session.flush()
            kind = {1: "click", 2: "dismiss", 5: "click", 6: "watch"}.get(user)
            if kind is not None:
                at = shown_at + timedelta(minutes=1)
                session.add(Feedback(impression_id=impression_id, user_id=user, movie_id=listed[1],
                                     kind=kind, at=at))  # fmt: skip
        at = shown_at + timedelta(minutes=2)
        session.add(Rating(user_id=7, movie_id=unrated, rating=5.0, rated_at=at))
    return movies


def report(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(run(capsys, "report", "--json", *args))
    return parsed


def test_the_report_counts_the_rows_written(cli: Versions, capsys: pytest.CaptureFixture[str]) -> None:
    experiment_id = started_id(run(capsys, "start", "--treatment", str(cli.treatment)))
    movies = shown_and_followed(cli, experiment_id)

    found = report(capsys)
    assert found["experiment"] == found["experiment"] | {
        "id": experiment_id,
        "control_version": cli.control,
        "treatment_version": cli.treatment,
        "treatment_share": 0.5,
        "ends_at": None,
        "stopped_at": None,
        "outcome": None,
        "running": True,
    }
    # As the API writes every DateTime: to the second, with a Z.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", found["experiment"]["started_at"]), found
    assert found["window_s"] == 3600  # the setting's default
    assert found["arms"] == {
        "control": {
            "version": cli.control, "users": 4, "impressions": 4, "positive_impressions": 1,
            "positive_rate": 0.25, "mean_rating": None, "coverage": len(movies["control"]) / cli.catalogue,
        },
        "treatment": {
            "version": cli.treatment, "users": 4, "impressions": 4, "positive_impressions": 3,
            "positive_rate": 0.75, "mean_rating": 5.0,
            "coverage": len(movies["treatment"]) / cli.catalogue,
        },
    }  # fmt: skip
    welch = stats.ttest_ind([1, 1, 1, 0], [1, 0, 0, 0], equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert found["comparison"] == {
        "difference": 0.5,
        "low": pytest.approx(interval.low),
        "high": pytest.approx(interval.high),
        "p_value": pytest.approx(welch.pvalue),
        "lift": 2.0,
    }
    assert found["sample_ratio"] == {"p_value": pytest.approx(1.0), "ok": True}

    text = run(capsys, "report")
    assert (
        f"experiment {experiment_id} (version {cli.treatment} against {cli.control}): running since" in text
    )
    assert re.search(rf"control +v{cli.control} +4 +4 +0\.2500 +- ", text)
    assert re.search(rf"treatment +v{cli.treatment} +4 +4 +0\.7500 +5\.00 ", text)
    assert f"treatment - control: +0.5000 (95% CI {interval.low:+.4f} to {interval.high:+.4f}), " in text
    assert f"p = {welch.pvalue:.4f}, lift +200.0%" in text
    assert "sample ratio: p = 1.0000, ok" in text

    # Within 90 seconds the clicks and the watch count, the rating two minutes after does not.
    narrow = report(capsys, "--window", "90")
    assert narrow["window_s"] == 90
    assert [narrow["arms"][arm]["positive_rate"] for arm in ("control", "treatment")] == [0.25, 0.5]

    run(capsys, "stop")
    ended = report(capsys, "--id", str(experiment_id))
    assert ended["experiment"]["running"] is False and ended["experiment"]["outcome"].startswith("stopped by")
    assert ended["arms"] == found["arms"] and ended["comparison"] == found["comparison"]
    assert report(capsys)["experiment"]["id"] == experiment_id  # none runs: the newest
