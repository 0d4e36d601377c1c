"""Milvus Lite search latency for the product's collection shape, to choose the milvus-lite release.

Creates a collection like the adapter's (3,883 movies x 256-d, FLAT, inner product, genres and year
scalars), then times plain and filtered top-10 searches through pymilvus's MilvusClient. It uses
pymilvus directly, so the same script runs in an environment with another milvus-lite release:

    .venv/bin/python bench/milvus_release.py                      # the project's pinned milvus-lite
    /other/venv/bin/python bench/milvus_release.py      # e.g. milvus-lite 3.x and its pymilvus

Each run appends its row to bench/results/milvus_lite.json (keyed by release), and a numpy
brute-force search over the same vectors in the same run is the baseline.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
from pymilvus import DataType, MilvusClient  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "milvus_lite.json"
MOVIES, DIM, QUERIES = 3_883, 256, 300
GENRES = ["Action", "Comedy", "Drama", "Romance", "Thriller", "Sci-Fi"]


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 3)


def main() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((MOVIES, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(MOVIES, QUERIES)] + 0.1 * rng.standard_normal((QUERIES, DIM)).astype(
        np.float32
    )

    with tempfile.TemporaryDirectory() as tmp:
        client = MilvusClient(uri=str(Path(tmp) / "bench.db"))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("movie_id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field(
            "genres", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=18, max_length=32
        )
        schema.add_field("year", DataType.INT64)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        client.create_collection("movies", schema=schema, index_params=index)
        started = time.perf_counter()
        rows = [{"movie_id": i + 1, "vector": vectors[i].tolist(), "genres": [GENRES[i % len(GENRES)]],
                 "year": 1920 + i % 80} for i in range(MOVIES)]  # fmt: skip
        client.insert("movies", rows)
        insert_s = time.perf_counter() - started

        def timed(**kwargs: object) -> list[float]:
            times = []
            for query in queries:
                started = time.perf_counter()
                client.search("movies", data=[query.tolist()], limit=10, **kwargs)
                times.append(time.perf_counter() - started)
            return times

        timed()  # warm-up
        plain = timed()
        filtered = timed(filter='ARRAY_CONTAINS_ANY(genres, ["Drama", "Comedy"]) and year >= 1980')
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 1
        got = [
            [
                hit.get("id", hit.get("movie_id"))
                for hit in client.search("movies", data=[q.tolist()], limit=10)[0]
            ]
            for q in queries[:50]
        ]
        recall = float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact[:50], strict=True)]))
        client.close()

    numpy_times = []
    for query in queries:
        started = time.perf_counter()
        scores = vectors @ query
        top = np.argpartition(-scores, 10)[:10]
        top[np.argsort(-scores[top])]
        numpy_times.append(time.perf_counter() - started)

    row: dict[str, Any] = {
        "milvus_lite": version("milvus-lite"), "pymilvus": version("pymilvus"), "movies": MOVIES, "dim": DIM,
        "insert_s": round(insert_s, 3), "search_p50_ms": percentile_ms(plain, 50),
        "search_p99_ms": percentile_ms(plain, 99), "filtered_p50_ms": percentile_ms(filtered, 50),
        "filtered_p99_ms": percentile_ms(filtered, 99), "recall@10": round(recall, 4),
        "numpy_p50_ms": percentile_ms(numpy_times, 50),
    }  # fmt: skip
    print(json.dumps(row, indent=2))
    print(f"milvus-lite {row['milvus_lite']}: search p50 {row['search_p50_ms']} ms "
          f"({row['search_p50_ms'] / row['numpy_p50_ms']:.0f}x numpy brute force, same run)")  # fmt: skip
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[row["milvus_lite"]] = row
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
