"""Popular lists under a flood: another client's `movies(first: 5)`, idle and while one anonymous
client sends 30-alias `recommendationsForProfile(ratedMovies: [])` queries at its address limit.

Uses a MySQL database of its own (movierec_bench_popular; built on first use as bench/serve.py builds
its: import, train, activate) and serves it as deployed (`movierec serve --workers N`), the address
rate limit shared by the workers through Redis. Then, for --rounds rounds taking turns:
- idle: a client with an API key (its own limit) asks `movies(first: 5)` --probe-rate times a second
  for --duration s;
- popular: the same, while an anonymous client (a process of its own) sends the 30-alias popular
  query, every alias a year range no other alias of the run asks, at the address limit
  (MOVIEREC_RATE_LIMIT_ADDRESS, 50 a second by default), open loop: on schedule, whatever the answers.
Prints each round, the medians of the other client's p50/p95 and of each round's flood-to-idle p50
ratio (target: <= 2), the flood's answers and latencies, and the CPU seconds of the server's
processes and of MariaDB (shared with anything else using it) per phase; writes
bench/results/popular_flood.json.

    .venv/bin/python bench/popular_flood.py --data-dir ../shared/datasets/ml-1m-head
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from limits import parse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.settings import Settings
from api.vectors.filters import MAX_YEAR, MIN_YEAR
from bench.serve import RESULTS, ROOT, bench_key, prepare, serve_command, stack_env, stack_parser, wait_ready

DB_NAME = "movierec_bench_popular"
ALIASES = 30
MOVIES = "{ movies(first: 5) { nodes { id title } } }"
ALIAS = "a{i}: recommendationsForProfile(ratedMovies: [], {filters}) {{ score movie {{ id title }} }}"
PHASES = ("idle", "popular")


def fresh_filters(seed: int) -> Iterator[str]:
    """Yield filter arguments no earlier one repeats: every year range (shuffled), then the same with
    each genre in turn."""
    ranges = [(low, high) for low in range(MIN_YEAR, MAX_YEAR + 1) for high in range(low, MAX_YEAR + 1)]
    random.Random(seed).shuffle(ranges)
    genres = ["Action", "Comedy", "Drama", "Thriller", "Romance", "Horror", "Adventure", "Sci-Fi"]
    for genre in [None, *genres]:
        for low, high in ranges:
            chosen = "" if genre is None else f'genres: ["{genre}"], '
            yield f"{chosen}yearFrom: {low}, yearTo: {high}"


def flood_bodies(filters: Iterator[str], count: int) -> list[bytes]:
    """Return `count` request bodies of ALIASES aliases each, every alias with filters of its own."""
    bodies = []
    for _ in range(count):
        query = "{ " + " ".join(ALIAS.format(i=i, filters=next(filters)) for i in range(ALIASES)) + " }"
        bodies.append(json.dumps({"query": query}).encode())
    return bodies


async def flood(url: str, bodies: list[bytes], rate: float) -> dict[str, object]:
    """Send the bodies anonymously at `rate` a second on schedule (open loop); return what came back."""
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    samples: list[str] = []

    async def send(client: httpx.AsyncClient, body: bytes) -> None:
        started = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as error:
            statuses["transport error"] = statuses.get("transport error", 0) + 1
            samples.append(repr(error))
            return
        latencies.append(time.perf_counter() - started)
        if response.status_code == 200 and b'"errors"' in response.content:
            label = "200 with errors"
            samples.append(str(response.json()["errors"])[:300])  # only the errors: no data
        else:
            label = str(response.status_code)
        statuses[label] = statuses.get(label, 0) + 1

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        tasks = []
        for n, body in enumerate(bodies):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(send(client, body)))
        sent_in = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return {
        "sent": len(bodies),
        "sent_per_s": round(len(bodies) / sent_in, 1) if sent_in else 0.0,
        "statuses": statuses,
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1) if latencies else None,
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 1) if latencies else None,
        "samples": samples[:3],
    }


def probe(url: str, key: str, rate: float, stop: threading.Event) -> tuple[list[float], int]:
    """Return the latencies (ms) of `movies(first: 5)` asked `rate` times a second until stop is
    set, one at a time, and how many failed."""
    times: list[float] = []
    failed = 0
    body = json.dumps({"query": MOVIES}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    with httpx.Client(timeout=60, headers=headers) as client:
        next_at = time.perf_counter()
        while not stop.is_set():
            next_at += 1 / rate
            started = time.perf_counter()
            response = client.post(url, content=body)
            elapsed = time.perf_counter() - started
            if response.status_code != 200 or b'"errors"' in response.content:
                failed += 1
            else:
                times.append(elapsed * 1000)
            stop.wait(max(0.0, next_at - time.perf_counter()))
    return times, failed


def cpu_seconds(pid: int) -> float:
    """Return the CPU seconds (user and system) a process and all its descendants used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def mariadb_pid() -> int | None:
    """Return the local MariaDB server's process id, if it runs here."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("mariadbd", "mysqld"):
                return int(comm.parent.name)
        except OSError:
            continue
    return None


def phase(
    base: str,
    key: str,
    args: argparse.Namespace,
    server: int,
    bodies: list[bytes] | None,
    env: dict[str, str],
) -> dict[str, Any]:
    """Return the other client's latencies for --duration s, with the flood beside it when `bodies`."""
    database = mariadb_pid()
    cpu = (cpu_seconds(server), cpu_seconds(database) if database else 0.0)
    stop = threading.Event()
    probed: list[tuple[list[float], int]] = []
    prober = threading.Thread(
        target=lambda: probed.append(probe(f"{base}/graphql", key, args.probe_rate, stop))
    )
    flooded: dict[str, Any] = {}
    prober.start()
    if bodies is None:
        time.sleep(args.duration)
    else:
        flooded = run_flood(args, env, base, bodies, rate=args.rate)
    stop.set()
    prober.join()
    times, failed = probed[0]
    result: dict[str, Any] = {
        "probes": len(times),
        "probe_failures": failed,
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "server_cpu_s": round(cpu_seconds(server) - cpu[0], 2),
        "mariadb_cpu_s": round((cpu_seconds(database) if database else 0.0) - cpu[1], 2),
    }
    if flooded:
        result["flood"] = flooded
    return result


