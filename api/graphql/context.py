"""The per-operation context: the shared state, the request (whose `user` is the caller, set by
api.access.backend), fresh DataLoaders, and the way resolvers hand blocking work (the database,
the model, Milvus) to a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import strawberry
from sqlalchemy.orm import Session
from starlette.requests import Request

from api.access.identity import Caller
from api.graphql.loaders import Loaders
from api.state import AppState
from api.versions.registry import ActiveModel

T = TypeVar("T")


@dataclass
class Context:
    state: AppState
    request: Request

    async def run(self, work: Callable[[Session], T], *, write: bool = False) -> T:
        """Return work(session), run in a worker thread with a session of its own (AppState.run)."""
        return await self.state.run(work, write=write)

    @property
    def caller(self) -> Caller:
        """Return who sent the request (AuthenticationMiddleware's `request.user`)."""
        caller: Caller = self.request.user
        return caller

    async def active_model(self) -> ActiveModel | None:
        """Return the active model; the database is read (in a worker thread) only when the registry
        must look again."""
        models = self.state.models
        return models.current if models.is_fresh() else await self.run(models.get)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.run, self.state.titles, self.state.read_engine)


Info = strawberry.Info[Context, Any]
