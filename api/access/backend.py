"""The AuthenticationBackend of /graphql: sets `request.user` (a Caller) and `request.auth` (its
scopes), or refuses with 401, 429 or 503 (docs/api.md). A credential that does not check out is
refused, never taken as anonymous; a user token is good only while the key that minted it is live."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from starlette.authentication import AuthCredentials, AuthenticationBackend
from starlette.requests import HTTPConnection

from api.access.directory import KeyDirectory
from api.access.identity import ANONYMOUS, AccessRefused, Caller, unauthenticated
from api.access.keys import KEY_CACHE_S, record_use, split_key
from api.access.rates import Rates
from api.access.tokens import DEMO_MINTER, issue_user_token, read_user_token
from api.db import DATABASE_DOWN, DATABASE_ERRORS
from api.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def unavailable() -> AccessRefused:
    """Return the refusal of a request the database is down for (DATABASE_ERRORS)."""
    return AccessRefused(503, "UNAVAILABLE", DATABASE_DOWN, retry_after=5)


class Database(Protocol):
    """What the backend reads and writes through: api.state.AppState, every request's `state.movierec`."""

    async_engine: AsyncEngine

    async def run(self, work: Callable[[Session], T], *, write: bool = False) -> T: ...


class CredentialBackend(AuthenticationBackend):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token_secret = settings.token_secret.get_secret_value()
        if not settings.has_token_secret:  # development only (Settings refuse it elsewhere)
            self.token_secret = secrets.token_urlsafe(32)
        self.rates = Rates(settings)
        self.keys = KeyDirectory()
        self._used: TTLCache[str, bool] = TTLCache(4096, KEY_CACHE_S)  # keys whose use was recorded lately

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Caller]:
        """Return the caller's scopes and identity; raise AccessRefused (401, 429 or 503)."""
        charged = False

        async def charge() -> None:
            """Count the request against its address's rate, at most once."""
            nonlocal charged
            if not charged:
                charged = True
                await self.rates.within("address", conn.client.host if conn.client else "")

        header = conn.headers.get("authorization")
        if header is None:
            await charge()
            return AuthCredentials(), ANONYMOUS
        scheme, _, credential = header.partition(" ")
        caller = None
        if scheme.lower() == "bearer" and credential.strip():
            try:
                caller = await self._identify(conn.state.movierec, credential.strip(), charge)
            except DATABASE_ERRORS:  # not logged per request, as the API's other UNAVAILABLE answers
                raise unavailable() from None
        if caller is None:
            await charge()
            raise unauthenticated()
        await self.rates.within("key" if caller.kind == "key" else "user", caller.identity)
        return AuthCredentials(sorted(caller.scopes)), caller

    def mint(self, user_id: int, key_id: str, ttl_s: int) -> tuple[str, int]:
        """Return a token of the user minted by the key (or DEMO_MINTER), and when it expires."""
        return issue_user_token(self.token_secret, user_id, key_id, ttl_s)

    async def _identify(
        self, state: Database, credential: str, charge: Callable[[], Awaitable[None]]
    ) -> Caller | None:
        parts = split_key(credential)
        if parts is not None:
            key = await self.keys.find(state.async_engine, parts[0], charge)
            if key is None or not key.opens_with(parts[1]):
                return None
            await self._record_use(state, key.key_id)
            return Caller("key", key.scopes, key_id=key.key_id)
        claims = read_user_token(self.token_secret, credential)
        if claims is None:
            return None
        if claims.key_id == DEMO_MINTER:
            live = self.settings.demo_enabled
        else:
            live = await self.keys.find(state.async_engine, claims.key_id, charge) is not None
        return Caller("user", user_id=claims.user_id, key_id=claims.key_id) if live else None

    async def _record_use(self, state: Database, key_id: str) -> None:
        """Record the key's use, at most once per KEY_CACHE_S; a failure is only logged."""
        if key_id in self._used:
            return
        self._used[key_id] = True
        try:
            await state.run(lambda s: record_use(session=s, key_id=key_id), write=True)
        except DATABASE_ERRORS as error:
            log.warning("the use of key %s was not recorded: %s", key_id, error)
