"""The fixed stack's own cost for bench/serve.py: Strawberry on Starlette on uvicorn answering the
benchmark's `recommendations` query with ten constant movies, no database, no model, no Milvus.

It has Strawberry's parse and validation caches, as the API has, and nothing else: the API can be
no faster than this, so bench/serve.py reports both against the numpy ceiling.

With --read, each request first makes the one read a kept answer makes (the user's row and kept
list, api.recommend.pipeline.read_user, on a session of the API's own engine, MOVIEREC_DATABASE_URL):
the stack plus the database, what the kept path can reach at most.

With --compute, each request makes what a computed answer needs and nothing else: the one read with
the user's ratings, one encode by the active model and one Milvus search leaving the rated movies
out (MOVIEREC_MILVUS_URI), then answers constants: what the computed path can reach at most.

    .venv/bin/python bench/constant_app.py PORT WORKERS [--read|--compute]   # served like the API
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
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
        await _read(info, partial(read_user, user_id=user_id, history_length=50, ratings=False))
        return TEN[:limit]


@strawberry.type
class ComputeQuery:
    @strawberry.field
    async def recommendations(
        self, info: strawberry.Info, user_id: int, limit: int = 10
    ) -> list[Recommendation]:
        from api.recommend.pipeline import Ask, encode, read_user
        from api.recommend.service import NO_FILTERS, search_filter

        context = info.context
        model = context["model"]
        user = await _read(
            info, partial(read_user, user_id=user_id, history_length=model.model.history_length)
        )
        vectors, _liked, _newest = encode(model, [Ask(user_id, user, limit)], int(time.time()))
        expr = search_filter(NO_FILTERS, set(), user.rated)
        await context["store"].search(model.collection, vectors[0], limit=limit, expr=expr)
        return TEN[:limit]


async def _read(info: strawberry.Info, work: Any) -> Any:
    """Run work(session) as the API runs an operation's reads: on a session of its own engine."""
    from api.db import run_on

    return await run_on(AsyncSession(info.context["engine"], expire_on_commit=False), work)


class ReadGraphQL(GraphQL[dict[str, object], None]):
    engine: AsyncEngine
    extra: dict[str, object]

    async def get_context(self, request: object, response: object) -> dict[str, object]:
        return {"engine": self.engine, **self.extra}


def create_app() -> Starlette:
    schema = strawberry.Schema(query=Query, extensions=[ParserCache, ValidationCache])
    return Starlette(routes=[Route("/graphql", GraphQL(schema, graphql_ide=None), methods=["POST"])])


def create_read_app() -> Starlette:
    from api.app import request_engine
    from api.settings import Settings

    schema = strawberry.Schema(query=ReadQuery, extensions=[ParserCache, ValidationCache])
    graphql = ReadGraphQL(schema, graphql_ide=None)
    graphql.engine = request_engine(Settings(database_url=os.environ["MOVIEREC_DATABASE_URL"]))
    graphql.extra = {}
    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])


def create_compute_app() -> Starlette:
    from api.app import request_engine
    from api.db import make_engine, make_session_factory
    from api.settings import Settings
    from api.vectors.store import VectorStore
    from api.versions.registry import ModelRegistry

    settings = Settings()
    schema = strawberry.Schema(query=ComputeQuery, extensions=[ParserCache, ValidationCache])
    graphql = ReadGraphQL(schema, graphql_ide=None)
    graphql.engine = request_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        with make_session_factory(engine)() as session:
            model = ModelRegistry().get(session)
        engine.dispose()
        assert model is not None, "no active model: run bench/serve.py first"
        store = VectorStore(settings.resolved_milvus_uri)
        store.load(model.collection)
        graphql.extra = {"model": model, "store": store}
        yield
        await store.aclose()

    async def ready(_request: object) -> PlainTextResponse:  # answered once the lifespan has loaded all
        return PlainTextResponse("ready")

    routes = [Route("/graphql", graphql, methods=["POST"]), Route("/ready", ready)]
    return Starlette(routes=routes, lifespan=lifespan)


if __name__ == "__main__":
    from api.server import serve
    from api.settings import Settings

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    mode = (sys.argv[3:] or ["--constant"])[0]
    factory = {"--read": "create_read_app", "--compute": "create_compute_app"}.get(mode, "create_app")
    # --compute searches MOVIEREC_MILVUS_URI's Milvus (started here when a Lite file); the others none
    settings = Settings() if mode == "--compute" else Settings(milvus_uri="http://127.0.0.1:1")
    serve(settings, host="127.0.0.1", port=port, workers=workers, log_config=None, access_log=False,
          app=f"bench.constant_app:{factory}")  # fmt: skip
