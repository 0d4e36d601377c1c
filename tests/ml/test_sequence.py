"""The attention history trained on sequences (each trained state is the served one, and causal), and
training ties in a new order each epoch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ml.config import TrainConfig
from ml.export import save_version
from ml.inputs import Prepared, prepare, to_tensors
from ml.model import TwoTower
from ml.movielens.format import Dataset
from ml.paddle_setup import paddle
from ml.serving import LoadedModel
from ml.split import build_timeline, shuffle_ties
from ml.train import EpochData, train, training_windows
from ml.user_predictor import UserPredictor

CONFIG = TrainConfig(
    embedding_dim=16,
    hidden_dim=32,
    history_length=8,
    history_encoder="attention",
    sequence_training=True,
    window_targets=12,
    epochs=2,
    batch_size=128,
)


@pytest.fixture(scope="module")
def prepared(dataset: Dataset) -> Prepared:
    return prepare(dataset, CONFIG)


def _model(prepared: Prepared) -> TwoTower:
    paddle.seed(3)
    model = TwoTower(CONFIG, prepared.sizes())
    with paddle.no_grad():  # a trained-looking model: recency biases not all equal
        field = model.user_tower.fields[-1]
        field.recency.set_value(np.random.default_rng(0).normal(size=field.recency.shape).astype("float32"))
    model.eval()
    return model


def _sequence_states(
    model: TwoTower, prepared: Prepared, windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = training_windows(prepared.timeline, CONFIG.window_targets)
    inputs, targets = prepared.window_inputs(starts[windows], ends[windows], CONFIG.history_length)
    with paddle.no_grad():
        return model.encode_user_sequences(to_tensors(inputs)).numpy(), targets


def test_the_state_before_each_event_of_a_window_is_the_served_state(prepared: Prepared) -> None:
    model = _model(prepared)
    windows = np.arange(0, 60)  # users' first windows (empty and short histories) and later ones
    states, targets = _sequence_states(model, prepared, windows)
    assert targets.size > 100
    served = UserPredictor.of_model(model, CONFIG)(prepared.user_inputs(targets, CONFIG.history_length))
    np.testing.assert_allclose(states, served, atol=2e-5)
    with paddle.no_grad():
        dygraph = model.encode_users(to_tensors(prepared.user_inputs(targets, CONFIG.history_length))).numpy()
    np.testing.assert_allclose(states, dygraph, atol=2e-5)


def test_a_later_event_never_changes_an_earlier_state(prepared: Prepared) -> None:
    model = _model(prepared)
    starts, ends = training_windows(prepared.timeline, CONFIG.window_targets)
    inputs, _ = prepared.window_inputs(starts[:20], ends[:20], CONFIG.history_length)
    changed = {k: v.copy() for k, v in inputs.items()}
    slot = CONFIG.history_length + 2  # a movie and star rated after the first targets of every window
    changed["window"][:, slot] = np.where(
        changed["window"][:, slot] > 0, 1 + changed["window"][:, slot] % 50, 0
    )
    changed["window_rating"][:, slot] = np.where(changed["window"][:, slot] > 0, 1, 0)
    with paddle.no_grad():
        before = model.encode_user_sequences(to_tensors(inputs)).numpy()
        after = model.encode_user_sequences(to_tensors(changed)).numpy()
    earlier = inputs["window_slot"] < slot
    later = inputs["window_slot"] >= slot
    np.testing.assert_array_equal(before[earlier], after[earlier])
    assert not np.allclose(before[later], after[later])  # the change is seen where it should be


def test_windows_cover_every_training_event_once(prepared: Prepared) -> None:
    t = prepared.timeline
    starts, ends = training_windows(t, CONFIG.window_targets)
    covered = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
    np.testing.assert_array_equal(covered, t.train)
    assert (ends - starts).max() == CONFIG.window_targets
    assert (t.user_row[starts] == t.user_row[ends - 1]).all()


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


def test_sequence_training_beats_random_and_the_saved_version_serves_it(
    dataset: Dataset, tmp_path: Path
) -> None:
    trained = train(dataset, CONFIG, progress=False)
    untrained = train(dataset, dataclasses.replace(CONFIG, epochs=1, learning_rate=1e-9), progress=False)
    assert trained.metrics["hr@10"] > untrained.metrics["hr@10"] + 0.1
    assert trained.metrics["recall@20"] > untrained.metrics["recall@20"]
    version = LoadedModel.load(save_version(trained, tmp_path / "v"))
    p = trained.prepared
    arrays = p.user_inputs(p.timeline.test, CONFIG.history_length)
    with paddle.no_grad():
        expected = trained.model.encode_users(to_tensors(arrays)).numpy()
    np.testing.assert_allclose(version.user_predictor(arrays), expected, atol=2e-5)
