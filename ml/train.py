"""Train the two-tower model with in-batch sampled softmax, and score any vector model for evaluation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
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
from ml.training_loop import Batching, Callback, FitResult, LossFn, fit

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
    examples, batching, before_epoch = prepared.positives, None, None
    if loss is None:
        epoch = EpochData(prepared, config.shuffle_ties)
        before_epoch = epoch.shuffle
        loss = softmax_loss(model, epoch, config)
        if config.sequence_training and isinstance(model, TwoTower):
            starts, ends = training_windows(t, config.window_targets)
            examples = np.arange(starts.size)
            ratings = t.train.size / starts.size  # targets a window, on average
            per_epoch = max(1, round(config.examples_per_epoch / ratings)) if config.examples_per_epoch else 0
            batching = Batching(max(2, round(config.batch_size / ratings)), per_epoch, ratings)
            loss = sequence_loss(model, epoch, config, starts, ends)
    result = fit(
        model,
        examples,
        loss,
        config,
        validate=lambda: valid.evaluate(vector_scorer(model, prepared, config)),
        callback=callback,
        progress=progress,
        batching=batching,
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


def training_windows(t: Timeline, length: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the [start, end) positions of each user's training events cut into runs of `length`
    targets (a window's inputs add the history_length events before its first target)."""
    train = t.train
    first = np.flatnonzero(np.r_[True, np.diff(train) != 1])  # each user's training events are one run
    run_start, run_end = train[first], train[np.r_[first[1:], train.size] - 1] + 1
    per_run = -(-(run_end - run_start) // length)
    run = np.repeat(np.arange(run_start.size), per_run)
    starts = run_start[run] + length * (
        np.arange(run.size) - np.repeat(np.cumsum(per_run) - per_run, per_run)
    )
    return starts, np.minimum(starts + length, run_end[run])


def sequence_loss(
    model: TwoTower,
    epoch: EpochData,
    config: TrainConfig,
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
) -> LossFn:
    """Return the loss of a batch of windows (ids into starts / ends): one attention pass a window gives
    the state before each of its events, each event a target of the sampled softmax."""
    softmax = SampledSoftmax(model, epoch.original, config)

    def loss(batch: npt.NDArray[np.int64], rng: np.random.Generator) -> paddle.Tensor:
        prepared = epoch.prepared
        users_in, targets = prepared.window_inputs(starts[batch], ends[batch], config.history_length)
        keep = prepared.timeline.rating[targets] >= config.min_rating
        if not keep.all():
            users_in = {k: v if k in ("window", "window_rating") else v[keep] for k, v in users_in.items()}
        return softmax(model.encode_user_sequences, users_in, targets[keep], prepared.timeline, rng)

    return loss


def softmax_loss(model: paddle.nn.Layer, epoch: EpochData, config: TrainConfig) -> LossFn:
    """Return the loss of a batch of rating events, each with its own history."""
    softmax = SampledSoftmax(model, epoch.original, config)

    def loss(batch: npt.NDArray[np.int64], rng: np.random.Generator) -> paddle.Tensor:
        prepared = epoch.prepared
        batch = batch[prepared.timeline.rating[batch] >= config.min_rating]  # a tie shuffled in may not be
        users_in = prepared.user_inputs(batch, config.history_length)
        return softmax(model.encode_users, users_in, batch, prepared.timeline, rng)

    return loss


class SampledSoftmax:
    """The loss of user states against their events' movies: a softmax over the batch's movies (plus
    uniform negatives), corrected by the log of each movie's expected count among the candidates (logQ)."""

    def __init__(self, model: paddle.nn.Layer, prepared: Prepared, config: TrainConfig) -> None:
        self.encode_movies, self.prepared, self.config = model.encode_movies, prepared, config
        self.trained = np.flatnonzero(prepared.movies["movie_id"] > 0)  # movie rows with a trained id
        share = np.exp(prepared.log_q.astype(np.float64))
        expected = config.batch_size * share + config.uniform_negatives / self.trained.size
        self.log_q = np.log(expected).astype(np.float32)

    def __call__(
        self,
        encode_users: Callable[[dict[str, paddle.Tensor]], paddle.Tensor],
        users_in: Arrays,
        batch: npt.NDArray[np.int64],
        t: Timeline,
        rng: np.random.Generator,
    ) -> paddle.Tensor:
        """Return the mean loss of the states encode_users gives from users_in, one a position of batch."""
        config, prepared, trained = self.config, self.prepared, self.trained
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
        bias = -config.logq_weight * self.log_q[candidates][None, :]  # (1, candidates)
        if config.mask_rated:
            rated = _rated_columns(t, batch, candidates, column[: batch.size])
            bias = np.where(rated, -1e4, bias).astype(np.float32)
        users = encode_users(to_tensors(users_in))  # (batch, dim)
        items = self.encode_movies(to_tensors(movies_in))  # (candidates, dim)
        logits = paddle.matmul(users, items, transpose_y=True) / config.temperature + paddle.to_tensor(bias)
        labels = paddle.to_tensor(column[: batch.size].reshape(-1).astype(np.int64))
        return F.cross_entropy(logits, labels)  # (batch, candidates) logits -> scalar


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
    """Return (batch, candidates): True where the row's user rated that candidate before the event."""
    rows, events = t.events_before(batch)
    column_of = np.full(int(t.movie_row.max()) + 1, -1, dtype=np.int64)
    column_of[candidates] = np.arange(candidates.size)
    column = column_of[t.movie_row[events]]
    hit = column >= 0
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
