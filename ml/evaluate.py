"""Ranking metrics (pure functions) and the two evaluation protocols, for any score function: it maps
event positions (the user state is everything before them) to (len(positions), n_movies) scores."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ml.split import InsufficientDataError, Timeline

log = logging.getLogger(__name__)

ScoreFn = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.floating]]
_CHUNK = 1024


def hr_at_k(ranks: npt.ArrayLike, k: int) -> float:
    """Return the share of queries whose held-out item ranks in the top k (ranks are 0-based)."""
    r = np.asarray(ranks)
    return float(np.mean(r < k)) if r.size else 0.0


def ndcg_at_k(ranks: npt.ArrayLike, k: int) -> float:
    """Return the mean NDCG@k of one relevant item per query: 1 / log2(rank + 2) inside the top k, else 0."""
    r = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0))) if r.size else 0.0


def rank_of_target(scores: npt.NDArray[np.floating], target: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return each row's 0-based rank of the target column; ties count against the target, NaN ranks last."""
    scores = np.where(np.isnan(scores), -np.inf, scores)
    picked = np.take_along_axis(scores, target[:, None], axis=1)
    return (scores >= picked).sum(axis=1) - 1


def sample_negatives(
    timeline: Timeline,
    positions: npt.NDArray[np.int64],
    candidates: npt.NDArray[np.int64],
    count: int,
    seed: int,
) -> npt.NDArray[np.int64]:
    """Return (len(positions), count) movie rows each user never rated, drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    out = np.empty((positions.size, count), dtype=np.int64)
    for i, p in enumerate(positions):
        end = np.searchsorted(timeline.user_row, timeline.user_row[p], side="right")  # past the user's events
        pool = np.setdiff1d(candidates, timeline.movie_row[timeline.user_start[p] : end])  # never rated
        if pool.size < count:
            raise ValueError(f"user has only {pool.size} unrated movies; {count} negatives requested")
        out[i] = rng.choice(pool, size=count, replace=False)
    return out


def ncf_metrics(
    score_fn: ScoreFn, positions: npt.NDArray[np.int64], targets: npt.NDArray[np.int64], negatives: np.ndarray
) -> dict[str, float]:
    """Return HR@10 and NDCG@10 of each target ranked against its sampled negatives (He et al. 2017)."""
    ranks = []
    for s in range(0, positions.size, _CHUNK):
        cand = np.concatenate([targets[s : s + _CHUNK, None], negatives[s : s + _CHUNK]], axis=1)
        scores = np.take_along_axis(score_fn(positions[s : s + _CHUNK]), cand, axis=1)
        ranks.append(rank_of_target(scores, np.zeros(len(cand), dtype=np.int64)))  # the target is column 0
    r = np.concatenate(ranks)
    return {"hr@10": hr_at_k(r, 10), "ndcg@10": ndcg_at_k(r, 10)}


def full_ranking_metrics(
    score_fn: ScoreFn, timeline: Timeline, positions: npt.NDArray[np.int64], candidates: npt.NDArray[np.int64]
) -> dict[str, float]:
    """Return Recall and NDCG at 10 and 20 of each target against every candidate the user had not rated."""
    ranks = []
    for s in range(0, positions.size, _CHUNK):
        chunk = positions[s : s + _CHUNK]
        scores = np.array(score_fn(chunk), dtype=np.float64)
        scores[:, ~np.isin(np.arange(scores.shape[1]), candidates)] = -np.inf
        rows, events = timeline.events_before(chunk)
        scores[rows, timeline.movie_row[events]] = -np.inf  # what the user rated before
        ranks.append(rank_of_target(scores, timeline.movie_row[chunk]))
    r = np.concatenate(ranks)  # one held-out item per user: recall@k is the hit rate
    return {f"recall@{k}": hr_at_k(r, k) for k in (10, 20)} | {f"ndcg@{k}": ndcg_at_k(r, k) for k in (10, 20)}


class Protocol:
    """The held-out queries of one split (test or validation), of at most `users` users (0: all), with
    negatives fixed once by seed."""

    def __init__(
        self,
        timeline: Timeline,
        positions: npt.NDArray[np.int64],
        *,
        negatives: int,
        seed: int,
        users: int = 0,
    ) -> None:
        if 0 < users < positions.size:
            positions = np.sort(np.random.default_rng(seed).choice(positions, size=users, replace=False))
        self.timeline, self.positions = timeline, positions
        self.candidates = np.unique(timeline.movie_row)  # every movie anyone rated
        n_movies = int(timeline.movie_row.max()) + 1
        pairs = np.unique(timeline.user_row * n_movies + timeline.movie_row)  # distinct (user, movie)
        distinct_rated = np.bincount(pairs // n_movies, minlength=int(timeline.user_row.max()) + 1)
        fewest = self.candidates.size - int(distinct_rated[timeline.user_row[positions]].max())
        if fewest < 1:
            raise InsufficientDataError(
                "a user rated every movie: no unrated movie to rank the held-out one against"
            )
        if fewest < negatives:  # a small catalogue: every user gets as many negatives as the fewest can
            log.warning(
                "%d sampled negatives per user instead of %d: a user left only that many unrated",
                fewest,
                negatives,
            )
        self.negatives = sample_negatives(timeline, positions, self.candidates, min(negatives, fewest), seed)

    def evaluate(self, score_fn: ScoreFn) -> dict[str, float]:
        """Return hr@10, ndcg@10 (NCF protocol) and recall@10/20, ndcg@20 (full ranking)."""
        ncf = ncf_metrics(score_fn, self.positions, self.timeline.movie_row[self.positions], self.negatives)
        full = full_ranking_metrics(score_fn, self.timeline, self.positions, self.candidates)
        full["full_ndcg@10"] = full.pop("ndcg@10")  # ndcg@10 is the NCF one
        return ncf | full
