"""Time-ordered rating events and the leave-latest-out split (test = latest, validation = the one before)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ml.movielens.format import Dataset

MIN_EVAL_USERS = 5  # fewer users with three ratings cannot give a meaningful metric
MIN_TRAIN_EVENTS = 20
MIN_MOVIES = 10


class InsufficientDataError(ValueError):
    """The dataset is empty or too small to train and evaluate on."""


@dataclass(frozen=True)
class Timeline:
    """Every rating as an event, sorted by user, time, then movie id (the order serving reads); arrays
    are indexed by event position, and the history of the event at p is [user_start[p], p)."""

    user_row: npt.NDArray[np.int64]  # row of the user in dataset.users
    movie_row: npt.NDArray[np.int64]  # row of the movie in dataset.movies
    rating: npt.NDArray[np.float32]  # 0.5 to 5 stars
    timestamp: npt.NDArray[np.int64]
    user_start: npt.NDArray[np.int64]  # position of the user's first event, per event
    train: npt.NDArray[np.int64]  # positions of training events (not validation or test)
    valid: npt.NDArray[np.int64]  # positions of each user's second-latest event
    test: npt.NDArray[np.int64]  # positions of each user's latest event

    def history(self, positions: npt.NDArray[np.int64], length: int) -> npt.NDArray[np.int64]:
        """Return (len(positions), length) event positions of the history, newest first, -1 padded."""
        offsets = positions[:, None] - 1 - np.arange(length)[None, :]
        return np.where(offsets >= self.user_start[positions][:, None], offsets, -1)

    def events_before(
        self, positions: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Return (row, event) pairs: every event of the user before each position (row: its index)."""
        starts = self.user_start[positions]
        lengths = positions - starts
        rows = np.repeat(np.arange(positions.size), lengths)
        # start, start + 1, ..., position - 1 of each row, concatenated
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return rows, np.repeat(starts, lengths) + offsets


def build_timeline(dataset: Dataset) -> Timeline:
    """Return the dataset's events, each user's latest two left out (when it has three or more), or raise
    InsufficientDataError when too little is left to train or evaluate."""
    ratings = dataset.ratings
    if len(ratings) == 0 or not dataset.users or not dataset.movies:
        raise InsufficientDataError("the dataset has no ratings, users or movies: nothing to train on")
    user_index = {u.id: i for i, u in enumerate(dataset.users)}
    movie_index = {m.id: i for i, m in enumerate(dataset.movies)}
    user_row = _rows(ratings.user_id, user_index, "user")
    movie_row = _rows(ratings.movie_id, movie_index, "movie")
    # Ties (many ratings share a second) by movie id, as the API reads a history: training and
    # serving see one order whatever order the data came in.
    order = np.lexsort((ratings.movie_id, ratings.timestamp, user_row))
    user_row, movie_row = user_row[order], movie_row[order]
    rating = ratings.rating[order].astype(np.float32)
    timestamp = ratings.timestamp[order].astype(np.int64)

    n = user_row.shape[0]
    first = np.flatnonzero(np.r_[True, user_row[1:] != user_row[:-1]])
    counts = np.diff(np.r_[first, n])
    user_start = np.repeat(first, counts)
    test = (first + counts - 1)[counts >= 3]  # the latest event of each user with three or more
    valid = test - 1
    train = np.delete(np.arange(n), np.concatenate([test, valid]))

    if test.size < MIN_EVAL_USERS:
        raise InsufficientDataError(
            f"only {test.size} users have three or more ratings; at least {MIN_EVAL_USERS} are needed "
            "to hold out a validation and a test rating each"
        )
    if train.size < MIN_TRAIN_EVENTS:
        raise InsufficientDataError(f"only {train.size} training ratings; at least {MIN_TRAIN_EVENTS} needed")
    if np.unique(movie_row).size < MIN_MOVIES:
        raise InsufficientDataError(f"fewer than {MIN_MOVIES} distinct rated movies")
    return Timeline(user_row, movie_row, rating, timestamp, user_start, train, valid, test)


def _rows(ids: npt.NDArray[np.integer], index: dict[int, int], kind: str) -> npt.NDArray[np.int64]:
    unique, inverse = np.unique(ids, return_inverse=True)
    try:
        rows = np.asarray([index[int(i)] for i in unique], dtype=np.int64)
    except KeyError as error:
        raise ValueError(f"a rating refers to {kind} id {error.args[0]}, which the dataset lacks") from None
    return rows[inverse.reshape(-1)]


def shuffle_ties(timeline: Timeline, rng: np.random.Generator) -> Timeline:
    """Return the timeline with each user's training events of one second in a random order (positions,
    and so the split, unchanged): a model trained on it cannot learn the movie-id order of ties."""
    train = timeline.train  # sorted; each user's training events are contiguous, and so their ties
    key = np.lexsort((rng.random(train.size), timeline.timestamp[train], timeline.user_row[train]))
    order = np.arange(timeline.user_row.size)
    order[train] = train[key]
    return replace(timeline, movie_row=timeline.movie_row[order], rating=timeline.rating[order])
