"""Read the database's users, movies and ratings into the ml library's Dataset."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.movies.models import Movie as MovieRow
from api.movies.service import genres_by_movie, tags_by_movie
from api.ratings.models import Rating
from api.users.models import User as UserRow
from ml.movielens import Dataset, Movie, Ratings, User

_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


def load_training_data(*, session: Session) -> Dataset:
    """Return every user, movie (with its description and tags) and rating as a Dataset (timestamps in
    UTC seconds)."""
    users = [
        User(u.id, u.gender, u.age, u.occupation_id, u.zip_code)
        for u in session.execute(select(UserRow).order_by(UserRow.id)).scalars()
    ]
    movie_rows = list(session.execute(select(MovieRow).order_by(MovieRow.id)).scalars())
    genres = genres_by_movie(session=session, ids=[m.id for m in movie_rows])
    tags = tags_by_movie(session=session, ids=[m.id for m in movie_rows])
    movies = [
        Movie(m.id, m.title, m.year, tuple(genres.get(m.id, ())), m.description, tuple(tags.get(m.id, ())))
        for m in movie_rows
    ]
    rows = session.execute(select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.rated_at)).all()
    if rows:
        user_id, movie_id, rating, rated_at = zip(*rows, strict=True)
        stamps = (np.asarray(rated_at, dtype="datetime64[s]") - _EPOCH).astype(np.int64)
    else:
        user_id = movie_id = rating = ()
        stamps = np.empty(0, np.int64)
    ratings = Ratings(
        user_id=np.asarray(user_id, np.int32),
        movie_id=np.asarray(movie_id, np.int32),
        rating=np.asarray(rating, np.float32),  # half stars too
        timestamp=stamps,
    )
    return Dataset(users=users, movies=movies, ratings=ratings)
