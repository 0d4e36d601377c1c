"""An experiment's results from rows written here, each figure worked out by hand or by scipy on the
users' rates the test lists: positives per user within the window, coverage, the sample-ratio check
and Welch's comparison."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from scipy import stats
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.db import make_engine
from api.experiments.models import Feedback, Impression
from api.experiments.results import compare, experiment_results
from api.movies.models import Movie
from api.ratings.models import Rating
from api.users.models import User
from api.versions.models import Experiment
from tests.conftest import DatabaseFactory, rolled_back, upgrade

START = datetime(2026, 3, 2, 9, 0, 0)
WINDOW_S = 3600
CATALOGUE = 20  # movies 1..20


@pytest.fixture(scope="module")
def results_engine(database_factory: DatabaseFactory) -> Iterator[Engine]:
    """A database of its own, so that the catalogue holds exactly the test's movies."""
    url = database_factory.new_url()
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(results_engine: Engine) -> Iterator[Session]:
    with rolled_back(results_engine) as session:
        yield session


class Rows:
    """Writes an experiment's impressions, feedback and ratings, minutes after START."""

    def __init__(self, session: Session, share: float = 0.5) -> None:
        self.session = session
        session.add_all([Movie(id=m, title=f"movie {m}") for m in range(1, CATALOGUE + 1)])
        session.add_all([User(id=u) for u in range(1, 13)])
        self.experiment = Experiment(
            name="results", control_version_id=1, treatment_version_id=2, treatment_share=share,
            salt="00", started_by="tests", started_at=START,
        )  # fmt: skip
        session.add(self.experiment)
        session.flush()
        self.next_id = 1

    def shown(self, user: int, arm: str, movies: list[int], minute: int = 0) -> int:
        impression = Impression(
            id=self.next_id, user_id=user, experiment_id=self.experiment.id, arm=arm,
            version_id=1 if arm == "control" else 2, movie_ids=",".join(map(str, movies)),
            shown_at=START + timedelta(minutes=minute),
        )  # fmt: skip
        self.next_id += 1
        self.session.add(impression)
        self.session.flush()
        return impression.id

    def feedback(self, impression_id: int, movie: int, kind: str, minute: int) -> None:
        impression = self.session.get(Impression, impression_id)
        assert impression is not None
        at = impression.shown_at + timedelta(minutes=minute)
        self.session.add(Feedback(impression_id=impression_id, user_id=impression.user_id,
                                  movie_id=movie, kind=kind, at=at))  # fmt: skip
        self.session.flush()

    def rated(self, user: int, movie: int, stars: float, minute: int) -> None:
        at = START + timedelta(minutes=minute)
        self.session.add(Rating(user_id=user, movie_id=movie, rating=stars, rated_at=at))
        self.session.flush()


