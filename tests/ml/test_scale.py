"""The ML-25M-shaped generator: exact counts, distinct pairs, the release's star shares, readable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.movielens.layouts import load
from ml.movielens.scale import MIN_PER_USER, STAR_SHARES, Shape, write_ml25m_shaped


def test_a_small_ml25m_shaped_dataset_reads_as_a_movielens_csv_release(tmp_path: Path) -> None:
    shape = write_ml25m_shaped(tmp_path, scale=0.01, seed=1)
    assert shape == Shape.ml25m(0.01) == Shape(1625, 624, 250_001)
    loaded = load(tmp_path)
    assert loaded.layout.name == "movielens-csv"
    r = loaded.dataset.ratings
    assert len(r) == shape.ratings and len(loaded.dataset.movies) == shape.movies
    per_user = np.bincount(r.user_id)[1:]
    assert per_user.size == shape.users and per_user.min() >= MIN_PER_USER
    assert np.unique(r.user_id.astype(np.int64) * 1_000_000 + r.movie_id).size == len(r)  # no pair twice
    stars, counts = np.unique(r.rating, return_counts=True)
    assert stars.tolist() == [s / 2 for s in range(1, 11)]
    assert np.allclose(counts / len(r), STAR_SHARES / STAR_SHARES.sum(), atol=0.002)
    per_movie = np.bincount(r.movie_id, minlength=shape.movies + 1)[1:]
    assert per_movie.max() > 5 * np.median(per_movie)  # a long tail of little-rated movies


def test_a_shape_no_catalogue_can_hold_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot give"):
        write_ml25m_shaped(tmp_path, scale=0.004)  # 650 users, 250 movies: at most 125 ratings each


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    write_ml25m_shaped(tmp_path / "a", scale=0.01, seed=4)
    write_ml25m_shaped(tmp_path / "b", scale=0.01, seed=4)
    for name in ("ratings.csv", "movies.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
