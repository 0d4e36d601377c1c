"""How a request's Milvus search should leave the event loop: a worker thread, or AsyncMilvusClient.

A computed `recommendations` request makes one search of the active collection (top 21 of about
4,000 256-d movie vectors). This runs --searches such searches from --concurrency coroutines on one
event loop, each way, taking turns for --rounds rounds, and prints searches per second and this
process's CPU per search (medians; the Milvus process's own CPU is not in it):
- thread: the adapter's synchronous search (VectorStore.search_many of one vector) in an anyio
  worker thread, at most 8 at a time (the API's limit for worker threads);
- event loop: pymilvus's AsyncMilvusClient, awaited on the loop (what VectorStore.search does).
On Milvus Lite (a file under a temporary directory) by default, or on the server at --milvus-uri.

    .venv/bin/python bench/milvus_access.py
    .venv/bin/python bench/milvus_access.py --milvus-uri http://127.0.0.1:19530
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from anyio import CapacityLimiter, to_thread

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pymilvus import AsyncMilvusClient

from api.vectors.store import VectorStore
from bench.db_access import measure  # the same timing of coroutines, `concurrency` at a time

COLLECTION, MOVIES, DIM, LIMIT = "bench_access", 3_883, 256, 21


async def main(args: argparse.Namespace, uri: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((MOVIES, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = VectorStore(uri)
    store.create(COLLECTION, dim=DIM, expected_rows=MOVIES)
    store.upsert(COLLECTION, np.arange(1, MOVIES + 1), vectors, [[]] * MOVIES, [None] * MOVIES)
    client = AsyncMilvusClient(uri=uri)
    limiter = CapacityLimiter(8)

    async def in_thread(query: np.ndarray) -> object:
        return await to_thread.run_sync(
            lambda: store.search_many(COLLECTION, query[None, :], limit=LIMIT), limiter=limiter
        )

    async def on_loop(query: np.ndarray) -> object:
        return await client.search(
            COLLECTION, data=[query.tolist()], limit=LIMIT, search_params={"metric_type": "IP", "params": {}}
        )

    queries = vectors[rng.integers(0, MOVIES, args.searches)]
    ways = {"worker thread, MilvusClient": in_thread, "event loop, AsyncMilvusClient": on_loop}
    threaded = [hit.movie_id for hit in store.search_many(COLLECTION, queries[:1], limit=LIMIT)[0]]
    awaited = await on_loop(queries[0])
    assert [hit["id"] for hit in awaited[0]] == threaded, "the two clients disagree"  # type: ignore[index]
    for search in ways.values():  # warm connections and threads
        await measure(search, queries[:200], args.concurrency)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, search in ways.items():
            results[name].append(await measure(search, queries, args.concurrency))
    print(f"{args.searches} searches, {args.concurrency} at a time, medians of {args.rounds} rounds")
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:32} {rate:8.0f} searches/s  {cpu:.3f} ms CPU/search")
    await client.close()
    store.drop(COLLECTION)
    store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--milvus-uri", help="a Milvus server; Milvus Lite without it")
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(arguments, arguments.milvus_uri or str(Path(tmp) / "access.db")))
