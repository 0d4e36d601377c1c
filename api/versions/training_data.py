"""Read the database's users, movies and ratings into the ml library's Dataset."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import epoch_seconds
from api.movies.models import Movie as MovieRow
from api.movies.service import genres_by_movie, tags_by_movie
from api.ratings.models import Rating
from api.users.models import Occupation
from api.users.models import User as UserRow
from ml.movielens.format import Dataset, Movie, Ratings, User

# Ratings are read this many rows at a time, each chunk straight into typed arrays: at ML-25M's size
# one list of row objects takes several times the memory (docs/figures.md).
RATINGS_CHUNK = 200_000


def load_training_data(*, session: Session) -> Dataset:
    """Return every user, movie (with description and tags) and rating as a Dataset (UTC seconds), its
    occupations the database's."""
    users = [
        User(u.id, u.gender, u.age, u.occupation_id, u.zip_code)
        for u in session.execute(select(UserRow).order_by(UserRow.id)).scalars()
    ]
    occupations = dict(session.execute(select(Occupation.id, Occupation.name)).all())
    return Dataset(
        users=users,
        movies=read_movies(session=session),
        ratings=read_ratings(session=session),
        occupations=occupations,
    )


def read_movies(*, session: Session) -> list[Movie]:
    """Return every movie by id, with its genres (alphabetically), description and tags."""
    rows = list(session.execute(select(MovieRow).order_by(MovieRow.id)).scalars())
    genres = genres_by_movie(session=session, ids=[m.id for m in rows])
    tags = tags_by_movie(session=session, ids=[m.id for m in rows])
    return [
        Movie(m.id, m.title, m.year, tuple(genres.get(m.id, ())), m.description, tuple(tags.get(m.id, ())))
        for m in rows
    ]


def read_ratings(*, session: Session) -> Ratings:
    """Return every rating as typed arrays, streamed RATINGS_CHUNK rows at a time (seconds computed by
    the database: no datetime objects)."""
    query = select(Rating.user_id, Rating.movie_id, Rating.rating, epoch_seconds(Rating.rated_at))
    types = (np.int32, np.int32, np.float32, np.int64)  # half stars are floats
    parts: tuple[list[np.ndarray], ...] = ([], [], [], [])
    for rows in session.execute(query.execution_options(yield_per=RATINGS_CHUNK)).partitions():
        for kept, values, kind in zip(parts, zip(*rows, strict=True), types, strict=True):
            kept.append(np.asarray(values, dtype=kind))
    return Ratings(
        *(np.concatenate([np.empty(0, kind), *kept]) for kept, kind in zip(parts, types, strict=True))
    )
