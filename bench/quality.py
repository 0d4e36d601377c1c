"""Train the two-tower model and its baselines on one dataset and print one quality table.

    .venv/bin/python bench/quality.py --data-dir ../shared/datasets/ml-1m-head [--seeds 0 1 2]

Writes bench/results/quality.md and bench/results/quality.json. Every model is evaluated on the
same held-out ratings (each user's latest), two ways: the NCF protocol (against the same 99
sampled unrated movies, eval_seed 0) and full ranking (against every movie the user had not
rated before). With several seeds the two-tower row is the mean, with the spread (sample std and
range) beside it; the baselines are trained once, with the first seed. EASE and ItemKNN choose
their hyperparameter on the validation ratings, like the two-tower's early stopping. Each two-tower
seed is also evaluated with every movie id hidden (movies encoded from their features, text included,
as a movie added after training is). Every figure is given twice: on all evaluated users, and on the
untied ones, whose held-out rating's timestamp differs from their previous rating's (the order of two
ratings in one second is an artefact of the data, not something a model can know).

With --sasrec, RecBole's SASRec (bench/sasrec.py, in the virtual environment `make bench-sasrec-venv`
builds) is trained on the same split within the two-tower's mean training time (equal compute, or
--sasrec-budget-seconds) and scored here like every other row.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KMP_BLOCKTIME", "0")  # before paddle is imported: see ml/paddle_setup.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt

from bench.baselines.item_item import ItemItemModel, fit_ease, fit_item_knn
from bench.baselines.mf import train_mf
from bench.baselines.popularity import popularity_scorer
from bench.baselines.sasrec import run_sasrec
from bench.baselines.seed_model import train_seed_model
from ml.config import TrainConfig
from ml.evaluate import Protocol, ScoreFn, full_ranking_metrics
from ml.export import save_version
from ml.movielens.format import Dataset
from ml.movielens.layouts import load
from ml.serving import HistoryItem, LoadedModel, UserFeatures
from ml.split import Timeline
from ml.train import TrainedModel, train, vector_scorer

# NCF protocol HR@10 and NDCG@10, then full ranking: HR@10 (= recall@10), NDCG@10, Recall@20, NDCG@20
COLUMNS = ("hr@10", "ndcg@10", "recall@10", "full_ndcg@10", "recall@20", "ndcg@20")
SEED_MODEL = TrainConfig(batch_size=512, learning_rate=1e-3, epochs=4, patience=1, lr_decay=False)
MF = TrainConfig(epochs=12, patience=2)  # the two-tower loss (in-batch + uniform negatives, logQ)
SASREC_PYTHON = Path(__file__).resolve().parents[1] / ".venv-sasrec" / "bin" / "python"


def untied(timeline: Timeline, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Return which held-out events have a timestamp of their own, not shared with the user's previous
    rating (every held-out event has one: the validation event before a test one)."""
    return timeline.timestamp[positions] != timeline.timestamp[positions - 1]


def untied_protocol(protocol: Protocol) -> Protocol:
    """Return the protocol restricted to its untied users, each with the same sampled negatives."""
    keep = untied(protocol.timeline, protocol.positions)
    part = copy.copy(protocol)
    part.positions, part.negatives = protocol.positions[keep], protocol.negatives[keep]
    return part


def _row(
    name: str, metrics: dict[str, float], untied_metrics: dict[str, float], model: TrainedModel | None = None
) -> dict[str, object]:
    """Return a table row; train_seconds is the whole train() call (features, epochs, validation)."""
    row: dict[str, object] = {"model": name}
    row.update({k: round(metrics[k], 4) for k in COLUMNS})
    row["untied"] = {k: round(untied_metrics[k], 4) for k in COLUMNS}
    row.update(
        train_seconds=round(model.wall_seconds, 1) if model else 0.0,
        step_seconds=round(model.result.train_seconds, 1) if model else 0.0,
        examples_per_second=round(model.result.examples_per_second) if model else 0,
        epochs_run=model.result.epochs_run if model else 0,
    )
    return row