def test_positive_rates_are_per_user_within_the_window(db: Session) -> None:
    rows = Rows(db)
    # Control. User 1: two impressions, the first clicked within the window, the second not: 1/2.
    first = rows.shown(1, "control", [1, 2, 3])
    rows.feedback(first, 2, "click", minute=5)
    rows.shown(1, "control", [1, 4], minute=10)
    # User 2: a click an hour and a minute after the impression is past the window: 0.
    late = rows.shown(2, "control", [1, 2], minute=1)
    rows.feedback(late, 1, "click", minute=61)
    # User 3: rated a movie they were not shown, 5 stars within the window; dismissed a shown one: 0.
    dismissed = rows.shown(3, "control", [5, 6], minute=2)
    rows.rated(3, 7, 5.0, minute=3)
    rows.feedback(dismissed, 5, "dismiss", minute=3)
    # Treatment. User 4: rated a shown movie 4 stars within the window: 1.
    rows.shown(4, "treatment", [8, 9], minute=0)
    rows.rated(4, 9, 4.0, minute=30)
    # User 5: rated a shown movie 3.5 stars (not positive), then watched another: 1; and a second
    # impression rated 5 stars before it was shown (not positive): 1/2 in all.
    watched = rows.shown(5, "treatment", [10, 11], minute=0)
    rows.rated(5, 10, 3.5, minute=20)
    rows.feedback(watched, 11, "watch", minute=25)
    rows.rated(5, 12, 5.0, minute=40)
    rows.shown(5, "treatment", [12, 8], minute=50)
    # User 6: a rating of a shown movie past the window: 0.
    rows.shown(6, "treatment", [13], minute=0)
    rows.rated(6, 13, 5.0, minute=61)

    results = experiment_results(session=db, experiment=rows.experiment, window_s=WINDOW_S)
    control, treatment = results.arms["control"], results.arms["treatment"]
    assert (control.version_id, treatment.version_id) == (1, 2)
    assert (control.users, control.impressions, control.positive_impressions) == (3, 4, 1)
    assert sorted(control.user_rates) == [0.0, 0.0, 0.5]
    assert control.positive_rate == pytest.approx(0.5 / 3)
    assert control.mean_rating is None  # user 3's rating is of a movie not shown
    assert (treatment.users, treatment.impressions, treatment.positive_impressions) == (3, 4, 2)
    assert sorted(treatment.user_rates) == [0.0, 0.5, 1.0]
    assert treatment.positive_rate == pytest.approx(0.5)
    # Ratings of shown movies within the window: 4 and 3.5 (5 stars of 12 came before it was shown).
    assert treatment.mean_rating == pytest.approx(3.75)
    assert control.coverage == pytest.approx(6 / CATALOGUE)  # movies 1 to 6
    assert treatment.coverage == pytest.approx(6 / CATALOGUE)  # 8 to 13
    assert [(d.day, d.arm, d.impressions, d.positive_rate) for d in results.days] == [
        (START.date(), "control", 4, 0.25),
        (START.date(), "treatment", 4, 0.5),
    ]

    # A wider window counts user 2's late click and user 6's late rating.
    wider = experiment_results(session=db, experiment=rows.experiment, window_s=2 * WINDOW_S)
    assert sorted(wider.arms["control"].user_rates) == [0.0, 0.5, 1.0]
    assert sorted(wider.arms["treatment"].user_rates) == [0.5, 1.0, 1.0]


def test_the_comparison_is_welchs_test_on_the_users_rates(db: Session) -> None:
    rows = Rows(db)
    control_rates = {1: [1, 0], 2: [0], 3: [0, 0, 0], 4: [1]}  # per user, each impression positive or not
    treatment_rates = {5: [1], 6: [1, 1, 0], 7: [0, 1], 8: [1, 1]}
    for arm, users in (("control", control_rates), ("treatment", treatment_rates)):
        for user, outcomes in users.items():
            for i, positive in enumerate(outcomes):
                impression = rows.shown(user, arm, [user, 20], minute=10 * i)
                if positive:
                    rows.feedback(impression, 20, "click", minute=1)
    control = [sum(v) / len(v) for v in control_rates.values()]
    treatment = [sum(v) / len(v) for v in treatment_rates.values()]

    results = experiment_results(session=db, experiment=rows.experiment, window_s=WINDOW_S)
    assert sorted(results.arms["control"].user_rates) == sorted(control)
    assert sorted(results.arms["treatment"].user_rates) == sorted(treatment)
    expected = stats.ttest_ind(treatment, control, equal_var=False)
    interval = expected.confidence_interval(0.95)
    comparison = results.comparison
    assert comparison is not None
    difference = sum(treatment) / 4 - sum(control) / 4
    assert comparison.difference == pytest.approx(difference)
    assert comparison.p_value == pytest.approx(expected.pvalue)
    assert (comparison.low, comparison.high) == pytest.approx((interval.low, interval.high))
    assert comparison.low < difference < comparison.high
    assert comparison.lift == pytest.approx(difference / (sum(control) / 4))


def test_no_comparison_before_each_arm_has_two_users(db: Session) -> None:
    rows = Rows(db)
    for user in (1, 2):
        rows.shown(user, "control", [1])
    rows.shown(3, "treatment", [1])
    results = experiment_results(session=db, experiment=rows.experiment, window_s=WINDOW_S)
    assert results.comparison is None
    assert results.arms["treatment"].positive_rate == 0.0


