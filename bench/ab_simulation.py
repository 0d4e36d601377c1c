"""Does an experiment find the better model? Simulated users against the served API, A/B and A/A.

Writes a synthetic dataset with its hidden tastes (ml/movielens/synthetic.py), imports it into a new
SQLite database in the work dir (with --mysql-url, a new MySQL database), and trains two versions:
the strong one with TrainConfig's defaults, the weak one with tiny towers (WEAK) trained one epoch.
The weak version is activated, its users' lists kept as `movierec train --activate` does: it is the
control, and an experiment (api.experiments.service.start_experiment) serves the strong one to half
of the users. `movierec serve --workers N` serves the app, on a Milvus Lite server this process keeps
(api.vectors.lite.LiteKeeper), so that it can start experiments while the app serves. Simulated users
(bench/simulated_users.py) ask for their recommendations over HTTP, click what their hidden taste
likes and rate some of it:
- A/B: --batch users at a time, the experiment's results (api.experiments.results) after each batch;
  reported: the users and impressions after which the strong arm first led at p < WIN_ALPHA, the
  first look from which it led at every later look, and the lift and the difference's 95% interval
  then and at the end;
- A/A: the strong version is promoted (promote_treatment, then its lists kept) and a copy of its
  artifact is registered as another version; for each of --aa-seeds seeds, an experiment of the copy
  against it (its salt drawn by start_experiment, the users' order and choices by the seed) runs every
  user's sessions again: about 5% of seeds should reach p < 0.05, and the sample-ratio check pass in all.
Each look's results are checked against what the users did: the impressions written against the
lists served, the users, impressions and positive impressions of each arm, the feedback rows against
the clicks. Writes bench/results/ab_simulation.json (--out); the server's log goes to the work dir.

    .venv/bin/python bench/ab_simulation.py [--users 2000] [--aa-seeds 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.db import make_engine, make_session_factory
from api.experiments.models import Feedback, Impression
from api.experiments.results import experiment_results
from api.experiments.service import promote_treatment, start_experiment, stop_experiment
from api.recommend.kept import keep_version_lists
from api.vectors.lite import LiteKeeper
from api.vectors.store import VectorStore
from api.versions.activation import activate
from api.versions.models import Experiment
from api.versions.service import finish_version, get_version, start_version
from api.versions.training import run_training
from bench.serve import LOAD_RATES, bench_key, wait_ready
from bench.simulated_users import Behaviour, Tally, simulate
from ml.config import TrainConfig
from ml.movielens.synthetic import HiddenTastes, write_synthetic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_NAME = "movierec_bench_ab"
# The weak version's changes to the strong one's config: tiny towers, trained one epoch.
WEAK: dict[str, Any] = {"embedding_dim": 4, "hidden_dim": 8, "output_dim": 4, "epochs": 1}
SHARE = 0.5  # the treatment's share of users
WIN_ALPHA = 0.01  # the strong arm wins once it leads at this p-value
AA_ALPHA = 0.05  # an A/A seed below this p-value is a false positive
WINDOW_S = 3600  # how long after an impression its feedback counts (the settings' default)
CHECK_INTERVAL_S = 1.0  # ModelRegistry's: a served process sees a new experiment within this
OFFLINE_METRICS = ("hr@10", "recall@10", "recall@20")


@dataclass
class Stack:
    env: dict[str, str]  # of `movierec` commands and the served app
    db_url: str
    sessions: sessionmaker[Session]
    store: VectorStore
    tastes: HiddenTastes
    user_ids: list[int]
    url: str = ""  # the served app's
    key: str = ""  # an API key with users:write


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000, help="synthetic users, every one simulated")
    parser.add_argument("--movies", type=int, default=600, help="synthetic movies")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the training and the users")
    parser.add_argument(
        "--sessions", type=int, default=2, help="lists each user asks for, in each experiment"
    )
    parser.add_argument("--batch", type=int, default=100, help="A/B users between two looks at the results")
    parser.add_argument("--aa-seeds", type=int, default=20, help="A/A experiments, each of every user")
    parser.add_argument("--clients", type=int, default=8, help="users acting at the same time")
    parser.add_argument("--workers", type=int, default=2, help="API processes (movierec serve --workers)")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE",
        help="override TrainConfig fields of both versions, as bench/quality.py does (WEAK still applies)",
    )  # fmt: skip
    parser.add_argument("--mysql-url", help="a MySQL server to hold the database (default: SQLite)")
    parser.add_argument("--work-dir", default=str(ROOT / "var" / "bench-ab"), help="emptied first")
    parser.add_argument("--out", default=str(RESULTS / "ab_simulation.json"))
    return parser.parse_args(argv)


def configs(overrides: list[str]) -> dict[str, TrainConfig]:
    """Return the strong and weak versions' configs: the defaults with --set, then WEAK's changes."""
    fields = {k: json.loads(v) for k, v in (item.split("=", 1) for item in overrides)}
    strong = dataclasses.replace(TrainConfig(), **fields)
    return {"strong": strong, "weak": dataclasses.replace(strong, **WEAK)}


def build(args: argparse.Namespace, work: Path, milvus_uri: str) -> Stack:
    """Write the data with its hidden tastes, and create and fill a new database."""
    data = write_synthetic(work / "data", users=args.users, movies=args.movies, seed=args.seed, hidden=True)
    if args.mysql_url:
        server = make_engine(args.mysql_url)
        with server.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME}"))
            connection.execute(text(f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4"))
        server.dispose()
        db_url = make_url(args.mysql_url).set(database=DB_NAME).render_as_string(hide_password=False)
    else:
        db_url = f"sqlite:///{work / 'movierec.db'}"
    env = {
        **os.environ,
        "MOVIEREC_DATABASE_URL": db_url,
        "MOVIEREC_MILVUS_URI": milvus_uri,
        "MOVIEREC_MODEL_DIR": str(work / "models"),
        "MOVIEREC_VAR_DIR": str(work),
        "MOVIEREC_ENVIRONMENT": "development",
        "KMP_BLOCKTIME": "0",
        "PYTHONPATH": str(ROOT),
        **LOAD_RATES,  # every simulated user asks with the one benchmark key, from 127.0.0.1
    }
    movierec = [sys.executable, "-m", "api.cli"]
    subprocess.run([*movierec, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*movierec, "data", "import", "--source", str(data), "-q"], env=env, check=True)
    return Stack(
        env=env,
        db_url=db_url,
        sessions=make_session_factory(make_engine(db_url)),
        store=VectorStore(milvus_uri, timeout=600),
        tastes=HiddenTastes.load(data),
        user_ids=list(range(1, args.users + 1)),
    )


def activate_and_keep(stack: Stack, version_id: int) -> None:
    """Activate a version and keep its users' lists, as the command line does after training."""
    activate(sessions=stack.sessions, store=stack.store, version_id=version_id, by="bench")
    keep_version_lists(sessions=stack.sessions, store=stack.store, version_id=version_id)


