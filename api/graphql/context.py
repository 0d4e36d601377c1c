"""The per-operation context: the shared state, fresh DataLoaders, and the one way resolvers reach
the database, the model and Milvus without blocking the event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from anyio import to_thread
from sqlalchemy.orm import Session

from api.graphql.loaders import Loaders
from api.state import AppState

T = TypeVar("T")


@dataclass
class Context:
    state: AppState
    _loaders: Loaders | None = field(default=None, repr=False)

    async def run(self, work: Callable[[Session], T], *, write: bool = False) -> T:
        """Return work(session), run in a worker thread with a session of its own.

        Every database statement, user encode and Milvus call of a request is blocking code: it
        runs here, at most `state.threads` at a time (one pooled connection each), while the event
        loop goes on serving. With `write`, the session is one transaction, committed on success.
        """
        sessions = self.state.sessions

        def call() -> T:
            with sessions.begin() if write else sessions() as session:
                return work(session)

        return await to_thread.run_sync(call, limiter=self.state.threads)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.run, self.state.catalogue)
        return self._loaders


Info = strawberry.Info[Context, Any]
