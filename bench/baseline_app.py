"""The serving ceiling for bench/serve.py: a plain Starlette route doing a numpy brute-force top-10.

It loads the same model version's movie vectors and answers GET /top?user=N with the ten movies of
highest inner product with a query vector, as JSON: no GraphQL, no database, no Milvus.

    .venv/bin/python bench/baseline_app.py PORT WORKERS   # served like the API (api/server.py)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app() -> Starlette:
    directory = Path(os.environ["MOVIEREC_BENCH_VERSION_DIR"])
    ids = np.load(directory / "movie_ids.npy")
    vectors = np.load(directory / "movie_vectors.npy")

    async def top(request: Request) -> JSONResponse:
        user = int(request.query_params.get("user", "1"))
        query = vectors[user % len(vectors)]  # a real vector of the collection stands in for a user
        scores = vectors @ query
        best = np.argpartition(-scores, 10)[:10]
        best = best[np.argsort(-scores[best])]
        return JSONResponse([{"movieId": int(ids[i]), "score": float(scores[i])} for i in best])

    return Starlette(routes=[Route("/top", top)])


if __name__ == "__main__":
    from api.server import serve
    from api.settings import Settings

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    # A Milvus server URI: the supervisor then starts no Milvus Lite, which this app does not use.
    settings = Settings(milvus_uri="http://127.0.0.1:1")
    serve(settings, host="127.0.0.1", port=port, workers=workers, log_config=None, access_log=False,
          app="bench.baseline_app:create_app")  # fmt: skip
