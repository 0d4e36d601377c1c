"""MovieLens 1M data: the file format, the official download and a synthetic generator."""

from ml.movielens.format import (
    AGE_BUCKETS,
    GENRES,
    OCCUPATIONS,
    Dataset,
    MalformedDataError,
    Movie,
    Ratings,
    User,
    load_dataset,
    read_movies,
    read_ratings,
    read_users,
)

__all__ = [
    "AGE_BUCKETS",
    "GENRES",
    "OCCUPATIONS",
    "Dataset",
    "MalformedDataError",
    "Movie",
    "Ratings",
    "User",
    "load_dataset",
    "read_movies",
    "read_ratings",
    "read_users",
]
