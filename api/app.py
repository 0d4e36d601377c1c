"""The app factory: a page linking the front ends at /, GraphQL at /graphql, health at /healthz and
/readyz, the dashboard at /admin, the demo front end at /demo when enabled; resources live in the
lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from anyio import CapacityLimiter, to_thread
from cross_web import HTTPException
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from admin.app import create_admin
from admin.app import on_shutdown as admin_shutdown
from admin.app import on_startup as admin_startup
from api import graphiql
from api.access.backend import CredentialBackend
from api.access.identity import on_refusal
from api.db import make_async_engine, make_engine, make_session_factory
from api.demo.routes import demo_app
from api.errors import Refused
from api.experiments.impressions import prune
from api.graphql.context import Context
from api.graphql.errors import process_result
from api.graphql.schema import build_schema
from api.home import home
from api.ops import Readiness, healthz, metrics_endpoint
from api.recommend.pipeline import store_kept
from api.recommend.service import Sources
from api.settings import Settings
from api.state import AppState
from api.transport import BodyLimit, NotJSON, SecurityHeaders, load_json
from api.vectors.store import VectorStore
from api.versions.registry import ModelRegistry

log = logging.getLogger(__name__)


class GraphQLApp(GraphQL):
    """Strawberry's ASGI view with our context, error codes and GraphiQL page. Who calls is settled
    before it runs (api.access.backend, as authentication middleware). An operation has one database
    session, awaited on the event loop (api.graphql.context.Context.run); the model's and Milvus's
    blocking calls go to worker threads, so the event loop is never held."""

    def __init__(self, *args: Any, graphiql_page: graphiql.GraphiQLPage | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graphiql_page = graphiql_page

    async def render_graphql_ide(self, request: Request) -> Response:
        """Return GraphiQL's page, whose scripts and styles the app serves (Strawberry's come from a CDN)."""
        assert self.graphiql_page is not None  # rendered only when the IDE is on
        return HTMLResponse(self.graphiql_page.html(request))

    async def get_context(self, request: Any, response: Any) -> Context:  # type: ignore[override]
        state: AppState = request.state.movierec
        return Context(state=state, request=request, session=state.async_session())

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        return process_result(result)

    def decode_json(self, data: str | bytes) -> object:
        """Return the request's JSON object, refusing anything else before GraphQL sees it."""
        try:
            body = load_json(data)
        except NotJSON as error:
            raise HTTPException(400, str(error)) from None
        if not isinstance(body, dict):
            raise HTTPException(400, "the request body must be a JSON object")
        if not isinstance(body.get("variables") or {}, dict):
            raise HTTPException(400, "variables must be a JSON object")
        if not isinstance(body.get("operationName") or "", str):
            raise HTTPException(400, "operationName must be a string")
        return body

    def encode_json(self, data: object) -> bytes:
        """Return the response body with orjson, many times faster than json for these answers."""
        return orjson.dumps(data)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer HTTP-level failures (malformed JSON, no query, bad method) as GraphQL errors too."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self._unless_the_client_leaves(request, receive)
        except ClientDisconnect:  # the client left before sending its body: nobody to answer
            return
        except UnicodeDecodeError:  # a body that is not UTF-8 fails before strawberry's JSON check
            response = Refused(400, "BAD_REQUEST", "the request body is not UTF-8").response()
        except HTTPException as error:
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, "BAD_REQUEST")
            response = Refused(error.status_code, code, error.reason).response()
        if response is not None:
            await response(scope, receive, send)

    async def _unless_the_client_leaves(self, request: Request, receive: Receive) -> Response | None:
        """Return the view's response, or None when the client went away first: then the operation
        is cancelled (its awaits raise CancelledError; a worker thread already running finishes its
        call), so that a client cannot start costly work and leave it running."""
        await request.body()  # all of it (bounded by api.transport.BodyLimit); the view reads this copy
        work = asyncio.ensure_future(self.run(request))
        left = asyncio.ensure_future(receive())  # after the body, the next message is the disconnect
        try:
            await asyncio.wait((work, left), return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
            gone = not work.done()
            if gone:
                work.cancel()
        if gone:
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return None
        return work.result()


WORKER_THREADS = 8  # blocking calls in flight per process (AppState.run_blocking, /readyz, /metrics)
POOL_HEADROOM = 4  # connections for the dashboard's pages and background jobs beside the worker threads
ASYNC_POOL = 8  # connections of the requests' sessions, each held for one call; as many again in overflow


def request_engine(settings: Settings) -> AsyncEngine:
    """Return the engine of requests' sessions on the event loop (AppState.async_session)."""
    return make_async_engine(settings.resolved_database_url, pool_size=ASYNC_POOL, max_overflow=ASYNC_POOL)


def build_state(settings: Settings, access: CredentialBackend) -> AppState:
    """Return the shared resources: engine, session factory, Milvus client, model registry, the
    worker threads' limiter (one pooled connection per thread, so no thread waits on the pool) and
    the access backend."""
    # No ping before each checkout: it is a round trip per request, a large share of a kept answer's
    # read. A connection found dead fails that request with UNAVAILABLE and makes the pool replace
    # every connection it holds (SQLAlchemy's disconnect handling); pool_recycle retires connections
    # before the server's idle timeout would.
    engine = make_engine(
        settings.resolved_database_url,
        pool_size=WORKER_THREADS + POOL_HEADROOM,
        max_overflow=4,
        pool_pre_ping=False,
    )
    if settings.var_dir and not settings.milvus_uri:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    state = AppState(
        settings=settings,
        engine=engine,
        async_engine=request_engine(settings),
        sessions=make_session_factory(engine),
        store=VectorStore(settings.resolved_milvus_uri),
        models=ModelRegistry(),
        threads=CapacityLimiter(WORKER_THREADS),
        access=access,
    )

    def keep(rows: list[dict[str, object]]) -> None:  # after the answer, in a transaction of its own
        state.in_background(state.run(lambda session: store_kept(session=session, rows=rows), write=True))

    state.sources = Sources(state.store, state.popular, use_kept=settings.kept_lists, keep=keep)
    return state


def warm_up(state: AppState) -> None:
    """Load the active model and its collection before the first request, then move everything
    loaded so far out of the garbage collector's reach: the model and libraries are hundreds of
    thousands of objects that every full collection would otherwise walk again, a pause of tens of
    ms mid-request."""
    try:
        with state.sessions() as session:
            active = state.models.get(session)
        if active is not None:  # its collection too: the first request must not wait for that
            state.store.load(active.collection)
        if state.models.experiment is not None:  # a running experiment's treatment, read with it
            state.store.load(state.models.experiment.treatment.collection)
    except Exception as error:  # a database or Milvus that is down must not stop the API from starting
        log.warning("could not load the active model at startup: %s", error)
    gc.collect()
    gc.freeze()


PRUNE_FIRST_S, PRUNE_EVERY_S = 60, 3600


async def prune_impressions(state: AppState) -> None:
    """Delete impressions past their retention, a chunk a transaction, a minute after startup and then
    every hour (each worker: a delete finds nothing the others deleted)."""
    days = state.settings.impression_retention_days
    await asyncio.sleep(PRUNE_FIRST_S)
    while True:
        try:
            while await state.run(lambda session: prune(session, retention_days=days), write=True):
                pass
        except SQLAlchemyError as error:
            log.warning("could not prune old impressions: %s", error)
        await asyncio.sleep(PRUNE_EVERY_S)


def create_app(settings: Settings | None = None) -> Starlette:
    """Return the movierec web app; nothing connects until the lifespan starts."""
    settings = settings or Settings()
    access = CredentialBackend(settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, AppState]]:
        state = build_state(settings, access)
        admin_startup(state)
        await to_thread.run_sync(warm_up, state)  # database and Milvus I/O, off the loop
        try:
            await access.keys.read_all(state.async_engine)  # the keys, before a request needs them
        except SQLAlchemyError as error:  # a database down or not migrated yet must not stop the API starting
            log.warning("could not read the API keys at startup: %s", error)
        jobs = [asyncio.create_task(state.impressions.run()), asyncio.create_task(prune_impressions(state))]
        try:
            yield {"movierec": state}
        finally:
            await state.drain()
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            await state.impressions.close()  # what is still queued: a restart loses no impression
            admin_shutdown()
            await state.store.aclose()
            state.engine.dispose()
            await state.async_engine.dispose()

    ide = settings.environment == "development"
    graphql = GraphQLApp(
        build_schema(introspection=settings.introspection_enabled),
        graphql_ide="graphiql" if ide else None,
        graphiql_page=graphiql.GraphiQLPage(settings) if ide else None,
        allow_queries_via_get=False,
    )
    middleware: list[Middleware] = []
    if settings.cors_origins:  # outermost: the answers the layers below make (413, 408) carry it too
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["content-type", "authorization"],
            )
        )
    middleware += [
        # GraphiQL (development only) loads everything from the app (api.graphiql), so development has a
        # CSP too: the same, but for the data: fonts in GraphiQL's stylesheet.
        Middleware(SecurityHeaders, graphiql=ide),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes, seconds=settings.body_timeout_s),
        Middleware(GZipMiddleware, minimum_size=1024),
    ]
    # Identity on the API only: the dashboard signs in with a session of its own.
    identify = Middleware(AuthenticationMiddleware, backend=access, on_error=on_refusal)
    routes = [
        home(settings),
        # Every method: the view answers 405 as a GraphQL error.
        Route("/graphql", graphql, middleware=[identify]),
        Route("/healthz", healthz),
        Route("/readyz", Readiness().endpoint),
        Route("/metrics", metrics_endpoint),
        Mount("/admin", app=create_admin(settings), name="admin"),
    ]
    if ide:
        routes.append(graphiql.assets())
    if settings.demo_enabled:  # its session route creates users: never mounted unless enabled
        routes.append(Mount("/demo", app=demo_app(), name="demo"))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
