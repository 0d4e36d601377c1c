"""Title search at ML-25M's catalogue size: latency of `movies(search: …)` through the served API.

Builds a catalogue of 62,423 movies (ML-25M's count): the titles of --data-dir's movies.dat as they
are, and the rest made of words drawn as often as those titles use them, with lengths as theirs
and a year, so common words ("the", "of") and rare ones keep their shares. Each movie gets a rating
count from a long tail (the real titles first, by their ratings in the data). Nothing is written
beside the work dir; the data stays where it is.

For MariaDB (a database of its own, created and dropped here) and SQLite, the catalogue is
written into a database migrated to head (the title index fills as the rows go in), `movierec serve`
(one worker) serves it, and one client sends, one at a time over a kept-alive connection:
- the search mix: typed prefixes, whole titles, short words and stopwords, accents, no match, search
  syntax, and second pages through the cursor of the first;
- the baseline, taking turns with it: `movie(id: …)`, the same stack reading one movie by its key.
Then, in-process on the same database, the search's SQL statement against the LIKE scan searches
made before (`title LIKE '%…%' ORDER BY id`), the words as typed.

    .venv/bin/python bench/search.py --data-dir ../shared/datasets/ml-1m-head

Writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.cli.commands import alembic_config
from api.db import make_engine
from api.movies.models import Movie
from api.movies.service import search_movies
from api.settings import Settings
from bench.serve import wait_ready
from ml.movielens.scale import ML25M_MOVIES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_NAME = "movierec_bench_search"
QUERIES = (
    "s", "st", "sta", "star", "star w", "star wars", "matrix", "the matrix", "godfather", "toy story",
    "lord of the rings", "love", "man", "night", "american beauty", "up", "it", "the", "a", "of the",
    "amelie", "café", "1995", "ii", "zzzzq", '"star" OR (wars*', "-the +man", "NEAR(love night)",
)  # fmt: skip
PAGED = ("the", "love", "man")  # asked for again with the cursor of their first page
SEARCH = "query($s: String, $after: String) { movies(search: $s, first: 20, after: $after) { edges { cursor node { id title year } } pageInfo { hasNextPage endCursor } } }"  # noqa: E501
BY_ID = "query($id: Int!) { movie(id: $id) { id title year } }"


def catalogue(data_dir: Path, seed: int) -> list[dict[str, Any]]:
    """Return ML25M_MOVIES rows for the movies table: the data's titles, then made-up ones."""
    rng = np.random.default_rng(seed)
    real = [line.split("::") for line in (data_dir / "movies.dat").read_text(encoding="latin-1").splitlines()]
    rated = Counter(
        int(line.split("::", 2)[1]) for line in (data_dir / "ratings.dat").open(encoding="latin-1")
    )
    names = [re.sub(r" \(\d{4}\)$", "", title) for _id, title, _genres in real]
    words = Counter(w for name in names for w in name.split())
    vocabulary, counts = list(words), np.array(list(words.values()), dtype=np.float64)
    lengths = np.array([len(name.split()) for name in names])
    rows = []
    scale = 25_000_095 / max(1, sum(rated.values()))  # ML-25M's ratings over the data's
    for i, (movie_id, title, _genres) in enumerate(real):
        found = re.search(r"\((\d{4})\)$", title)
        count = round(rated.get(int(movie_id), 0) * scale)
        rows.append(
            {"id": i + 1, "title": title, "year": int(found[1]) if found else None, "rating_count": count}
        )
    tail = rng.pareto(1.2, size=ML25M_MOVIES - len(rows)) * 20  # most made-up movies have a few ratings
    shares = counts / counts.sum()
    for k, extra in enumerate(tail):
        picked = rng.choice(len(vocabulary), size=int(rng.choice(lengths)), p=shares)
        year = int(rng.integers(1902, 2020))
        name = " ".join(vocabulary[j] for j in picked)
        rows.append(
            {
                "id": len(real) + k + 1,
                "title": f"{name} ({year})"[:255],
                "year": year,
                "rating_count": int(extra),
            }
        )
    return rows


def fill(url: str, rows: list[dict[str, Any]]) -> None:
    """Migrate the database at url to head and write the catalogue, in batches as an import does."""
    command.upgrade(alembic_config(Settings(database_url=url)), "head")
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        for start in range(0, len(rows), 5_000):
            session.execute(insert(Movie), rows[start : start + 5_000])
    engine.dispose()


