"""At MovieLens-25M's size: the import, a training run and every user's kept list, measured.

Writes (once; then reused) an ML-25M-shaped dataset in the MovieLens CSV layout with
ml/movielens/scale.py (162,541 users, 62,423 movies, 25,000,095 ratings; --scale shrinks it), then
runs the product's own commands against a fresh MariaDB database and a Milvus Lite file, each
timed end to end with its peak RSS (/usr/bin/time):
- import: `movierec data import --source DIR` (parsing included; one transaction): ratings/s.
  Beside it, the server's own bulk path on the same ratings, LOAD DATA LOCAL INFILE into a copy of
  the ratings table (same keys and indexes), as the reference for what MariaDB here ingests;
- train: `movierec train --no-activate` with --examples-per-epoch (each epoch a new random sample)
  and --eval-users: its examples/s as recorded with the version, its wall time;
- activate: `movierec versions activate` (the Milvus collection of every movie, then every user's
  kept list): the kept-lists time it prints.
Targets (issue 17): import >= 150,000 ratings/s; a model within 60 minutes under 8 GB; kept lists
of 162k users within 10 minutes. Writes bench/results/scale_data.json.

    .venv/bin/python bench/scale_data.py [--scale 1.0] [--stages import,train,activate]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve import add_milvus_uri, stack_env
from ml.movielens.scale import Shape, write_ml25m_shaped

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_NAME = "movierec_bench_scale"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Return wall seconds, peak RSS in GB and the output of a command run under /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        peak_kb = int(rss.read().split()[-1])
    return wall, peak_kb / 1024**2, done.stdout + done.stderr


def load_data_reference(db_url: str, ratings_csv: Path, rows: int) -> float:
    """Return ratings/s of MariaDB's LOAD DATA LOCAL INFILE of the file's ratings into an empty copy
    of the ratings table (its keys and indexes, without the foreign keys), in one transaction."""
    import pymysql

    url = make_url(db_url)
    connection = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
        database=url.database, local_infile=True, autocommit=False,
    )  # fmt: skip
    try:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS ratings_reference")
            cursor.execute("CREATE TABLE ratings_reference LIKE ratings")
            cursor.execute("SET time_zone = '+00:00'")
            started = time.perf_counter()
            cursor.execute(
                f"LOAD DATA LOCAL INFILE '{ratings_csv}' INTO TABLE ratings_reference "
                "FIELDS TERMINATED BY ',' IGNORE 1 LINES (user_id, movie_id, rating, @t) "
                "SET rated_at = FROM_UNIXTIME(@t)"
            )
            connection.commit()
            seconds = time.perf_counter() - started
            cursor.execute("DROP TABLE ratings_reference")
    finally:
        connection.close()
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="share of ML-25M's counts (default all)")
    parser.add_argument("--data-dir", help="where the dataset is written (default var/scale-ml25m[-SCALE])")
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("MOVIEREC_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    )
    parser.add_argument("--work-dir", default=str(ROOT / "var" / "bench-scale"))
    parser.add_argument("--stages", default="import,train,activate")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--examples-per-epoch", type=int, default=4_000_000)
    parser.add_argument("--eval-users", type=int, default=10_000)
    parser.add_argument("--no-reference", action="store_true", help="skip the LOAD DATA reference")
    add_milvus_uri(parser)
    parser.add_argument(
        "--buffer-pool-gb", type=float,
        help="set MariaDB's innodb_buffer_pool_size for the run (restored after); MariaDB's default "
        "128 MB makes InnoDB rewrite pages at hundreds of MB/s once 25M ratings outgrow it",
    )  # fmt: skip
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    suffix = "" if args.scale == 1.0 else f"-{args.scale:g}"
    data = Path(args.data_dir or ROOT / "var" / f"scale-ml25m{suffix}")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    shape = Shape.ml25m(args.scale)
    results: dict[str, object] = {"shape": vars(shape), "stages": sorted(stages)}

    if not (data / "ratings.csv").is_file():
        started = time.perf_counter()
        write_ml25m_shaped(data, scale=args.scale)
        results["generate_s"] = round(time.perf_counter() - started, 1)
        print(f"wrote {shape} to {data} in {results['generate_s']} s")

    server = create_engine(args.mysql_url)
    with server.connect() as connection:
        pool = int(connection.execute(text("SELECT @@innodb_buffer_pool_size")).scalar_one())
        if args.buffer_pool_gb:
            wanted = int(args.buffer_pool_gb * 2**30)
            connection.execute(text(f"SET GLOBAL innodb_buffer_pool_size = {wanted}"))
        chosen = int(connection.execute(text("SELECT @@innodb_buffer_pool_size")).scalar_one())
    results["innodb_buffer_pool_gb"] = round(chosen / 2**30, 2)
    print(f"MariaDB's InnoDB buffer pool: {chosen / 2**30:.2f} GB")
    try:
        run_stages(args, stages, shape, data, work, results)
    finally:
        if chosen != pool:
            with server.connect() as connection:
                connection.execute(text(f"SET GLOBAL innodb_buffer_pool_size = {pool}"))
        server.dispose()


def run_stages(
    args: argparse.Namespace,
    stages: set[str],
    shape: Shape,
    data: Path,
    work: Path,
    results: dict[str, object],
) -> None:
    """Run the stages asked for, adding their figures to results, and write the results file."""
    db_url, env = stack_env(args, database=DB_NAME)
    movierec = [sys.executable, "-m", "api.cli"]

    if "import" in stages:
        server = create_engine(args.mysql_url)
        with server.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME}"))
            connection.execute(text(f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4"))
        server.dispose()
        (work / "milvus.db").unlink(missing_ok=True)
        shutil.rmtree(work / "models", ignore_errors=True)  # a new database numbers versions from 1 again
        subprocess.run([*movierec, "db", "upgrade"], env=env, check=True, capture_output=True)
        wall, peak, _ = timed([*movierec, "data", "import", "--source", str(data), "-q"], env)
        results["import"] = {
            "seconds": round(wall, 1), "peak_rss_gb": round(peak, 2),
            "ratings_per_s": round(shape.ratings / wall),
        }  # fmt: skip
        print(f"import: {shape.ratings:,} ratings in {wall:.1f} s, {shape.ratings / wall:,.0f}/s "
              f"(target >= 150,000), peak RSS {peak:.2f} GB")  # fmt: skip
        if not args.no_reference:
            reference = load_data_reference(db_url, (data / "ratings.csv").resolve(), shape.ratings)
            results["import"]["load_data_ratings_per_s"] = round(reference)  # type: ignore[index]
            print(f"  MariaDB's LOAD DATA of the same ratings: {reference:,.0f}/s; "
                  f"the import makes {shape.ratings / wall / reference:.0%} of it")  # fmt: skip
        save(args, results)

    if "train" in stages:
        command = [
            *movierec, "train", "--no-activate", "-q", "--epochs", str(args.epochs),
            "--examples-per-epoch", str(args.examples_per_epoch), "--eval-users", str(args.eval_users),
        ]  # fmt: skip
        wall, peak, out = timed(command, env)
        version = int(re.findall(r"version (\d+) trained", out)[-1])
        engine = create_engine(db_url)
        with engine.connect() as connection:
            raw = connection.execute(text("SELECT metrics FROM model_versions WHERE id = :v"), {"v": version})
            metrics = json.loads(raw.scalar_one())
        engine.dispose()
        results["train"] = {
            "version": version, "seconds": round(wall, 1), "peak_rss_gb": round(peak, 2),
            "epochs": args.epochs, "examples_per_epoch": args.examples_per_epoch,
            "eval_users": args.eval_users, "examples_per_s": round(metrics["examples_per_second"]),
            "train_seconds": round(metrics["train_seconds"], 1),
            **{k: round(metrics[k], 4) for k in ("hr@10", "ndcg@10", "recall@20") if k in metrics},
        }  # fmt: skip
        hr, recall = metrics.get("hr@10", float("nan")), metrics.get("recall@20", float("nan"))
        print(f"train: a model in {wall / 60:.1f} min (target < 60), peak RSS {peak:.2f} GB (target < 8), "
              f"{metrics['examples_per_second']:,.0f} examples/s; test HR@10 {hr:.4f}, "
              f"Recall@20 {recall:.4f} on {args.eval_users:,} users")  # fmt: skip
        save(args, results)

    if "activate" in stages:
        engine = create_engine(db_url)
        with engine.connect() as connection:
            version = connection.execute(text("SELECT MAX(id) FROM model_versions")).scalar_one()
        engine.dispose()
        wall, peak, out = timed([*movierec, "versions", "activate", str(version)], env)
        kept = re.search(r"kept the recommendations of (\d+) users in ([\d.]+) s", out)
        assert kept, out
        users, seconds = int(kept.group(1)), float(kept.group(2))
        results["activate_server" if args.milvus_uri else "activate"] = {
            "version": version, "seconds": round(wall, 1), "peak_rss_gb": round(peak, 2),
            "milvus": args.milvus_uri or "Milvus Lite", "kept_users": users, "kept_seconds": seconds,
            "kept_users_per_s": round(users / seconds),
        }  # fmt: skip
        print(f"activate: {wall:.1f} s in all; kept lists of {users:,} users in {seconds / 60:.1f} min "
              f"(target < 10), {users / seconds:,.0f} users/s, peak RSS {peak:.2f} GB")  # fmt: skip

    save(args, results)


def save(args: argparse.Namespace, results: dict[str, object]) -> None:
    """Write the figures so far (each stage's as it ends), over an earlier run's of the same stages."""
    suffix = "" if args.scale == 1.0 else f"-{args.scale:g}"
    results["machine"] = {"cpus": os.cpu_count(), "load_1min_after": round(os.getloadavg()[0], 2)}
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / ("scale_data.json" if args.scale == 1.0 else f"scale_data{suffix}.json")
    previous = json.loads(out_path.read_text()) if out_path.is_file() else {}
    out_path.write_text(json.dumps(previous | results, indent=2) + "\n")
    print(f"wrote {out_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
