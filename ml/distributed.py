"""Data-parallel training of the two-tower model over several CPU processes (Paddle collective, gloo).

Each process ("trainer") is started by Paddle's launcher, which tells it its rank and the others'
addresses:

    python -m paddle.distributed.launch --nproc_per_node 2 \
        bench/train_distributed.py --one-trainer --data-dir DIR --out DIR

Every trainer holds the whole model, trains on its own share of the positives with the same loss
as `ml.train.train`, and all-reduces (averages) the gradients after each backward pass, so the
parameters stay identical everywhere. A step trains on `trainers x batch_size` positives; each
trainer's softmax runs over its own `batch_size` positives and uniform negatives, as one trainer's
does. When one trainer fails, the launcher stops the others. Parameter-server mode (embedding
tables sharded over servers) needs a Paddle built with PSCORE, which the paddlepaddle 3.3.1 CPU wheel
is not (docs/deploy.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.config import TrainConfig
from ml.inputs import Prepared, prepare
from ml.model import TwoTower
from ml.movielens.format import Dataset
from ml.paddle_setup import paddle
from ml.train import TrainedModel, fit_vector_model, seed_everything, softmax_loss
from ml.trainer import LossFn, ProgressEvent

dist = paddle.distributed


@dataclasses.dataclass(frozen=True)
class Topology:
    """Where this trainer stands among the others."""

    rank: int  # 0 .. world - 1; rank 0's initial parameters are broadcast to the others
    world: int  # trainers in the job


class _SyncedLoss(paddle.nn.Layer):
    """A batch's loss as the forward of one layer that holds the model, for paddle.DataParallel.

    DataParallel all-reduces the gradients of the parameters its wrapped layer used in one forward
    call; the loss encodes users and movies in two calls, and two DataParallel forwards before one
    backward fail ("parameter ... has been ready before"), so the whole loss is the one forward.
    """

    def __init__(self, model: TwoTower, loss: LossFn) -> None:
        super().__init__()
        self.model = model  # a sublayer: DataParallel hooks its parameters
        self._loss = loss

    def forward(self, batch: npt.NDArray[np.int64], rng: np.random.Generator) -> paddle.Tensor:
        return self._loss(batch, rng)  # scalar


def synced(model: TwoTower, loss: LossFn) -> LossFn:
    """Return the loss with its gradients averaged over every trainer at each backward pass."""
    parallel = paddle.DataParallel(_SyncedLoss(model, loss))  # broadcasts rank 0's parameters

    def step_loss(batch: npt.NDArray[np.int64], rng: np.random.Generator) -> paddle.Tensor:
        return parallel(batch, rng)

    return step_loss


def init_trainer() -> Topology:
    """Join the job the launcher started (gloo on CPU) and return this trainer's place in it."""
    dist.init_parallel_env()
    return Topology(rank=dist.get_rank(), world=dist.get_world_size())


def shard(positives: npt.NDArray[np.int64], topology: Topology) -> npt.NDArray[np.int64]:
    """Return this trainer's positives: every world-th one from its rank, all shards the same size.

    Equal sizes give every trainer the same number of steps; a trainer with one step more would wait
    forever in its all-reduce. At most world - 1 positives are left out.
    """
    per_trainer = positives.size // topology.world
    return positives[topology.rank :: topology.world][:per_trainer]


def train_data_parallel(
    dataset: Dataset,
    config: TrainConfig,
    topology: Topology,
    *,
    callback: Callable[[ProgressEvent], None] | None = None,
    progress: bool = False,
) -> TrainedModel:
    """Return the two-tower model trained by this trainer together with the others of the job.

    Every trainer returns the same parameters; each one's reported loss is that of its own shard.
    """
    started = time.perf_counter()
    seed_everything(config)
    prepared: Prepared = prepare(dataset, config)
    model = TwoTower(config, prepared.sizes())
    # A seed of its own per trainer: its shard's shuffling, id dropout and uniform negatives differ.
    local = dataclasses.replace(config, seed=config.seed + topology.rank)
    trained = fit_vector_model(
        model,
        dataclasses.replace(prepared, positives=shard(prepared.positives, topology)),
        local,
        loss=synced(model, softmax_loss(model, prepared, local)),
        callback=callback,
        progress=progress,
        setup=time.perf_counter() - started,
    )
    return dataclasses.replace(trained, config=config, prepared=prepared)


def parameters(model: paddle.nn.Layer) -> dict[str, Any]:
    """Return the model's parameters as numpy arrays, by name."""
    return {name: value.numpy() for name, value in model.state_dict().items()}
