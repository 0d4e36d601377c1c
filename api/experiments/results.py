"""An experiment's results per arm, and the difference between arms with its uncertainty.

The unit is the user: each user's positive rate (the share of their impressions followed, within
the window, by a click or a watch of a movie shown or a rating of 4 stars or more of one) is one
observation, so that a user who asks often does not count as many independent samples. Arms are
compared by Welch's t-test on those rates (scipy), with its 95% confidence interval; the sample-ratio
check is a chi-square test of the arms' user counts against the configured share."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from scipy import stats
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.experiments.models import ARMS, POSITIVE_KINDS, Feedback, Impression
from api.movies.models import Movie
from api.ratings.models import Rating
from api.versions.models import Experiment

LIKED = 4.0  # stars from which a rating of a shown movie is positive feedback
SRM_ALPHA = 0.001  # a sample-ratio p-value below this says the split is broken
# Ratings are stored to the second (api/ratings/writes.py), and MySQL's DATETIME may round a list's
# time up to the next second: a rating made within a second of the list can read as before it.
CLOCK_GRAIN = timedelta(seconds=1)


@dataclass
class ArmResult:
    arm: str
    version_id: int
    users: int = 0
    impressions: int = 0
    positive_impressions: int = 0
    user_rates: list[float] = field(default_factory=list, repr=False)
    ratings: list[float] = field(default_factory=list, repr=False)  # of shown movies, in the window
    shown: set[int] = field(default_factory=set, repr=False)
    coverage: float = 0.0  # share of the catalogue shown at least once

    @property
    def positive_rate(self) -> float | None:
        """The mean of the users' positive rates."""
        return float(np.mean(self.user_rates)) if self.user_rates else None

    @property
    def mean_rating(self) -> float | None:
        return float(np.mean(self.ratings)) if self.ratings else None


@dataclass(frozen=True)
class Comparison:
    difference: float  # treatment's positive rate minus control's
    low: float  # 95% confidence interval of the difference
    high: float
    p_value: float
    lift: float | None  # difference over control's rate


@dataclass(frozen=True)
class Day:
    day: date
    arm: str
    impressions: int
    positive_rate: float


@dataclass(frozen=True)
class Results:
    experiment: Experiment
    window_s: int
    arms: dict[str, ArmResult]
    comparison: Comparison | None  # None until each arm has two users
    srm_p_value: float | None  # None before any user
    days: list[Day]

    @property
    def sample_ratio_ok(self) -> bool:
        return self.srm_p_value is None or self.srm_p_value >= SRM_ALPHA


def experiment_results(*, session: Session, experiment: Experiment, window_s: int) -> Results:
    """Return an experiment's results: every impression it recorded and what followed each."""
    window = timedelta(seconds=window_s)
    versions = {"control": experiment.control_version_id, "treatment": experiment.treatment_version_id}
    arms = {arm: ArmResult(arm, versions[arm]) for arm in ARMS}
    in_experiment = Impression.experiment_id == experiment.id
    clicked: dict[int, set[int]] = defaultdict(set)  # impression -> movies clicked or watched in the window
    feedback = (
        select(Feedback.impression_id, Feedback.movie_id, Feedback.at, Impression.shown_at)
        .join(Impression, Impression.id == Feedback.impression_id)
        .where(in_experiment, Feedback.kind.in_(POSITIVE_KINDS))
    )
    # The window is compared here: SQLite and MySQL add a timedelta parameter to a DATETIME column
    # as a number, not as an interval.
    for impression_id, movie_id, at, shown_at in session.execute(feedback):
        if at <= shown_at + window:
            clicked[impression_id].add(movie_id)
    rated: dict[int, list[tuple[int, float, datetime]]] = defaultdict(list)
    users = select(Impression.user_id).where(in_experiment).distinct()
    ratings = select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.rated_at).where(
        Rating.user_id.in_(users), Rating.rated_at >= experiment.started_at - CLOCK_GRAIN
    )
    for user_id, movie_id, stars, at in session.execute(ratings):
        rated[user_id].append((movie_id, float(stars), at))

    per_user: dict[tuple[str, int], list[int]] = defaultdict(list)  # (arm, user) -> 1/0 an impression
    counted: set[tuple[int, int]] = set()  # (user, movie) whose rating is counted once
    daily: dict[tuple[date, str], list[int]] = defaultdict(list)
    shown = select(
        Impression.id, Impression.user_id, Impression.arm, Impression.movie_ids, Impression.shown_at
    )
    for impression_id, user_id, arm, movie_ids, shown_at in session.execute(shown.where(in_experiment)):
        result = arms[str(arm)]  # set on every impression of an experiment
        movies = {int(m) for m in movie_ids.split(",")}
        result.impressions += 1
        result.shown |= movies
        positive = bool(clicked.get(impression_id, set()) & movies)
        for movie_id, stars, at in rated.get(user_id, ()):
            if movie_id in movies and shown_at - CLOCK_GRAIN <= at <= shown_at + window:
                positive = positive or stars >= LIKED
                if (user_id, movie_id) not in counted:
                    counted.add((user_id, movie_id))
                    result.ratings.append(stars)
        result.positive_impressions += positive
        per_user[(result.arm, user_id)].append(int(positive))
        daily[(shown_at.date(), result.arm)].append(int(positive))

    catalogue = session.scalar(select(func.count()).select_from(Movie)) or 1
    for (arm, _user), outcomes in per_user.items():
        arms[arm].user_rates.append(sum(outcomes) / len(outcomes))
    for result in arms.values():
        result.users = len(result.user_rates)
        result.coverage = len(result.shown) / catalogue
    days = [Day(d, arm, len(v), sum(v) / len(v)) for (d, arm), v in sorted(daily.items())]
    return Results(
        experiment=experiment,
        window_s=window_s,
        arms=arms,
        comparison=compare(arms["control"].user_rates, arms["treatment"].user_rates),
        srm_p_value=sample_ratio(arms["control"].users, arms["treatment"].users, experiment.treatment_share),
        days=days,
    )


def compare(control: list[float], treatment: list[float]) -> Comparison | None:
    """Return the difference of means (treatment - control) with Welch's 95% interval and p-value."""
    if len(control) < 2 or len(treatment) < 2:
        return None
    base = float(np.mean(control))
    difference = float(np.mean(treatment)) - base
    lift = difference / base if base else None
    if np.ptp(control) == 0 and np.ptp(treatment) == 0:  # no variance: the test is undefined
        return Comparison(difference, difference, difference, 1.0 if difference == 0 else 0.0, lift)
    test = stats.ttest_ind(treatment, control, equal_var=False)
    interval = test.confidence_interval(0.95)
    return Comparison(difference, float(interval.low), float(interval.high), float(test.pvalue), lift)


def sample_ratio(control: int, treatment: int, share: float) -> float | None:
    """Return the chi-square p-value of the arms' user counts against the configured share."""
    total = control + treatment
    if total == 0:
        return None
    return float(stats.chisquare([control, treatment], [total * (1 - share), total * share]).pvalue)
