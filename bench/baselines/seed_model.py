"""The original design's model: PaddleRec's movie_recommand recall network, as published.

One embedding table (9-d) shared by every sparse feature; the user tower reads user id, gender,
age and occupation, the movie tower reads movie id, summed title words and summed genres; each
goes through an MLP [512, 256, 128, 32] with ReLU; the prediction is cosine × 5, trained with
mean squared error against the 1-5 star rating (PaddleRec models/demo/movie_recommand/recall).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ml.config import TrainConfig
from ml.inputs import Prepared, prepare, to_tensors
from ml.model import l2_normalise
from ml.movielens.format import Dataset
from ml.paddle_setup import paddle
from ml.train import TrainedModel, fit_vector_model, seed_everything
from ml.training_loop import LossFn

nn = paddle.nn
SPARSE_DIM = 9  # sparse_feature_dim in the published config
FC_SIZES = (512, 256, 128, 32)  # fc_sizes in the published config
USER_KEYS = ("user_id", "gender", "age", "occupation")
MOVIE_KEYS = ("movie_id", "title", "genres")


def _mlp(width: int) -> nn.Sequential:
    layers: list[nn.Layer] = []
    for size in FC_SIZES:
        init = nn.initializer.Normal(std=1.0 / math.sqrt(width))
        layers += [nn.Linear(width, size, weight_attr=paddle.ParamAttr(initializer=init)), nn.ReLU()]
        width = size
    return nn.Sequential(*layers)


class SeedModel(nn.Layer):
    """Shared-table sparse embeddings -> per-tower MLP -> 32-d; each feature has its own id range."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        super().__init__()
        keys: Sequence[str] = USER_KEYS + MOVIE_KEYS
        self.offsets = dict(zip(keys, np.cumsum([0] + [sizes[k] for k in keys[:-1]]).tolist(), strict=True))
        total = sum(sizes[k] for k in keys)
        self.table = nn.Embedding(total, SPARSE_DIM, weight_attr=nn.initializer.Uniform())
        self.user_mlp = _mlp(SPARSE_DIM * len(USER_KEYS))
        self.movie_mlp = _mlp(SPARSE_DIM * len(MOVIE_KEYS))

    def _embed(self, ids: paddle.Tensor, key: str) -> paddle.Tensor:
        emb = self.table(ids + self.offsets[key])  # (batch, dim) or (batch, n, dim)
        if key in ("title", "genres"):  # bags are summed; padding (0) contributes nothing
            emb = (emb * (ids > 0).astype("float32").unsqueeze(-1)).sum(axis=1)
        return emb  # (batch, dim)

    def encode_users(self, inputs: Mapping[str, paddle.Tensor]) -> paddle.Tensor:
        x = paddle.concat([self._embed(inputs[k], k) for k in USER_KEYS], axis=-1)  # (batch, 36)
        return l2_normalise(self.user_mlp(x))  # (batch, 32)

    def encode_movies(self, inputs: Mapping[str, paddle.Tensor]) -> paddle.Tensor:
        x = paddle.concat([self._embed(inputs[k], k) for k in MOVIE_KEYS], axis=-1)  # (batch, 27)
        return l2_normalise(self.movie_mlp(x))  # (batch, 32)


def mse_loss(model: SeedModel, prepared: Prepared, config: TrainConfig) -> LossFn:
    """Return the batch loss: squared error of cosine × 5 against the star rating."""
    t = prepared.timeline

    def loss(batch: npt.NDArray[np.int64], rng: np.random.Generator) -> paddle.Tensor:
        users = model.encode_users(to_tensors(prepared.user_inputs(batch, 1)))  # (batch, 32)
        movies = model.encode_movies(to_tensors(prepared.movie_inputs(t.movie_row[batch])))  # (batch, 32)
        predicted = 5.0 * (users * movies).sum(axis=-1)  # (batch,)
        stars = paddle.to_tensor(t.rating[batch].astype(np.float32))
        return ((predicted - stars) ** 2).mean()

    return loss


def train_seed_model(dataset: Dataset, config: TrainConfig, *, progress: bool = True) -> TrainedModel:
    """Return the seed model trained on every training rating (MSE), evaluated like the others."""
    started = time.perf_counter()
    config = dataclasses.replace(config, min_rating=1, user_id_dropout=0.0, movie_id_dropout=0.0)
    seed_everything(config)
    prepared = prepare(dataset, config)
    model = SeedModel(prepared.sizes())
    return fit_vector_model(
        model, prepared, config, progress=progress, setup=time.perf_counter() - started,
        loss=mse_loss(model, prepared, config),
    )  # fmt: skip
