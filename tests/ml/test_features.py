"""The scalar gap bucket the serving hot path uses equals the vectorised one the encoder uses."""

from __future__ import annotations

import numpy as np

from ml.config import GAP_BUCKETS
from ml.features import gap_bucket, gap_bucket_of, star_levels


def test_gap_bucket_of_equals_gap_bucket_at_and_around_every_boundary() -> None:
    boundaries = [60 * (2**k - 1) for k in range(GAP_BUCKETS + 2)]  # 1 + minutes = 2**k
    seconds = sorted({max(b + d, -5) for b in boundaries for d in (-2, -1, 0, 1, 2)})
    seconds += np.random.default_rng(0).integers(0, 2**40, size=2_000).tolist()
    vectorised = gap_bucket(np.asarray(seconds, dtype=np.int64), np.ones(len(seconds), dtype=bool))
    assert [gap_bucket_of(s) for s in seconds] == vectorised.tolist()
    assert set(vectorised.tolist()) == set(range(1, GAP_BUCKETS))  # every bucket was crossed


def test_half_stars_read_as_the_star_they_reach() -> None:
    assert star_levels([0.5, 1, 1.5, 3, 3.5, 4.5, 5]).tolist() == [1, 1, 2, 3, 4, 5, 5]
    assert star_levels(np.array([1, 2, 3, 4, 5], dtype=np.float32)).tolist() == [1, 2, 3, 4, 5]