def copy_version(stack: Stack, version_id: int, model_dir: Path) -> int:
    """Register a copy of a version's artifact as a new succeeded version and return its id: the same
    model under another id, the A/A treatment."""
    with stack.sessions.begin() as session:
        source = get_version(session=session, version_id=version_id)
        copy = start_version(session=session, params=dict(source.params), started_by="bench:copy")
        directory = model_dir / f"v{copy.id}"
        shutil.copytree(str(source.artifact_path), directory)
        metrics = dict(source.metrics or {})
        finish_version(session=session, version_id=copy.id, metrics=metrics, artifact_path=str(directory))
        return copy.id


def start(stack: Stack, treatment: int, name: str) -> Experiment:
    """Start an experiment of a version against the active one, on SHARE of the users."""
    experiment = start_experiment(
        sessions=stack.sessions, store=stack.store, treatment_version_id=treatment, treatment_share=SHARE,
        name=name, by="bench",
    )  # fmt: skip
    time.sleep(2 * CHECK_INTERVAL_S)  # every served process splits users before the first one asks
    return experiment


def look(stack: Stack, experiment: Experiment, tally: Tally) -> dict[str, Any]:
    """Return the experiment's results once the impressions of every list served are written (or a
    minute has passed), beside what the simulation counted for each figure the results must match."""
    in_experiment = Impression.experiment_id == experiment.id
    deadline = time.monotonic() + 60
    with stack.sessions() as session:
        while True:
            written = session.scalar(select(func.count()).select_from(Impression).where(in_experiment))
            session.rollback()  # the next count reads anew
            if written == len(tally.shown) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        results = experiment_results(session=session, experiment=experiment, window_s=WINDOW_S)
        feedback = session.scalar(
            select(func.count()).select_from(Feedback).join(Impression).where(in_experiment)
        )
    simulated = tally.per_version()
    arms = {}
    for name, arm in results.arms.items():
        counted = simulated.get(arm.version_id, {"users": 0, "impressions": 0, "positive": 0, "affinity": 0})
        arms[name] = {
            "version": arm.version_id,
            "users": arm.users,
            "impressions": arm.impressions,
            "positive_impressions": arm.positive_impressions,
            "positive_rate": arm.positive_rate,
            "coverage": round(arm.coverage, 3),
            "simulated_users": counted["users"],
            "simulated_impressions": counted["impressions"],
            "simulated_positive_impressions": counted["positive"],
            "mean_affinity_shown": counted["affinity"],
        }
    comparison = results.comparison
    return {
        "users": sum(arm.users for arm in results.arms.values()),
        "impressions": sum(arm.impressions for arm in results.arms.values()),
        "requests": tally.requests,
        "written": written,
        "clicks": tally.clicks,
        "feedback_rows": feedback,
        "ratings": tally.ratings,
        "difference": comparison and comparison.difference,
        "low": comparison and comparison.low,
        "high": comparison and comparison.high,
        "p_value": comparison and comparison.p_value,
        "lift": comparison and comparison.lift,
        "srm_p_value": results.srm_p_value,
        "sample_ratio_ok": results.sample_ratio_ok,
        "arms": arms,
        "errors": dict(tally.errors),
        "error_samples": tally.error_samples,
    }


