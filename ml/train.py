"""Train the two-tower model with in-batch sampled softmax, and score any vector model for evaluation."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ml.config import TrainConfig
from ml.evaluate import Protocol, ScoreFn
from ml.features import Arrays
from ml.inputs import Prepared, prepare, to_tensors
from ml.model import USER_IDS, TwoTower
from ml.movielens.format import Dataset
from ml.paddle_setup import paddle
from ml.split import Timeline, shuffle_ties
from ml.training_loop import Callback, FitResult, LossFn, fit

log = logging.getLogger(__name__)
F = paddle.nn.functional
_ENCODE_CHUNK = 4096


@dataclass
class TrainedModel:
    """A trained vector model with everything needed to export it and the metrics it reached."""

    model: paddle.nn.Layer  # has encode_users(inputs) and encode_movies(inputs)
    config: TrainConfig
    prepared: Prepared
    metrics: dict[str, float]  # on each user's latest (held-out) rating
    validation: dict[str, float]  # on each user's second-latest rating, best epoch
    result: FitResult  # its train_seconds count training steps only
    wall_seconds: float  # the whole train() call: features, epochs, validation, test evaluation


def seed_everything(config: TrainConfig) -> None:
    """Fix Paddle's seed and thread count so a config reproduces its metrics."""
    paddle.base.core.set_num_threads(config.num_threads)
    paddle.seed(config.seed)


def train(
    dataset: Dataset, config: TrainConfig, *, callback: Callback = None, progress: bool = True
) -> TrainedModel:
    """Return the two-tower model trained on every rating but each user's latest two, with test metrics;
    raise InsufficientDataError before training on too little data and TrainingError on a NaN loss."""
    started = time.perf_counter()
    seed_everything(config)
    prepared = prepare(dataset, config)
    model = TwoTower(config, prepared.sizes())
    return fit_vector_model(
        model, prepared, config, callback=callback, progress=progress, setup=time.perf_counter() - started
    )


def fit_vector_model(
    model: paddle.nn.Layer,
    prepared: Prepared,
    config: TrainConfig,
    *,
    callback: Callback = None,
    progress: bool = True,
    setup: float = 0.0,
    loss: LossFn | None = None,
) -> TrainedModel:
    """Return any model with encode_users / encode_movies trained (sampled softmax unless loss is given)."""
    started = time.perf_counter()
    t = prepared.timeline
    protocol = {"negatives": config.eval_negatives, "seed": config.eval_seed, "users": config.eval_users}
    valid = Protocol(t, t.valid, **protocol)
    before_epoch = None
    if loss is None:
        epoch = EpochData(prepared, config.shuffle_ties)
        loss, before_epoch = softmax_loss(model, epoch, config), epoch.shuffle
    result = fit(
        model,
        prepared.positives,
        loss,
        config,
        validate=lambda: valid.evaluate(vector_scorer(model, prepared, config)),
        callback=callback,
        progress=progress,
        before_epoch=before_epoch,
    )
    test = Protocol(t, t.test, **protocol)
    metrics = test.evaluate(vector_scorer(model, prepared, config))
    log.info("test metrics %s", {k: round(v, 4) for k, v in metrics.items()})
    wall = setup + time.perf_counter() - started
    return TrainedModel(model, config, prepared, metrics, result.best_metrics, result, wall)


class EpochData:
    """The prepared data one epoch trains on: with shuffle_ties, its ties in a new order each epoch."""

    def __init__(self, prepared: Prepared, shuffle_ties: bool) -> None:
        self.original, self.prepared, self.shuffle_ties = prepared, prepared, shuffle_ties

    def shuffle(self, rng: np.random.Generator) -> None:
        """Give the next epoch a new order of the ties (nothing without shuffle_ties)."""
        if self.shuffle_ties:
            self.prepared = replace(self.original, timeline=shuffle_ties(self.original.timeline, rng))


