"""Tests of the synthetic ML-1M generator: determinism, sizes, format and learnable structure."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from ml.features import text_tokens
from ml.movielens.format import GENRES, Dataset, Ratings
from ml.movielens.layouts import load, load_ml1m
from ml.movielens.synthetic import FIRST_TIMESTAMP, HIDDEN_FILE, LAST_TIMESTAMP, HiddenTastes, write_synthetic

FILES = ("users.dat", "movies.dat", "ratings.dat")


def digests(directory: Path) -> dict[str, str]:
    """Return the sha256 of each data file in directory."""
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in FILES}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Return a default-sized synthetic dataset, loaded through the real reader."""
    return load_ml1m(write_synthetic(tmp_path_factory.mktemp("synthetic")))


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    first = write_synthetic(tmp_path / "a", users=120, movies=90, seed=7)
    second = write_synthetic(tmp_path / "b", users=120, movies=90, seed=7)
    assert digests(first) == digests(second)


def test_different_seed_writes_different_files(tmp_path: Path) -> None:
    first = digests(write_synthetic(tmp_path / "a", users=120, movies=90, seed=1))
    second = digests(write_synthetic(tmp_path / "b", users=120, movies=90, seed=2))
    assert all(first[name] != second[name] for name in FILES)


def test_sizes_follow_the_arguments(tmp_path: Path) -> None:
    data = load_ml1m(write_synthetic(tmp_path, users=150, movies=80, ratings_per_user=(5, 30), seed=3))
    assert [u.id for u in data.users] == list(range(1, 151))
    assert len(data.movies) == 80
    per_user = np.bincount(data.ratings.user_id, minlength=151)[1:]
    assert per_user.min() >= 5 and per_user.max() <= 30
    assert per_user.min() < per_user.max()  # counts vary between users


@pytest.mark.slow
def test_ml1m_size_is_reached(tmp_path: Path) -> None:
    directory = write_synthetic(tmp_path, users=6040, movies=3900, ratings_per_user=(20, 700))
    lines = (directory / "ratings.dat").read_bytes().count(b"\n")
    assert 900_000 < lines < 1_400_000


def test_users_may_rate_every_movie(tmp_path: Path) -> None:
    data = load_ml1m(write_synthetic(tmp_path, users=10, movies=12, ratings_per_user=(12, 50)))
    assert np.all(np.bincount(data.ratings.user_id)[1:] == 12)


def test_hidden_tastes_leave_the_data_as_it_was(tmp_path: Path) -> None:
    plain = write_synthetic(tmp_path / "a", users=120, movies=90, seed=7)
    with_tastes = write_synthetic(tmp_path / "b", users=120, movies=90, seed=7, hidden=True)
    assert digests(plain) == digests(with_tastes)
    assert not (plain / HIDDEN_FILE).exists() and (with_tastes / HIDDEN_FILE).is_file()


def test_hidden_tastes_are_what_made_the_ratings(tmp_path: Path) -> None:
    directory = write_synthetic(tmp_path, users=300, movies=150, seed=4, hidden=True)
    tastes, ratings = HiddenTastes.load(directory), load_ml1m(directory).ratings
    rng = np.random.default_rng(0)
    strangers = tastes.affinity(rng.integers(1, 301, 20_000), rng.choice(tastes.movie_ids, 20_000))
    assert abs(strangers.mean()) < 0.05 and abs(strangers.std() - 1) < 0.05  # standardised over pairs
    # users chose movies by taste: the pairs rated match far better than pairs drawn at random
    assert tastes.affinity(ratings.user_id, ratings.movie_id).mean() > 0.5
    stars = tastes.stars(rng, ratings.user_id, ratings.movie_id)
    assert np.all(
        np.abs(np.bincount(stars, minlength=6)[1:] / stars.size - [0.056, 0.108, 0.261, 0.349, 0.226]) < 0.02
    )
    assert np.corrcoef(stars, ratings.rating)[0, 1] > 0.5  # drawn again with other noise: alike, not equal
    with pytest.raises(ValueError, match="not one of the generated movies"):
        tastes.affinity(np.asarray([1]), np.asarray([tastes.movie_ids.max() + 1]))


