"""Who is calling, and whether they are within their rate: a Starlette AuthenticationBackend, run
by AuthenticationMiddleware before a GraphQL request executes (api.app applies it to /graphql; the
dashboard has a sign-in of its own). It sets `request.user` (api.access.identity.Caller) and
`request.auth` (the scopes), or refuses the request with its code.

A caller sends `Authorization: Bearer <credential>`: an API key (`mrk_…`) or a user token. No
header makes an anonymous caller; a credential that does not check out is refused with 401, never
downgraded to anonymous. A user token is good only while the key that minted it is live.

Refusals are cheap: a key id the process does not list (api.access.directory) is counted against
its address's rate before anything reads it, and ids found to be nobody's are remembered, so made-up
keys cost at most one read per request the address's rate lets through, and none once throttled.

When a key must be read (the directory is KEY_CACHE_S old, or the id is new to it) and the database
does not answer, the request gets 503 UNAVAILABLE with Retry-After; a key's last known grant is not
honoured meanwhile: a revoked key must stop within KEY_CACHE_S, and during an outage nearly every
operation needs the database anyway.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Protocol, TypeVar

from cachetools import TTLCache
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from starlette.authentication import AuthCredentials, AuthenticationBackend
from starlette.requests import HTTPConnection

from api.access.directory import KeyDirectory
from api.access.identity import ANONYMOUS, AccessRefused, Caller, unauthenticated
from api.access.keys import KEY_CACHE_S, LiveKey, record_use, split_key
from api.access.rates import Rates
from api.access.tokens import DEMO_MINTER, issue_user_token, read_user_token
from api.settings import Settings

log = logging.getLogger(__name__)
RETRY_UNAVAILABLE_S = 5
DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
T = TypeVar("T")


class Database(Protocol):
    """What the backend reads and writes through: the app's state (api.state.AppState), which the
    lifespan puts in every request's `state.movierec`."""

    read_engine: AsyncEngine

    async def run(self, work: Callable[[Session], T], *, write: bool = False) -> T: ...


class CredentialBackend(AuthenticationBackend):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret = settings.token_secret.get_secret_value()
        if not settings.has_token_secret:  # development only (Settings refuse it elsewhere)
            secret = secrets.token_urlsafe(32)
        self.token_secret = secret
        self.rates = Rates(settings)
        self.keys = KeyDirectory()
        self._used: TTLCache[str, bool] = TTLCache(4096, KEY_CACHE_S)  # keys whose use was recorded lately

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Caller]:
        """Return the caller's scopes and identity; raise AccessRefused (401, 429 or 503)."""
        state: Database = conn.state.movierec
        address = _Address(self.rates, conn.client.host if conn.client else "")
        header = conn.headers.get("authorization")
        if header is None:
            await address.charge()
            return AuthCredentials(), ANONYMOUS
        scheme, _, credential = header.partition(" ")
        caller = None
        if scheme.lower() == "bearer" and credential.strip():
            try:
                caller = await self._identify(state, credential.strip(), address)
            except DATABASE_ERRORS:  # not logged per request, as the API's other UNAVAILABLE answers
                raise AccessRefused(
                    503,
                    "UNAVAILABLE",
                    "the database is unavailable; try again shortly",
                    retry_after=RETRY_UNAVAILABLE_S,
                ) from None
        if caller is None:
            await address.charge()
            raise unauthenticated()
        await self.rates.within("key" if caller.kind == "key" else "user", caller.identity)
        return AuthCredentials(sorted(caller.scopes)), caller

    def mint(self, user_id: int, key_id: str, ttl_s: int) -> tuple[str, int]:
        """Return a token of the user minted by the key (or DEMO_MINTER), and when it expires."""
        return issue_user_token(self.token_secret, user_id, key_id, ttl_s)

    async def _identify(self, state: Database, credential: str, address: _Address) -> Caller | None:
        parts = split_key(credential)
        if parts is not None:
            key = await self._live_key(state, parts[0], address)
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
            live = await self._live_key(state, claims.key_id, address) is not None
        return Caller("user", user_id=claims.user_id, key_id=claims.key_id) if live else None

    async def _live_key(self, state: Database, key_id: str, address: _Address) -> LiveKey | None:
        if self.keys.lists(key_id):
            return await self.keys.listed(state.read_engine, key_id)
        await address.charge()  # before any read: a throttled guess costs the database nothing
        return await self.keys.unlisted(state.read_engine, key_id)

    async def _record_use(self, state: Database, key_id: str) -> None:
        """Record the key's use, at most once per KEY_CACHE_S; a failure is only logged."""
        if key_id in self._used:
            return
        self._used[key_id] = True
        try:
            await state.run(lambda s: record_use(session=s, key_id=key_id), write=True)
        except DATABASE_ERRORS as error:
            log.warning("the use of key %s was not recorded: %s", key_id, error)


class _Address:
    """The client's address, counted against its rate at most once per request."""

    def __init__(self, rates: Rates, host: str) -> None:
        self.rates, self.host, self.charged = rates, host, False

    async def charge(self) -> None:
        if not self.charged:
            self.charged = True
            await self.rates.within("address", self.host)
