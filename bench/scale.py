"""Vector search at scale: build time, latency and recall of the index the adapter chooses.

For each size, synthetic clustered unit vectors (256-d, like the movie vectors) go into a fresh
Milvus Lite collection through api.vectors.store, with the index the adapter chooses there.
Reports build time (insert + flush + index), search p50/p99 over --queries top-10 queries, and
recall@10 against exact numpy search of the same vectors in the same run, whose p50 is printed as
the baseline. Writes bench/results/scale.json.

    python bench/scale.py                    # 10k, 100k and 1M
    python bench/scale.py --sizes 10000 100000

--index replaces the adapter's choice to try another index (results printed, not written):

    python bench/scale.py --sizes 100000 --index IVF_FLAT --build '{"nlist": 1024}' --search '{"nprobe": 128}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from api.vectors import store as store_module
from api.vectors.store import IndexSpec, VectorStore

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
DIM = 256


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


def measure(size: int, queries: int, rng: np.random.Generator, work: Path) -> dict[str, float | int | str]:
    vectors = clustered(size, rng)
    picks = rng.integers(0, size, queries)
    noisy = vectors[picks] + 0.3 * rng.standard_normal((queries, DIM)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)

    store = VectorStore(str(work / f"scale_{size}.db"), timeout=600)
    try:
        started = time.perf_counter()
        spec = store.create("scale", dim=DIM, expected_rows=size)
        store.upsert("scale", np.arange(1, size + 1), vectors, [[] for _ in range(size)], [None] * size)
        store.flush("scale")
        store.search("scale", noisy[0], limit=10)  # the first search waits for the index to load
        build_s = time.perf_counter() - started

        times, found = [], []
        for query in noisy:
            t = time.perf_counter()
            hits = store.search("scale", query, limit=10)
            times.append(time.perf_counter() - t)
            found.append([h.movie_id - 1 for h in hits])
    finally:
        store.close()

    exact_times, recalls = [], []
    for query, got in zip(noisy, found, strict=True):
        t = time.perf_counter()
        scores = vectors @ query
        top = np.argpartition(-scores, 10)[:10]
        exact_times.append(time.perf_counter() - t)
        recalls.append(len(set(top.tolist()) & set(got)) / 10)
    return {
        "size": size, "index": spec.index_type, "index_params": json.dumps(spec.build),
        "search_params": json.dumps(spec.search), "build_s": round(build_s, 1),
        "p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
        "p99_ms": round(float(np.percentile(times, 99)) * 1000, 2),
        "recall@10": round(float(np.mean(recalls)), 4),
        "numpy_exact_p50_ms": round(float(np.percentile(exact_times, 50)) * 1000, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index", help="index type to use instead of the adapter's choice")
    parser.add_argument("--build", default="{}", help="index-building parameters (JSON), with --index")
    parser.add_argument("--search", default="{}", help="search parameters (JSON), with --index")
    args = parser.parse_args()
    if args.index:
        trial = IndexSpec(args.index, json.loads(args.build), json.loads(args.search))
        store_module.choose_index = lambda uri, rows: trial  # VectorStore.create asks the module
    rng = np.random.default_rng(0)
    rows = []
    header = ("size", "index", "build s", "p50 ms", "p99 ms", "recall@10", "numpy p50")
    print(" ".join(f"{h:>9}" for h in header))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            row = measure(size, args.queries, rng, Path(tmp))
            rows.append(row)
            keys = ("size", "index", "build_s", "p50_ms", "p99_ms", "recall@10", "numpy_exact_p50_ms")
            print(" ".join(f"{row[k]!s:>9}" for k in keys), flush=True)
    if args.index:
        print(json.dumps(rows, indent=2))
        return
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
