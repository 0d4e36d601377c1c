"""Training reads ties (ratings of one second) in a new order each epoch; evaluation and serving
read them in the stated order."""

from __future__ import annotations

import dataclasses

import numpy as np

from ml.config import TrainConfig
from ml.inputs import prepare
from ml.movielens.format import Dataset
from ml.split import build_timeline, shuffle_ties
from ml.train import EpochData

CONFIG = TrainConfig(embedding_dim=16, hidden_dim=32, history_length=8, epochs=2, batch_size=128)


def test_shuffled_ties_stay_within_a_users_second_and_the_split_is_unchanged(dataset: Dataset) -> None:
    ratings = dataclasses.replace(dataset.ratings, timestamp=dataset.ratings.timestamp // 86400 * 86400)
    t = build_timeline(dataclasses.replace(dataset, ratings=ratings))  # many ratings a day, all one second
    shuffled = shuffle_ties(t, np.random.default_rng(1))
    for held_out in (t.valid, t.test):
        np.testing.assert_array_equal(shuffled.movie_row[held_out], t.movie_row[held_out])
    key = t.user_row * 10**10 + t.timestamp  # a user's second
    for group in np.unique(key[t.train]):
        at = t.train[key[t.train] == group]
        assert sorted(shuffled.movie_row[at]) == sorted(t.movie_row[at])
    assert (shuffled.movie_row != t.movie_row).any()


def test_each_epoch_trains_on_ties_in_a_new_order_and_evaluation_on_the_stated_one(dataset: Dataset) -> None:
    ratings = dataclasses.replace(dataset.ratings, timestamp=dataset.ratings.timestamp // 86400 * 86400)
    prepared = prepare(dataclasses.replace(dataset, ratings=ratings), CONFIG)
    stated = prepared.timeline.movie_row.copy()
    rng = np.random.default_rng(0)
    epoch = EpochData(prepared, shuffle_ties=True)
    orders = []
    for _ in range(3):
        epoch.shuffle(rng)
        orders.append(epoch.prepared.timeline.movie_row)
    assert len({o.tobytes() for o in [stated, *orders]}) == 4
    np.testing.assert_array_equal(prepared.timeline.movie_row, stated)  # what evaluation reads
    kept = EpochData(prepared, shuffle_ties=False)
    kept.shuffle(rng)
    np.testing.assert_array_equal(kept.prepared.timeline.movie_row, stated)
