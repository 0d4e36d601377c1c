"""Hyperparameters of the two-tower model and its training, saved with every model version."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any, TypeVar, get_type_hints

GAP_BUCKETS = 22  # 0 = no history, then log2 buckets of minutes since the newest rating (ml.features)

T = TypeVar("T")
# A field's group, written in its type (`epochs: Train[int]`): pages that show a config read it there.
Model = Annotated[T, "Model"]  # the towers: sizes, features, id dropout
Loss = Annotated[T, "Loss"]  # what a batch's softmax compares and counts as positive
Train = Annotated[T, "Training"]  # the optimiser, the passes over the data, seeds
Eval = Annotated[T, "Evaluation"]  # validation and test: the protocol and the metric that picks the epoch


@dataclass(frozen=True)
class TrainConfig:
    embedding_dim: Model[int] = 64  # width of every id / feature embedding inside the towers
    hidden_dim: Model[int] = 128  # width of the hidden layer of each tower's MLP
    output_dim: Model[int] = 256  # width of the L2-normalised user and movie vectors (Milvus dim)
    history_length: Model[int] = 50  # most recent ratings the user tower pools (long-term taste)
    recent_length: Model[int] = 5  # of those, the newest pooled again separately (current intent)
    pool_last: Model[bool] = True  # pool the newest rating alone too (item-to-item transitions)
    # user feature: log-bucketed time from the newest rating to the request; off, as on data older
    # than the request it reads "long ago" for every user, and kept lists go stale as the clock moves
    gap_feature: Model[bool] = False
    gap_cap: Model[int] = 15  # the longest gap bucket (2^14 minutes, 11 days): longer gaps share its training
    zip_prefix_length: Model[int] = 2  # leading zip-code characters used as a coarse region feature
    title_min_count: Model[int] = 2  # a title word needs this many movies to get its own embedding
    text_buckets: Model[int] = 2048  # hash buckets of movies' description words and tags (0: no text feature)
    user_id_dropout: Model[float] = 0.1  # chance an example hides its user id (trains the id-less path)
    movie_id_dropout: Model[float] = 0.1  # chance a candidate hides its movie id (trains the new-movie path)
    demographic_dropout: Model[float] = 0.1  # chance an example hides each demographic (trains "unknown")
    temperature: Loss[float] = 0.07  # softmax temperature over inner products of unit vectors
    logq_weight: Loss[float] = 1.0  # logQ correction of in-batch sampling's popularity bias (1 full, 0 none)
    uniform_negatives: Loss[int] = 256  # extra negatives per batch drawn uniformly from trained movies
    # leave a user's rated movies out of its negatives (serving never shows them)
    mask_rated: Loss[bool] = True
    # ratings with at least this many stars are positives (0.5: every rating counts)
    min_rating: Loss[float] = 0.5
    batch_size: Train[int] = 512  # positives per step; the other positives of the batch are the negatives
    learning_rate: Train[float] = 3e-3  # Adam step size
    lr_decay: Train[bool] = True  # cosine decay of the step size to 10% over the planned epochs
    weight_decay: Train[float] = 0.0  # L2 penalty on all parameters (Adam's coupled form)
    epochs: Train[int] = 7  # upper bound on passes over the training events
    # give a user's training ratings within one second a new random order each epoch (ml.split orders
    # them by movie id, an artefact a model could learn); validation, test and serving keep that order
    shuffle_ties: Train[bool] = True
    examples_per_epoch: Train[int] = 0  # a new random sample of this many training events an epoch (0: all)
    patience: Train[int] = 2  # epochs without validation improvement before early stopping
    seed: Train[int] = 0  # seeds parameter init, shuffling, id dropout (not the evaluation negatives)
    num_threads: Train[int] = 1  # CPU threads for Paddle's kernels
    eval_negatives: Eval[int] = 99  # sampled unrated movies per user in the NCF protocol
    # seeds those negatives; fixed so every model and training seed faces the same ones
    eval_seed: Eval[int] = 0
    # validate and test on at most this many users' held-out ratings, drawn once (0: all)
    eval_users: Eval[int] = 0
    monitor: Eval[str] = "ndcg@10"  # validation metric that picks the best epoch and drives early stopping

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Return the config stored by dataclasses.asdict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def groups(cls) -> dict[str, str]:
        """Return each field's group (Model, Loss, Training, Evaluation), in the fields' order."""
        hints = get_type_hints(cls, include_extras=True)
        return {f.name: hints[f.name].__metadata__[0] for f in fields(cls)}

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
