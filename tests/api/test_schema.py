"""The database itself enforces the rules: rating range, one rating per (user, movie), no silent loss."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from api.movies.models import Movie, movie_genres
from api.ratings.models import Rating
from api.users.models import User
from api.versions.models import ModelVersion

WHEN = datetime(2001, 1, 1, 12, 0, 0)


@pytest.fixture
def user_and_movie(session: Session) -> tuple[int, int]:
    session.add(User(id=1, gender="F", age=25, occupation_id=12, zip_code="02139"))
    session.add(Movie(id=10, title="Toy Story (1995)", year=1995))
    session.flush()
    session.execute(insert(movie_genres).values(movie_id=10, genre_id=3))
    return 1, 10


def _rate(session: Session, rating: int) -> None:
    with session.begin_nested():
        session.execute(insert(Rating).values(user_id=1, movie_id=10, rating=rating, rated_at=WHEN))


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_rating_outside_1_to_5_is_rejected(
    session: Session, user_and_movie: tuple[int, int], rating: int
) -> None:
    with pytest.raises((IntegrityError, DBAPIError)):
        _rate(session, rating)
    assert session.execute(select(Rating)).first() is None


@pytest.mark.parametrize("rating", [1, 5])
def test_rating_bounds_are_accepted(session: Session, user_and_movie: tuple[int, int], rating: int) -> None:
    _rate(session, rating)
    assert session.execute(select(Rating.rating)).scalar_one() == rating


def test_duplicate_user_movie_pair_is_rejected(session: Session, user_and_movie: tuple[int, int]) -> None:
    _rate(session, 4)
    with pytest.raises(IntegrityError):
        _rate(session, 3)
    assert session.execute(select(Rating.rating)).scalars().all() == [4]


def test_deleting_a_rated_user_or_movie_is_refused(session: Session, user_and_movie: tuple[int, int]) -> None:
    _rate(session, 4)
    for statement in (delete(User).where(User.id == 1), delete(Movie).where(Movie.id == 10)):
        with pytest.raises(IntegrityError), session.begin_nested():
            session.execute(statement)
    assert session.execute(select(Rating.rating)).scalar_one() == 4


def test_deleting_an_unrated_movie_takes_its_genre_links(
    session: Session, user_and_movie: tuple[int, int]
) -> None:
    session.execute(delete(Movie).where(Movie.id == 10))
    assert session.execute(select(movie_genres)).first() is None


def test_unknown_occupation_is_rejected(session: Session) -> None:
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(insert(User).values(id=2, gender="M", age=25, occupation_id=99, zip_code="1"))


def test_only_one_model_version_can_be_active(session: Session) -> None:
    session.add(ModelVersion(status="succeeded", params={}, is_active=True))
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(ModelVersion(status="succeeded", params={}, is_active=True))
        session.flush()
    session.add(ModelVersion(status="failed", params={}, is_active=None))
    session.add(ModelVersion(status="queued", params={}, is_active=None))
    session.flush()
    assert session.execute(select(ModelVersion.id).where(ModelVersion.is_active)).scalars().all() != []


def test_titles_keep_full_unicode(session: Session) -> None:
    title = "Amélie ✨ 千と千尋の神隠し (2001)"
    session.add(Movie(id=11, title=title, year=2001))
    session.flush()
    assert session.execute(select(Movie.title).where(Movie.id == 11)).scalar_one() == title
