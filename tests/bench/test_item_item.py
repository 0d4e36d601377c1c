"""EASE and ItemKNN baselines: the closed form, the neighbour cut, the history they read, the search."""

from __future__ import annotations

import numpy as np
import pytest

from bench.baselines.item_item import (
    ease_weights,
    fit_ease,
    fit_item_knn,
    knn_weights,
    rated_before_matrix,
    training_gram,
)
from bench.baselines.popularity import popularity_scorer
from ml.evaluate import Protocol
from ml.movielens.format import Dataset
from ml.split import Timeline, build_timeline
from tests.ml.conftest import synthetic_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return synthetic_dataset(tmp_path_factory.mktemp("synthetic"), movies=150)


@pytest.fixture(scope="module")
def timeline(dataset: Dataset) -> Timeline:
    return build_timeline(dataset)


def test_ease_weights_are_the_ridge_regression_of_each_movie_on_the_others() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 7)) < 0.4).astype(np.float64)
    lam = 3.0
    weights = ease_weights(x.T @ x, lam)
    assert np.all(np.diag(weights) == 0.0)
    for j in range(7):
        others = [i for i in range(7) if i != j]
        a = x[:, others]
        expected = np.linalg.solve(a.T @ a + lam * np.eye(6), a.T @ x[:, j])
        np.testing.assert_allclose(weights[others, j], expected, rtol=1e-4, atol=1e-5)


def test_item_knn_keeps_each_movies_k_most_similar_movies() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((60, 9)) < 0.5).astype(np.float64)
    gram = x.T @ x
    full = knn_weights(gram, 9)
    norms = np.linalg.norm(x, axis=0)
    cosine = gram / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0.0)
    np.testing.assert_allclose(full, cosine, rtol=1e-5)
    cut = knn_weights(gram, 3)
    for j in range(9):
        kept = np.flatnonzero(cut[:, j])
        assert kept.size == 3
        # the three kept are the three largest of the column (ties aside)
        assert cut[kept, j].min() >= np.sort(cosine[:, j])[-3] - 1e-6
        np.testing.assert_allclose(cut[kept, j], cosine[kept, j], rtol=1e-5)


def test_the_history_matrix_holds_exactly_the_movies_rated_before_each_event(
    dataset: Dataset, timeline: Timeline
) -> None:
    positions = np.concatenate([timeline.test[:15], timeline.valid[:15], timeline.train[:15]])
    matrix = rated_before_matrix(timeline, positions, len(dataset.movies))
    for row, position in zip(matrix, positions, strict=True):
        rated_before = timeline.movie_row[timeline.user_start[position] : position]
        assert set(np.flatnonzero(row)) == set(rated_before.tolist())
        assert timeline.movie_row[position] not in np.flatnonzero(row)


def test_the_training_matrix_leaves_out_validation_and_test_ratings(
    dataset: Dataset, timeline: Timeline
) -> None:
    gram = training_gram(timeline, len(dataset.users), len(dataset.movies))
    counts = np.bincount(timeline.movie_row[timeline.train], minlength=len(dataset.movies))
    np.testing.assert_array_equal(np.diag(gram), counts)  # the diagonal counts each movie's raters


@pytest.mark.parametrize("fit", [fit_ease, fit_item_knn])
def test_the_hyperparameter_is_the_one_best_on_validation(
    fit: object, dataset: Dataset, timeline: Timeline
) -> None:
    values = (1.0, 50.0, 2000.0) if fit is fit_ease else (2, 20, 140)
    model = fit(timeline, len(dataset.users), len(dataset.movies), values)  # type: ignore[operator]
    assert set(model.validation) == {float(v) for v in values}
    assert model.validation[model.parameter] == max(model.validation.values())
    assert len(set(model.validation.values())) > 1  # the values tried made a difference
    test = Protocol(timeline, timeline.test, negatives=50, seed=0)
    ours = test.evaluate(model.scorer(timeline))
    # ranking 20 of ~150 unrated movies at random finds the held-out one about 13% of the time
    assert ours["recall@20"] > 0.3
    if fit is fit_ease:  # the synthetic tastes are mostly popularity; EASE still finds more
        popular = test.evaluate(popularity_scorer(timeline, len(dataset.movies)))
        assert ours["recall@20"] > popular["recall@20"] and ours["hr@10"] > popular["hr@10"]
