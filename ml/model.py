"""The two-tower model: one Tower class turns named integer features into an L2-normalised vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ml.config import TrainConfig
from ml.paddle_setup import paddle

nn = paddle.nn
Tensor = paddle.Tensor
USER_IDS = ("user_id", "gender", "age", "occupation", "zip")  # the user tower's one-value inputs, in order


def l2_normalise(x: Tensor) -> Tensor:
    """Return rows scaled to unit length (rsqrt form: its backward is faster than F.normalize's)."""
    return x * paddle.rsqrt((x * x).sum(axis=-1, keepdim=True) + 1e-12)


def inverse_count(count: Tensor) -> Tensor:
    """Return 1 / count, a count below 1 taken as 1, to average by. Neither Tensor.clip nor `/` by a
    tensor: converted to a static graph (the user tower saved with a version) both pass an `out`
    argument, which Paddle warns about in a line of its own on every save."""
    return paddle.reciprocal(paddle.maximum(count, paddle.full([1], 1.0)))


class IdField(nn.Layer):
    """One categorical value per row; index 0 (unknown) has its own learned vector."""

    padding_idx: int | None = None

    def __init__(self, key: str, size: int, dim: int) -> None:
        super().__init__()
        self.key, self.out_dim = key, dim
        self.table = nn.Embedding(size, dim, padding_idx=self.padding_idx)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.table(inputs[self.key])  # (batch, dim)


class BagField(IdField):
    """A padded set of values per row (genres, title words, text buckets), mean-pooled; index 0 is padding."""

    padding_idx = 0

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        ids = inputs[self.key]  # (batch, n)
        inverse = inverse_count((ids > 0).astype("float32").sum(axis=1, keepdim=True))  # (batch, 1)
        return self.table(ids).sum(axis=1) * inverse  # (batch, dim)


class HistoryField(nn.Layer):
    """The user's most recent rated movies, newest first, pooled once per window length, e.g. (50, 5, 1):
    taste, current intent, the last transition; with learned weights per position (initially a mean
    over the window) and per star, so a 1-star rating can push away."""

    def __init__(self, size: int, dim: int, windows: Sequence[int]) -> None:
        super().__init__()
        length, pools = max(windows), len(windows)
        self.out_dim = pools * dim
        self.table = nn.Embedding(size, dim, padding_idx=0)
        self.star_weight = nn.Embedding(6, pools, weight_attr=nn.initializer.Constant(1.0))  # (star, pool)
        # (length, pools): whether each position is inside each pooling's window
        cover = np.stack([np.arange(length) < w for w in windows], axis=1).astype("float32")
        self.window = self.create_parameter([length, pools], default_initializer=nn.initializer.Assign(cover))
        # the mean divides by how many positions each pooling covers: fixed, not learned
        self.register_buffer("cover", paddle.to_tensor(cover), persistable=False)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        movies, stars = inputs["history"], inputs["history_rating"]  # (batch, length) each
        present = (movies > 0).astype("float32").unsqueeze(-1)  # (batch, length, 1)
        inverse = inverse_count((present * self.cover).sum(axis=1, keepdim=True))  # (batch, 1, pools)
        weights = present * self.window * self.star_weight(stars) * inverse  # (batch, length, pools)
        weights = weights.transpose([0, 2, 1])  # (batch, pools, length)
        pooled = paddle.bmm(weights, self.table(movies))  # (batch, pools, dim)
        return pooled.flatten(start_axis=1)  # (batch, pools * dim)


class Tower(nn.Layer):
    """Concatenated field embeddings -> MLP -> unit vector."""

    def __init__(self, fields: Sequence[nn.Layer], hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.fields = nn.LayerList(fields)
        width = sum(f.out_dim for f in fields)
        self.mlp = nn.Sequential(nn.Linear(width, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim))

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        x = paddle.concat([f(inputs) for f in self.fields], axis=-1)  # (batch, sum of field dims)
        return l2_normalise(self.mlp(x))  # (batch, output_dim)


class TwoTower(nn.Layer):
    """User tower over id, demographics and rating history; movie tower over id, genres, year, title
    and, when sizes has "text", the hashed words and tags of the movie's description."""

    def __init__(self, config: TrainConfig, sizes: Mapping[str, int]) -> None:
        super().__init__()
        d = config.embedding_dim
        user_fields: list[nn.Layer] = [IdField(key, sizes[key], d) for key in USER_IDS]
        windows = (config.history_length, config.recent_length, 1)[: 3 if config.pool_last else 2]
        user_fields.append(HistoryField(sizes["movie_id"], d, windows))
        if config.gap_feature:
            user_fields.append(IdField("gap", sizes["gap"], d))
        self.user_tower = Tower(user_fields, config.hidden_dim, config.output_dim)
        movie_fields = [
            IdField("movie_id", sizes["movie_id"], d),
            BagField("genres", sizes["genres"], d),
            BagField("title", sizes["title"], d),
            IdField("year", sizes["year"], d),
        ]
        if sizes.get("text"):
            movie_fields.append(BagField("text", sizes["text"], d))
        self.movie_tower = Tower(movie_fields, config.hidden_dim, config.output_dim)

    def encode_users(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.user_tower(inputs)  # (batch, output_dim)

    def encode_movies(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.movie_tower(inputs)  # (batch, output_dim)