def main() -> None:
    parser = stack_parser(__doc__)
    parser.set_defaults(work_dir=str(ROOT / "var" / "bench-popular"))
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--duration", type=float, default=10, help="seconds of each idle and flood phase")
    parser.add_argument("--rounds", type=int, default=5, help="idle and flood phases taking turns (medians)")
    parser.add_argument("--probe-rate", type=float, default=20, help="the other client's requests a second")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the served model, when built")
    parser.add_argument("--fresh", action="store_true", help="rebuild database and model")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="the workers' shared counts")
    parser.add_argument("--out", default="popular_flood.json", help="results file under bench/results")
    parser.add_argument("--flood-from", help=argparse.SUPPRESS)
    parser.add_argument("--flood-url", help=argparse.SUPPRESS)
    parser.add_argument("--flood-rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_from:
        bodies = [b.encode() for b in json.loads(Path(args.flood_from).read_text())]
        print(json.dumps(asyncio.run(flood(args.flood_url, bodies, args.flood_rate))))
        return

    limit = Settings().rate_limit_address or "50/second"
    item = parse(limit)
    args.rate = item.amount / item.get_expiry()
    args.lists_as_they_are = True  # no kept list is read here
    db_url, env = stack_env(args, database=args.database)
    prepare(args, env)
    env |= {"MOVIEREC_REDIS_URL": args.redis_url, "MOVIEREC_RATE_LIMIT_ADDRESS": limit}
    key = bench_key(db_url)
    filters = fresh_filters(seed=1)
    base = f"http://127.0.0.1:{args.port}"
    load_before = os.getloadavg()
    rounds: list[dict[str, Any]] = []
    with Path(args.work_dir, "server.log").open("w") as log:
        server = subprocess.Popen(serve_command(args, args.port), env=env, cwd=ROOT, stdout=log, stderr=log)
        try:
            wait_ready(f"{base}/readyz")
            # Warm-up: each worker's model, catalogue and first read of the counts.
            run_flood(args, env, base, flood_bodies(filters, 2 * args.workers), rate=4)
            httpx.post(f"{base}/graphql", json={"query": MOVIES}, headers={"authorization": f"Bearer {key}"})
            for n in range(args.rounds):
                bodies = flood_bodies(filters, int(args.rate * args.duration))
                turn = {
                    "idle": phase(base, key, args, server.pid, None, env),
                    "popular": phase(base, key, args, server.pid, bodies, env),
                }
                rounds.append(turn)
                print(
                    f"round {n + 1}: "
                    + "; ".join(f"{k} p50 {v['p50_ms']} ms p95 {v['p95_ms']} ms" for k, v in turn.items())
                )
        finally:
            server.terminate()
            server.wait(timeout=60)
    summary = summarise(args, rounds, load_before, os.getloadavg())
    report(args, summary)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(summary, indent=2) + "\n")