def mismatches(looked: dict[str, Any], tally: Tally) -> list[str]:
    """Return how the results disagree with what the simulated users did (empty when they agree)."""
    found = []
    if looked["written"] != len(tally.shown):
        found.append(f"{looked['written']} impressions written of {len(tally.shown)} lists served")
    if tally.unrecorded:
        found.append(f"{tally.unrecorded} lists served without an impression id")
    if looked["feedback_rows"] != tally.clicks:
        found.append(f"{looked['feedback_rows']} feedback rows of {tally.clicks} clicks")
    for name, arm in looked["arms"].items():
        for figure in ("users", "impressions", "positive_impressions"):
            if arm[figure] != arm[f"simulated_{figure}"]:
                found.append(
                    f"{name} {figure}: {arm[figure]} counted, {arm[f'simulated_{figure}']} simulated"
                )
    return found


def brief(looked: dict[str, Any]) -> dict[str, Any]:
    """Return a look's figures without its arms' details."""
    keep = ("users", "impressions", "difference", "low", "high", "p_value", "lift", "srm_p_value")
    rates = {f"{arm}_rate": looked["arms"][arm]["positive_rate"] for arm in ("control", "treatment")}
    return {k: looked[k] for k in keep} | rates


def leads(looked: dict[str, Any]) -> bool:
    """Whether the strong arm (the treatment) leads at p < WIN_ALPHA."""
    return looked["p_value"] is not None and looked["p_value"] < WIN_ALPHA and looked["difference"] > 0


def run_ab(
    args: argparse.Namespace, stack: Stack, behaviour: Behaviour, versions: dict[str, int]
) -> dict[str, Any]:
    """Run the A/B experiment, strong (treatment) against weak (control), looking after every batch."""
    experiment = start(stack, versions["strong"], "A/B: strong against weak")
    order = np.random.default_rng([args.seed, 0]).permutation(stack.user_ids).tolist()
    tally, looks = Tally(), []
    started = time.monotonic()
    for first in range(0, len(order), args.batch):
        simulate(stack.url, stack.key, order[first : first + args.batch], stack.tastes, behaviour,
                 seed=(args.seed, 0), clients=args.clients, tally=tally)  # fmt: skip
        looks.append(look(stack, experiment, tally))
        if looks[-1]["p_value"] is not None:
            print(f"  {describe(brief(looks[-1]))}", flush=True)
    elapsed = time.monotonic() - started
    won = next((i for i, x in enumerate(looks) if leads(x)), None)
    stayed = next((i for i in range(len(looks)) if all(leads(x) for x in looks[i:])), None)
    return {
        "experiment_id": experiment.id,
        "looks": [brief(x) for x in looks],
        "won_at": None if won is None else brief(looks[won]),
        "won_from_then_on_at": None if stayed is None else brief(looks[stayed]),
        "final": looks[-1],
        "mismatches": mismatches(looks[-1], tally),
        "elapsed_s": round(elapsed, 1),
        "requests_per_s": round(tally.requests / elapsed, 1),
    }