def softmax_loss(model: paddle.nn.Layer, epoch: EpochData, config: TrainConfig) -> LossFn:
    """Return the batch loss: softmax over the batch's movies (plus uniform negatives), corrected by
    the log of each movie's expected count among the candidates (logQ); each epoch's events in the
    order epoch gives them."""
    prepared = epoch.original  # the movies and their counts, whatever the order of ties
    trained = np.flatnonzero(prepared.movies["movie_id"] > 0)  # movie rows with a trained id
    share = np.exp(prepared.log_q.astype(np.float64))
    log_q = np.log(config.batch_size * share + config.uniform_negatives / trained.size).astype(np.float32)

    def loss(batch: npt.NDArray[np.int64], rng: np.random.Generator) -> paddle.Tensor:
        t = epoch.prepared.timeline
        batch = batch[t.rating[batch] >= config.min_rating]  # a tie shuffled in may not be
        users_in = epoch.prepared.user_inputs(batch, config.history_length)
        positives = t.movie_row[batch]
        negatives = (
            rng.choice(trained, size=config.uniform_negatives) if config.uniform_negatives else positives[:0]
        )
        # each distinct movie is one column: a row's positive is never its own negative
        candidates, column = np.unique(np.concatenate([positives, negatives]), return_inverse=True)
        movies_in = prepared.movie_inputs(candidates)
        _hide(rng, users_in, "user_id", config.user_id_dropout)
        for field in USER_IDS[1:]:  # the demographics, whose index 0 is "unknown"
            _hide(rng, users_in, field, config.demographic_dropout)
        _hide(rng, movies_in, "movie_id", config.movie_id_dropout)
        bias = -config.logq_weight * log_q[candidates][None, :]  # (1, candidates)
        if config.mask_rated:
            rated = _rated_columns(t, batch, candidates, column[: batch.size])
            bias = np.where(rated, -1e4, bias).astype(np.float32)
        users = model.encode_users(to_tensors(users_in))  # (batch, dim)
        items = model.encode_movies(to_tensors(movies_in))  # (candidates, dim)
        logits = paddle.matmul(users, items, transpose_y=True) / config.temperature + paddle.to_tensor(bias)
        labels = paddle.to_tensor(column[: batch.size].reshape(-1).astype(np.int64))
        return F.cross_entropy(logits, labels)  # (batch, candidates) logits -> scalar

    return loss


def _hide(rng: np.random.Generator, inputs: Arrays, field: str, rate: float) -> None:
    """Set the field to 0, "unknown", in each row with chance `rate`."""
    if rate:
        inputs[field] = np.where(rng.random(inputs[field].shape[0]) < rate, 0, inputs[field])


def _rated_columns(
    t: Timeline,
    batch: npt.NDArray[np.int64],
    candidates: npt.NDArray[np.int64],
    positive: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Return (batch, candidates): True where the row's user rated that candidate (sorted distinct movie
    rows) before the event."""
    rows, events = t.events_before(batch)
    movie = t.movie_row[events]
    column = np.minimum(np.searchsorted(candidates, movie), candidates.size - 1)
    hit = candidates[column] == movie
    mask = np.zeros((batch.size, candidates.size), dtype=bool)
    mask[rows[hit], column[hit]] = True
    mask[np.arange(batch.size), positive] = False  # a re-rated movie stays its own positive
    return mask


def movie_vectors(model: paddle.nn.Layer, arrays: Arrays) -> npt.NDArray[np.float32]:
    """Return (n, dim) vectors of the movies whose feature arrays (ml.features) are given, in chunks."""
    model.eval()
    n = arrays["movie_id"].shape[0]
    with paddle.no_grad():
        parts = [
            model.encode_movies(to_tensors({k: v[s : s + _ENCODE_CHUNK] for k, v in arrays.items()})).numpy()
            for s in range(0, n, _ENCODE_CHUNK)
        ]
    return np.concatenate(parts).astype(np.float32)


def vector_scorer(
    model: paddle.nn.Layer, prepared: Prepared, config: TrainConfig, movies: Arrays | None = None
) -> ScoreFn:
    """Return a score function: inner products of user states (at event positions) with the vectors of
    every movie, encoded from `movies` (feature arrays by movie row; prepared.movies when None)."""
    items = movie_vectors(model, prepared.movies if movies is None else movies)  # and the model in eval mode

    def score(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        with paddle.no_grad():
            users = model.encode_users(to_tensors(prepared.user_inputs(positions, config.history_length)))
        return users.numpy() @ items.T

    return score
