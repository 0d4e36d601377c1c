"""What the app's lifespan creates once and every request shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from api.access.backend import CredentialBackend
from api.db import in_transaction, run_on
from api.errors import ModelNotReady
from api.experiments.impressions import ImpressionRecorder, insert_impressions
from api.movies.service import TitleCache
from api.recommend.popular import Popularity
from api.recommend.service import Sources
from api.settings import Settings
from api.vectors.store import VectorStore
from api.versions.registry import ActiveModel, ModelRegistry, Serving

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class AppState:
    settings: Settings
    engine: Engine  # background jobs' and the dashboard's pages', in threads (sessions)
    async_engine: AsyncEngine  # requests', on the event loop (run, api.graphql.context.Context.run)
    sessions: sessionmaker
    store: VectorStore
    models: ModelRegistry
    threads: CapacityLimiter  # worker threads of run_blocking, /readyz and /metrics, a pooled connection each
    access: CredentialBackend  # who calls, within which rate; mints user tokens (api.access.backend)
    titles: TitleCache = field(default_factory=TitleCache)
    popular: Popularity = field(init=False)  # the most-rated movies, counted once a minute
    sources: Sources = field(init=False)  # what a user's recommendations are answered from (build_state)
    impressions: ImpressionRecorder = field(init=False)  # lists served, on their way to the database
    _background: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def async_session(self) -> AsyncSession:
        """Return a new session on the event loop (a GraphQL operation's, or one `run` call's)."""
        return AsyncSession(self.async_engine, expire_on_commit=False)

    async def run(self, work: Callable[[Session], T], *, write: bool = False) -> T:
        """Return work(session) on a session of its own, on the event loop (api.db.run_on: work must
        not block); with `write`, in one transaction."""
        return await run_on(self.async_session(), work, write=write)

    async def run_blocking(self, work: Callable[[Session], T], *, write: bool = False) -> T:
        """Return work(session) run in a worker thread with a session of its own, for work that blocks
        beside the database (Paddle, Milvus, a model loaded from disk); with `write`, in one transaction."""

        def call() -> T:
            if write:
                return in_transaction(self.sessions, work)
            with self.sessions() as session:
                return work(session)

        return await to_thread.run_sync(call, limiter=self.threads)

    async def active_model(self) -> ActiveModel | None:
        """Return the active model; the database is read (and a new version loaded) only when the
        registry must look again, in a worker thread."""
        return self.models.current if self.models.is_fresh() else await self.run_blocking(self.models.get)

    async def serving_model(self, user_id: int | None = None) -> Serving:
        """Return the model that serves a user (in an experiment, their arm's) or anyone else (the active
        one), or raise ModelNotReady before one is trained and activated."""
        if not self.models.is_fresh():
            await self.run_blocking(self.models.get)
        serving = self.models.for_user(user_id)
        if serving is None:
            raise ModelNotReady("no model has been trained and activated yet; run `movierec train`")
        return serving

    def __post_init__(self) -> None:
        self.popular = Popularity(self.engine)
        self.impressions = ImpressionRecorder(
            lambda rows: self.run(lambda session: insert_impressions(session, rows), write=True),
            capacity=self.settings.impression_queue,
        )

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work after the request has its answer (awaited at shutdown)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background write failed: %s", task.exception())

    async def drain(self) -> None:
        """Wait for the background writes still running (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