def summarise(
    args: argparse.Namespace,
    rounds: list[dict[str, Any]],
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
) -> dict[str, Any]:
    """Return the run's figures: medians over rounds for each phase, and every round."""

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    phases: dict[str, Any] = {}
    for name in PHASES:
        runs = [r[name] for r in rounds]
        figures: dict[str, Any] = {
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p95_ms": median([r["p95_ms"] for r in runs]),
            "server_cpu_s": median([r["server_cpu_s"] for r in runs]),
            "mariadb_cpu_s_shared": median([r["mariadb_cpu_s"] for r in runs]),
        }
        if name != "idle":
            ratios = [r[name]["p50_ms"] / r["idle"]["p50_ms"] for r in rounds]
            statuses: dict[str, int] = {}
            for run in runs:
                for status, count in run["flood"]["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + count
            figures |= {
                "p50_ratio": median(ratios),
                "p50_ratio_per_round": [round(r, 3) for r in ratios],
                "flood_statuses": statuses,
                "flood_sent_per_s": [r["flood"]["sent_per_s"] for r in runs],
                "flood_answer_p50_ms": median([r["flood"]["p50_ms"] for r in runs]),
                "flood_answer_p95_ms": median([r["flood"]["p95_ms"] for r in runs]),
            }
        phases[name] = figures
    return {
        "date": datetime.date.today().isoformat(),
        "dataset": args.data_dir,
        "workers": args.workers,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "probe_rate_per_s": args.probe_rate,
        "flood_rate_per_s": args.rate,
        "aliases_per_flood_request": ALIASES,
        **phases,
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "cpus": os.cpu_count(),
        "rounds_detail": rounds,
    }


def report(args: argparse.Namespace, s: dict[str, Any]) -> None:
    """Print the run's figures."""
    print(
        f"\nmovies(first: 5) from another client, medians of {args.rounds} rounds of {args.duration:g} s "
        f"(idle p50 {s['idle']['p50_ms']} ms p95 {s['idle']['p95_ms']} ms):"
    )
    f = s["popular"]
    print(
        f"  beside the flood: p50 {f['p50_ms']} ms p95 {f['p95_ms']} ms, p50 / idle {f['p50_ratio']} "
        f"(rounds: {f['p50_ratio_per_round']}; target <= 2); the flood sent at {f['flood_sent_per_s']}/s, "
        f"answers {f['flood_statuses']}, p50 {f['flood_answer_p50_ms']} ms p95 {f['flood_answer_p95_ms']} ms"
    )
    print(
        f"CPU s per {args.duration:g} s phase (medians): server "
        + ", ".join(f"{n} {s[n]['server_cpu_s']}" for n in PHASES)
        + "; MariaDB (shared) "
        + ", ".join(f"{n} {s[n]['mariadb_cpu_s_shared']}" for n in PHASES)
        + f"; load average {s['load_average_1m']} on {s['cpus']} CPUs"
    )


def run_flood(
    args: argparse.Namespace, env: dict[str, str], base: str, bodies: list[bytes], rate: float
) -> dict[str, Any]:
    """Return what `flood` returns, run in a process of its own: the flood's client takes no time
    from the other client's."""
    path = Path(args.work_dir, "flood-bodies.json")
    path.write_text(json.dumps([b.decode() for b in bodies]))
    command = [sys.executable, __file__, "--flood-from", str(path), "--flood-url", f"{base}/graphql"]
    out = subprocess.run(
        [*command, "--flood-rate", str(rate)], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
