"""The small synthetic dataset the model tests train on: taste-structured, read by the real reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.movielens.format import Dataset
from ml.movielens.layouts import load_ml1m
from ml.movielens.synthetic import write_synthetic


def synthetic_dataset(directory: Path, *, movies: int = 200) -> Dataset:
    """Return 300 users' 20 to 60 ratings each of `movies` movies, written and read back."""
    return load_ml1m(write_synthetic(directory, users=300, movies=movies, ratings_per_user=(20, 60)))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Shared by every module that trains on it (none changes it: datasets are frozen)."""
    return synthetic_dataset(tmp_path_factory.mktemp("synthetic"))
