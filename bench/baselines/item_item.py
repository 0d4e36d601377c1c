"""Item-to-item baselines, scored as (the user's rated movies) @ W: EASE and ItemKNN.

- **EASE** (Steck 2019, "Embarrassingly Shallow Autoencoders"): W = -P / diag(P) with
  P = (XᵀX + λI)⁻¹ and a zero diagonal, the closed-form ridge regression of every movie on all
  the others.
- **ItemKNN**: W is the cosine similarity of movie columns, each movie keeping only its `k`
  most similar movies.

Both are fitted on the training events only, as a binary user × movie matrix (rated or not), and
score a held-out event from every movie the user rated before it. Their one hyperparameter (λ,
k) is chosen on the validation split by full-ranking NDCG@10; test metrics are then computed
once, by the caller, with the chosen value. Dense matrices: meant for MovieLens-1M-sized
catalogues (3,706 movies: a 55 MB weight matrix), as benchmark baselines, not for serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ml.evaluate import ScoreFn, full_ranking_metrics
from ml.split import Timeline

EASE_LAMBDAS = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
KNN_NEIGHBOURS = (20, 50, 100, 200, 400, 800)


@dataclass(frozen=True)
class ItemItemModel:
    """A fitted weight matrix, the hyperparameter value chosen and what the others gave on validation."""

    name: str
    parameter: float
    weights: npt.NDArray[np.float32]  # (n_movies, n_movies): score = rated-movie indicator @ weights
    fit_seconds: float  # every fit of the search and its validation scoring
    validation: dict[float, float] = field(default_factory=dict)  # value -> full-ranking NDCG@10

    def scorer(self, timeline: Timeline) -> ScoreFn:
        """Return a score function over every movie row, from the movies rated before each event."""

        def score(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
            return rated_before_matrix(timeline, positions, self.weights.shape[0]) @ self.weights

        return score


def rated_before_matrix(
    timeline: Timeline, positions: npt.NDArray[np.int64], n_movies: int
) -> npt.NDArray[np.float32]:
    """Return a (len(positions), n_movies) 0/1 matrix of the movies each event's user rated before it."""
    rows, events = timeline.events_before(positions)
    matrix = np.zeros((positions.size, n_movies), dtype=np.float32)
    matrix[rows, timeline.movie_row[events]] = 1.0
    return matrix


def training_gram(timeline: Timeline, n_users: int, n_movies: int) -> npt.NDArray[np.float64]:
    """Return XᵀX of the binary user × movie matrix of training events (a movie rated twice counts once)."""
    x = np.zeros((n_users, n_movies), dtype=np.float32)
    x[timeline.user_row[timeline.train], timeline.movie_row[timeline.train]] = 1.0
    return (x.T @ x).astype(np.float64)


def ease_weights(gram: npt.NDArray[np.float64], lam: float) -> npt.NDArray[np.float32]:
    """Return EASE's closed-form weights for regularisation λ (Steck 2019, algorithm 1)."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def knn_weights(gram: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float32]:
    """Return cosine similarities of movie columns, keeping each target movie's k most similar movies."""
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    sim = (gram / norms[:, None] / norms[None, :]).astype(np.float32)
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:
        # column j scores movie j: keep its k largest entries (the neighbours that vote for it)
        drop = np.argpartition(-sim, k, axis=0)[k:]
        np.put_along_axis(sim, drop, 0.0, axis=0)
    return sim


def fit_ease(
    timeline: Timeline, n_users: int, n_movies: int, lambdas: Sequence[float] = EASE_LAMBDAS
) -> ItemItemModel:
    """Return EASE with λ chosen on the validation split."""
    return _search("ease", timeline, n_users, n_movies, lambdas, ease_weights)


def fit_item_knn(
    timeline: Timeline, n_users: int, n_movies: int, neighbours: Sequence[int] = KNN_NEIGHBOURS
) -> ItemItemModel:
    """Return ItemKNN with the neighbour count chosen on the validation split."""
    return _search("itemknn", timeline, n_users, n_movies, neighbours, lambda g, k: knn_weights(g, int(k)))


def _search(
    name: str,
    timeline: Timeline,
    n_users: int,
    n_movies: int,
    values: Sequence[float],
    weights_for: Callable[[npt.NDArray[np.float64], float], npt.NDArray[np.float32]],
) -> ItemItemModel:
    started = time.perf_counter()
    gram = training_gram(timeline, n_users, n_movies)
    candidates = np.unique(timeline.movie_row)
    best: ItemItemModel | None = None
    scores: dict[float, float] = {}
    for value in values:
        trial = ItemItemModel(name, float(value), weights_for(gram, value), 0.0)
        scores[float(value)] = full_ranking_metrics(
            trial.scorer(timeline), timeline, timeline.valid, candidates
        )["ndcg@10"]
        if best is None or scores[float(value)] > scores[best.parameter]:
            best = trial
    assert best is not None, "no hyperparameter value to try"
    return ItemItemModel(name, best.parameter, best.weights, time.perf_counter() - started, scores)