def test_impossible_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only 10"):
        write_synthetic(tmp_path, movies=10, ratings_per_user=(20, 30))
    with pytest.raises(ValueError, match="1 <= low <= high"):
        write_synthetic(tmp_path, ratings_per_user=(30, 20))


def test_files_look_like_ml1m(dataset: Dataset) -> None:
    assert {u.gender for u in dataset.users} == {"F", "M"}
    assert len({u.age for u in dataset.users}) == 7
    assert len({u.occupation for u in dataset.users}) >= 15
    assert all(len(u.zip_code) == 5 and u.zip_code.isdigit() for u in dataset.users)
    years = np.asarray([m.year for m in dataset.movies])
    assert years.min() >= 1920 and years.max() <= 2000
    assert np.median(years) >= 1985  # skewed towards recent films, as in ML-1M
    assert all(1 <= len(m.genres) <= 3 and set(m.genres) <= set(GENRES) for m in dataset.movies)
    assert len({m.title for m in dataset.movies}) == len(dataset.movies)
    assert any(m.title.endswith(f", The ({m.year})") for m in dataset.movies)
    shares = np.bincount(dataset.ratings.rating.astype(np.int64), minlength=6)[1:] / len(dataset.ratings)
    assert np.all(np.abs(shares - [0.056, 0.108, 0.261, 0.349, 0.226]) < 0.01)


def test_titles_use_latin1(tmp_path: Path) -> None:
    directory = write_synthetic(tmp_path, movies=400)
    raw = (directory / "movies.dat").read_bytes()
    assert "é".encode("latin-1") in raw
    assert any("é" in m.title for m in load_ml1m(directory).movies)


def test_timestamps_increase_within_each_user(dataset: Dataset) -> None:
    ratings = dataset.ratings
    order = np.lexsort((ratings.timestamp, ratings.user_id))
    users, times = ratings.user_id[order], ratings.timestamp[order]
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(times)[same_user] > 0)
    assert times.min() >= FIRST_TIMESTAMP and times.max() <= LAST_TIMESTAMP


