"""Vector search at scale: build time, latency and recall of the index the adapter chooses.

For each size, synthetic clustered unit vectors (256-d, like the movie vectors) go into a fresh
collection through api.vectors.store, with the index the adapter chooses there: on Milvus Lite
by default, on a Milvus server with --milvus-uri. Reports build time (insert + flush + index +
load), search p50/p99 over --queries top-10 queries, and recall@10 against exact numpy search of
the same vectors in the same run, whose p50 is printed as the baseline. Where the index is HNSW,
the same queries run again for each ef of --ef (the sweep the adapter's default ef comes from), and
for an IVF index (with --index) for each nprobe of --nprobe.
Writes the engine's rows of bench/results/scale.json.

    .venv/bin/python bench/scale.py                    # Milvus Lite: 10k, 100k and 1M
    .venv/bin/python bench/scale.py --sizes 10000 100000
    milvus-server --data /tmp/milvus &       # PyPI's milvus package: a server on 19530
    .venv/bin/python bench/scale.py --milvus-uri http://127.0.0.1:19530

--index replaces the adapter's choice to try another index (results printed, not written):

    .venv/bin/python bench/scale.py --sizes 100000 --index IVF_FLAT \
        --build '{"nlist": 1024}' --search '{"nprobe": 128}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from api.vectors.lite import is_embedded, is_lite_file
from api.vectors.store import IndexSpec, VectorStore

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
DIM = 256
COLLECTION = "bench_scale"


def clustered(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Return unit vectors around 1,000 centres: neighbourhoods as real embeddings have them."""
    centres = rng.standard_normal((1_000, DIM)).astype(np.float32)
    out = np.empty((rows, DIM), dtype=np.float32)
    for start in range(0, rows, 100_000):
        stop = min(rows, start + 100_000)
        pick = rng.integers(0, len(centres), stop - start)
        chunk = centres[pick] + 0.6 * rng.standard_normal((stop - start, DIM)).astype(np.float32)
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def timed_searches(
    store: VectorStore, queries: np.ndarray, params: dict[str, Any] | None
) -> tuple[list[float], list[list[int]]]:
    times, found = [], []
    for query in queries:
        t = time.perf_counter()
        (hits,) = store.search_many(COLLECTION, query[None, :], limit=10, params=params)
        times.append(time.perf_counter() - t)
        found.append([h.movie_id - 1 for h in hits])
    return times, found


def measure(
    size: int,
    queries: int,
    rng: np.random.Generator,
    uri: str,
    efs: list[int],
    nprobes: list[int],
    index: IndexSpec | None = None,
) -> list[dict[str, float | int | str]]:
    """Return one row for the search parameters of `index` (default: the adapter's choice), then one
    per ef (HNSW) or nprobe (IVF) of the sweep."""
    vectors = clustered(size, rng)
    picks = rng.integers(0, size, queries)
    noisy = vectors[picks] + 0.3 * rng.standard_normal((queries, DIM)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)

    exact_times, exact = [], []
    for query in noisy:
        t = time.perf_counter()
        scores = vectors @ query
        exact.append(set(np.argpartition(-scores, 10)[:10].tolist()))
        exact_times.append(time.perf_counter() - t)

    store = VectorStore(uri, timeout=3600)
    try:
        started = time.perf_counter()
        spec = store.create(COLLECTION, dim=DIM, expected_rows=size, index=index)
        store.upsert(COLLECTION, np.arange(1, size + 1), vectors, [[] for _ in range(size)], [None] * size)
        store.flush(COLLECTION)
        # A server builds the index after the flush, then hands it over; Milvus Lite builds none, it
        # searches its one growing segment (choose_index)
        if spec.index_type != "FLAT" and not is_embedded(uri):
            while (stats := store.stats(COLLECTION)).pending_rows or stats.indexed_rows < size:
                time.sleep(1)
            # The query node keeps searching the growing segments' interim index until it loads
            # the built one: searched at once, recall@10 was 0.61 at 100,000 rows whatever the ef.
            store.release(COLLECTION)
            store.load(COLLECTION)
        store.search_many(COLLECTION, noisy[:1], limit=10)  # the first search waits for the index to load
        build_s = time.perf_counter() - started
        runs = [(spec.search, timed_searches(store, noisy, None))]
        if spec.index_type == "HNSW":
            runs += [({"ef": ef}, timed_searches(store, noisy, {"ef": ef})) for ef in efs]
        elif spec.index_type.startswith("IVF"):
            runs += [({"nprobe": n}, timed_searches(store, noisy, {"nprobe": n})) for n in nprobes]
        if not is_lite_file(uri):
            store.drop(COLLECTION)  # a server keeps its collections; 1M vectors take 1 GB
    finally:
        store.close()

    rows = []
    for n, (params, (times, found)) in enumerate(runs):
        recall = np.mean([len(e & set(f)) / 10 for e, f in zip(exact, found, strict=True)])
        rows.append({
            "engine": "milvus-lite" if is_embedded(uri) else "milvus-server",
            "size": size, "index": spec.index_type, "index_params": json.dumps(spec.build),
            "search_params": json.dumps(params), "default": n == 0, "build_s": round(build_s, 1),
            "p50_ms": ms(np.percentile(times, 50)), "p99_ms": ms(np.percentile(times, 99)),
            "recall@10": round(float(recall), 4), "numpy_exact_p50_ms": ms(np.percentile(exact_times, 50)),
        })  # fmt: skip
    return rows


def ms(seconds: float) -> float:
    return round(float(seconds) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-uri", help="a Milvus server (http://host:19530); Milvus Lite without it")
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 1024], help="HNSW ef sweep")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64], help="IVF nprobe sweep")
    parser.add_argument("--index", help="index type to use instead of the adapter's choice")
    parser.add_argument("--build", default="{}", help="index-building parameters (JSON), with --index")
    parser.add_argument("--search", default="{}", help="search parameters (JSON), with --index")
    args = parser.parse_args()
    trial = IndexSpec(args.index, json.loads(args.build), json.loads(args.search)) if args.index else None
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    header = ("size", "index", "search", "build s", "p50 ms", "p99 ms", "recall@10", "numpy p50")
    keys: tuple[str, ...] = ("size", "index", "search_params", "build_s", "p50_ms", "p99_ms")
    keys += ("recall@10", "numpy_exact_p50_ms")
    print(" ".join(f"{h:>11}" for h in header))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            uri = args.milvus_uri or str(Path(tmp) / f"scale_{size}.db")
            for row in measure(size, args.queries, rng, uri, args.ef, args.nprobe, trial):
                rows.append(row)
                print(" ".join(f"{row[k]!s:>11}" for k in keys), flush=True)
    if args.index:
        print(json.dumps(rows, indent=2))
        return
    engine = rows[0]["engine"]
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    kept = [r for r in earlier if r.get("engine", "milvus-lite") != engine]  # the other engine's rows
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(kept + rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