def test_rates_without_variance_still_compare() -> None:
    same = compare([0.5, 0.5], [0.5, 0.5])
    assert same is not None and (same.difference, same.p_value, same.lift) == (0.0, 1.0, 0.0)
    apart = compare([0.5, 0.5], [0.75, 0.75])
    assert apart is not None and (apart.difference, apart.low, apart.high) == (0.25, 0.25, 0.25)
    assert apart.p_value == 0.0 and apart.lift == pytest.approx(0.5)


@pytest.mark.parametrize(("control", "treatment", "share"), [(9, 3, 0.25), (5, 7, 0.5), (12, 0, 0.5)])
def test_the_sample_ratio_check_is_scipys_chi_square(
    db: Session, control: int, treatment: int, share: float
) -> None:
    rows = Rows(db, share=share)
    for user in range(1, control + treatment + 1):
        rows.shown(user, "control" if user <= control else "treatment", [1])
    results = experiment_results(session=db, experiment=rows.experiment, window_s=WINDOW_S)
    total = control + treatment
    expected = stats.chisquare([control, treatment], [total * (1 - share), total * share]).pvalue
    assert results.srm_p_value == pytest.approx(expected)
    assert results.sample_ratio_ok == (expected >= 0.001)


def test_before_any_impression_there_are_no_rates(db: Session) -> None:
    results = experiment_results(session=db, experiment=Rows(db).experiment, window_s=WINDOW_S)
    assert results.srm_p_value is None and results.sample_ratio_ok and results.comparison is None
    assert all(a.users == 0 and a.positive_rate is None and a.coverage == 0 for a in results.arms.values())


LATE_SHOWN_AT = datetime(2026, 12, 7, 23, 30, 0, 600_000)  # the window crosses midnight


def test_feedback_and_ratings_count_within_the_window_only(session: Session) -> None:
    experiment = Experiment(
        name="window", control_version_id=1, treatment_version_id=2, treatment_share=0.5, salt="s",
        started_by="tests", started_at=LATE_SHOWN_AT - timedelta(minutes=1),
    )  # fmt: skip
    session.add(experiment)
    session.add_all(Movie(id=m, title=f"Movie {m}") for m in (11, 12, 13))
    session.flush()
    # (arm, delay of the user's click, delay of a 5-star rating of a shown movie), one user each;
    # None: nothing of that kind. Ratings are stored to the second, as rateMovie stores them.
    users = {
        1: ("control", timedelta(seconds=5), None),
        2: ("control", timedelta(minutes=59), None),
        3: ("control", timedelta(minutes=61), None),  # too late: not positive
        4: ("treatment", None, timedelta(minutes=30)),
        5: ("treatment", None, timedelta(hours=2)),  # too late
        6: ("treatment", None, None),
        7: ("treatment", None, timedelta(seconds=0.3)),  # stored to the second: 23:30:00, before the list
    }
    for user_id, (arm, click, rating) in users.items():
        session.add(User(id=user_id))
        impression = Impression(
            id=1000 + user_id, user_id=user_id, experiment_id=experiment.id, arm=arm,
            version_id=1 if arm == "control" else 2, movie_ids="11,12,13", shown_at=LATE_SHOWN_AT,
        )  # fmt: skip
        session.add(impression)
        session.flush()
        if click is not None:
            session.add(Feedback(impression_id=impression.id, user_id=user_id, movie_id=12, kind="click",
                                 at=LATE_SHOWN_AT + click))  # fmt: skip
        if rating is not None:
            session.add(Rating(user_id=user_id, movie_id=13, rating=5.0,
                               rated_at=(LATE_SHOWN_AT + rating).replace(microsecond=0)))  # fmt: skip
    session.flush()

    results = experiment_results(session=session, experiment=experiment, window_s=WINDOW_S)

    control, treatment = results.arms["control"], results.arms["treatment"]
    assert (control.users, control.impressions, control.positive_impressions) == (3, 3, 2)
    assert (treatment.users, treatment.impressions, treatment.positive_impressions) == (4, 4, 2)
    assert control.positive_rate == 2 / 3 and treatment.positive_rate == 2 / 4
    assert treatment.ratings == [5.0, 5.0]  # the late one is outside the window
