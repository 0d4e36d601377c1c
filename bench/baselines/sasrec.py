"""RecBole's SASRec on the product's split: the split as RecBole's pre-split atomic files for a sequential
model, and bench/sasrec.py run on them in its own virtual environment (torch is never the product's).

With `benchmark_filename`, RecBole's SequentialDataset reads the train, valid and test rows as given
and builds no histories itself: each row must carry its target's history as RecBole's own data
augmentation would (`item_id_list`, oldest first, the latest `max_length` events before the target;
`item_length` is computed from it). Users and movies are written as their timeline rows, so the
scores RecBole returns map back to the product's movie rows and events. Pure NumPy: no torch here.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.evaluate import ScoreFn
from ml.split import Timeline

HEADER = "user_id:token\titem_id:token\titem_id_list:token_seq\n"
SPLITS = ("train", "valid", "test")
TIMELINE_FILE = "timeline.npz"
MAX_LENGTH = 50  # RecBole's MAX_ITEM_LIST_LENGTH for SASRec on ML-1M
SCRIPT = Path(__file__).resolve().parents[1] / "sasrec.py"


def training_targets(timeline: Timeline) -> npt.NDArray[np.int64]:
    """Return the training events that have a history (RecBole's augmentation skips a user's first)."""
    train = timeline.train
    return train[train > timeline.user_start[train]]


def history_lists(timeline: Timeline, positions: npt.NDArray[np.int64], max_length: int) -> list[str]:
    """Return each position's history as a token_seq cell: the movie rows of the latest max_length events
    before it, oldest first."""
    newest_first = timeline.history(positions, max_length)
    cells = []
    for row in newest_first:
        kept = row[row >= 0][::-1]
        cells.append(" ".join(str(m) for m in timeline.movie_row[kept]))
    return cells


def write_atomic_files(timeline: Timeline, directory: Path, name: str, max_length: int) -> Path:
    """Write directory/name/name.{train,valid,test}.inter and the timeline beside them; return that folder."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, positions in zip(
        SPLITS, (training_targets(timeline), timeline.valid, timeline.test), strict=True
    ):
        users = timeline.user_row[positions]
        movies = timeline.movie_row[positions]
        lists = history_lists(timeline, positions, max_length)
        with (folder / f"{name}.{split}.inter").open("w", encoding="utf-8") as out:
            out.write(HEADER)
            out.writelines(f"{u}\t{m}\t{h}\n" for u, m, h in zip(users, movies, lists, strict=True))
    np.savez(folder / TIMELINE_FILE, **dataclasses.asdict(timeline))
    return folder


def read_timeline(folder: Path) -> Timeline:
    """Return the timeline written beside the atomic files."""
    with np.load(folder / TIMELINE_FILE) as arrays:
        return Timeline(**{field.name: arrays[field.name] for field in dataclasses.fields(Timeline)})


def run_sasrec(
    timeline: Timeline, *, python: Path, budget_seconds: float, seed: int, threads: int = 1
) -> tuple[ScoreFn, dict[str, object]]:
    """Return the test score function of SASRec trained by bench/sasrec.py under `python` (its virtual
    environment) within budget_seconds, and its report (seconds, epochs, validation per epoch)."""
    with tempfile.TemporaryDirectory() as tmp:  # data-derived: never kept
        folder = write_atomic_files(timeline, Path(tmp), "movierec", MAX_LENGTH)
        out = Path(tmp) / "scores.npz"
        command = [str(python), "-W", "ignore::FutureWarning", str(SCRIPT), str(folder)]
        command += ["--budget-seconds", f"{budget_seconds:g}", "--out", str(out)]
        command += ["--seed", str(seed), "--threads", str(threads)]
        completed = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        report = json.loads(completed.stdout.strip().splitlines()[-1])
        with np.load(out) as saved:
            positions, scores = saved["positions"], saved["scores"]
    row_of = {int(p): i for i, p in enumerate(positions)}

    def score(asked: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return scores[[row_of[int(p)] for p in asked]]

    return score, report
