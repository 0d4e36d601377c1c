"""Training inputs: the time-ordered events, their feature tables, and the batches built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml.config import GAP_BUCKETS, TrainConfig
from ml.features import Arrays, FeatureVocabularies, gap_bucket, star_levels
from ml.movielens.format import Dataset
from ml.paddle_setup import paddle
from ml.split import MIN_TRAIN_EVENTS, InsufficientDataError, Timeline, build_timeline


@dataclass
class Prepared:
    """A dataset turned into index arrays: events by time, per-user and per-movie feature rows."""

    timeline: Timeline
    vocabs: FeatureVocabularies
    users: Arrays  # static user features, indexed by row of dataset.users
    movies: Arrays  # movie features, indexed by row of dataset.movies
    movie_ids: npt.NDArray[np.int64]  # MovieLens id of each movie row
    positives: npt.NDArray[np.int64]  # training event positions used as positives
    log_q: npt.NDArray[np.float32]  # log sampling probability of each movie row among positives

    def sizes(self) -> dict[str, int]:
        """Return the embedding table size of every feature ("text" only when the movies have text)."""
        v = self.vocabs
        sizes = {
            "user_id": len(v.user_id), "gender": len(v.gender), "age": len(v.age),
            "occupation": len(v.occupation), "zip": len(v.zip_prefix), "movie_id": len(v.movie_id),
            "genres": len(v.genre), "title": len(v.title_word), "year": len(v.year), "gap": GAP_BUCKETS,
        }  # fmt: skip
        if v.text_buckets:
            sizes["text"] = v.text_buckets + 1  # index 0 is padding
        return sizes

    def user_inputs(self, positions: npt.NDArray[np.int64], history_length: int) -> Arrays:
        """Return the user tower's inputs for the user state just before each event position."""
        t = self.timeline
        rows = t.user_row[positions]
        inputs = {k: v[rows] for k, v in self.users.items()}
        hist = t.history(positions, history_length)  # (batch, length), -1 padded
        valid = hist >= 0
        inputs["history"] = np.where(valid, self.movies["movie_id"][t.movie_row[hist]], 0)
        inputs["history_rating"] = np.where(valid, star_levels(t.rating[hist]), 0)
        trained = np.asarray([self.vocabs.trained_gap(b) for b in range(GAP_BUCKETS)], dtype=np.int64)
        inputs["gap"] = trained[raw_gaps(t, positions)]  # each bucket as serving reads it
        return inputs

    def movie_inputs(self, movie_rows: npt.NDArray[np.int64]) -> Arrays:
        """Return the movie tower's inputs for these movie rows."""
        return {k: v[movie_rows] for k, v in self.movies.items()}


def prepare(dataset: Dataset, config: TrainConfig) -> Prepared:
    """Return the dataset split by time and encoded with vocabularies built from its training events;
    raise InsufficientDataError (a ValueError) when the data is too small."""
    timeline = build_timeline(dataset)
    positives = timeline.train[timeline.rating[timeline.train] >= config.min_rating]
    if positives.size < MIN_TRAIN_EVENTS:
        raise InsufficientDataError(
            f"only {positives.size} training ratings of {config.min_rating} stars or more; "
            f"at least {MIN_TRAIN_EVENTS} are needed"
        )
    user_ids = np.asarray([u.id for u in dataset.users], dtype=np.int64)
    movie_ids = np.asarray([m.id for m in dataset.movies], dtype=np.int64)
    train_users = user_ids[np.unique(timeline.user_row[timeline.train])]
    train_movies = movie_ids[np.unique(timeline.movie_row[timeline.train])]
    # The gap buckets of the events trained on, to the cap: serving maps any other onto them.
    gaps = np.minimum(raw_gaps(timeline, positives), config.gap_cap)
    vocabs = FeatureVocabularies.build(dataset, config, train_users, train_movies, gaps)
    counts = np.bincount(timeline.movie_row[positives], minlength=len(dataset.movies)).astype(np.float64)
    log_q = np.log(np.maximum(counts, 1.0) / positives.size).astype(np.float32)
    users = vocabs.user_arrays(user_ids.tolist(), dataset.users)
    movies = vocabs.movie_arrays(movie_ids.tolist(), dataset.movies)
    return Prepared(timeline, vocabs, users, movies, movie_ids, positives, log_q)


def raw_gaps(t: Timeline, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return the gap bucket from each event's user's newest earlier rating to it (0: none earlier)."""
    newest = positions - 1
    has_history = newest >= t.user_start[positions]
    return gap_bucket(t.timestamp[positions] - t.timestamp[np.maximum(newest, 0)], has_history)


def to_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, paddle.Tensor]:
    """Return the arrays as Paddle tensors (int64 ids stay int64)."""
    return {k: paddle.to_tensor(v) for k, v in arrays.items()}
