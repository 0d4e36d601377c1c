"""What an experiment costs the kept path: the API as deployed with an A/B experiment running (half
the users served by a treatment version, every list recorded as an impression) against the same API
without one, taking turns for --rounds rounds on bench/serve.py's stack (built on first use).

The treatment is a copy of the active version registered as a version of its own (same artifact,
another id and Milvus collection): serving costs do not depend on what the weights hold. Each turn
starts the API afresh (`movierec experiments` starts or stops the experiment while no server holds
Milvus Lite's file; a start keeps the treatment users' lists), asks every user once (after a turn with
the experiment, its treatment users' lists are the treatment's: their first request computes the
control's again), then drives it with wrk as bench/serve.py does. Both record every list as an
impression: their ratio is the experiment's cost alone. A third turn, without an experiment and with
MOVIEREC_IMPRESSION_QUEUE=0 (nothing recorded), is the bound recording is measured against. Reports
median req/s, p50 and p99 of each, the ratios, and the impressions written and dropped (the server's
metrics).

    .venv/bin/python bench/experiment_load.py --data-dir ../shared/datasets/ml-1m-head
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.db import make_session_factory
from api.experiments.models import Impression
from api.versions.models import ModelVersion
from api.versions.service import active_version, finish_version, start_version
from bench.serve import (
    DB_NAME,
    LOAD_RATES,
    LUA,
    RESULTS,
    ROOT,
    bench_key,
    prepare,
    run_wrk,
    serve_command,
    server_counts,
    stack_env,
    stack_parser,
    wait_ready,
)

COPY_BY = "bench-experiment"  # started_by of the treatment copy, found again on reuse


def treatment_copy(sessions: sessionmaker) -> int:
    """Return the id of a succeeded copy of the active version (made once, then reused)."""
    with sessions() as session:
        active = active_version(session=session)
        assert active is not None and active.artifact_path, "the bench stack has no active version"
        copy = session.scalar(
            select(ModelVersion.id).where(
                ModelVersion.started_by == COPY_BY, ModelVersion.status == "succeeded"
            )
        )
        if copy is not None and copy != active.id:
            return copy
        params, metrics, source = active.params, active.metrics or {}, Path(active.artifact_path)
    with sessions.begin() as session:
        version_id = start_version(session=session, params=params, started_by=COPY_BY).id
    target = source.parent / f"v{version_id}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    with sessions.begin() as session:
        finish_version(session=session, version_id=version_id, metrics=metrics, artifact_path=str(target))
    return version_id


def set_experiment(env: dict[str, str], treatment: int | None) -> None:
    """Stop any running experiment, then start one of `treatment` on half the users (None: none), with
    the command line: a process of its own, since Milvus Lite's file is one process's at a time."""
    movierec = [sys.executable, "-m", "api.cli", "experiments"]
    subprocess.run([*movierec, "stop"], env=env, cwd=ROOT, capture_output=True)  # none running: fine
    if treatment is not None:
        start = [*movierec, "start", "--treatment", str(treatment), "--share", "0.5"]
        subprocess.run(start, env=env, cwd=ROOT, check=True, capture_output=True)


def ask_everyone(port: int, key: str, users: int) -> None:
    """Ask for every user's recommendations once: lists not kept yet are computed and kept."""
    query = "query($u: Int!) { recommendations(userId: $u, limit: 10) { movie { id } } }"

    def ask(user: int) -> None:
        body = json.dumps({"query": query, "variables": {"u": user}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            body,
            {"content-type": "application/json", "authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert "errors" not in answer, answer

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(1, users + 1)))


def impression_counts(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    counts = {"written": 0.0, "dropped": 0.0, "lost": 0.0}
    for line in lines:
        if line.startswith("movierec_impressions_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


def main() -> None:
    parser = stack_parser(__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds of load per turn")
    parser.add_argument("--rounds", type=int, default=3, help="turns each way (medians reported)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the model, when the stack is built")
    parser.add_argument("--fresh", action="store_true", help="rebuild the stack's database and model")
    parser.add_argument("--port", type=int, default=8775)
    args = parser.parse_args()
    args.database, args.lists_as_they_are = DB_NAME, False
    db_url, env = stack_env(args, database=DB_NAME)
    prepare(args, env)
    engine = create_engine(db_url)
    sessions = make_session_factory(engine)
    with engine.connect() as connection:
        users = int(connection.execute(text("SELECT MAX(user_id) FROM ratings")).scalar_one())
    treatment = treatment_copy(sessions)
    key = bench_key(db_url)
    script = LUA.replace("USERS", str(users)).replace("API_KEY", key)
    log = (Path(args.work_dir) / "experiment_load.log").open("w")
    metrics = Path(args.work_dir) / "experiment-metrics"
    # unrecorded: no experiment and MOVIEREC_IMPRESSION_QUEUE=0, what recording impressions costs
    turns: dict[str, list[dict[str, float]]] = {"without": [], "with": [], "unrecorded": []}
    extra = {"unrecorded": {"MOVIEREC_IMPRESSION_QUEUE": "0"}}
    try:
        for round_number in range(args.rounds):
            order = ("without", "with", "unrecorded")[:: 1 if round_number % 2 == 0 else -1]
            for name in order:
                set_experiment(env, treatment if name == "with" else None)
                shutil.rmtree(metrics, ignore_errors=True)
                metrics.mkdir(parents=True)
                with sessions() as session:
                    before = session.scalar(select(func.count()).select_from(Impression)) or 0
                server = subprocess.Popen(
                    serve_command(args, args.port),
                    env={
                        **env,
                        **LOAD_RATES,
                        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                        **extra.get(name, {}),
                    },
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                )
                try:
                    wait_ready(f"http://127.0.0.1:{args.port}/readyz")
                    ask_everyone(args.port, key, users)
                    url = f"http://127.0.0.1:{args.port}/graphql"
                    run_wrk(url, script, args.connections, 3, seed=1)
                    start = impression_counts(args.port) | server_counts(args.port)
                    result = run_wrk(url, script, args.connections, args.duration, seed=2)
                    end = impression_counts(args.port) | server_counts(args.port)
                    result |= {f"impressions_{k}": end[k] - start[k] for k in ("written", "dropped", "lost")}
                    result |= {k: end[k] - start[k] for k in ("kept", "computed")}
                    result["errors"] += end["graphql_errors"] - start["graphql_errors"]
                finally:
                    server.terminate()
                    server.wait(timeout=60)
                with sessions() as session:
                    result["impressions_in_database"] = (
                        session.scalar(select(func.count()).select_from(Impression)) or 0
                    ) - before
                turns[name].append(result)
                print(
                    f"round {round_number + 1} {name:>7} experiment: {result['req_per_s']:8.1f} req/s, "
                    f"p99 {result['p99_ms']:6.1f} ms, "
                    f"impressions written {result['impressions_written']:.0f}, "
                    f"dropped {result['impressions_dropped']:.0f}, kept answers {result['kept']:.0f} of "
                    f"{result['kept'] + result['computed']:.0f}, errors {result['errors']:.0f}",
                    flush=True,
                )
    finally:
        set_experiment(env, None)
        log.close()
        shutil.rmtree(metrics, ignore_errors=True)
        engine.dispose()

    def median(name: str, field: str) -> float:
        return float(np.median([turn[field] for turn in turns[name]]))

    summary: dict[str, dict[str, float]] = {
        name: {field: median(name, field) for field in ("req_per_s", "p50_ms", "p99_ms")}
        | {
            field: sum(turn[field] for turn in turns[name])
            for field in ("errors", "impressions_written", "impressions_dropped", "impressions_lost")
        }
        for name in turns
    }
    ratios = [w["req_per_s"] / o["req_per_s"] for w, o in zip(turns["with"], turns["without"], strict=True)]
    ratio = float(np.median(ratios))
    recording = [
        o["req_per_s"] / u["req_per_s"] for o, u in zip(turns["without"], turns["unrecorded"], strict=True)
    ]
    print(
        f"\nwithout an experiment: {summary['without']['req_per_s']:.1f} req/s, "
        f"p99 {summary['without']['p99_ms']:.1f} ms"
    )
    print(
        f"with an experiment:    {summary['with']['req_per_s']:.1f} req/s, "
        f"p99 {summary['with']['p99_ms']:.1f} ms"
    )
    print(
        f"ratio {ratio:.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)}); "
        f"impressions dropped with the experiment: {summary['with']['impressions_dropped']:.0f} of "
        f"{summary['with']['impressions_written'] + summary['with']['impressions_dropped']:.0f}"
    )
    print(
        f"recording impressions: {summary['unrecorded']['req_per_s']:.1f} req/s without, "
        f"p99 {summary['unrecorded']['p99_ms']:.1f} ms; recorded / unrecorded {np.median(recording):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in recording)})"
    )
    out = {
        "command": "bench/experiment_load.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "users": users,
        "connections": args.connections,
        "workers": args.workers,
        "duration_s": args.duration,
        "turns": turns,
        "summary": summary,
        "ratio": ratio,
        "ratio_rounds": ratios,
        "recorded_over_unrecorded": float(np.median(recording)),
        "recorded_over_unrecorded_rounds": recording,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "experiment_load.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
