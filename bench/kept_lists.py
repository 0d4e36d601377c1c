"""Kept lists ranked in process against ranked by batched Milvus searches, in the same run.

On a database with an active version (by default bench/scale_data.py's, ML-25M's size), reads
--users users in keep_lists' chunks (api/recommend/kept.py: read_users) and ranks each chunk both
ways through the pipeline's batched ranking (api/recommend/pipeline.py): by matrix products over the
collection's vectors (api/recommend/exact.py) and by batched Milvus searches (search_unrated),
taking turns chunk by chunk so that a slower minute of the machine falls on both. Reports users/s
of each (the reads excluded, which both share), their ratio, how many lists came out the same, and
how many had the same scores position by position (movies of one vector score alike, and Milvus
orders them as its heap does).
Writes bench/results/kept_lists.json.

    .venv/bin/python bench/kept_lists.py [--database movierec_bench_scale] [--users 5000]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import anyio
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.db import make_engine, make_session_factory
from api.movies.models import Movie
from api.recommend.exact import ExactIndex
from api.recommend.kept import CHUNK, read_users, search_unrated
from api.recommend.pipeline import KEPT_LIMIT, Ask, answer
from api.recommend.popular import Popularity
from api.recommend.service import RankMany, Sources
from api.settings import Settings
from api.users.models import User
from api.vectors.store import VectorStore
from api.versions.registry import ModelRegistry
from bench.scale_data import DB_NAME
from bench.serve import add_milvus_uri, stack_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("MOVIEREC_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    )
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--work-dir", default=str(ROOT / "var" / "bench-scale"))
    add_milvus_uri(parser)
    parser.add_argument("--users", type=int, default=5_000, help="users ranked both ways")
    args = parser.parse_args()
    db_url, env = stack_env(args, database=args.database)
    settings = Settings(database_url=db_url, milvus_uri=env["MOVIEREC_MILVUS_URI"])
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    store = VectorStore(settings.resolved_milvus_uri, timeout=600)
    with sessions() as session:
        model = ModelRegistry().get(session)
        assert model is not None, f"{args.database} has no active version"
        user_ids = list(session.execute(select(User.id).order_by(User.id).limit(args.users)).scalars())
        started = time.perf_counter()
        index = ExactIndex.read(store, model.collection, list(session.execute(select(Movie.id)).scalars()))
        read_s = time.perf_counter() - started
    assert index is not None, "the collection is not searched exactly (FLAT): Milvus ranks it"
    print(f"{model.collection}: {len(index.movie_ids):,} vectors of {index.vectors.shape[1]} "
          f"read in {read_s:.1f} s")  # fmt: skip
    seconds = {"in_process": 0.0, "milvus": 0.0}
    ways: dict[str, RankMany] = {
        "in_process": functools.partial(index.top_unrated, limit=KEPT_LIMIT),
        "milvus": functools.partial(search_unrated, store, model.collection, limit=KEPT_LIMIT),
    }

    users = same = same_scores = 0
    for start in range(0, len(user_ids), CHUNK):
        with sessions() as session:
            chunk = read_users(
                session=session, ids=user_ids[start : start + CHUNK], length=model.model.history_length
            )
        now = int(time.time())
        ranked = {}
        for way, rank_many in ways.items():
            sources = Sources(store, Popularity(engine), rank_many=rank_many)
            asks = [Ask(user_id, user, KEPT_LIMIT) for user_id, user in chunk]
            started = time.perf_counter()
            anyio.run(answer, sources, model, asks, now)
            seconds[way] += time.perf_counter() - started
            ranked[way] = [ask.found or [] for ask in asks]
        users += len(chunk)
        for a, b in zip(ranked["in_process"], ranked["milvus"], strict=True):
            same += [r.movie_id for r in a] == [r.movie_id for r in b]
            # otherwise only movies of equal scores may be in another order (or another at the cut)
            same_scores += len(a) == len(b) and all(
                abs(r.score - q.score) <= 1e-6 for r, q in zip(a, b, strict=True)
            )
        print(f"  {users:,} users: in process {users / seconds['in_process']:,.0f}/s, "
              f"Milvus {users / seconds['milvus']:,.0f}/s", flush=True)  # fmt: skip
    store.close()
    engine.dispose()
    result = {
        "database": args.database,
        "milvus": args.milvus_uri or "Milvus Lite",
        "movies": len(index.movie_ids),
        "users": users,
        "vectors_read_s": round(read_s, 2),
        "in_process_users_per_s": round(users / seconds["in_process"], 1),
        "milvus_users_per_s": round(users / seconds["milvus"], 1),
        "ratio": round(seconds["milvus"] / seconds["in_process"], 2),
        "same_lists": same,
        "same_scores_position_by_position": same_scores,
        "machine": {"cpus": os.cpu_count(), "load_1min_after": round(os.getloadavg()[0], 2)},
    }
    print(
        f"ranked {users:,} users: in process {result['in_process_users_per_s']:,}/s, batched Milvus "
        f"searches {result['milvus_users_per_s']:,}/s ({result['ratio']}x); {same:,} lists the same, "
        f"{same_scores:,} with the same scores position by position (the rest of them differ only in "
        "the order of equal scores)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kept_lists.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
