"""Two CPU trainers launched by Paddle's launcher train the two-tower model together (collective, gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.baselines.popularity import popularity_scorer
from ml.evaluate import Protocol
from ml.movielens.layouts import load_ml1m
from ml.movielens.synthetic import write_synthetic
from ml.paddle_setup import paddle
from ml.split import build_timeline

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "train_distributed.py"
TRAINERS = 2
LAUNCH_TIMEOUT_S = 180  # a trainer stuck in an all-reduce would otherwise hang the suite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not paddle.is_compiled_with_distribute(),
        reason="this Paddle build has no distributed support (paddle.is_compiled_with_distribute() is False)",
    ),
]


def launch(data: Path, out: Path, log_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the trainers as docs/deploy.md says, and return the launcher's finished process."""
    command = [
        sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(TRAINERS),
        "--log_dir", str(log_dir), str(SCRIPT), "--one-trainer", "--data-dir", str(data), "--out", str(out),
        "--epochs", "2", "--batch-size", "128", "--embedding-dim", "16", "--hidden-dim", "64",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and the trainers it started
        process.communicate()
        pytest.fail(f"the trainers did not finish within {LAUNCH_TIMEOUT_S} s:\n{worker_logs(log_dir)}")
    return subprocess.CompletedProcess(command, process.returncode, stdout)


def worker_logs(log_dir: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(log_dir.glob("workerlog.*")))


def test_two_trainers_train_one_model_on_halves_of_the_data(tmp_path: Path) -> None:
    data = write_synthetic(tmp_path / "data", users=300, movies=200, ratings_per_user=(20, 60))
    out, log_dir = tmp_path / "out", tmp_path / "log"

    finished = launch(data, out, log_dir)

    assert finished.returncode == 0, f"{finished.stdout[-3000:]}\n{worker_logs(log_dir)}"
    reports = [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(TRAINERS)]
    assert [(r["rank"], r["world"]) for r in reports] == [(0, TRAINERS), (1, TRAINERS)]
    dataset = load_ml1m(data)
    timeline = build_timeline(dataset)
    assert reports[0]["positives"] == timeline.train.size  # every training rating is a positive (0.5+)
    assert all(r["shard"] == timeline.train.size // TRAINERS for r in reports)
    for report in reports:  # each trainer's loss, on its own half, fell from the first epoch to the last
        first, last = report["losses"]
        assert last < first - 0.05, report["losses"]
    # Gradients are averaged at every step, so the two trainers end with the same parameters; without
    # the all-reduce they differ (by up to 0.11 on this data, measured), as their halves differ.
    ranks = [np.load(out / f"rank{rank}.npz") for rank in range(TRAINERS)]
    assert ranks[0].files and sorted(ranks[0].files) == sorted(ranks[1].files)
    for name in ranks[0].files:
        assert np.array_equal(ranks[0][name], ranks[1][name]), f"{name} differs between the trainers"
    assert reports[0]["metrics"] == reports[1]["metrics"]
    test = Protocol(timeline, timeline.test, negatives=99, seed=0)
    popularity = test.evaluate(popularity_scorer(timeline, len(dataset.movies)))
    assert reports[0]["metrics"]["hr@10"] > popularity["hr@10"] + 0.05  # 0.34 against 0.25, measured
