"""Train RecBole 1.2.1's SASRec on the product's split and write its test scores, within a wall-clock budget.

    bench/.venv-sasrec/bin/python bench/sasrec.py FOLDER --budget-seconds 240 --out scores.npz

FOLDER holds the atomic files and the timeline bench/baselines/sasrec.py writes; bench/quality.py
writes them, runs this in its own virtual environment (make bench-sasrec-venv: torch and RecBole are
never the product's dependencies) and scores the result as it scores every other model. RecBole's
model, data loading and loss; the loop is ours so that it stops at the budget and early-stops on the
product's own full-ranking NDCG@10 on the validation ratings (the user's rated movies masked, which
RecBole's evaluator does not do for sequential models). The budget counts everything from reading
the files (after the imports) to the last validation; the test scores come after it, from the best
epoch.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt
import torch
from recbole.config import Config
from recbole.data import create_dataset
from recbole.data.dataloader import TrainDataLoader
from recbole.model.sequential_recommender import SASRec
from recbole.utils import init_seed

from bench.baselines.sasrec import MAX_LENGTH, SPLITS, read_timeline
from ml.evaluate import full_ranking_metrics
from ml.split import Timeline

started = time.perf_counter()  # the budget's clock: imports done, as the product's train() starts
log = logging.getLogger("sasrec")

# RecBole's SASRec defaults (its published ML-1M settings): 2 layers, 2 heads, hidden 64, inner 256,
# dropout 0.5, history 50, cross-entropy over every item (no negative sampling), Adam at 1e-3.
SETTINGS = {
    "n_layers": 2,
    "n_heads": 2,
    "hidden_size": 64,
    "inner_size": 256,
    "hidden_dropout_prob": 0.5,
    "attn_dropout_prob": 0.5,
    "hidden_act": "gelu",
    "MAX_ITEM_LIST_LENGTH": MAX_LENGTH,
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "learning_rate": 0.001,
    "train_batch_size": 2048,
}
_CHUNK = 1024


def recbole_config(folder: Path, seed: int) -> Config:
    """Return the config reading folder's pre-split files, each row with its history list."""
    sys.argv[1:] = []  # RecBole reads --key=value arguments as settings: ours are not
    return Config(
        model="SASRec",
        dataset=folder.name,
        config_dict={
            **SETTINGS,
            "data_path": str(folder.parent),
            "benchmark_filename": list(SPLITS),
            "load_col": {"inter": ["user_id", "item_id", "item_id_list"]},
            "alias_of_item_id": ["item_id_list"],  # one token space for the target and the history
            "eval_args": {
                "group_by": "user",
                "order": "TO",
                "split": {"LS": "valid_and_test"},
                "mode": "full",
            },
            "seed": seed,
            "reproducibility": True,
            "show_progress": False,
            "save_dataset": False,
            "save_dataloaders": False,
        },
    )


