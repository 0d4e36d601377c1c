"""Training on small synthetic data: it learns taste, reports progress, refuses bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bench.baselines.popularity import popularity_scorer
from ml.config import TrainConfig
from ml.evaluate import Protocol
from ml.movielens.format import Dataset, Ratings
from ml.movielens.layouts import load_ml1m
from ml.movielens.synthetic import write_synthetic
from ml.paddle_setup import paddle
from ml.split import InsufficientDataError
from ml.train import TrainedModel, train
from ml.training_loop import ProgressEvent, TrainingError, fit

CONFIG = TrainConfig(embedding_dim=16, hidden_dim=64, epochs=2, batch_size=128, learning_rate=5e-3)


def popularity_metrics(model: TrainedModel) -> dict[str, float]:
    """Return the popularity baseline's test metrics on the model's split, with the model's negatives."""
    t = model.prepared.timeline
    test = Protocol(t, t.test, negatives=model.config.eval_negatives, seed=model.config.eval_seed)
    return test.evaluate(popularity_scorer(t, model.prepared.movie_ids.size))


def test_training_beats_popularity_on_taste_structured_data(dataset: Dataset) -> None:
    events: list[ProgressEvent] = []
    model = train(dataset, CONFIG, callback=events.append, progress=False)
    popularity = popularity_metrics(model)
    assert model.metrics["hr@10"] > popularity["hr@10"] + 0.05
    assert model.metrics["recall@20"] > popularity["recall@20"]
    assert set(model.metrics) >= {"hr@10", "ndcg@10", "recall@10", "recall@20", "ndcg@20"}
    assert events[-1].percent == pytest.approx(100.0) and events[-1].epoch == 2
    assert [e.epoch for e in events if e.metrics] == [1, 2]  # validation metrics at each epoch end
    assert all(0 < e.percent <= 100 for e in events)
    assert model.result.train_seconds > 0 and model.result.examples_per_second > 0


def test_fixed_seed_reproduces_metrics(dataset: Dataset) -> None:
    config = dataclasses.replace(CONFIG, epochs=1)
    first = train(dataset, config, progress=False).metrics
    assert train(dataset, config, progress=False).metrics == first


def test_nan_loss_stops_training_with_a_clear_error() -> None:
    layer = paddle.nn.Linear(4, 1)
    before = layer.weight.numpy().copy()
    calls = []

    def loss(batch: np.ndarray, rng: np.random.Generator) -> paddle.Tensor:
        calls.append(batch.size)
        out = layer(paddle.ones([batch.size, 4])).mean()
        return out * float("nan") if len(calls) == 3 else out

    with pytest.raises(TrainingError, match="loss became nan at epoch 1 step 3"):
        fit(layer, np.arange(100), loss, dataclasses.replace(CONFIG, batch_size=10), progress=False)
    assert not np.isnan(layer.weight.numpy()).any() and not np.array_equal(layer.weight.numpy(), before)


def test_empty_dataset_is_refused_before_training(dataset: Dataset) -> None:
    empty = Ratings(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, np.int64))
    with pytest.raises(InsufficientDataError, match="no ratings"):
        train(Dataset(dataset.users, dataset.movies, empty), CONFIG, progress=False)


def test_too_small_dataset_is_refused_before_training(dataset: Dataset) -> None:
    r = dataset.ratings
    keep = np.isin(r.user_id, [1, 2, 3])  # three users cannot give a test set
    few = Ratings(r.user_id[keep], r.movie_id[keep], r.rating[keep], r.timestamp[keep])
    with pytest.raises(InsufficientDataError, match="three or more ratings"):
        train(Dataset(dataset.users, dataset.movies, few), CONFIG, progress=False)


def test_early_stopping_keeps_the_best_epoch_and_reports_done() -> None:
    layer = paddle.nn.Linear(4, 1)
    snapshots: list[np.ndarray] = []
    scores = iter([0.5, 0.9, 0.7, 0.6, 0.8])  # validation peaks at epoch 2

    def validate() -> dict[str, float]:
        snapshots.append(layer.weight.numpy().copy())
        return {"ndcg@10": next(scores)}

    def loss(batch: np.ndarray, rng: np.random.Generator) -> paddle.Tensor:
        return layer(paddle.ones([batch.size, 4])).mean()

    events: list[ProgressEvent] = []
    config = dataclasses.replace(CONFIG, batch_size=10, epochs=5, patience=2)
    result = fit(
        layer, np.arange(50), loss, config, validate=validate, callback=events.append, progress=False
    )
    assert (result.epochs_run, result.best_epoch) == (4, 2)
    assert result.best_metrics["ndcg@10"] == 0.9
    np.testing.assert_array_equal(layer.weight.numpy(), snapshots[1])  # parameters of epoch 2
    assert events[-1].percent == 100.0 and events[-1].epoch == 4


