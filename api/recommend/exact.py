"""Kept lists ranked in this process where Milvus would scan every vector anyway (a FLAT index):
Milvus Lite scores one query vector at a time over the whole collection, while one matrix product
scores a batch of users, for the same top movies. Other indexes are searched by Milvus (kept.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from api.vectors.store import Hit, VectorStore

MAX_BYTES = 1 << 30  # vectors held for ranking at most (4 million movies of 64 floats, 1 million of 256)
RANK_BATCH = 128  # users scored by one matrix product: bounds the scores held at once


@dataclass(frozen=True)
class ExactIndex:
    """A collection's movie ids (ascending) and vectors, row for row, and the database's newest movie
    when they were read (a new movie's vector is stored before its row is committed)."""

    movie_ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    newest_movie: int | None

    @classmethod
    def read(cls, store: VectorStore, name: str, movie_ids: Sequence[int]) -> ExactIndex | None:
        """Return the movies' vectors when Milvus searches the collection exactly and they fit
        MAX_BYTES, else None (search with Milvus)."""
        stats = store.stats(name)
        if stats.index_type != "FLAT" or len(movie_ids) * stats.dim * 4 > MAX_BYTES:
            return None
        found, vectors = store.vector_rows(name, movie_ids)
        return cls(found, vectors, max(movie_ids, default=None))

    def top_unrated(
        self, queries: npt.NDArray[np.float32], rated: Sequence[set[int]], limit: int
    ) -> list[list[Hit]]:
        """Return the `limit` movies of highest inner product with each query vector but those its user
        rated (rated[i]), best first, as a filtered search finds them; equal scores go lower id first."""
        size = len(self.movie_ids)
        k = min(limit, size)
        if k == 0:
            return [[] for _ in rated]
        found: list[list[Hit]] = []
        for start in range(0, len(queries), RANK_BATCH):
            scores = queries[start : start + RANK_BATCH].astype(np.float32, copy=False) @ self.vectors.T
            for row, movies in zip(scores, rated[start : start + RANK_BATCH], strict=True):
                row[self._columns(movies)] = -np.inf
            kth = np.partition(scores, size - k, axis=1)[:, size - k]  # each row's k-th highest score
            for row, least in zip(scores, kth, strict=True):
                candidates = np.flatnonzero(row >= least)  # every movie tied with the k-th too
                best = candidates[np.lexsort((candidates, -row[candidates]))[:k]]  # ties: lower id first
                found.append([Hit(int(self.movie_ids[c]), float(row[c])) for c in best if row[c] > -np.inf])
        return found

    def _columns(self, movies: set[int]) -> npt.NDArray[np.intp]:
        """Return the rows of vectors that belong to the given movies (movies without one left out)."""
        wanted = np.fromiter(movies, dtype=np.int64, count=len(movies))
        columns = np.minimum(np.searchsorted(self.movie_ids, wanted), len(self.movie_ids) - 1)
        return columns[self.movie_ids[columns] == wanted]
