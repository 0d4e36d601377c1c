"""An experiment's results count what users did within the window after each list they were shown."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from api.experiments.models import Feedback, Impression
from api.experiments.results import experiment_results
from api.movies.models import Movie
from api.ratings.models import Rating
from api.users.models import User
from api.versions.models import Experiment

WINDOW_S = 3600
SHOWN_AT = datetime(2026, 12, 7, 23, 30, 0, 600_000)  # the window crosses midnight


def test_feedback_and_ratings_count_within_the_window_only(session: Session) -> None:
    experiment = Experiment(
        name="window", control_version_id=1, treatment_version_id=2, treatment_share=0.5, salt="s",
        started_by="tests", started_at=SHOWN_AT - timedelta(minutes=1),
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
            version_id=1 if arm == "control" else 2, movie_ids="11,12,13", shown_at=SHOWN_AT,
        )  # fmt: skip
        session.add(impression)
        session.flush()
        if click is not None:
            session.add(Feedback(impression_id=impression.id, user_id=user_id, movie_id=12, kind="click",
                                 at=SHOWN_AT + click))  # fmt: skip
        if rating is not None:
            session.add(Rating(user_id=user_id, movie_id=13, rating=5.0,
                               rated_at=(SHOWN_AT + rating).replace(microsecond=0)))  # fmt: skip
    session.flush()

    results = experiment_results(session=session, experiment=experiment, window_s=WINDOW_S)

    control, treatment = results.arms["control"], results.arms["treatment"]
    assert (control.users, control.impressions, control.positive_impressions) == (3, 3, 2)
    assert (treatment.users, treatment.impressions, treatment.positive_impressions) == (4, 4, 2)
    assert control.positive_rate == 2 / 3 and treatment.positive_rate == 2 / 4
    assert treatment.ratings == [5.0, 5.0]  # the late one is outside the window