def by_user_in_time(ratings: Ratings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return each user's (movie ids, stars), oldest rating first."""
    order = np.lexsort((ratings.timestamp, ratings.user_id))
    users = ratings.user_id[order]
    cuts = np.flatnonzero(np.diff(users)) + 1
    return list(
        zip(np.split(ratings.movie_id[order], cuts), np.split(ratings.rating[order], cuts), strict=True)
    )


def genre_matrix(dataset: Dataset) -> tuple[dict[int, int], np.ndarray]:
    """Return movie id -> row, and the (movies, genres) 0/1 matrix."""
    rows = {m.id: i for i, m in enumerate(dataset.movies)}
    matrix = np.asarray([[g in m.genres for g in GENRES] for m in dataset.movies], dtype=np.float64)
    return rows, matrix


def last_item_percentile(dataset: Dataset) -> float:
    """Return the mean percentile of each user's last movie among the unseen, by the user's genre lift.

    The lift is over the genre shares of all ratings, so popularity alone scores about 0.5.
    """
    rows, genres = genre_matrix(dataset)
    overall = genres[[rows[m] for m in dataset.ratings.movie_id.tolist()]].mean(axis=0) + 1e-3
    percentiles = []
    for movies, _ in by_user_in_time(dataset.ratings):
        history = [rows[m] for m in movies[:-1].tolist()]
        lift = np.log((genres[history].mean(axis=0) + 1e-3) / overall)
        score = genres @ lift / genres.sum(axis=1)
        candidates = np.ones(len(rows), dtype=bool)
        candidates[history] = False
        target = score[rows[int(movies[-1])]]
        others = score[candidates]
        percentiles.append(((others < target).sum() + 0.5 * (others == target).sum()) / others.size)
    return float(np.mean(percentiles))


def later_rating_correlation(dataset: Dataset) -> float:
    """Return the correlation of later ratings with a genre-preference guess from the earlier 70%."""
    rows, genres = genre_matrix(dataset)
    guesses, truths = [], []
    for movies, stars in by_user_in_time(dataset.ratings):
        split = int(0.7 * len(movies))
        early = genres[[rows[m] for m in movies[:split].tolist()]]
        deviation = stars[:split] - stars[:split].mean()
        preference = (early * deviation[:, None]).sum(axis=0) / (early.sum(axis=0) + 3.0)
        late = genres[[rows[m] for m in movies[split:].tolist()]]
        guesses.append(late @ preference / late.sum(axis=1))
        truths.append(stars[split:] - stars[:split].mean())
    return float(np.corrcoef(np.concatenate(guesses), np.concatenate(truths))[0, 1])


def test_history_predicts_the_last_movie_chosen(dataset: Dataset) -> None:
    assert last_item_percentile(dataset) > 0.58  # a structureless control scores 0.5 +- 0.04


def test_history_predicts_later_ratings(dataset: Dataset) -> None:
    assert later_rating_correlation(dataset) > 0.15


def test_the_structure_checks_fail_on_structureless_ratings(dataset: Dataset) -> None:
    rng = np.random.default_rng(0)
    ratings = dataset.ratings
    shuffled = Ratings(ratings.user_id, rng.permutation(ratings.movie_id), ratings.rating, ratings.timestamp)
    broken = Dataset(dataset.users, dataset.movies, shuffled)
    assert abs(last_item_percentile(broken) - 0.5) < 0.05
    assert abs(later_rating_correlation(broken)) < 0.05
    stars = Ratings(ratings.user_id, ratings.movie_id, rng.permutation(ratings.rating), ratings.timestamp)
    assert abs(later_rating_correlation(Dataset(dataset.users, dataset.movies, stars))) < 0.05


def _centred_cosines(matrix: np.ndarray) -> np.ndarray:
    """Return the cosine similarity of every pair of rows after centring each column."""
    centred = matrix - matrix.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = centred / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def test_text_is_the_same_data_in_csv_with_descriptions_and_tags_that_tell_taste(
    tmp_path: Path, dataset: Dataset
) -> None:
    loaded = load(write_synthetic(tmp_path, text=True))
    assert loaded.layout.name == "csv" and loaded.notes == []
    data = loaded.dataset
    assert data.users == dataset.users
    assert [dataclasses.replace(m, description=None, tags=()) for m in data.movies] == dataset.movies
    for name in ("user_id", "movie_id", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(data.ratings, name), getattr(dataset.ratings, name))
    described = sum(m.description is not None for m in data.movies) / len(data.movies)
    assert 0.75 < described < 0.95 and sum(bool(m.tags) for m in data.movies) > len(data.movies) // 2
    # Movies whose text is alike have raters alike, about as much as movies whose genres are alike.
    rows = {m.id: i for i, m in enumerate(data.movies)}
    raters = np.zeros((len(data.movies), len(data.users)))
    raters[[rows[m] for m in data.ratings.movie_id.tolist()], data.ratings.user_id - 1] = 1.0
    tokens = sorted({t for m in data.movies for t in text_tokens(m.description, m.tags)})
    column = {t: i for i, t in enumerate(tokens)}
    words = np.zeros((len(data.movies), len(tokens)))
    for row, m in enumerate(data.movies):
        for token in text_tokens(m.description, m.tags):
            words[row, column[token]] += 1
    pairs = np.triu_indices(len(data.movies), 1)
    alike = _centred_cosines(raters)[pairs]
    told = np.corrcoef(alike, _centred_cosines(words)[pairs])[0, 1]
    shuffled = np.corrcoef(
        alike, _centred_cosines(words[np.random.default_rng(0).permutation(len(words))])[pairs]
    )
    _rows, genres = genre_matrix(data)
    assert told > 0.08 and abs(shuffled[0, 1]) < 0.03
    assert told > 0.5 * np.corrcoef(alike, _centred_cosines(genres)[pairs])[0, 1]