def _item_item_row(
    model: ItemItemModel, metrics: dict[str, float], untied: dict[str, float]
) -> dict[str, object]:
    label = f"EASE (λ {model.parameter:g})" if model.name == "ease" else f"ItemKNN (k {model.parameter:g})"
    row = _row(label, metrics, untied)
    row.update(
        train_seconds=round(model.fit_seconds, 1),
        parameter=model.parameter,
        validation_full_ndcg10={f"{k:g}": round(v, 4) for k, v in model.validation.items()},
    )
    return row


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    """Return how the two-tower's full-ranking HR@10 compares with each baseline's, in this run, on all
    users and on the untied ones."""
    notes = []
    for users, view in (("", lambda r: r), (" (untied users)", lambda r: r["untied"])):
        ours = float(view(rows[0])["recall@10"])
        notes += [
            f"full-ranking HR@10{users}: two-tower {ours:.4f} = {ours / float(view(r)['recall@10']):.2f}× "
            f"{r['model']}"
            for r in rows[1:]
            if float(view(r)["recall@10"]) > 0
        ]
    return notes


def _scorer(model: TrainedModel) -> ScoreFn:
    return vector_scorer(model.model, model.prepared, model.config)


def _mean(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the two-tower row: the mean over seeds, with the spread of every metric on several."""
    mean: dict[str, Any] = {"model": "two-tower", "untied": {}}
    for figures, out in ((per_seed, mean), ([r["untied"] for r in per_seed], mean["untied"])):
        for key in COLUMNS:
            values = [float(r[key]) for r in figures]
            out[key] = round(statistics.fmean(values), 4)
            if len(values) > 1:
                out[f"{key}_std"] = round(statistics.stdev(values), 4)
                out[f"{key}_range"] = [round(min(values), 4), round(max(values), 4)]
    for key in ("train_seconds", "step_seconds", "examples_per_second"):
        mean[key] = round(statistics.fmean(float(r[key]) for r in per_seed), 4)
    mean["examples_per_second"] = round(mean["examples_per_second"])
    return mean


def _movie_ids_hidden(model: TrainedModel) -> dict[str, float]:
    """Return the test metrics with every movie encoded without its id, from genres, year, title and
    text only, as a movie added after training is (the users keep their histories)."""
    p, config = model.prepared, model.config
    hidden = {**p.movies, "movie_id": np.zeros_like(p.movies["movie_id"])}
    t = p.timeline
    test = Protocol(t, t.test, negatives=config.eval_negatives, seed=config.eval_seed)
    metrics = test.evaluate(vector_scorer(model.model, p, config, hidden))
    return {k: round(metrics[k], 4) for k in ("hr@10", "ndcg@10", "recall@10", "recall@20")}


def _through_the_product(model: TrainedModel, dataset: Dataset, samples: int = 2000) -> dict[str, object]:
    """Return the saved model version's encode latency and its full-ranking test metrics as served.

    The version is saved and loaded as `movierec train` and the API do; every test user is encoded
    by LoadedModel.encode_user from their ratings before the held-out one, at the request time the
    API uses (now) and at the held-out rating's own time (what the training-side evaluation assumes),
    and ranked against every movie vector but the ones the user rated, as the API's search does.
    """
    t = model.prepared.timeline
    with tempfile.TemporaryDirectory() as tmp:  # the version holds data-derived vectors: never kept
        version = LoadedModel.load(save_version(model, Path(tmp) / "version"))
        requests = {}
        for position in t.test:
            u = dataset.users[int(t.user_row[position])]
            past = range(int(t.user_start[position]), int(position))
            history = [
                HistoryItem(dataset.movies[int(t.movie_row[p])].id, int(t.rating[p]), int(t.timestamp[p]))
                for p in past
            ]
            requests[int(position)] = (UserFeatures(u.gender, u.age, u.occupation, u.zip_code, u.id), history)
        timed = list(requests.values())[:samples]
        for user, history in timed[:50]:
            version.encode_user(user, history)  # warm up
        times = []
        for user, history in timed:
            started = time.perf_counter()
            version.encode_user(user, history)
            times.append((time.perf_counter() - started) * 1e3)
        now = int(time.time())

        def served_at(clock: str) -> ScoreFn:
            def score(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
                users = np.stack(
                    [
                        version.encode_user(
                            *requests[int(p)], at=now if clock == "now" else int(t.timestamp[p])
                        )
                        for p in positions
                    ]
                )
                return users @ version.movie_vectors.T

            return score

        candidates = np.unique(t.movie_row)
        served = {
            clock: full_ranking_metrics(served_at(clock), t, t.test, candidates) for clock in ("now", "event")
        }
    return {
        "encode_user": {
            "p50_ms": round(float(np.percentile(times, 50)), 4),
            "p99_ms": round(float(np.percentile(times, 99)), 4),
            "samples": len(timed),
        },
        "served": {clock: {k: round(v, 4) for k, v in m.items()} for clock, m in served.items()},
    }


def _markdown(result: dict) -> str:
    header = [
        "| model | HR@10 (NCF) | NDCG@10 (NCF) | HR@10 (full) | NDCG@10 (full) | Recall@20 (full) "
        "| NDCG@20 (full) | train s | examples/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines = [
        f"# Quality on {result['dataset']}",
        "",
        f"`{result['command']}`, {result['date']}",
        "",
        f"Seeds {result['seeds']}; NCF: the latest rating against 99 sampled unrated movies; full: against "
        "every movie the user had not rated before it (with one held-out movie, HR@k = Recall@k).",
        "",
        f"All {result['users']} evaluated users:",
        "",
        *header,
    ]
    untied_lines = [
        "",
        f"The {result['untied_users']} untied users (the held-out rating's timestamp differs from the "
        "previous rating's):",
        "",
        *header,
    ]
    for row in result["rows"]:
        seconds = f"{row['train_seconds']:.0f}" if row["train_seconds"] else "-"
        speed = f"{row['examples_per_second']:,}" if row["examples_per_second"] else "-"
        for figures, out in ((row, lines), (row["untied"], untied_lines)):
            cells = []
            for key in COLUMNS:
                spread = figures.get(f"{key}_std")
                cells.append(f"{figures[key]:.4f}" + (f" ± {spread:.4f}" if spread is not None else ""))
            out.append(f"| {row['model']} | " + " | ".join(cells) + f" | {seconds} | {speed} |")
    lines += [
        *untied_lines,
        "",
        "train s: the whole train() call (feature building, epochs, per-epoch validation, test evaluation); "
        "for SASRec, from its process's start to its last validation. examples/s: training examples per "
        "second of optimisation steps. ± is the sample standard deviation over seeds.",
        "",
    ]
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    for r in result["two_tower_per_seed"]:
        lines.append(
            f"- two-tower seed {r['seed']}: HR@10 {r['hr@10']:.4f}, NDCG@10 {r['ndcg@10']:.4f}, full HR@10 "
            f"{r['recall@10']:.4f}, Recall@20 {r['recall@20']:.4f}, {r['train_seconds']:.0f} s, "
            f"{r['epochs_run']} epochs"
        )
        if "movie_ids_hidden" in r:
            h = r["movie_ids_hidden"]
            lines[-1] += (
                f"; every movie id hidden (as new movies): HR@10 {h['hr@10']:.4f}, full HR@10 "
                f"{h['recall@10']:.4f}, Recall@20 {h['recall@20']:.4f}"
            )
    lines.append("")
    enc = result["encode_user"]
    lines.append(
        f"encode_user (LoadedModel, one user a call, {enc['samples']} test users with full history, "
        f"Paddle inference predictor, 1 thread): p50 {enc['p50_ms']:.3f} ms, p99 {enc['p99_ms']:.3f} ms"
    )
    lines += [
        "",
        f"Through the product (two-tower seed {result['seeds'][0]}, the saved version encoding each test "
        "user as the API does, full ranking without the user's rated movies):",
        "",
        "| request time | HR@10 | NDCG@10 | Recall@20 |",
        "|---|---|---|---|",
    ]
    for clock, label in (("event", "the held-out rating's time"), ("now", "now (as the API serves)")):
        m = result["served"][clock]
        lines.append(f"| {label} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | {m['recall@20']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="a dataset directory in any layout the import reads"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds for the two-tower")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--skip-baselines", action="store_true", help="train only the two-tower model")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override TrainConfig fields"
    )
    parser.add_argument("--sasrec", action="store_true", help="also train RecBole's SASRec (bench/sasrec.py)")
    parser.add_argument(
        "--sasrec-python", type=Path, default=SASREC_PYTHON, help="its virtual environment's python"
    )
    parser.add_argument(
        "--sasrec-budget-seconds",
        type=float,
        help="its wall-clock budget (default: the two-tower's mean train seconds in this run)",
    )
    args = parser.parse_args(argv)
    if args.sasrec and not args.sasrec_python.exists():
        parser.error(f"{args.sasrec_python} is missing: `make bench-sasrec-venv` builds it")
    command = shlex.join(["bench/quality.py", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    dataset = load(args.data_dir).dataset
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    base = dataclasses.replace(TrainConfig(), **overrides)
    rows: list[dict[str, object]] = []
    per_seed: list[dict[str, object]] = []
    first: TrainedModel | None = None
    tied: Protocol | None = None
    for seed in args.seeds:
        model = train(dataset, dataclasses.replace(base, seed=seed), progress=sys.stderr.isatty())
        first = first or model
        t = first.prepared.timeline
        test = Protocol(t, t.test, negatives=base.eval_negatives, seed=base.eval_seed)  # train()'s own
        tied = tied or untied_protocol(test)
        row = _row("two-tower", model.metrics, tied.evaluate(_scorer(model)), model)
        row.update(seed=seed, movie_ids_hidden=_movie_ids_hidden(model))
        per_seed.append(row)
        print(json.dumps(row), flush=True)
    assert first is not None and tied is not None
    rows.append(_mean(per_seed))

    seed = args.seeds[0]
    if not args.skip_baselines:
        popularity = popularity_scorer(t, len(dataset.movies))
        rows.append(_row("popularity", test.evaluate(popularity), tied.evaluate(popularity)))
        for fit in (fit_ease, fit_item_knn):
            item_item = fit(t, len(dataset.users), len(dataset.movies))
            scorer = item_item.scorer(t)
            rows.append(_item_item_row(item_item, test.evaluate(scorer), tied.evaluate(scorer)))
            print(json.dumps(rows[-1]), flush=True)
        mf = train_mf(dataset, dataclasses.replace(MF, seed=seed), progress=sys.stderr.isatty())
        rows.append(_row("mf (ids, same loss)", mf.metrics, tied.evaluate(_scorer(mf)), mf))
        print(json.dumps(rows[-1]), flush=True)
        sm = train_seed_model(
            dataset, dataclasses.replace(SEED_MODEL, seed=seed), progress=sys.stderr.isatty()
        )
        rows.append(_row("seed model (PaddleRec recall, MSE)", sm.metrics, tied.evaluate(_scorer(sm)), sm))
        print(json.dumps(rows[-1]), flush=True)
    if args.sasrec:
        budget = args.sasrec_budget_seconds or float(rows[0]["train_seconds"])  # type: ignore[arg-type]
        label = "equal compute" if args.sasrec_budget_seconds is None else "budget"
        score, report = run_sasrec(
            t, python=args.sasrec_python, budget_seconds=budget, seed=seed, threads=base.num_threads
        )
        row = _row(f"RecBole SASRec ({label}, {budget:.0f} s)", test.evaluate(score), tied.evaluate(score))
        row.update({k: report[k] for k in ("train_seconds", "step_seconds", "examples_per_second")})
        row.update(epochs_run=report["epochs_run"], sasrec=report)
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)

    product = _through_the_product(first, dataset)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": str(args.data_dir),
        "seeds": args.seeds,
        "users": int(test.positions.size),
        "untied_users": int(tied.positions.size),
        "config": dataclasses.asdict(base),
        "rows": rows,
        "two_tower_per_seed": per_seed,
        **product,
        "notes": _notes(rows),
        "ratings": len(dataset.ratings),
        "training_events": int(first.prepared.positives.size),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "quality.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = _markdown(result)
    (args.out_dir / "quality.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