def test_masking_leaves_out_exactly_the_movies_each_user_rated_before(dataset: Dataset) -> None:
    from ml.inputs import prepare
    from ml.train import _rated_columns

    t = prepare(dataset, CONFIG).timeline
    batch = np.concatenate([t.train[:40], t.test[:40]])
    candidates, column = np.unique(
        np.concatenate([t.movie_row[batch], np.arange(0, 150, 3)]), return_inverse=True
    )
    mask = _rated_columns(t, batch, candidates, column[: batch.size])
    for row, position in enumerate(batch):
        earlier = set(t.movie_row[t.user_start[position] : position].tolist()) & set(candidates.tolist())
        assert set(candidates[mask[row]].tolist()) == earlier
        assert not mask[row, column[row]]  # the positive is never hidden
    assert mask.any()


def test_a_model_trained_with_rated_movies_masked_still_learns(dataset: Dataset) -> None:
    trained = train(dataset, dataclasses.replace(CONFIG, mask_rated=True), progress=False)
    popular = popularity_metrics(trained)
    assert all(np.isfinite(epoch["loss"]) for epoch in trained.result.history)
    assert trained.metrics["recall@20"] > popular["recall@20"]


def test_a_catalogue_smaller_than_the_sampled_negatives_still_trains(tmp_path: Path) -> None:
    """60 movies, users with up to 45 ratings: the NCF protocol samples as many unrated movies as the
    user with the fewest has, instead of failing for want of 99."""
    small = load_ml1m(Path(write_synthetic(tmp_path, users=120, movies=60, ratings_per_user=(10, 45))))
    trained = train(small, dataclasses.replace(CONFIG, epochs=1), progress=False)
    assert 0.0 <= trained.metrics["hr@10"] <= 1.0 and trained.metrics["hr@10"] < 1.0


@pytest.mark.slow
def test_a_dataset_without_demographics_trains(dataset: Dataset) -> None:
    """Users with no gender, age, occupation or zip: every one reads "unknown", and the model learns
    from ratings alone."""
    anonymous = dataclasses.replace(
        dataset,
        users=[
            dataclasses.replace(u, gender=None, age=None, occupation=None, zip_code=None)
            for u in dataset.users
        ],
    )
    model = train(anonymous, dataclasses.replace(CONFIG, epochs=4), progress=False)  # 2 reached 0.25 HR@10
    inputs = model.prepared.users
    for key in ("gender", "age", "occupation", "zip"):
        assert not inputs[key].any(), key  # index 0, "unknown", for every user
    popularity = popularity_metrics(model)
    assert model.metrics["hr@10"] > popularity["hr@10"] + 0.05


def test_each_epoch_trains_on_a_new_sample_of_the_set_size() -> None:
    layer = paddle.nn.Linear(4, 1)
    batches: list[list[np.ndarray]] = [[]]

    def loss(batch: np.ndarray, rng: np.random.Generator) -> paddle.Tensor:
        batches[-1].append(batch.copy())
        return layer(paddle.ones([batch.size, 4])).mean()

    def validate() -> dict[str, float]:
        batches.append([])
        return {"ndcg@10": 0.5}

    config = dataclasses.replace(CONFIG, batch_size=10, epochs=3, patience=5, examples_per_epoch=35)
    fit(layer, np.arange(1000), loss, config, validate=validate, progress=False)
    epochs = [np.concatenate(b) for b in batches[:3]]
    assert [e.size for e in epochs] == [35, 35, 35]
    assert all(np.unique(e).size == 35 for e in epochs)  # a sample without repeats
    assert len({tuple(sorted(e.tolist())) for e in epochs}) == 3  # a new one each epoch
    with pytest.raises(ValueError, match="examples_per_epoch"):
        TrainConfig(examples_per_epoch=-1)


def test_evaluation_on_a_sample_of_users_is_drawn_once(dataset: Dataset) -> None:
    from ml.split import build_timeline

    timeline = build_timeline(dataset)
    every = Protocol(timeline, timeline.test, negatives=20, seed=3)
    some = [Protocol(timeline, timeline.test, negatives=20, seed=3, users=50) for _ in range(2)]
    assert every.positions.size == timeline.test.size > 50
    assert some[0].positions.size == 50 and np.array_equal(some[0].positions, some[1].positions)
    assert set(some[0].positions.tolist()) <= set(timeline.test.tolist())
