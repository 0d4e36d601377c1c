"""The two-tower model: one Tower class turns named integer features into an L2-normalised vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ml.config import TrainConfig
from ml.paddle_setup import paddle

nn = paddle.nn
F = paddle.nn.functional
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


class AttentionHistoryField(nn.Layer):
    """The user's most recent rated movies read by one causal self-attention block: each position is a
    movie embedding plus a star embedding; the newest one queries the window, with a learned bias per
    head and recency (how many ratings back a key is), so position is relative and the state before
    any event of a sequence is the state serving computes from the history before it.

    One block, not a stack: a second block would let a state see past the `length` ratings serving has
    (its keys' own keys), and the trained states would no longer be the served ones."""

    def __init__(self, size: int, dim: int, length: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError("embedding_dim must be a multiple of attention_heads")
        self.out_dim, self.length, self.heads = dim, length, heads
        self.table = nn.Embedding(size, dim, padding_idx=0)
        self.star = nn.Embedding(6, dim, padding_idx=0)
        self.recency = self.create_parameter(
            [heads, length], default_initializer=nn.initializer.Constant(0.0)
        )
        self.norm_in, self.norm_mid, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.query, self.key_value = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.project = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def _tokens(self, movies: Tensor, stars: Tensor) -> tuple[Tensor, Tensor]:
        """Return each position's embedding (batch, n, dim) and 0 / -1e9 for a movie / padding (batch, n)."""
        present = movies > 0
        x = self.table(movies) + self.star(stars * present.astype("int64"))  # (batch, n, dim)
        return x, (1.0 - present.astype("float32")) * -1e9  # -1e9, not -inf: an empty history stays finite

    def _heads(self, x: Tensor) -> Tensor:
        return x.reshape([0, 0, self.heads, -1]).transpose([0, 2, 1, 3])  # (batch, heads, n, dim / heads)

    def _attend(self, x: Tensor, newest_only: bool, bias: Tensor) -> Tensor:
        """Return the attention's residual output (batch, queries, dim) at every position of x, or at the
        first only, each over the keys that bias (batch or 1, heads, queries, keys) leaves above -1e9."""
        normed = self.norm_in(x)  # (batch, n, dim)
        k, v = paddle.split(self.key_value(normed), 2, axis=-1)  # (batch, n, dim) each
        if newest_only:  # serving queries one position: project that one alone
            normed, x = normed[:, :1], x[:, :1]  # (batch, 1, dim)
        q = self.query(normed)  # (batch, queries, dim)
        scores = paddle.matmul(self._heads(q), self._heads(k), transpose_y=True)  # (batch, heads, queries, n)
        weights = F.softmax(scores * (self.out_dim // self.heads) ** -0.5 + bias, axis=-1)
        mixed = paddle.matmul(weights, self._heads(v)).transpose([0, 2, 1, 3]).flatten(start_axis=2)
        return x + self.project(mixed)  # (batch, queries, dim)

    def _feed_forward(self, y: Tensor) -> Tensor:
        return self.norm_out(y + self.ffn(self.norm_mid(y)))  # (..., dim)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Return the state after the history (batch, dim): `history`, newest first, so that recency is
        the position and the newest movie, position 0, is the query."""
        x, padding = self._tokens(inputs["history"], inputs["history_rating"])  # (batch, length, dim)
        bias = self.recency.unsqueeze([0, 2]) + padding.unsqueeze([1, 2])  # (batch, heads, 1, length)
        return self._feed_forward(self._attend(x, True, bias).squeeze(1))  # (batch, dim)

    def states(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Return the state after each position of oldest-first windows (`window`, `window_rating`, each
        (windows, n)), gathered at (`window_row`, `window_slot`) (targets,): (targets, dim). A position
        sees itself and the `length` - 1 before it, so its state is the served state of that history."""
        movies = inputs["window"]
        n = movies.shape[1]
        x, padding = self._tokens(movies, inputs["window_rating"])  # (windows, n, dim)
        distance = np.arange(n)[:, None] - np.arange(n)[None, :]  # query - key, in ratings back
        inside = (distance >= 0) & (distance < self.length)
        index = paddle.to_tensor(np.clip(distance, 0, self.length - 1).reshape(-1))
        # far below padding's -1e9, which a history of padding only must still attend to, as served
        band = paddle.to_tensor(np.where(inside, 0.0, -1e30).astype("float32"))  # (n, n)
        recency = paddle.index_select(self.recency, index, axis=1).reshape([self.heads, n, n]) + band
        bias = recency.unsqueeze(0) + padding.unsqueeze([1, 2])  # (windows, heads, n, n)
        out = self._attend(x, False, bias)  # (windows, n, dim)
        at = paddle.stack([inputs["window_row"], inputs["window_slot"]], axis=1)  # (targets, 2)
        return self._feed_forward(paddle.gather_nd(out, at))  # (targets, dim)


class Tower(nn.Layer):
    """Concatenated field embeddings -> MLP -> unit vector."""

    def __init__(self, fields: Sequence[nn.Layer], hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.fields = nn.LayerList(fields)
        width = sum(f.out_dim for f in fields)
        self.mlp = nn.Sequential(nn.Linear(width, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim))

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.head([f(inputs) for f in self.fields])  # (batch, output_dim)

    def head(self, parts: Sequence[Tensor]) -> Tensor:
        """Return the unit vectors (batch, output_dim) of the fields' outputs, each (batch, field dim)."""
        return l2_normalise(self.mlp(paddle.concat(list(parts), axis=-1)))


class TwoTower(nn.Layer):
    """User tower over id, demographics and rating history (attention or pooled); movie tower over id,
    genres, year, title and, when sizes has "text", the hashed words and tags of the movie's description."""

    def __init__(self, config: TrainConfig, sizes: Mapping[str, int]) -> None:
        super().__init__()
        d = config.embedding_dim
        user_fields: list[nn.Layer] = [IdField(key, sizes[key], d) for key in USER_IDS]
        if config.history_encoder == "attention":
            user_fields.append(
                AttentionHistoryField(sizes["movie_id"], d, config.history_length, config.attention_heads)
            )
        else:
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

    def encode_user_sequences(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Return (targets, output_dim): the user state before each target of a batch of windows (the
        attention history's `states` inputs, every other user input one row a target)."""
        tower = self.user_tower
        return tower.head(
            [f.states(inputs) if isinstance(f, AttentionHistoryField) else f(inputs) for f in tower.fields]
        )

    def encode_movies(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.movie_tower(inputs)  # (batch, output_dim)
