"""Matrix factorisation over ids only, trained with the two-tower's sampled-softmax loss."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

from ml.config import TrainConfig
from ml.inputs import prepare
from ml.model import l2_normalise
from ml.movielens.format import Dataset
from ml.paddle_setup import paddle
from ml.train import TrainedModel, fit_vector_model, seed_everything

nn = paddle.nn


class MatrixFactorisation(nn.Layer):
    """A user id table and a movie id table; the score is the cosine of the two rows."""

    def __init__(self, users: int, movies: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(users, dim)
        self.movies = nn.Embedding(movies, dim)

    def encode_users(self, inputs: Mapping[str, paddle.Tensor]) -> paddle.Tensor:
        return l2_normalise(self.users(inputs["user_id"]))  # (batch, dim)

    def encode_movies(self, inputs: Mapping[str, paddle.Tensor]) -> paddle.Tensor:
        return l2_normalise(self.movies(inputs["movie_id"]))  # (batch, dim)


def train_mf(dataset: Dataset, config: TrainConfig, *, progress: bool = True) -> TrainedModel:
    """Return MF trained and evaluated exactly like the two-tower model, minus features and history."""
    started = time.perf_counter()
    config = dataclasses.replace(config, user_id_dropout=0.0, movie_id_dropout=0.0)  # ids are all MF has
    seed_everything(config)
    prepared = prepare(dataset, config)
    sizes = prepared.sizes()
    model = MatrixFactorisation(sizes["user_id"], sizes["movie_id"], config.embedding_dim)
    return fit_vector_model(model, prepared, config, progress=progress, setup=time.perf_counter() - started)