def run_aa(args: argparse.Namespace, stack: Stack, behaviour: Behaviour, copy: int) -> dict[str, Any]:
    """Run an A/A experiment of every user for each seed: the copy against the version it copies."""
    seeds = []
    started = time.monotonic()
    for seed in range(args.aa_seeds):
        experiment = start(stack, copy, f"A/A seed {seed}")
        tally = Tally()
        order = np.random.default_rng([args.seed, 1 + seed]).permutation(stack.user_ids).tolist()
        simulate(stack.url, stack.key, order, stack.tastes, behaviour, seed=(args.seed, 1 + seed),
                 clients=args.clients, tally=tally)  # fmt: skip
        looked = look(stack, experiment, tally)
        stop_experiment(sessions=stack.sessions, by="bench")
        row = {"seed": seed, "experiment_id": experiment.id} | brief(looked)
        row |= {k: looked[k] for k in ("requests", "clicks", "ratings", "sample_ratio_ok", "errors")}
        row["mismatches"] = mismatches(looked, tally)
        seeds.append(row)
        problems = f"; mismatches {row['mismatches']}" if row["mismatches"] else ""
        print(f"  seed {seed}: {describe(row)}{problems}", flush=True)
    p_values = [s["p_value"] for s in seeds]
    return {
        "seeds": seeds,
        "p_values": p_values,
        "below_0_05": sum(p is not None and p < AA_ALPHA for p in p_values),
        "sample_ratio_failures": sum(not s["sample_ratio_ok"] for s in seeds),
        "seeds_with_mismatches": sum(bool(s["mismatches"]) for s in seeds),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def describe(looked: dict[str, Any]) -> str:
    """Return a look's figures as one line; a figure a small look cannot have yet (an arm without users)
    reads "n/a"."""

    def f(key: str, spec: str) -> str:
        return "n/a" if looked[key] is None else format(looked[key], spec)

    return (
        f"{looked['users']} users, {looked['impressions']} impressions: positive rate control "
        f"{f('control_rate', '.4f')}, treatment {f('treatment_rate', '.4f')}, difference "
        f"{f('difference', '+.4f')} [{f('low', '+.4f')}, {f('high', '+.4f')}], lift "
        f"{f('lift', '+.1%')}, p {f('p_value', '.2g')}, SRM p {f('srm_p_value', '.3f')}"
    )


def serve(args: argparse.Namespace, stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    """Start `movierec serve` and return its process once it is ready."""
    command = [
        sys.executable,
        "-m",
        "api.cli",
        "serve",
        "--workers",
        str(args.workers),
        "--port",
        str(args.port),
    ]
    with log.open("ab") as handle:
        server = subprocess.Popen(command, env=stack.env, cwd=ROOT, stdout=handle, stderr=handle)
    wait_ready(f"http://127.0.0.1:{args.port}/readyz")
    return server


def offline_metrics(stack: Stack, versions: dict[str, int]) -> dict[str, dict[str, float]]:
    """Return each version's id and test metrics, as training recorded them."""
    with stack.sessions() as session:
        metrics = {
            name: get_version(session=session, version_id=v).metrics or {} for name, v in versions.items()
        }
    return {
        name: {"version": versions[name]} | {k: round(metrics[name][k], 4) for k in OFFLINE_METRICS}
        for name in versions
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures, write its JSON and return it."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    trained = configs(args.set)
    work = Path(args.work_dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    behaviour = Behaviour(sessions=args.sessions)
    started = time.monotonic()
    keeper = LiteKeeper(work / "milvus.db")
    server = None
    try:
        stack = build(args, work, keeper.server.uds_path)
        versions = {
            name: run_training(sessions=stack.sessions, model_dir=work / "models", config=config,
                               started_by=f"bench:{name}", progress_bar=False)
            for name, config in trained.items()
        }  # fmt: skip
        offline = offline_metrics(stack, versions)
        print(f"offline (test split): strong {offline['strong']}, weak {offline['weak']}", flush=True)
        activate_and_keep(stack, versions["weak"])
        stack.key = bench_key(stack.db_url)
        server = serve(args, stack, work / "server.log")
        stack.url = f"http://127.0.0.1:{args.port}"
        prepared_s = time.monotonic() - started
        print(f"A/B: version {versions['strong']} (strong) the treatment, {versions['weak']} (weak) the "
              f"control; {args.users} users in batches of {args.batch}", flush=True)  # fmt: skip
        ab = run_ab(args, stack, behaviour, versions)
        promote_treatment(sessions=stack.sessions, store=stack.store, by="bench")
        keep_version_lists(sessions=stack.sessions, store=stack.store, version_id=versions["strong"])
        copy = copy_version(stack, versions["strong"], work / "models")
        print(f"A/A: version {copy} (a copy of {versions['strong']}) the treatment, {versions['strong']} "
              f"the control; {args.aa_seeds} seeds of {args.users} users", flush=True)  # fmt: skip
        aa = {"control_version": versions["strong"], "treatment_version": copy}
        aa |= run_aa(args, stack, behaviour, copy)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        keeper.stop()
    summary = {
        "command": " ".join([".venv/bin/python", "bench/ab_simulation.py", *argv]),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count()},
        "parameters": {
            "users": args.users,
            "movies": args.movies,
            "seed": args.seed,
            "sessions": args.sessions,
            "batch": args.batch,
            "aa_seeds": args.aa_seeds,
            "clients": args.clients,
            "workers": args.workers,
            "database": "mysql" if args.mysql_url else "sqlite",
            "treatment_share": SHARE,
            "win_alpha": WIN_ALPHA,
            "aa_alpha": AA_ALPHA,
            "window_s": WINDOW_S,
            "behaviour": asdict(behaviour),
            "strong": f"TrainConfig defaults{' with ' + ', '.join(args.set) if args.set else ''}",
            "weak": f"the strong config with {WEAK}",
            "control": "weak",
            "treatment": "strong",
            "aa_treatment": "a copy of the strong version's artifact, registered as another version",
        },
        "offline": offline,
        "ab": ab,
        "aa": aa,
        "seconds": {"preparing": round(prepared_s, 1), "total": round(time.monotonic() - started, 1)},
    }
    report(summary)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def report(summary: dict[str, Any]) -> None:
    """Print the figures the benchmark is for."""
    ab, aa = summary["ab"], summary["aa"]
    for label, looked in (("first", ab["won_at"]), ("at every later look", ab["won_from_then_on_at"])):
        at = "never" if looked is None else describe(looked)
        print(f"A/B, the strong arm leading at p < {WIN_ALPHA} {label}: {at}")
    print(f"A/B at the end: {describe(brief(ab['final']))}; {ab['requests_per_s']} lists served a second")
    p_values = ", ".join("n/a" if p is None else f"{p:.3f}" for p in aa["p_values"])
    print(f"A/A: {aa['below_0_05']} of {len(aa['seeds'])} seeds at p < {AA_ALPHA} (p-values {p_values}); "
          f"the sample-ratio check failed in {aa['sample_ratio_failures']}")  # fmt: skip
    problems = ab["mismatches"] + [m for s in aa["seeds"] for m in s["mismatches"]]
    print(f"results against the simulated users: {len(problems)} mismatches {problems[:5]}")
    aa_errors = sum((Counter(s["errors"]) for s in aa["seeds"]), Counter())
    aa_clicks = sum(s["clicks"] for s in aa["seeds"])
    print(f"errors: A/B {ab['final']['errors']} beside {ab['final']['clicks']} clicks recorded, A/A "
          f"{dict(aa_errors)} beside {aa_clicks}; {summary['seconds']['total']:.0f} s in all")  # fmt: skip


if __name__ == "__main__":
    main()
