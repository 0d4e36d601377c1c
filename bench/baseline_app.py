"""The serving ceiling for bench/serve.py: a plain Starlette route doing a numpy brute-force top-10.

It loads the same model version's movie vectors and answers GET /top?user=N with the ten movies of
highest inner product with a query vector, as JSON: no GraphQL, no database, no Milvus.
"""

from __future__ import annotations

import os
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
