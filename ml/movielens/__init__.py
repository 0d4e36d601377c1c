"""Datasets: the ML-1M format, its official download and a synthetic generator; the other layouts
the import reads (ML-100K, the MovieLens CSV releases, a generic CSV layout) are in layouts.py."""

from ml.movielens.download import DownloadError, download_ml1m
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
from ml.movielens.synthetic import write_synthetic

__all__ = [
    "AGE_BUCKETS",
    "GENRES",
    "OCCUPATIONS",
    "Dataset",
    "DownloadError",
    "MalformedDataError",
    "Movie",
    "Ratings",
    "User",
    "download_ml1m",
    "load_dataset",
    "read_movies",
    "read_ratings",
    "read_users",
    "write_synthetic",
]
