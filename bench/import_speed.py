"""Import speed into MySQL: the product's batched upsert against a row-at-a-time baseline.

Each run imports the whole dataset into a fresh database (median of --runs); the baseline, an
INSERT statement per rating as a naive loader does it, runs on the first --baseline-rows ratings in
the same process so that the ratio is free of machine noise. Prints ratings/s for both.

    .venv/bin/python bench/import_speed.py --data-dir ../shared/datasets/ml-1m-head
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.dataimport.service import import_dataset
from api.db import from_epoch, make_engine, make_session_factory
from api.settings import Settings
from ml.movielens.layouts import load_ml1m

RESULTS = Path(__file__).parent / "results"


def fresh_database(server_url: str, name: str) -> str:
    """Return the URL of a newly created, migrated database called name."""
    from alembic import command

    from api.cli.commands import alembic_config

    admin = create_engine(server_url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    config = alembic_config(Settings(database_url=url))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    return url


def drop_database(server_url: str, name: str) -> None:
    admin = create_engine(server_url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get("MOVIEREC_DATA_DIR", "../shared/datasets/ml-1m-head")
    )
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("MOVIEREC_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = load_ml1m(Path(args.data_dir))
    parse_s = time.perf_counter() - started
    n = len(dataset.ratings)
    print(f"dataset: {args.data_dir}: {len(dataset.users)} users, {len(dataset.movies)} movies, {n} ratings")
    print(f"parse: {parse_s:.2f} s")

    name = "movierec_bench_import"
    totals = []
    for run in range(args.runs):
        url = fresh_database(args.mysql_url, name)
        engine = make_engine(url)
        started = time.perf_counter()
        with make_session_factory(engine).begin() as session:
            counts = import_dataset(session=session, dataset=dataset)
        elapsed = time.perf_counter() - started
        engine.dispose()
        assert counts.ratings == n, counts
        totals.append(elapsed)
        print(f"run {run + 1}: import {elapsed:.2f} s ({n / elapsed:,.0f} ratings/s)")

    # Re-import into the last run's database: idempotence, and the cost of a no-op re-run.
    engine = make_engine(url)
    started = time.perf_counter()
    with make_session_factory(engine).begin() as session:
        again = import_dataset(session=session, dataset=dataset)
    rerun_s = time.perf_counter() - started
    engine.dispose()
    assert again == counts, (again, counts)

    # Baseline: users and movies as the product writes them, then one INSERT per rating.
    url = fresh_database(args.mysql_url, name)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        import_dataset(session=session, dataset=_without_ratings(dataset))
    rows = min(args.baseline_rows, n)
    r = dataset.ratings
    started = time.perf_counter()
    with engine.begin() as connection:
        for i in range(rows):
            connection.execute(
                text("INSERT INTO ratings (user_id, movie_id, rating, rated_at) VALUES (:u, :m, :r, :t)"),
                {
                    "u": int(r.user_id[i]),
                    "m": int(r.movie_id[i]),
                    "r": int(r.rating[i]),
                    "t": from_epoch(int(r.timestamp[i])),
                },
            )
    baseline_s = time.perf_counter() - started
    engine.dispose()
    drop_database(args.mysql_url, name)

    median = statistics.median(totals)
    rate = n / median
    baseline_rate = rows / baseline_s
    result = {
        "dataset": str(args.data_dir),
        "ratings": n,
        "parse_s": round(parse_s, 2),
        "import_s_median": round(median, 2),
        "import_s_runs": [round(t, 2) for t in totals],
        "total_s": round(parse_s + median, 2),
        "ratings_per_s": round(rate),
        "rerun_s": round(rerun_s, 2),
        "baseline": "one INSERT per rating",
        "baseline_ratings_per_s": round(baseline_rate),
        "speedup": round(rate / baseline_rate, 1),
    }
    print()
    print(f"{'method':<28} {'ratings/s':>12}")
    print(f"{'batched upsert (median)':<28} {rate:>12,.0f}")
    print(f"{'one INSERT per rating':<28} {baseline_rate:>12,.0f}")
    print(
        f"speed-up {rate / baseline_rate:.1f}x; whole import (parse + write) {parse_s + median:.1f} s; "
        f"idempotent re-run {rerun_s:.1f} s"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "import_speed.json").write_text(json.dumps(result, indent=2) + "\n")


def _without_ratings(dataset):
    import numpy as np

    from ml.movielens.format import Dataset, Ratings

    empty = Ratings(
        user_id=np.empty(0, np.int32),
        movie_id=np.empty(0, np.int32),
        rating=np.empty(0, np.int8),
        timestamp=np.empty(0, np.int64),
    )
    return Dataset(users=dataset.users, movies=dataset.movies, ratings=empty)


if __name__ == "__main__":
    main()
