"""The experiments page through the real app: results in words, start, stop and promote, refusals."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from starlette.testclient import TestClient

from admin.experiments import daily_chart, verdict
from api.app import create_app
from api.db import make_engine, make_session_factory, utcnow
from api.errors import NotFound
from api.experiments.results import Comparison, Day
from api.experiments.service import stop_experiment
from api.versions.models import Activation, Experiment, ModelVersion
from api.versions.service import active_version
from tests.admin.conftest import csrf_of, other_version, record_results, sign_in, two_versions_stack
from tests.api.conftest import Stack
from tests.conftest import DatabaseFactory

ACTIONS = ["/admin/experiments/start", "/admin/experiments/stop", "/admin/experiments/promote"]


@pytest.fixture(scope="module")
def experiment_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return two_versions_stack(database_factory, tmp_path_factory.mktemp("experiments"))


@pytest.fixture(scope="module")
def sessions(experiment_stack: Stack) -> Iterator[sessionmaker]:
    engine = make_engine(experiment_stack.settings.resolved_database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(autouse=True)
def no_experiment_running(sessions: sessionmaker) -> None:
    """Stop the experiment an earlier test left running: each test starts from none."""
    with contextlib.suppress(NotFound):
        stop_experiment(sessions=sessions, by="tests")


@pytest.fixture
def operator(experiment_stack: Stack) -> Iterator[tuple[TestClient, str]]:
    """Yield a signed-in client and its CSRF token."""
    with TestClient(create_app(experiment_stack.settings), follow_redirects=False) as client:
        yield client, sign_in(client)


def start(client: TestClient, token: str, **form: str) -> int:
    """Start an experiment through the form; return its id."""
    response = client.post("/admin/experiments/start", data={"csrf_token": token, **form})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin/experiments"
    match = re.search(r"Experiment (\d+) started", client.get("/admin/experiments").text)
    assert match
    return int(match.group(1))


def test_the_page_without_an_experiment_offers_to_start_one(admin_stack: Stack) -> None:
    with TestClient(create_app(admin_stack.settings), follow_redirects=False) as client:
        assert client.get("/admin/experiments").headers["location"].startswith("/admin/login?next=")
        sign_in(client)
        page = client.get("/admin/experiments")
    assert page.status_code == 200
    assert 'href="/admin/experiments">Experiments</a>' in page.text  # in the nav
    assert "No experiment yet." in page.text and 'id="start"' in page.text
    assert 'id="arms"' not in page.text


def test_start_read_results_and_stop(operator: tuple[TestClient, str], sessions: sessionmaker) -> None:
    client, token = operator
    treatment = other_version(sessions)
    with sessions() as session:
        control = active_version(session=session)
        assert control is not None
    form = client.get("/admin/experiments").text
    assert f'<option value="{treatment}"' in form and f'<option value="{control.id}"' not in form
    experiment_id = start(client, token, treatment=str(treatment), share="0.5", name="bigger model", days="7")
    with sessions() as session:
        row = session.get(Experiment, experiment_id)
        assert row is not None and row.is_running and row.started_by == "dashboard:admin"
        assert (row.control_version_id, row.treatment_version_id, row.treatment_share) == (
            control.id,
            treatment,
            0.5,
        )
        assert row.ends_at is not None and abs(row.ends_at - utcnow() - timedelta(days=7)) < timedelta(
            minutes=5
        )
        built = session.get(ModelVersion, treatment)
        assert built is not None and built.collection_name == f"movies_v{treatment}"

    page = client.get("/admin/experiments").text
    assert "not enough users yet: each arm needs two" in page and "No impressions yet" in page
    assert 'id="start"' not in page  # one runs at a time: no form while it does

    record_results(sessions, experiment_id)
    page = client.get("/admin/experiments").text
    arms = page.split('id="arms"')[1].split("</table>")[0]
    assert f">Version {control.id}</a></td><td><a" in arms and f">Version {treatment}</a></td></tr>" in arms
    assert "<td>60</td><td>60</td>" in arms  # users per arm (120 users, split by parity)
    assert "<td>120</td><td>120</td>" in arms  # impressions: two each
    assert "<td>3.00</td><td>–</td>" in arms  # the one rating of a shown movie
    assert "<td>3.3%</td><td>3.3%</td>" in arms  # 10 of 300 movies shown
    difference = re.search(r'id="difference"><b>Treatment − control:</b> ([^<]+)</p>', page)
    assert difference and re.fullmatch(
        r"treatment ahead by \d+\.\d points \(95% CI \d+\.\d to \d+\.\d\), p &lt; 0\.001", difference.group(1)
    ), difference
    assert 'id="sample-ratio"><b>Sample ratio:</b> passes (p = 1)</p>' in page
    assert "within 1h 00m (the window)" in page
    chart = page.split('id="chart-daily"')[1].split("</svg>")[0]
    assert '<title id="chart-daily-title">Positive-feedback rate per day, by arm</title>' in chart
    assert chart.count("<polyline") == 2 and chart.count("<circle") == 4  # an arm each, a point a day
    assert page.split('id="days"')[1].split("</table>")[0].count("<tr>") == 5  # header, 2 days x 2 arms

    stopped = client.post(
        "/admin/experiments/stop", data={"csrf_token": token, "experiment": str(experiment_id)}
    )
    assert stopped.status_code == 303 and stopped.headers["location"] == "/admin/experiments"
    page = client.get("/admin/experiments").text
    assert f"Experiment {experiment_id} stopped" in page and 'id="stop"' not in page
    assert 'id="start"' in page and 'id="arms"' in page  # the newest one's results stay
    row_html = page.split(f'data-experiment="{experiment_id}"')[1].split("</tr>")[0]
    assert "bigger model" in row_html and "50%" in row_html and "stopped by dashboard:admin" in row_html
    assert f'href="/admin/experiments?id={experiment_id}"' in row_html
    assert "treatment ahead by" in client.get(f"/admin/experiments?id={experiment_id}").text


def test_a_broken_split_is_called_one(operator: tuple[TestClient, str], sessions: sessionmaker) -> None:
    client, token = operator
    experiment_id = start(client, token, treatment=str(other_version(sessions)), share="0.2")
    arms = {
        user_id: "treatment" if user_id <= 2 else "control" for user_id in range(1, 121)
    }  # 2 of 120, not 24
    record_results(sessions, experiment_id, arm_of_user=arms)
    page = client.get(f"/admin/experiments?id={experiment_id}").text
    assert "<td>118</td><td>2</td>" in page
    assert "Sample ratio:</b> mismatch: the split is broken (p &lt; 0.001)" in page


def test_an_experiment_past_its_end_no_longer_runs(
    operator: tuple[TestClient, str], sessions: sessionmaker
) -> None:
    client, _ = operator
    treatment = other_version(sessions)
    with sessions.begin() as session:
        active = active_version(session=session)
        assert active is not None
        row = Experiment(
            name="ended by the clock", control_version_id=active.id, treatment_version_id=treatment,
            treatment_share=0.5, salt="00", started_by="tests", started_at=utcnow() - timedelta(days=2),
            ends_at=utcnow() - timedelta(hours=1),
        )  # fmt: skip
        session.add(row)
    page = client.get("/admin/experiments").text
    assert 'id="experiment-state">past its end<' in page
    assert 'id="stop"' not in page and 'id="promote"' not in page and 'id="start"' in page


def test_promote_activates_the_treatment_and_keeps_its_lists(
    operator: tuple[TestClient, str], sessions: sessionmaker
) -> None:
    client, token = operator
    treatment = other_version(sessions)
    with sessions() as session:
        control = active_version(session=session)
        assert control is not None
    experiment_id = start(client, token, treatment=str(treatment))
    promoted = client.post(
        "/admin/experiments/promote", data={"csrf_token": token, "experiment": str(experiment_id)}
    )
    assert promoted.status_code == 303 and promoted.headers["location"] == "/admin/"
    assert (
        f"Version {treatment}, the treatment of experiment {experiment_id}, is active."
        in client.get("/admin/").text
    )
    with sessions() as session:
        active = active_version(session=session)
        assert active is not None and active.id == treatment
        row = session.get(Experiment, experiment_id)
        assert row is not None and row.is_running is None
        assert row.outcome == f"version {treatment} activated by dashboard:admin"
    history = client.get("/admin/activations").text.split("<tbody>")[1].split("</tr>")[0]
    assert "dashboard:admin" in history and f"Version {control.id} → " in history
    assert f">Version {treatment}</a>" in history
    deadline = time.monotonic() + 120  # the kept-lists job runs in a thread of the app
    while (status := _kept_status(sessions, treatment)) == "running":
        assert time.monotonic() < deadline, "the kept-lists job never finished"
        time.sleep(0.5)
    assert status == "succeeded"


def _kept_status(sessions: sessionmaker, version_id: int) -> str:
    with sessions() as session:
        query = select(Activation.kept_status).where(Activation.version_id == version_id)
        return session.scalars(query.order_by(Activation.id.desc())).first() or "none"


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"share": "1.5"}, 400, "between 0 and 1 (exclusive), not 1.5"),
        ({"share": "0"}, 400, "between 0 and 1 (exclusive), not 0.0"),
        ({"share": "half"}, 400, "share &#39;half&#39; is not a number"),
        ({"treatment": "987654"}, 404, "model version 987654 does not exist"),
        ({"treatment": "x"}, 400, "pick the treatment version"),
        ({"days": "0"}, 400, "ends in 1 to 365 days, not &#39;0&#39;"),
        ({"days": "-3"}, 400, "ends in 1 to 365 days, not &#39;-3&#39;"),
    ],
)
def test_bad_input_comes_back_as_the_page_with_its_message(
    operator: tuple[TestClient, str], sessions: sessionmaker, form: dict[str, str], status: int, message: str
) -> None:
    client, token = operator
    data = {"csrf_token": token, "treatment": str(other_version(sessions)), "share": "0.5", **form}
    response = client.post("/admin/experiments/start", data=data)
    assert response.status_code == status
    assert re.search(r'<p class="alert" role="alert" id="error">[^<]*' + re.escape(message), response.text)
    assert f'name="share" value="{data["share"]}"' in response.text  # what was typed stays
    with sessions() as session:
        assert session.scalar(select(Experiment).where(Experiment.is_running.is_(True))) is None


def test_the_active_version_cannot_be_its_own_treatment(
    operator: tuple[TestClient, str], sessions: sessionmaker
) -> None:
    client, token = operator
    with sessions() as session:
        active = active_version(session=session)
        assert active is not None
    response = client.post(
        "/admin/experiments/start", data={"csrf_token": token, "treatment": str(active.id)}
    )
    assert response.status_code == 400 and f"model version {active.id} is the active one" in response.text


def test_one_experiment_at_a_time_and_actions_on_the_one_shown(
    operator: tuple[TestClient, str], sessions: sessionmaker
) -> None:
    client, token = operator
    nothing = client.post("/admin/experiments/stop", data={"csrf_token": token, "experiment": "1"})
    assert nothing.status_code == 404 and "no experiment is running" in nothing.text
    treatment = str(other_version(sessions))
    experiment_id = start(client, token, treatment=treatment)
    second = client.post("/admin/experiments/start", data={"csrf_token": token, "treatment": treatment})
    assert second.status_code == 409
    assert f"experiment {experiment_id} is running; stop it first" in second.text
    stale = {"csrf_token": token, "experiment": str(experiment_id - 1)}  # a page that showed another one
    for action in ("stop", "promote"):
        refused = client.post(f"/admin/experiments/{action}", data=stale)
        assert (
            refused.status_code == 409
            and f"experiment {experiment_id} is the one running now" in refused.text
        )
    with sessions() as session:
        row = session.get(Experiment, experiment_id)
        assert row is not None and row.is_running  # nothing was stopped nor promoted


@pytest.mark.parametrize("path", ACTIONS)
def test_posts_need_a_session_and_its_csrf_token(
    experiment_stack: Stack, sessions: sessionmaker, path: str
) -> None:
    data = {"treatment": str(other_version(sessions)), "experiment": "1"}
    with TestClient(create_app(experiment_stack.settings), follow_redirects=False) as client:
        token = csrf_of(client.get("/admin/login").text)
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 401
        token = sign_in(client)
        assert client.post(path, data=data).status_code == 403
        assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403
    with sessions() as session:
        assert session.scalar(select(Experiment).where(Experiment.is_running.is_(True))) is None


def test_an_unknown_experiment_is_a_404(operator: tuple[TestClient, str]) -> None:
    client, _ = operator
    missing = client.get("/admin/experiments?id=987654")
    assert missing.status_code == 404 and "experiment 987654 does not exist" in missing.text
    assert client.get("/admin/experiments?id=abc").status_code == 404


@pytest.mark.parametrize(
    ("comparison", "words"),
    [
        (
            Comparison(0.021, 0.004, 0.038, 0.014, None),
            "treatment ahead by 2.1 points (95% CI 0.4 to 3.8), p = 0.014",
        ),
        (
            Comparison(-0.05, -0.09, -0.01, 0.0004, None),
            "treatment behind by 5.0 points (95% CI -9.0 to -1.0), p < 0.001",
        ),
        (
            Comparison(0.004, -0.012, 0.02, 0.62, None),
            "no difference shown yet: +0.4 points (95% CI -1.2 to 2.0), p = 0.62",
        ),
        (None, "not enough users yet: each arm needs two"),
    ],
)
def test_the_difference_in_words(comparison: Comparison | None, words: str) -> None:
    assert verdict(comparison) == words


def test_the_daily_chart_spans_the_days_and_the_highest_rate() -> None:
    days = [
        Day(date(2026, 1, 1), "control", 10, 0.1),
        Day(date(2026, 1, 1), "treatment", 10, 0.4),
        Day(date(2026, 1, 3), "control", 10, 0.2),
    ]
    chart = daily_chart(days)
    assert (
        chart is not None
        and chart.top == 0.4
        and (chart.first, chart.last) == (date(2026, 1, 1), date(2026, 1, 3))
    )
    x0, y0, x1, y1 = chart.box
    control, treatment = chart.series["control"], chart.series["treatment"]
    assert [(p.x, p.y) for p in control] == [(x0, y1 - 0.25 * (y1 - y0)), (x1, y1 - 0.5 * (y1 - y0))]
    assert [(p.x, p.y) for p in treatment] == [(x0, y0)]
    assert treatment[0].label == "treatment, 2026-01-01: 40.0% of 10 impressions"
    assert daily_chart([]) is None
