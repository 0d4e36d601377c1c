"""Soak: mixed traffic for a minute against the running API; errors, lost writes and memory growth.

80% recommendations, 15% movie and user reads, 5% rateMovie, at --connections concurrent clients
for --duration seconds against the database and model that bench/serve.py prepares (run it once
first), served as deployed (`movierec serve --workers N`). Every acknowledged rateMovie is looked up
in MySQL afterwards; the resident memory of the server's processes is read at the start (after a
warm-up) and at the end. Writes bench/results/soak.json.

    .venv/bin/python bench/serve.py --duration 5      # once: database, import, model
    .venv/bin/python bench/soak.py
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve import ROOT, bench_key, serve_command, stack_env, stack_parser, wait_ready

RESULTS = ROOT / "bench" / "results" / "soak.json"
RECS = "query($u: Int!) { recommendations(userId: $u, limit: 10) { score movie { id title } } }"
MOVIE = "query($m: Int!) { movie(id: $m) { title genres averageRating ratingsCount } }"
USER = (
    "query($u: Int!) { user(id: $u) { occupation ratings(first: 10) { nodes { rating movie { title } } } } }"
)
RATE = (
    "mutation($u: Int!, $m: Int!, $r: Float!) { rateMovie(userId: $u, movieId: $m, rating: $r) { rating } }"
)


def rss_kib(pid: int) -> int:
    """Return the resident memory of a process and all its descendants (workers, Milvus Lite), in KiB."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        for line in Path(f"/proc/{current}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


async def soak(
    url: str, key: str, users: list[int], movies: list[int], connections: int, duration: float
) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    acknowledged: set[tuple[int, int]] = set()
    counts = {"recommendations": 0, "reads": 0, "rateMovie": 0}
    deadline = time.monotonic() + duration

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        headers = {"authorization": f"Bearer {key}"}  # a back end's key: reads any user, rates as any
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
            while time.monotonic() < deadline:
                roll = rng.random()
                if roll < 0.80:
                    kind, body = "recommendations", {"query": RECS, "variables": {"u": rng.choice(users)}}
                elif roll < 0.95:
                    kind = "reads"
                    body = ({"query": MOVIE, "variables": {"m": rng.choice(movies)}} if rng.random() < 0.5
                            else {"query": USER, "variables": {"u": rng.choice(users)}})  # fmt: skip
                else:
                    kind = "rateMovie"
                    pair = (rng.choice(users), rng.choice(movies))
                    body = {"query": RATE, "variables": {"u": pair[0], "m": pair[1], "r": rng.randint(1, 5)}}
                started = time.perf_counter()
                try:
                    response = await client.post("/graphql", json=body)
                    payload = response.json()
                except (httpx.HTTPError, ValueError) as error:
                    errors.append(f"{kind}: {error!r}")
                    continue
                latencies.append(time.perf_counter() - started)
                counts[kind] += 1
                if response.status_code != 200 or payload.get("errors"):
                    errors.append(f"{kind}: {response.status_code} {str(payload.get('errors'))[:200]}")
                elif kind == "rateMovie":
                    acknowledged.add(pair)

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies), "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        "errors": len(errors), "error_samples": errors[:5], "counts": counts, "acknowledged": acknowledged,
    }  # fmt: skip


def main() -> None:
    parser = stack_parser(__doc__)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()

    db_url, env = stack_env(args)
    engine = create_engine(db_url)
    with engine.connect() as connection:
        users = list(connection.execute(text("SELECT DISTINCT user_id FROM ratings")).scalars())
        movies = list(connection.execute(text("SELECT id FROM movies")).scalars())
        before = connection.execute(text("SELECT COUNT(*) FROM ratings")).scalar_one()

    key = bench_key(db_url)
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        serve_command(args, args.port),
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL,  # the access log
    )  # fmt: skip
    try:
        wait_ready(f"{url}/readyz")
        asyncio.run(soak(url, key, users, movies, args.connections, 5))  # warm-up: model, caches, pools
        rss_start = rss_kib(server.pid)
        result = asyncio.run(soak(url, key, users, movies, args.connections, args.duration))
        rss_end = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    acknowledged = result.pop("acknowledged")
    with engine.connect() as connection:
        present = 0
        for user, movie in acknowledged:
            present += connection.execute(
                text("SELECT COUNT(*) FROM ratings WHERE user_id = :u AND movie_id = :m"),
                {"u": user, "m": movie},
            ).scalar_one()
        after = connection.execute(text("SELECT COUNT(*) FROM ratings")).scalar_one()
    engine.dispose()
    summary = {
        **result, "duration_s": args.duration, "connections": args.connections, "workers": args.workers,
        "acknowledged_ratings": len(acknowledged), "lost_ratings": len(acknowledged) - present,
        "ratings_before": before, "ratings_after": after, "rss_start_mib": round(rss_start / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1), "memory_growth": round((rss_end - rss_start) / rss_start, 4),
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    print(
        f"\n{summary['req_per_s']} req/s, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"errors {summary['errors']}, lost ratings {summary['lost_ratings']} of {len(acknowledged)}, "
        f"memory {summary['rss_start_mib']} -> {summary['rss_end_mib']} MiB ({summary['memory_growth']:+.1%})"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
