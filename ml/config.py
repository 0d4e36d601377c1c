"""Hyperparameters of the two-tower model and its training, saved with every model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

GAP_BUCKETS = 22  # 0 = no history, then log2 buckets of minutes since the newest rating (ml.features)


@dataclass(frozen=True)
class TrainConfig:
    # --- model ---
    embedding_dim: int = 64  # width of every id / feature embedding inside the towers
    hidden_dim: int = 128  # width of the hidden layer of each tower's MLP
    output_dim: int = 256  # width of the L2-normalised user and movie vectors (Milvus dim)
    history_length: int = 50  # most recent ratings the user tower pools (long-term taste)
    recent_length: int = 5  # of those, the newest pooled again separately (current intent)
    pool_last: bool = True  # pool the newest rating alone too (item-to-item transitions)
    # user feature: log-bucketed time from the newest rating to the request. Off: served on data
    # older than the request it read "long ago" for every user and full-ranking hits collapsed
    # (docs/figures.md), and kept lists went stale as the clock moved
    gap_feature: bool = False
    # the longest gap bucket: longer gaps share it (15: 2^14 minutes, 11 days, or more), so a user
    # back after years (or old data served today) reads a bucket thousands of training events filled
    gap_cap: int = 15
    zip_prefix_length: int = 2  # leading zip-code characters used as a coarse region feature
    title_min_count: int = 2  # a title word needs this many movies to get its own embedding
    # hash buckets of the movie tower's bag of description words and tags (0: no text feature); the
    # field is built only when some movie of the dataset has text
    text_buckets: int = 2048
    # chance a training example hides its user id (trains the id-less path; 1.0 = never use user ids)
    user_id_dropout: float = 0.1
    # chance a training candidate hides its movie id (trains the feature-only path for new movies)
    movie_id_dropout: float = 0.1
    # chance a training example hides each demographic (gender, age, occupation, zip) on its own: the
    # "unknown" rows then learn, for users and datasets without demographics
    demographic_dropout: float = 0.1
    # --- loss ---
    temperature: float = 0.07  # softmax temperature over inner products of unit vectors
    # weight of the logQ correction: each logit loses weight * log(expected count among the candidates),
    # undoing the popularity bias of in-batch sampling (1 = full correction, 0 = none)
    logq_weight: float = 1.0
    # extra negatives per batch drawn uniformly from trained movies (mixed negatives)
    uniform_negatives: int = 256
    # a row's softmax leaves out, as negatives, the movies its user rated before (serving never
    # recommends them, so pushing them down only fights the history)
    mask_rated: bool = True
    min_rating: float = 0.5  # ratings with at least this many stars are positives (0.5: every rating counts)
    # --- optimisation ---
    batch_size: int = 512  # positives per step; the other positives of the batch are the negatives
    learning_rate: float = 3e-3  # Adam step size
    lr_decay: bool = True  # cosine decay of the step size to 10% over the planned epochs
    weight_decay: float = 0.0  # L2 penalty on all parameters (Adam's coupled form)
    epochs: int = 7  # upper bound on passes over the training events
    # A random sample of this many training events per epoch, a new one each epoch (0: all of them):
    # on tens of millions of ratings, an epoch of all of them takes longer than a model may.
    examples_per_epoch: int = 0
    patience: int = 2  # epochs without validation improvement before early stopping
    seed: int = 0  # seeds parameter init, shuffling, id dropout (not the evaluation negatives)
    num_threads: int = 1  # CPU threads for Paddle's kernels (two barely beat one at this size)
    # --- evaluation ---
    eval_negatives: int = 99  # sampled unrated movies per user in the NCF protocol
    eval_seed: int = 0  # seeds those negatives; fixed so every model and training seed faces the same ones
    # Validation and test on the held-out ratings of at most this many users, drawn once (0: every
    # user): ranking every movie for each of 160,000 users takes minutes per evaluation.
    eval_users: int = 0
    monitor: str = "ndcg@10"  # validation metric that picks the best epoch and drives early stopping

    def history_windows(self) -> tuple[int, ...]:
        """Return the window length of each history pooling, longest first."""
        return (
            (self.history_length, self.recent_length, 1)
            if self.pool_last
            else (self.history_length, self.recent_length)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Return the config stored by to_dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def __post_init__(self) -> None:
        if self.recent_length > self.history_length:
            raise ValueError("recent_length cannot exceed history_length")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2: in-batch negatives need a batch")
        rates = (self.user_id_dropout, self.movie_id_dropout, self.demographic_dropout)
        if not all(0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError("dropout rates must be in [0, 1]")
        if not 1 <= self.gap_cap < GAP_BUCKETS:
            raise ValueError(f"gap_cap must be in [1, {GAP_BUCKETS - 1}]")
        if self.examples_per_epoch < 0 or self.eval_users < 0:
            raise ValueError("examples_per_epoch and eval_users must be 0 (all) or more")
        if self.text_buckets < 0:
            raise ValueError("text_buckets must be 0 (no text feature) or more")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
