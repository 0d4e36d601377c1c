"""Most-popular baseline: every user gets movies ranked by their number of training ratings."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ml.evaluate import ScoreFn
from ml.split import Timeline


def popularity_scorer(timeline: Timeline, n_movies: int) -> ScoreFn:
    """Return a score function giving each movie row its training rating count, the same for every user."""
    counts = np.bincount(timeline.movie_row[timeline.train], minlength=n_movies).astype(np.float32)

    def score(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.broadcast_to(counts, (positions.size, n_movies))

    return score