class Scorer:
    """Scores of one split's rows (one per user) as the product's (event position, movie row) matrix."""

    def __init__(
        self, model: SASRec, dataset: Any, split: Any, timeline: Timeline, positions: npt.NDArray[np.int64]
    ) -> None:
        self.model, self.split = model, split
        tokens = dataset.field2id_token["item_id"]
        self.columns = np.array([int(t) for t in tokens[1:]], dtype=np.int64)  # internal id 0 is padding
        self.n_movies = int(timeline.movie_row.max()) + 1
        users = np.array([int(t) for t in dataset.field2id_token["user_id"][1:]], dtype=np.int64)
        user_rows = users[split.inter_feat["user_id"].numpy() - 1]
        row_of_user = {int(u): i for i, u in enumerate(user_rows)}
        self.rows = np.array([row_of_user[int(u)] for u in timeline.user_row[positions]], dtype=np.int64)
        self.positions = positions

    @torch.no_grad()
    def scores(self) -> npt.NDArray[np.float32]:
        """Return (len(positions), n_movies) scores, -inf for a movie RecBole never saw."""
        self.model.eval()
        out = np.full((self.positions.size, self.n_movies), -np.inf, dtype=np.float32)
        for s in range(0, self.positions.size, _CHUNK):
            rows = self.rows[s : s + _CHUNK]
            batch = self.split.inter_feat[torch.from_numpy(rows)]
            scores = self.model.full_sort_predict(batch).numpy()
            out[s : s + rows.size, self.columns] = scores[:, 1:]
        return out

    def metrics(self, timeline: Timeline) -> dict[str, float]:
        """Return the product's full-ranking metrics of these scores (rated movies masked)."""
        scores = self.scores()
        index = {int(p): i for i, p in enumerate(self.positions)}

        def score(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
            return scores[[index[int(p)] for p in positions]]

        return full_ranking_metrics(score, timeline, self.positions, np.unique(timeline.movie_row))


def run(folder: Path, budget: float, seed: int, threads: int, patience: int, max_epochs: int) -> dict:
    """Train within budget seconds (from process start), early-stopping on validation NDCG@10; return the
    report and the test scores of the best epoch."""
    torch.set_num_threads(threads)
    timeline = read_timeline(folder)
    config = recbole_config(folder, seed)
    init_seed(seed, reproducibility=True)
    dataset = create_dataset(config)
    train_split, valid_split, test_split = dataset.build()
    train_data = TrainDataLoader(config, train_split, None, shuffle=True)
    model = SASRec(config, train_split).to(config["device"])
    optimiser = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    valid = Scorer(model, dataset, valid_split, timeline, timeline.valid)
    best: tuple[float, int, dict] = (-1.0, 0, {})
    history, examples, step_seconds, stopped = [], 0, 0.0, "epochs"
    for epoch in range(1, max_epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        for batch in train_data:
            loss = model.calculate_loss(batch.to(config["device"]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            examples += len(batch)
            if time.perf_counter() - started >= budget:
                stopped = "budget"
                break
        step_seconds += time.perf_counter() - epoch_started
        metrics = valid.metrics(timeline)
        history.append(
            {"epoch": epoch, "loss": round(loss.item(), 4), **{k: round(v, 4) for k, v in metrics.items()}}
        )
        log.info("epoch %d %s (%.0f s)", epoch, history[-1], time.perf_counter() - started)
        if metrics["ndcg@10"] > best[0]:
            best = (metrics["ndcg@10"], epoch, copy.deepcopy(model.state_dict()))
        if stopped == "budget" or time.perf_counter() - started >= budget:
            stopped = "budget"
            break
        if epoch - best[1] >= patience:
            stopped = "patience"
            break
    train_seconds = time.perf_counter() - started
    model.load_state_dict(best[2])
    test = Scorer(model, dataset, test_split, timeline, timeline.test)
    return {
        "report": {
            "train_seconds": round(train_seconds, 1),
            "step_seconds": round(step_seconds, 1),
            "examples_per_second": round(examples / step_seconds) if step_seconds else 0,
            "epochs_run": len(history),
            "best_epoch": best[1],
            "stopped": stopped,
            "budget_seconds": budget,
            "threads": threads,
            "training_rows": len(train_split),
            "settings": SETTINGS,
            "validation": history,
        },
        "positions": test.positions,
        "scores": test.scores(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="the atomic files and timeline of sasrec_files.py")
    parser.add_argument(
        "--budget-seconds", type=float, required=True, help="wall clock from start to the last validation"
    )
    parser.add_argument("--out", type=Path, required=True, help="an .npz of the test positions and scores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the product trains on one)")
    parser.add_argument("--patience", type=int, default=10, help="epochs without a better validation NDCG@10")
    parser.add_argument("--max-epochs", type=int, default=300)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = run(args.folder, args.budget_seconds, args.seed, args.threads, args.patience, args.max_epochs)
    np.savez(args.out, positions=result["positions"], scores=result["scores"])
    print(json.dumps(result["report"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
