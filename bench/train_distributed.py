"""Training with several CPU trainers (Paddle collective, gloo; 2 by default) against one process.

Run as a benchmark, it trains the two-tower model once in this process (`ml.train.train`) and once
with `python -m paddle.distributed.launch --nproc_per_node N` running this file with `--one-trainer`,
then prints each one's wall time (launch included), training seconds and test metrics, checks that
the trainers ended with the same parameters, and writes bench/results/train_distributed.json.
Without --data-dir it trains on a synthetic sample (ml/movielens/synthetic.py).

    .venv/bin/python bench/train_distributed.py --data-dir ../shared/datasets/ml-1m-head --epochs 2

With --one-trainer it is one trainer of a job Paddle's launcher started (which tells it its rank
and the others' addresses): it trains with train_data_parallel and writes rank<R>.json (losses,
shard size, metrics, seconds) and rank<R>.npz (parameters) into --out.

Every trainer holds the whole model, trains on its own share of the positives with the same loss
as `ml.train.train`, and all-reduces (averages) the gradients after each backward pass, so the
parameters stay identical everywhere. A step trains on `trainers x batch_size` positives; each
trainer's softmax runs over its own `batch_size` positives and uniform negatives, as one trainer's
does. When one trainer fails, the launcher stops the others. Parameter-server mode (embedding
tables sharded over servers) needs a Paddle built with PSCORE, which the paddlepaddle 3.3.1 CPU wheel
is not (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ml.config import TrainConfig
from ml.inputs import prepare
from ml.model import TwoTower
from ml.movielens.format import Dataset
from ml.movielens.layouts import load_ml1m
from ml.movielens.synthetic import write_synthetic
from ml.paddle_setup import paddle
from ml.train import EpochData, TrainedModel, fit_vector_model, seed_everything, softmax_loss, train
from ml.training_loop import LossFn

RESULTS = Path(__file__).resolve().parent / "results" / "train_distributed.json"
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


def train_data_parallel(dataset: Dataset, config: TrainConfig, topology: Topology) -> TrainedModel:
    """Return the two-tower model trained by this trainer together with the others of the job.

    Every trainer returns the same parameters; each one's reported loss is that of its own shard.
    """
    started = time.perf_counter()
    seed_everything(config)
    prepared = prepare(dataset, config)
    model = TwoTower(config, prepared.sizes())
    # A seed of its own per trainer: its shard's shuffling, id dropout and uniform negatives differ.
    local = dataclasses.replace(config, seed=config.seed + topology.rank)
    trained = fit_vector_model(
        model,
        dataclasses.replace(prepared, positives=shard(prepared.positives, topology)),
        local,
        loss=synced(model, softmax_loss(model, EpochData(prepared, shuffle_ties=False), local)),
        progress=False,
        setup=time.perf_counter() - started,
    )
    return dataclasses.replace(trained, config=config, prepared=prepared)


def parameters(model: paddle.nn.Layer) -> dict[str, Any]:
    """Return the model's parameters as numpy arrays, by name."""
    return {name: value.numpy() for name, value in model.state_dict().items()}


def config_of(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden_dim,
        patience=args.epochs,  # every epoch runs: the runs compare like with like
    )


def run_trainer(args: argparse.Namespace) -> None:
    """Train as one trainer of the launched job and write what it did into args.out."""
    topology = init_trainer()
    dataset = load_ml1m(args.data_dir)
    trained = train_data_parallel(dataset, config_of(args), topology)
    report = {
        "rank": topology.rank,
        "world": topology.world,
        "positives": int(trained.prepared.positives.size),
        "shard": int(trained.prepared.positives.size // topology.world),
        "losses": [epoch["loss"] for epoch in trained.result.history],
        "metrics": trained.metrics,
        "train_seconds": trained.result.train_seconds,
        "wall_seconds": trained.wall_seconds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / f"rank{topology.rank}.npz", **parameters(trained.model))
    (args.out / f"rank{topology.rank}.json").write_text(json.dumps(report, indent=2))


def launch_command(args: argparse.Namespace, out: Path, log_dir: Path) -> list[str]:
    """Return the launcher command that runs args.trainers trainers of this file on this machine."""
    return [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        str(args.trainers),
        "--log_dir",
        str(log_dir),
        __file__,
        "--one-trainer",
        "--data-dir",
        str(args.data_dir),
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--embedding-dim",
        str(args.embedding_dim),
        "--hidden-dim",
        str(args.hidden_dim),
    ]


def benchmark(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="train-distributed-") as tmp:
        compare(args, Path(tmp))


def compare(args: argparse.Namespace, work: Path) -> None:
    """Train in this process, then with args.trainers launched trainers; print and write both."""
    data = (
        f"synthetic, {args.users} users, {args.movies} movies"
        if args.data_dir is None
        else str(args.data_dir)
    )
    if args.data_dir is None:
        args.data_dir = write_synthetic(work / "data", users=args.users, movies=args.movies)
    dataset = load_ml1m(args.data_dir)
    started = time.perf_counter()
    single = train(dataset, config_of(args), progress=False)
    single_wall = time.perf_counter() - started
    print(f"1 process: {single_wall:.1f} s, train {single.result.train_seconds:.1f} s, {single.metrics}")

    out, log_dir = work / "out", work / "log"
    started = time.perf_counter()
    subprocess.run(launch_command(args, out, log_dir), check=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    launched_wall = time.perf_counter() - started
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(args.trainers)]
    first = np.load(out / "rank0.npz")
    same = all(
        np.array_equal(first[name], np.load(out / f"rank{r}.npz")[name])
        for r in range(1, args.trainers)
        for name in first.files
    )
    print(
        f"{args.trainers} trainers: {launched_wall:.1f} s with the launcher, train "
        f"{max(r['train_seconds'] for r in reports):.1f} s, {reports[0]['metrics']}, "
        f"parameters identical: {same}"
    )
    result: dict[str, Any] = {
        "data": data,
        "config": dataclasses.asdict(config_of(args)),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "one_process": {
            "wall_seconds": single_wall,
            "train_seconds": single.result.train_seconds,
            "losses": [epoch["loss"] for epoch in single.result.history],
            "metrics": single.metrics,
        },
        "trainers": args.trainers,
        "launched_wall_seconds": launched_wall,
        "ranks": reports,
        "parameters_identical": same,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one-trainer", action="store_true", help="be one trainer of a launched job")
    parser.add_argument("--data-dir", type=Path, help="an ML-1M format directory (default: synthetic)")
    parser.add_argument("--out", type=Path, help="where a trainer writes rank<R>.json and rank<R>.npz")
    parser.add_argument("--trainers", type=int, default=2, help="trainers the benchmark launches")
    parser.add_argument("--users", type=int, default=600, help="synthetic users, without --data-dir")
    parser.add_argument("--movies", type=int, default=400, help="synthetic movies, without --data-dir")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--embedding-dim", type=int, default=TrainConfig.embedding_dim)
    parser.add_argument("--hidden-dim", type=int, default=TrainConfig.hidden_dim)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    if args.one_trainer:
        if args.data_dir is None or args.out is None:
            parser.error("--one-trainer needs --data-dir and --out")
        run_trainer(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
