"""The per-operation context: the shared state, the request (whose `user` is the caller, set by
api.access.backend), the operation's one database session, and fresh DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.requests import Request

from api.access.identity import Caller
from api.db import run_on
from api.graphql.loaders import Loaders
from api.state import AppState

T = TypeVar("T")


@dataclass
class Context:
    state: AppState
    request: Request
    session: AsyncSession  # the operation's, opened by the view (api.app.GraphQLApp.get_context)
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, work: Callable[[Session], T], *, write: bool = False) -> T:
        """Return work(session) on the operation's session (api.db.run_on), one call at a time: sibling
        fields resolve concurrently, and a session serves one call at once."""
        async with self._turn:
            return await run_on(self.session, work, write=write)

    @property
    def caller(self) -> Caller:
        """Return who sent the request (AuthenticationMiddleware's `request.user`)."""
        caller: Caller = self.request.user
        return caller

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.run, self.state.titles)


Info = strawberry.Info[Context, Any]
