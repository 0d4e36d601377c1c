"""The fixed stack's own cost for bench/serve.py: Strawberry on Starlette on uvicorn answering the
benchmark's `recommendations` query with ten constant movies, no database, no model, no Milvus.

It has Strawberry's parse and validation caches, as the API has, and nothing else: the API can be
no faster than this, so bench/serve.py reports both against the numpy ceiling.

With --read, each request first makes the one read a kept answer makes (the user's row and kept
list, api.recommend.pipeline.read_user, on the API's own read engine, MOVIEREC_DATABASE_URL):
the stack plus the database, what the kept path can reach at most.

    .venv/bin/python bench/constant_app.py PORT WORKERS [--read]   # served like the API (api/server.py)
"""

from __future__ import annotations

import os
import sys

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
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


@strawberry.type
class ReadQuery:
    @strawberry.field
    async def recommendations(
        self, info: strawberry.Info, user_id: int, limit: int = 10
    ) -> list[Recommendation]:
        from api.recommend.pipeline import read_user

        # a kept answer's read: the user's row and kept list, without the ratings
        await read_user(engine=info.context["engine"], user_id=user_id, history_length=50, ratings=False)
        return TEN[:limit]


class ReadGraphQL(GraphQL[dict[str, object], None]):
    engine: AsyncEngine

    async def get_context(self, request: object, response: object) -> dict[str, object]:
        return {"engine": self.engine}


def create_app() -> Starlette:
    schema = strawberry.Schema(query=Query, extensions=[ParserCache, ValidationCache])
    return Starlette(routes=[Route("/graphql", GraphQL(schema, graphql_ide=None), methods=["POST"])])


def create_read_app() -> Starlette:
    from api.app import request_read_engine
    from api.settings import Settings

    schema = strawberry.Schema(query=ReadQuery, extensions=[ParserCache, ValidationCache])
    graphql = ReadGraphQL(schema, graphql_ide=None)
    graphql.engine = request_read_engine(Settings(database_url=os.environ["MOVIEREC_DATABASE_URL"]))
    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])


if __name__ == "__main__":
    from api.server import serve
    from api.settings import Settings

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    factory = "create_read_app" if "--read" in sys.argv[3:] else "create_app"
    settings = Settings(milvus_uri="http://127.0.0.1:1")  # a server URI: no Milvus Lite is started
    serve(settings, host="127.0.0.1", port=port, workers=workers, log_config=None, access_log=False,
          app=f"bench.constant_app:{factory}")  # fmt: skip
