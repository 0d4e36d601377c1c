"""Metric functions and evaluation protocols against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.evaluate import (
    full_ranking_metrics,
    hr_at_k,
    ncf_metrics,
    ndcg_at_k,
    rank_of_target,
    sample_negatives,
)
from ml.split import Timeline


def test_hr_counts_ranks_inside_the_cutoff() -> None:
    # ranks 0, 9 are in the top 10; 10 and 50 are not
    assert hr_at_k([0, 9, 10, 50], 10) == 0.5


def test_ndcg_discounts_by_log_rank() -> None:
    # rank 0 -> 1, rank 1 -> 1/log2(3), rank 3 -> 1/log2(5) = 0.4307, rank 12 -> 0
    expected = (1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(5) + 0.0) / 4
    assert ndcg_at_k([0, 1, 3, 12], 10) == pytest.approx(expected)
    assert ndcg_at_k([2], 10) == pytest.approx(0.5)


def test_metrics_of_no_queries_are_zero() -> None:
    assert hr_at_k([], 10) == 0.0
    assert ndcg_at_k([], 10) == 0.0


def test_rank_counts_ties_against_the_target() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 1.0, 2.0, 0.0]])
    # row 0: target column 1 ties with column 3 -> rank 1; row 1: target column 2 below 3.0 -> rank 1
    np.testing.assert_array_equal(rank_of_target(scores, np.array([1, 2])), [1, 1])
    np.testing.assert_array_equal(rank_of_target(scores, np.array([2, 0])), [2, 0])


def _timeline() -> Timeline:
    """Two users: user 0 rated movies 0, 1, 2 (in time order), user 1 rated movies 3, 4, 0."""
    user_row = np.array([0, 0, 0, 1, 1, 1])
    movie_row = np.array([0, 1, 2, 3, 4, 0])
    return Timeline(
        user_row=user_row,
        movie_row=movie_row,
        rating=np.array([5, 4, 3, 5, 2, 4]),
        timestamp=np.array([1, 2, 3, 1, 2, 3]),
        user_start=np.array([0, 0, 0, 3, 3, 3]),
        train=np.array([0, 3]),
        valid=np.array([1, 4]),
        test=np.array([2, 5]),
    )


def test_history_is_newest_first_and_stays_inside_the_user() -> None:
    t = _timeline()
    np.testing.assert_array_equal(t.history(np.array([2, 3, 5]), 3), [[1, 0, -1], [-1, -1, -1], [4, 3, -1]])


def test_negatives_are_movies_the_user_never_rated_and_fixed_by_seed() -> None:
    t = _timeline()
    candidates = np.arange(8)
    first = sample_negatives(t, t.test, candidates, 4, seed=3)
    assert set(first[0]) <= {3, 4, 5, 6, 7} and len(set(first[0])) == 4
    assert set(first[1]) <= {1, 2, 5, 6, 7} and len(set(first[1])) == 4
    np.testing.assert_array_equal(first, sample_negatives(t, t.test, candidates, 4, seed=3))
    with pytest.raises(ValueError, match="unrated movies"):
        sample_negatives(t, t.test, candidates, 6, seed=3)


def test_ncf_protocol_ranks_the_target_among_its_negatives() -> None:
    t = _timeline()
    scores = np.array([[0.0, 0.0, 0.5, 0.9, 0.1, 0.2, 0.3, 0.4], [0.8, 0.1, 0.2, 0.0, 0.0, 0.9, 0.3, 0.4]])
    negatives = np.array([[3, 4, 5], [1, 2, 6]])
    # user 0: target movie 2 (0.5) is below movie 3 (0.9) -> rank 1; user 1: target 0 (0.8) is first -> rank 0
    got = ncf_metrics(lambda positions: scores[t.user_row[positions]], t.test, t.movie_row[t.test], negatives)
    assert got == {"hr@10": 1.0, "ndcg@10": pytest.approx((1 / math.log2(3) + 1.0) / 2)}


def test_full_ranking_skips_movies_rated_before_and_non_candidates() -> None:
    t = _timeline()
    # user 0 (target 2) rated 0 and 1 before: they score highest but are skipped; movie 7 is no candidate
    scores = np.array([[9.0, 9.0, 0.5, 0.6, 0.4, 0.3, 0.2, 5.0], [0.1, 0.0, 0.9, 9.0, 9.0, 0.8, 0.7, 5.0]])
    got = full_ranking_metrics(
        lambda positions: scores[t.user_row[positions]], t, t.test, candidates=np.arange(7)
    )
    # user 0: movie 3 (0.6) beats the target -> rank 1; user 1: 2, 5, 6 beat movie 0 -> rank 3
    assert got["recall@10"] == 1.0
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 2)
