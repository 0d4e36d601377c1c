"""The fixed stack's own cost for bench/serve.py: Strawberry on Starlette on uvicorn answering the
benchmark's `recommendations` query with ten constant movies, no database, no model, no Milvus.

It has Strawberry's parse and validation caches, as the API has, and nothing else: the API can be
no faster than this, so bench/serve.py reports both against the numpy ceiling.

    .venv/bin/python bench/constant_app.py PORT WORKERS   # served like the API (api/server.py)
"""

from __future__ import annotations

import sys

import strawberry
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache


@strawberry.type
class Movie:
    id: int
    title: str


@strawberry.type
class Recommendation:
    score: float
    movie: Movie


TEN = [
    Recommendation(score=1 - i / 100, movie=Movie(id=i + 1, title=f"Movie {i + 1} (1999)")) for i in range(10)
]


@strawberry.type
class Query:
    @strawberry.field
    async def recommendations(self, user_id: int, limit: int = 10) -> list[Recommendation]:
        return TEN[:limit]


def create_app() -> Starlette:
    schema = strawberry.Schema(query=Query, extensions=[ParserCache, ValidationCache])
    return Starlette(routes=[Route("/graphql", GraphQL(schema, graphql_ide=None), methods=["POST"])])


if __name__ == "__main__":
    from api.server import serve
    from api.settings import Settings

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    settings = Settings(milvus_uri="http://127.0.0.1:1")  # a server URI: no Milvus Lite is started
    serve(settings, host="127.0.0.1", port=port, workers=workers, log_config=None, access_log=False,
          app="bench.constant_app:create_app")  # fmt: skip