class Client:
    """One kept-alive HTTP connection to the API, timing each GraphQL request."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def ask(self, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        body = json.dumps({"query": query, "variables": variables})
        started = time.perf_counter()
        self.connection.request("POST", "/graphql", body, {"content-type": "application/json"})
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        elapsed = time.perf_counter() - started
        if response.status != 200 or answer.get("errors"):
            raise RuntimeError(f"{variables}: {response.status} {answer}")
        return elapsed, answer["data"]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def served(
    env: dict[str, str], port: int, log: Path, rounds: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Serve the database `env` names and time the search mix and the baseline, taking turns."""
    command = [sys.executable, "-m", "api.cli", "serve", "--workers", "1", "--port", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz")
        client = Client(port)
        cursors: dict[str, str] = {}
        for query in QUERIES:  # warm-up: every statement once, and the cursors of the paged queries
            data = client.ask(SEARCH, {"s": query})[1]
            if query in PAGED:
                cursors[query] = data["movies"]["pageInfo"]["endCursor"]
        searches: list[float] = []
        by_query: dict[str, list[float]] = {q: [] for q in QUERIES}
        pages: list[float] = []
        baseline: list[float] = []
        for _ in range(rounds):
            for query in rng.permutation(QUERIES):
                elapsed = client.ask(SEARCH, {"s": str(query)})[0]
                searches.append(elapsed)
                by_query[str(query)].append(elapsed)
                baseline.append(client.ask(BY_ID, {"id": int(rng.integers(1, ML25M_MOVIES + 1))})[0])
            for query, after in cursors.items():
                pages.append(client.ask(SEARCH, {"s": query, "after": after})[0])
        return {
            "search": percentiles(searches),
            "second_pages": percentiles(pages),
            "movie_by_id": percentiles(baseline),
            "by_query_p50_ms": {q: percentiles(t)["p50_ms"] for q, t in by_query.items()},
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def statements(url: str, rounds: int) -> dict[str, Any]:
    """Time, in-process, the search's statement and the LIKE scan over the same titles."""
    engine = make_engine(url)
    like: list[float] = []
    ours: list[float] = []
    with Session(engine) as session:
        for _ in range(rounds):
            for query in QUERIES:
                started = time.perf_counter()
                session.execute(
                    select(Movie)
                    .where(Movie.title.icontains(query, autoescape=True))
                    .order_by(Movie.id)
                    .limit(21)
                ).all()
                like.append(time.perf_counter() - started)
                started = time.perf_counter()
                search_movies(session=session, search=query, first=20)
                ours.append(time.perf_counter() - started)
            session.rollback()
    engine.dispose()
    return {"search_statement": percentiles(ours), "like_scan": percentiles(like)}


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
    parser.add_argument("--work-dir", default=str(ROOT / "var" / "bench-search"))
    parser.add_argument("--port", type=int, default=8631)
    parser.add_argument("--rounds", type=int, default=40, help="times the mix is sent")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = catalogue(Path(args.data_dir), args.seed)
    admin = create_engine(args.mysql_url)
    results: dict[str, Any] = {
        "command": "python bench/search.py " + " ".join(sys.argv[1:]),
        "movies": len(rows),
        "queries": list(QUERIES),
        "paged": list(PAGED),
    }
    backends = {
        "mysql": make_url(args.mysql_url).set(database=DB_NAME).render_as_string(hide_password=False),
        "sqlite": f"sqlite:///{(work / 'search.db').as_posix()}",
    }
    try:
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME}"))
            connection.execute(
                text(f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            )
        for name, url in backends.items():
            started = time.perf_counter()
            fill(url, rows)
            print(f"{name}: {len(rows)} movies written in {time.perf_counter() - started:.1f} s", flush=True)
            env = {
                **os.environ,
                "MOVIEREC_DATABASE_URL": url,
                "MOVIEREC_MILVUS_URI": str(work / f"milvus-{name}.db"),
                "MOVIEREC_MODEL_DIR": str(work / "models"),
                "MOVIEREC_VAR_DIR": str(work / name),
                "MOVIEREC_ENVIRONMENT": "development",
                "MOVIEREC_RATE_LIMIT_ADDRESS": "none",
                "PYTHONPATH": str(ROOT),
            }
            rng = np.random.default_rng(args.seed)
            results[name] = served(env, args.port, work / f"serve-{name}.log", args.rounds, rng)
            results[name] |= statements(url, args.rounds // 4 or 1)
            print(
                name,
                json.dumps({k: v for k, v in results[name].items() if k != "by_query_p50_ms"}),
                flush=True,
            )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME}"))
        admin.dispose()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
